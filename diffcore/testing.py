"""Hypothesis strategies and reference checks for diffusion code.

Other libraries can run diffcore's properties on their own tables::

    from hypothesis import given
    from diffcore.testing import betas, assert_closed_form_matches_chain

    @given(betas())
    def test_my_library(b):
        sqrt_ab, sqrt_one_minus_ab = my_library.closed_form_coefficients(b)
        assert_closed_form_matches_chain(b, sqrt_ab, sqrt_one_minus_ab)

Importing this module needs Hypothesis (``pip install diffcore[testing]``);
``import diffcore`` does not import it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from numpy.typing import ArrayLike, NDArray

from ._arrays import host_levels, refuse_bool_items, shown
from ._schedule import MAX_STEPS, Schedule

__all__ = [
    "assert_closed_form_matches_chain",
    "assert_posterior_matches_bayes",
    "betas",
    "compose_steps",
    "schedules",
    "timesteps",
]


def betas(
    min_size: int = 1,
    max_size: int = 2000,
    min_value: float = 1e-8,
    max_value: float = 1.0,
) -> st.SearchStrategy[NDArray[np.float64]]:
    """Strategy for beta tables: float64 arrays of values in [min_value, max_value].

    Draws either a smooth ramp (the shape real schedules have) or arbitrary
    values, so that both typical and hostile tables appear.  A beta of 1 (no
    signal left) appears at the last step only, as ``Schedule.from_betas``
    requires.

    Parameters
    ----------
    min_size, max_size : int
        Bounds on T, within [1, 10**7].
    min_value, max_value : float
        Bounds on each beta, within (0, 1].  A beta of 1 before the last
        step is drawn as the largest float64 below 1, even where min_value
        is 1.

    Raises
    ------
    hypothesis.errors.InvalidArgument
        At once, for bounds outside those ranges or in the wrong order.
    """
    _check_int("min_size", min_size)
    _check_int("max_size", max_size)
    _check_order("min_size", min_size, "max_size", max_size)
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if isinstance(value, bool) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            msg = f"{name}={shown(value)}, but it must be a real number in (0, 1]"
            raise InvalidArgument(msg)
        if not 0.0 < value <= 1.0:
            msg = f"{name}={shown(value)}, but it must lie in (0, 1]"
            raise InvalidArgument(msg)
    _check_order("min_value", min_value, "max_value", max_value)
    return _betas(min_size, max_size, float(min_value), float(max_value))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any) -> None:
    if not (_is_int(value) and value >= 1):
        msg = f"{name}={shown(value)}, but it must be a positive int"
        raise InvalidArgument(msg)
    if value > MAX_STEPS:
        msg = (
            f"{name}={shown(value)}, but it must be at most {MAX_STEPS}, the "
            "longest schedule diffcore builds"
        )
        raise InvalidArgument(msg)


def _check_order(low_name: str, low: Any, high_name: str, high: Any) -> None:
    if low > high:
        msg = f"{low_name}={shown(low)} exceeds {high_name}={shown(high)}; swap them"
        raise InvalidArgument(msg)


@st.composite
def _betas(
    draw: st.DrawFn, min_size: int, max_size: int, min_value: float, max_value: float
) -> NDArray[np.float64]:
    size = draw(st.integers(min_size, max_size))
    values = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)
    if draw(st.booleans()):
        start, end = sorted((draw(values), draw(values)))
        table = np.linspace(start, end, size)
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        log_low, log_high = np.log(min_value), np.log(max_value)
        table = np.exp(rng.uniform(log_low, log_high, size))
    # exp(log) and linspace round: keep every draw inside the bounds.
    table = np.clip(table, min_value, max_value)
    below_one = np.nextafter(1.0, 0.0)
    table[:-1] = np.minimum(table[:-1], below_one)
    return table


def schedules(max_T: int = 2000) -> st.SearchStrategy[Schedule]:
    """Strategy for :class:`diffcore.Schedule`: named constructors and raw betas.

    ``max_T``, an int in [1, 10**7], bounds the number of steps.
    """
    _check_int("max_T", max_T)
    return _schedules(int(max_T))


@st.composite
def _schedules(draw: st.DrawFn, max_T: int) -> Schedule:
    T = draw(st.integers(1, max_T))
    kind = draw(st.sampled_from(["linear", "scaled_linear", "cosine", "betas"]))
    if kind == "linear":
        return Schedule.linear(T)
    if kind == "scaled_linear":
        return Schedule.scaled_linear(T)
    if kind == "cosine":
        return Schedule.cosine(T, s=draw(st.floats(0.0, 0.1)))
    return Schedule.from_betas(draw(betas(min_size=T, max_size=T, max_value=0.5)))


def timesteps(schedule: Schedule, batch: int | None = None) -> st.SearchStrategy[Any]:
    """Strategy for valid timesteps of ``schedule``: an int, or int64 (batch,)."""
    if not isinstance(schedule, Schedule):
        msg = f"schedule={shown(schedule)}, but it must be a Schedule"
        raise InvalidArgument(msg)
    if batch is not None and not (_is_int(batch) and batch >= 0):
        msg = f"batch={shown(batch)}, but it must be None or an int of at least 0"
        raise InvalidArgument(msg)
    T = len(schedule)
    if batch is None:
        return st.integers(0, T - 1)
    size = int(batch)  # Hypothesis takes only Python ints
    return st.lists(st.integers(0, T - 1), min_size=size, max_size=size).map(
        lambda v: np.asarray(v, dtype=np.int64)
    )


def compose_steps(betas: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean coefficient and variance of x_t given x_0 by composing one-step kernels.

    Iterates m_t = sqrt(1 - beta_t) m_{t-1} and v_t = (1 - beta_t) v_{t-1} +
    beta_t from m = 1, v = 0: the definition of the chain, independent of any
    closed form.  ``betas`` must be a 1-d array of values in (0, 1] (ValueError
    naming the first that is not).
    """
    b = _check_betas(betas)
    mean = np.empty_like(b)
    variance = np.empty_like(b)
    m, v = 1.0, 0.0
    for i, beta in enumerate(b.tolist()):
        alpha = 1.0 - beta
        m, v = np.sqrt(alpha) * m, alpha * v + beta
        mean[i], variance[i] = m, v
    return mean, variance


