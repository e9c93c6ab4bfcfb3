"""``out=``: writing into a caller's array gives what allocating gives.

Also the NumPy kernel behind it (``diffcore._blocked``): cache-sized blocks
shared among threads must give the whole-array form bit for bit, whatever the
block layout, the number of threads or the dtype, and must survive ``fork``
(with the Numba kernel switched off: tests/test_fused.py tests that one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import _blocked, _fused
from tests._helpers import to_numpy

SCHEDULE = diffcore.Schedule.linear(1000)
IMMUTABLE = ("jax", "array_api_compat.dask")


@pytest.fixture(autouse=True)
def _blocked_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large NumPy arrays keep the blocked path (tests/test_fused.py: Numba's)."""
    monkeypatch.setenv(_fused.ENV, "0")


def _arrays(xp: ModuleType, shape: tuple[int, ...], count: int) -> list[Any]:
    rng = np.random.default_rng(3)
    return [
        xp.asarray(rng.standard_normal(shape), dtype=xp.float32) for _ in range(count)
    ]


CALLS: dict[str, Callable[..., Any]] = {
    "q_sample": lambda x, y, z, t, **kw: diffcore.q_sample(SCHEDULE, x, t, y, **kw),
    "q_posterior_sample": lambda x, y, z, t, **kw: diffcore.q_posterior_sample(
        SCHEDULE, x, y, t, z, **kw
    ),
    "ddpm_step": lambda x, y, z, t, **kw: (
        diffcore.ddpm_step(SCHEDULE, x, y, t, z, **kw).x_prev
    ),
    "ddim_step": lambda x, y, z, t, **kw: (
        diffcore.ddim_step(SCHEDULE, x, y, t, 0, eta=0.5, noise=z, **kw).x_prev
    ),
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("t", [7, "per-sample"])
def test_out_holds_what_the_allocating_call_returns(
    xp: ModuleType, name: str, t: Any
) -> None:
    if xp.__name__.startswith(IMMUTABLE):
        pytest.skip(f"{xp.__name__} arrays are immutable or lazy: no out=")
    x, y, z, out = _arrays(xp, (3, 2, 5), 4)
    steps = np.array([1, 500, 999]) if t == "per-sample" else t
    expected = to_numpy(CALLS[name](x, y, z, steps))

    result = CALLS[name](x, y, z, steps, out=out)

    assert result is out
    np.testing.assert_array_equal(to_numpy(out), expected)


@pytest.mark.parametrize("name", list(CALLS))
def test_out_may_be_the_first_input(name: str) -> None:
    x, y, z = _arrays(np, (3, 2, 5), 3)
    steps = np.array([1, 500, 999])
    expected = CALLS[name](x, y, z, steps)

    result = CALLS[name](x, y, z, steps, out=x)

    assert result is x
    np.testing.assert_array_equal(x, expected)


def test_out_of_another_shape_or_dtype_is_refused() -> None:
    x, y = _arrays(np, (3, 2, 5), 2)
    with pytest.raises(ValueError, match=r"out must have the shape of x_0"):
        diffcore.q_sample(SCHEDULE, x, 3, y, out=np.empty((3, 2, 4), np.float32))
    with pytest.raises(TypeError, match=r"out must have the dtype of x_0"):
        diffcore.q_sample(SCHEDULE, x, 3, y, out=np.empty((3, 2, 5)))


# -- the blocked NumPy kernel --------------------------------------------------

# Each shape is laid out differently: one whole-array call, several short
# rows per block, one row per piece, rows cut into pieces with a short last
# one, and (from THREADED elements, on 3 threads) rows cut into blocks or
# two rows to a block, in shares.
SHAPES = [
    (4, 3, 5),
    (9, 3, 64, 64),
    (6, 2, 200, 200),
    (2, 3, 300, 300),
    (5, 1, 512, 512),
    (20, 1, 256, 256),
]


def _plain(terms: list[tuple[Any, np.ndarray[Any, Any]]]) -> np.ndarray[Any, Any]:
    """The whole-array form: the first product, then each product added."""
    (coef, first), rest = terms[0], terms[1:]
    total = np.multiply(first, coef)
    for coef, array in rest:
        total = np.add(total, np.multiply(array, coef))
    return total


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", ["1", "3"])
def test_blocks_and_threads_give_the_whole_array_form_bit_for_bit(
    shape: tuple[int, ...], dtype: Any, threads: str
) -> None:
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    per_sample = rng.random((shape[0],) + (1,) * (len(shape) - 1)).astype(dtype)
    terms = [(per_sample, arrays[0]), (-0.3, arrays[1]), (dtype(2.5), arrays[2])]

    out = np.full(shape, np.nan, dtype=dtype)
    result = _blocked.linear(terms, out, int(threads))

    assert result is out
    np.testing.assert_array_equal(out, _plain(terms))


@pytest.mark.parametrize("rows", [8, 64])  # long rows in pieces; short in blocks
def test_large_arrays_are_shared_among_threads(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    original = _blocked._shares

    def counting(work: list[Any], count: int) -> list[list[Any]]:
        shares = original(work, count)
        seen.append(len(shares))
        return shares

    monkeypatch.setattr(_blocked, "_shares", counting)
    x = np.ones((rows, _blocked.THREADED // rows), dtype=np.float32)
    for setting, expected in (("1", 1), ("2", 2), ("3", 3)):
        seen.clear()
        monkeypatch.setenv(_blocked.ENV, setting)
        out = diffcore.q_sample(SCHEDULE, x, 3, x)
        assert seen == [expected]
        one = diffcore.q_sample(SCHEDULE, x[:1], 3, x[:1])  # whole-array path
        np.testing.assert_array_equal(out, np.broadcast_to(one, out.shape))


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "+2", "\u0663"])
@pytest.mark.parametrize("size", [4, _blocked.THREADED])
def test_a_bad_thread_count_is_named_whatever_the_size(
    value: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_blocked.ENV, value)
    x = np.ones(size, dtype=np.float32)
    with pytest.raises(
        ValueError, match=rf"DIFFCORE_NUM_THREADS .* got {re.escape(repr(value))}"
    ):
        diffcore.q_sample(SCHEDULE, x, 3, x)


def test_an_empty_thread_count_means_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_blocked.ENV, " ")
    assert _blocked.threads() == min(_blocked._usable_cpus(), 4)


def test_threads_calling_at_once_with_growing_pools_get_right_answers() -> None:
    # Arrays of different sizes need pools of different sizes; a pool replaced
    # while another thread handed it work used to raise RuntimeError (this test
    # caught that in about one run in five).
    arrays = [np.ones((n, _blocked.BLOCK), np.float32) for n in (8, 16, 24, 32)]
    start = threading.Barrier(len(arrays))
    failures: list[BaseException] = []

    def work(x: np.ndarray[Any, Any]) -> None:
        start.wait()
        try:
            for count in (2, 3, 5, 8):
                out = _blocked.linear([(0.5, x), (0.25, x)], np.empty_like(x), count)
                assert np.all(out == np.float32(0.75))
        except BaseException as error:  # reported below
            failures.append(error)

    workers = [threading.Thread(target=work, args=(x,)) for x in arrays]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not failures


# -- out= overlapping an input -------------------------------------------------


def _overlapping_cases(xp: Any) -> list[tuple[str, Any, Any]]:
    """(name, call with out=, allocating call) where out is a view of an input."""
    rng = np.random.default_rng(5)
    shape = (2, 3, 4, 4)

    def fresh() -> Any:
        return xp.asarray(rng.standard_normal((2, *shape)), dtype=xp.float32)

    t = np.array([3, 700])
    cases = []
    stack = fresh()
    x_0, noise = stack[0], stack[1]
    cases.append(
        (
            "q_sample, out a view of noise",
            lambda: diffcore.q_sample(SCHEDULE, x_0, t, noise, out=stack[1]),
            lambda: diffcore.q_sample(SCHEDULE, x_0, t, noise),
        )
    )
    stack2 = fresh()
    eps, x_t = stack2[0], stack2[1]
    z = fresh()[0]
    cases.append(
        (
            "ddpm_step, out a view of x_t",
            lambda: diffcore.ddpm_step(SCHEDULE, eps, x_t, t, z, out=stack2[1]).x_prev,
            lambda: diffcore.ddpm_step(SCHEDULE, eps, x_t, t, z).x_prev,
        )
    )
    stack3 = fresh()
    eps3, x3 = stack3[0], stack3[1]
    cases.append(
        (
            "ddim_step, out a view of the model output",
            lambda: (
                diffcore.ddim_step(SCHEDULE, eps3, x3, 500, 400, out=stack3[0]).x_prev
            ),
            lambda: diffcore.ddim_step(SCHEDULE, eps3, x3, 500, 400).x_prev,
        )
    )
    return cases


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("case", range(3))
def test_out_that_overlaps_a_later_input_still_gives_the_right_answer(
    library: str, case: int
) -> None:
    if library == "torch":
        pytest.importorskip("torch", reason="torch is not installed")
        import array_api_compat.torch as xp
    else:
        xp = np
    name, with_out, allocating = _overlapping_cases(xp)[case]
    expected = to_numpy(allocating())  # computed before out overwrites anything

    result = to_numpy(with_out())

    np.testing.assert_allclose(result, expected, rtol=1e-6, err_msg=name)


def test_large_out_that_overlaps_the_noise_is_right() -> None:
    rng = np.random.default_rng(8)
    both = rng.standard_normal((2, 4, 4, 256, 256)).astype(np.float32)
    x_0, noise = both[0], both[1]
    t = np.arange(4) * 250
    expected = diffcore.q_sample(SCHEDULE, x_0, t, noise)

    diffcore.q_sample(SCHEDULE, x_0, t, noise, out=both[1])

    np.testing.assert_array_equal(both[1], expected)


def test_read_only_out_is_named() -> None:
    x = np.ones((2, 3), np.float32)
    out = np.empty_like(x)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be a writeable array"):
        diffcore.q_sample(SCHEDULE, x, 3, x, out=out)


def test_torch_out_with_inputs_that_need_gradients_is_named() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="out must be None when out or an input"):
        diffcore.q_sample(SCHEDULE, x, 3, torch.ones(2, 3), out=torch.empty(2, 3))
    with torch.no_grad():
        diffcore.q_sample(SCHEDULE, x, 3, torch.ones(2, 3), out=torch.empty(2, 3))


