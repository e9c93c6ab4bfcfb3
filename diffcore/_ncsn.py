"""Noise-conditional score networks (Song and Ermon 2019): the variance-exploding view.

Data are perturbed by x~ = x + sigma z at geometric noise levels
sigma_1 > ... > sigma_L; a score model is trained by denoising score
matching with weight sigma^2 and sampled by annealed Langevin dynamics.
A variance-preserving schedule is the same family seen through
x~ = x_t / sqrt(alpha_bar_t), with sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat as compat
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import (
    Array,
    _dtypes,
    check_addressable,
    check_floating,
    check_like,
    compute_dtype,
    expand,
    finish,
    gather,
    host_levels,
    namespace,
    refuse_bool_items,
    shown,
    upcast,
)
from ._backends import backend_for
from ._forward import _setup
from ._parameterisation import _any_inf, why_zero
from ._random import noise_stream
from ._reverse import _check_finite
from ._sampling import _check_returned, _left_dtype
from ._schedule import Schedule, _check_real

Float64Array = NDArray[np.float64]
ScoreModel = Callable[[Array, float], Array]


def geometric_sigmas(sigma_max: float, sigma_min: float, L: int) -> Float64Array:
    """Noise levels in geometric progression, sigma_1 = sigma_max > ... > sigma_L.

    .. math::

        \\sigma_i = \\sigma_{max} \\left(\\frac{\\sigma_{min}}{\\sigma_{max}}
        \\right)^{(i-1)/(L-1)}, \\qquad i = 1, \\dots, L

    Parameters
    ----------
    sigma_max, sigma_min : float
        Largest and smallest level, sigma_max > sigma_min > 0 (1 and 0.01
        in Song and Ermon for images in [0, 1]).
    L : int
        Number of levels, at least 2 (10 in the paper).

    Returns
    -------
    ndarray of float64, shape (L,)
        Strictly decreasing, with exact end points.

    References
    ----------
    Song and Ermon (2019), section 4.2.

    Examples
    --------
    >>> import diffcore
    >>> diffcore.geometric_sigmas(1.0, 0.01, 3).round(12).tolist()
    [1.0, 0.1, 0.01]
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)):
        msg = f"L must be an integer number of levels; got {shown(L)}"
        raise TypeError(msg)
    if L < 2:
        msg = f"L must be at least 2; got {shown(L)}"
        raise ValueError(msg)
    check_addressable("L", L)
    sigma_max = _check_real("sigma_max", sigma_max, finite=False)
    sigma_min = _check_real("sigma_min", sigma_min, finite=False)
    if not (0 < sigma_min < sigma_max < math.inf):
        msg = (
            "sigma_max and sigma_min must satisfy 0 < sigma_min < sigma_max < inf; "
            f"got sigma_max = {shown(sigma_max)}, sigma_min = {shown(sigma_min)}"
        )
        raise ValueError(msg)
    sigmas = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), int(L)))
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    if np.any(np.diff(sigmas) >= 0):
        msg = (
            f"sigma_max = {shown(sigma_max)} and sigma_min = {shown(sigma_min)} are "
            f"too close for L = {int(L)} distinct float64 levels; widen the range "
            "or lower L"
        )
        raise ValueError(msg)
    return sigmas


def check_sigmas(sigmas: ArrayLike) -> Float64Array:
    """Noise levels as a float64 vector, positive and strictly decreasing."""
    refuse_bool_items("sigmas", sigmas)
    values = host_levels("sigmas", sigmas)
    if values.ndim != 1 or values.size < 1:
        msg = f"sigmas must be a non-empty 1-d array; got shape {values.shape}"
        raise ValueError(msg)
    if not np.all((values > 0) & np.isfinite(values)):
        i = int(np.flatnonzero(~((values > 0) & np.isfinite(values)))[0])
        msg = (
            f"sigmas must be positive and finite; got sigmas[{i}] = "
            f"{float(values[i])!r}"
        )
        raise ValueError(msg)
    rises = np.flatnonzero(np.diff(values) >= 0)
    if rises.size:
        i = int(rises[0])
        msg = (
            f"sigmas must decrease strictly; got sigmas[{i}] = "
            f"{float(values[i])!r} followed by sigmas[{i + 1}] = "
            f"{float(values[i + 1])!r}"
        )
        raise ValueError(msg)
    return values


