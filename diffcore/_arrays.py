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
import reprlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import array_api_compat as compat
import numpy as np

from ._backends import backend_for, tracing

if TYPE_CHECKING:
    from ._schedule import Schedule

Array = Any
Namespace = Any

_NUMPY_IS_COMPLIANT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"

# Namespaces by array type, and (compute dtype, NumPy host dtype) by sample
# dtype: looked up on every call, found once.
_NAMESPACES: dict[type, Namespace] = {}
_INT64 = np.dtype(np.int64)
_DTYPES: dict[Any, tuple[Any, Any]] = {}
# Array types with layouts (torch.Tensor), mapped to their dense layout.
_DENSE: dict[type, Any] = {}


def shown(value: Any) -> str:
    """A value for an error message: NumPy scalars as plain numbers, long reprs cut.

    ``np.float64(-0.5)`` reads as ``-0.5``; a tuple or list shows its first
    six items so, then ``...``; anything else is ``reprlib.repr`` (an int of
    400 digits or a string of 10,000 characters is shortened).
    """
    if isinstance(value, np.generic):
        return reprlib.repr(value.item())
    if isinstance(value, (tuple, list)):
        items = [shown(v) for v in value[:_ITEMS]]
        if len(value) > _ITEMS:
            items.append(f"... ({len(value)} items)")
        inner = ", ".join(items)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if compat.is_array_api_obj(value) and not isinstance(value, np.generic):
        return _shown_array(value)
    return reprlib.repr(value)


def _shown_array(value: Array) -> str:
    """An array's repr when short, else its type, shape, dtype and device.

    ``reprlib`` cuts a long repr in the middle, which can drop the very
    word that matters (``device='meta'``).
    """
    try:
        text = repr(value)
    except Exception:  # a repr that needs data the array lacks
        text = ""
    if text and len(text) <= _REPR_CHARS and "\n" not in text:
        return text
    shape = tuple(getattr(value, "shape", ()))
    device = getattr(value, "device", None)
    where = "" if device is None or callable(device) else f" on {device}"
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return (
        f"{article} {kind} of shape {shape} and dtype "
        f"{getattr(value, 'dtype', '?')}{where}"
    )


_REPR_CHARS = 60


_ITEMS = 6


# The most float64 entries (one spare) that NumPy can address: counts of
# steps, levels, samples and history entries are held to it.  A count below
# it that exceeds memory gets NumPy's MemoryError, which names the size.
MAX_COUNT = int(np.iinfo(np.intp).max) // 16


def check_addressable(name: str, value: Any) -> None:
    """Raise a ValueError for a count beyond ``MAX_COUNT`` (checked an int)."""
    if value > MAX_COUNT:
        msg = (
            f"{name} must be at most {MAX_COUNT} (float64 arrays NumPy can "
            f"address); got {shown(value)}"
        )
        raise ValueError(msg)


def refuse_bool_items(name: str, values: Any) -> None:
    """Raise a TypeError when a list or tuple holds a bool.

    NumPy reads ``[2, True]`` as ``[2, 1]``; bools are refused everywhere
    else, so they are refused inside lists too.
    """
    if not isinstance(values, (list, tuple)):
        return
    for index, value in enumerate(values):
        # a bool, or a 0-d bool array of any library (its dtype's name says)
        dtype = str(getattr(value, "dtype", ""))
        if isinstance(value, (bool, np.bool_)) or dtype.endswith("bool"):
            msg = (
                f"{name} must hold numbers, not bools; got {shown(value)} at [{index}]"
            )
            raise TypeError(msg)
        refuse_bool_items(name, value)


def namespace(**arrays: Array) -> Namespace:
    """Return the one array namespace shared by the named arrays.

    Raises a TypeError naming the arrays when they come from different
    libraries or when one of them is not an array at all.
    """
    return namespace_of_all(arrays)


