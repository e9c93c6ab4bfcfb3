"""Conversions between the eps, x_0, v and score parameterisations.

With a = sqrt(alpha_bar_t) and sigma = sqrt(1 - alpha_bar_t), x_t = a x_0 +
sigma eps, v = a eps - sigma x_0 (Salimans and Ho 2022) and the score of
q(x_t | x_0) is -eps / sigma.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._arrays import (
    Array,
    Namespace,
    Steps,
    check_floating,
    finish,
    gather,
    namespace,
    shown,
    upcast,
)
from ._backends import backend_for
from ._forward import _setup, affine
from ._schedule import Schedule


def x_0_from_eps(schedule: Schedule, x_t: Array, t: Any, eps: Array) -> Array:
    """The x_0 implied by a noise prediction: x_0 = (x_t - sigma eps) / a.

    .. math::

        \\hat x_0 = \\frac{1}{\\sqrt{\\bar\\alpha_t}} x_t
        - \\sqrt{\\frac{1}{\\bar\\alpha_t} - 1}\\, \\hat\\epsilon

    Undefined where alpha_bar_t = 0 (zero terminal SNR): a readable t there
    raises ValueError; on an accelerator the result is inf or NaN there.
    Predict v instead for such schedules (:func:`x_0_from_v` is exact).

    Parameters
    ----------
    schedule : Schedule
    x_t, eps : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        x_0_hat, with x_t's shape, dtype, device and namespace.

    References
    ----------
    Ho et al. (2020), eq. 4 solved for x_0.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, eps=eps)
    return _x_0_from_eps(schedule, xp, steps, x_t, eps)


def why_zero(schedule: Schedule, steps: Any) -> str:
    """Why alpha_bar is 0 at the given timesteps: by design, or by underflow."""
    logs = schedule._log_alphas_cumprod[np.asarray(steps)]
    if np.all(np.isneginf(logs)):
        return "zero terminal SNR"
    finite = float(np.max(logs[np.isfinite(logs)]))
    return f"alpha_bar_t underflows float64 there: log alpha_bar_t = {finite:.6g}"


def _any_inf(table: Any, host: Any) -> bool:
    """Whether the table is infinite at any of the host timesteps."""
    if host.size == 1:
        return bool(math.isinf(table[host.item()]))
    return bool(np.any(np.isinf(table[host])))


def _x_0_from_eps(
    schedule: Schedule, xp: Namespace, steps: Steps, x_t: Array, eps: Array
) -> Array:
    """x_0_from_eps on arrays and timesteps that a public caller validated."""
    # 1 / sqrt(alpha_bar_t) is infinite where alpha_bar_t = 0 (zero terminal
    # SNR), or where log alpha_bar_t < -1419 (underflow); finite elsewhere,
    # even where alpha_bar_t itself underflows to 0.
    recip = schedule._table("sqrt_recip_alphas_cumprod")
    if steps.host is not None and _any_inf(recip, steps.host):
        bad = np.unique(steps.host[np.isinf(recip[steps.host])])
        msg = (
            "x_0 cannot be recovered from eps where alphas_cumprod is 0 "
            f"({why_zero(schedule, bad)}); got t = {', '.join(map(str, bad))} there; "
            "use v-prediction and x_0_from_v"
        )
        raise ValueError(msg)
    a = gather(schedule, "sqrt_recip_alphas_cumprod", steps, xp, x_t)
    b = gather(schedule, "sigmas", steps, xp, x_t)
    return affine(xp, a, x_t, -b, eps)


def eps_from_x_0(schedule: Schedule, x_t: Array, t: Any, x_0: Array) -> Array:
    """The noise implied by an x_0 prediction: eps = (x_t - a x_0) / sigma.

    .. math::

        \\hat\\epsilon = \\frac{x_t - \\sqrt{\\bar\\alpha_t}\\, \\hat x_0}
        {\\sqrt{1 - \\bar\\alpha_t}}

    Parameters
    ----------
    schedule : Schedule
    x_t, x_0 : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        eps_hat, with x_t's shape and dtype.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, x_0=x_0)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_t)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
    with np.errstate(over="ignore", invalid="ignore"):  # inf as in torch
        return finish(xp, (upcast(xp, x_t) - a * upcast(xp, x_0)) / sigma, x_t.dtype)


def velocity(schedule: Schedule, x_0: Array, t: Any, noise: Array) -> Array:
    """The v target of Salimans and Ho: v = a eps - sigma x_0.

    .. math::

        v_t = \\sqrt{\\bar\\alpha_t}\\, \\epsilon - \\sqrt{1 - \\bar\\alpha_t}\\, x_0

    Parameters
    ----------
    schedule : Schedule
    x_0, noise : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        v, with x_0's shape and dtype (diffusers calls this ``get_velocity``).

    References
    ----------
    Salimans and Ho (2022), Progressive Distillation, section 4.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> v = diffcore.velocity(s, np.ones(1), 499, np.full(1, -0.5))
    >>> round(float(v[0]), 12)
    -1.100069554155
    """
    schedule, xp, steps = _setup(schedule, t, "x_0", x_0, noise=noise)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_0)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_0)
    return affine(xp, a, noise, -sigma, x_0)


def x_0_from_v(schedule: Schedule, x_t: Array, t: Any, v: Array) -> Array:
    """The x_0 implied by a v prediction: x_0 = a x_t - sigma v (exact everywhere).

    .. math::

        \\hat x_0 = \\sqrt{\\bar\\alpha_t}\\, x_t
        - \\sqrt{1 - \\bar\\alpha_t}\\, \\hat v

    Parameters
    ----------
    schedule : Schedule
    x_t, v : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        x_0_hat, with x_t's shape and dtype.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, v=v)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_t)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
    return affine(xp, a, x_t, -sigma, v)


