"""The forward process: one Markov step, the closed form and transitions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import (
    Array,
    Namespace,
    Steps,
    check_floating,
    check_like_all,
    check_writable,
    finish,
    from_host,
    gather,
    namespace_of_all,
    timesteps,
    upcast,
)
from ._backends import backend_for
from ._random import standard_normal_like
from ._schedule import Schedule, as_schedule

MeanVariance = tuple[Array, Array, Array]


def _setup(
    schedule: Any,
    t: Any,
    x_name: str,
    x: Array,
    *,
    out: Array | None = None,
    **more: Array,
) -> tuple[Schedule, Namespace, Steps]:
    """Validate the schedule, the arrays (``out`` too, when given) and t once.

    Returns the schedule, the arrays' namespace and the timesteps.
    """
    schedule = as_schedule(schedule)
    arrays = {x_name: x, **more}
    if out is not None:
        check_writable(x, out)
        arrays["out"] = out
    xp = namespace_of_all(arrays)
    check_floating(xp, x_name, x)
    if len(arrays) > 1:
        check_like_all(x_name, arrays)
    steps = timesteps(xp, t, len(schedule), x)
    return schedule, xp, steps


def spread(xp: Namespace, value: float | Array, x: Array) -> Array:
    """value in x's dtype, broadcast (as a view) to x's shape."""
    if isinstance(value, float):
        array = xp.asarray(value, dtype=x.dtype, device=_device(x))
    else:
        array = finish(xp, value, x.dtype)
    return xp.broadcast_to(array, x.shape)


def spread_tables(
    schedule: Schedule, names: tuple[str, str], steps: Steps, xp: Namespace, x: Array
) -> tuple[Array, Array]:
    """A variance table and its log table at the timesteps, spread over x."""
    variance, log_variance = (gather(schedule, n, steps, xp, x) for n in names)
    return spread(xp, variance, x), spread(xp, log_variance, x)


def _device(x: Array) -> Any:
    return backend_for(x).device(x)


def affine(
    xp: Namespace,
    a: float | Array,
    x: Array,
    b: float | Array,
    y: Array,
    *,
    out: Array | None = None,
) -> Array:
    """a * x + b * y computed in the compute dtype, rounded once to x's dtype.

    The backend of x's library may fuse it (``Backend.linear``) and write it
    into ``out``.
    """
    return backend_for(x).linear(xp, ((a, x), (b, y)), x.dtype, out)


def given(noise: Array | None) -> dict[str, Array]:
    """``{"noise": noise}`` for the checks in ``_setup``, or nothing when None."""
    return {} if noise is None else {"noise": noise}


def draw_noise(x: Array, noise: Array | None, generator: Any, key: Any) -> Array:
    """The given noise, or standard normal draws like x from generator or key."""
    if noise is None:
        return standard_normal_like(x, generator, key=key)
    if generator is not None or key is not None:
        msg = (
            "pass noise or a source of randomness (generator or key), not both; "
            f"got noise and {'generator' if generator is not None else 'key'}"
        )
        raise TypeError(msg)
    return noise


def q_step_mean_variance(schedule: Schedule, x_prev: Array, t: Any) -> MeanVariance:
    """Mean, variance and log variance of one Markov step q(x_t | x_{t-1}).

    .. math::

        q(x_t \\mid x_{t-1})
        = \\mathcal N(\\sqrt{1 - \\beta_t}\\, x_{t-1},\\ \\beta_t I)

    Parameters
    ----------
    schedule : Schedule
    x_prev : array, shape (B, ...)
        x_{t-1}, any real floating dtype of any array-API library.
    t : int or integer array of shape () or (B,)
        0-based timesteps in [0, T).

    Returns
    -------
    mean, variance, log_variance : arrays of x_prev's shape and dtype

    References
    ----------
    Ho et al. (2020), eq. 2.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> mean, var, _ = diffcore.q_step_mean_variance(s, np.ones(2), 0)
    >>> mean.round(8).tolist(), var.tolist()
    ([0.99995, 0.99995], [0.0001, 0.0001])
    """
    schedule, xp, steps = _setup(schedule, t, "x_prev", x_prev)
    mean = finish(
        xp,
        gather(schedule, "sqrt_alphas", steps, xp, x_prev) * upcast(xp, x_prev),
        x_prev.dtype,
    )
    names = ("betas", "log_betas")
    return mean, *spread_tables(schedule, names, steps, xp, x_prev)


def q_step_sample(
    schedule: Schedule,
    x_prev: Array,
    t: Any,
    noise: Array | None = None,
    *,
    generator: Any = None,
    key: Any = None,
) -> Array:
    """Draw x_t from q(x_t | x_{t-1}) given standard normal noise.

    .. math::

        x_t = \\sqrt{1 - \\beta_t}\\, x_{t-1} + \\sqrt{\\beta_t}\\, \\epsilon

    Parameters
    ----------
    schedule : Schedule
    x_prev : array, shape (B, ...)
    t : int or integer array of shape () or (B,)
    noise : array, optional
        Standard normal draws of x_prev's shape, dtype and device.
        Leave it None to draw it here from ``generator`` or ``key``.
    generator, key : optional
        Source of the noise when ``noise`` is None; see
        :func:`standard_normal_like` (``key`` is JAX's).

    Returns
    -------
    array
        x_t, with x_prev's shape, dtype, device and namespace.
    """
    schedule, xp, steps = _setup(schedule, t, "x_prev", x_prev, **given(noise))
    noise = draw_noise(x_prev, noise, generator, key)
    a = gather(schedule, "sqrt_alphas", steps, xp, x_prev)
    b = gather(schedule, "sqrt_betas", steps, xp, x_prev)
    return affine(xp, a, x_prev, b, noise)


def q_mean_variance(schedule: Schedule, x_0: Array, t: Any) -> MeanVariance:
    """Mean, variance and log variance of the closed form q(x_t | x_0).

    .. math::

        q(x_t \\mid x_0) = \\mathcal N(\\sqrt{\\bar\\alpha_t}\\, x_0,\\
        (1 - \\bar\\alpha_t) I)

    Parameters
    ----------
    schedule : Schedule
    x_0 : array, shape (B, ...)
    t : int or integer array of shape () or (B,)

    Returns
    -------
    mean, variance, log_variance : arrays of x_0's shape and dtype

    References
    ----------
    Ho et al. (2020), eq. 4.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> _, var, _ = diffcore.q_mean_variance(s, np.zeros(3), 0)
    >>> var.tolist()
    [0.0001, 0.0001, 0.0001]
    """
    schedule, xp, steps = _setup(schedule, t, "x_0", x_0)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_0)
    mean = finish(xp, a * upcast(xp, x_0), x_0.dtype)
    names = ("one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod")
    return mean, *spread_tables(schedule, names, steps, xp, x_0)


# TODO(#7): 2.5-2.6x diffusers' add_noise at 1x3x64x64 on torch (target 3x): the
# edge checks and dispatch cost ~6 us over the two torch kernels (~5-6 us).
def q_sample(
    schedule: Schedule,
    x_0: Array,
    t: Any,
    noise: Array | None = None,
    *,
    generator: Any = None,
    key: Any = None,
    out: Array | None = None,
) -> Array:
    """Draw x_t from the closed form q(x_t | x_0) given standard normal noise.

    .. math::

        x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1 - \\bar\\alpha_t}\\, \\epsilon

    The coefficients come from the float64 tables and are rounded once; for
    float16 and bfloat16 samples the sum is formed in float32 and only the
    result is rounded to the sample dtype.

    Parameters
    ----------
    schedule : Schedule
    x_0 : array, shape (B, ...)
        Clean data, any real floating dtype of any array-API library.
    t : int or integer array of shape () or (B,)
        0-based timesteps in [0, T); a (B,) array gives one step per sample.
    noise : array, optional
        Standard normal draws of x_0's shape, dtype and device.
        Leave it None to draw it here from ``generator`` or ``key``.
    generator, key : optional
        Source of the noise when ``noise`` is None; see
        :func:`standard_normal_like` (``key`` is JAX's).
    out : array, optional
        Where to write x_t: an array of x_0's shape, dtype, device and library
        (it may be x_0 itself, or overlap any input).  NumPy, PyTorch, CuPy
        and array-api-strict arrays only; JAX and Dask arrays are immutable
        and raise TypeError.  Not differentiable in PyTorch.

    Returns
    -------
    array
        x_t, with x_0's shape, dtype, device and namespace; ``out`` when given.

    References
    ----------
    Ho et al. (2020), eq. 4 (diffusers calls this ``add_noise``).

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x_0, noise = np.zeros((2, 3)), np.ones((2, 3))
    >>> x_t = diffcore.q_sample(s, x_0, np.array([0, 999]), noise)
    >>> x_t[:, 0].round(6).tolist()
    [0.01, 0.99998]
    """
    schedule, xp, steps = _setup(schedule, t, "x_0", x_0, out=out, **given(noise))
    noise = draw_noise(x_0, noise, generator, key)
    a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_0)
    b = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_0)
    return affine(xp, a, x_0, b, noise, out=out)


def transition_tables(
    schedule: Schedule, xp: Namespace, s: Steps, t: Steps, x: Array
) -> tuple[Any, Any, Any]:
    """log(alpha_bar_t / alpha_bar_s), its -expm1 and the ratio's square root.

    Computed on the host in float64 when both timesteps were readable; on the
    device in the compute dtype otherwise.
    """
    if s.host is not None and t.host is not None:
        log_ratio = schedule._log_ratio(s.host, t.host)
        return (
            from_host(xp, np.exp(0.5 * log_ratio), x),
            from_host(xp, -np.expm1(log_ratio), x),
            from_host(xp, np.log(-np.expm1(log_ratio)), x),
        )
    on_device = gather(schedule, "log_alphas_cumprod", t, xp, x) - gather(
        schedule, "log_alphas_cumprod", s, xp, x
    )
    variance = -xp.expm1(on_device)
    return xp.exp(0.5 * on_device), variance, xp.log(variance)


def check_order(s: Steps, t: Steps, schedule: Schedule) -> None:
    """s < t wherever both are readable, and alpha_bar_s > 0."""
    if s.host is None or t.host is None:
        return
    if np.any(
        np.broadcast_to(s.host, np.broadcast_shapes(s.host.shape, t.host.shape))
        >= t.host
    ):
        msg = (
            f"s must be smaller than t at every sample; got s = {s.host}, t = {t.host}"
        )
        raise ValueError(msg)
    if np.any(schedule.alphas_cumprod[s.host] == 0.0):
        msg = f"alphas_cumprod at s must be positive; got 0 at s = {s.host}"
        raise ValueError(msg)


def q_transition_mean_variance(
    schedule: Schedule, x_s: Array, s: Any, t: Any
) -> MeanVariance:
    """Mean, variance and log variance of the transition q(x_t | x_s), s < t.

    .. math::

        q(x_t \\mid x_s) = \\mathcal N\\left(\\sqrt{\\bar\\alpha_t / \\bar\\alpha_s}\\,
        x_s,\\ (1 - \\bar\\alpha_t / \\bar\\alpha_s) I\\right)

    Parameters
    ----------
    schedule : Schedule
    x_s : array, shape (B, ...)
    s, t : int or integer arrays of shape () or (B,)
        0-based timesteps with s < t.

    Returns
    -------
    mean, variance, log_variance : arrays of x_s's shape and dtype

    References
    ----------
    Kingma et al. (2021), Variational Diffusion Models, eq. 3 (in alpha_bar form).
    """
    schedule, xp, t_steps = _setup(schedule, t, "x_s", x_s)
    s_steps = timesteps(xp, s, len(schedule), x_s, name="s")
    check_order(s_steps, t_steps, schedule)
    root, variance, log_variance = transition_tables(
        schedule, xp, s_steps, t_steps, x_s
    )
    mean = finish(xp, root * upcast(xp, x_s), x_s.dtype)
    return mean, spread(xp, variance, x_s), spread(xp, log_variance, x_s)


def q_transition_sample(
    schedule: Schedule,
    x_s: Array,
    s: Any,
    t: Any,
    noise: Array | None = None,
    *,
    generator: Any = None,
    key: Any = None,
) -> Array:
    """Draw x_t from q(x_t | x_s), s < t, given standard normal noise.

    .. math::

        x_t = \\sqrt{\\bar\\alpha_t / \\bar\\alpha_s}\\, x_s
        + \\sqrt{1 - \\bar\\alpha_t / \\bar\\alpha_s}\\, \\epsilon

    Parameters
    ----------
    schedule : Schedule
    x_s : array, shape (B, ...)
    s, t : int or integer arrays of shape () or (B,)
    noise : array of x_s's shape, dtype and device, optional
        Leave it None to draw it here from ``generator`` or ``key``.
    generator, key : optional
        Source of the noise when ``noise`` is None; see
        :func:`standard_normal_like` (``key`` is JAX's).

    Returns
    -------
    array
        x_t, with x_s's shape, dtype, device and namespace.
    """
    schedule, xp, t_steps = _setup(schedule, t, "x_s", x_s, **given(noise))
    noise = draw_noise(x_s, noise, generator, key)
    s_steps = timesteps(xp, s, len(schedule), x_s, name="s")
    check_order(s_steps, t_steps, schedule)
    root, variance, _ = transition_tables(schedule, xp, s_steps, t_steps, x_s)
    std = variance**0.5
    return affine(xp, root, x_s, std, noise)
