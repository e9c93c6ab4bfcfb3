"""Reverse posteriors q(x_{t-1} | x_t, x_0) and q(x_s | x_t, x_0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import (
    Array,
    Namespace,
    Steps,
    from_host,
    gather,
    timesteps,
)
from ._backends import backend_for
from ._forward import (
    MeanVariance,
    _setup,
    affine,
    check_order,
    draw_noise,
    given,
    spread,
    spread_tables,
)
from ._schedule import Schedule


def q_posterior_mean_variance(
    schedule: Schedule, x_0: Array, x_t: Array, t: Any
) -> MeanVariance:
    """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0).

    .. math::

        \\tilde\\mu_t = \\frac{\\sqrt{\\bar\\alpha_{t-1}}\\beta_t}{1-\\bar\\alpha_t} x_0
        + \\frac{\\sqrt{\\alpha_t}(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t} x_t,
        \\qquad
        \\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t

    At t = 0 the posterior is a point mass at x_0: mean x_0, variance 0, and
    the log variance follows the schedule's convention
    (:meth:`Schedule.with_posterior_log_variance`), so it is always finite.

    Parameters
    ----------
    schedule : Schedule
    x_0, x_t : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    mean, variance, log_variance_clipped : arrays of x_t's shape and dtype

    References
    ----------
    Ho et al. (2020), eqs. 6 and 7.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> mean, var, _ = diffcore.q_posterior_mean_variance(s, np.ones(1), np.zeros(1), 0)
    >>> mean.tolist(), var.tolist()
    ([1.0], [0.0])
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, x_0=x_0)
    c0 = gather(schedule, "posterior_mean_coef_x0", steps, xp, x_t)
    ct = gather(schedule, "posterior_mean_coef_xt", steps, xp, x_t)
    mean = affine(xp, c0, x_0, ct, x_t)
    names = ("posterior_variance", "posterior_log_variance_clipped")
    return mean, *spread_tables(schedule, names, steps, xp, x_t)


def q_posterior_sample(
    schedule: Schedule,
    x_0: Array,
    x_t: Array,
    t: Any,
    noise: Array | None = None,
    *,
    generator: Any = None,
    key: Any = None,
    out: Array | None = None,
) -> Array:
    """Draw x_{t-1} from the posterior q(x_{t-1} | x_t, x_0).

    .. math::

        x_{t-1} = \\tilde\\mu_t(x_t, x_0) + \\sqrt{\\tilde\\beta_t}\\, z,
        \\qquad z \\sim \\mathcal N(0, I)

    One fused linear combination of x_0, x_t and z (the backend's
    ``linear``); at t = 0 the variance is 0 and the draw is x_0.

    Parameters
    ----------
    schedule : Schedule
    x_0, x_t : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)
    noise : array, optional
        Standard normal draws z of x_t's shape, dtype and device; None draws
        them from ``generator`` or ``key`` (see :func:`standard_normal_like`).
    generator, key : optional
        Source of the noise when ``noise`` is None (``key`` is JAX's).
    out : array, optional
        Where to write x_{t-1}: an array like x_t (it may overlap any input).
        NumPy, PyTorch, CuPy and array-api-strict only; JAX and Dask arrays
        raise TypeError.  Not differentiable in PyTorch.

    Returns
    -------
    array
        x_{t-1}, with x_t's shape, dtype, device and namespace; ``out`` when
        given.

    References
    ----------
    Ho et al. (2020), eqs. 6 and 7.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x = diffcore.q_posterior_sample(s, np.ones(2), np.zeros(2), 0, np.ones(2))
    >>> x.tolist()
    [1.0, 1.0]
    """
    schedule, xp, steps = _setup(
        schedule, t, "x_t", x_t, out=out, x_0=x_0, **given(noise)
    )
    noise = draw_noise(x_t, noise, generator, key)
    terms = [
        (gather(schedule, "posterior_mean_coef_x0", steps, xp, x_t), x_0),
        (gather(schedule, "posterior_mean_coef_xt", steps, xp, x_t), x_t),
        (gather(schedule, "posterior_std", steps, xp, x_t), noise),
    ]
    return backend_for(x_t).linear(xp, terms, x_t.dtype, out)


