"""Samplers as plain steps plus one loop: DDPM, DDIM and DPM-Solver++(2M).

Every step reads the previous timestep from the caller (the sampler's own
timestep array), never as t - T // n; the sentinel ``-1`` names the data
itself, whose alpha_bar is the explicit choice ``final_alpha_cumprod``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import array_api_compat as compat
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import (
    Array,
    Namespace,
    Steps,
    _bounds,
    _readable,
    check_addressable,
    check_dense,
    check_like,
    compute_dtype,
    expand,
    finish,
    from_host,
    gather,
    host_levels,
    namespace,
    namespace_of,
    read_host,
    refuse_bool_items,
    shown,
    timesteps,
    upcast,
)
from ._backends import backend_for
from ._forward import _setup
from ._parameterisation import _x_0_from_eps
from ._random import check_jax_key, check_seed, is_seed, standard_normal_like
from ._reverse import (
    PREDICTION_TYPES,
    VARIANCE_TYPES,
    PredictionType,
    VarianceType,
    _check_finite,
    _check_processing,
    _fixed_large,
    check_choice,
    p_mean_variance,
    predict_x_0_eps,
)
from ._schedule import Schedule, _check_real, as_schedule

Spacing = Literal["leading", "trailing", "linspace"]
FinalAlpha = Literal["one", "first"]
Method = Literal["ddpm", "ddim", "dpmpp_2m"]

SPACINGS = ("leading", "trailing", "linspace")
FINAL_ALPHAS = ("one", "first")
METHODS = ("ddpm", "ddim", "dpmpp_2m")


class Step(NamedTuple):
    """One sampler step: the new state and the x_0 estimate it was built from."""

    x_prev: Array
    x_0_hat: Array


def _check_count(name: str, value: Any, low: int = 1, *, stored: bool = True) -> int:
    """An int of at least ``low``; one that sizes an array (``stored``) fits it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an int; got {shown(value)}"
        raise TypeError(msg)
    if value < low:
        msg = f"{name} must be at least {low}; got {shown(value)}"
        raise ValueError(msg)
    if stored:
        check_addressable(name, value)
    return int(value)


def _round_half_even(num: NDArray[np.int64], den: int) -> NDArray[np.int64]:
    """num / den rounded to the nearest integer, ties to even (as np.round)."""
    q, r = num // den, num % den  # np.divmod has no loop for Python ints
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    rounded: NDArray[np.int64] = q + up
    return rounded


