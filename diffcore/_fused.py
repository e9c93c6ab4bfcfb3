"""Large NumPy linear combinations in one pass, when Numba is installed.

NumPy has no fused multiply-add, so the blocked form (``diffcore._blocked``)
still runs three ufuncs over every block.  With Numba installed (``pip
install numba``, or the ``fast`` extra), a combination of ``MIN_SIZE``
elements or more runs as one parallel loop instead: each slice of the result
is formed while it sits in cache, and only the inputs and the result cross
memory (1.3-1.6 copies of one input at 16 MiB against 1.7-2.5 blocked, in
``make bench`` here).

The products and sums are done in NumPy's order, ((c_0 x_0) + c_1 x_1) +
..., each rounded to the arrays' dtype, with no fused multiply-add, so the
result is bit-identical to the blocked path.

* ``DIFFCORE_NUMBA=0`` turns it off (``1``, the default, uses Numba when it
  imports); ``DIFFCORE_NUM_THREADS`` caps its threads, as for the blocked
  path.
* The first large combination in a process imports Numba (about 0.3 s) and
  loads the kernel from Numba's disk cache (about 0.5 s), or compiles it
  (1-2 s per dtype and number of terms) the very first time.
* A second thread that arrives while the kernel runs takes the blocked path
  instead of waiting (Numba's workqueue threading layer refuses concurrent
  parallel launches), and so does a child forked after the kernel ran (GNU
  OpenMP, Numba's usual threading layer on Linux, is not fork-safe).
* PyTorch tensors keep torch's own kernels: interleaved with torch ops, whose
  OpenMP threads spin on the same cores after each op, the kernel measured
  1.75 copies against torch's 1.86 at 16 MiB, no gain worth a second path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _blocked

ENV = _blocked.NUMBA_ENV
# From 4 MiB of float32; below it Numba's thread start-up and argument
# typing cost more than the pass they save (measured: no gain at 768 KiB).
MIN_SIZE = 1 << 20
# Shorter rows (samples) take the blocked path: the kernel's loop visits each
# row once, which cost 2x the blocked path for rows of one element (same time
# for rows of 4, 2-6x faster from 16).
MIN_WIDTH = 4
# Elements per task of the parallel loop (256 KiB of float32).
CHUNK = 1 << 16
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_state: dict[str, Any] = {}
_lock = threading.Lock()


def available() -> bool:
    """Whether the Numba kernel can run here (Numba imports and JIT is on)."""
    return _kernels() is not None


def _kernels() -> Any:
    if "kernels" not in _state:
        kernels: Any
        try:
            from diffcore import _numba_kernels as kernels
        except ImportError:  # Numba missing, or built for another NumPy
            kernels = None
        if kernels is not None and kernels.disabled:
            kernels = None  # NUMBA_DISABLE_JIT: the loop would run in Python
        _state["kernels"] = kernels
    return _state["kernels"]


def linear(
    coefs: np.ndarray[Any, Any],
    arrays: Sequence[np.ndarray[Any, Any]],
    out: np.ndarray[Any, Any],
    threads: int,
) -> bool:
    """out = sum_k coefs[k, row] arrays[k] in one pass; False if not done.

    ``arrays`` and ``out`` are C-contiguous arrays of one float32 or float64
    dtype and one shape (B, ...); ``coefs`` is (len(arrays), B) in that
    dtype.  ``out`` may be ``arrays[0]`` but must overlap no other array.
    False means the caller must do the work: the array or its rows are
    small, Numba is unavailable, the kernel is busy in another thread, or
    this is a forked child.  The caller reads ``DIFFCORE_NUMBA``.
    """
    if out.size < MIN_SIZE or _state.get("forked"):
        return False
    kernels = _kernels()
    if kernels is None or out.dtype not in DTYPES or out.ndim == 0:
        return False
    # Numba types read-only and writeable arrays differently; one read-only
    # view of each input makes the tuple's type the same in every call.
    flats = tuple(_read_only(array) for array in arrays)
    width = out.size // out.shape[0]
    if width < MIN_WIDTH:
        return False  # the loop steps row by row: rows of 1 took 2x the blocks
    if not _lock.acquire(blocking=False):
        return False
    try:
        # Marked before the launch: a fork from another thread while the
        # first kernel runs must already keep the child off the kernel.
        _state["launched"] = True
        before = kernels.get_num_threads()
        kernels.set_num_threads(max(1, min(threads, kernels.max_threads)))
        try:
            kernels.combine(coefs, flats, out.reshape(-1), width, CHUNK)
        finally:
            kernels.set_num_threads(before)
    finally:
        _lock.release()
    return True


def _read_only(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    view = array.reshape(-1).view()
    view.flags.writeable = False
    return view


def _after_fork() -> None:
    """A forked child keeps off the kernel if the parent started its threads."""
    global _lock
    _lock = threading.Lock()
    if _state.get("launched"):
        _state["forked"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
