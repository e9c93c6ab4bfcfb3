"""CuPy backend for diffcore.

Registered under the entry-point group ``diffcore.backends`` as ``cupy``;
diffcore loads it the first time a CuPy array reaches the core.  It supplies

* noise from a ``cupy.random.Generator`` (or an int seed) on the array's
  device;
* the linear combinations of the hot paths (two terms: the closed form
  a x_0 + b eps; three terms: the posterior sample and the DDPM/DDIM update)
  as single ``ElementwiseKernel`` launches that compute in float32 for
  float16 samples and round once.

This module needs a CUDA GPU to be exercised; the test suite skips it with a
reason elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cupy
import numpy as np

from diffcore import Backend

__all__ = ["CupyBackend"]

# T is the samples' dtype, W the compute dtype (float32 for float16 samples).
_LINEAR = {
    2: cupy.ElementwiseKernel(
        "T x, W a, T y, W b",
        "T z",
        "z = (T)((W)x * a + (W)y * b)",
        "diffcore_linear2",
    ),
    3: cupy.ElementwiseKernel(
        "T x, W a, T y, W b, T w, W c",
        "T z",
        "z = (T)((W)x * a + (W)y * b + (W)w * c)",
        "diffcore_linear3",
    ),
}


def _compute_dtype(dtype: Any) -> Any:
    return np.dtype(np.float32) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)


class CupyBackend(Backend):
    """Noise and fused elementwise kernels for ``cupy.ndarray``."""

    name = "cupy"

    def seeded(self, x: Any, seed: int) -> Any:
        return cupy.random.default_rng(seed)

    def standard_normal(self, x: Any, generator: Any) -> Any:
        if generator is None or (
            isinstance(generator, (int, np.integer)) and not isinstance(generator, bool)
        ):
            generator = cupy.random.default_rng(generator)
        elif not isinstance(generator, cupy.random.Generator):
            msg = (
                "generator must be None, an int seed or a cupy.random.Generator "
                f"for CuPy arrays; got {type(generator).__module__}."
                f"{type(generator).__name__}"
            )
            raise TypeError(msg)
        draw = np.float64 if x.dtype == np.float64 else np.float32
        with x.device:
            noise = generator.standard_normal(x.shape, dtype=draw)
            return noise if noise.dtype == x.dtype else noise.astype(x.dtype)

    def may_share_memory(self, a: Any, b: Any) -> bool:
        return bool(cupy.may_share_memory(a, b))

    def linear(
        self,
        xp: Any,
        terms: Sequence[tuple[Any, Any]],
        dtype: Any,
        out: Any | None = None,
    ) -> Any:
        kernel = _LINEAR.get(len(terms))
        if kernel is None or any(array.dtype != dtype for _, array in terms):
            return super().linear(xp, terms, dtype, out)
        if out is not None and self.clobbers(out, terms):
            return super().linear(xp, terms, dtype, out)

        work = _compute_dtype(dtype)
        args: list[Any] = []
        for coef, array in terms:
            if isinstance(coef, float):
                coef = work.type(coef)
            args += [array, coef]
        with terms[0][1].device:
            if out is None:
                return kernel(*args)
            return kernel(*args, out)