def timesteps_for(
    T: int, n: int, spacing: Spacing = "leading", offset: int = 0
) -> NDArray[np.int64]:
    """n strictly decreasing timesteps in [0, T) for a sampler on n steps.

    .. math::

        \\text{leading: } t_i = \\lfloor T/n \\rfloor i + o, \\quad
        \\text{trailing: } t_i = \\mathrm{round}(T (i+1) / n) - 1, \\quad
        \\text{linspace: } t_i = \\mathrm{round}\\left(i (T-1)/(n-1)\\right)

    for i = 0, ..., n-1, returned from the largest down.  Positions are
    rounded in exact integer arithmetic (ties to even, like ``np.round``), so
    the n values are always distinct.  diffusers rounds float64 values
    instead, whose rounding errors break exact ties either way: at T = 1000
    its trailing and linspace arrays differ by one step at ties for 49 and
    92 of the 1000 values of n, and for 62 more its trailing array has
    n + 1 entries (``leading`` always agrees).  ``offset`` o is added to every
    timestep (diffusers' ``steps_offset``, which it applies to ``leading``
    only); a result outside [0, T) raises, it never produces T.

    The previous timestep of ``t[i]`` is ``t[i + 1]``; that of the last one is
    the data (the sentinel ``-1`` of :func:`ddim_step`).

    Parameters
    ----------
    T : int
        Number of training steps.
    n : int
        Number of sampling steps, 1 <= n <= T.
    spacing : {"leading", "trailing", "linspace"}
        The three rules of Lin et al. (2024), table 2.
    offset : int
        Added to every timestep.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)

    References
    ----------
    Lin, Liu, Li and Yang (2024), Common Diffusion Noise Schedules and Sample
    Steps are Flawed, section 3.3 and table 2.

    Examples
    --------
    >>> import diffcore
    >>> diffcore.timesteps_for(1000, 10, "trailing").tolist()
    [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    """
    T = _check_count("T", T, stored=False)  # only its n picks are stored
    n = _check_count("n", n)
    check_choice("spacing", spacing, SPACINGS)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        msg = f"offset must be an int; got {shown(offset)}"
        raise TypeError(msg)
    if T >= 2**63:
        msg = f"T must be below 2**63, so that timesteps fit in int64; got {T}"
        raise ValueError(msg)
    if n > T:
        msg = f"n must be at most T = {T} sampling steps; got n = {n}"
        raise ValueError(msg)
    if not -T < offset < T:
        msg = f"offset must lie in (-T, T) = ({-T}, {T}); got {offset}"
        raise ValueError(msg)

    i = np.arange(n, dtype=np.int64)
    if n * T >= 2**63:
        # Products such as (i + 1) T would overflow int64: Python ints instead.
        i = i.astype(object)
    if spacing == "leading":
        steps = (T // n) * i
    elif spacing == "trailing":
        steps = _round_half_even((i + 1) * T, n) - 1
    else:
        steps = _round_half_even(i * (T - 1), max(n - 1, 1))
    steps = steps[::-1] + int(offset)

    if steps[-1] < 0 or steps[0] >= T:
        msg = (
            f"offset = {offset} moves {shown(spacing)} timesteps for n = {n} outside "
            f"[0, {T}): they would run from {steps[-1]} to {steps[0]}"
        )
        raise ValueError(msg)
    return np.ascontiguousarray(steps, dtype=np.int64)


def karras_sigmas(
    n: int, sigma_min: float, sigma_max: float, rho: float = 7.0
) -> NDArray[np.float64]:
    """n noise levels from sigma_max down to sigma_min, spaced as Karras et al.

    .. math::

        \\sigma_i = \\left(\\sigma_{max}^{1/\\rho} + \\tfrac{i}{n-1}
        (\\sigma_{min}^{1/\\rho} - \\sigma_{max}^{1/\\rho})\\right)^\\rho

    Parameters
    ----------
    n : int
        Number of levels, at least 1 (n = 1 gives sigma_max).
    sigma_min, sigma_max : float
        0 < sigma_min < sigma_max, on the variance-exploding scale
        sigma = sqrt((1 - alpha_bar) / alpha_bar).
    rho : float
        Positive and finite; 7 in the paper.  The levels are computed in log
        space, start at sigma_max and end at sigma_min exactly.

    Returns
    -------
    numpy.ndarray of float64, shape (n,), decreasing

    References
    ----------
    Karras, Aittala, Aila and Laine (2022), Elucidating the Design Space of
    Diffusion-Based Generative Models, eq. 5.

    Examples
    --------
    >>> import diffcore
    >>> diffcore.karras_sigmas(3, 0.002, 80.0).round(4).tolist()
    [80.0, 2.5152, 0.002]
    """
    n = _check_count("n", n)
    sigma_min = _check_real("sigma_min", sigma_min, finite=False)
    sigma_max = _check_real("sigma_max", sigma_max, finite=False)
    rho = _check_real("rho", rho, finite=False)
    if not (0.0 < sigma_min < sigma_max < math.inf):
        msg = (
            "sigma_min and sigma_max must satisfy 0 < sigma_min < sigma_max < inf; "
            f"got sigma_min={shown(sigma_min)}, sigma_max={shown(sigma_max)}"
        )
        raise ValueError(msg)
    if not 0.0 < rho < math.inf:
        msg = f"rho must be positive and finite; got {shown(rho)}"
        raise ValueError(msg)

    # sigma_max (1 + i/(n-1) (e^d - 1))^rho with d = log(sigma_min / sigma_max)
    # / rho, in log space: the roots sigma^(1/rho) overflow for small rho.
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    d = (math.log(sigma_min) - math.log(sigma_max)) / rho
    with np.errstate(divide="ignore"):  # log 0 at the end, replaced below
        log_sigmas = math.log(sigma_max) + rho * np.log1p(ramp * math.expm1(d))
    sigmas: NDArray[np.float64] = np.exp(log_sigmas)
    sigmas[0] = sigma_max
    if n > 1:
        sigmas[-1] = sigma_min
    # Each level lies in [sigma_min, sigma_max]; clipping keeps rounding there.
    return np.clip(sigmas, sigma_min, sigma_max)


def timesteps_for_sigmas(schedule: Schedule, sigmas: ArrayLike) -> NDArray[np.int64]:
    """The schedule's timesteps nearest (in log sigma) to given noise levels.

    .. math::

        t_i = \\arg\\min_t |\\log \\sigma_t - \\log \\sigma_i|

    Repeated timesteps are dropped, so the result may be shorter than
    ``sigmas``; it is strictly decreasing (the sampling order, whatever the
    order of ``sigmas``: it is a set of levels, not a pairing with them)
    and lies in [0, T).

    Parameters
    ----------
    schedule : Schedule
    sigmas : array_like of float, shape (n,)
        Positive finite noise levels, for example from :func:`karras_sigmas`
        (inf, NaN, zero or negative levels raise ValueError).

    Returns
    -------
    numpy.ndarray of int64

    Examples
    --------
    >>> import diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> sig = diffcore.karras_sigmas(5, float(s.sigmas[0]), float(s.sigmas[-1]))
    >>> diffcore.timesteps_for_sigmas(s, sig).tolist()
    [999, 843, 593, 142, 0]
    """
    schedule = as_schedule(schedule)
    refuse_bool_items("sigmas", sigmas)
    levels = host_levels("sigmas", sigmas, refuse_bools=True)
    if levels.ndim != 1 or levels.size < 1:
        msg = f"sigmas must be a non-empty 1-d array; got shape {levels.shape}"
        raise ValueError(msg)
    good = (levels > 0.0) & (levels < math.inf)
    if not bool(np.all(good)):
        i = int(np.flatnonzero(~good)[0])
        msg = (
            f"sigmas must be positive and finite; got sigmas[{i}] = "
            f"{float(levels[i])!r}"
        )
        raise ValueError(msg)

    # log sigma_t; inf where alpha_bar_t = 0 (zero terminal SNR), which is
    # then never nearest to a finite level.
    with np.errstate(divide="ignore", invalid="ignore"):
        table = 0.5 * (
            schedule.log_one_minus_alphas_cumprod - schedule.log_alphas_cumprod
        )
        distance = np.abs(table[None, :] - np.log(levels)[:, None])
    nearest = np.unique(np.argmin(distance, axis=1))
    return np.ascontiguousarray(nearest[::-1].astype(np.int64))


# TODO(#7): 3.8-4.6x faster than diffusers at 1x3x32x32 over the runs (target
# 4x): five torch kernels and a finiteness sum (~11 us) plus ~9 us of checks.
def ddpm_step(
    schedule: Schedule,
    model_output: Array,
    x_t: Array,
    t: Any,
    noise: Array,
    *,
    prediction_type: PredictionType = "epsilon",
    variance_type: VarianceType = "fixed_small",
    clip_denoised: tuple[float, float] | None = None,
    dynamic_threshold: float | None = None,
    out: Array | None = None,
) -> Step:
    """Draw x_{t-1} from the reverse step p(x_{t-1} | x_t) (ancestral sampling).

    .. math::

        x_{t-1} = \\tilde\\mu_t(x_t, \\hat x_0) + \\mathbb 1[t > 0]\\,
        e^{\\frac12 \\log \\Sigma_t}\\, z

    No noise is added at t = 0, whatever the variance type.  On a respaced
    schedule (:meth:`Schedule.respace`) t is the index into that schedule;
    the model should have been called with ``schedule.timestep_map[t]``.

    Parameters
    ----------
    schedule : Schedule
    model_output : array
        See :func:`p_mean_variance`.
    x_t : array, shape (B, ...)
    t : int or integer array of shape () or (B,)
    noise : array of x_t's shape, dtype and device
        Standard normal draws z.
    prediction_type, variance_type, clip_denoised, dynamic_threshold
        As in :func:`p_mean_variance`.
    out : array, optional
        Where to write x_{t-1}: an array like x_t (it may be x_t itself, or
        overlap any input).  NumPy, PyTorch, CuPy and array-api-strict only;
        JAX and Dask arrays raise TypeError.

    Returns
    -------
    Step
        ``x_prev`` (``out`` when given) and ``x_0_hat``, of x_t's shape and
        dtype.

    References
    ----------
    Ho et al. (2020), algorithm 2.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(10)
    >>> step = diffcore.ddpm_step(s, np.zeros(2), np.ones(2), 0, np.ones(2))
    >>> np.round(step.x_prev, 6).tolist()
    [1.00005, 1.00005]
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_choice("variance_type", variance_type, VARIANCE_TYPES)
    dynamic_threshold = _check_processing(clip_denoised, dynamic_threshold)
    if variance_type in ("learned", "learned_range"):
        namespace(x_t=x_t, model_output=model_output)
        reverse = p_mean_variance(
            schedule,
            model_output,
            x_t,
            t,
            prediction_type=prediction_type,
            variance_type=variance_type,
            clip_denoised=clip_denoised,
            dynamic_threshold=dynamic_threshold,
        )
        schedule, xp, steps = _setup(schedule, t, "x_t", x_t, out=out, noise=noise)
        log_std = 0.5 * upcast(xp, reverse.log_variance)
        std = xp.exp(log_std) * _nonzero(xp, steps, x_t)
        terms = [(1.0, reverse.mean), (std, noise)]
        x_0_hat = _kept(xp, reverse.x_0_hat, out)
        x_prev = backend_for(x_t).linear(xp, terms, x_t.dtype, out)
        return Step(x_prev, x_0_hat)

    schedule, xp, steps = _setup(
        schedule, t, "x_t", x_t, out=out, model_output=model_output, noise=noise
    )
    _check_finite(xp, "model_output", model_output)
    options = (prediction_type, clip_denoised, dynamic_threshold)
    x_0_hat, _ = _estimates(schedule, xp, steps, model_output, x_t, t, options)
    kept = _kept(xp, _rounded(xp, x_0_hat, x_t.dtype), out)
    # Ho et al. 2020, eq. 7 and algorithm 2: posterior mean at x_0_hat plus noise
    terms = [
        (gather(schedule, "posterior_mean_coef_x0", steps, xp, x_t), x_0_hat),
        (gather(schedule, "posterior_mean_coef_xt", steps, xp, x_t), x_t),
        (_fixed_std(schedule, xp, steps, x_t, variance_type), noise),
    ]
    x_prev = backend_for(x_t).linear(xp, terms, x_t.dtype, out)
    return Step(x_prev, kept)


def _estimates(
    schedule: Schedule,
    xp: Namespace,
    steps: Steps,
    model_output: Array,
    x_t: Array,
    t: Any,
    options: tuple[PredictionType, Any, Any],
) -> tuple[Array, Array]:
    """x_0_hat and eps_hat for a step whose inputs its caller has checked.

    ``options`` is (prediction_type, clip_denoised, dynamic_threshold).  The
    plain epsilon case, the common one, does not pass through the public edge
    of :func:`predict_x_0_eps` a second time.  For float16 and bfloat16
    samples the estimates stay in the compute dtype (float32), so that the
    step built from them rounds once; its caller rounds the x_0_hat it returns.
    """
    prediction_type, clip_denoised, dynamic_threshold = options
    work = compute_dtype(xp, x_t.dtype)
    if work != x_t.dtype:
        model_output, x_t = xp.astype(model_output, work), xp.astype(x_t, work)
    plain = clip_denoised is None and dynamic_threshold is None
    if prediction_type == "epsilon" and plain:
        return _x_0_from_eps(schedule, xp, steps, x_t, model_output), model_output
    return predict_x_0_eps(
        schedule,
        model_output,
        x_t,
        t,
        prediction_type=prediction_type,
        clip_denoised=clip_denoised,
        dynamic_threshold=dynamic_threshold,
    )


def _rounded(xp: Namespace, x_0_hat: Array, dtype: Any) -> Array:
    """The x_0_hat a step returns: rounded to the sample dtype (half precision)."""
    return x_0_hat if x_0_hat.dtype == dtype else finish(xp, x_0_hat, dtype)


def _kept(xp: Namespace, x_0_hat: Array, out: Array | None) -> Array:
    """x_0_hat, copied when writing ``out`` would overwrite it.

    With x_0-prediction x_0_hat is the model output itself, which may be
    ``out``; the step returns x_0_hat, so it must survive the write.
    """
    if out is None or not backend_for(out).may_share_memory(out, x_0_hat):
        return x_0_hat
    return xp.asarray(x_0_hat, copy=True)


def _fixed_std(
    schedule: Schedule, xp: Namespace, steps: Steps, x: Array, variance_type: str
) -> float | Array:
    """The standard deviation of a fixed-variance DDPM step, 0 at t = 0.

    From the float64 log variance on the host when t was readable.
    """
    if isinstance(steps._index, int) and variance_type == "fixed_small":
        # One timestep: a Python float, as gather gives for an int t.
        t = steps._index
        log_variance = float(schedule._table("posterior_log_variance_clipped")[t])
        return math.exp(0.5 * log_variance) if t != 0 else 0.0
    if steps.host is not None:
        if variance_type == "fixed_large":
            log_variance = np.log(_large_variances(schedule)[steps.host])
        else:
            log_variance = schedule._table("posterior_log_variance_clipped")[steps.host]
        return from_host(xp, np.exp(0.5 * log_variance) * (steps.host != 0), x)
    if variance_type == "fixed_large":
        _, log_variance = _fixed_large(schedule, xp, steps, x)
    else:
        log_variance = gather(schedule, "posterior_log_variance_clipped", steps, xp, x)
    return xp.exp(0.5 * log_variance) * _nonzero(xp, steps, x)


def _large_variances(schedule: Schedule) -> NDArray[np.float64]:
    """beta_t with the t = 1 posterior variance at t = 0 (see ``_fixed_large``)."""
    table = schedule.betas.copy()
    if len(schedule) > 1:
        table[0] = schedule.posterior_variance[1]
    return table


def _nonzero(xp: Namespace, steps: Steps, x: Array) -> float | Array:
    """1 where t > 0 and 0 where t = 0, ready to broadcast on x."""
    if steps.host is not None:
        return from_host(xp, (steps.host != 0).astype(np.float64), x)
    mask = xp.astype(steps.index != 0, upcast(xp, x).dtype)
    return expand(xp, mask, x.ndim)


def _previous(
    xp: Namespace, schedule: Schedule, t_prev: Any, t: Steps, x: Array
) -> tuple[Steps, Any]:
    """Validate t_prev in [-1, t); return its steps (-1 read as 0) and the -1 mask.

    The mask is a NumPy bool array when t_prev was readable, else an array on
    x's device.
    """
    size = len(schedule)
    if isinstance(t_prev, bool) or isinstance(t_prev, float):
        msg = f"t_prev must be an integer timestep or -1; got {shown(t_prev)}"
        raise TypeError(msg)
    if type(t_prev) is int and -1 <= t_prev < size:
        # The common case of a sampler loop, checked without NumPy.
        if t.host is not None and t.host.size and t_prev >= _bounds(t.host)[0]:
            msg = f"t_prev must be smaller than t; got t_prev = {t_prev}, t = {t.host}"
            raise ValueError(msg)
        steps = timesteps(xp, max(t_prev, 0), size, x, name="t_prev")
        return steps, np.asarray(t_prev < 0)
    if isinstance(t_prev, (int, np.integer)) and not -1 <= t_prev < size:
        msg = f"t_prev must lie in [-1, {size}) (-1 for the data); got {shown(t_prev)}"
        raise ValueError(msg)
    if not isinstance(
        t_prev, (int, np.integer, list, tuple)
    ) and not compat.is_array_api_obj(t_prev):
        msg = (
            "t_prev must be an integer timestep, -1 or an integer array; "
            f"got {shown(t_prev)}"
        )
        raise TypeError(msg)
    check_dense("t_prev", t_prev)
    readable = isinstance(t_prev, (int, np.integer, list, tuple, np.ndarray)) or (
        compat.is_array_api_obj(t_prev)
        and (namespace_of(t_prev, "t_prev") is not xp or _readable(xp, t_prev))
    )
    if not readable:
        array: Array = t_prev  # an array of x's library, on a device or traced
        final = array < 0
        clamped = xp.where(final, xp.zeros_like(array), array)
        steps = timesteps(xp, clamped, size, x, name="t_prev")
        return steps, expand(xp, xp.astype(final, upcast(xp, x).dtype), x.ndim)

    refuse_bool_items("t_prev", t_prev)
    host = read_host("t_prev", t_prev)
    if host.size == 0 and isinstance(t_prev, (list, tuple)):
        host = host.astype(np.int64)  # no values to tell the dtype: a shape error
    if not np.issubdtype(host.dtype, np.integer):
        msg = f"t_prev must have an integer dtype; got {host.dtype}"
        raise TypeError(msg)
    low, high = _bounds(host)
    if low < -1 or high >= size:
        got = f"got {low}" if low == high else f"got values from {low} to {high}"
        msg = f"t_prev must lie in [-1, {size}) (-1 for the data); {got}"
        raise ValueError(msg)
    if t.host is not None and np.any(host >= t.host):
        msg = f"t_prev must be smaller than t; got t_prev = {host}, t = {t.host}"
        raise ValueError(msg)
    clamped_host = np.where(host < 0, 0, host).astype(np.int64)
    clamped_value: Any = int(clamped_host) if host.ndim == 0 else clamped_host
    if isinstance(t_prev, (int, np.integer)):
        clamped_value = int(clamped_host)
    steps = timesteps(xp, clamped_value, size, x, name="t_prev")
    return steps, np.asarray(host < 0)


def _ddim_coefficients(
    mod: Namespace, la_t: Any, l1m_t: Any, la_p: Any, l1m_p: Any, eta: float
) -> tuple[Any, Any, Any]:
    """Weights of x_0_hat and eps_hat and the noise scale of one DDIM step.

    With r = alpha_bar_t / alpha_bar_prev, sigma^2 = eta^2 (1 - alpha_bar_prev)
    (1 - r) / (1 - alpha_bar_t), and the direction weight squared,
    1 - alpha_bar_prev - sigma^2, is written as (1 - alpha_bar_prev) ((1 -
    eta^2) + eta^2 r (1 - alpha_bar_prev) / (1 - alpha_bar_t)): a sum of
    non-negative terms, free of cancellation.
    """
    one_minus_ratio = -mod.expm1(la_t - la_p)
    variance = eta**2 * mod.exp(l1m_p - l1m_t) * one_minus_ratio
    kept = (1.0 - eta**2) + eta**2 * mod.exp(la_t - la_p + l1m_p - l1m_t)
    direction = mod.sqrt(mod.exp(l1m_p) * kept)
    return mod.exp(0.5 * la_p), direction, mod.sqrt(variance)


def _one_or_all(values: Any) -> NDArray[np.float64]:
    """Host weights as a 0-d array when there is one value, else as they are."""
    host: NDArray[np.float64] = np.asarray(values, dtype=np.float64)
    return host.reshape(()) if host.size == 1 else host


def _final_logs(schedule: Schedule, final_alpha_cumprod: str) -> tuple[float, float]:
    """log alpha_bar and log(1 - alpha_bar) of the data, x_{-1}."""
    if final_alpha_cumprod == "one":
        return 0.0, -math.inf
    return (
        float(schedule._log_alphas_cumprod[0]),
        float(schedule._log_one_minus_alphas_cumprod[0]),
    )


def _step_logs(
    schedule: Schedule,
    xp: Namespace,
    t: Steps,
    prev: Steps,
    final: Any,
    final_alpha_cumprod: str,
    x: Array,
) -> tuple[Any, Any, Any, Any, Namespace]:
    """log alpha_bar and log(1 - alpha_bar) at t and at the previous step.

    Float64 NumPy values when every timestep was readable, else arrays on x's
    device; returns the namespace to compute with.
    """
    la, l1m = schedule._log_alphas_cumprod, schedule._log_one_minus_alphas_cumprod
    la_final, l1m_final = _final_logs(schedule, final_alpha_cumprod)
    if t.host is not None and prev.host is not None and isinstance(final, np.ndarray):
        if t.host.size == prev.host.size == 1:
            # One timestep pair: Python floats, for math's scalar functions.
            at_final = bool(final.item())
            j = prev.host.item()
            return (
                float(la[t.host.item()]),
                float(l1m[t.host.item()]),
                la_final if at_final else float(la[j]),
                l1m_final if at_final else float(l1m[j]),
                math,
            )
        la_p = np.where(final, la_final, la[prev.host])
        l1m_p = np.where(final, l1m_final, l1m[prev.host])
        return la[t.host], l1m[t.host], la_p, l1m_p, np

    dtype, device = upcast(xp, x).dtype, compat.device(x)

    def as_array(value: Any) -> Array:
        if isinstance(value, float):
            return xp.asarray(value, dtype=dtype, device=device)
        return value

    if isinstance(final, np.ndarray):
        final = expand(xp, xp.asarray(final, device=device), x.ndim)
    else:
        final = final > 0.5
    names = ("log_alphas_cumprod", "log_one_minus_alphas_cumprod")
    la_t, l1m_t = (as_array(gather(schedule, n, t, xp, x)) for n in names)
    la_p, l1m_p = (as_array(gather(schedule, n, prev, xp, x)) for n in names)
    la_p = xp.where(final, as_array(la_final), la_p)
    l1m_p = xp.where(final, as_array(l1m_final), l1m_p)
    return la_t, l1m_t, la_p, l1m_p, xp


# TODO(#7): 2.4-3.0x faster than diffusers at 1x3x32x32 (target 4x): four
# torch kernels and a finiteness sum (~10 us) plus ~9 us of Python checks.
def ddim_step(
    schedule: Schedule,
    model_output: Array,
    x_t: Array,
    t: Any,
    t_prev: Any,
    *,
    eta: float = 0.0,
    noise: Array | None = None,
    prediction_type: PredictionType = "epsilon",
    clip_denoised: tuple[float, float] | None = None,
    dynamic_threshold: float | None = None,
    final_alpha_cumprod: FinalAlpha = "one",
    out: Array | None = None,
) -> Step:
    """One DDIM step from timestep t to t_prev < t (-1 for the data).

    .. math::

        x_{prev} = \\sqrt{\\bar\\alpha_{prev}}\\, \\hat x_0
        + \\sqrt{1 - \\bar\\alpha_{prev} - \\sigma^2}\\, \\hat\\epsilon
        + \\sigma z, \\qquad
        \\sigma = \\eta \\sqrt{\\frac{1-\\bar\\alpha_{prev}}{1-\\bar\\alpha_t}}
        \\sqrt{1 - \\frac{\\bar\\alpha_t}{\\bar\\alpha_{prev}}}

    t_prev comes from the sampler's timestep array (``timesteps[i + 1]``), so
    any spacing works.  At t_prev = -1, alpha_bar_prev is the explicit choice
    ``final_alpha_cumprod``: ``"one"`` (the data itself: the step returns
    x_0_hat; diffusers' ``set_alpha_to_one=True``) or ``"first"``
    (alpha_bar_0, i.e. the step lands on timestep 0;
    ``set_alpha_to_one=False``).  eta = 0 is deterministic; eta = 1 is
    ancestral sampling on the schedule respaced to the sampler's timesteps.

    With v-prediction the step is finite even where alpha_bar_t = 0 (zero
    terminal SNR); with eps-prediction x_0 is undefined there and a readable
    t raises.  When x_0_hat is clipped or thresholded, eps_hat is recomputed
    from it (improved-diffusion's choice; diffusers'
    ``use_clipped_model_output=True``).

    Parameters
    ----------
    schedule : Schedule
    model_output : array of x_t's shape, dtype and device
    x_t : array, shape (B, ...)
    t : int or integer array of shape () or (B,)
    t_prev : int or integer array of shape () or (B,)
        In [-1, t).
    eta : float
        In [0, 1].
    noise : array, optional
        Standard normal draws of x_t's shape; needed when eta > 0.
    prediction_type, clip_denoised, dynamic_threshold
        As in :func:`p_mean_variance`.
    final_alpha_cumprod : {"one", "first"}
    out : array, optional
        Where to write x_prev: an array like x_t (it may be x_t itself, or
        overlap any input).  NumPy, PyTorch, CuPy and array-api-strict only;
        JAX and Dask arrays raise TypeError.

    Returns
    -------
    Step
        ``x_prev`` (``out`` when given) and ``x_0_hat``, of x_t's shape and
        dtype.

    References
    ----------
    Song, Meng and Ermon (2021), Denoising Diffusion Implicit Models, eqs. 12
    and 16.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> step = diffcore.ddim_step(s, np.zeros(2), np.ones(2), 999, -1)
    >>> np.round(step.x_prev, 4).tolist()
    [157.4105, 157.4105]
    """
    check_choice("final_alpha_cumprod", final_alpha_cumprod, FINAL_ALPHAS)
    _check_eta(eta)
    if eta > 0.0 and noise is None:
        msg = f"noise is needed when eta > 0; got eta = {eta} and noise = None"
        raise ValueError(msg)
    dynamic_threshold = _check_processing(clip_denoised, dynamic_threshold)
    more = {"model_output": model_output}
    if noise is not None:
        more["noise"] = noise
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, out=out, **more)
    _check_finite(xp, "model_output", model_output)
    prev, final = _previous(xp, schedule, t_prev, steps, x_t)

    options = (prediction_type, clip_denoised, dynamic_threshold)
    x_0_hat, eps_hat = _estimates(schedule, xp, steps, model_output, x_t, t, options)
    la_t, l1m_t, la_p, l1m_p, mod = _step_logs(
        schedule, xp, steps, prev, final, final_alpha_cumprod, x_t
    )
    logs = la_t, l1m_t, la_p, l1m_p
    if mod is math:
        try:
            a, b, c = _ddim_coefficients(math, *logs, float(eta))
        except (OverflowError, ValueError):
            # math raises where NumPy returns inf or NaN: keep NumPy's answer.
            mod = np
    if mod is not math:
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b, c = _ddim_coefficients(mod, *logs, float(eta))
    if mod is np:
        # One sample's weights go to the backend as Python floats, like int t.
        a, b, c = (from_host(xp, _one_or_all(v), x_t) for v in (a, b, c))

    # Song et al. 2021, eq. 12: x_0_hat, the direction to x_t, and fresh noise
    terms = [(a, x_0_hat), (b, eps_hat)]
    if noise is not None and eta > 0.0:
        terms.append((c, noise))
    kept = _kept(xp, _rounded(xp, x_0_hat, x_t.dtype), out)
    return Step(backend_for(x_t).linear(xp, terms, x_t.dtype, out), kept)


def dpmpp_2m_step(
    schedule: Schedule,
    x_t: Array,
    x_0_hat: Array,
    t: int,
    t_prev: int,
    *,
    previous: tuple[Array, int] | None = None,
    final_alpha_cumprod: FinalAlpha = "one",
) -> Array:
    """One step of DPM-Solver++(2M) from timestep t to t_prev (-1: the data).

    .. math::

        x_{prev} = \\frac{\\sigma_{prev}}{\\sigma_t} x_t
        - \\alpha_{prev} (e^{-h} - 1) D, \\quad
        D = (1 + \\tfrac{1}{2r}) \\hat x_0 - \\tfrac{1}{2r} \\hat x_0^{last}

    with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar), lambda =
    log(alpha / sigma) (half the log SNR), h = lambda_prev - lambda_t and r =
    h_last / h.  ``previous`` is (x_0_hat, timestep) of the step before this
    one (None on the first step, which is then first order, i.e. DDIM with
    eta = 0).  The step to the data (t_prev = -1 with ``final_alpha_cumprod
    = "one"``) is first order and returns x_0_hat, as in ``lower_order_final``.

    Parameters
    ----------
    schedule : Schedule
    x_t, x_0_hat : arrays of one shape (B, ...), dtype and device
        x_0_hat, the model's estimate, must be finite (checked where reading
        it is cheap, as in :func:`p_mean_variance`).
    t, t_prev : int
        Timesteps with -1 <= t_prev < t < T: Python or NumPy integers, or
        0-d integer arrays readable on the host (a loop over diffusers'
        ``scheduler.timesteps`` passes CPU tensors); one for the whole batch.
    previous : (array, int), optional
        The x_0 estimate at the step before, an array like x_t (finite
        where reading it is cheap), and its timestep, in (t, T).
    final_alpha_cumprod : {"one", "first"}
        As in :func:`ddim_step`.

    Returns
    -------
    array
        x_prev, of x_t's shape and dtype.

    References
    ----------
    Lu, Zhou, Bao, Chen, Li and Zhu (2022), DPM-Solver++: Fast Solver for
    Guided Sampling of Diffusion Probabilistic Models, algorithm 2.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> diffcore.dpmpp_2m_step(s, np.ones(2), np.zeros(2), 999, -1).tolist()
    [0.0, 0.0]
    """
    check_choice("final_alpha_cumprod", final_alpha_cumprod, FINAL_ALPHAS)
    t, t_prev = _check_int("t", t), _check_int("t_prev", t_prev)
    schedule, xp, _ = _setup(schedule, t, "x_t", x_t, x_0_hat=x_0_hat)
    _check_finite(xp, "x_0_hat", x_0_hat)
    if not -1 <= t_prev < t:
        msg = f"t_prev must lie in [-1, t = {t}); got {t_prev}"
        raise ValueError(msg)
    if previous is not None:
        previous = _check_previous(xp, schedule, previous, t, x_t)
    return _dpmpp_2m(
        schedule, xp, x_t, x_0_hat, t, t_prev, previous, final_alpha_cumprod
    )


def _check_int(name: str, value: Any) -> int:
    """An integer of any type (not bool), or a 0-d integer array of any
    library whose value can be read here (diffusers loops pass 0-d tensors),
    as a Python int; else a TypeError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if compat.is_array_api_obj(value) and getattr(value, "ndim", None) == 0:
        if backend_for(value).readable(value):
            host = read_host(name, value)
            if host.dtype.kind in "iu":
                return int(host)
    msg = (
        f"{name} must be an int, or a 0-d integer array readable on the host "
        f"(else pass int({name})); got {shown(value)}"
    )
    raise TypeError(msg)


