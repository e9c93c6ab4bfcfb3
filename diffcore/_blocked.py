"""NumPy linear combinations in cache-sized blocks, shared among threads.

NumPy has no fused multiply-add, so sum_i c_i x_i takes one ufunc per product
and one per sum.  Done over whole arrays, each ufunc streams every operand
through memory again; done block by block, the block of the result and one
scratch block stay in a core's cache between the ufuncs, and only the inputs
and the result cross memory.  Large arrays are also split into one
contiguous share of blocks per thread: ufuncs release the GIL, so the shares
run in parallel.  On one thread, long rows are cut into one-dimensional pieces
with Python-float coefficients instead (NumPy's fastest loops: 2.4 copies of
the input at 16 MiB against 2.5 for two-dimensional blocks with a column of
coefficients; with threads, the pieces' twice as many ufunc calls contend for
the GIL and lose).  Every element goes through the same ufuncs in the same order
whatever the split, so the result is bit-identical to the whole-array form.
With Numba installed, arrays of ``THREADED`` elements or more take the
one-pass kernel of ``diffcore._fused`` instead (bit-identical as well).

``DIFFCORE_NUM_THREADS`` sets the number of threads (1 turns threading off);
by default it is the number of CPUs this process may use, at most 4.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

Terms = Sequence[tuple[Any, Any]]
Block = tuple[slice, slice]

# Elements per block: a block of the result and the scratch block (2 x 512 KiB
# in float32) fit together in one core's L2 cache (2 MiB here).  Measured on
# the development machine: 2^16 and 2^17 tie on one thread; with two threads
# 2^17 is fastest (each ufunc call takes the GIL, so fewer calls contend less).
BLOCK = 1 << 17
# Arrays of at least this many elements (4 MiB of float32) use threads; below
# it, handing work to a thread costs more than it saves.
THREADED = 1 << 20
# On one thread, rows at least this long are cut into one-dimensional pieces
# with Python-float coefficients; otherwise rows go to two-dimensional blocks.
SEGMENT = BLOCK // 4
ENV = "DIFFCORE_NUM_THREADS"
NUMBA_ENV = "DIFFCORE_NUMBA"

_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()
# One scratch block per thread and dtype, kept: a fresh one of this size would
# come from mmap and fault in its pages on every call.
_local = threading.local()


# TODO(#7): without Numba, 1.7-2.5 copies at 16 MiB in benchmarks/run.py
# (target 2.0): three ufunc passes per block, as NumPy has no fused
# multiply-add, and one thread alone measures 2.7.
def linear(
    terms: Terms, out: np.ndarray[Any, Any], count: int = 1, fused: bool = False
) -> np.ndarray[Any, Any]:
    """out = sum_i c_i x_i with NumPy ufuncs, block by block for large arrays.

    Coefficients are Python floats or arrays of shape (B, 1, ..., 1) for
    arrays of shape (B, ...) in out's dtype; anything else, and any array
    that is not C-contiguous, takes the whole-array path.  Arrays of
    THREADED elements or more are shared among ``count`` threads, or go to
    the Numba kernel when ``fused`` (``numba_wanted()``) and Numba is there.

    Overflow gives inf and inf - inf NaN without NumPy's RuntimeWarning, as
    in the Numba kernel and in torch: whether a warning came would depend on
    the array's size and the path it took.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _linear(terms, out, count, fused)


