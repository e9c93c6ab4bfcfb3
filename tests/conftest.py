"""Shared fixtures: one ``xp`` fixture over every array library; Hypothesis profiles.

Set DIFFCORE_BACKENDS=numpy,torch (comma-separated) to narrow the libraries.
Hypothesis runs the derandomised, bounded "ci" profile unless
``--hypothesis-profile=long`` is given.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile("ci")

BACKENDS = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "torch": "array_api_compat.torch",
    "jax": "jax.numpy",
    "dask": "array_api_compat.dask.array",
    "cupy": "array_api_compat.cupy",
}
_selected = os.environ.get("DIFFCORE_BACKENDS")
SELECTED = _selected.split(",") if _selected else list(BACKENDS)


def _load(name: str) -> ModuleType:
    if name not in SELECTED:
        pytest.skip(f"{name} left out by DIFFCORE_BACKENDS={_selected}")
    if name == "jax":
        jax = pytest.importorskip("jax", reason="jax is not installed")
        jax.config.update("jax_enable_x64", True)
    if name == "cupy":
        cupy = pytest.importorskip("cupy", reason="cupy is not installed")
        if cupy.cuda.runtime.getDeviceCount() == 0:  # pragma: no cover
            pytest.skip("cupy needs a CUDA GPU; none is present")
    base = BACKENDS[name].split(".")[0]
    if base == "array_api_compat":
        pytest.importorskip(
            BACKENDS[name].split(".")[1], reason=f"{name} is not installed"
        )
    else:
        pytest.importorskip(base, reason=f"{name} is not installed")
    return importlib.import_module(BACKENDS[name])


@pytest.fixture(params=list(BACKENDS))
def xp(request: pytest.FixtureRequest) -> ModuleType:
    """The array namespace of one library (skips with a reason when absent)."""
    return _load(request.param)