def _sigma_like(xp: Any, sigma: Any, x: Array) -> Any:
    """sigma as a positive float, a 0-d array, or a (B,) array broadcast on x.

    Every entry is checked positive and finite where reading it is cheap
    (numbers, lists, host arrays, CPU tensors), whatever its library.  A
    0-d array of x's library stands for one level, as a number does.
    """
    real = (int, float, np.integer, np.floating)
    if isinstance(sigma, real) and not isinstance(sigma, (bool, np.bool_)):
        level = _check_real("sigma", sigma, finite=False)  # names ints past float64
        if not (0 < level < math.inf):
            msg = f"sigma must be positive and finite; got {shown(sigma)}"
            raise ValueError(msg)
        host = np.dtype(_dtypes(xp, x.dtype)[1])
        _check_representable(np, np.asarray([level]), host, "sigma")
        return level
    refuse_bool_items("sigma", sigma)
    values, host = _sigma_array(xp, sigma, x)
    # Host levels (lists, NumPy arrays) are read on the host even where x's
    # library cannot be read (Dask, JAX): they are checked whatever x is.
    read, seen, dtype = (xp, values, None)
    if host is not None:
        # x's compute dtype as NumPy's (float64 for wider than float64 off NumPy)
        twin = x.dtype if isinstance(x, np.ndarray) else _dtypes(xp, x.dtype)[1]
        read, seen, dtype = np, host, compute_dtype(np, np.dtype(twin))
    # Rounded once to x's compute dtype, as a number is: results keep x's dtype.
    work = compute_dtype(xp, x.dtype)
    if values.ndim == 0:
        _check_levels(read, read.reshape(seen, (1,)), x, "sigma", dtype)
        return values if values.dtype == work else xp.astype(values, work)
    if x.ndim == 0 or values.ndim != 1 or values.shape[0] != x.shape[0]:
        batch = f"B = {x.shape[0]}" if x.ndim else "a number for 0-d x"
        msg = (
            f"sigma must be a number or have shape () or (B,) with {batch}; "
            f"got shape {tuple(values.shape)}"
        )
        raise ValueError(msg)
    _check_levels(read, seen, x, dtype=dtype)
    values = values if values.dtype == work else xp.astype(values, work)
    return expand(xp, values, x.ndim)


def _check_levels(
    xp: Any, values: Any, x: Array, name: str = "", dtype: Any = None
) -> None:
    """Refuse levels (a vector) that are not positive, finite and representable.

    Only where reading them is cheap; ``name`` is given for one level, and
    ``dtype`` (x's compute dtype in ``xp``) where ``xp`` is not x's library.
    """
    if not backend_for(values).readable(values):
        return
    bad = ~((values > 0) & xp.isfinite(values))
    if bool(xp.any(bad)):
        i = int(xp.argmax(xp.astype(bad, xp.int8)))
        msg = (
            f"sigma must be positive and finite; got {name or f'sigma[{i}]'} = "
            f"{float(values[i])!r}"
        )
        raise ValueError(msg)
    dtype = compute_dtype(xp, x.dtype) if dtype is None else dtype
    _check_representable(xp, values, dtype, name)


def _check_representable(xp: Any, values: Any, dtype: Any, name: str = "") -> None:
    """Refuse positive finite levels that round to 0 or inf in x's compute dtype.

    The dsm target divides by sigma twice: a level that rounds to 0 would
    give NaN, one that rounds to inf NaN or 0.  ``name`` is given for a
    number, read as a one-entry NumPy array.
    """
    with np.errstate(over="ignore", under="ignore"):
        rounded = xp.astype(values, dtype)
    good = (rounded > 0) & xp.isfinite(rounded)
    if bool(xp.all(good)):
        return
    i = int(xp.argmax(xp.astype(~good, xp.int8)))
    name = name or f"sigma[{i}]"
    to = "0" if float(rounded[i]) == 0 else "inf"
    msg = (
        f"sigma must be representable in {dtype}, the compute dtype of x; "
        f"got {name} = {float(values[i])!r}, which rounds to {to} there"
    )
    raise ValueError(msg)


def _sigma_array(xp: Any, sigma: Any, x: Array) -> tuple[Array, Any]:
    """sigma, a list or an array, as a real floating array of x's namespace.

    Also the levels as a NumPy array when they came from the host (a list or
    a NumPy array), else None.
    """
    if isinstance(sigma, (list, tuple)):
        try:
            sigma = np.asarray(sigma, dtype=np.float64)
        except (TypeError, ValueError):
            msg = f"sigma must be a number or a sequence of numbers; got {shown(sigma)}"
            raise TypeError(msg) from None
    if not compat.is_array_api_obj(sigma):
        msg = f"sigma must be a number or an array of shape (B,); got {shown(sigma)}"
        raise TypeError(msg)
    host = None
    if isinstance(sigma, np.ndarray):
        check_floating(np, "sigma", sigma)
        host = sigma
        if xp is not np:
            sigma = xp.asarray(sigma, device=compat.device(x))
    namespace(x=x, sigma=sigma)
    check_floating(xp, "sigma", sigma)
    ours, theirs = compat.device(x), compat.device(sigma)
    # A JAX tracer has no device (None): it mixes with concrete arrays.
    if ours is not None and theirs is not None and theirs != ours:
        msg = f"sigma must be on x's device, {ours}; got sigma on {theirs}"
        raise ValueError(msg)
    return sigma, host


