"""Standard normal noise in the samples' own library, device and dtype.

The array API has no random numbers; this is the one place that asks a
library for them, through the library's backend (``docs/backends.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import array_api_compat as compat
import numpy as np

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
    # The argument passed, or JAX's spelling when neither was.
    name = "generator" if generator is not None and key is None else "key"
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
    generator = check_seed(name, generator)
    if compat.is_jax_array(x):
        generator = check_jax_key(name, generator)
    return backend_for(x).standard_normal(x, generator)


def check_seed(name: str, seed: Any) -> Any:
    """An integer seed as a Python int in [0, 2**63); anything else unchanged.

    Every integer type counts (``numpy.int64`` like ``int``), bools do not.
    """
    if isinstance(seed, (bool, np.bool_)):
        # key= is JAX's spelling of the source: it takes no generator object.
        if name == "key":
            accepted = "a JAX PRNG key or an int seed"
        else:
            accepted = "a seed, a generator or None"
        msg = f"{name} must be {accepted}; got the bool {seed}"
        raise TypeError(msg)
    if not isinstance(seed, (int, np.integer)):
        return seed
    if not 0 <= seed < 2**63:
        msg = f"{name} as an int seed must lie in [0, 2**63); got {seed}"
        raise ValueError(msg)
    return int(seed)


def check_jax_key(name: str, key: Any) -> Any:
    """One JAX PRNG key, from a key or an int seed; name is the argument's.

    A typed key (``jax.random.key``) has shape (); a raw one
    (``jax.random.PRNGKey``) is uint32 of the default implementation's
    key-data shape, (2,) for threefry.  Anything else, a batch of keys
    included, is refused.
    """
    import jax

    if is_seed(key):
        return jax.random.key(int(key))
    if not isinstance(key, jax.Array):
        got = "nothing" if key is None else type(key).__name__
        msg = (
            f"{name} must be a JAX PRNG key (jax.random.key(seed)) or an int seed "
            f"for JAX arrays, which have no global random state; got {got}"
        )
        raise TypeError(msg)
    typed = jax.numpy.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not typed and key.dtype != jax.numpy.uint32:
        msg = f"{name} must be a JAX PRNG key; got an array of dtype {key.dtype}"
        raise TypeError(msg)
    # JAX's Config sets its flags as attributes at run time, untyped.
    impl = jax.config.jax_default_prng_impl  # type: ignore[attr-defined]
    data = () if typed else _raw_key_shape(impl)
    shape, size = tuple(key.shape), len(data)
    if size and shape[len(shape) - size :] != data:
        msg = (
            f"{name} as raw JAX key data must have shape {data}; got shape {shape} "
            "(make one with jax.random.key(seed) or jax.random.PRNGKey(seed))"
        )
        raise ValueError(msg)
    batch = shape[: len(shape) - size]
    if batch:
        msg = (
            f"{name} must be a single JAX PRNG key; got a batch of keys of shape "
            f"{batch} (pass one of them, such as {name}[0])"
        )
        raise ValueError(msg)
    return key


@functools.cache
def _raw_key_shape(impl: str) -> tuple[int, ...]:
    """The key-data shape of JAX's default PRNG implementation, named impl.

    Read from the shape of ``jax.random.PRNGKey``, traced without running.
    """
    import jax

    return tuple(jax.eval_shape(jax.random.PRNGKey, 0).shape)


def is_seed(value: Any) -> bool:
    """Whether value is an integer seed (any integer type, never a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def noise_stream(x: Array, generator: Any) -> Callable[[Array], Array]:
    """Fresh standard normal draws like x on each call, from one source.

    An integer seed starts one stream in x's library; a JAX key (or a seed
    for JAX arrays) is split before every draw, so no two draws share a key;
    a generator object is drawn from in turn.
    """
    generator = check_seed("generator", generator)
    if library(x) == "jax":
        if generator is None:
            # JAX has no global random state: the first draw is refused.
            return lambda like: check_jax_key("generator", None)
        return _jax_stream(check_jax_key("generator", generator))
    if isinstance(generator, int):
        generator = backend_for(x).seeded(x, generator)
    return lambda like: standard_normal_like(like, generator)


def _jax_stream(key: Any) -> Callable[[Array], Array]:
    """Draws from one JAX key (checked) split once per draw (jax.random.split)."""
    import jax

    state = [key]

    def draw(like: Array) -> Array:
        state[0], sub = jax.random.split(state[0])
        return standard_normal_like(like, sub)

    return draw