def _linear(
    terms: Terms, out: np.ndarray[Any, Any], count: int, fused: bool
) -> np.ndarray[Any, Any]:
    if out.size > BLOCK and not out.flags.c_contiguous and _contiguous(terms):
        # Formed in C order and copied across once: ufuncs that write a
        # Fortran-ordered out from C-ordered inputs are many times slower.
        fresh = np.empty(out.shape, out.dtype)
        np.copyto(out, _linear(terms, fresh, count, fused))
        return out
    rows = None if out.size <= BLOCK else _rows(terms, out)
    if rows is None:
        _ufunc_linear(terms, out)
        return out

    coefs, flat = rows
    if fused and out.size >= THREADED:
        from . import _fused  # imported with the first large array

        columns = np.stack([c.reshape(-1) for c in coefs])
        if _fused.linear(columns, [array for _, array in terms], out, count):
            return out
    batch, width = flat.shape
    count = count if out.size >= THREADED else 1
    work: list[Any]
    if width >= SEGMENT and count == 1:
        # Long rows on one thread: one-dimensional pieces (with threads, their
        # twice as many ufunc calls contend for the GIL and lose: measured).
        scalars = [c.ravel().tolist() for c in coefs]
        flats = [array.reshape(-1) for _, array in terms]
        work = _pieces(batch, width)
        run = functools.partial(_combine_pieces, scalars, flats, out.reshape(-1))
    else:
        views = [array.reshape(flat.shape) for _, array in terms]
        work = _blocks(flat.shape)
        run = functools.partial(_combine_blocks, coefs, views, flat)
    shares = _shares(work, count)
    if len(shares) == 1:
        run(shares[0])
        return out

    futures = _submit(functools.partial(_quietly, run), shares[1:])
    try:
        run(shares[0])
    finally:
        for future in futures:
            future.result()
    return out


def _quietly(run: Any, share: Any) -> None:
    """``run(share)`` in a pool thread, under ``linear``'s error state.

    NumPy's error state lives in a context variable, which a pool thread
    does not inherit from the caller.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        run(share)


def numba_wanted() -> bool:
    """Whether ``DIFFCORE_NUMBA`` allows the Numba kernel (unset: yes)."""
    value = os.environ.get(NUMBA_ENV, "").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    msg = (
        f"the environment variable {NUMBA_ENV} must be 0 (off) or 1 (on, the "
        f"default when Numba is installed); got {value!r}"
    )
    raise ValueError(msg)


def threads() -> int:
    """Threads for large combinations: ``DIFFCORE_NUM_THREADS`` or the CPUs (<= 4)."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return min(_usable_cpus(), 4)
    count = int(value) if value.isascii() and value.isdigit() else 0
    if count < 1:
        msg = (
            f"the environment variable {ENV} must be a positive integer written "
            f"in digits, such as 2 (1 turns threading off); got {value!r}"
        )
        raise ValueError(msg)
    return count


@functools.cache
def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _submit(run: Any, shares: list[list[Block]]) -> list[Future[None]]:
    """Hand each share to the pool, grown first when it has too few threads.

    Submitting under the lock means no thread can hand work to a pool that
    another thread has just replaced (and shut down).
    """
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] < len(shares):
            from concurrent.futures import ThreadPoolExecutor

            if _pool is not None:
                _pool[1].shutdown(wait=False)
            name = "diffcore-linear"
            pool = ThreadPoolExecutor(len(shares), thread_name_prefix=name)
            _pool = (len(shares), pool)
        return [_pool[1].submit(run, share) for share in shares]


