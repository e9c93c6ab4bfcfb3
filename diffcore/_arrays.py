"""Namespaces, timesteps and coefficient gathering at the public edge.

Everything here runs once per public call.  The rules it enforces are listed in
``docs/arrays.md``; in short:

* arrays are recognised through array-api-compat, without importing any
  framework;
* timesteps are integers, never floats, and never wrap around;
* timesteps that can be read cheaply (Python ints, NumPy arrays, CPU tensors)
  are range-checked and raise; timesteps that live on an accelerator, inside a
  trace or in a lazy graph are not read (that would synchronise the device):
  an out-of-range entry there turns that sample's coefficients into NaN;
* coefficients come from float64 tables, rounded once to the compute dtype,
  which is the sample dtype, or float32 for float16/bfloat16 samples.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import array_api_compat as compat
import numpy as np

from ._backends import backend_for

if TYPE_CHECKING:
    from ._schedule import Schedule

Array = Any
Namespace = Any

_NUMPY_IS_COMPLIANT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def namespace(**arrays: Array) -> Namespace:
    """Return the one array namespace shared by the named arrays.

    Raises a TypeError naming the arrays when they come from different
    libraries or when one of them is not an array at all.
    """
    libraries = {}
    for name, value in arrays.items():
        if not compat.is_array_api_obj(value) or isinstance(value, (int, float)):
            msg = (
                f"{name} must be an array (NumPy, PyTorch, CuPy, JAX, Dask or "
                f"array-api-strict); got {type(value).__name__}"
            )
            raise TypeError(msg)
        libraries[name] = type(value)

    if len(set(libraries.values())) > 1:
        sides = ", ".join(
            f"{n} is {t.__module__}.{t.__name__}" for n, t in libraries.items()
        )
        msg = f"arrays must come from one library; got {sides}"
        raise TypeError(msg)

    first = next(iter(arrays.values()))
    if _NUMPY_IS_COMPLIANT and compat.is_numpy_array(first):
        return np
    return compat.array_namespace(first)


def check_like(xp: Namespace, reference: str, **arrays: Array) -> None:
    """Check that every named array has the reference's shape, dtype and device."""
    ref = arrays[reference]
    for name, value in arrays.items():
        if name == reference:
            continue
        if tuple(value.shape) != tuple(ref.shape):
            msg = (
                f"{name} must have the shape of {reference}, {tuple(ref.shape)}; "
                f"got {tuple(value.shape)}"
            )
            raise ValueError(msg)
        if value.dtype != ref.dtype:
            msg = (
                f"{name} must have the dtype of {reference}, {ref.dtype}; "
                f"got {value.dtype}"
            )
            raise TypeError(msg)
        if compat.device(value) != compat.device(ref):
            msg = (
                f"{name} must be on the device of {reference}, "
                f"{compat.device(ref)}; got {compat.device(value)}"
            )
            raise ValueError(msg)


def check_floating(xp: Namespace, name: str, x: Array) -> None:
    """Raise a TypeError unless x has a real floating dtype."""
    if not xp.isdtype(x.dtype, "real floating"):
        msg = f"{name} must have a real floating dtype; got {x.dtype}"
        raise TypeError(msg)


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """The dtype in which arithmetic on samples of ``dtype`` is carried out."""
    if xp.finfo(dtype).bits < 32:
        return xp.float32
    return dtype


def upcast(xp: Namespace, x: Array) -> Array:
    """x in its compute dtype (a no-op for float32 and float64)."""
    dtype = compute_dtype(xp, x.dtype)
    return x if dtype == x.dtype else xp.astype(x, dtype)


def finish(xp: Namespace, value: Array, dtype: Any) -> Array:
    """Round a result computed in the compute dtype to the sample dtype, once."""
    return value if value.dtype == dtype else xp.astype(value, dtype)


@dataclass(frozen=True)
class Steps:
    """Validated timesteps for one call.

    ``host`` holds the int64 values when they could be read without touching a
    device; ``index`` is what is used to gather: a Python int, or an integer
    array on the samples' device; ``valid`` is a boolean mask on that device
    when the values could not be read (NaN poisoning), else None.
    """

    host: np.ndarray[Any, np.dtype[np.int64]] | None
    index: int | Array
    valid: Array | None
    ndim: int


def _readable(xp: Namespace, t: Array) -> bool:
    """Whether reading t's values is cheap (no device sync, no trace, no graph).

    The array's backend decides (``Backend.readable``): NumPy and
    array-api-strict arrays are, CPU tensors and JAX CPU arrays are outside a
    trace, anything on an accelerator or in a lazy graph is not.
    """
    return backend_for(t).readable(t)


def _check_range(name: str, values: np.ndarray[Any, Any], size: int) -> None:
    if values.size and (values.min() < 0 or values.max() >= size):
        msg = (
            f"{name} must lie in [0, {size}); got values from {values.min()} "
            f"to {values.max()} (negative timesteps never wrap around)"
        )
        raise ValueError(msg)