def namespace_of_all(arrays: dict[str, Array]) -> Namespace:
    """:func:`namespace` for a dict of named arrays."""
    values = iter(arrays.values())
    kind = type(next(values))
    found = _NAMESPACES.get(kind)
    if found is not None:
        for value in values:
            if type(value) is not kind:
                break
        else:
            dense = _DENSE.get(kind)
            if dense is not None:
                for name, value in arrays.items():
                    if value.layout is not dense:
                        check_dense(name, value)  # raises
            return found

    spaces = {}
    for name, value in arrays.items():
        if not compat.is_array_api_obj(value) or isinstance(value, (int, float)):
            msg = (
                f"{name} must be an array (NumPy, PyTorch, CuPy, JAX, Dask or "
                f"array-api-strict); got {type(value).__name__}"
            )
            raise TypeError(msg)
        spaces[name] = namespace_of(value, name)

    # One library, not one type: np.memmap and other ndarray subclasses are NumPy.
    if len({id(space) for space in spaces.values()}) > 1:
        sides = ", ".join(
            f"{n} is {type(v).__module__}.{type(v).__name__}" for n, v in arrays.items()
        )
        msg = f"arrays must come from one library; got {sides}"
        raise TypeError(msg)

    for name, value in arrays.items():
        check_dense(name, value)
    return next(iter(spaces.values()))


def refuse_masked(name: str, x: Any) -> None:
    """Raise a TypeError for a NumPy masked array (its mask would be dropped)."""
    if type(x).__module__.startswith("numpy.ma"):
        msg = (
            f"{name} must not be a NumPy masked array: diffcore computes on "
            "every entry and would drop the mask; pass its .data, or "
            f".filled(value); got {type(x).__name__}"
        )
        raise TypeError(msg)


def host_levels(
    name: str, values: Any, *, refuse_bools: bool = False
) -> np.ndarray[Any, Any]:
    """Noise levels read on the host as float64, or a TypeError naming them.

    np.asarray reads a string as characters ("could not convert string to
    float") and a sparse tensor not at all; with ``refuse_bools``, bool
    values (a bool, a bool array of any library) are refused too.
    """
    if isinstance(values, (str, bytes)):
        msg = f"{name} must be numbers (a list or a 1-d array); got {shown(values)}"
        raise TypeError(msg)
    check_dense(name, values)
    raw = read_host(name, values)
    if raw.dtype.kind == "c":  # astype would keep the real part, with a warning
        msg = f"{name} must be real numbers; got dtype {raw.dtype}: {shown(values)}"
        raise TypeError(msg)
    try:
        levels = raw.astype(np.float64)
    except (TypeError, ValueError):
        msg = f"{name} must be real numbers; got {shown(values)}"
        raise TypeError(msg) from None
    if refuse_bools and raw.dtype == np.bool_:
        msg = f"{name} must be real noise levels, not bools; got {shown(values)}"
        raise TypeError(msg)
    return levels


def read_host(name: str, values: Any) -> np.ndarray[Any, Any]:
    """Values of any library (or a list of them) as a NumPy array on the host.

    Torch tensors are detached and copied to the CPU, sparse ones made
    dense; CuPy arrays are copied back.  bfloat16 (a torch dtype NumPy
    lacks, or ml_dtypes' from JAX) is read as float64; other dtypes are
    kept.  Values that cannot be read here (a meta tensor, a JAX tracer)
    raise an error naming ``name``, not the library's own.
    """
    if isinstance(values, (list, tuple)) and any(
        compat.is_array_api_obj(v) and not isinstance(v, np.generic) for v in values
    ):
        return np.asarray([read_host(name, v) for v in values])
    if compat.is_torch_array(values):
        if values.is_meta:
            msg = (
                f"{name} must hold values to read; got a tensor on the meta "
                f"device (shape {tuple(values.shape)}, no data)"
            )
            raise ValueError(msg)
        values = values.detach().cpu()
        if str(values.layout) != "torch.strided":
            values = values.to_dense()
        if str(values.dtype) == "torch.bfloat16":
            values = values.double()
        return np.asarray(values.numpy())
    if compat.is_cupy_array(values):
        return np.asarray(values.get())
    try:
        array = np.asarray(values)
    except Exception as error:  # a JAX tracer, or a library NumPy cannot read
        msg = (
            f"{name} must have values readable on the host here; got "
            f"{shown(values)} ({type(error).__name__})"
        )
        raise TypeError(msg) from None
    if array.dtype.kind == "V" and "float" in array.dtype.name:
        array = array.astype(np.float64)  # ml_dtypes' bfloat16 from JAX
    return array