def _forget_pool() -> None:
    """After fork the child has none of the parent's threads: start afresh."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _blocks(shape: tuple[int, int]) -> list[Block]:
    """(rows, columns) slices of a (B, N) array, each at most BLOCK elements."""
    batch, width = shape
    if width >= BLOCK:
        return [
            (slice(r, r + 1), slice(lo, lo + BLOCK))
            for r in range(batch)
            for lo in range(0, width, BLOCK)
        ]
    step = max(1, BLOCK // width)
    return [(slice(lo, lo + step), slice(None)) for lo in range(0, batch, step)]


def _pieces(batch: int, width: int) -> list[tuple[int, int, int]]:
    """(row, start, stop) of a flattened (B, N) array, within rows, <= BLOCK."""
    return [
        (r, r * width + lo, r * width + min(lo + BLOCK, width))
        for r in range(batch)
        for lo in range(0, width, BLOCK)
    ]


def _shares(blocks: list[Any], count: int) -> list[list[Any]]:
    """The blocks in at most ``count`` contiguous shares of near-equal length."""
    size = math.ceil(len(blocks) / max(1, count))
    return [blocks[lo : lo + size] for lo in range(0, len(blocks), size)]


def _combine_blocks(
    coefs: list[Any],
    views: list[np.ndarray[Any, Any]],
    flat: np.ndarray[Any, Any],
    blocks: list[Block],
) -> None:
    """The blocks of out = sum_i c_i x_i, in order, through this thread's scratch.

    Python time here holds the GIL that the other threads' ufuncs need, so the
    loop does nothing per block beyond slicing and the ufuncs themselves.
    """
    scratch = _scratch(flat.dtype)
    (c_0, x_0), rest = (
        (coefs[0], views[0]),
        list(zip(coefs[1:], views[1:], strict=True)),
    )
    for rows, columns in blocks:
        out = flat[rows, columns]
        np.multiply(x_0[rows, columns], c_0[rows], out=out)
        tmp = scratch[: out.size].reshape(out.shape)
        for c_i, x_i in rest:
            np.multiply(x_i[rows, columns], c_i[rows], out=tmp)
            np.add(out, tmp, out=out)


def _combine_pieces(
    scalars: list[list[float]],
    flats: list[np.ndarray[Any, Any]],
    out: np.ndarray[Any, Any],
    pieces: list[tuple[int, int, int]],
) -> None:
    """Pieces (row, start, stop) of the flattened out = sum_i c_i x_i."""
    scratch = _scratch(out.dtype)
    (c_0, x_0), rest = (
        (scalars[0], flats[0]),
        list(zip(scalars[1:], flats[1:], strict=True)),
    )
    for row, start, stop in pieces:
        part = out[start:stop]
        np.multiply(x_0[start:stop], c_0[row], out=part)
        tmp = scratch[: stop - start]
        for c_i, x_i in rest:
            np.multiply(x_i[start:stop], c_i[row], out=tmp)
            np.add(part, tmp, out=part)


def _scratch(dtype: Any) -> np.ndarray[Any, Any]:
    """This thread's scratch block of ``dtype`` (BLOCK elements)."""
    blocks: dict[Any, np.ndarray[Any, Any]] = getattr(_local, "blocks", None) or {}
    _local.blocks = blocks
    found = blocks.get(dtype)
    if found is None:
        found = blocks[dtype] = np.empty(BLOCK, dtype=dtype)
    return found


def _contiguous(terms: Terms) -> bool:
    return all(array.flags.c_contiguous for _, array in terms)


def _rows(
    terms: Terms, out: np.ndarray[Any, Any]
) -> tuple[list[Any], np.ndarray[Any, Any]] | None:
    """Coefficients as (B, 1) columns and out as a (B, N) view, when possible."""
    if out.ndim == 0 or not out.flags.c_contiguous or not _contiguous(terms):
        return None
    batch = out.shape[0]
    coefs: list[Any] = []
    for coef, _ in terms:
        if isinstance(coef, float) or (coef.dtype == out.dtype and coef.ndim == 0):
            coefs.append(np.full((batch, 1), coef, dtype=out.dtype))
        elif coef.dtype == out.dtype and coef.shape[0] == coef.size == batch:
            coefs.append(coef.reshape(batch, 1))
        else:
            return None
    return coefs, out.reshape(batch, -1)


def _ufunc_linear(terms: Terms, out: np.ndarray[Any, Any]) -> None:
    """out = sum_i c_i x_i with one temporary, the first product written in place."""
    (coef, first), rest = terms[0], terms[1:]
    np.multiply(first, coef, out=out)
    if not rest:
        return
    if out.size <= BLOCK:
        tmp = _scratch(out.dtype)[: out.size].reshape(out.shape)
    else:
        tmp = np.empty_like(out)
    for coef, array in rest:
        np.multiply(array, coef, out=tmp)
        np.add(out, tmp, out=out)
