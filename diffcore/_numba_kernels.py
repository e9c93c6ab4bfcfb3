"""The one-pass kernel behind ``diffcore._fused``; imported only with Numba.

Kept apart so that Numba's on-disk cache (keyed by this file) holds the
compiled kernel, and so that nothing else in diffcore imports Numba.
"""

from __future__ import annotations

from typing import Any

import numba


def _combine(
    coefs: Any, arrays: Any, out: Any, width: int, chunk: int
) -> None:  # pragma: no cover - compiled by Numba
    """out = sum_k coefs[k, row] * arrays[k], over flat C-ordered arrays.

    ``width`` elements make a row (one sample); ``chunk`` elements make one
    task of the parallel loop.  Within a task the row is cut into slices, so
    the element loops start at index 0 and vectorise, and each product is
    added to the slice of ``out`` while it is still in cache, in the order
    NumPy's ufuncs use: ((c_0 x_0) + c_1 x_1) + ...
    """
    size = out.size
    for task in numba.prange((size + chunk - 1) // chunk):
        lo = task * chunk
        hi = min(lo + chunk, size)
        row = lo // width
        while lo < hi:
            stop = min(hi, (row + 1) * width)
            part = out[lo:stop]
            first = arrays[0][lo:stop]
            coef = coefs[0, row]
            for j in range(part.size):
                part[j] = coef * first[j]
            for k in range(1, len(arrays)):
                array = arrays[k][lo:stop]
                coef = coefs[k, row]
                for j in range(part.size):
                    part[j] = part[j] + coef * array[j]
            lo = stop
            row += 1


def _compiled() -> Any:
    try:
        return numba.njit(_combine, cache=True, parallel=True, nogil=True)
    except RuntimeError:  # no writable cache location: compile in memory
        return numba.njit(_combine, parallel=True, nogil=True)


_config: Any = numba.config  # its settings are set at run time
combine = _compiled()
set_num_threads = numba.set_num_threads
get_num_threads = numba.get_num_threads
max_threads: int = _config.NUMBA_NUM_THREADS
disabled: bool = bool(_config.DISABLE_JIT)
