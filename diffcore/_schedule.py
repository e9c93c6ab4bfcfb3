"""Noise schedules: every per-step table of a Gaussian diffusion, in float64.

A schedule is built from log(alpha_bar) and log(1 - alpha_bar), each computed in
the most accurate form its constructor allows (log1p of -beta summed with a
compensated sum, expm1 for 1 - alpha_bar, softplus for log-SNR inputs).  Every
other table is derived from those two once, so no table is ever formed by
subtracting a rounded alpha_bar from one.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import (
    check_addressable,
    check_dense,
    read_host,
    refuse_bool_items,
    shown,
)

Float64Array = NDArray[np.float64]

_TABLES = (
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "snr",
    "log_snr",
    "sigmas",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef_x0",
    "posterior_mean_coef_xt",
)

_CACHE_SIZE = 64
_TINY = float(np.finfo(np.float64).tiny)


def _compensated_cumsum(values: Float64Array) -> tuple[Float64Array, Float64Array]:
    """Cumulative sum with Neumaier compensation, as a double-double (hi, lo).

    hi is the partial sum rounded to float64 (error ~ eps * |partial sum|); lo
    the part that rounding dropped, so differences of partial sums (log
    alpha_bar ratios over short skips) keep their digits.  A -inf term (a step
    with beta = 1) makes every later partial sum -inf, with lo = 0.
    """
    hi = np.empty_like(values)
    lo = np.zeros_like(values)
    total, carry = 0.0, 0.0
    for i, value in enumerate(values.tolist()):
        if math.isinf(value) or math.isinf(total):
            hi[i], total, carry = -math.inf, -math.inf, 0.0
            continue
        new = total + value
        if abs(total) >= abs(value):
            carry += (total - new) + value
        else:
            carry += (value - new) + total
        total = new
        hi[i] = total + carry
        lo[i] = (total - hi[i]) + carry
    return hi, lo


def _softplus(x: Float64Array) -> Float64Array:
    """log(1 + exp(x)) without overflow; +inf maps to +inf, -inf to 0."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    return np.where(np.isposinf(x), np.inf, out)


def _log_one_minus_exp(log_a: Float64Array) -> Float64Array:
    """log(1 - exp(log_a)) for log_a <= 0, accurate near both ends."""
    with np.errstate(divide="ignore"):
        near_one = np.log(-np.expm1(log_a))
        near_zero = np.log1p(-np.exp(log_a))
    return np.where(log_a > -math.log(2.0), near_one, near_zero)


def _log_one_minus_exp_neg(x: Float64Array | float) -> Float64Array:
    """log(1 - exp(-x)) for x >= 0; -inf at x = 0."""
    return _log_one_minus_exp(-np.asarray(x, dtype=np.float64))


def _softplus_rise(a: float, w: Float64Array) -> Float64Array:
    """softplus(a + w) - softplus(a) for w >= 0, without cancellation.

    Up to w = 1 it is log1p(sigmoid(a) expm1(w)); beyond, the two softplus
    values differ by a factor of at least 1.3 (a < 0), or the rise is w plus
    two terms below log 2 (a >= 0).
    """
    if a >= 0:
        sigmoid_a = 1.0 / (1.0 + math.exp(-a))
    else:
        sigmoid_a = math.exp(a) / (1.0 + math.exp(a))
    near = np.log1p(sigmoid_a * np.expm1(np.minimum(w, 1.0)))

    base = np.full_like(w, a)
    if a >= 0:
        far = w + _softplus(-(base + w)) - _softplus(-base)
    else:
        far = _softplus(base + w) - _softplus(base)
    rise: Float64Array = np.where(w <= 1.0, near, far)
    return rise


def _log_variance(
    variance: Float64Array, betas: Float64Array, log_1m: Float64Array
) -> Float64Array:
    """log of the posterior variance, from logs where it is subnormal or 0.

    log beta_t + log(1 - alpha_bar_{t-1}) - log(1 - alpha_bar_t) stays finite
    for t >= 1 however small the betas; at t = 0 it is -inf.
    """
    log_1m_prev = np.concatenate([[-np.inf], log_1m[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        from_logs = np.log(betas) + log_1m_prev - log_1m
        direct = np.log(variance)
    log_variance: Float64Array = np.where(variance >= _TINY, direct, from_logs)
    return log_variance


def _betas_from_log(log_alphas_cumprod: Float64Array) -> Float64Array:
    """beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, as -expm1 of a log difference."""
    with np.errstate(invalid="ignore"):
        steps = np.diff(log_alphas_cumprod, prepend=0.0)
        betas: Float64Array = np.where(
            np.isneginf(log_alphas_cumprod), 1.0, -np.expm1(steps)
        )
    return betas


def _as_float64_vector(name: str, values: ArrayLike) -> Float64Array:
    refuse_bool_items(name, values)
    array = read_host(name, values)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
    ):
        msg = f"{name} must hold real numbers; got dtype {array.dtype}"
        raise TypeError(msg)
    if array.ndim != 1 or array.size < 1:
        msg = f"{name} must be a non-empty 1-d array; got shape {array.shape}"
        raise ValueError(msg)
    _check_size(array.shape[0])
    return array.astype(np.float64)


def _check_steps(T: Any) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)):
        msg = f"T must be an integer number of steps; got {shown(T)}"
        raise TypeError(msg)
    if T < 1:
        msg = f"T must be at least 1; got {shown(T)}"
        raise ValueError(msg)
    check_addressable("T", T)
    _check_size(int(T))
    return int(T)


# A schedule keeps about 30 float64 tables of T entries (measured: 250 bytes
# a step): 2.5 GB at this T.  Beyond it the process ran out of memory (T =
# 10**9 was killed on a 24 GB machine) instead of raising.
MAX_STEPS = 10**7


