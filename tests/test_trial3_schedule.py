"""Schedules: extreme but valid parameters, and bad scalars blamed on the argument."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

from diffcore import Schedule
from diffcore.testing import assert_posterior_matches_bayes


def _posterior_reference(betas: list[float]) -> list[mp.mpf]:
    """beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), digits enough for 1e-323."""
    with mp.workdps(400):
        out, prod = [], mp.mpf(1)
        for b in betas:
            prev, prod = prod, prod * (1 - mp.mpf(b))
            out.append(mp.mpf(b) * (1 - prev) / (1 - prod))
    return out


@pytest.mark.parametrize("beta", [1e-200, 1e-160, 1e-300])
def test_posterior_variance_of_tiny_betas_matches_mpmath(beta: float) -> None:
    s = Schedule.from_betas([beta] * 3)
    reference = _posterior_reference([beta] * 3)

    assert s.posterior_variance[0] == 0.0
    for t in (1, 2):
        exact = reference[t]
        assert abs(s.posterior_variance[t] - exact) / exact <= 1e-13
        log_error = abs(s.posterior_log_variance_clipped[t] - mp.log(exact))
        assert log_error <= 1e-13 * abs(mp.log(exact))
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    assert_posterior_matches_bayes(
        s.betas, s.posterior_variance, s.posterior_mean_coef_x0,
        s.posterior_mean_coef_xt,
    )  # fmt: skip


def test_posterior_log_variance_stays_finite_below_the_smallest_normal() -> None:
    # beta = 5e-324 (the smallest subnormal): the variance rounds to 0 or to
    # one subnormal, but its log is still computed from logs.
    s = Schedule.from_betas([5e-324] * 3)
    exact = [mp.log(v) for v in _posterior_reference([5e-324] * 3)]
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    for t in (1, 2):
        error = abs(s.posterior_log_variance_clipped[t] - exact[t])
        assert error <= 1e-13 * abs(exact[t])
    # Every true variance here lies below the floor.
    floored = s.with_posterior_log_variance("floor", 1e-320)
    np.testing.assert_allclose(
        floored.posterior_log_variance_clipped, math.log(1e-320), rtol=1e-15
    )