def _check_previous(
    xp: Namespace, schedule: Schedule, previous: Any, t: int, x_t: Array
) -> tuple[Array, int]:
    """(x_0_hat, timestep) of the step before t: noisier, and an array like x_t."""
    if not isinstance(previous, tuple) or len(previous) != 2:
        msg = (
            "previous must be None or a pair (x_0_hat, t) from the step before; "
            f"got {_kind(previous)}"
            + (f" of length {len(previous)}" if isinstance(previous, tuple) else "")
        )
        raise TypeError(msg)
    x_0_last, t_last = previous[0], _check_int("previous[1]", previous[1])
    if not t < t_last < len(schedule):
        msg = (
            f"previous[1], the timestep of the step before, must lie in "
            f"(t, T) = ({t}, {len(schedule)}); got {t_last}"
        )
        raise ValueError(msg)
    arrays = {"x_t": x_t, "previous[0]": x_0_last}
    namespace(**arrays)
    check_like(xp, "x_t", **arrays)
    _check_finite(xp, "previous[0]", x_0_last)
    return x_0_last, t_last


def _dpmpp_2m(
    schedule: Schedule,
    xp: Namespace,
    x_t: Array,
    x_0_hat: Array,
    t: int,
    t_prev: int,
    previous: tuple[Array, int] | None,
    final_alpha_cumprod: str,
) -> Array:
    """The DPM-Solver++(2M) update of :func:`dpmpp_2m_step`, on checked input."""
    la_final, l1m_final = _final_logs(schedule, final_alpha_cumprod)
    la, l1m = schedule._log_alphas_cumprod, schedule._log_one_minus_alphas_cumprod
    la_p = la_final if t_prev < 0 else float(la[t_prev])
    l1m_p = l1m_final if t_prev < 0 else float(l1m[t_prev])
    if math.isinf(l1m_p):
        return finish(xp, upcast(xp, x_0_hat), x_t.dtype)

    half_log_snr = 0.5 * (la - l1m)
    lam_t, lam_p = float(half_log_snr[t]), 0.5 * (la_p - l1m_p)
    h = lam_p - lam_t
    d = upcast(xp, x_0_hat)
    # h = 0 (from t = 0 to final_alpha_cumprod = "first") is the identity.
    if previous is not None and h != 0.0:
        x_0_last, t_last = previous
        r = (lam_t - float(half_log_snr[t_last])) / h
        d = (1.0 + 0.5 / r) * d - (0.5 / r) * upcast(xp, x_0_last)

    ratio = math.exp(0.5 * (l1m_p - float(l1m[t])))
    weight = -math.exp(0.5 * la_p) * math.expm1(-h)
    return finish(xp, ratio * upcast(xp, x_t) + weight * d, x_t.dtype)