def _general(
    mod: Namespace, la_s: Any, log_ratio: Any, l1m_s: Any, l1m_t: Any
) -> tuple[Any, ...]:
    """Weights of x_0 and x_t, variance and log variance of q(x_s | x_t, x_0).

    ``mod`` is NumPy (float64 on the host) or the samples' namespace;
    log_ratio is log(alpha_bar_t / alpha_bar_s).
    """
    one_minus_ratio = -mod.expm1(log_ratio)
    log_shrink = l1m_s - l1m_t
    coef_x0 = mod.exp(0.5 * la_s - l1m_t) * one_minus_ratio
    coef_xt = mod.exp(0.5 * log_ratio + log_shrink)
    log_variance = log_shrink + mod.log(one_minus_ratio)
    return coef_x0, coef_xt, mod.exp(log_variance), log_variance


def _general_coefficients(
    schedule: Schedule, xp: Namespace, s: Steps, t: Steps, x: Array
) -> list[Any]:
    names = ("log_alphas_cumprod", "log_one_minus_alphas_cumprod")
    if s.host is not None and t.host is not None:
        la, l1m = (schedule._table(n) for n in names)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_ratio = schedule._log_ratio(s.host, t.host)
            values = _general(np, la[s.host], log_ratio, l1m[s.host], l1m[t.host])
        return [from_host(xp, np.asarray(v), x) for v in values]
    la_s, l1m_s = (gather(schedule, n, s, xp, x) for n in names)
    la_t, l1m_t = (gather(schedule, n, t, xp, x) for n in names)
    return list(_general(xp, la_s, la_t - la_s, l1m_s, l1m_t))


def q_posterior_transition_mean_variance(
    schedule: Schedule, x_0: Array, x_t: Array, s: Any, t: Any
) -> MeanVariance:
    """Mean, variance and log variance of q(x_s | x_t, x_0) for any s < t.

    .. math::

        \\mu = \\frac{\\sqrt{\\bar\\alpha_s}(1 - \\bar\\alpha_t/\\bar\\alpha_s)}
        {1-\\bar\\alpha_t} x_0
        + \\frac{\\sqrt{\\bar\\alpha_t/\\bar\\alpha_s}(1-\\bar\\alpha_s)}
        {1-\\bar\\alpha_t} x_t,
        \\qquad
        \\sigma^2 = \\frac{1-\\bar\\alpha_s}{1-\\bar\\alpha_t}
        \\left(1 - \\frac{\\bar\\alpha_t}{\\bar\\alpha_s}\\right)

    With s = t - 1 this is :func:`q_posterior_mean_variance`; respaced
    samplers and DDIM use it across skipped steps.  Since s >= 0, the
    variance is positive and its log finite.

    Parameters
    ----------
    schedule : Schedule
    x_0, x_t : arrays of one shape (B, ...), dtype and device
    s, t : int or integer arrays of shape () or (B,), 0 <= s < t < T

    Returns
    -------
    mean, variance, log_variance : arrays of x_t's shape and dtype

    References
    ----------
    Song, Meng and Ermon (2021), Denoising Diffusion Implicit Models, eq. 7
    (with sigma at its DDPM value).
    """
    schedule, xp, t_steps = _setup(schedule, t, "x_t", x_t, x_0=x_0)
    s_steps = timesteps(xp, s, len(schedule), x_t, name="s")
    check_order(s_steps, t_steps, schedule)
    c0, ct, variance, log_variance = _general_coefficients(
        schedule, xp, s_steps, t_steps, x_t
    )
    mean = affine(xp, c0, x_0, ct, x_t)
    return mean, spread(xp, variance, x_t), spread(xp, log_variance, x_t)
