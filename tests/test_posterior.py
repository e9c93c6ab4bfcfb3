"""Reverse posteriors: Bayes' rule by quadrature, every library, t = 0, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from ._helpers import to_numpy

SCHEDULE = Schedule.linear(1000)


def normal_logpdf(x: Any, mean: Any, variance: float) -> np.ndarray:
    return -((x - mean) ** 2) / (2 * variance) - 0.5 * np.log(2 * np.pi * variance)


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_posterior_equals_normalised_product_by_quadrature(t: int) -> None:
    x_0, x_t = 0.8, -0.3
    alpha, beta = SCHEDULE.alphas[t], SCHEDULE.betas[t]
    prev_mean = SCHEDULE.sqrt_alphas_cumprod[t - 1] * x_0
    prev_var = 1 - SCHEDULE.alphas_cumprod[t - 1]
    mean, var, _ = diffcore.q_posterior_mean_variance(
        SCHEDULE, np.array([x_0]), np.array([x_t]), t
    )
    # q(x_{t-1} | x_t, x_0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0).
    sd = float(np.sqrt(var[0]))
    grid = np.linspace(mean[0] - 12 * sd, mean[0] + 12 * sd, 200_001)
    log_density = normal_logpdf(x_t, np.sqrt(alpha) * grid, beta) + normal_logpdf(
        grid, prev_mean, prev_var
    )
    density = np.exp(log_density - log_density.max())
    weights = density / np.trapezoid(density, grid)
    q_mean = np.trapezoid(grid * weights, grid)
    q_var = np.trapezoid((grid - q_mean) ** 2 * weights, grid)
    assert q_mean == pytest.approx(mean[0], rel=1e-8, abs=1e-10)
    assert q_var == pytest.approx(var[0], rel=1e-6)


def test_c12_sampling_at_t0_returns_x_0_exactly() -> None:
    x_0 = np.array([0.3, -0.7])
    x_t = np.array([1.0, 2.0])
    mean, var, log_var = diffcore.q_posterior_mean_variance(SCHEDULE, x_0, x_t, 0)
    np.testing.assert_array_equal(mean, x_0)
    np.testing.assert_array_equal(var, 0.0)
    sample = mean + np.sqrt(var) * np.array([5.0, -5.0])
    np.testing.assert_array_equal(sample, x_0)
    assert np.isfinite(log_var).all()
    assert log_var[0] == pytest.approx(-9.8167251352955939914, rel=1e-14)


def test_posterior_on_every_library(xp: Any) -> None:
    rng = np.random.default_rng(3)
    x_0, x_t = rng.standard_normal((2, 3, 4))
    t = np.array([0, 1, 999])
    mean, var, log_var = diffcore.q_posterior_mean_variance(
        SCHEDULE, xp.asarray(x_0), xp.asarray(x_t), xp.asarray(t)
    )
    c0 = SCHEDULE.posterior_mean_coef_x0[t][:, None]
    ct = SCHEDULE.posterior_mean_coef_xt[t][:, None]
    np.testing.assert_allclose(to_numpy(mean), c0 * x_0 + ct * x_t, rtol=1e-14)
    expected_var = np.broadcast_to(SCHEDULE.posterior_variance[t][:, None], (3, 4))
    np.testing.assert_allclose(to_numpy(var), expected_var, rtol=1e-15)
    log_table = SCHEDULE.posterior_log_variance_clipped[t][:, None]
    np.testing.assert_allclose(to_numpy(log_var), np.broadcast_to(log_table, (3, 4)))
    general = diffcore.q_posterior_transition_mean_variance(
        SCHEDULE,
        xp.asarray(x_0[1:]),
        xp.asarray(x_t[1:]),
        xp.asarray(t[1:] - 1),
        xp.asarray(t[1:]),
    )
    np.testing.assert_allclose(to_numpy(general[0]), to_numpy(mean)[1:], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(general[1]), to_numpy(var)[1:], rtol=1e-12)


def test_general_posterior_on_device_path_matches_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from diffcore import _arrays, _backends

    x_0 = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(2, 3)
    x_t = torch.flip(x_0, (0,))
    s, t = torch.tensor([100, 3]), torch.tensor([700, 999])
    host = diffcore.q_posterior_transition_mean_variance(SCHEDULE, x_0, x_t, s, t)
    # Pretend the tensors live on an accelerator: no timestep is read.
    monkeypatch.setattr(_arrays, "_readable", lambda xp, t: False)
    monkeypatch.setattr(_backends.backend_for(x_0), "host", lambda t: None)
    steps = _arrays.timesteps(_arrays.namespace_of(x_0), t, len(SCHEDULE), x_0)
    assert steps.host is None and steps.valid is not None
    device = diffcore.q_posterior_transition_mean_variance(SCHEDULE, x_0, x_t, s, t)
    for a, b in zip(host, device, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12)


def test_bad_posterior_input() -> None:
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"x_0 must have the shape of x_t"):
        diffcore.q_posterior_mean_variance(SCHEDULE, np.ones((3, 3)), x, 1)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        diffcore.q_posterior_mean_variance(SCHEDULE, x, x, np.array([3, 1000]))
    with pytest.raises(ValueError, match="s must be smaller than t"):
        diffcore.q_posterior_transition_mean_variance(SCHEDULE, x, x, 7, 3)
    with pytest.raises(TypeError, match="s must be an integer timestep"):
        diffcore.q_posterior_transition_mean_variance(SCHEDULE, x, x, 1.5, 3)
