"""The Numba kernel for large NumPy combinations (``diffcore._fused``).

It must give the blocked ufunc path bit for bit, for any row width and
number of terms, and step aside (never fail) when it is off, missing, busy
in another thread, or in a child forked after it ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import _blocked, _fused

pytest.importorskip("numba", reason="numba is not installed (the fast extra)")

SCHEDULE = diffcore.Schedule.linear(1000)
# Rows of 225,900 elements: not a multiple of the kernel's chunk, so tasks
# start and end inside rows; 5 rows make 1,129,500 elements, past MIN_SIZE.
SHAPE = (5, 3, 300, 251)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each call of ``_fused.linear`` returned (True: the kernel ran)."""
    seen: list[bool] = []
    original = _fused.linear

    def spying(*args: Any) -> bool:
        seen.append(original(*args))
        return seen[-1]

    monkeypatch.setattr(_fused, "linear", spying)
    return seen


def _inputs(dtype: Any, shape: tuple[int, ...] = SHAPE) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(11)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


def _blocked_result(
    monkeypatch: pytest.MonkeyPatch, call: Any, *args: Any, **kwargs: Any
) -> Any:
    with monkeypatch.context() as patch:
        patch.setenv(_fused.ENV, "0")
        return call(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [417, "per-sample"])
def test_q_sample_matches_the_blocked_path_bit_for_bit(
    dtype: Any, t: Any, calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, noise, _ = _inputs(dtype)
    steps = np.array([0, 250, 500, 998, 999]) if t == "per-sample" else t

    fused = diffcore.q_sample(SCHEDULE, x, steps, noise)
    assert calls == [True]
    blocked = _blocked_result(monkeypatch, diffcore.q_sample, SCHEDULE, x, steps, noise)
    assert calls == [True]  # DIFFCORE_NUMBA=0: the kernel is not even asked

    assert fused.dtype == blocked.dtype == dtype
    np.testing.assert_array_equal(fused, blocked)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_three_terms_into_out_match_the_blocked_path(
    dtype: Any, calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    x_0, x_t, noise = _inputs(dtype)
    t = np.array([1, 2, 300, 700, 999])
    out = np.empty_like(x_0)

    got = diffcore.q_posterior_sample(SCHEDULE, x_0, x_t, t, noise, out=out)
    blocked = _blocked_result(
        monkeypatch, diffcore.q_posterior_sample, SCHEDULE, x_0, x_t, t, noise
    )

    assert got is out
    assert calls[0] is True
    np.testing.assert_array_equal(out, blocked)


def test_one_long_row_is_shared_among_tasks(calls: list[bool]) -> None:
    x, noise, _ = _inputs(np.float32, (1, _fused.MIN_SIZE + 12_345))

    got = diffcore.q_sample(SCHEDULE, x, 600, noise)

    a = np.float32(SCHEDULE.sqrt_alphas_cumprod[600])
    b = np.float32(SCHEDULE.sqrt_one_minus_alphas_cumprod[600])
    assert calls == [True]
    np.testing.assert_array_equal(got, a * x + b * noise)


def test_out_may_be_the_first_input(
    calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, noise, _ = _inputs(np.float32)
    expected = _blocked_result(monkeypatch, diffcore.q_sample, SCHEDULE, x, 5, noise)

    got = diffcore.q_sample(SCHEDULE, x, 5, noise, out=x)

    assert got is x
    assert calls[-1] is True
    np.testing.assert_array_equal(x, expected)


def test_read_only_inputs_are_read(calls: list[bool]) -> None:
    x, noise, _ = _inputs(np.float32)
    x.flags.writeable = False
    noise.flags.writeable = False

    got = diffcore.q_sample(SCHEDULE, x, 9, noise)

    assert calls == [True]
    a = np.float32(SCHEDULE.sqrt_alphas_cumprod[9])
    b = np.float32(SCHEDULE.sqrt_one_minus_alphas_cumprod[9])
    np.testing.assert_array_equal(got, a * x + b * noise)


def test_small_arrays_keep_the_ufunc_path(calls: list[bool]) -> None:
    x = np.ones((4, _fused.MIN_SIZE // 4 - 1), dtype=np.float32)

    diffcore.q_sample(SCHEDULE, x, 3, x)

    assert calls == []  # below 2^20 elements the kernel is not even asked


def test_rows_of_fewer_than_four_elements_keep_the_blocked_path(
    calls: list[bool],
) -> None:
    x = np.linspace(0, 1, _fused.MIN_SIZE, dtype=np.float32).reshape(-1, 1)
    t = np.arange(x.shape[0]) % len(SCHEDULE)

    got = diffcore.q_sample(SCHEDULE, x, t, x)

    assert calls == [False]  # one row at a time cost 2x the blocked path
    a = SCHEDULE.sqrt_alphas_cumprod[t].astype(np.float32)[:, None]
    b = SCHEDULE.sqrt_one_minus_alphas_cumprod[t].astype(np.float32)[:, None]
    np.testing.assert_array_equal(got, a * x + b * x)


def test_float16_keeps_the_generic_path(calls: list[bool]) -> None:
    x = np.ones(SHAPE, dtype=np.float16)

    got = diffcore.q_sample(SCHEDULE, x, 3, x)

    assert got.dtype == np.float16
    assert calls == []  # float16 is computed in float32 before any kernel


def test_without_numba_the_blocked_path_answers(
    calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, noise, _ = _inputs(np.float32)
    expected = diffcore.q_sample(SCHEDULE, x, 77, noise)
    monkeypatch.setitem(_fused._state, "kernels", None)

    got = diffcore.q_sample(SCHEDULE, x, 77, noise)

    assert calls == [True, False]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("value", ["2", "off", "yes", "-1"])
@pytest.mark.parametrize("shape", [(2, 3), SHAPE])
def test_a_bad_switch_is_named_whatever_the_size(
    value: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small arrays never reach the kernel; the value is read anyway, as
    # DIFFCORE_NUM_THREADS is, so that a typo never hides.
    monkeypatch.setenv(_fused.ENV, value)
    x = np.ones(shape, dtype=np.float32)

    with pytest.raises(ValueError, match=rf"DIFFCORE_NUMBA must be 0 .* {value!r}"):
        diffcore.q_sample(SCHEDULE, x, 3, x)


def test_the_thread_count_is_passed_on_and_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numba

    seen: list[int] = []
    kernels = _fused._kernels()
    original = kernels.combine

    def recording(*args: Any) -> None:
        seen.append(numba.get_num_threads())
        original(*args)

    monkeypatch.setattr(kernels, "combine", recording)
    monkeypatch.setenv(_blocked.ENV, "1")
    before = numba.get_num_threads()
    x = np.ones(SHAPE, dtype=np.float32)

    diffcore.q_sample(SCHEDULE, x, 3, x)

    assert seen == [1]
    assert numba.get_num_threads() == before


def test_a_thread_arriving_while_the_kernel_runs_takes_the_blocked_path(
    calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, noise, _ = _inputs(np.float32)
    expected = _blocked_result(monkeypatch, diffcore.q_sample, SCHEDULE, x, 40, noise)
    results: dict[str, np.ndarray[Any, Any]] = {}

    # Hold the kernel's lock as a running kernel would, from another thread.
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with _fused._lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(30)
    try:
        results["busy"] = diffcore.q_sample(SCHEDULE, x, 40, noise)
    finally:
        release.set()
        thread.join()
    results["free"] = diffcore.q_sample(SCHEDULE, x, 40, noise)

    assert calls[-2:] == [False, True]
    for got in results.values():
        np.testing.assert_array_equal(got, expected)


FORK_SCRIPT = """
import os, sys
import numpy as np
import diffcore
from diffcore import _fused

x = np.linspace(-1, 1, 2 * _fused.MIN_SIZE, dtype=np.float32).reshape(4, -1)
s = diffcore.Schedule.linear(1000)
expected = diffcore.q_sample(s, x, 999, x)  # starts Numba's threads
assert _fused._state.get("launched"), "the kernel did not run in the parent"
pid = os.fork()
if pid == 0:
    got = diffcore.q_sample(s, x, 999, x)
    ok = np.array_equal(got, expected) and _fused._state.get("forked")
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_after_the_kernel_ran_gets_right_answers() -> None:
    # GNU OpenMP kills a forked child that starts a parallel region: the
    # child must take the blocked path instead.
    _run_with_numba(FORK_SCRIPT)


RACE_SCRIPT = """
import os, sys, threading
import numpy as np
import diffcore
from diffcore import _fused

kernels = _fused._kernels()
original = kernels.combine
running, finish = threading.Event(), threading.Event()

def slow(*args):  # the process's first kernel, still running at the fork
    running.set()
    finish.wait(30)
    original(*args)

kernels.combine = slow
x = np.ones((4, _fused.MIN_SIZE // 2), dtype=np.float32)
s = diffcore.Schedule.linear(1000)
thread = threading.Thread(target=diffcore.q_sample, args=(s, x, 999, x))
thread.start()
running.wait(30)
pid = os.fork()
if pid == 0:
    kernels.combine = original
    got = diffcore.q_sample(s, x, 999, x)
    os._exit(0 if _fused._state.get("forked") and got[0, 0] > 0 else 3)
finish.set()
thread.join()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_during_the_first_kernel_keeps_off_it() -> None:
    # The kernel was marked used only once it returned: such a child started
    # GNU OpenMP again and hung or was killed.
    _run_with_numba(RACE_SCRIPT)


def _run_with_numba(script: str) -> None:
    """Run ``script`` in a fresh interpreter with the kernel on; it must exit 0."""
    env = {key: value for key, value in os.environ.items() if key != _fused.ENV}
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        env=env,
        timeout=120,
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
