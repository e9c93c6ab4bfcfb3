"""Hypothesis properties: the closed form equals the chain; posteriors are Bayes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import diffcore
from diffcore import Schedule
from diffcore.testing import (
    assert_closed_form_matches_chain,
    assert_posterior_matches_bayes,
    betas,
    compose_steps,
    schedules,
    timesteps,
)


@given(betas(max_value=0.5))
def test_closed_form_equals_composed_one_step_kernels(b: np.ndarray) -> None:
    s = Schedule.from_betas(b)
    assert_closed_form_matches_chain(
        b, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod, rtol=1e-12
    )


@given(schedules())
def test_named_schedules_equal_their_chains(s: Schedule) -> None:
    assert_closed_form_matches_chain(
        s.betas, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod, rtol=1e-12
    )


@given(betas(max_value=1.0))
def test_closed_form_equals_chain_with_steps_up_to_beta_one(b: np.ndarray) -> None:
    s = Schedule.from_betas(b)
    mean, variance = compose_steps(b)
    np.testing.assert_allclose(s.sqrt_alphas_cumprod, mean, rtol=1e-12, atol=1e-290)
    np.testing.assert_allclose(s.sqrt_one_minus_alphas_cumprod**2, variance, rtol=1e-12)
    assert not np.isnan(s.log_snr).any() and not np.isnan(s.sigmas).any()


@given(st.data(), schedules(max_T=500))
def test_transitions_compose(data: st.DataObject, s: Schedule) -> None:
    if len(s) < 3:
        return
    r, m, t = sorted(
        data.draw(st.lists(timesteps(s), min_size=3, max_size=3, unique=True))
    )
    x = np.array([0.7, -1.3])
    mean_m, var_m, _ = diffcore.q_transition_mean_variance(s, x, r, m)
    mean_t, var_mt, _ = diffcore.q_transition_mean_variance(s, mean_m, m, t)
    direct_mean, direct_var, _ = diffcore.q_transition_mean_variance(s, x, r, t)
    root = np.sqrt(s.alphas_cumprod[t] / s.alphas_cumprod[m])
    np.testing.assert_allclose(mean_t, direct_mean, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(root**2 * var_m + var_mt, direct_var, rtol=1e-12)


@given(schedules())
def test_posterior_tables_equal_bayes_rule(s: Schedule) -> None:
    assert_posterior_matches_bayes(
        s.betas,
        s.posterior_variance,
        s.posterior_mean_coef_x0,
        s.posterior_mean_coef_xt,
        rtol=1e-11,
    )


@given(st.data(), schedules(max_T=500))
def test_general_posterior_is_bayes_over_a_skip(
    data: st.DataObject, s: Schedule
) -> None:
    if len(s) < 2:
        return
    s_, t = sorted(
        data.draw(st.lists(timesteps(s), min_size=2, max_size=2, unique=True))
    )
    x_0, x_t = np.array([0.5]), np.array([-0.25])
    mean, var, log_var = diffcore.q_posterior_transition_mean_variance(
        s, x_0, x_t, s_, t
    )
    # Bayes: q(x_t | x_s) = N(c x_s, v_ts) times q(x_s | x_0) = N(m_s x_0, v_s).
    # (1 - c2 and 1 - ab_s are formed without cancellation: betas may be ~1e-8.)
    log_c2 = math.fsum(np.log1p(-s.betas[s_ + 1 : t + 1]))
    c2, v_ts = np.exp(log_c2), -np.expm1(log_c2)
    v_s = np.exp(s.log_one_minus_alphas_cumprod[s_])
    precision = c2 / v_ts + 1 / v_s
    expected_mean = np.sqrt(c2) * x_t / v_ts + s.sqrt_alphas_cumprod[s_] * x_0 / v_s
    expected_mean = expected_mean / precision
    np.testing.assert_allclose(var, 1 / precision, rtol=1e-9)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_var), var, rtol=1e-12)
    if t == s_ + 1:
        m1, v1, _ = diffcore.q_posterior_mean_variance(s, x_0, x_t, t)
        np.testing.assert_allclose(mean, m1, rtol=1e-12)
        np.testing.assert_allclose(var, v1, rtol=1e-12)


@given(st.data(), schedules())
def test_averaging_the_posterior_over_x_t_gives_the_marginal(
    data: st.DataObject, s: Schedule
) -> None:
    if len(s) < 2:
        return
    t = data.draw(st.integers(1, len(s) - 1))
    # Law of total expectation and variance over x_t ~ q(x_t | x_0), per unit x_0:
    # E[mean] = c0 + ct sqrt(ab_t);  Var = posterior var + ct^2 (1 - ab_t).
    c0, ct = s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t]
    mean = c0 + ct * s.sqrt_alphas_cumprod[t]
    variance = s.posterior_variance[t] + ct**2 * s.sqrt_one_minus_alphas_cumprod[t] ** 2
    assert mean == pytest.approx(np.sqrt(s.alphas_cumprod_prev[t]), rel=1e-11)
    assert variance == pytest.approx(1 - s.alphas_cumprod_prev[t], rel=1e-10)


def test_the_bayes_check_catches_swapped_coefficients() -> None:
    s = Schedule.linear(50)
    with pytest.raises(AssertionError, match="posterior_mean_coef_x0"):
        assert_posterior_matches_bayes(
            s.betas,
            s.posterior_variance,
            s.posterior_mean_coef_xt,
            s.posterior_mean_coef_x0,
        )
    with pytest.raises(
        AssertionError, match=r"sqrt_alphas_cumprod\[0\] = .* 50 entries differ"
    ):
        shifted = np.concatenate([[1.0], s.sqrt_alphas_cumprod[:-1]])
        assert_closed_form_matches_chain(
            s.betas, shifted, s.sqrt_one_minus_alphas_cumprod
        )


def test_the_chain_check_catches_a_negated_root_and_complex_tables() -> None:
    # Comparing the square passed -sqrt(1 - alpha_bar); a complex table was
    # cut to its real part with only a ComplexWarning.
    s = Schedule.linear(50)
    with pytest.raises(AssertionError, match=r"sqrt_one_minus_alphas_cumprod\[0\] = -"):
        assert_closed_form_matches_chain(
            s.betas, s.sqrt_alphas_cumprod, -s.sqrt_one_minus_alphas_cumprod
        )
    with pytest.raises(TypeError, match="sqrt_alphas_cumprod must be real numbers"):
        assert_closed_form_matches_chain(
            s.betas, s.sqrt_alphas_cumprod + 0.5j, s.sqrt_one_minus_alphas_cumprod
        )


@given(betas(min_size=2, max_size=6, min_value=1.0, max_value=1.0))
def test_beta_tables_reach_one_at_the_last_step_only(b: np.ndarray) -> None:
    # Schedule.from_betas refuses a beta of 1 before the last step
    assert (b[:-1] < 1.0).all()
    Schedule.from_betas(b)
    compose_steps(b)


def test_compose_steps_refuses_a_beta_of_one_before_the_last_step() -> None:
    with pytest.raises(ValueError, match=r"betas may be 1 at the last step only"):
        compose_steps([1.0, 0.1])
    np.testing.assert_allclose(compose_steps([0.1, 1.0])[0], [np.sqrt(0.9), 0.0])