def _check_sampler_timesteps(values: Any, size: int, method: str) -> NDArray[np.int64]:
    if values is None:
        return np.arange(size - 1, -1, -1, dtype=np.int64)
    refuse_bool_items("timesteps", values)
    steps = read_host("timesteps", values)
    if steps.size == 0 and not compat.is_array_api_obj(values):
        # An empty list reads as float64; it is refused for being empty.
        steps = steps.astype(np.int64)
    if steps.dtype == np.bool_ or not np.issubdtype(steps.dtype, np.integer):
        msg = f"timesteps must be integers; got dtype {steps.dtype}"
        raise TypeError(msg)
    if steps.ndim != 1 or steps.size < 1:
        msg = f"timesteps must be a non-empty 1-d array; got shape {steps.shape}"
        raise ValueError(msg)
    in_range = steps.min() >= 0 and steps.max() < size
    # In int64 once in range: np.diff of unsigned values wraps around.
    steps = steps.astype(np.int64) if in_range else steps
    if not in_range or np.any(np.diff(steps) >= 0):
        msg = (
            f"timesteps must be strictly decreasing values in [0, {size}); got "
            f"{steps.tolist()[:8]}{'...' if steps.size > 8 else ''}"
        )
        raise ValueError(msg)
    if method == "ddpm" and np.any(np.diff(steps) != -1):
        i = int(np.flatnonzero(np.diff(steps) != -1)[0])
        msg = (
            "timesteps for method='ddpm' must be consecutive (t, t-1, ...); got "
            f"timesteps[{i}] = {int(steps[i])} followed by {int(steps[i + 1])}; "
            "to sample on fewer steps, respace the schedule (Schedule.respace) "
            "or use method='ddim' with eta=1"
        )
        raise ValueError(msg)
    return steps