def _check_size(T: int) -> None:
    if T > MAX_STEPS:
        msg = (
            f"T must be at most {MAX_STEPS} (a schedule keeps about 30 float64 "
            f"tables of T entries, 2.5 GB at that T); got {shown(T)}"
        )
        raise ValueError(msg)


def _check_betas(
    betas: Float64Array,
    name: str = "betas",
    log_alphas_cumprod: Float64Array | None = None,
) -> None:
    bad = np.flatnonzero(~((betas > 0.0) & (betas <= 1.0)))
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{name} must lie in (0, 1] with no NaN; got "
            f"{name}[{i}] = {float(betas[i])!r} ({_entries(bad.size)} outside)"
        )
        raise ValueError(msg)
    if log_alphas_cumprod is not None:
        # A derived beta may round to 1 (alpha_bar_t / alpha_bar_{t-1} below
        # 2**-53) while alpha_bar stays positive; only a zero counts.
        zeros = np.flatnonzero(np.isneginf(log_alphas_cumprod[:-1]))
        if zeros.size:
            msg = (
                "alphas_cumprod may be 0 only at the last step (zero terminal "
                f"SNR); got alphas_cumprod[{int(zeros[0])}] = 0.0 of T = "
                f"{betas.shape[0]}"
            )
            raise ValueError(msg)
        return
    # alpha_bar reaches 0 at a beta of 1: only the last step may (zero terminal SNR).
    ones = np.flatnonzero(betas[:-1] == 1.0)
    if ones.size:
        i = int(ones[0])
        msg = (
            f"{name} may be 1 only at the last step (zero terminal SNR); got "
            f"{name}[{i}] = 1.0 of T = {betas.shape[0]} ({_entries(ones.size)} "
            "before the last)"
        )
        raise ValueError(msg)


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _check_real(name: str, value: Any, *, finite: bool = True) -> float:
    """A Python or NumPy real scalar (never a bool), returned as float."""
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        msg = f"{name} must be a real number; got {type(value).__name__} {shown(value)}"
        raise TypeError(msg)
    try:
        number = float(value)
    except OverflowError:  # a Python int beyond float64
        number = math.inf if value > 0 else -math.inf
    if finite and not math.isfinite(number):
        msg = f"{name} must be finite; got {shown(number)}"
        raise ValueError(msg)
    return number


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be a bool; got {type(value).__name__} {shown(value)}"
        raise TypeError(msg)
    return bool(value)


def _check_unit(name: str, value: Any, *, zero_ok: bool = False) -> float:
    """A real number in (0, 1] (or [0, 1]); returned as float."""
    value = _check_real(name, value, finite=False)
    low_ok = value >= 0.0 if zero_ok else value > 0.0
    if not (low_ok and value <= 1.0):
        interval = "[0, 1]" if zero_ok else "(0, 1]"
        msg = f"{name} must lie in {interval}; got {shown(value)}"
        raise ValueError(msg)
    return float(value)


def _readonly(array: Float64Array) -> Float64Array:
    """A read-only float64 copy that owns its data (what the internals use)."""
    owned = np.array(array, dtype=np.float64, order="C", copy=True)
    owned.flags.writeable = False
    return owned


def _public(owned: NDArray[Any]) -> NDArray[Any]:
    """A view of a read-only array: its WRITEABLE flag cannot be turned on again.

    The owning arrays stay private (torch.compile traces those; it refuses
    NumPy views), so no caller can unlock a table the functions read.
    """
    view: NDArray[Any] = owned[...]
    return view


