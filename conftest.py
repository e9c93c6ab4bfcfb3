"""Doctest collection of ``diffcore/`` skips the Numba kernel module without Numba."""

import importlib.util

collect_ignore = (
    [] if importlib.util.find_spec("numba") else ["diffcore/_numba_kernels.py"]
)