def _noise_source(
    generator: Any, count: int, x: Array
) -> Callable[[int, Array], Array]:
    """Noise for step i: per-step seeds or keys, or one generator object."""
    generator = check_seed("generator", generator)
    if compat.is_jax_array(x) and generator is None:
        # JAX has no global random state: a step that draws is refused.
        return lambda i, x: check_jax_key("generator", None)
    if compat.is_jax_array(x) and not is_seed(generator):
        generator = check_jax_key("generator", generator)
    if isinstance(generator, int):
        seeds = np.random.SeedSequence(generator).generate_state(max(count, 1))
        return lambda i, x: standard_normal_like(x, int(seeds[i]))
    if compat.is_jax_array(generator):
        import jax

        # A JAX key gives the same draws every time: one subkey per step.
        keys = jax.random.split(generator, max(count, 1))
        return lambda i, x: standard_normal_like(x, keys[i])
    return lambda i, x: standard_normal_like(x, generator)


def _check_eta(eta: Any) -> None:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        # Rare: NumPy's real scalars are numbers too; no bool is.
        numpy_real = isinstance(eta, (np.integer, np.floating))
        if not numpy_real or isinstance(eta, np.bool_):
            msg = f"eta must be a float in [0, 1]; got {shown(eta)}"
            raise TypeError(msg)
    if not 0.0 <= eta <= 1.0:
        msg = f"eta must lie in [0, 1]; got {shown(eta)}"
        raise ValueError(msg)