class Schedule:
    """A discrete Gaussian diffusion schedule of T steps, held in float64.

    The forward process is q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
    with 0-based t in [0, T).  Build one with a constructor such as
    :meth:`linear` or :meth:`cosine`; the object is immutable and its tables
    are read-only NumPy float64 arrays of length T.

    .. math::

        \\bar\\alpha_t = \\prod_{i \\le t} (1 - \\beta_i)

    Attributes
    ----------
    betas, alphas : ndarray, shape (T,)
        beta_t and alpha_t = 1 - beta_t.
    alphas_cumprod, alphas_cumprod_prev : ndarray, shape (T,)
        alpha_bar_t and alpha_bar_{t-1} (alpha_bar_{-1} = 1).
    sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod : ndarray, shape (T,)
        The mean and standard deviation of q(x_t | x_0) per unit of x_0, noise.
    snr, log_snr : ndarray, shape (T,)
        alpha_bar / (1 - alpha_bar) and its natural log.  Where alpha_bar is 0
        they are 0 and -inf.
    sigmas : ndarray, shape (T,)
        The variance-exploding noise level sqrt((1 - alpha_bar) / alpha_bar);
        +inf where alpha_bar is 0.
    posterior_variance : ndarray, shape (T,)
        Variance of q(x_{t-1} | x_t, x_0); exactly 0 at t = 0.
    posterior_log_variance_clipped : ndarray, shape (T,)
        Its log with the t = 0 entry replaced (see
        :meth:`with_posterior_log_variance`); always finite.
    posterior_mean_coef_x0, posterior_mean_coef_xt : ndarray, shape (T,)
        Weights of x_0 and x_t in the posterior mean; (1, 0) at t = 0.
    timestep_map : ndarray of int64, shape (T,)
        The original timestep of each step (arange(T) unless respaced).

    References
    ----------
    Ho, Jain and Abbeel (2020), Denoising Diffusion Probabilistic Models,
    eqs. 2, 4, 6 and 7.

    Examples
    --------
    >>> import diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> len(s), float(s.betas[0])
    (1000, 0.0001)
    """

    __slots__ = (
        "_cache",
        "_first_log_variance",
        "_log_alphas_cumprod",
        "_log_one_minus_alphas_cumprod",
        "_one_minus_alphas_cumprod",
        "_log_alphas_cumprod_lo",
        "_extra",
        "_steps",
        "log_variance_floor",
        "timestep_map",
        *_TABLES,
    )

    betas: Float64Array
    alphas: Float64Array
    alphas_cumprod: Float64Array
    alphas_cumprod_prev: Float64Array
    sqrt_alphas_cumprod: Float64Array
    sqrt_one_minus_alphas_cumprod: Float64Array
    snr: Float64Array
    log_snr: Float64Array
    sigmas: Float64Array
    posterior_variance: Float64Array
    posterior_log_variance_clipped: Float64Array
    posterior_mean_coef_x0: Float64Array
    posterior_mean_coef_xt: Float64Array
    timestep_map: NDArray[np.int64]
    log_variance_floor: float
    _log_alphas_cumprod: Float64Array
    _log_one_minus_alphas_cumprod: Float64Array
    _one_minus_alphas_cumprod: Float64Array
    _log_alphas_cumprod_lo: Float64Array
    _extra: dict[str, Float64Array]
    _steps: int
    _first_log_variance: str
    _cache: OrderedDict[Any, Any]

    @property
    def _lock(self) -> threading.Lock:
        # One lock for every schedule's caches (short dictionary updates),
        # so that a forked child can be given a fresh one (_after_fork).
        return _CACHE_LOCK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        msg = (
            "build a Schedule with a constructor such as Schedule.linear(T), "
            "Schedule.from_betas(betas) or Schedule.from_alphas_cumprod(...)"
        )
        raise TypeError(msg)

    # -- construction -----------------------------------------------------

    @classmethod
    def _build(
        cls,
        log_alphas_cumprod: Float64Array,
        log_one_minus_alphas_cumprod: Float64Array,
        betas: Float64Array | None = None,
        timestep_map: NDArray[np.int64] | None = None,
        first_log_variance: str = "next",
        log_variance_floor: float = 1e-20,
        one_minus_alphas_cumprod: Float64Array | None = None,
        log_alphas_cumprod_lo: Float64Array | None = None,
    ) -> Schedule:
        self = object.__new__(cls)
        set_ = object.__setattr__
        log_ab = _readonly(log_alphas_cumprod)
        log_1m = _readonly(log_one_minus_alphas_cumprod)
        if betas is None:
            betas = _betas_from_log(log_ab)
        _check_betas(betas, "betas derived from alphas_cumprod", log_ab)
        T = betas.shape[0]
        _check_size(T)
        if timestep_map is None:
            timestep_map = np.arange(T, dtype=np.int64)
        base_map = np.array(timestep_map, dtype=np.int64)
        base_map.flags.writeable = False
        timestep_map = _public(base_map)

        set_(self, "_log_alphas_cumprod", log_ab)
        set_(self, "_log_one_minus_alphas_cumprod", log_1m)
        if one_minus_alphas_cumprod is None:
            one_minus_alphas_cumprod = np.exp(log_1m)
        set_(self, "_one_minus_alphas_cumprod", _readonly(one_minus_alphas_cumprod))
        if log_alphas_cumprod_lo is None:
            log_alphas_cumprod_lo = np.zeros_like(log_ab)
        set_(self, "_log_alphas_cumprod_lo", _readonly(log_alphas_cumprod_lo))
        set_(self, "_first_log_variance", first_log_variance)
        set_(self, "log_variance_floor", float(log_variance_floor))
        set_(self, "timestep_map", timestep_map)
        set_(self, "_steps", int(T))
        set_(self, "_cache", OrderedDict())
        owned: dict[str, Float64Array] = {
            "log_alphas_cumprod": log_ab,
            "log_one_minus_alphas_cumprod": log_1m,
        }
        set_(self, "_extra", owned)
        for name, table in self._tables(betas).items():
            owned[name] = _readonly(table)
            set_(self, name, _public(owned[name]))
        with np.errstate(divide="ignore", over="ignore"):
            owned.update({name: _readonly(make(self)) for name, make in _EXTRA.items()})
        return self

    def _tables(self, betas: Float64Array) -> dict[str, Float64Array]:
        log_ab = self._log_alphas_cumprod
        log_1m = self._log_one_minus_alphas_cumprod
        alphas_cumprod = np.exp(log_ab)
        one_minus = self._one_minus_alphas_cumprod
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        one_minus_prev = np.concatenate([[0.0], one_minus[:-1]])
        alphas = 1.0 - betas
        # 1 - beta cancels for beta near 1 (a derived beta may even round to 1
        # while alpha_bar stays positive): alpha from the log ratio there.
        near_one = np.flatnonzero((betas > 0.5) & np.isfinite(log_ab))
        if near_one.size:
            lo = self._log_alphas_cumprod_lo
            with np.errstate(invalid="ignore"):
                steps = np.diff(log_ab, prepend=0.0) + np.diff(lo, prepend=0.0)
            alphas[near_one] = np.exp(steps[near_one])

        # Ho et al. 2020, eqs. 6-7: posterior variance and mean weights.  The
        # ratio comes first: betas * one_minus_prev alone underflows for tiny betas.
        posterior_variance = betas * (one_minus_prev / one_minus)
        # sqrt(alpha_bar_{t-1}) from the log, so it does not underflow with alpha_bar.
        sqrt_prev = np.exp(0.5 * np.concatenate([[0.0], log_ab[:-1]]))
        coef_x0 = betas * sqrt_prev / one_minus
        coef_xt = np.sqrt(alphas) * one_minus_prev / one_minus
        coef_x0[0], coef_xt[0] = 1.0, 0.0  # t = 0: the point mass at x_0, exactly

        log_snr = log_ab - log_1m
        with np.errstate(over="ignore"):
            sigmas = np.exp(-0.5 * log_snr)
            snr = np.exp(log_snr)
        return {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": np.exp(0.5 * log_ab),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(one_minus),
            "snr": snr,
            "log_snr": log_snr,
            "sigmas": sigmas,
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": self._clipped_log(
                _log_variance(posterior_variance, betas, log_1m), betas
            ),
            "posterior_mean_coef_x0": coef_x0,
            "posterior_mean_coef_xt": coef_xt,
        }

    def _clipped_log(
        self, log_variance: Float64Array, betas: Float64Array
    ) -> Float64Array:
        if self._first_log_variance == "floor":
            floored: Float64Array = np.maximum(
                log_variance, math.log(self.log_variance_floor)
            )
            return floored
        # improved-diffusion: the t = 0 entry (variance 0) takes the t = 1 value;
        # a one-step schedule has no t = 1, so it takes log(beta_0) instead.
        if log_variance.shape[0] == 1:
            return np.log(betas)
        return np.concatenate([log_variance[1:2], log_variance[1:]])

    @classmethod
    def from_betas(cls, betas: ArrayLike) -> Schedule:
        """Schedule from its per-step variances beta_t, each in (0, 1].

        .. math::

            \\log \\bar\\alpha_t = \\sum_{i \\le t} \\operatorname{log1p}(-\\beta_i)

        Parameters
        ----------
        betas : array_like, shape (T,)
            Real values in (0, 1], 1 only at the last step (zero terminal SNR);
            converted to float64 and kept as given.

        Returns
        -------
        Schedule

        Examples
        --------
        >>> s = Schedule.from_betas([0.1, 0.2])
        >>> [round(float(a), 12) for a in s.alphas_cumprod]
        [0.9, 0.72]
        """
        values = _as_float64_vector("betas", betas)
        _check_betas(values)
        with np.errstate(divide="ignore"):
            log_ab, log_ab_lo = _compensated_cumsum(np.log1p(-values))
        return cls._build(
            log_ab,
            _log_one_minus_exp(log_ab),
            log_alphas_cumprod_lo=log_ab_lo,
            betas=values,
            one_minus_alphas_cumprod=-np.expm1(log_ab),
        )

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: ArrayLike) -> Schedule:
        """Schedule from alpha_bar_t, strictly decreasing in [0, 1).

        beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, formed as
        -expm1(log alpha_bar_t - log alpha_bar_{t-1}).  Only the last entry
        may be 0 (zero terminal SNR).

        Parameters
        ----------
        alphas_cumprod : array_like, shape (T,)

        Returns
        -------
        Schedule
        """
        values = _as_float64_vector("alphas_cumprod", alphas_cumprod)
        inside = (values >= 0.0) & (values < 1.0)
        if not inside.all():
            i = int(np.flatnonzero(~inside)[0])
            msg = (
                f"alphas_cumprod must lie in [0, 1) with no NaN; got "
                f"alphas_cumprod[{i}] = {float(values[i])!r}"
            )
            raise ValueError(msg)
        cls._check_decreasing("alphas_cumprod", values)
        with np.errstate(divide="ignore"):
            log_ab = np.log(values)
            log_1m = np.log1p(-values)
        return cls._build(log_ab, log_1m, one_minus_alphas_cumprod=1.0 - values)

    @staticmethod
    def _check_decreasing(name: str, values: Float64Array) -> None:
        steps = np.diff(values)
        if (steps >= 0).any():
            i = int(np.flatnonzero(steps >= 0)[0])
            msg = (
                f"{name} must be strictly decreasing; got {name}[{i}] = "
                f"{float(values[i])!r} and {name}[{i + 1}] = {float(values[i + 1])!r}"
            )
            raise ValueError(msg)

    @classmethod
    def from_log_snr(
        cls, log_snr: Callable[[Float64Array], ArrayLike], T: int
    ) -> Schedule:
        """Schedule from a continuous log-SNR function lambda(u), u in (0, 1].

        Step t takes u = (t + 1) / T, so alpha_bar_t = sigmoid(lambda(u)),
        computed as exp(-softplus(-lambda)) and 1 - alpha_bar_t as
        exp(-softplus(lambda)).  lambda must be strictly decreasing and finite,
        except that lambda(1) may be -inf (zero terminal SNR), and each step's
        beta must be a positive float64: lambda(1/T) below about 745 (beta_0
        is about exp(-lambda(1/T))) and no two steps equal after rounding.

        Parameters
        ----------
        log_snr : callable
            Maps a float64 array of u values to log-SNR values of that shape.
        T : int
            Number of steps.

        Returns
        -------
        Schedule

        References
        ----------
        Kingma, Salimans, Poole and Ho (2021), Variational Diffusion Models.

        Examples
        --------
        The cosine schedule without offset, lambda(u) = -2 log tan(pi u / 2):

        >>> import numpy as np
        >>> s = Schedule.from_log_snr(lambda u: -2 * np.log(np.tan(np.pi * u / 2)), 10)
        >>> bool(s.alphas_cumprod[-1] < 1e-30)
        True
        """
        if not callable(log_snr):
            msg = (
                "log_snr must be a callable mapping u in (0, 1] to log-SNR "
                f"values; got {type(log_snr).__name__} {shown(log_snr)}"
            )
            raise TypeError(msg)
        T = _check_steps(T)
        u = np.arange(1, T + 1, dtype=np.float64) / T
        with np.errstate(divide="ignore", over="ignore"):
            lam = _as_float64_vector("log_snr(u)", log_snr(u))
        if lam.shape != (T,):
            msg = f"log_snr(u) must return shape ({T},); got {lam.shape}"
            raise ValueError(msg)
        finite = np.isfinite(lam[:-1]).all() and not (
            np.isnan(lam[-1]) or lam[-1] == np.inf
        )
        if not finite:
            msg = f"log_snr(u) must be finite (only the last may be -inf); got {lam}"
            raise ValueError(msg)
        cls._check_decreasing("log_snr(u)", lam)

        log_ab = -_softplus(-lam)
        betas = _betas_from_log(log_ab)
        bad = np.flatnonzero(~(betas > 0.0))
        if bad.size:
            i = int(bad[0])
            after = f" after log_snr(u)[{i - 1}] = {float(lam[i - 1])!r}" if i else ""
            msg = (
                f"log_snr(u)[{i}] = {float(lam[i])!r}{after} gives a step without "
                f"noise in float64: beta_{i} rounds to 0; log-SNR values must stay "
                "below about 745 and fall by more than rounding from step to step"
            )
            raise ValueError(msg)
        return cls._build(log_ab, -_softplus(lam), betas=betas)

    @classmethod
    def linear(
        cls,
        T: int,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        *,
        scale_by_T: bool = False,
    ) -> Schedule:
        """Betas linear in t from beta_start to beta_end, both included.

        Parameters
        ----------
        T : int
            Number of steps.
        beta_start, beta_end : float
            First and last beta, each in (0, 1].  Either order is a valid
            schedule: beta_start > beta_end gives decreasing betas (as in
            diffusers); beta_start = beta_end gives constant ones.
        scale_by_T : bool
            Multiply both endpoints by 1000 / T, as improved-diffusion does, so
            that any T approximates the T = 1000 process.  diffusers uses the
            endpoints as given (the default).

        References
        ----------
        Ho et al. (2020), section 4.

        Examples
        --------
        >>> s = Schedule.linear(1000)
        >>> float(s.betas[-1])
        0.02
        """
        T = _check_steps(T)
        beta_start = _check_unit("beta_start", beta_start)
        beta_end = _check_unit("beta_end", beta_end)
        if not _check_bool("scale_by_T", scale_by_T):
            return cls.from_betas(np.linspace(beta_start, beta_end, T))

        scale = 1000.0 / T
        for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
            if not 0.0 < scale * value <= 1.0:
                msg = (
                    f"{name} * 1000 / T = {scale * value!r} must lie in (0, 1]: "
                    f"scale_by_T=True multiplies beta_start={shown(beta_start)} and "
                    f"beta_end={shown(beta_end)} by 1000 / T, and T = {T}"
                )
                raise ValueError(msg)
        return cls.from_betas(np.linspace(scale * beta_start, scale * beta_end, T))

    @classmethod
    def scaled_linear(
        cls, T: int, beta_start: float = 0.00085, beta_end: float = 0.012
    ) -> Schedule:
        """Betas whose square roots are linear in t (latent / Stable Diffusion).

        .. math::

            \\beta_t = \\left(\\sqrt{\\beta_{start}} + \\tfrac{t}{T-1}
            (\\sqrt{\\beta_{end}} - \\sqrt{\\beta_{start}})\\right)^2

        References
        ----------
        Rombach et al. (2022), High-Resolution Image Synthesis with Latent
        Diffusion Models (their configuration calls this schedule "linear").
        """
        T = _check_steps(T)
        beta_start = _check_unit("beta_start", beta_start)
        beta_end = _check_unit("beta_end", beta_end)
        roots = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T)
        return cls.from_betas(roots**2)

    @classmethod
    def cosine(cls, T: int, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
        """The cosine schedule of Nichol and Dhariwal (2021), betas clipped at max_beta.

        With f(u) = cos^2(pi/2 (u + s)/(1 + s)), beta_t = min(1 - f((t+1)/T) /
        f(t/T), max_beta), formed as sin(a - b) sin(a + b) / cos^2(b) to avoid
        cancellation (a, b the angles at (t+1)/T and t/T), with each sine's
        argument written as an exact small multiple of pi / (2 (1 + s)).

        Parameters
        ----------
        T : int
        s : float
            Offset that keeps beta_0 away from 0.
        max_beta : float
            Upper clip on beta; the unclipped last beta is 1.

        References
        ----------
        Nichol and Dhariwal (2021), Improved Denoising Diffusion Probabilistic
        Models, eq. 17.
        """
        T = _check_steps(T)
        max_beta = _check_unit("max_beta", max_beta)
        s = _check_real("s", s)
        if s < 0.0:
            msg = f"s must be non-negative; got {shown(s)}"
            raise ValueError(msg)
        # With c = pi / (2 (1 + s)): a - b = c / T, a + b = c (2sT + 2t + 1) / T,
        # pi - (a + b) = c (2T - 2t - 1) / T and pi/2 - b = c (T - t) / T: every
        # sine gets an argument of at most pi/2, a multiple of c.
        c = math.pi / (2.0 * (1.0 + s))
        if c / T < _TINY:
            msg = (
                f"s must leave the angle pi / (2 (1 + s) T) a normal float64; "
                f"got s={shown(s)} with T={T}"
            )
            raise ValueError(msg)

        # Two ratios of sines, each near 1 at large s, so nothing underflows.
        # sin(a + b) = sin(pi - (a + b)) takes the smaller of the two: an
        # argument near pi would carry its own rounding into a small sine
        # (1e-14 relative at small t).
        t = np.arange(T, dtype=np.float64)
        half = np.sin(c * (T - t) / T)
        outer = np.minimum(
            c * (2.0 * T - 2.0 * t - 1.0), c * (2.0 * s * T + 2.0 * t + 1.0)
        )
        betas = (math.sin(c / T) / half) * (np.sin(outer / T) / half)
        return cls.from_betas(np.minimum(betas, max_beta))

    @classmethod
    def sigmoid_betas(
        cls,
        T: int,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        low: float = -6.0,
        high: float = 6.0,
    ) -> Schedule:
        """Betas on a sigmoid ramp from beta_start to beta_end (GeoDiff).

        beta_t = beta_start + (beta_end - beta_start) sigmoid(z_t) with z_t
        evenly spaced over [low, high].  This is the schedule diffusers calls
        ``"sigmoid"``; compare :meth:`sigmoid_alphas_cumprod`.  Any betas in
        (0, 1] form a valid schedule, so neither pair need be ordered: low >
        high or beta_start > beta_end gives decreasing betas, and low = high
        constant ones.  (:meth:`sigmoid_alphas_cumprod` needs start < end,
        without which alpha_bar would not decrease.)

        References
        ----------
        Xu et al. (2022), GeoDiff.
        """
        T = _check_steps(T)
        beta_start = _check_unit("beta_start", beta_start)
        beta_end = _check_unit("beta_end", beta_end)
        low, high = _check_real("low", low), _check_real("high", high)
        if not math.isfinite(high - low):
            msg = (
                "high - low must be finite in float64; "
                f"got low={shown(low)}, high={shown(high)}"
            )
            raise ValueError(msg)

        z = np.linspace(low, high, T)
        with np.errstate(over="ignore"):  # exp(-z) = inf gives sigmoid(z) = 0
            betas = beta_start + (beta_end - beta_start) / (1.0 + np.exp(-z))
        return cls.from_betas(betas)

    @classmethod
    def sigmoid_alphas_cumprod(
        cls, T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0
    ) -> Schedule:
        """alpha_bar shaped like a sigmoid in t (Chen 2023); it reaches 0 at t = T-1.

        gamma(u) = (sigmoid(end/tau) - sigmoid((u (end - start) + start)/tau)) /
        (sigmoid(end/tau) - sigmoid(start/tau)), alpha_bar_t = gamma((t+1)/T).
        Both alpha_bar and 1 - alpha_bar are formed in log space from
        differences of log-sigmoids that never subtract two rounded values,
        so any tau is accurate; parameters whose first steps would add less
        noise than float64 can hold (start / tau far below 0) are refused.

        References
        ----------
        Chen (2023), On the Importance of Noise Scheduling for Diffusion Models.
        """
        T = _check_steps(T)
        start, end = _check_real("start", start), _check_real("end", end)
        tau = _check_real("tau", tau)
        if not (tau > 0.0 and start < end):
            msg = (
                f"need tau > 0 and start < end; got tau={shown(tau)}, "
                f"start={shown(start)}, end={shown(end)}"
            )
            raise ValueError(msg)

        a, b, width = start / tau, end / tau, (end - start) / tau
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(width)):
            msg = (
                "start / tau, end / tau and (end - start) / tau must be finite "
                f"float64 numbers; got start={shown(start)}, end={shown(end)}, "
                f"tau={shown(tau)}"
            )
            raise ValueError(msg)
        if width < _TINY:
            msg = (
                "(end - start) / tau must be at least the smallest normal float64; "
                f"got start={shown(start)}, end={shown(end)}, tau={shown(tau)}"
            )
            raise ValueError(msg)

        # With z = a + u (b - a): sigmoid(b) - sigmoid(z) = sigmoid(b) sigmoid(-z)
        # (1 - exp(z - b)), and alike for sigmoid(z) - sigmoid(a); so each log
        # is a rise of softplus plus log(1 - exp(-x)) terms, none a difference.
        k = np.arange(1, T + 1, dtype=np.float64)
        done, left = k / T * width, (T - k) / T * width
        log_norm = _log_one_minus_exp_neg(width)
        log_ab = _log_one_minus_exp_neg(left) - _softplus_rise(a, done) - log_norm
        log_1m = _log_one_minus_exp_neg(done) - _softplus_rise(-b, left) - log_norm
        betas = _betas_from_log(log_ab)
        bad = np.flatnonzero(~(betas > 0.0))
        if bad.size:
            i = int(bad[0])
            msg = (
                f"start={shown(start)}, end={shown(end)} and tau={shown(tau)} "
                "make the sigmoid so "
                f"flat at step {i} of T = {T} that beta_{i} rounds to 0 in float64; "
                "take a larger tau or a start nearer 0"
            )
            raise ValueError(msg)
        early = np.flatnonzero(betas[:-1] == 1.0)
        if early.size:
            i = int(early[0])
            msg = (
                f"start={shown(start)}, end={shown(end)} and tau={shown(tau)} "
                "make the sigmoid so "
                f"steep that alphas_cumprod reaches 0 at step {i} of T = {T}, "
                "before the last; take a smaller end / tau"
            )
            raise ValueError(msg)
        return cls._build(log_ab, log_1m)

    # -- derived schedules -------------------------------------------------

    def rescale_zero_terminal_snr(self) -> Schedule:
        """This schedule with alpha_bar shifted and scaled so that its last entry is 0.

        sqrt(alpha_bar) is mapped affinely so that its first value is kept and
        its last becomes exactly 0 (Lin et al. 2023, algorithm 1).  1 - alpha_bar
        is recomputed without cancellation.  Needs T >= 2.

        References
        ----------
        Lin, Liu, Li and Yang (2024), Common Diffusion Noise Schedules and
        Sample Steps are Flawed, algorithm 1.

        Examples
        --------
        >>> s = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
        >>> float(s.alphas_cumprod[-1]), float(s.log_snr[-1])
        (0.0, -inf)
        """
        if len(self) < 2:
            msg = f"rescale_zero_terminal_snr needs T >= 2; got T = {len(self)}"
            raise ValueError(msg)
        root = self.sqrt_alphas_cumprod
        one_minus_root = self._one_minus_alphas_cumprod / (1.0 + root)
        first, last = root[0], root[-1]
        # first - last and root - last from the one-minus table: exact even
        # where every sqrt(alpha_bar) rounds to 1 (betas below 2**-53).
        span = one_minus_root[-1] - one_minus_root[0]
        if not span > 0.0:
            msg = (
                "rescale_zero_terminal_snr needs sqrt(alpha_bar) to fall from its "
                "first step to its last; got 1 - sqrt(alpha_bar) = "
                f"{float(one_minus_root[0])!r} at both"
            )
            raise ValueError(msg)

        # root - last directly where sqrt(alpha_bar) is small (1 - root would
        # round it away), from the one-minus table where it is near 1.
        new_root = np.where(
            root < 0.5, root - last, one_minus_root[-1] - one_minus_root
        ) * (first / span)
        new_root[-1] = 0.0
        # = (first (1 - root) - last (1 - first)) / (first - last), without
        # the cancellation of first (1 - root) - last (1 - first) at t = 0
        new_one_minus_root = (
            first * ((one_minus_root - one_minus_root[0]) / span) + one_minus_root[0]
        )
        new_one_minus_root[-1] = 1.0
        # log sqrt(alpha_bar) from the one-minus root where the root is near 1:
        # log of a root within 1e-4 of 1 keeps only a few digits of it.
        with np.errstate(divide="ignore"):
            log_ab = 2.0 * np.where(
                new_one_minus_root < 0.5,
                np.log1p(-np.minimum(new_one_minus_root, 0.5)),
                np.log(new_root),
            )
        one_minus = new_one_minus_root * (1.0 + new_root)
        return self._derive(log_ab, np.log(one_minus), self.timestep_map, one_minus)

    def respace(self, indices: ArrayLike) -> Schedule:
        """The schedule that keeps only the steps at ``indices``.

        alpha_bar is kept at those steps and beta recomputed from the ratios,
        beta'_j = 1 - alpha_bar_{k_j} / alpha_bar_{k_{j-1}}; ``timestep_map`` of
        the result holds the original timesteps.

        Parameters
        ----------
        indices : array_like of int, shape (K,)
            Strictly increasing timesteps in [0, T).

        Examples
        --------
        >>> s = Schedule.linear(1000).respace(range(0, 1000, 20))
        >>> len(s), int(s.timestep_map[1])
        (50, 20)
        """
        if indices is None or isinstance(indices, (str, bytes)):
            msg = f"indices must be a 1-d array of ints; got {shown(indices)}"
            raise TypeError(msg)
        refuse_bool_items("indices", indices)
        check_dense("indices", indices)
        kept = read_host("indices", indices)
        if kept.ndim != 1 or kept.size < 1:
            msg = f"indices must be a non-empty 1-d array; got shape {kept.shape}"
            raise ValueError(msg)
        if kept.dtype == np.bool_ or not np.issubdtype(kept.dtype, np.integer):
            msg = f"indices must be integers; got dtype {kept.dtype}"
            raise TypeError(msg)
        if kept.min() < 0 or kept.max() >= len(self):
            msg = (
                f"indices must lie in [0, {len(self)}); got values from "
                f"{kept.min()} to {kept.max()}"
            )
            raise ValueError(msg)
        # In range, so int64 holds them; np.diff of unsigned ints would wrap.
        kept = kept.astype(np.int64)
        if (np.diff(kept) <= 0).any():
            msg = f"indices must be strictly increasing (no duplicates); got {kept}"
            raise ValueError(msg)
        return self._derive(
            self._log_alphas_cumprod[kept],
            self._log_one_minus_alphas_cumprod[kept],
            self.timestep_map[kept],
            self._one_minus_alphas_cumprod[kept],
            self._log_alphas_cumprod_lo[kept],
        )

    def with_posterior_log_variance(
        self, first: Literal["next", "floor"] = "next", floor: float | None = None
    ) -> Schedule:
        """This schedule with a chosen convention for log posterior variance at t = 0.

        The posterior variance at t = 0 is exactly 0, so its log is -inf.
        ``"next"`` (the default, as in improved-diffusion) substitutes the
        t = 1 value; ``"floor"`` takes log(max(variance, floor)) everywhere.

        Parameters
        ----------
        first : {"next", "floor"}
        floor : float, optional
            Lower bound for ``"floor"``, in (0, 1] (every posterior variance
            is below 1); 1e-20 when not given.  Giving it with ``"next"``
            raises ValueError, since ``"next"`` has no floor.
        """
        if not isinstance(first, str) or first not in ("next", "floor"):
            msg = f"first must be 'next' or 'floor'; got {shown(first)}"
            raise ValueError(msg) if isinstance(first, str) else TypeError(msg)
        if first == "next" and floor is not None:
            msg = (
                "floor applies to first='floor' only; got first='next' and "
                f"floor={shown(floor)}"
            )
            raise ValueError(msg)
        floor = 1e-20 if floor is None else _check_real("floor", floor)
        if not 0.0 < floor <= 1.0:
            msg = (
                "floor must lie in (0, 1] (every posterior variance is below 1); "
                f"got {shown(floor)}"
            )
            raise ValueError(msg)
        return self._build(
            self._log_alphas_cumprod,
            self._log_one_minus_alphas_cumprod,
            betas=self.betas,
            timestep_map=self.timestep_map,
            first_log_variance=first,
            log_variance_floor=floor,
            one_minus_alphas_cumprod=self._one_minus_alphas_cumprod,
            log_alphas_cumprod_lo=self._log_alphas_cumprod_lo,
        )

    def _derive(
        self,
        log_ab: Float64Array,
        log_1m: Float64Array,
        timestep_map: NDArray[np.int64],
        one_minus: Float64Array,
        log_ab_lo: Float64Array | None = None,
    ) -> Schedule:
        return self._build(
            log_ab,
            log_1m,
            timestep_map=timestep_map,
            first_log_variance=self._first_log_variance,
            log_variance_floor=self.log_variance_floor,
            one_minus_alphas_cumprod=one_minus,
            log_alphas_cumprod_lo=log_ab_lo,
        )

    # -- container behaviour -------------------------------------------------

    def __len__(self) -> int:
        return self._steps

    def __setattr__(self, name: str, value: object) -> None:
        msg = f"Schedule is immutable; cannot set {name!r}"
        raise AttributeError(msg)

    def __delattr__(self, name: str) -> None:
        msg = f"Schedule is immutable; cannot delete {name!r}"
        raise AttributeError(msg)

    def __repr__(self) -> str:
        return (
            f"Schedule(T={len(self)}, alphas_cumprod[0]={self.alphas_cumprod[0]:.6g}, "
            f"alphas_cumprod[-1]={self.alphas_cumprod[-1]:.6g})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self._log_alphas_cumprod,
                self._log_one_minus_alphas_cumprod,
                self.betas,
                self.timestep_map,
                self._first_log_variance,
                self.log_variance_floor,
                self._one_minus_alphas_cumprod,
                self._log_alphas_cumprod_lo,
            ),
        )

    @property
    def log_one_minus_alphas_cumprod(self) -> Float64Array:
        """log(1 - alpha_bar_t), accurate where alpha_bar_t is close to 1."""
        return _public(self._log_one_minus_alphas_cumprod)

    @property
    def log_alphas_cumprod(self) -> Float64Array:
        """log(alpha_bar_t); -inf where alpha_bar_t is 0."""
        return _public(self._log_alphas_cumprod)

    def _log_ratio(self, s: NDArray[np.int64], t: NDArray[np.int64]) -> Float64Array:
        """log(alpha_bar_t / alpha_bar_s) in float64 from the double-double sums."""
        hi, lo = self._log_alphas_cumprod, self._log_alphas_cumprod_lo
        with np.errstate(invalid="ignore"):
            ratio: Float64Array = (hi[t] - hi[s]) + (lo[t] - lo[s])
        return ratio

    def _table(self, name: str) -> Float64Array:
        """The private, owning copy of a table (public or derived), built once."""
        return self._extra[name]

    def _keep(self, name: str, build: Callable[[], Float64Array]) -> None:
        """Keep a table derived from the schedule under ``name``, built once.

        Derived tables are gathered like the schedule's own (host, device and
        rounded copies cached); one is kept per distinct name.
        """
        if name not in self._extra:
            table = _readonly(build())
            with self._lock:
                self._extra.setdefault(name, table)

    def _host_table(self, name: str, dtype: Any) -> NDArray[Any]:
        """Table ``name`` rounded once to NumPy float32 or float64, cached."""
        key = ("host", name, dtype)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._table(name).astype(dtype)
            cached.flags.writeable = False
            with self._lock:
                self._cache[key] = cached
        return cached

    def _on_device(self, name: str, xp: Any, device: Any, dtype: Any) -> Any:
        """Table ``name`` as an array of ``xp`` on ``device``, cached (LRU, bounded)."""
        key = (name, xp.__name__, device, dtype)
        with self._lock:
            table = self._cache.get(key)
            if table is not None:
                self._cache.move_to_end(key)
                return table
        host = self._table(name).astype(_host_dtype(dtype))
        table = xp.asarray(host, device=device)
        if table.dtype != dtype:
            table = xp.astype(table, dtype)
        with self._lock:
            self._cache[key] = table
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return table


