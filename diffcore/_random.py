"""Standard normal noise in the samples' own library, device and dtype.

The array API has no random numbers; this is the one place that asks a
library for them.  A backend plugin (see ``docs/backends.md``) may supply its
own; NumPy's is built in.
"""

from __future__ import annotations

from typing import Any

import array_api_compat as compat
import numpy as np

from ._arrays import Array, namespace


def standard_normal_like(x: Array, generator: Any = None) -> Array:
    """Standard normal draws with x's shape, dtype, device and namespace.

    Parameters
    ----------
    x : array
        Real floating array whose shape, dtype and device the noise takes.
    generator : optional
        The library's own source of randomness: a ``numpy.random.Generator``
        or an int seed for NumPy, a ``torch.Generator`` or an int seed for
        PyTorch.  None draws from the library's global state.

    Returns
    -------
    array
    """
    xp = namespace(x=x)
    if compat.is_numpy_array(x):
        rng = np.random.default_rng(generator)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        return rng.standard_normal(x.shape, dtype=dtype).astype(x.dtype, copy=False)
    if compat.is_torch_array(x):
        import torch

        if isinstance(generator, int):
            generator = torch.Generator(device=x.device).manual_seed(generator)
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    msg = (
        f"no random-number backend for {xp.__name__} arrays; pass noise explicitly "
        "or install the diffcore backend plugin for that library"
    )
    raise TypeError(msg)