def _check_options(
    method: str, eta: Any, progress: Any, variance_type: str, final_alpha: Any
) -> None:
    """Refuse a bad option of :func:`sample`, or one its method would ignore."""
    check_choice("final_alpha_cumprod", final_alpha, FINAL_ALPHAS)
    _check_eta(eta)
    if progress is not None and not callable(progress):
        msg = f"progress must be None or callable as progress(i, t, x); got {progress}"
        raise TypeError(msg)
    ignored = [
        ("eta", eta, 0.0, "ddim"),
        ("variance_type", variance_type, "fixed_small", "ddpm"),
        ("final_alpha_cumprod", final_alpha, "one", "ddim or dpmpp_2m"),
    ]
    for name, value, default, used_by in ignored:
        if value != default and method not in used_by.split(" or "):
            msg = (
                f"{name} applies to method={used_by} only; got {name}={shown(value)} "
                f"with method={shown(method)} (leave it at {shown(default)})"
            )
            raise ValueError(msg)


def sample(
    schedule: Schedule,
    model: Callable[[Array, Array], Array],
    x_T: Array,
    timesteps: ArrayLike | None = None,
    *,
    method: Method = "ddpm",
    eta: float = 0.0,
    generator: Any = None,
    progress: Callable[[int, int, Array], None] | None = None,
    prediction_type: PredictionType = "epsilon",
    variance_type: VarianceType = "fixed_small",
    clip_denoised: tuple[float, float] | None = None,
    dynamic_threshold: float | None = None,
    final_alpha_cumprod: FinalAlpha = "one",
) -> Array:
    """Run a sampler from x_T down to the data: DDPM, DDIM or DPM-Solver++(2M).

    .. math::

        x_{t_0} \\to x_{t_1} \\to \\dots \\to x_{t_{n-1}} \\to x_{-1}

    At each timestep t of ``timesteps`` (strictly decreasing) the model is
    called as ``model(x, t_model)`` with ``t_model`` an integer array of
    shape (B,) in x's library and device (int64, or int32 on JAX without
    x64) holding ``schedule.timestep_map[t]``: the original training
    timestep when the schedule was respaced.  The previous timestep is the
    next entry of ``timesteps``, and -1 after the last.

    Parameters
    ----------
    schedule : Schedule
        Possibly respaced; DDPM on a respaced schedule is the short ancestral
        sampler of Nichol and Dhariwal (2021).
    model : callable
        ``model(x, t) -> model_output`` in ``prediction_type``.  Each output
        must be an array of x_T's library (TypeError naming the timestep
        otherwise) and finite where reading it is cheap (ValueError), as in
        :func:`p_mean_variance`.
    x_T : array, shape (B, ...)
        The starting noise.
    timesteps : array_like of int, optional
        Defaults to every step of the schedule, from the last.  For
        ``"ddpm"`` they must be consecutive.
    method : {"ddpm", "ddim", "dpmpp_2m"}
    eta : float
        DDIM's eta, in [0, 1]; the other methods take only the default 0.
    generator : optional
        An integer seed in [0, 2**63) (per-step seeds are derived from it),
        a JAX key (split into one key per step) or the library's own
        generator object, passed to :func:`standard_normal_like`.
    progress : callable, optional
        Called as ``progress(i, t, x)`` after step i at timestep t.
    prediction_type, variance_type, clip_denoised, dynamic_threshold
        As in :func:`p_mean_variance`; variance_type is for DDPM only (the
        other methods take only its default).
    final_alpha_cumprod : {"one", "first"}
        As in :func:`ddim_step`, for DDIM and DPM-Solver++ (DDPM takes only
        the default).

    Every option is checked before the model is first called, and so is
    the source of noise where a step needs one (its first draw is made
    then); x_T is checked finite where reading it is cheap (ValueError).

    Returns
    -------
    array
        The sample, of x_T's shape, dtype and library.

    References
    ----------
    Ho et al. (2020), algorithm 2; Song, Meng and Ermon (2021); Lu et al.
    (2022), algorithm 2.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> ts = diffcore.timesteps_for(1000, 10, "trailing")
    >>> out = diffcore.sample(s, lambda x, t: 0 * x, np.ones(2), ts, method="ddim")
    >>> np.round(out, 4).tolist()
    [157.4105, 157.4105]
    """
    schedule = as_schedule(schedule)
    check_choice("method", method, METHODS)
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_choice("variance_type", variance_type, VARIANCE_TYPES)
    if not callable(model):
        msg = f"model must be callable as model(x, t); got {type(model).__name__}"
        raise TypeError(msg)
    _check_options(method, eta, progress, variance_type, final_alpha_cumprod)
    steps = _check_sampler_timesteps(timesteps, len(schedule), method)
    dynamic_threshold = _check_processing(clip_denoised, dynamic_threshold)
    _, xp, _ = _setup(schedule, 0, "x_T", x_T)
    _check_finite(xp, "x_T", x_T)
    draw = _noise_source(generator, len(steps), x_T)
    noisy = method == "ddpm" or eta > 0
    first = draw(0, x_T) if noisy else None
    estimates: dict[str, Any] = {
        "prediction_type": prediction_type,
        "clip_denoised": clip_denoised,
        "dynamic_threshold": dynamic_threshold,
    }

    x, previous = x_T, None
    for i, t in enumerate(steps.tolist()):
        t_prev = int(steps[i + 1]) if i + 1 < len(steps) else -1
        output = model(x, _model_timesteps(xp, schedule, t, x))
        output = _check_returned(output, x, f"at timestep t = {t}")
        _check_model_output(xp, output, x, t, variance_type)
        noise = first if i == 0 else draw(i, x) if noisy else None
        if method == "ddpm":
            x = ddpm_step(
                schedule,
                output,
                x,
                t,
                noise,
                variance_type=variance_type,
                **estimates,
            ).x_prev
        elif method == "ddim":
            x = ddim_step(
                schedule,
                output,
                x,
                t,
                t_prev,
                eta=eta,
                noise=noise,
                final_alpha_cumprod=final_alpha_cumprod,
                **estimates,
            ).x_prev
        else:
            # Finite already (_check_model_output); the shape in any case.
            check_like(xp, "x_t", x_t=x, model_output=output)
            x_0_hat, _ = predict_x_0_eps(schedule, output, x, t, **estimates)
            x_new = _dpmpp_2m(
                schedule, xp, x, x_0_hat, t, t_prev, previous, final_alpha_cumprod
            )
            x, previous = x_new, (x_0_hat, t)
        _check_state(xp, x, t, t_prev)
        if progress is not None:
            progress(i, t, x)
    return x