def check_dense(name: str, x: Array) -> None:
    """Refuse a sparse (or other non-strided) torch tensor, naming it.

    Torch fails on them deep inside an operation ("add(sparse, dense) is not
    supported"); every array diffcore computes on must be dense.
    """
    kind = type(x)
    if kind not in _NAMESPACES and compat.is_array_api_obj(x):
        namespace_of(x, name)  # the first array of its library: learn its layout
    dense = _DENSE.get(kind)
    if dense is not None and x.layout is not dense:
        layout = str(x.layout).removeprefix("torch.")
        msg = (
            f"{name} must be a dense (strided) tensor; got a {layout} tensor "
            "(call .to_dense() first)"
        )
        raise TypeError(msg)


def namespace_of(x: Array, name: str = "the array") -> Namespace:
    """The namespace of one array (cached by type; NumPy 2 is its own).

    NumPy masked arrays are refused (``name`` says which argument), and never
    cached, so no later call takes them for plain NumPy.
    """
    found = _NAMESPACES.get(type(x))
    if found is None:
        refuse_masked(name, x)
        if _NUMPY_IS_COMPLIANT and compat.is_numpy_array(x):
            found = np
        else:
            found = compat.array_namespace(x)
        if compat.is_torch_array(x):
            # torch is imported, since x exists: its dense layout, to check by
            # identity (check_dense)
            _DENSE[type(x)] = sys.modules["torch"].strided
        _NAMESPACES[type(x)] = found
    return found


def check_writable(x: Array, out: Array) -> None:
    """Raise a TypeError when x's library cannot write results into ``out``.

    JAX and Dask arrays are immutable (or lazy): pass nothing there and use
    the returned array.
    """
    backend = backend_for(x)
    if not backend.writes_out:
        msg = (
            f"out must be None for {backend.name} arrays, which cannot be written "
            f"in place; got a {type(out).__module__}.{type(out).__name__} "
            "(use the returned array)"
        )
        raise TypeError(msg)


def check_like(xp: Namespace, reference: str, **arrays: Array) -> None:
    """Check that every named array has the reference's shape, dtype and device."""
    check_like_all(reference, arrays)


def check_like_all(reference: str, arrays: dict[str, Array]) -> None:
    """:func:`check_like` for a dict of named arrays."""
    ref = arrays[reference]
    backend = backend_for(ref)
    shape, dtype, device = ref.shape, ref.dtype, backend.device(ref)
    for name, value in arrays.items():
        if value is ref:
            continue
        if value.shape != shape and tuple(value.shape) != tuple(shape):
            msg = (
                f"{name} must have the shape of {reference}, {tuple(ref.shape)}; "
                f"got {tuple(value.shape)}"
            )
            raise ValueError(msg)
        if value.dtype != dtype:
            msg = (
                f"{name} must have the dtype of {reference}, {dtype}; got {value.dtype}"
            )
            raise TypeError(msg)
        other = backend.device(value)
        if other != device and other is not None and device is not None:
            # None: a JAX tracer, placed by JAX when the trace runs.
            msg = f"{name} must be on the device of {reference}, {device}; got {other}"
            raise ValueError(msg)


def check_floating(xp: Namespace, name: str, x: Array) -> None:
    """Raise a TypeError unless x has a real floating dtype of 16 bits or more."""
    key = (xp.__name__, x.dtype, "sample")
    if key in _DTYPES:
        return
    # Only accepted dtypes are cached: a refused one may come from another
    # library (ml_dtypes), whose dtypes torch.compile cannot compare as keys.
    rule = _sample_dtype_rule(xp, x.dtype)
    if rule:
        msg = f"{name} must have {rule}; got {x.dtype}"
        raise TypeError(msg)
    _DTYPES[key] = ("", None)


def _sample_dtype_rule(xp: Namespace, dtype: Any) -> str:
    """The rule a sample dtype breaks, or "" when samples may have it."""
    try:
        floating = xp.isdtype(dtype, "real floating")
    except TypeError:  # a dtype its library's isdtype does not know (ml_dtypes)
        return "a real floating dtype of the array API standard"
    if not floating:
        return "a real floating dtype"
    if xp.finfo(dtype).bits < 16:
        # float8 formats store, but libraries do not compute in them.
        return "a real floating dtype of 16 bits or more (float8 is for storage)"
    return ""


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """The dtype in which arithmetic on samples of ``dtype`` is carried out."""
    return _dtypes(xp, dtype)[0]