def test_model_outputs_that_need_gradients_give_no_warning() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    eps = torch.randn(2, 3, 4, 4, requires_grad=True)
    x_t, z = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    # filterwarnings = error: torch's scalar-conversion warning would fail here.
    diffcore.ddim_step(SCHEDULE, eps, x_t, 10, 5).x_prev.sum().backward()
    diffcore.ddpm_step(SCHEDULE, eps, x_t, 10, z).x_prev.sum().backward()
    assert eps.grad is not None


FORK_SCRIPT = """
import os, sys
import numpy as np
import diffcore
from diffcore import _blocked

x = np.ones((8, _blocked.THREADED // 8), dtype=np.float32)
s = diffcore.Schedule.linear(1000)
expected = float(diffcore.q_sample(s, x, 999, x).sum())  # starts the pool
pid = os.fork()
if pid == 0:
    got = float(diffcore.q_sample(s, x, 999, x).sum())
    os._exit(0 if got == expected else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_gets_a_working_thread_pool() -> None:
    env = {**os.environ, _blocked.ENV: "2"}
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], env=env, timeout=60, check=False
    )
    assert done.returncode == 0


def test_torch_out_overlapping_an_input_on_another_storage_is_right() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    buffer = np.arange(1, 10, dtype=np.float32)
    # Three tensors over one NumPy buffer: three storages, overlapping memory.
    x_0 = torch.from_numpy(buffer[0:4]).reshape(1, 4)
    noise = torch.from_numpy(buffer[4:8]).reshape(1, 4)
    out = torch.from_numpy(buffer[5:9]).reshape(1, 4)
    t = torch.tensor([500])
    expected = diffcore.q_sample(SCHEDULE, x_0, t, noise)

    diffcore.q_sample(SCHEDULE, x_0, t, noise, out=out)

    torch.testing.assert_close(out, expected)


def test_torch_out_that_needs_gradients_is_named() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x, out = torch.ones(2, 3), torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="out must be None when out or an input"):
        diffcore.q_sample(SCHEDULE, x, 3, x, out=out)


def test_float16_model_outputs_whose_sum_overflows_give_no_warning() -> None:
    # 70,000 ones sum past float16's largest value, 65,504; every entry is finite.
    model_output = np.ones((1, 70_000), np.float16)
    x = np.zeros_like(model_output)
    step = diffcore.ddpm_step(SCHEDULE, model_output, x, np.array([10]), x)
    assert np.all(np.isfinite(step.x_prev))
    with pytest.raises(ValueError, match="model_output must be finite"):
        model_output[0, 5] = np.inf
        diffcore.ddim_step(SCHEDULE, model_output, x, 10, 5)


@pytest.mark.parametrize("step", ["ddpm", "ddim"])
def test_x_0_hat_survives_an_out_that_is_the_model_output(step: str) -> None:
    rng = np.random.default_rng(4)
    x_0_pred, x_t, z = (rng.standard_normal((2, 3)) for _ in range(3))
    keep = x_0_pred.copy()
    if step == "ddpm":
        result = diffcore.ddpm_step(
            SCHEDULE, x_0_pred, x_t, 10, z, prediction_type="sample", out=x_0_pred
        )
    else:
        result = diffcore.ddim_step(
            SCHEDULE, x_0_pred, x_t, 10, 5, prediction_type="sample", out=x_0_pred
        )
    np.testing.assert_array_equal(result.x_0_hat, keep)
    assert result.x_prev is x_0_pred


@pytest.mark.parametrize("order", ["F", "strided"])
def test_large_out_in_another_layout_holds_the_allocating_result(order: str) -> None:
    rng = np.random.default_rng(9)
    x_0, noise = (
        rng.standard_normal((3, 2, 300, 300)).astype(np.float32) for _ in "ab"
    )
    t = np.array([1, 400, 999])
    if order == "F":
        out = np.empty(x_0.shape, np.float32, order="F")
    else:
        out = np.empty((3, 2, 300, 600), np.float32)[..., ::2]

    diffcore.q_sample(SCHEDULE, x_0, t, noise, out=out)

    np.testing.assert_array_equal(out, diffcore.q_sample(SCHEDULE, x_0, t, noise))


@pytest.mark.parametrize("step", ["q_sample", "ddpm_step", "ddim_step"])
def test_torch_out_whose_elements_share_memory_is_named(step: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.ones(4, 3, 5, dtype=torch.float64)
    out = torch.zeros(1, dtype=torch.float64).expand(4, 3, 5)
    calls = {
        "q_sample": lambda: diffcore.q_sample(SCHEDULE, x, 3, x, out=out),
        "ddpm_step": lambda: diffcore.ddpm_step(SCHEDULE, x, x, 3, x, out=out),
        "ddim_step": lambda: diffcore.ddim_step(SCHEDULE, x, x, 3, 1, out=out),
    }
    with pytest.raises(ValueError, match="out must have one memory location per"):
        calls[step]()
    # strided views without shared elements stay fine
    wide = torch.zeros(4, 3, 10, dtype=torch.float64)[..., ::2]
    want = diffcore.q_sample(SCHEDULE, x, 3, x)
    torch.testing.assert_close(diffcore.q_sample(SCHEDULE, x, 3, x, out=wide), want)


def test_numpy_out_whose_elements_share_memory_is_named() -> None:
    base = np.zeros(5)
    out = np.lib.stride_tricks.as_strided(base, (4, 5), (0, 8), writeable=True)
    x = np.arange(20.0).reshape(4, 5)
    with pytest.raises(ValueError, match="out must have one memory location per"):
        diffcore.q_sample(diffcore.Schedule.linear(10), x, 0, np.zeros((4, 5)), out=out)
    # a strided view without shared elements is fine
    wide = np.zeros((4, 10))[:, ::2]
    got = diffcore.q_sample(SCHEDULE, x, 3, x, out=wide)
    np.testing.assert_array_equal(got, diffcore.q_sample(SCHEDULE, x, 3, x))


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_out_whose_elements_overlap_with_nonzero_strides_is_named(library: str) -> None:
    x, noise = np.arange(16.0).reshape(4, 4), np.ones((4, 4))
    if library == "torch":
        torch = pytest.importorskip("torch", reason="torch is not installed")
        x, noise = torch.from_numpy(x), torch.from_numpy(noise)
        out = torch.zeros(7, dtype=torch.float64).as_strided((4, 4), (1, 1))
    else:
        base = np.zeros(7)
        out = np.lib.stride_tricks.as_strided(base, (4, 4), (8, 8), writeable=True)
    with pytest.raises(ValueError, match="whose elements overlap"):
        diffcore.q_sample(SCHEDULE, x, 500, noise, out=out)


LOCK_FORK_SCRIPT = """
import os, sys, threading
import numpy as np
import diffcore
from diffcore import _backends, _schedule

lock = {which}
held, release = threading.Event(), threading.Event()

def holder():
    with lock:  # as a thread loading a backend or filling a cache would
        held.set()
        release.wait(30)

threading.Thread(target=holder, daemon=True).start()
held.wait(30)
s = diffcore.Schedule.linear(10)
x = np.ones(3)
pid = os.fork()
if pid == 0:
    diffcore.q_sample(s, x, 1, x)  # deadlocked when the lock was inherited held
    os._exit(0)
release.set()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
@pytest.mark.parametrize("which", ["_backends._lock", "_schedule._CACHE_LOCK"])
def test_a_child_forked_while_a_lock_is_held_gets_a_free_one(which: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOCK_FORK_SCRIPT.format(which=which)],
        timeout=60,
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
