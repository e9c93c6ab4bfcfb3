"""The 2015 model: its Gaussian schedule and bound, binomial diffusion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import diffcore
from diffcore import Schedule


def test_sohl_dickstein_betas() -> None:
    b = diffcore.sohl_dickstein_betas(1000)
    assert abs(b[0] - (1e-3 + 1e-6 + 1e-3 * (1 - 1.001e-3 - 1e-5))) < 1e-15
    assert np.all(np.diff(b[1:]) > 0) and abs(b[-1] - 0.5) < 1e-5
    with pytest.raises(ValueError, match="T must be at least 2"):
        diffcore.sohl_dickstein_betas(1)


def test_true_reverse_entropy_lies_between_the_bounds() -> None:
    s = Schedule.from_betas(diffcore.sohl_dickstein_betas(200))
    lower, upper = diffcore.reverse_entropy_bounds(s)
    for std in (0.1, 0.5, 1.0):  # the upper bound needs entropy to grow along q
        # x_0 ~ N(0, std^2): Var[x_{t-1} | x_t] in closed form.
        v_prev = s.alphas_cumprod_prev * std**2 + (1 - s.alphas_cumprod_prev)
        v_t = s.alphas_cumprod * std**2 + (1 - s.alphas_cumprod)
        cond = v_prev - s.alphas * v_prev**2 / v_t
        h = 0.5 * np.log(2 * np.pi * np.e * cond[1:])
        assert np.all(lower[1:] <= h + 1e-12) and np.all(h <= upper[1:] + 1e-12)


def test_2015_bound_is_exact_for_standard_normal_data() -> None:
    # N(0, I) is stationary and the reversed forward kernel is exact, so the
    # bound equals -log N(x_0; 0, I) on average: 0.5 log2(2 pi e) bits/dim.
    T = 40
    s = Schedule.from_betas(diffcore.sohl_dickstein_betas(T))
    x_0 = np.random.default_rng(0).standard_normal((4000, 2))

    def reverse(x_t: Any, t: Any) -> Any:
        i = t[:, None]
        return np.sqrt(s.alphas[i]) * x_t, np.log(s.betas[i]) + 0 * x_t

    bound = diffcore.sohl_dickstein_bound(s, reverse, x_0, generator=1)
    nll = np.mean(0.5 * np.log(2 * np.pi) + x_0**2 / 2, axis=1) / np.log(2)
    gap = bound - nll
    mean, se = gap.mean(), gap.std() / np.sqrt(gap.size)
    print(f"2015 bound - NLL = {mean:.4f} +- {se:.4f} bits/dim")
    assert abs(mean) < 4 * se + 1e-3


def _step_matrix(beta: float) -> Any:
    """Row x_{t-1}, column x_t: the binomial kernel as a 2x2 Markov matrix."""
    keep = 1 - beta / 2
    return np.array([[keep, 1 - keep], [1 - keep, keep]])


# beta = 1 only at the last step (from_betas refuses it earlier).
betas_st = st.lists(
    st.floats(1e-3, 1.0, exclude_max=True), min_size=1, max_size=12
).map(np.array)


@given(betas_st, st.data())
def test_binomial_closed_form_equals_iterated_steps(betas: Any, data: Any) -> None:
    s = Schedule.from_betas(betas)
    t = data.draw(st.integers(0, len(betas) - 1))
    chain = np.eye(2)
    for i in range(t + 1):
        chain = chain @ _step_matrix(betas[i])
    got = diffcore.binomial_q_probability(s, np.array([0.0, 1.0]), t)
    np.testing.assert_allclose(got, chain[:, 1], rtol=1e-10, atol=1e-12)
    step = diffcore.binomial_q_step_probability(s, np.array([0.0, 1.0]), t)
    np.testing.assert_allclose(step, _step_matrix(betas[t])[:, 1], atol=1e-15)


@given(betas_st, st.data())
def test_binomial_posterior_equals_bayes(betas: Any, data: Any) -> None:
    s = Schedule.from_betas(betas)
    t = data.draw(st.integers(0, len(betas) - 1))
    before = np.eye(2)
    for i in range(t):
        before = before @ _step_matrix(betas[i])
    step = _step_matrix(betas[t])
    for x_0 in (0, 1):
        for x_t in (0, 1):
            joint = before[x_0, :] * step[:, x_t]  # over x_{t-1} in {0, 1}
            want = joint[1] / joint.sum()
            got = diffcore.binomial_posterior_probability(
                s, np.array([float(x_0)]), np.array([float(x_t)]), t
            )
            assert abs(float(got[0]) - want) < 1e-10


def test_binomial_betas_erase_a_constant_fraction() -> None:
    s = Schedule.from_betas(diffcore.binomial_betas(10))
    np.testing.assert_allclose(
        s.alphas_cumprod, (10 - np.arange(1, 11)) / 10, atol=1e-15
    )


@pytest.mark.parametrize("bad", [np.array([0.5]), np.array([2.0]), np.array([-1.0])])
def test_binomial_refuses_non_binary_input(bad: Any) -> None:
    s = Schedule.from_betas(diffcore.binomial_betas(4))
    with pytest.raises(ValueError, match=r"x_0 must hold binary values"):
        diffcore.binomial_q_probability(s, bad, 1)
    with pytest.raises(ValueError, match=r"x_t must hold binary values"):
        diffcore.binomial_posterior_probability(s, np.ones(1), bad, 1)
