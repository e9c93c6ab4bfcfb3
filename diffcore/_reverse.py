"""The reverse step p(x_{t-1} | x_t): a network's output as a Gaussian transition.

A model output is read in one of three parameterisations (``epsilon``,
``sample`` for x_0, ``v``) and turned into the estimates x_0_hat and eps_hat;
the reverse mean is the forward posterior mean at x_0_hat, and the variance
is one of the four choices of Ho et al. (2020) and Nichol and Dhariwal (2021).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, NamedTuple

import numpy as np

from ._arrays import (
    Array,
    Namespace,
    Steps,
    check_like,
    compute_dtype,
    expand,
    finish,
    from_host,
    gather,
    namespace,
    shown,
    upcast,
)
from ._backends import backend_for
from ._forward import _setup, spread
from ._parameterisation import eps_from_v, eps_from_x_0, x_0_from_eps, x_0_from_v
from ._posterior import q_posterior_mean_variance
from ._schedule import Schedule

PredictionType = Literal["epsilon", "sample", "v"]
VarianceType = Literal["fixed_small", "fixed_large", "learned", "learned_range"]

PREDICTION_TYPES = ("epsilon", "sample", "v")
VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned", "learned_range")


class ReverseMeanVariance(NamedTuple):
    """The reverse transition p(x_{t-1} | x_t) and the estimates it came from."""

    mean: Array
    variance: Array
    log_variance: Array
    x_0_hat: Array
    eps_hat: Array


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise naming the option unless value is one of choices: a TypeError
    for a value that is not a string, a ValueError for another string."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        msg = f"{name} must be one of {allowed}; got {shown(value)}"
        raise ValueError(msg) if isinstance(value, str) else TypeError(msg)


class _Percentile(float):
    """A dynamic_threshold already checked, and warned about, by a public call.

    Public functions that call one another pass it on, so that one call by the
    user gives at most one warning.
    """


def _check_processing(clip_denoised: Any, dynamic_threshold: Any) -> float | None:
    """Check the x_0 processing options; return dynamic_threshold, marked checked.

    A percentile p <= 1 is valid but is most likely a fraction (diffusers'
    ``dynamic_thresholding_ratio`` is 0.995), so it warns, pointing at the
    caller of the public function that called this one.
    """
    if clip_denoised is not None and dynamic_threshold is not None:
        msg = (
            "pass clip_denoised or dynamic_threshold, not both; got "
            f"clip_denoised={shown(clip_denoised)}, "
            f"dynamic_threshold={shown(dynamic_threshold)}"
        )
        raise ValueError(msg)
    if clip_denoised is not None:
        pair = tuple(clip_denoised) if isinstance(clip_denoised, (tuple, list)) else ()
        if len(pair) != 2 or not all(_is_real(v) for v in pair):
            got = shown(clip_denoised)
            msg = f"clip_denoised must be None or a pair (lo, hi); got {got}"
            if isinstance(clip_denoised, (bool, np.bool_)):
                msg += " (improved-diffusion's True is (-1.0, 1.0), False is None)"
            raise TypeError(msg)
        if not pair[0] < pair[1]:
            msg = f"clip_denoised must have lo < hi; got {shown(clip_denoised)}"
            raise ValueError(msg)
    if dynamic_threshold is None or isinstance(dynamic_threshold, _Percentile):
        return dynamic_threshold

    p = dynamic_threshold
    if not _is_real(p):
        msg = f"dynamic_threshold must be None or a percentile; got {shown(p)}"
        raise TypeError(msg)
    try:
        p = float(p)
    except OverflowError:  # an int past float64: certainly above 100
        p = math.inf
    if not 0.0 < p <= 100.0:
        got = shown(dynamic_threshold)
        msg = f"dynamic_threshold must be a percentile in (0, 100]; got {got}"
        raise ValueError(msg)
    if p <= 1.0:
        msg = (
            f"dynamic_threshold is a percentile in (0, 100]; got {shown(p)}, the "
            f"{shown(p)}th percentile, which clips x_0_hat to [-1, 1] for almost any "
            f"model output. For the fraction {shown(p)} (diffusers' "
            f"dynamic_thresholding_ratio) pass dynamic_threshold={100.0 * p:g}"
        )
        warnings.warn(msg, UserWarning, stacklevel=3)
    return _Percentile(p)


def _is_real(value: Any) -> bool:
    """Whether value is a real number (NumPy scalars too), but not a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def _check_finite(xp: Namespace, name: str, x: Array) -> None:
    """Raise on NaN or inf where reading x is cheap (host arrays, CPU tensors).

    A finite sum proves every entry finite (a NaN or an inf entry makes the
    sum NaN or inf), in one reduction; only a sum that is not finite, which
    overflow alone can cause, is followed by the entrywise test.
    """
    total = backend_for(x).total(xp, x)
    if total is None or math.isfinite(total):
        return
    if not bool(xp.all(xp.isfinite(x))):
        msg = (
            f"{name} must be finite; got NaN or inf in an array of shape "
            f"{tuple(x.shape)}"
        )
        raise ValueError(msg)