_CACHE_LOCK = threading.Lock()


def _after_fork() -> None:
    """A child forked while another thread held the lock gets a free one."""
    global _CACHE_LOCK
    _CACHE_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


_EXTRA: dict[str, Callable[[Schedule], Float64Array]] = {
    "one_minus_alphas_cumprod": lambda s: s._one_minus_alphas_cumprod,
    "log_betas": lambda s: np.log(s.betas),
    "sqrt_alphas": lambda s: np.sqrt(s.alphas),
    "sqrt_betas": lambda s: np.sqrt(s.betas),
    "sqrt_recip_alphas_cumprod": lambda s: np.exp(-0.5 * s._log_alphas_cumprod),
    "posterior_std": lambda s: np.sqrt(s.posterior_variance),
}


def _host_dtype(dtype: Any) -> Any:
    """The NumPy dtype to round a table to before it leaves the host."""
    name = str(dtype).rsplit(".", 1)[-1]
    return np.float64 if name == "float64" else np.float32


def _rebuild(
    log_ab: Float64Array,
    log_1m: Float64Array,
    betas: Float64Array,
    timestep_map: NDArray[np.int64],
    first: str,
    floor: float,
    one_minus: Float64Array,
    log_ab_lo: Float64Array,
) -> Schedule:
    return Schedule._build(
        log_ab, log_1m, betas, timestep_map, first, floor, one_minus, log_ab_lo
    )


def as_schedule(schedule: Any) -> Schedule:
    """Check that the first argument of a public function is a Schedule."""
    if not isinstance(schedule, Schedule):
        msg = f"schedule must be a diffcore.Schedule; got {type(schedule).__name__}"
        raise TypeError(msg)
    return schedule