def _dtypes(xp: Namespace, dtype: Any) -> tuple[Any, Any]:
    """The compute dtype of samples of ``dtype`` and its NumPy twin (cached)."""
    key = (xp.__name__, dtype)
    try:
        return _DTYPES[key]
    except KeyError:
        pass
    bits = xp.finfo(dtype).bits
    work = xp.float32 if bits < 32 else dtype
    # float64 and wider (NumPy's longdouble) gather from the float64 table.
    host = np.float64 if bits >= 64 else np.float32
    _DTYPES[key] = (work, host)
    return work, host


def upcast(xp: Namespace, x: Array) -> Array:
    """x in its compute dtype (a no-op for float32 and float64)."""
    dtype = compute_dtype(xp, x.dtype)
    return x if dtype == x.dtype else xp.astype(x, dtype)


def finish(xp: Namespace, value: Array, dtype: Any) -> Array:
    """Round a result computed in the compute dtype to the sample dtype, once.

    NumPy arithmetic on 0-d arrays gives NumPy scalars; they leave as 0-d
    arrays, so that array input always gives arrays.  A value beyond the
    sample dtype's range becomes inf, as in every library, without NumPy's
    overflow warning.
    """
    if value.dtype != dtype:
        if xp is np:
            with np.errstate(over="ignore"):
                value = value.astype(dtype)
        else:
            value = xp.astype(value, dtype)
    if xp is np and not value.ndim:
        return np.asarray(value)
    return value


class Steps:
    """Validated timesteps for one call.

    ``host`` holds the int64 values when they could be read without touching a
    device; ``index`` is what is used to gather: a Python int, or an integer
    array on the samples' device (placed there on first use); ``valid`` is a
    boolean mask on that device when the values could not be read (NaN
    poisoning), else None.
    """

    __slots__ = ("_index", "_place", "host", "ndim", "valid")

    def __init__(
        self,
        host: np.ndarray[Any, np.dtype[np.int64]] | None,
        index: int | Array | None,
        valid: Array | None,
        ndim: int,
        place: Callable[[], Array] | None = None,
    ) -> None:
        self.host = host
        self.valid = valid
        self.ndim = ndim
        self._index = index
        self._place = place

    @property
    def index(self) -> int | Array:
        """The timesteps as a Python int or an integer array on x's device."""
        if self._index is None and self._place is not None:
            self._index = self._place()
        return self._index


def _readable(xp: Namespace, t: Array) -> bool:
    """Whether reading t's values is cheap (no device sync, no trace, no graph).

    The array's backend decides (``Backend.readable``): NumPy and
    array-api-strict arrays are, CPU tensors and JAX CPU arrays are outside a
    trace, anything on an accelerator or in a lazy graph is not.
    """
    return backend_for(t).readable(t)


