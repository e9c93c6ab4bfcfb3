"""The 2015 diffusion probabilistic model of Sohl-Dickstein et al.

Two forward processes: Gaussian diffusion with the paper's beta schedule,
with its bound on the log-likelihood (entropy terms included), and binomial
diffusion of binary data, whose kernel moves each bit toward a fair coin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._arrays import (
    Array,
    Namespace,
    check_floating,
    finish,
    gather,
    namespace,
    read_host,
    shown,
    upcast,
)
from ._forward import _setup, q_sample
from ._likelihood import (
    ReverseModel,
    _check_batch,
    _check_model,
    _full_steps,
    reverse_gaussian,
    vb_term_bpd,
)
from ._parameterisation import _readable_values
from ._random import noise_stream
from ._schedule import Schedule, _check_real, _check_steps, as_schedule

Float64Array = NDArray[np.float64]

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def sohl_dickstein_betas(
    T: int, beta_1: float = 1e-3, min_beta: float = 1e-6
) -> Float64Array:
    """The Gaussian-diffusion betas of Sohl-Dickstein et al. (2015), unlearned.

    .. math::

        b_t = \\frac{1}{T - (t - 1)\\frac{T - 2}{T - 1}}, \\qquad
        \\beta_t = m_t + b_t (1 - m_t - 10^{-5})

    with m_t = min_beta, plus beta_1 at t = 1.  The baseline b_t runs from
    1/T to 1/2, so that alpha_bar_t falls about linearly, to (T - t) / T:
    each step removes about 1/T of the original signal (a growing share of
    what is left); the paper learns a perturbation of it,
    and this is the schedule at initialisation, as in the authors' code.

    Parameters
    ----------
    T : int
        Number of steps, at least 2 (1000 in the paper).
    beta_1 : float
        Extra variance of the first step, which the paper fixes to keep the
        reverse process from overfitting (0.001 in the authors' code).
    min_beta : float
        Lower bound of every beta (1e-6).

    Returns
    -------
    ndarray of float64, shape (T,)

    References
    ----------
    Sohl-Dickstein, Weiss, Maheswaranathan and Ganguli (2015), Deep
    Unsupervised Learning using Nonequilibrium Thermodynamics, section 2.4.1
    and appendix D.1.

    Examples
    --------
    >>> import diffcore
    >>> b = diffcore.sohl_dickstein_betas(1000)
    >>> round(float(b[0]), 6), round(float(b[-1]), 6)
    (0.002, 0.499995)
    """
    T = _check_steps(T)
    if T < 2:
        msg = f"T must be at least 2 for the 2015 schedule; got {T}"
        raise ValueError(msg)
    beta_1 = _check_real("beta_1", beta_1, finite=False)
    min_beta = _check_real("min_beta", min_beta, finite=False)
    for name, value in (("beta_1", beta_1), ("min_beta", min_beta)):
        if not (0 <= value < 0.5):
            msg = f"{name} must lie in [0, 0.5); got {shown(value)}"
            raise ValueError(msg)
    floor = np.full(T, min_beta)
    floor[0] += beta_1
    baseline = 1.0 / np.linspace(float(T), 2.0, T)
    return floor + baseline * (1.0 - floor - 1e-5)


def reverse_entropy_bounds(schedule: Schedule) -> tuple[Float64Array, Float64Array]:
    """Bounds on the entropy of each reverse step, in nats per dimension.

    .. math::

        \\tfrac12 \\log(2\\pi e\\, \\tilde\\beta_t)
        \\le H_q(X_{t-1} \\mid X_t) \\le \\tfrac12 \\log(2\\pi e\\, \\beta_t)

    The lower bound is H_q(X_t | X_{t-1}) + H_q(X_{t-1} | X_0)
    - H_q(X_t | X_0), which for Gaussian diffusion is the entropy of the
    posterior q(x_{t-1} | x_t, x_0); the upper bound is that of the
    forward step, and holds when entropy grows along the forward process,
    H_q(X_t) >= H_q(X_{t-1}) (for instance data of variance at most 1 per
    dimension).  Ho et al.'s two fixed variances are these two ends.

    Parameters
    ----------
    schedule : Schedule

    Returns
    -------
    lower, upper : ndarrays of float64, shape (T,)
        Index t holds the bounds for step t (0-based); lower[0] is -inf,
        since x_0 given x_0 has no entropy.

    References
    ----------
    Sohl-Dickstein et al. (2015), section 2.6 and appendix A.
    """
    schedule = as_schedule(schedule)
    with np.errstate(divide="ignore"):
        lower = _HALF_LOG_2PI_E + 0.5 * np.log(schedule.posterior_variance)
    upper = _HALF_LOG_2PI_E + 0.5 * np.log(schedule.betas)
    return lower, upper


def sohl_dickstein_bound(
    schedule: Schedule,
    model: ReverseModel,
    x_0: Array,
    *,
    generator: Any = None,
) -> Array:
    """The 2015 bound on -log p(x_0), in bits per dimension, per sample.

    .. math::

        -K = \\sum_{t=2}^{T} \\mathrm{E}_q\\,\\mathrm{KL}\\big(q(x_{t-1} \\mid x_t,
        x_0) \\,\\|\\, p(x_{t-1} \\mid x_t)\\big)
        - H_q(X_T \\mid X_0) + H_q(X_1 \\mid X_0) + H_p(X_T)

    The first reverse step is fixed to the reversal of the first forward
    step, so the decoder term becomes the entropy H_q(X_1 | X_0); the prior
    term becomes H_q(X_T | X_0) and the entropy of p(x_T) = N(0, I).  Each
    KL term uses one draw of q(x_t | x_0) (the authors' code draws one t
    per batch and multiplies by T; the sum here is over every step).

    Parameters
    ----------
    schedule : Schedule
        For instance ``Schedule.from_betas(sohl_dickstein_betas(T))``.
    model : callable
        ``model(x_t, t)`` returns the mean and log variance of
        p(x_{t-1} | x_t), as in :func:`variational_bound`; it is called for
        t = 1, ..., T-1 (0-based).
    x_0 : array, shape (B, ...)
    generator : optional
        Source of noise, as in :func:`variational_bound`.

    Returns
    -------
    array, shape (B,)
        The bound in bits/dim; subtract 0.5 log2(2 pi e) = 2.0471 for the
        paper's "difference from an isotropic Gaussian".

    References
    ----------
    Sohl-Dickstein et al. (2015), eq. 14 and appendix B.
    """
    _check_model(model)
    schedule = as_schedule(schedule)
    xp = namespace(x_0=x_0)
    check_floating(xp, "x_0", x_0)
    _check_batch(x_0)
    draw = noise_stream(x_0, generator)

    total = None
    for step in range(1, len(schedule)):
        t = _full_steps(xp, step, x_0)
        x_t = q_sample(schedule, x_0, t, draw(x_0))
        mean, log_variance = reverse_gaussian(model(x_t, t))
        term = vb_term_bpd(schedule, x_0, x_t, t, mean, log_variance)
        total = term if total is None else total + term

    h_first = _HALF_LOG_2PI_E + 0.5 * math.log(schedule.betas[0])
    h_last = _HALF_LOG_2PI_E + 0.5 * float(schedule.log_one_minus_alphas_cumprod[-1])
    entropies = (h_first - h_last + _HALF_LOG_2PI_E) / _LOG_2
    if total is None:
        return xp.zeros((x_0.shape[0],), dtype=upcast(xp, x_0).dtype) + entropies
    return total + entropies


def binomial_betas(T: int) -> Float64Array:
    """The binomial-diffusion rates beta_t = 1 / (T - t + 1) of the 2015 paper.

    Each step erases the same fraction 1/T of the original signal: the
    survival alpha_bar_t = (T - t) / T falls linearly to 0 at t = T.

    Parameters
    ----------
    T : int

    Returns
    -------
    ndarray of float64, shape (T,)
        With 0-based index i, 1 / (T - i); the last entry is 1.

    References
    ----------
    Sohl-Dickstein et al. (2015), section 3 and appendix D.1.

    Examples
    --------
    >>> import diffcore
    >>> diffcore.binomial_betas(4).tolist()
    [0.25, 0.3333333333333333, 0.5, 1.0]
    """
    T = _check_steps(T)
    return 1.0 / (T - np.arange(T, dtype=np.float64))


def _check_binary(xp: Namespace, name: str, x: Array) -> None:
    check_floating(xp, name, x)
    if not _readable_values(x):
        return
    values = np.asarray(read_host(name, x), dtype=np.float64)
    bad = ~((values == 0) | (values == 1))
    if np.any(bad):
        first = values[bad].flat[0].item()
        msg = f"{name} must hold binary values in {{0, 1}}; got {shown(first)}"
        raise ValueError(msg)


def _bernoulli_step(probability_one: Any, beta: Any) -> Any:
    """P(next = 1) after one step that keeps a bit w.p. 1 - beta, else re-draws it."""
    return probability_one * (1.0 - beta) + 0.5 * beta


def binomial_q_step_probability(schedule: Schedule, x_prev: Array, t: Any) -> Array:
    """P(x_t = 1 | x_{t-1}) of one binomial-diffusion step.

    .. math::

        q(x_t \\mid x_{t-1}) = \\mathcal B\\big(x_t;\\ x_{t-1}(1 - \\beta_t)
        + \\tfrac12 \\beta_t\\big)

    Parameters
    ----------
    schedule : Schedule
        Its betas are the flip rates (for instance
        ``Schedule.from_betas(binomial_betas(T))``).
    x_prev : array, shape (B, ...)
        Binary values 0.0 and 1.0 in a real floating dtype.
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        The probability that each bit is 1 after the step, in x_prev's dtype.

    References
    ----------
    Sohl-Dickstein et al. (2015), table App.1.
    """
    schedule, xp, steps = _setup(schedule, t, "x_prev", x_prev)
    _check_binary(xp, "x_prev", x_prev)
    beta = gather(schedule, "betas", steps, xp, x_prev)
    return finish(xp, _bernoulli_step(upcast(xp, x_prev), beta), x_prev.dtype)


def binomial_q_probability(schedule: Schedule, x_0: Array, t: Any) -> Array:
    """P(x_t = 1 | x_0), the closed form of binomial diffusion.

    .. math::

        q(x_t \\mid x_0) = \\mathcal B\\big(x_t;\\ \\bar\\alpha_t x_0
        + \\tfrac12 (1 - \\bar\\alpha_t)\\big)

    A bit survives every step up to t with probability alpha_bar_t (the
    product of 1 - beta); otherwise it is a fair coin.

    Parameters
    ----------
    schedule : Schedule
    x_0 : array, shape (B, ...)
        Binary values in a real floating dtype.
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        P(x_t = 1 | x_0), in x_0's dtype.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.from_betas(diffcore.binomial_betas(4))
    >>> diffcore.binomial_q_probability(s, np.array([1.0, 0.0]), 1).round(12).tolist()
    [0.75, 0.25]
    """
    schedule, xp, steps = _setup(schedule, t, "x_0", x_0)
    _check_binary(xp, "x_0", x_0)
    survive = gather(schedule, "alphas_cumprod", steps, xp, x_0)
    return finish(xp, _bernoulli_step(upcast(xp, x_0), 1.0 - survive), x_0.dtype)


def binomial_posterior_probability(
    schedule: Schedule, x_0: Array, x_t: Array, t: Any
) -> Array:
    """P(x_{t-1} = 1 | x_t, x_0), the binomial-diffusion posterior by Bayes' rule.

    .. math::

        q(x_{t-1} = 1 \\mid x_t, x_0) = \\frac{q(x_t \\mid x_{t-1} = 1)\\, \\pi}
        {q(x_t \\mid x_{t-1} = 1)\\, \\pi + q(x_t \\mid x_{t-1} = 0)(1 - \\pi)},
        \\qquad \\pi = q(x_{t-1} = 1 \\mid x_0)

    At t = 0 (0-based) x_{t-1} is x_0 itself, so the result is x_0.

    Parameters
    ----------
    schedule : Schedule
    x_0, x_t : arrays of one shape (B, ...), dtype and device
        Binary values in a real floating dtype.
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        The posterior probability of a 1, in x_t's dtype.

    References
    ----------
    Sohl-Dickstein et al. (2015), appendix B (the posterior that the
    bound's KL terms compare against).
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, x_0=x_0)
    _check_binary(xp, "x_0", x_0)
    _check_binary(xp, "x_t", x_t)
    beta = gather(schedule, "betas", steps, xp, x_t)
    prior = _bernoulli_step(
        upcast(xp, x_0), 1.0 - gather(schedule, "alphas_cumprod_prev", steps, xp, x_t)
    )

    bit = upcast(xp, x_t)
    keep_one = _bernoulli_step(1.0, beta)  # q(x_t = 1 | x_{t-1} = 1)
    from_zero = 0.5 * beta  # q(x_t = 1 | x_{t-1} = 0)
    like_one = bit * keep_one + (1.0 - bit) * (1.0 - keep_one)
    like_zero = bit * from_zero + (1.0 - bit) * (1.0 - from_zero)
    posterior = like_one * prior / (like_one * prior + like_zero * (1.0 - prior))
    return finish(xp, posterior, x_t.dtype)