def _check_shape(name: str, ndim: int, shape: tuple[int, ...], x: Array) -> None:
    if ndim == 0:
        return
    if ndim > 1 or x.ndim == 0 or shape[0] != x.shape[0]:
        batch = x.shape[0] if x.ndim else "none (x is 0-d)"
        msg = (
            f"{name} must be a scalar or have shape (B,) with B = x.shape[0] "
            f"= {batch}; got shape {shape}"
        )
        raise ValueError(msg)


def timesteps(xp: Namespace, t: Any, size: int, x: Array, name: str = "t") -> Steps:
    """Validate integer timesteps t for samples x against a table of ``size``."""
    if isinstance(t, bool) or isinstance(t, np.bool_):
        msg = f"{name} must be an integer timestep; got the bool {t}"
        raise TypeError(msg)
    if isinstance(t, (int, np.integer)):
        value = operator.index(t)
        if not 0 <= value < size:
            msg = (
                f"{name} must lie in [0, {size}); got values from {value} to "
                f"{value} (negative timesteps never wrap around)"
            )
            raise ValueError(msg)
        return Steps(np.asarray(value, dtype=np.int64), value, None, 0)
    if isinstance(t, float):
        msg = f"{name} must be an integer timestep; got the float {t!r}"
        raise TypeError(msg)

    if isinstance(t, (list, tuple)) or compat.is_numpy_array(t):
        host = np.asarray(t)
        return _host_steps(xp, host, size, x, name)

    if not compat.is_array_api_obj(t):
        msg = f"{name} must be an int or an integer array; got {type(t).__name__}"
        raise TypeError(msg)

    t_xp = compat.array_namespace(t)
    if not t_xp.isdtype(t.dtype, "integral"):
        msg = f"{name} must have an integer dtype; got {t.dtype}"
        raise TypeError(msg)
    _check_shape(name, t.ndim, tuple(t.shape), x)

    if t_xp is not xp:
        # A timestep array from another library (say a CPU tensor with NumPy
        # samples) is read on the host and placed like x.
        return _host_steps(xp, np.asarray(t), size, x, name)

    if _readable(t_xp, t):
        host = np.asarray(t).astype(np.int64)
        _check_range(name, host, size)
        index = _to_device_of(xp, xp.astype(t, xp.int64), x)
        return Steps(host, index, None, t.ndim)

    index = _to_device_of(xp, xp.astype(t, xp.int64), x)
    valid = (index >= 0) & (index < size)
    index = xp.where(valid, index, xp.zeros_like(index))
    return Steps(None, index, valid, t.ndim)


def _host_steps(
    xp: Namespace, host: np.ndarray[Any, Any], size: int, x: Array, name: str
) -> Steps:
    if not np.issubdtype(host.dtype, np.integer):
        msg = f"{name} must have an integer dtype; got {host.dtype}"
        raise TypeError(msg)
    _check_shape(name, host.ndim, host.shape, x)
    _check_range(name, host, size)
    host = host.astype(np.int64)
    if xp is np:
        return Steps(host, host, None, host.ndim)
    index = xp.asarray(host, device=compat.device(x))
    return Steps(host, index, None, host.ndim)


def _to_device_of(xp: Namespace, a: Array, x: Array) -> Array:
    device = compat.device(x)
    if compat.device(a) == device:
        return a
    return compat.to_device(a, device)


def gather(
    schedule: Schedule, name: str, steps: Steps, xp: Namespace, x: Array
) -> float | Array:
    """Table ``name`` of the schedule at the timesteps, ready to broadcast on x.

    A Python int timestep gives a Python float (exact float64); an array gives
    an array of the compute dtype on x's device, shaped (B, 1, ..., 1).
    """
    table = schedule._table(name)
    if isinstance(steps.index, int):
        return float(table[steps.index])

    dtype = compute_dtype(xp, x.dtype)
    if xp is np:
        values = table[steps.index].astype(dtype, copy=False)
    else:
        device_table = backend_for(x).table(schedule, name, xp, compat.device(x), dtype)
        values = xp.take(device_table, steps.index, axis=0)
    if steps.valid is not None:
        values = xp.where(steps.valid, values, xp.asarray(xp.nan, dtype=dtype))
    return expand(xp, values, x.ndim)


def from_host(xp: Namespace, values: np.ndarray[Any, Any], x: Array) -> float | Array:
    """Coefficients computed on the host in float64, placed like ``gather``."""
    if values.ndim == 0:
        return float(values)
    dtype = compute_dtype(xp, x.dtype)
    if xp is np:
        out = values.astype(dtype)
    else:
        out = xp.asarray(values, dtype=dtype, device=compat.device(x))
    return expand(xp, out, x.ndim)


def expand(xp: Namespace, values: Array, ndim: int) -> Array:
    """Reshape per-sample values (B,) to (B, 1, ..., 1) for x of rank ndim."""
    if values.ndim == 0 or ndim <= 1:
        return values
    return xp.reshape(values, (values.shape[0],) + (1,) * (ndim - 1))