def perturb(x: Array, sigma: Any, noise: Array) -> Array:
    """Draw x~ from the perturbation kernel q_sigma(x~ | x) = N(x, sigma^2 I).

    .. math::

        \\tilde x = x + \\sigma z, \\qquad z \\sim \\mathcal N(0, I)

    Parameters
    ----------
    x, noise : arrays of one shape (B, ...), dtype and device
    sigma : float or array of shape () or (B,)
        Positive noise level(s), one per sample when of shape (B,); an
        array of x's library and device.

    Returns
    -------
    array
        x~, with x's shape and dtype.

    References
    ----------
    Song and Ermon (2019), section 4.2.
    """
    xp = namespace(x=x, noise=noise)
    check_floating(xp, "x", x)
    check_like(xp, "x", x=x, noise=noise)
    s = _sigma_like(xp, sigma, x)
    # A huge sigma may overflow the samples' dtype: inf, without a warning.
    with np.errstate(over="ignore"):
        return finish(xp, upcast(xp, x) + s * upcast(xp, noise), x.dtype)


def dsm_target(x: Array, x_tilde: Array, sigma: Any) -> Array:
    """The denoising score-matching target, the score of the perturbation kernel.

    .. math::

        \\nabla_{\\tilde x} \\log q_\\sigma(\\tilde x \\mid x)
        = -\\frac{\\tilde x - x}{\\sigma^2}

    Parameters
    ----------
    x, x_tilde : arrays of one shape (B, ...), dtype and device
    sigma : float or array of shape () or (B,)

    Returns
    -------
    array
        The target score, with x's shape and dtype.

    References
    ----------
    Vincent (2011), A Connection Between Score Matching and Denoising
    Autoencoders; Song and Ermon (2019), eq. 5.
    """
    xp = namespace(x=x, x_tilde=x_tilde)
    check_floating(xp, "x", x)
    check_like(xp, "x", x=x, x_tilde=x_tilde)
    s = _sigma_like(xp, sigma, x)
    # Divided by sigma twice: sigma * sigma underflows to 0 below about 1e-154.
    # A target too large for the dtype becomes inf, without a warning.
    with np.errstate(over="ignore"):
        target = -(upcast(xp, x_tilde) - upcast(xp, x)) / s / s
        return finish(xp, target, x.dtype)


def dsm_loss(score: Array, x: Array, x_tilde: Array, sigma: Any) -> Array:
    """Denoising score matching with the sigma^2 weighting, per sample.

    .. math::

        \\lambda(\\sigma)\\, \\ell(\\theta; \\sigma)
        = \\frac{\\sigma^2}{2} \\left\\| s_\\theta(\\tilde x, \\sigma)
        + \\frac{\\tilde x - x}{\\sigma^2} \\right\\|^2

    With lambda(sigma) = sigma^2 every level contributes on the same scale,
    since ||sigma s|| is of order sqrt(D) at every sigma.  The norm is a sum
    over the data dimensions, as in the paper.

    Parameters
    ----------
    score : array, shape (B, ...)
        s_theta(x~, sigma), of x's shape, dtype and device.
    x, x_tilde : arrays of one shape (B, ...)
    sigma : float or array of shape () or (B,)

    Returns
    -------
    array, shape (B,)
        The loss per sample, in the compute dtype (float32 for float16 and
        bfloat16 x, as :func:`diffusion_loss`; a sum over many dimensions
        would lose digits or overflow in 16 bits).

    References
    ----------
    Song and Ermon (2019), eqs. 5 and 6.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> x, x_tilde = np.zeros((1, 2)), np.full((1, 2), 0.5)
    >>> target = diffcore.dsm_target(x, x_tilde, 0.5)
    >>> diffcore.dsm_loss(target, x, x_tilde, 0.5).tolist()
    [0.0]
    """
    xp = namespace(score=score, x=x, x_tilde=x_tilde)
    check_floating(xp, "score", score)
    check_like(xp, "x", x=x, x_tilde=x_tilde, score=score)
    s = _sigma_like(xp, sigma, x)

    # A loss too large for the dtype becomes inf, without a warning.
    with np.errstate(over="ignore"):
        residual = s * upcast(xp, score) + (upcast(xp, x_tilde) - upcast(xp, x)) / s
        squared = residual * residual
        if squared.ndim > 1:
            squared = xp.sum(squared, axis=tuple(range(1, squared.ndim)))
        return 0.5 * squared


