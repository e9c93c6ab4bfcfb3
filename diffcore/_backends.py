"""Backends: what the array API standard lacks, one small object per library.

The core computes with any array-API namespace.  Three things are not in the
standard, and a backend supplies them for the arrays of one library:

* standard normal noise from the library's own source of randomness;
* fused kernels for the linear combinations on the hot paths (the closed form
  a x_0 + b eps, the posterior sample mean + sigma z, the DDPM/DDIM update);
* placement of the schedule's float64 tables on the arrays' device, and the
  knowledge of when an array's values may be read (not inside a trace).

A backend is found by the library that made the array (``library(x)``), through
the entry-point group ``diffcore.backends``; an entry point's name is the
library's name (``torch``, ``cupy``, ...) and it loads a :class:`Backend`
instance or subclass.  Nothing is imported until an array of that library
reaches the core, so ``import diffcore`` loads no framework and no plugin.
NumPy, array-api-strict, JAX and Dask are built in; an installed entry point of
the same name takes precedence.  See ``docs/backends.md``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import array_api_compat as compat
import numpy as np

from . import _blocked

Array = Any
Namespace = Any
Terms = Sequence[tuple[Any, Array]]

GROUP = "diffcore.backends"


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """The dtype in which arithmetic on samples of ``dtype`` is carried out."""
    if xp.finfo(dtype).bits < 32:
        return xp.float32
    return dtype


class Backend:
    """The generic backend: pure array API, no random numbers.

    Subclass it and override what the library does better; every method has a
    correct array-API default except :meth:`standard_normal`.

    Attributes
    ----------
    name : str
        The library this backend serves, as :func:`library` spells it.
    """

    name = "generic"
    #: Whether results may be written into a caller's array (``out=``).
    writes_out = True

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            if not isinstance(name, str):
                msg = f"name must be a str (the library's name); got {name!r}"
                raise TypeError(msg)
            self.name = name

    def __repr__(self) -> str:
        return f"<diffcore backend {self.name!r} ({type(self).__qualname__})>"

    def standard_normal(self, x: Array, generator: Any) -> Array:
        """Standard normal draws with x's shape, dtype, device and namespace.

        Parameters
        ----------
        x : array
            Real floating array; the noise takes its shape, dtype and device.
        generator : object or None
            The library's own source of randomness (a generator, a seed or a
            key); None uses the library's global state where it has one.

        Returns
        -------
        array
        """
        msg = (
            f"no diffcore backend draws random numbers for {self.name} arrays "
            f"(installed: {', '.join(available()) or 'none'}); pass noise "
            f"explicitly, or install the plugin that registers {self.name!r} "
            f"in the entry-point group {GROUP!r}"
        )
        raise TypeError(msg)

    def seeded(self, x: Array, seed: int) -> Any:
        """A source of randomness for x's library, seeded once, for a whole loop.

        ``standard_normal`` draws from it in turn, so the steps of a loop get
        fresh noise from one seed.  The default is NumPy's generator, which
        the built-in host backends take.
        """
        return np.random.default_rng(seed)

    def linear(
        self, xp: Namespace, terms: Terms, dtype: Any, out: Array | None = None
    ) -> Array:
        """sum_i c_i x_i in the compute dtype, rounded once to ``dtype``.

        Parameters
        ----------
        xp : namespace
        terms : sequence of (coefficient, array)
            Coefficients are Python floats or compute-dtype arrays that
            broadcast against the arrays, which share one shape.
        dtype : dtype
            The dtype of the result (the samples' dtype).
        out : array, optional
            Where to write the result; it must have the result's shape and
            dtype, and may be the first term's array.

        Returns
        -------
        array
            ``out`` when given, else a new array.
        """
        work = compute_dtype(xp, dtype)
        up = [
            array if array.dtype == work else xp.astype(array, work)
            for _, array in terms
        ]
        total = terms[0][0] * up[0]
        for (coef, _), array in zip(terms[1:], up[1:], strict=True):
            total = total + coef * array
        if total.dtype == dtype:
            result = total
        elif self.tracing():  # a compiler cannot trace np.errstate
            result = xp.astype(total, dtype)
        else:
            # Beyond the sample dtype's range is inf, without NumPy's warning.
            with np.errstate(over="ignore"):
                result = xp.astype(total, dtype)
        if out is None:
            return result
        out[...] = result
        return out

    def may_share_memory(self, a: Array, b: Array) -> bool:
        """Whether a and b may overlap in memory; when unsure, say True.

        The default knows only identity; backends whose ``linear`` writes into
        ``out`` term by term override it (NumPy and CuPy's
        ``may_share_memory``, torch's storage).
        """
        return a is b

    def clobbers(self, out: Array, terms: Terms) -> bool:
        """Whether writing ``out`` term by term could overwrite an unread input.

        The first product is written element by element over the element it
        reads, so the first term's array may be ``out`` itself; any other
        input that may share memory with ``out`` makes the in-place form
        unsafe, and the result is then formed apart and copied in.
        """
        (_, first), rest = terms[0], terms[1:]
        if first is not out and self.may_share_memory(out, first):
            return True
        return any(self.may_share_memory(out, array) for _, array in rest)

    def device(self, x: Array) -> Any:
        """The device of x, as ``array_api_compat.device`` names it."""
        return compat.device(x)

    def from_host(self, xp: Namespace, values: np.ndarray[Any, Any], x: Array) -> Array:
        """NumPy values (already in the compute dtype) as an array placed like x.

        The result may share memory with ``values``; callers pass values that
        they computed for this call and do not keep.
        """
        return xp.asarray(values, device=self.device(x))

    def readable(self, x: Array) -> bool:
        """Whether reading x's values is cheap: no device sync, trace or graph."""
        if compat.is_numpy_array(x):
            return True
        if compat.is_lazy_array(x):
            return False
        return compat.is_array_api_strict_namespace(compat.array_namespace(x))

    def host(self, x: Array) -> np.ndarray[Any, Any] | None:
        """x's values as a NumPy array when :meth:`readable`, else None.

        Called on every timestep array; override it when the library has a
        faster zero-copy view than ``numpy.asarray``.
        """
        return np.asarray(x) if self.readable(x) else None

    def tracing(self) -> bool:
        """Whether a compiler is tracing the current call (``torch.compile``).

        NumPy arrays made while tracing are traced values, not data: the core
        then neither caches them nor sets their flags.  The default: False.
        """
        return False

    def total(self, xp: Namespace, x: Array) -> float | None:
        """The sum of x's entries as a Python float when :meth:`readable`, else None.

        The finiteness check on model outputs reads it: a finite sum proves
        every entry finite.
        """
        return float(xp.sum(x)) if self.readable(x) else None

    def table(
        self, schedule: Any, name: str, xp: Namespace, device: Any, dtype: Any
    ) -> Array:
        """The schedule's table ``name`` on ``device`` in ``dtype``, cached.

        The default uses the schedule's bounded, locked cache, keyed by
        (table, namespace, device, dtype).
        """
        return schedule._on_device(name, xp, device, dtype)


class NumPyBackend(Backend):
    """NumPy: ``numpy.random.Generator`` noise and ufuncs writing into ``out``.

    Large linear combinations run in cache-sized blocks, shared among threads
    (see ``diffcore._blocked``), with the same float32/float64 roundings as
    the plain form; with Numba installed, those of 4 MiB of float32 or more
    run as one compiled pass instead (``diffcore._fused``).  numexpr was
    tried as an optional fused kernel and measured slower here (about 7
    copies against 3 at 16 MiB on two cores).
    """

    name = "numpy"

    def standard_normal(self, x: Array, generator: Any) -> Array:
        rng = numpy_generator(generator, "numpy")
        return host_normal(rng, x.shape, x.dtype)

    def device(self, x: Array) -> Any:
        return "cpu"

    def from_host(self, xp: Namespace, values: np.ndarray[Any, Any], x: Array) -> Array:
        return values

    def may_share_memory(self, a: Array, b: Array) -> bool:
        return bool(np.may_share_memory(a, b))

    def total(self, xp: Namespace, x: Array) -> float | None:
        # In float64 and quietly: a float16 sum overflows (and NumPy warns)
        # long before its entries stop being finite.
        with np.errstate(all="ignore"):
            return float(np.add.reduce(x, axis=None, dtype=np.float64))

    def linear(
        self, xp: Namespace, terms: Terms, dtype: Any, out: Array | None = None
    ) -> Array:
        # Both read on every call: a bad value never hides.
        count, fused = _blocked.threads(), _blocked.numba_wanted()
        if out is not None:
            if not out.flags.writeable:
                msg = "out must be a writeable array; got a read-only NumPy array"
                raise ValueError(msg)
            if not out.flags.c_contiguous:
                check_distinct(out.shape, out.strides, out.itemsize)
        arrays = [array for _, array in terms]
        if compute_dtype(xp, dtype) != dtype or any(
            array.dtype != dtype for array in arrays
        ):
            return super().linear(xp, terms, dtype, out)
        if out is None:
            out = np.empty(arrays[0].shape, dtype=dtype)
        elif self.clobbers(out, terms):
            return super().linear(xp, terms, dtype, out)
        return _blocked.linear(terms, out, count, fused)


class StrictBackend(Backend):
    """array-api-strict: NumPy's generator on the host, placed on x's device."""

    name = "array_api_strict"

    def standard_normal(self, x: Array, generator: Any) -> Array:
        rng = numpy_generator(generator, "array_api_strict")
        xp = compat.array_namespace(x)
        dtype = np.dtype(str(x.dtype).rsplit(".", 1)[-1])
        noise = host_normal(rng, tuple(x.shape), dtype)
        return xp.asarray(noise, device=x.device)


class JaxBackend(Backend):
    """JAX: noise from explicit keys; XLA fuses the arithmetic itself."""

    name = "jax"
    writes_out = False

    def standard_normal(self, x: Array, generator: Any) -> Array:
        import jax

        if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
            generator = jax.random.key(int(generator))
        if generator is None or not isinstance(generator, jax.Array):
            got = "nothing" if generator is None else type(generator).__name__
            msg = (
                "key must be a JAX PRNG key (jax.random.key(seed)) or an int "
                f"seed for JAX arrays, which have no global random state; got {got}"
            )
            raise TypeError(msg)
        noise = jax.random.normal(generator, x.shape, x.dtype)
        if not isinstance(x, jax.core.Tracer):
            noise = jax.device_put(noise, x.device)
        return noise

    def readable(self, x: Array) -> bool:
        import jax

        if isinstance(x, jax.core.Tracer):
            return False
        return all(d.platform == "cpu" for d in x.devices())

    def table(
        self, schedule: Any, name: str, xp: Namespace, device: Any, dtype: Any
    ) -> Array:
        """The table as a concrete array, even when asked for inside a trace.

        Built inside ``jit`` or ``vmap`` it would be a tracer, and a cached
        tracer breaks the next trace; compile-time evaluation makes it a
        constant that every trace can share.
        """
        import jax

        with jax.ensure_compile_time_eval():
            return schedule._on_device(name, xp, device, dtype)


class DaskBackend(Backend):
    """Dask: noise drawn chunk by chunk with ``dask.array.random``, lazily."""

    name = "dask"
    writes_out = False

    def standard_normal(self, x: Array, generator: Any) -> Array:
        import dask.array as da

        if generator is not None and not isinstance(
            generator, (int, np.integer, np.random.Generator, da.random.Generator)
        ):
            msg = (
                "generator must be None, an int seed, a numpy.random.Generator "
                "or a dask.array.random.Generator for Dask arrays; got "
                f"{type(generator).__name__}"
            )
            raise TypeError(msg)
        rng = generator
        if not isinstance(rng, da.random.Generator):
            rng = da.random.default_rng(generator)  # type: ignore[no-untyped-call]
        draw = np.float64 if x.dtype == np.float64 else np.float32
        noise = rng.standard_normal(size=x.shape, chunks=x.chunks, dtype=draw)
        return noise if noise.dtype == x.dtype else noise.astype(x.dtype)


def numpy_generator(generator: Any, library: str) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None, an int seed or a Generator."""
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or (
        isinstance(generator, (int, np.integer)) and not isinstance(generator, bool)
    ):
        return np.random.default_rng(generator)
    msg = (
        f"generator must be None, an int seed or a numpy.random.Generator for "
        f"{library} arrays; got {type(generator).__module__}."
        f"{type(generator).__name__}"
    )
    raise TypeError(msg)


def host_normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: Any
) -> np.ndarray[Any, Any]:
    """Standard normal NumPy draws of ``dtype`` (via float32 below 32 bits)."""
    draw = dtype if dtype in (np.float32, np.float64) else np.float32
    return rng.standard_normal(shape, dtype=draw).astype(dtype, copy=False)


_BUILTIN: dict[str, type[Backend]] = {
    "numpy": NumPyBackend,
    "array_api_strict": StrictBackend,
    "jax": JaxBackend,
    "dask": DaskBackend,
}

_loaded: dict[str, Backend] = {}
_by_type: dict[type, Backend] = {}
# Held while a backend loads (its plugin may import a framework: seconds).
_lock = threading.Lock()


def _after_fork() -> None:
    """A child forked while another thread loaded a backend gets a free lock.

    The load itself is lost with that thread; the child loads again.
    """
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def library(x: Array) -> str:
    """The name of the library that made x, found without importing any."""
    if compat.is_numpy_array(x):
        return "numpy"
    if compat.is_torch_array(x):
        return "torch"
    if compat.is_cupy_array(x):
        return "cupy"
    if compat.is_jax_array(x):
        return "jax"
    if compat.is_dask_array(x):
        return "dask"
    if compat.is_array_api_strict_namespace(compat.array_namespace(x)):
        return "array_api_strict"
    return type(x).__module__.split(".", 1)[0]


def _entry_points() -> list[Any]:
    """The installed entry points of the group (importlib.metadata loads lazily:
    importing it costs tens of milliseconds that `import diffcore` must not pay)."""
    from importlib import metadata

    return list(metadata.entry_points(group=GROUP))


def available() -> list[str]:
    """Names of every backend: built in, or registered by an entry point."""
    names = {entry.name for entry in _entry_points()}
    return sorted(names | set(_BUILTIN))


def check_distinct(
    shape: tuple[int, ...], strides: tuple[int, ...], unit: int = 1
) -> None:
    """Refuse an ``out`` whose elements may share memory (expanded, as_strided).

    Writing such an array term by term reads back what another element wrote.
    Axes taken from the smallest stride up must each step past the span of
    the ones before (``unit`` is one element: its bytes, or 1 for strides in
    elements); layouts that interleave axes without overlap are refused too.
    """
    reach = unit
    axes = zip(shape, strides, strict=True)
    for stride, size in sorted((abs(st), n) for n, st in axes if n > 1):
        if stride < reach:
            msg = (
                "out must have one memory location per element; got a view "
                f"with strides {tuple(strides)} for shape {tuple(shape)} whose "
                "elements overlap (an expanded, broadcast or as_strided array)"
            )
            raise ValueError(msg)
        reach = stride * (size - 1) + reach


def backend_for(x: Array) -> Backend:
    """The backend for x's library, loaded on first use and kept.

    A library with no backend gets the generic one, which computes correctly
    when noise is passed in and says what to install when it is not.
    """
    found = _by_type.get(type(x))
    if found is not None:
        return found
    name = library(x)
    with _lock:
        if name not in _loaded:
            _loaded[name] = _load(name)
        _by_type[type(x)] = _loaded[name]
        return _loaded[name]


def tracing() -> bool:
    """Whether any loaded backend's compiler is tracing the current call."""
    return any(backend.tracing() for backend in list(_loaded.values()))


def _load(name: str) -> Backend:
    entries = [e for e in _entry_points() if e.name == name]
    if not entries:
        return _BUILTIN.get(name, Backend)(name)

    entry = entries[0]
    try:
        loaded = entry.load()
    except Exception as error:  # a missing module or attribute, or its own bug
        msg = (
            f"entry point {entry.name} = {entry.value} in group {GROUP!r} failed "
            f"to load: {type(error).__name__}: {error}"
        )
        raise ImportError(msg) from error
    backend = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(backend, Backend):
        msg = (
            f"entry point {entry.name} = {entry.value} in group {GROUP!r} must "
            f"load a diffcore Backend (or a subclass); got {type(backend).__name__}"
        )
        raise TypeError(msg)
    return backend


def reset() -> None:
    """Forget every loaded backend (tests that register new entry points)."""
    with _lock:
        _loaded.clear()
        _by_type.clear()
