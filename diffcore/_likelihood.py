"""The variational bound: KL terms, the discretised decoder and bits per dimension.

Every term is returned per sample, averaged over the data dimensions and
expressed in bits (divided by log 2), so that the terms add up to the
bound in bits/dim that papers report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._arrays import (
    Array,
    Namespace,
    check_floating,
    check_like,
    finish,
    namespace,
    read_host,
    shown,
    upcast,
)
from ._backends import backend_for
from ._forward import _setup, q_mean_variance, q_sample
from ._parameterisation import _readable_values
from ._posterior import q_posterior_mean_variance
from ._random import noise_stream
from ._reverse import _check_finite, check_choice
from ._schedule import Schedule, as_schedule

ReverseModel = Callable[[Array, Any], Any]

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# log erfc(u) = log t - u^2 + g(2t - 1) for u >= 0, t = 1 / (1 + u/2), with g
# smooth on [-1, 1]: its Chebyshev series, computed with mpmath by
# scripts/erfc_coefficients.py (every dropped term is below 1e-19).  float64
# sums all terms; float32 the first 13 (the rest add up to 6.4e-9, a tenth
# of float32's epsilon).
_ERFC_CHEBYSHEV = (
    -0.6513268598908547,
    0.6419697923564902,
    0.019476473204185836,
    -0.009561514786808632,
    -0.0009465953444820369,
    0.00036683949785276145,
    4.252332480690777e-05,
    -2.0278578112534242e-05,
    -1.6242900046470256e-06,
    1.3036558355805232e-06,
    1.5626441722066142e-08,
    -8.523809591492654e-08,
    6.5290544390988515e-09,
    5.059343495551469e-09,
    -9.91364156493033e-10,
    -2.273651222931836e-10,
    9.646791102015527e-11,
    2.3940380830391146e-12,
    -6.886027526497553e-12,
    8.944879273090725e-13,
    3.130921399342958e-13,
    -1.1270822361367252e-13,
    3.810905255189232e-16,
    7.106097613609237e-15,
    -1.5230282014571043e-15,
    -9.457494571291233e-17,
    1.210237189224279e-16,
    -2.816663087747177e-17,
    5.003005559445905e-20,
    2.3281042579529253e-18,
    -8.446077682509006e-19,
)
_ERFC_TERMS_32 = 13

# exp(d) - 1 - d = sum over n >= 2 of d^n / n!; for |d| < 0.1 the terms to
# n = 10 give it to float64 precision (the next is 5e-17 of the sum), and
# beyond 0.1, expm1(d) - d loses at most 2 eps / 0.1 of relative accuracy.
_SMALL_LOG_RATIO = 0.1
_EXP_SERIES = tuple(1.0 / math.factorial(n) for n in range(2, 11))

# log_variance is floored here (a standard deviation of 6e-16), where the
# bins of 8-bit data are 1e13 standard deviations wide and nothing overflows.
_LOG_VARIANCE_FLOOR = -70.0

# Below this half-width (in standard deviations), and where the half-width
# times the distance from the mean is below it too, a bin's mass comes from
# the midpoint series; elsewhere from log-CDFs.
_NARROW_HALF_WIDTH = 0.05


def normal_kl(
    mean_1: Array, log_variance_1: Array, mean_2: Array, log_variance_2: Array
) -> Array:
    """KL divergence between diagonal Gaussians, elementwise, in nats.

    .. math::

        \\mathrm{KL}(\\mathcal N(\\mu_1, \\sigma_1^2) \\,\\|\\, \\mathcal N(\\mu_2,
        \\sigma_2^2)) = \\tfrac12 \\left(\\log\\frac{\\sigma_2^2}{\\sigma_1^2}
        + \\frac{\\sigma_1^2 + (\\mu_1 - \\mu_2)^2}{\\sigma_2^2} - 1\\right)

    Parameters
    ----------
    mean_1, log_variance_1, mean_2, log_variance_2 : arrays
        Real floating arrays of one library whose shapes broadcast together
        (ValueError naming the first that does not) and whose dtypes promote
        as the array API's ``result_type`` does (float32 with float64 gives
        float64), like the library's own arithmetic.  Variances enter through
        their logs, so they are positive by construction; a NaN log variance
        gives NaN, and so do equal infinite ones (inf - inf: the divergence
        is undefined).  Any other infinite log variance gives inf, and so
        does a divergence beyond the dtype, without warnings.  The variance
        term exp(d) - 1 - d, d = log(s1^2 / s2^2), keeps full relative
        accuracy when the variances nearly agree.

    Returns
    -------
    array
        The divergence per element, in the broadcast shape.

    References
    ----------
    Kingma and Welling (2014), Auto-Encoding Variational Bayes, appendix B;
    Ho et al. (2020), eq. 5.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> kl = diffcore.normal_kl(np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1))
    >>> kl.tolist()
    [0.5]
    """
    arrays = {
        "mean_1": mean_1,
        "log_variance_1": log_variance_1,
        "mean_2": mean_2,
        "log_variance_2": log_variance_2,
    }
    xp = namespace(**arrays)
    for name, value in arrays.items():
        check_floating(xp, name, value)
    _check_broadcast(arrays)
    m1, lv1, m2, lv2 = (upcast(xp, a) for a in arrays.values())

    # log(s2 / s1) + s1 / s2 - 1 = exp(d) - 1 - d with d = log(s1 / s2),
    # formed without cancelling when the variances nearly agree; a divergence
    # beyond the dtype overflows to inf, without NumPy's warnings
    with np.errstate(over="ignore", invalid="ignore"):
        squared = (m1 - m2) ** 2
        # equal means add 0, also where s2 = 0 (their term is not 0 * inf)
        mean_term = xp.where(squared == 0, squared, squared * xp.exp(-lv2))
        kl = 0.5 * (_exp_minus_linear(xp, lv1 - lv2) + mean_term)
    dtype = xp.result_type(*(a.dtype for a in arrays.values()))
    return finish(xp, kl, dtype)


def _check_broadcast(arrays: dict[str, Array]) -> None:
    """Name the first array whose shape does not broadcast with those before it."""
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    if not all(isinstance(n, int) for shape in shapes.values() for n in shape):
        return  # a lazy array of unknown extent: its library checks later
    names = list(shapes)
    for i, name in enumerate(names[1:], start=1):
        try:
            np.broadcast_shapes(*(shapes[n] for n in names[: i + 1]))
        except ValueError:
            before = " and ".join(f"the shape {shapes[n]} of {n}" for n in names[:i])
            msg = (
                f"{name} has shape {shapes[name]}, which does not broadcast with "
                f"{before}"
            )
            raise ValueError(msg) from None


def _exp_minus_linear(xp: Namespace, d: Array) -> Array:
    """exp(d) - 1 - d to full relative accuracy: a Taylor series near 0."""
    # float32 needs the terms to n = 6 (the next is 4e-9 of the sum), float64 all
    terms = len(_EXP_SERIES) if xp.finfo(d.dtype).bits > 32 else 5
    near = xp.clip(d, min=-_SMALL_LOG_RATIO, max=_SMALL_LOG_RATIO)
    series = xp.zeros_like(near) + _EXP_SERIES[terms - 1]
    for coefficient in reversed(_EXP_SERIES[: terms - 1]):
        series = series * near + coefficient
    small = xp.abs(d) < _SMALL_LOG_RATIO
    # d = inf gives inf - (largest float) = inf, not inf - inf
    large = xp.expm1(d) - xp.clip(d, max=float(xp.finfo(d.dtype).max))
    return xp.where(small, near * near * series, large)


def _erfc_parts(xp: Namespace, u: Array) -> tuple[Array, Array]:
    """t = 1 / (1 + u/2) and g(2t - 1), so that log erfc(u) = log t - u^2 + g."""
    t = 1.0 / (1.0 + 0.5 * u)
    y = 2.0 * t - 1.0
    terms = len(_ERFC_CHEBYSHEV) if xp.finfo(u.dtype).bits > 32 else _ERFC_TERMS_32
    # Clenshaw's recurrence for sum c_k T_k(y), from the highest term down.
    twice_y = 2.0 * y
    b_1 = xp.zeros_like(y) + _ERFC_CHEBYSHEV[terms - 1]
    b_2 = xp.zeros_like(y)
    for coefficient in reversed(_ERFC_CHEBYSHEV[1 : terms - 1]):
        b_1, b_2 = twice_y * b_1 - b_2 + coefficient, b_1
    return t, y * b_1 - b_2 + _ERFC_CHEBYSHEV[0]


def log_erfc(xp: Namespace, u: Array) -> Array:
    """log(erfc(u)) for u >= 0, with no underflow: log(t) - u^2 + g(2t - 1)."""
    t, g = _erfc_parts(xp, u)
    return xp.log(t) - u * u + g


def log_standard_normal_cdf(x: Array) -> Array:
    """log Phi(x), the log of the standard normal CDF, finite for all finite x.

    .. math::

        \\log \\Phi(x) = \\begin{cases}
        \\log \\tfrac12 + \\log \\operatorname{erfc}(-x/\\sqrt2) & x < 0 \\\\
        \\operatorname{log1p}(-\\tfrac12 \\operatorname{erfc}(x/\\sqrt2)) & x \\ge 0
        \\end{cases}

    The array API has no erf, so log erfc(u) = log t - u^2 + g(2t - 1),
    t = 1 / (1 + u/2), comes from the Chebyshev series of the smooth g
    (coefficients computed with mpmath; the form of Numerical Recipes,
    section 6.2.2).  It never underflows (x = -30 gives -454.3, not -inf).
    Against mpmath in float64 the relative error is below 1e-15 for x <= 0
    and below 4e-14 up to x = 12 (the right tail's own conditioning, x^2
    times the input's rounding); in float32 below 3e-7, 1.2e-6 and 1.5e-5.

    Parameters
    ----------
    x : array
        Real floating; float16 and bfloat16 are computed in float32.

    Returns
    -------
    array
        log Phi(x), in x's dtype.

    References
    ----------
    Press et al. (2007), Numerical Recipes, 3rd ed., section 6.2.2.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> diffcore.log_standard_normal_cdf(np.array([0.0, -30.0])).round(4).tolist()
    [-0.6931, -454.3212]
    """
    xp = namespace(x=x)
    check_floating(xp, "x", x)
    with np.errstate(all="ignore"):  # -inf at x = -inf, as in torch
        return finish(xp, _log_ndtr(xp, upcast(xp, x)), x.dtype)


def _log_ndtr(xp: Namespace, x: Array) -> Array:
    return _log_ndtr_parts(xp, x)[0]


def _log_ndtr_parts(xp: Namespace, x: Array) -> tuple[Array, Array, Array]:
    """log Phi(x), with the t and g of erfc(|x| / sqrt 2) it came from."""
    u = xp.abs(x) / math.sqrt(2.0)
    t, g = _erfc_parts(xp, u)
    log_tail = xp.log(t) - u * u + g
    left = log_tail - _LOG_2
    right = xp.log1p(-0.5 * xp.exp(log_tail))
    return xp.where(x < 0, left, right), t, g


def _log_bin_mass(
    xp: Namespace,
    lower: Array,
    upper: Array,
    centre: Array,
    half_width: Array,
    log_half_width: Array,
) -> Array:
    """log(Phi(upper) - Phi(lower)), in standard deviations from the mean.

    The bin is reflected to the left half-line, where Phi has full relative
    accuracy.  Wide bins use its edges (shared exactly with the neighbours,
    so the masses add up to one even for a point mass on an edge); narrow
    ones the midpoint series about ``centre``, with the exact half-width
    (and its log, which stays finite where the half-width underflows).
    """
    reflect = centre > 0
    a = xp.where(reflect, -upper, lower)
    b = xp.where(reflect, -lower, upper)
    m, h = -xp.abs(centre), half_width

    # Phi(b) - Phi(a) = Phi(b) (1 - Phi(a) / Phi(b)), both factors in logs;
    # where Phi(b) underflows (b beyond -1e154) so does the mass: -inf.
    log_b, _, g_b = _log_ndtr_parts(xp, b)
    log_a, t_a, g_a = _log_ndtr_parts(xp, a)
    # Deep in the left tail log Phi(a) and log Phi(b) are large and close, and
    # their difference cancels (float32 lost all of it 2000 standard
    # deviations out).  With a, b = m -+ h <= 0 it is formed from its parts:
    # log(t_a / t_b) - (u_a^2 - u_b^2) + g_a - g_b, where u_a - u_b = sqrt2 h
    # and u_a^2 - u_b^2 = 2 h |m| exactly.
    apart = xp.log1p(-(h / math.sqrt(2.0)) * t_a) - 2.0 * h * xp.abs(m) + (g_a - g_b)
    in_tail = (b <= 0) & (h <= 1.0)
    log_ratio = xp.where(in_tail, apart, log_a - log_b)
    log_ratio = xp.minimum(log_ratio, xp.asarray(-1e-30, dtype=a.dtype))
    wide = xp.where(log_b == -math.inf, log_b, log_b + xp.log(-xp.expm1(log_ratio)))

    # Integrating phi's Taylor series about m over [m - h, m + h]:
    # 2h phi(m) sum_j He_2j(m) h^2j / (2j + 1)!, He the probabilists' Hermite
    # polynomials.  Where h < 0.05 and |m| h < 0.05 the terms to j = 4 give it
    # to float64 precision (the next is below 1e-18).  He_2j(m) h^2j is a
    # polynomial in v = (m h)^2 and w = h^2, both small there, so nothing
    # overflows however large m is.  Safe stand-ins where it is not used keep
    # NaN and warnings out of the unused branch.
    mh = xp.abs(m) * h
    use_narrow = (h < _NARROW_HALF_WIDTH) & (mh < _NARROW_HALF_WIDTH)
    stand_in = xp.full_like(h, _NARROW_HALF_WIDTH)
    mh = xp.where(use_narrow, mh, stand_in)
    w = xp.where(use_narrow, h, stand_in)
    log_h = xp.where(use_narrow, log_half_width, xp.log(stand_in))
    m = xp.where(use_narrow, m, xp.zeros_like(m))
    v, w = mh * mh, w * w
    he_2 = v - w
    he_4 = (v - 6.0 * w) * v + 3.0 * w * w
    he_6 = ((v - 15.0 * w) * v + 45.0 * w * w) * v - 15.0 * w * w * w
    he_8 = (((v - 28.0 * w) * v + 210.0 * w * w) * v - 420.0 * w * w * w) * v
    he_8 = he_8 + 105.0 * (w * w) * (w * w)
    series = he_2 / 6.0 + he_4 / 120.0 + he_6 / 5040.0 + he_8 / 362880.0
    narrow = _LOG_2 + log_h - 0.5 * (m * m) - _HALF_LOG_2PI + xp.log1p(series)
    return xp.where(use_narrow, narrow, wide)


def _check_bins(bins: Any) -> int:
    """bins must be an int or NumPy integer (not a bool) of at least 2."""
    msg = f"bins must be an integer of at least 2; got {shown(bins)}"
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)):
        raise TypeError(msg)
    if bins < 2:
        raise ValueError(msg)
    return int(bins)


def _grid_rounding(xp: Namespace, x_0: Array, bins: int) -> float:
    """The largest rounding of a grid level to x_0's dtype, in bins.

    Half an ulp just below 1 is eps / 4, and a bin is 2 / (bins - 1) wide:
    0.25 of a bin for bfloat16 at 256 levels.  A TypeError when the dtype
    cannot tell neighbouring levels apart.
    """
    rounding = float(xp.finfo(x_0.dtype).eps) * (bins - 1) / 8.0
    if rounding > 0.4:
        msg = (
            f"x_0's dtype {x_0.dtype} cannot hold the {bins}-level grid (levels "
            f"round by up to {rounding:.2g} of a bin); cast x_0, mean and "
            "log_variance to float32"
        )
        raise TypeError(msg)
    return rounding


def _check_on_grid(xp: Namespace, x_0: Array, bins: int, rounding: float) -> None:
    """x_0 must hold values of the grid 2k / (bins - 1) - 1 (when readable)."""
    if not _readable_values(x_0):
        return
    values = np.asarray(read_host("x_0", x_0), dtype=np.float64)
    if values.size == 0:
        return
    if not np.all((values >= -1.0) & (values <= 1.0)):
        if np.isnan(values).any():
            got = "NaN"
        else:
            got = f"values from {float(values.min())!r} to {float(values.max())!r}"
        msg = f"x_0 must lie in [-1, 1] for the discretised likelihood; got {got}"
        raise ValueError(msg)
    level = (values + 1.0) * (bins - 1) / 2.0
    off = np.abs(level - np.round(level))
    if off.max() > 0.05 + rounding:
        i = int(np.argmax(off))
        msg = (
            f"x_0 must lie on the {bins}-level grid 2k/{bins - 1} - 1 "
            f"(k = 0, ..., {bins - 1}); got {float(values.flat[i])!r}, "
            f"{off.flat[i]:.3f} of a bin away from the nearest level"
        )
        raise ValueError(msg)


def _check_gaussian(
    xp: Namespace,
    mean_name: str,
    mean: Array,
    log_variance_name: str,
    log_variance: Array,
) -> None:
    """A finite mean and a log variance below +inf (-inf is the point mass),
    where reading them is cheap; NaN and inf would only come out as NaN.
    """
    _check_finite(xp, mean_name, mean)
    total = backend_for(log_variance).total(xp, log_variance)
    # A sum that is finite or -inf holds no NaN and no +inf.
    if total is None or math.isfinite(total) or total == -math.inf:
        return
    if bool(xp.any(xp.isnan(log_variance) | (log_variance == math.inf))):
        msg = (
            f"{log_variance_name} must be a number below +inf (-inf, the point "
            f"mass, is taken); got NaN or +inf in an array of shape "
            f"{tuple(log_variance.shape)}"
        )
        raise ValueError(msg)


def discretized_gaussian_log_likelihood(
    x_0: Array, mean: Array, log_variance: Array, bins: int = 256
) -> Array:
    """Log-probability of 8-bit data in [-1, 1] under a discretised Gaussian.

    .. math::

        \\log p(x_0) = \\log \\int_{\\delta_-(x_0)}^{\\delta_+(x_0)}
        \\mathcal N(x; \\mu, \\sigma^2)\\, dx, \\qquad
        \\delta_\\pm(x) = \\begin{cases} \\pm\\infty & x = \\pm 1 \\\\
        x \\pm \\frac{1}{\\text{bins} - 1} & \\text{otherwise} \\end{cases}

    Each value owns the bin of width 2 / (bins - 1) around it; the edge bins
    at -1 and 1 extend to -inf and +inf, so the masses sum to one.  The log
    mass comes from log-CDFs (:func:`log_standard_normal_cdf`) after
    reflecting the bin into the left tail, never from a difference of CDFs
    rounded to 1, so it is finite for any finite mean and variance unless
    the true value lies below the dtype's range (then -inf); narrow bins
    (half-width below 0.05 standard deviations) sum the Taylor series of
    the density about the bin's centre.  Against mpmath, for means in [-3, 3]
    and log variances in [-16, 12], the error relative to max(1, abs(log p)) is
    below 1e-14 in float64 and 1e-5 in float32, and the masses of all
    levels add up to one to rounding, down to a point mass on a bin edge.

    Parameters
    ----------
    x_0 : array, shape (B, ...)
        Data on the grid 2k / (bins - 1) - 1; checked (ValueError) when
        the values can be read without a device synchronisation.
    mean, log_variance : arrays of x_0's shape, dtype and device
        The decoder Gaussian, for instance p(x_0 | x_1).  A log variance
        below -70 (-inf included) counts as -70: the point-mass limit, log
        mass 0 in the bin that holds the mean and below -1e20 elsewhere.
        A mean that is not finite, or a log variance of NaN or +inf, raises
        ValueError where the values are readable without a device
        synchronisation (NaN comes out elsewhere).
    bins : int
        Number of levels, an int or NumPy integer; 256 for 8-bit data.

    Returns
    -------
    array
        log p(x_0) per element, in nats, with x_0's shape and dtype.

    References
    ----------
    Ho et al. (2020), eq. 13; Nichol and Dhariwal (2021), improved DDPM.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> x = np.array([-1.0, 1.0])
    >>> ll = diffcore.discretized_gaussian_log_likelihood(x, np.zeros(2), np.zeros(2))
    >>> np.exp(ll).round(6).tolist()
    [0.159606, 0.159606]
    """
    bins = _check_bins(bins)
    xp = namespace(x_0=x_0, mean=mean, log_variance=log_variance)
    check_floating(xp, "x_0", x_0)
    check_like(xp, "x_0", x_0=x_0, mean=mean, log_variance=log_variance)
    rounding = _grid_rounding(xp, x_0, bins)
    _check_on_grid(xp, x_0, bins, rounding)
    _check_gaussian(xp, "mean", mean, "log_variance", log_variance)

    with np.errstate(all="ignore"):  # inf and NaN as IEEE gives them, as in torch
        return _discretized(xp, x_0, mean, log_variance, bins, rounding)


def _discretized(
    xp: Namespace,
    x_0: Array,
    mean: Array,
    log_variance: Array,
    bins: int,
    rounding: float,
) -> Array:
    x, mu, log_var = (upcast(xp, a) for a in (x_0, mean, log_variance))
    level = xp.round((x + 1.0) * ((bins - 1) / 2.0))
    if rounding > 0.01:
        # A 16-bit x_0 holds each level only to within ``rounding`` of a bin:
        # the level it stands for is the nearest one.
        x = level * (2.0 / (bins - 1)) - 1.0
    # Below the floor every bin is over 1e13 standard deviations wide: the
    # point-mass limit, reached without overflow (log_variance = -inf too).
    log_var = xp.clip(log_var, min=_LOG_VARIANCE_FLOOR)
    inv_std = xp.exp(-0.5 * log_var)
    half_width = inv_std / (bins - 1)
    log_half_width = -0.5 * log_var - math.log(bins - 1)
    centre = (x - mu) * inv_std
    lower, upper = centre - half_width, centre + half_width
    # Bins wider than two standard deviations take level k's edges,
    # (2k -+ 1) / (bins - 1) - 1, by the same float operations as its
    # neighbours': centre -+ half_width would overlap them by a rounding
    # error times 1 / sigma, which for a point mass on an edge counts it
    # twice.  Narrower bins keep centre -+ half_width, whose width is exact.
    shared = half_width > 1.0
    # (2k -+ 1 - (bins - 1)) is an exact integer: one rounding, in the division.
    edge = (2.0 * level - float(bins)) / (bins - 1)
    lower = xp.where(shared, (edge - mu) * inv_std, lower)
    edge = (2.0 * level + float(2 - bins)) / (bins - 1)
    upper = xp.where(shared, (edge - mu) * inv_std, upper)

    # The edge bins reach to -inf (x = -1) and +inf (x = 1).
    at_bottom = level < 0.5
    at_top = level > bins - 1.5
    inner = _log_bin_mass(xp, lower, upper, centre, half_width, log_half_width)
    log_mass = xp.where(
        at_bottom, _log_ndtr(xp, upper), xp.where(at_top, _log_ndtr(xp, -lower), inner)
    )
    return finish(xp, log_mass, x_0.dtype)


def gaussian_log_likelihood(x_0: Array, mean: Array, log_variance: Array) -> Array:
    """Log-density of continuous data under a diagonal Gaussian, elementwise.

    .. math::

        \\log \\mathcal N(x; \\mu, \\sigma^2)
        = -\\tfrac12 \\log(2\\pi\\sigma^2) - \\frac{(x - \\mu)^2}{2\\sigma^2}

    The decoder for continuous (not quantised) data.

    Parameters
    ----------
    x_0, mean, log_variance : arrays of one shape, dtype and device

    Returns
    -------
    array
        log N(x_0; mean, exp(log_variance)) per element, in nats.
    """
    xp = namespace(x_0=x_0, mean=mean, log_variance=log_variance)
    check_floating(xp, "x_0", x_0)
    check_like(xp, "x_0", x_0=x_0, mean=mean, log_variance=log_variance)
    x, mu, log_var = (upcast(xp, a) for a in (x_0, mean, log_variance))

    with np.errstate(all="ignore"):
        log_density = (
            -_HALF_LOG_2PI - 0.5 * log_var - 0.5 * (x - mu) ** 2 * xp.exp(-log_var)
        )
        return finish(xp, log_density, x_0.dtype)


def mean_over_dims(xp: Namespace, values: Array) -> Array:
    """Per-sample mean over every axis but the first; (B,) stays (B,)."""
    if values.ndim <= 1:
        return values
    return xp.mean(values, axis=tuple(range(1, values.ndim)))


def check_values_per_sample(x_0: Array) -> None:
    """x_0 needs a value per sample to average over: no axis after the first is 0."""
    if any(size == 0 for size in x_0.shape[1:]):
        msg = (
            "x_0 must have at least one value per sample to average over; "
            f"got shape {tuple(x_0.shape)}"
        )
        raise ValueError(msg)


def prior_bpd(schedule: Schedule, x_0: Array) -> Array:
    """The prior term L_T = KL(q(x_T | x_0) || N(0, I)) in bits per dimension.

    .. math::

        L_T = \\frac{1}{D \\log 2} \\sum_i \\tfrac12\\left(
        \\bar\\alpha_T x_{0,i}^2 + (1 - \\bar\\alpha_T)
        - \\log(1 - \\bar\\alpha_T) - 1\\right)

    Parameters
    ----------
    schedule : Schedule
    x_0 : array, shape (B, ...)
        A 0-d x_0 is one sample of one value and gives a 0-d result (the
        bounds, which draw a timestep per sample, need the batch axis).

    Returns
    -------
    array, shape (B,)
        L_T per sample, averaged over the D data dimensions, in bits.

    References
    ----------
    Ho et al. (2020), eq. 5 and section 4.3 (L_T is about 1e-5 bits/dim).

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x_0 = np.full((1, 3), 3**-0.5)  # E[x_0^2] = 1/3, as for uniform data
    >>> float(diffcore.prior_bpd(s, x_0)[0])  # doctest: +ELLIPSIS
    9.70...e-06
    """
    schedule = as_schedule(schedule)
    mean, _, log_variance = q_mean_variance(schedule, x_0, len(schedule) - 1)
    check_values_per_sample(x_0)
    xp = namespace(x_0=x_0)
    zeros = xp.zeros_like(mean)
    kl = normal_kl(mean, log_variance, zeros, zeros)
    bpd = mean_over_dims(xp, upcast(xp, kl)) / _LOG_2
    return finish(xp, bpd, bpd.dtype)


def _check_decoder(decoder: str) -> None:
    check_choice("decoder", decoder, ("discretized", "gaussian"))


def vb_term_bpd(
    schedule: Schedule,
    x_0: Array,
    x_t: Array,
    t: Any,
    model_mean: Array,
    model_log_variance: Array,
    decoder: str = "discretized",
) -> Array:
    """One term of the bound at step t, in bits per dimension.

    .. math::

        L_{t-1} = \\mathrm{KL}(q(x_{t-1} \\mid x_t, x_0) \\,\\|\\,
        p_\\theta(x_{t-1} \\mid x_t)) \\quad (t \\ge 1), \\qquad
        L_0 = -\\log p_\\theta(x_0 \\mid x_1)

    With 0-based timesteps, index 0 holds the decoder term L_0 and index
    t > 0 the KL term of step t; both are averaged over the data
    dimensions and divided by log 2.

    Parameters
    ----------
    schedule : Schedule
    x_0, x_t : arrays of one shape (B, ...), dtype and device
        Clean data and a draw of q(x_t | x_0) at the same t.
    t : int or integer array of shape () or (B,)
    model_mean, model_log_variance : arrays of x_t's shape
        The reverse Gaussian p(x_{t-1} | x_t) (at t = 0, the decoder).
    decoder : {"discretized", "gaussian"}
        The decoder term at t = 0: the discretised Gaussian of 8-bit data
        (:func:`discretized_gaussian_log_likelihood`) or a continuous
        Gaussian density.

    Returns
    -------
    array, shape (B,)
        The term per sample, in bits/dim, in the compute dtype.

    References
    ----------
    Ho et al. (2020), eq. 5; Nichol and Dhariwal (2021), eq. 4-6.
    """
    _check_decoder(decoder)
    schedule, xp, steps = _setup(
        schedule,
        t,
        "x_t",
        x_t,
        x_0=x_0,
        model_mean=model_mean,
        model_log_variance=model_log_variance,
    )
    check_values_per_sample(x_0)
    _check_gaussian(
        xp, "model_mean", model_mean, "model_log_variance", model_log_variance
    )
    true_mean, _, true_log_variance = q_posterior_mean_variance(schedule, x_0, x_t, t)
    kl = mean_over_dims(
        xp,
        upcast(
            xp, normal_kl(true_mean, true_log_variance, model_mean, model_log_variance)
        ),
    )

    if steps.host is not None and not np.any(steps.host == 0):
        return kl / _LOG_2

    if decoder == "discretized":
        log_p = discretized_gaussian_log_likelihood(x_0, model_mean, model_log_variance)
    else:
        log_p = gaussian_log_likelihood(x_0, model_mean, model_log_variance)
    nll = -mean_over_dims(xp, upcast(xp, log_p))
    if isinstance(steps.index, int):
        return nll / _LOG_2
    return xp.where(steps.index == 0, nll, kl) / _LOG_2


class VariationalBound(NamedTuple):
    """The bound of one batch, term by term, in bits per dimension.

    Attributes
    ----------
    total_bpd : array, shape (B,)
        L_T + sum over t of L_{t-1}: the bound on -log p(x_0) per dimension.
    prior_bpd : array, shape (B,)
        L_T.
    terms_bpd : array, shape (B, T)
        Column t holds L_{t-1} (0-based t; column 0 is the decoder term).
    """

    total_bpd: Array
    prior_bpd: Array
    terms_bpd: Array


def reverse_gaussian(output: Any) -> tuple[Array, Array]:
    """(mean, log_variance) from a model's reply: that pair, or an object with
    ``mean`` and ``log_variance`` attributes (what ``p_mean_variance`` returns).
    """
    if hasattr(output, "mean") and hasattr(output, "log_variance"):
        return output.mean, output.log_variance
    if isinstance(output, tuple) and len(output) == 2:
        return output[0], output[1]
    msg = (
        "model must return (mean, log_variance) or an object with mean and "
        f"log_variance attributes; got {type(output).__name__}"
    )
    raise TypeError(msg)


def _check_model(model: Any) -> None:
    if not callable(model):
        msg = f"model must be callable as model(x_t, t); got {shown(model)}"
        raise TypeError(msg)


def _check_batch(x_0: Array) -> None:
    """x_0 needs a batch axis (one timestep per sample) and values to average."""
    if x_0.ndim == 0:
        msg = "x_0 must have a batch axis, shape (B, ...); got a 0-d array"
        raise ValueError(msg)
    check_values_per_sample(x_0)


def _full_steps(xp: Namespace, t: int, x: Array) -> Array:
    import array_api_compat as compat

    # The default integer dtype: int64 requested of JAX without x64 warns.
    return xp.full((x.shape[0],), t, device=compat.device(x))


def variational_bound(
    schedule: Schedule,
    model: ReverseModel,
    x_0: Array,
    *,
    generator: Any = None,
    decoder: str = "discretized",
) -> VariationalBound:
    """The variational bound on -log p(x_0) in bits/dim, summed over every step.

    .. math::

        -\\log p_\\theta(x_0) \\le L_T + \\sum_{t=1}^{T} L_{t-1}
        = \\mathrm{KL}(q(x_T \\mid x_0) \\,\\|\\, \\mathcal N(0, I))
        + \\sum_{t \\ge 2} \\mathrm{E}_q\\,\\mathrm{KL}(q(x_{t-1} \\mid x_t, x_0)
        \\,\\|\\, p_\\theta(x_{t-1} \\mid x_t))
        - \\mathrm{E}_q \\log p_\\theta(x_0 \\mid x_1)

    Each expectation over x_t is estimated with one draw of q(x_t | x_0)
    per sample and step, so the total is an unbiased estimate of the bound
    of each x_0 (exact up to that draw).  The model is called T times.

    Parameters
    ----------
    schedule : Schedule
    model : callable
        ``model(x_t, t)`` with t an integer array of shape (B,) (int64, or
        int32 on JAX without x64) returns the mean and log variance of
        p(x_{t-1} | x_t), each of x_t's shape (at t = 0, the decoder
        p(x_0 | x_1)): a pair, or the result of :func:`p_mean_variance`
        applied to a network's output.  t is the index into ``schedule``,
        which is what :func:`p_mean_variance` takes; on a respaced schedule
        a network trained on the full one must be called with
        ``schedule.timestep_map[t]`` (unlike :func:`sample`, whose model is
        the network itself and gets the mapped timesteps).
    x_0 : array, shape (B, ...)
        Data; on the 8-bit grid in [-1, 1] for the discretised decoder.
    generator : optional
        Source of the noise, as for :func:`standard_normal_like`; an integer
        seed starts one stream used for every step, and a JAX key is split
        once per step.
    decoder : {"discretized", "gaussian"}
        See :func:`vb_term_bpd`.

    Returns
    -------
    VariationalBound
        total_bpd and prior_bpd of shape (B,), terms_bpd of shape (B, T).

    References
    ----------
    Ho et al. (2020), eq. 5; Nichol and Dhariwal (2021), section 3
    (``calc_bpd_loop`` in improved-diffusion).

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(4, beta_start=0.1, beta_end=0.5)
    >>> def model(x_t, t):  # a Gaussian guess centred at 0
    ...     return np.zeros_like(x_t), np.log(s.betas[t])[:, None] + 0 * x_t
    >>> x_0 = np.full((2, 3), -1.0)  # the darkest 8-bit value
    >>> bound = diffcore.variational_bound(s, model, x_0, generator=0)
    >>> bound.terms_bpd.shape
    (2, 4)
    """
    _check_decoder(decoder)
    _check_model(model)
    schedule = as_schedule(schedule)
    xp = namespace(x_0=x_0)
    check_floating(xp, "x_0", x_0)
    _check_batch(x_0)
    draw = noise_stream(x_0, generator)

    terms = []
    for step in range(len(schedule)):
        t = _full_steps(xp, step, x_0)
        x_t = q_sample(schedule, x_0, t, draw(x_0))
        mean, log_variance = reverse_gaussian(model(x_t, t))
        terms.append(vb_term_bpd(schedule, x_0, x_t, t, mean, log_variance, decoder))

    prior = prior_bpd(schedule, x_0)
    terms_bpd = xp.stack(terms, axis=1)
    return VariationalBound(prior + xp.sum(terms_bpd, axis=1), prior, terms_bpd)


def variational_bound_estimate(
    schedule: Schedule,
    model: ReverseModel,
    x_0: Array,
    t: Any,
    noise: Array,
    *,
    decoder: str = "discretized",
) -> Array:
    """Unbiased one-step estimate of the bound in bits/dim: L_T + T L_{t-1}.

    .. math::

        \\mathrm{E}_{t \\sim U\\{0..T-1\\}}\\left[L_T + T\\, L_{t}\\right]
        = L_T + \\sum_{t} L_t

    With t drawn uniformly (for instance by :class:`UniformSampler`) and
    noise standard normal, the mean over draws is the full bound of
    :func:`variational_bound`, at the cost of one model call.

    Parameters
    ----------
    schedule : Schedule
    model : callable
        As in :func:`variational_bound`.
    x_0 : array, shape (B, ...)
    t : integer array of shape (B,) or int
        0-based timesteps, one per sample: indices into ``schedule``, passed
        to the model as they are (see :func:`variational_bound` for
        respaced schedules).
    noise : array of x_0's shape, dtype and device
    decoder : {"discretized", "gaussian"}

    Returns
    -------
    array, shape (B,)
        The estimate per sample, in bits/dim.

    References
    ----------
    Ho et al. (2020), section 3 and algorithm 1 (a uniform t per sample).
    """
    _check_decoder(decoder)
    _check_model(model)
    schedule = _setup(schedule, t, "x_0", x_0, noise=noise)[0]
    x_t = q_sample(schedule, x_0, t, noise)
    mean, log_variance = reverse_gaussian(model(x_t, t))
    term = vb_term_bpd(schedule, x_0, x_t, t, mean, log_variance, decoder)
    return prior_bpd(schedule, x_0) + len(schedule) * term