def annealed_langevin(
    score: ScoreModel,
    x: Array,
    sigmas: ArrayLike,
    epsilon: float,
    n_steps: int,
    *,
    generator: Any = None,
    denoise: bool = False,
) -> Array:
    """Annealed Langevin dynamics from x through the levels sigma_1 > ... > sigma_L.

    .. math::

        \\alpha_i = \\epsilon\\, \\sigma_i^2 / \\sigma_L^2, \\qquad
        x \\leftarrow x + \\frac{\\alpha_i}{2} s_\\theta(x, \\sigma_i)
        + \\sqrt{\\alpha_i}\\, z

    repeated ``n_steps`` times at each level, with fresh standard normal z.

    Parameters
    ----------
    score : callable
        ``score(x, sigma)`` with sigma a Python float returns the score of
        the data perturbed at level sigma: an array of x's library, shape,
        dtype and device (TypeError or ValueError otherwise), finite where
        reading it is cheap (ValueError), as in :func:`sample`.
    x : array, shape (B, ...)
        Starting points (often uniform noise or N(0, sigma_1^2)), finite
        where reading them is cheap (ValueError).  Each update is computed
        in float32 for float16 and bfloat16 and rounded once to x's dtype;
        a state that overflows it is a ValueError, where reading it is cheap.
    sigmas : array_like, shape (L,)
        Positive, strictly decreasing levels.
    epsilon : float
        Positive step size at the last level.
    n_steps : int
        Positive number of steps per level (T in the paper, 100 there).
    generator : optional
        Source of noise for :func:`standard_normal_like`; an integer seed
        starts one stream for the whole run, and a JAX key is split before
        every draw.
    denoise : bool
        Whether to finish with one Tweedie step x + sigma_L^2 s(x, sigma_L),
        which removes the last level's noise (Jolicoeur-Martineau et al.
        2021).  A bool (TypeError otherwise).

    Returns
    -------
    array
        The final samples, with x's shape and dtype.

    References
    ----------
    Song and Ermon (2019), algorithm 1.
    """
    if not callable(score):
        msg = f"score must be callable as score(x, sigma); got {shown(score)}"
        raise TypeError(msg)
    xp = namespace(x=x)
    check_floating(xp, "x", x)
    levels = check_sigmas(sigmas)
    if not 0 < _check_real("epsilon", epsilon, finite=False) < math.inf:
        msg = f"epsilon must be a positive finite step size; got {shown(epsilon)}"
        raise ValueError(msg)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        msg = f"n_steps must be a positive integer; got {shown(n_steps)}"
        raise TypeError(msg)
    if n_steps < 1:
        msg = f"n_steps must be a positive integer; got {n_steps}"
        raise ValueError(msg)
    if not isinstance(denoise, (bool, np.bool_)):
        msg = f"denoise must be a bool; got {shown(denoise)}"
        raise TypeError(msg)

    _check_finite(xp, "x", x)
    steps = _step_sizes(float(epsilon), levels)

    draw = noise_stream(x, generator)
    for sigma, step in zip(levels.tolist(), steps.tolist(), strict=True):
        for _ in range(int(n_steps)):
            z = draw(x)
            scored = _scored(xp, score, x, sigma)
            x = _moved(xp, x, (0.5 * step, scored), (math.sqrt(step), z))
            _check_state(xp, x, sigma, step)
    if denoise:
        last = float(levels[-1])
        x = _moved(xp, x, (last * last, _scored(xp, score, x, last)))
        _check_state(xp, x, last, last * last)
    return x


def _step_sizes(epsilon: float, levels: Float64Array) -> Float64Array:
    """alpha_i = epsilon sigma_i^2 / sigma_L^2, refused where not finite."""
    with np.errstate(over="ignore"):
        ratios = levels / levels[-1]
        steps: Float64Array = epsilon * (ratios * ratios)
    if not np.isfinite(steps[0]):
        msg = (
            "epsilon * (sigmas[0] / sigmas[-1])**2, the first Langevin step size, "
            f"must be finite; got epsilon = {shown(epsilon)}, sigmas[0] = "
            f"{float(levels[0])!r} and sigmas[-1] = {float(levels[-1])!r}"
        )
        raise ValueError(msg)
    return steps