def split_output(
    xp: Namespace, model_output: Array, x_t: Array, variance_type: str
) -> tuple[Array, Array | None]:
    """The prediction and (for learned variances) the variance channels.

    Learned variances come as twice the channels of x_t on axis 1, the
    prediction first, as in improved-diffusion.
    """
    if variance_type not in ("learned", "learned_range"):
        check_like(xp, "x_t", x_t=x_t, model_output=model_output)
        _check_finite(xp, "model_output", model_output)
        return model_output, None

    shape, want = tuple(model_output.shape), tuple(x_t.shape)
    if x_t.ndim < 2:
        msg = (
            f"x_t must have rank >= 2 for variance_type={shown(variance_type)}, whose "
            "model_output doubles x_t's channels on axis 1; got x_t of shape "
            f"{want} (and model_output of shape {shape})"
        )
        raise ValueError(msg)
    doubled = (want[0], 2 * want[1], *want[2:])
    if shape != doubled:
        msg = (
            f"model_output must have shape {doubled} for variance_type="
            f"{shown(variance_type)}: x_t's shape {want} with its channels (axis 1) "
            f"doubled; got {shape}"
        )
        raise ValueError(msg)
    channels = want[1]
    prediction, variance = (
        model_output[:, :channels, ...],
        model_output[:, channels:, ...],
    )
    check_like(xp, "x_t", x_t=x_t, model_output=prediction)
    _check_finite(xp, "model_output", model_output)
    return prediction, variance


def dynamic_threshold_x_0(xp: Namespace, x_0: Array, percentile: float) -> Array:
    """Clip each sample of x_0 to [-s, s] and divide by s (Saharia et al. 2022).

    s is the ``percentile`` of |x_0| over each sample's entries (linear
    interpolation between order statistics, as NumPy's default), floored at 1.
    """
    batch = x_0.shape[0] if x_0.ndim else 1
    if 0 in x_0.shape:
        return _threshold_nothing(x_0)
    flat = xp.reshape(xp.abs(upcast(xp, x_0)), (batch, -1))
    ordered = xp.sort(flat, axis=1)

    position = percentile / 100.0 * (ordered.shape[1] - 1)
    lo = math.floor(position)
    hi = min(lo + 1, ordered.shape[1] - 1)
    frac = position - lo
    s = ordered[:, lo] + frac * (ordered[:, hi] - ordered[:, lo])
    s = expand(xp, xp.clip(s, min=1.0), x_0.ndim)
    if x_0.ndim == 0:
        s = xp.reshape(s, ())

    x = upcast(xp, x_0)
    return finish(xp, xp.minimum(xp.maximum(x, -s), s) / s, x_0.dtype)


def _threshold_nothing(x_0: Array) -> Array:
    """An empty batch, returned as it is; samples without entries, refused."""
    if x_0.shape[0] == 0:
        return x_0
    msg = (
        "x_t must have at least one entry per sample for dynamic_threshold, "
        f"a percentile over each sample's entries; got shape {tuple(x_0.shape)}"
    )
    raise ValueError(msg)


