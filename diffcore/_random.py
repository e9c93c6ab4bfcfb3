"""Standard normal noise in the samples' own library, device and dtype.

The array API has no random numbers; this is the one place that asks a
library for them, through the library's backend (``docs/backends.md``).
"""

from __future__ import annotations

from typing import Any

from ._arrays import Array, check_floating, namespace
from ._backends import backend_for, library


def standard_normal_like(x: Array, generator: Any = None, *, key: Any = None) -> Array:
    """Standard normal draws N(0, I) with x's shape, dtype, device and namespace.

    .. math::

        \\epsilon \\sim \\mathcal N(0, I), \\qquad \\epsilon \\in
        \\mathbb R^{\\text{x.shape}}

    Parameters
    ----------
    x : array
        Real floating array (float16, bfloat16, float32 or float64) whose
        shape, dtype and device the noise takes.
    generator : optional
        The library's own source of randomness: a ``numpy.random.Generator``
        or int seed (NumPy, array-api-strict, Dask, which also takes a
        ``dask.array.random.Generator``), a ``torch.Generator`` on x's device
        or int seed (PyTorch), a ``cupy.random.Generator`` or int seed (CuPy),
        an int seed (JAX).  None draws from the library's global state.
    key : JAX PRNG key, optional
        JAX's spelling of the source of randomness (``jax.random.key(0)``);
        JAX has no global state, so JAX arrays need ``key`` or an int seed.

    Returns
    -------
    array
        The same seed gives the same noise on the same backend; different
        backends (and, for Dask, different chunkings) give different draws.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> noise = diffcore.standard_normal_like(np.zeros((2, 3)), generator=0)
    >>> noise.shape, noise.dtype
    ((2, 3), dtype('float64'))
    """
    xp = namespace(x=x)
    check_floating(xp, "x", x)
    if key is not None:
        if generator is not None:
            msg = "pass one of generator and key, not both; got both"
            raise TypeError(msg)
        if library(x) != "jax":
            msg = (
                f"key is JAX's source of randomness; x is a {library(x)} array, "
                "so pass generator instead"
            )
            raise TypeError(msg)
        generator = key
    _check_seed("key" if key is not None else "generator", generator)
    return backend_for(x).standard_normal(x, generator)


def _check_seed(name: str, seed: Any) -> None:
    """An int seed must be a non-negative 63-bit integer on every backend."""
    if isinstance(seed, bool):
        msg = f"{name} must be a seed, a generator or None; got the bool {seed}"
        raise TypeError(msg)
    if isinstance(seed, int) and not 0 <= seed < 2**63:
        msg = f"{name} as an int seed must lie in [0, 2**63); got {seed}"
        raise ValueError(msg)