def _bounds(values: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """The smallest and largest value, (0, 0) when there is none."""
    if values.size == 1:
        value = values.item()
        return value, value
    if values.size <= 64:
        # NumPy reductions cost microseconds each on a few values; lists do not.
        listed = values.ravel().tolist()
        return (min(listed), max(listed)) if listed else (0, 0)
    return values.min(), values.max()


def _check_range(name: str, values: np.ndarray[Any, Any], size: int) -> int | None:
    """Raise unless every value lies in [0, size); return a lone value as an int.

    One value gathers to Python floats, as an int timestep does: the backend
    rounds them once, and no coefficient array is built or placed.
    """
    if values.size == 1:
        value = int(values.item())
        if not 0 <= value < size:
            raise ValueError(_range_message(name, size, value, value))
        return value
    low, high = _bounds(values)
    if low < 0 or high >= size:
        raise ValueError(_range_message(name, size, low, high))
    return None


def _range_message(name: str, size: int, low: Any, high: Any) -> str:
    low_, high_ = shown(low), shown(high)
    got = f"got {low_}" if low == high else f"got values from {low_} to {high_}"
    note = " (negative timesteps never wrap around)" if low < 0 else ""
    return f"{name} must lie in [0, {size}); {got}{note}"


def _check_shape(name: str, ndim: int, shape: tuple[int, ...], x: Array) -> None:
    if ndim == 0:
        return
    if ndim > 1 or x.ndim == 0 or shape[0] != x.shape[0]:
        batch = x.shape[0] if x.ndim else "none (x is 0-d)"
        msg = (
            f"{name} must be a scalar or have shape (B,) with B = x.shape[0] "
            f"= {batch}; got shape {tuple(shape)}"
        )
        raise ValueError(msg)


def timesteps(xp: Namespace, t: Any, size: int, x: Array, name: str = "t") -> Steps:
    """Validate integer timesteps t for samples x against a table of ``size``."""
    if xp is not np and _NAMESPACES.get(type(t)) is xp:
        # The common case first: an array of the samples' own library.
        return _library_steps(xp, t, size, x, name)
    if type(t) is np.ndarray:
        return _host_steps(xp, t, size, x, name)
    if isinstance(t, bool) or isinstance(t, np.bool_):
        msg = f"{name} must be an integer timestep; got the bool {t}"
        raise TypeError(msg)
    if isinstance(t, (int, np.integer)):
        value = operator.index(t)
        if not 0 <= value < size:
            raise ValueError(_range_message(name, size, value, value))
        return _int_steps(value)
    if isinstance(t, float):
        msg = f"{name} must be an integer timestep; got the float {shown(t)}"
        raise TypeError(msg)

    if isinstance(t, (list, tuple)) or compat.is_numpy_array(t):
        refuse_masked(name, t)
        refuse_bool_items(name, t)
        host = np.asarray(t)
        if host.size == 0 and isinstance(t, (list, tuple)):
            # An empty list has no values to tell its dtype: no timesteps.
            host = host.astype(np.int64)
        return _host_steps(xp, host, size, x, name)

    if not compat.is_array_api_obj(t):
        msg = f"{name} must be an int or an integer array; got {type(t).__name__}"
        raise TypeError(msg)

    t_xp = namespace_of(t, name)
    if t_xp is not xp:
        check_dense(name, t)
        _check_integral(t_xp, t, name)
        _check_shape(name, t.ndim, t.shape, x)
        # A timestep array from another library (say a CPU tensor with NumPy
        # samples) is read on the host and placed like x.
        return _host_steps(xp, read_host(name, t), size, x, name)
    return _library_steps(xp, t, size, x, name)


_INT_STEPS: dict[tuple[int, int], Steps] = {}
_INT_STEPS_KEPT = 4096


def _int_steps(value: int, ndim: int = 0) -> Steps:
    """The Steps of one timestep (checked by the caller), shared between calls.

    ``ndim`` is 0 for an int or a 0-d array, 1 for an array of shape (1,).
    They never change: the index is the int itself (gathers give Python
    floats) and the host copy is read-only.  A plain dict, not lru_cache,
    whose wrapper torch.compile traces through; while it traces, the host
    copy is a traced value, neither flagged read-only nor kept.
    """
    found = _INT_STEPS.get((value, ndim))
    if found is not None:
        return found
    host = np.full((1,) * ndim, value, dtype=np.int64)
    steps = Steps(host, value, None, ndim)
    if tracing():
        return steps
    # Dynamo, reading a cached copy while it traces, may flag it writeable
    # again; nothing in diffcore writes to it.
    host.flags.writeable = False
    if len(_INT_STEPS) >= _INT_STEPS_KEPT:
        _INT_STEPS.clear()
    _INT_STEPS[value, ndim] = steps
    return steps


def _library_steps(xp: Namespace, t: Array, size: int, x: Array, name: str) -> Steps:
    """Timesteps given as an array of the samples' own library."""
    check_dense(name, t)
    _check_integral(xp, t, name)
    ndim = t.ndim
    _check_shape(name, ndim, t.shape, x)
    host = backend_for(t).host(t)
    if host is not None:
        single = _check_range(name, host, size)
        if single is not None:
            return _int_steps(single, ndim)
        if host.dtype != np.int64:
            host = host.astype(np.int64)
        return Steps(
            host, single, None, ndim, lambda: _to_device_of(xp, _int64(xp, t), x, name)
        )

    index = _to_device_of(xp, _int64(xp, t), x, name)
    valid = (index >= 0) & (index < size)
    index = xp.where(valid, index, xp.zeros_like(index))
    return Steps(None, index, valid, t.ndim)


def _check_integral(xp: Namespace, t: Array, name: str) -> None:
    if not _isdtype(xp, t.dtype, "integral"):
        msg = f"{name} must have an integer dtype; got {t.dtype}"
        raise TypeError(msg)


def _isdtype(xp: Namespace, dtype: Any, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, cached."""
    key = (xp.__name__, dtype, kind)
    if key in _DTYPES:
        return True
    try:
        found = bool(xp.isdtype(dtype, kind))
    except TypeError:  # a dtype its library's isdtype does not know (ml_dtypes)
        return False
    if found:  # as in check_floating, only what is accepted is cached
        _DTYPES[key] = (True, None)
    return found


def _int64(xp: Namespace, t: Array) -> Array:
    """t as an index on its device: its own integer dtype serves ``take``.

    (Casting to int64 would warn under JAX's default 32-bit mode; the host
    copy, where ranges are checked, is always int64.)
    """
    return t


def _host_steps(
    xp: Namespace, host: np.ndarray[Any, Any], size: int, x: Array, name: str
) -> Steps:
    if host.dtype.kind not in "iu":
        msg = f"{name} must have an integer dtype; got {host.dtype}"
        raise TypeError(msg)
    _check_shape(name, host.ndim, host.shape, x)
    single = _check_range(name, host, size)
    if host.dtype != _INT64:
        host = host.astype(np.int64)
    if xp is np:
        return Steps(host, host if single is None else single, None, host.ndim)
    device = backend_for(x).device(x)
    return Steps(host, single, None, host.ndim, lambda: xp.asarray(host, device=device))


def _to_device_of(xp: Namespace, a: Array, x: Array, name: str = "t") -> Array:
    backend = backend_for(x)
    device, here = backend.device(x), backend.device(a)
    if here == device:
        return a
    try:
        return compat.to_device(a, device)
    except (NotImplementedError, RuntimeError) as error:
        # A torch 'meta' tensor, for one, holds no values to copy.
        msg = (
            f"{name} must be on the samples' device, {device}, or on a device "
            f"whose values can be copied there; got {name} on {here} ({error})"
        )
        raise ValueError(msg) from error


def gather(
    schedule: Schedule, name: str, steps: Steps, xp: Namespace, x: Array
) -> float | Array:
    """Table ``name`` of the schedule at the timesteps, ready to broadcast on x.

    A Python int timestep gives a Python float (exact float64); an array gives
    an array of the compute dtype on x's device, shaped (B, 1, ..., 1).
    Readable timesteps are gathered on the host from the table rounded once to
    the compute dtype, and the few values are placed like x; others are
    gathered on x's device from the cached device table.
    """
    index = steps.index if steps.host is None else steps._index
    if isinstance(index, int):
        return float(schedule._table(name)[index])

    dtype, host_dtype = _dtypes(xp, x.dtype)
    if steps.host is not None:
        values = np.asarray(schedule._host_table(name, host_dtype)[steps.host])
        return backend_for(x).from_host(xp, expand(np, values, x.ndim), x)

    backend = backend_for(x)
    device_table = backend.table(schedule, name, xp, backend.device(x), dtype)
    on_device: Array = steps.index
    if on_device.ndim == 0:
        # take of a 0-d index, as (1,) and back: torch.func.vmap's rule for a
        # 0-d index would return the whole table.
        values = xp.reshape(xp.take(device_table, xp.reshape(on_device, (1,))), ())
    else:
        values = xp.take(device_table, on_device, axis=0)
    if steps.valid is not None:
        values = xp.where(steps.valid, values, xp.asarray(xp.nan, dtype=dtype))
    return expand(xp, values, x.ndim)


def from_host(xp: Namespace, values: np.ndarray[Any, Any], x: Array) -> float | Array:
    """Coefficients computed on the host in float64, placed like ``gather``."""
    if values.ndim == 0:
        return float(values)
    host = expand(np, values.astype(_dtypes(xp, x.dtype)[1]), x.ndim)
    return backend_for(x).from_host(xp, host, x)


def expand(xp: Namespace, values: Array, ndim: int) -> Array:
    """Reshape per-sample values (B,) to (B, 1, ..., 1) for x of rank ndim."""
    if values.ndim == 0 or ndim <= 1:
        return values
    return xp.reshape(values, (values.shape[0],) + (1,) * (ndim - 1))