def _moved(xp: Any, x: Array, *terms: tuple[float, Array]) -> Array:
    """x plus each weight times its term, in x's compute dtype, rounded once.

    A value beyond x's dtype becomes inf (or NaN) without NumPy's warning;
    :func:`_check_state` reports it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        moved = upcast(xp, x)
        for weight, term in terms:
            moved = moved + weight * upcast(xp, term)
        return finish(xp, moved, x.dtype)


def _check_state(xp: Any, x: Array, sigma: float, step: float) -> None:
    """Refuse a Langevin state that left x's dtype, where reading it is cheap."""
    if not _left_dtype(xp, x):
        return
    msg = (
        f"x overflowed its dtype, {x.dtype}, in the Langevin update at sigma = "
        f"{shown(sigma)}, of step size {shown(step)}; epsilon or the ratio "
        "sigmas[0] / sigmas[-1] is likely too large"
    )
    raise ValueError(msg)


def _scored(xp: Any, score: ScoreModel, x: Array, sigma: float) -> Array:
    """score(x, sigma), checked to be an array like x (library, shape, dtype).

    It is checked finite too, where reading it is cheap, as in :func:`sample`.
    """
    output = score(x, sigma)
    output = _check_returned(output, x, f"at sigma = {shown(sigma)}", name="score")
    check_like(xp, "x", x=x, score=output)
    _check_finite(xp, f"score at sigma = {shown(sigma)}", output)
    return output


def ve_from_vp(schedule: Schedule, x_t: Array, t: Any) -> Array:
    """The variance-exploding state of a VP sample: x_t / sqrt(alpha_bar_t).

    .. math::

        \\tilde x = \\frac{x_t}{\\sqrt{\\bar\\alpha_t}} = x_0 + \\sigma_t \\epsilon,
        \\qquad \\sigma_t = \\sqrt{\\frac{1 - \\bar\\alpha_t}{\\bar\\alpha_t}}

    so x~ is a draw of the NCSN perturbation kernel at level sigma_t
    (``schedule.sigmas``), and the scores satisfy
    grad log p_VE(x~) = sqrt(alpha_bar_t) grad log p_VP(x_t).

    Parameters
    ----------
    schedule : Schedule
    x_t : array, shape (B, ...)
    t : int or integer array of shape () or (B,)
        Timesteps with alpha_bar_t > 0.

    Returns
    -------
    array
        x~, with x_t's shape and dtype.

    References
    ----------
    Song et al. (2021), Score-Based Generative Modeling through SDEs,
    section 3.4 and appendix B; Kingma et al. (2021), eq. 3.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x_t = diffcore.q_sample(s, np.ones(1), 999, np.ones(1))
    >>> float(diffcore.ve_from_vp(s, x_t, 999)[0]) - (1 + float(s.sigmas[999]))
    0.0
    """
    schedule, xp, steps = _setup(schedule, t, "x_t", x_t)
    # 1 / sqrt(alpha_bar_t) is finite even where alpha_bar_t underflows to 0.
    recip = schedule._table("sqrt_recip_alphas_cumprod")
    if steps.host is not None and _any_inf(recip, steps.host):
        bad = np.unique(steps.host[np.isinf(recip[steps.host])])
        msg = (
            "t must have alphas_cumprod[t] > 0 for the variance-exploding view "
            f"(sigma is infinite where it is 0: {why_zero(schedule, bad)}); "
            f"got t = {', '.join(map(str, bad))} there"
        )
        raise ValueError(msg)
    scale = gather(schedule, "sqrt_recip_alphas_cumprod", steps, xp, x_t)
    # A scale beyond the dtype's range gives inf, without NumPy's warning.
    with np.errstate(over="ignore"):
        return finish(xp, scale * upcast(xp, x_t), x_t.dtype)


def vp_from_ve(schedule: Schedule, x_ve: Array, t: Any) -> Array:
    """The variance-preserving state of a VE sample: sqrt(alpha_bar_t) x~.

    .. math::

        x_t = \\sqrt{\\bar\\alpha_t}\\, \\tilde x
        = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1 - \\bar\\alpha_t}\\, \\epsilon

    Parameters
    ----------
    schedule : Schedule
    x_ve : array, shape (B, ...)
        x~ = x_0 + sigma_t eps at the level ``schedule.sigmas[t]``.
    t : int or integer array of shape () or (B,)

    Returns
    -------
    array
        x_t, with x_ve's shape and dtype.
    """
    schedule, xp, steps = _setup(schedule, t, "x_ve", x_ve)
    scale = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_ve)
    return finish(xp, scale * upcast(xp, x_ve), x_ve.dtype)