def _check_model_output(
    xp: Namespace, output: Array, x: Array, t: int, variance_type: str
) -> None:
    """The model's output fits x and is finite, or an error naming the step
    (the step functions' own errors name model_output, no argument here)."""
    when = f"the model's output at timestep t = {t}"
    if variance_type not in ("learned", "learned_range"):  # those split it first
        try:
            check_like(xp, "x_t", x_t=x, model_output=output)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{when} does not fit x: {error}") from None
    try:
        _check_finite(xp, "model_output", output)
    except ValueError:
        msg = (
            f"{when} must be finite; got NaN or inf in an array of shape "
            f"{tuple(output.shape)}"
        )
        raise ValueError(msg) from None


def _left_dtype(xp: Namespace, x: Array) -> bool:
    """Whether a loop's state holds inf or NaN (False where reading is costly)."""
    total = backend_for(x).total(xp, x)
    return not (total is None or math.isfinite(total) or bool(xp.all(xp.isfinite(x))))


def _check_state(xp: Namespace, x: Array, t: int, t_prev: int) -> None:
    """Refuse a state that left x's dtype (the model is then not to blame)."""
    if not _left_dtype(xp, x):
        return
    msg = (
        f"x overflowed its dtype, {x.dtype}, in the step from t = {t} to "
        f"t_prev = {t_prev}; sample in a wider dtype (float32) or check x_T's scale"
    )
    raise ValueError(msg)


