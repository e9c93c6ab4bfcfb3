"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any library to the host as NumPy (bfloat16 becomes float32)."""
    if hasattr(x, "compute"):
        x = x.compute()
    if hasattr(x, "detach"):
        import torch

        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        return x.numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def dtypes(xp: Any) -> list[Any]:
    """The real floating dtypes that xp has, half precision included."""
    names = ["float16", "bfloat16", "float32", "float64"]
    return [getattr(xp, n) for n in names if hasattr(xp, n)]


def tolerance(dtype: Any) -> float:
    """Relative tolerance for results rounded once to ``dtype``."""
    name = getattr(dtype, "__name__", str(dtype)).rsplit(".", 1)[-1]
    return {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-6, "float64": 1e-13}[
        name
    ]