def assert_closed_form_matches_chain(
    betas: ArrayLike,
    sqrt_alphas_cumprod: ArrayLike,
    sqrt_one_minus_alphas_cumprod: ArrayLike,
    rtol: float = 1e-12,
) -> None:
    """Assert that closed-form coefficients equal the iterated Markov chain.

    The closed form x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    must have the mean coefficient and the standard deviation (the root of
    the variance) of t + 1 composed one-step kernels
    (:func:`compose_steps`); both are compared to relative tolerance
    ``rtol`` (values below 1e-290, where float64 turns subnormal, are compared
    absolutely).

    Raises
    ------
    AssertionError
        Naming the first timestep that disagrees.
    """
    _check_rtol(rtol)
    b, a, std = _tables(
        betas,
        sqrt_alphas_cumprod=sqrt_alphas_cumprod,
        sqrt_one_minus_alphas_cumprod=sqrt_one_minus_alphas_cumprod,
    )
    mean, variance = compose_steps(b)
    _assert_close("sqrt_alphas_cumprod", a, mean, rtol)
    # The root itself, not its square (which would pass a negated table).
    _assert_close("sqrt_one_minus_alphas_cumprod", std, np.sqrt(variance), rtol)


def assert_posterior_matches_bayes(
    betas: ArrayLike,
    posterior_variance: ArrayLike,
    posterior_mean_coef_x0: ArrayLike,
    posterior_mean_coef_xt: ArrayLike,
    rtol: float = 1e-12,
) -> None:
    """Assert that posterior tables equal Bayes' rule for t >= 1.

    q(x_{t-1} | x_t, x_0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0);
    its precision is alpha_t / beta_t + 1 / v_{t-1} and its mean is
    (sqrt(alpha_t) x_t / beta_t + m_{t-1} x_0 / v_{t-1}) / precision, with m, v
    from :func:`compose_steps`.  At t = 0 the posterior must be the point mass
    at x_0: variance 0, weights (1, 0).
    """
    _check_rtol(rtol)
    b, posterior_variance, posterior_mean_coef_x0, posterior_mean_coef_xt = _tables(
        betas,
        posterior_variance=posterior_variance,
        posterior_mean_coef_x0=posterior_mean_coef_x0,
        posterior_mean_coef_xt=posterior_mean_coef_xt,
    )
    mean, var = compose_steps(b)
    alpha = 1.0 - b[1:]
    precision = alpha / b[1:] + 1.0 / var[:-1]
    expected_var = np.concatenate([[0.0], 1.0 / precision])
    expected_x0 = np.concatenate([[1.0], mean[:-1] / var[:-1] / precision])
    expected_xt = np.concatenate([[0.0], np.sqrt(alpha) / b[1:] / precision])
    _assert_close("posterior_variance", posterior_variance, expected_var, rtol)
    _assert_close("posterior_mean_coef_x0", posterior_mean_coef_x0, expected_x0, rtol)
    _assert_close("posterior_mean_coef_xt", posterior_mean_coef_xt, expected_xt, rtol)