def _check_returned(output: Any, x: Array, when: str, name: str = "model") -> Array:
    """The callable's output: an array of x's library, or a TypeError.

    ``when`` says which call it was ("at timestep t = 5").  A NumPy scalar
    is read as a 0-d array for 0-d NumPy x: arithmetic on a 0-d array
    returns one (``0.5 * x``).
    """
    if isinstance(output, np.generic) and compat.is_numpy_array(x) and x.ndim == 0:
        return np.asarray(output)
    try:
        namespace(x=x, model_output=output)
    except TypeError as error:
        msg = (
            f"{name} must return an array of x's library, {_kind(x)}; {when} "
            f"it returned {_kind(output)}"
        )
        raise TypeError(msg) from error
    return output


def _kind(value: Any) -> str:
    """A value's type as people write it: None, list, numpy.ndarray."""
    if value is None:
        return "None"
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__name__}"


def _model_timesteps(xp: Namespace, schedule: Schedule, t: int, x: Array) -> Array:
    """The original timestep of step t, an array (B,) on x's device.

    Its dtype is the namespace's default integer dtype: int64, or int32 on
    JAX without x64, where asking for int64 warns.
    """
    batch = x.shape[0] if x.ndim else 1
    original = int(schedule.timestep_map[t])
    return xp.full((batch,), original, device=compat.device(x))