def eps_from_v(schedule: Schedule, x_t: Array, t: Any, v: Array) -> Array:
    """The noise implied by a v prediction: eps = sigma x_t + a v (exact everywhere).

    .. math::

        \\hat\\epsilon = \\sqrt{1 - \\bar\\alpha_t}\\, x_t
        + \\sqrt{\\bar\\alpha_t}\\, \\hat v

    Parameters
    ----------
    schedule : Schedule
    x_t, v : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        eps_hat, with x_t's shape and dtype.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, v=v)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_t)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
    return affine(xp, sigma, x_t, a, v)


def score_from_eps(schedule: Schedule, x_t: Array, t: Any, eps: Array) -> Array:
    """The score of q(x_t) implied by a noise prediction: -eps / sigma.

    .. math::

        \\nabla_{x_t} \\log q(x_t)
        \\approx -\\frac{\\hat\\epsilon}{\\sqrt{1-\\bar\\alpha_t}}

    Parameters
    ----------
    schedule : Schedule
    x_t, eps : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        The score estimate, with x_t's shape and dtype.

    References
    ----------
    Song and Ermon (2019); Vincent (2011), denoising score matching.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, eps=eps)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
    with np.errstate(over="ignore", invalid="ignore"):
        return finish(xp, -upcast(xp, eps) / sigma, x_t.dtype)


def eps_from_score(schedule: Schedule, x_t: Array, t: Any, score: Array) -> Array:
    """The noise implied by a score estimate: eps = -sigma score.

    Parameters
    ----------
    schedule : Schedule
    x_t, score : arrays of one shape (B, ...), dtype and device
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        eps_hat, with x_t's shape and dtype.
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t, score=score)
    sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
    return finish(xp, -sigma * upcast(xp, score), x_t.dtype)


def sigmas_from_alphas_cumprod(alphas_cumprod: Array) -> Array:
    """The variance-exploding noise level sqrt((1 - alpha_bar) / alpha_bar).

    +inf where alpha_bar is 0 (never NaN).  Half-precision input is computed
    in float32 and returned as float32, since sigma overflows float16 once
    alpha_bar < 2.33e-10.

    Parameters
    ----------
    alphas_cumprod : array
        Values in [0, 1], any real floating dtype.

    Returns
    -------
    array
        sigma, float32 or float64.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> diffcore.sigmas_from_alphas_cumprod(np.array([1.0, 0.5, 0.0])).tolist()
    [0.0, 1.0, inf]
    """
    xp = namespace(alphas_cumprod=alphas_cumprod)
    check_floating(xp, "alphas_cumprod", alphas_cumprod)
    _check_unit_interval(xp, alphas_cumprod)
    ab = upcast(xp, alphas_cumprod)
    positive = ab > 0
    safe = xp.where(positive, ab, xp.ones_like(ab))
    return xp.where(positive, xp.sqrt((1 - safe) / safe), xp.full_like(ab, xp.inf))


def alphas_cumprod_from_sigmas(sigmas: Array) -> Array:
    """The alpha_bar of a variance-exploding noise level: 1 / (1 + sigma^2).

    sigma = +inf gives 0.  Half-precision input is computed and returned in
    float32.

    Parameters
    ----------
    sigmas : array
        Non-negative values, any real floating dtype.

    Returns
    -------
    array
        alpha_bar, float32 or float64.
    """
    xp = namespace(sigmas=sigmas)
    check_floating(xp, "sigmas", sigmas)
    sigma = upcast(xp, sigmas)
    if _readable_values(sigma) and bool(xp.any(~(sigma >= 0))):
        entry = _first_bad("sigmas", sigmas, lambda v: ~(v >= 0))
        msg = f"sigmas must be non-negative with no NaN; got {entry}"
        raise ValueError(msg)
    # 1 + sigma^2 overflows past sqrt(max); alpha_bar there is 0 to that precision.
    huge = sigma > float(xp.finfo(sigma.dtype).max) ** 0.5
    safe = xp.where(huge, xp.zeros_like(sigma), sigma)
    return xp.where(huge, xp.zeros_like(sigma), 1 / (1 + safe * safe))


def _readable_values(x: Array) -> bool:
    """Whether x's values may be read to check them: its backend's rule, the
    one the timestep and finiteness checks follow (CPU arrays, not traced)."""
    return backend_for(x).readable(x)


def _check_unit_interval(xp: Any, ab: Array) -> None:
    if _readable_values(ab) and bool(xp.any(~((ab >= 0) & (ab <= 1)))):
        entry = _first_bad("alphas_cumprod", ab, lambda v: ~((v >= 0) & (v <= 1)))
        msg = f"alphas_cumprod must lie in [0, 1] with no NaN; got {entry}"
        raise ValueError(msg)


def _first_bad(name: str, x: Array, bad: Any) -> str:
    """``name[i, j] = value`` for x's first entry where ``bad`` holds."""
    host = backend_for(x).host(x)
    values = np.asarray(host if host is not None else x)
    where = tuple(int(i) for i in np.argwhere(bad(values))[0])
    value = float(values[where])
    if not where:
        return f"{name} = {shown(value)}"
    return f"{name}[{', '.join(map(str, where))}] = {shown(value)}"