def _check_rtol(rtol: Any) -> None:
    msg = f"rtol must be a positive finite number; got {shown(rtol)}"
    if isinstance(rtol, bool) or not isinstance(
        rtol, (int, float, np.integer, np.floating)
    ):
        raise TypeError(msg)
    if not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(msg)


def _check_betas(betas: ArrayLike) -> NDArray[np.float64]:
    """betas as a float64 array (T,) of values in (0, 1]."""
    b = _vector("betas", betas)
    if b.ndim != 1 or b.size < 1:
        msg = f"betas must be a non-empty 1-d array (T,); got shape {b.shape}"
        raise ValueError(msg)
    bad = np.flatnonzero(~((b > 0.0) & (b <= 1.0)))
    if bad.size:
        i = int(bad[0])
        msg = f"betas must lie in (0, 1]; got betas[{i}] = {float(b[i])!r}"
        raise ValueError(msg)
    ones = np.flatnonzero(b[:-1] == 1.0)
    if ones.size:
        # as in Schedule.from_betas: alpha_bar reaches 0 at the last step only
        msg = f"betas may be 1 at the last step only; got betas[{int(ones[0])}] = 1.0"
        raise ValueError(msg)
    return b


def _vector(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """Real values of any library as float64, or a TypeError naming them."""
    refuse_bool_items(name, values)
    if str(getattr(values, "dtype", "")).endswith("bool"):
        msg = f"{name} must hold real numbers, not bools; got {shown(values)}"
        raise TypeError(msg)
    return host_levels(name, values)


def _tables(betas: ArrayLike, **tables: ArrayLike) -> list[NDArray[np.float64]]:
    """betas and the tables to check, as float64 arrays of one 1-d shape."""
    b = _check_betas(betas)
    arrays = [b]
    for name, table in tables.items():
        array = _vector(name, table)
        if array.shape != b.shape:
            msg = f"{name} must have the shape of betas, {b.shape}; got {array.shape}"
            raise ValueError(msg)
        arrays.append(array)
    return arrays


def _assert_close(
    name: str, actual: ArrayLike, expected: ArrayLike, rtol: float
) -> None:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        error = np.abs(a - e) / np.maximum(np.abs(e), 1e-290 / rtol)
    error = np.where(a == e, 0.0, error)
    bad = np.flatnonzero(~(error <= rtol))
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{name}[{i}] = {float(a[i])!r} but the chain gives "
            f"{float(e[i])!r} (relative error {error[i]:.3g} > rtol {rtol:g}; "
            f"{bad.size} entries differ)"
        )
        raise AssertionError(msg)
