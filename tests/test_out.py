"""``out=``: writing into a caller's array gives what allocating gives.

Also the NumPy kernel behind it (``diffcore._blocked``): cache-sized blocks
shared among threads must give the whole-array form bit for bit, whatever the
block layout, the number of threads or the dtype, and must survive ``fork``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import _blocked
from tests._helpers import to_numpy

SCHEDULE = diffcore.Schedule.linear(1000)
IMMUTABLE = ("jax", "array_api_compat.dask")


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

# Each shape is laid out differently: one whole-array call, several rows per
# block, rows cut into blocks with a short last one, and shares for threads.
SHAPES = [
    (4, 3, 5),
    (9, 3, 64, 64),
    (2, 3, 300, 300),
    (5, 1, 512, 512),
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
    shape: tuple[int, ...], dtype: Any, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_blocked.ENV, threads)
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    per_sample = rng.random((shape[0],) + (1,) * (len(shape) - 1)).astype(dtype)
    terms = [(per_sample, arrays[0]), (-0.3, arrays[1]), (dtype(2.5), arrays[2])]

    out = np.full(shape, np.nan, dtype=dtype)
    result = _blocked.linear(terms, out)

    assert result is out
    np.testing.assert_array_equal(out, _plain(terms))


def test_large_arrays_are_shared_among_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    combine = _blocked._combine_blocks

    def counting(*args: Any) -> None:
        seen.append(len(args[-1]))
        combine(*args)

    monkeypatch.setattr(_blocked, "_combine_blocks", counting)
    monkeypatch.setenv(_blocked.ENV, "2")
    x = np.ones((8, _blocked.THREADED // 8), dtype=np.float32)
    _blocked.linear([(0.5, x), (0.25, x)], np.empty_like(x))
    assert len(seen) == 2 and seen[0] == seen[1]

    seen.clear()
    monkeypatch.setenv(_blocked.ENV, "1")
    _blocked.linear([(0.5, x), (0.25, x)], np.empty_like(x))
    assert len(seen) == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_is_named(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_blocked.ENV, value)
    x = np.ones(_blocked.THREADED, dtype=np.float32)
    with pytest.raises(ValueError, match=rf"DIFFCORE_NUM_THREADS .* got '{value}'"):
        diffcore.q_sample(SCHEDULE, x, 3, x)


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