def predict_x_0_eps(
    schedule: Schedule,
    model_output: Array,
    x_t: Array,
    t: Any,
    *,
    prediction_type: PredictionType = "epsilon",
    clip_denoised: tuple[float, float] | None = None,
    dynamic_threshold: float | None = None,
) -> tuple[Array, Array]:
    """The estimates x_0_hat and eps_hat implied by a model output.

    .. math::

        x_t = \\sqrt{\\bar\\alpha_t}\\, \\hat x_0 + \\sqrt{1-\\bar\\alpha_t}\\,
        \\hat\\epsilon

    The x_0 estimate is clipped to ``clip_denoised`` or dynamically
    thresholded when asked; eps_hat is then recomputed from the processed
    x_0_hat, so that the pair always satisfies the relation above.

    Parameters
    ----------
    schedule : Schedule
    model_output, x_t : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)
    prediction_type : {"epsilon", "sample", "v"}
        What the model predicts: the noise, x_0, or v (Salimans and Ho 2022).
    clip_denoised : (lo, hi), optional
        Clip x_0_hat to this range.
    dynamic_threshold : float, optional
        Percentile p in (0, 100] for dynamic thresholding.

    Returns
    -------
    x_0_hat, eps_hat : arrays of x_t's shape and dtype

    References
    ----------
    Ho et al. (2020), eq. 4; Salimans and Ho (2022), section 4; Saharia et al.
    (2022), Photorealistic Text-to-Image Diffusion Models (Imagen), section 2.3.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x_0, eps = diffcore.predict_x_0_eps(s, np.zeros(2), np.ones(2), 0)
    >>> np.round(x_0, 6).tolist()
    [1.00005, 1.00005]
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    dynamic_threshold = _check_processing(clip_denoised, dynamic_threshold)
    if prediction_type == "epsilon":
        x_0_hat = x_0_from_eps(schedule, x_t, t, model_output)
        eps_hat = model_output
    elif prediction_type == "sample":
        x_0_hat = model_output
        eps_hat = eps_from_x_0(schedule, x_t, t, model_output)
    else:
        x_0_hat = x_0_from_v(schedule, x_t, t, model_output)
        eps_hat = eps_from_v(schedule, x_t, t, model_output)

    if clip_denoised is None and dynamic_threshold is None:
        return x_0_hat, eps_hat
    _, xp, _ = _setup(schedule, t, "x_t", x_t)
    if clip_denoised is not None:
        lo, hi = float(clip_denoised[0]), float(clip_denoised[1])
        x_0_hat = finish(xp, xp.clip(x_0_hat, min=lo, max=hi), x_0_hat.dtype)
    else:
        x_0_hat = dynamic_threshold_x_0(xp, x_0_hat, float(dynamic_threshold or 0.0))
    return x_0_hat, eps_from_x_0(schedule, x_t, t, x_0_hat)


def _fixed_large(
    schedule: Schedule, xp: Namespace, steps: Steps, x: Array
) -> tuple[Any, Any]:
    """beta_t, with the posterior variance at t = 1 in place of beta_0.

    improved-diffusion's choice: beta_0 is tiny, and the t = 1 posterior
    variance keeps the log variance of the first step meaningful.
    """
    table = schedule.betas.copy()
    if len(schedule) > 1:
        table[0] = schedule.posterior_variance[1]
    if steps.host is not None:
        values = table[steps.host]
        return from_host(xp, values, x), from_host(xp, np.log(values), x)

    betas = gather(schedule, "betas", steps, xp, x)
    first = expand(xp, steps.index == 0, x.ndim)
    dtype = compute_dtype(xp, x.dtype)
    value = xp.asarray(float(table[0]), dtype=dtype, device=_device(x))
    variance = xp.where(first, value, betas)
    return variance, xp.log(variance)


def _device(x: Array) -> Any:
    return backend_for(x).device(x)


def _learned(
    schedule: Schedule,
    xp: Namespace,
    steps: Steps,
    x_t: Array,
    values: Array,
    variance_type: str,
) -> Array:
    """The log variance a network predicts, directly or as a fraction in [-1, 1]."""
    values = upcast(xp, values)
    if variance_type == "learned":
        return values
    # Nichol and Dhariwal (2021), eq. 15: interpolate the two bounds in log space
    min_log = gather(schedule, "posterior_log_variance_clipped", steps, xp, x_t)
    max_log = gather(schedule, "log_betas", steps, xp, x_t)
    with np.errstate(over="ignore", invalid="ignore"):  # inf as in torch
        frac = (values + 1.0) / 2.0
        return frac * max_log + (1.0 - frac) * min_log


def p_mean_variance(
    schedule: Schedule,
    model_output: Array,
    x_t: Array,
    t: Any,
    *,
    prediction_type: PredictionType = "epsilon",
    variance_type: VarianceType = "fixed_small",
    clip_denoised: tuple[float, float] | None = None,
    dynamic_threshold: float | None = None,
) -> ReverseMeanVariance:
    """Mean, variance and log variance of the reverse step p(x_{t-1} | x_t).

    .. math::

        p_\\theta(x_{t-1} \\mid x_t) = \\mathcal N\\left(\\tilde\\mu_t(x_t,
        \\hat x_0),\\ \\Sigma_t\\right)

    The mean is the forward posterior mean at the model's x_0 estimate.  The
    variance is ``fixed_small`` (the posterior variance, with the schedule's
    log variance convention at t = 0), ``fixed_large`` (beta_t, with the
    t = 1 posterior variance at t = 0, as improved-diffusion), ``learned``
    (the network predicts log variance) or ``learned_range`` (the network
    predicts v in [-1, 1] and log variance = (v+1)/2 log beta_t + (1-v)/2
    log posterior variance).

    Validation: that model_output is an array of x_t's library, shapes,
    dtypes and options always; NaN or inf in the model output where reading
    it is cheap (NumPy, CPU tensors, array-api-strict), never on an
    accelerator, inside a trace or in a lazy graph.

    Parameters
    ----------
    schedule : Schedule
    model_output : array, shape (B, ...) or (B, 2C, ...) for learned variances
        The prediction; for ``learned`` and ``learned_range`` followed on
        axis 1 by as many variance channels.
    x_t : array, shape (B, ...) or (B, C, ...)
        Real floating dtype of any array-API library.
    t : int or integer array of shape () or (B,)
    prediction_type : {"epsilon", "sample", "v"}
    variance_type : {"fixed_small", "fixed_large", "learned", "learned_range"}
    clip_denoised : (lo, hi), optional
        Clip x_0_hat to [lo, hi] before forming the mean.
    dynamic_threshold : float, optional
        Percentile in (0, 100] for dynamic thresholding of x_0_hat (99.5 for
        diffusers' ``dynamic_thresholding_ratio=0.995``); p <= 1 warns, as it
        is most likely a fraction.

    Returns
    -------
    ReverseMeanVariance
        ``mean``, ``variance``, ``log_variance``, ``x_0_hat``, ``eps_hat``,
        each of x_t's shape and dtype.

    References
    ----------
    Ho et al. (2020), eqs. 7 and 11; Nichol and Dhariwal (2021), Improved
    Denoising Diffusion Probabilistic Models, eq. 15; Saharia et al. (2022),
    section 2.3.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> out = diffcore.p_mean_variance(s, np.zeros((1, 2)), np.ones((1, 2)), 999)
    >>> round(float(out.variance[0, 0]), 6)
    0.02
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_choice("variance_type", variance_type, VARIANCE_TYPES)
    dynamic_threshold = _check_processing(clip_denoised, dynamic_threshold)
    namespace(x_t=x_t, model_output=model_output)
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t)
    prediction, values = split_output(xp, model_output, x_t, variance_type)

    x_0_hat, eps_hat = predict_x_0_eps(
        schedule,
        prediction,
        x_t,
        t,
        prediction_type=prediction_type,
        clip_denoised=clip_denoised,
        dynamic_threshold=dynamic_threshold,
    )
    mean, variance, log_variance = q_posterior_mean_variance(schedule, x_0_hat, x_t, t)

    if variance_type == "fixed_large":
        large, log_large = _fixed_large(schedule, xp, steps, x_t)
        variance, log_variance = spread(xp, large, x_t), spread(xp, log_large, x_t)
    elif values is not None:
        log_value = _learned(schedule, xp, steps, x_t, values, variance_type)
        with np.errstate(over="ignore"):  # a log variance beyond the dtype: inf
            variance = finish(xp, xp.exp(log_value), x_t.dtype)
        log_variance = finish(xp, log_value, x_t.dtype)
    return ReverseMeanVariance(mean, variance, log_variance, x_0_hat, eps_hat)
