"""Exact reference models: closed forms, Tweedie's formula and every library."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule
from diffcore.reference import EmpiricalDistribution, GaussianMixture, IsotropicGaussian

from ._helpers import to_numpy

LINEAR = Schedule.linear(1000)
MIXTURE = GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], [0.2, 0.05], [0.7, 0.3])


def numpy_log_density(x: np.ndarray, t: int) -> np.ndarray:
    """log q(x_t) of MIXTURE from its definition, one component at a time."""
    a, s2 = LINEAR.sqrt_alphas_cumprod[t], 1.0 - LINEAR.alphas_cumprod[t]
    terms = []
    for mu, std, w in zip(MIXTURE.means, MIXTURE.stds, MIXTURE.weights, strict=True):
        v = a**2 * std**2 + s2
        sq = ((x - a * mu) ** 2).sum(1)
        terms.append(w * np.exp(-sq / (2 * v)) / (2 * np.pi * v))
    return np.log(np.sum(terms, axis=0))


@pytest.mark.parametrize("t", [0, 10, 500, 999])
def test_log_density_score_and_denoiser_agree(xp: Any, t: int) -> None:
    x = np.random.default_rng(t).standard_normal((5, 2))
    xs = xp.asarray(x)
    log_q = to_numpy(MIXTURE.log_prob(LINEAR, xs, t))
    np.testing.assert_allclose(log_q, numpy_log_density(x, t), rtol=1e-10)

    # the score is the gradient of the log density (central differences)
    score = to_numpy(MIXTURE.score(LINEAR, xs, t))
    h = 1e-6
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        numeric = (numpy_log_density(x + step, t) - numpy_log_density(x - step, t)) / (
            2 * h
        )
        np.testing.assert_allclose(score[:, j], numeric, rtol=1e-5, atol=1e-4)

    # Tweedie: E[x_0 | x_t] = (x_t + (1 - alpha_bar) score) / sqrt(alpha_bar)
    a, s2 = LINEAR.sqrt_alphas_cumprod[t], 1.0 - LINEAR.alphas_cumprod[t]
    denoised = to_numpy(MIXTURE.denoise(LINEAR, xs, t))
    np.testing.assert_allclose(denoised, (x + s2 * score) / a, rtol=1e-8, atol=1e-10)
    eps = to_numpy(MIXTURE.eps(LINEAR, xs, t))
    np.testing.assert_allclose(eps, -np.sqrt(s2) * score, rtol=1e-12, atol=1e-14)


def test_isotropic_gaussian_closed_form() -> None:
    g = IsotropicGaussian([1.0, -2.0], 0.5)
    x = np.random.default_rng(0).standard_normal((4, 2))
    t = np.array([0, 100, 500, 999])
    a = LINEAR.sqrt_alphas_cumprod[t][:, None]
    v = a**2 * 0.25 + 1 - LINEAR.alphas_cumprod[t][:, None]
    mu = np.array([1.0, -2.0])
    np.testing.assert_allclose(
        g.denoise(LINEAR, x, t), mu + a * 0.25 / v * (x - a * mu), rtol=1e-12
    )
    np.testing.assert_allclose(g.score(LINEAR, x, t), -(x - a * mu) / v, rtol=1e-12)


def test_empirical_distribution_is_a_softmax_average_of_the_points() -> None:
    points = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    data = EmpiricalDistribution(points)
    x = np.array([[1.9, 0.1], [5.0, 5.0]])
    t = 300
    a, s2 = LINEAR.sqrt_alphas_cumprod[t], 1.0 - LINEAR.alphas_cumprod[t]
    logits = -((x[:, None, :] - a * points[None]) ** 2).sum(-1) / (2 * s2)
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    np.testing.assert_allclose(data.denoise(LINEAR, x, t), weights @ points, rtol=1e-12)
    # at t = 0 a sample next to a point is denoised onto it
    np.testing.assert_allclose(
        data.denoise(LINEAR, np.array([[0.01, 2.99]]), 0), [[0.0, 3.0]], atol=1e-12
    )


def test_far_samples_stay_finite() -> None:
    # a max-shifted logsumexp: no underflow to log(0) far from every component
    far = np.array([[1e3, -1e3]])
    for t in (0, 999):
        assert np.isfinite(MIXTURE.log_prob(LINEAR, far, t)).all()
        assert np.isfinite(MIXTURE.denoise(LINEAR, far, t)).all()


def test_float32_and_per_sample_timesteps(xp: Any) -> None:
    x = np.random.default_rng(3).standard_normal((3, 2))
    t = np.array([0, 400, 999])
    out = MIXTURE.denoise(LINEAR, xp.asarray(x, dtype=xp.float32), xp.asarray(t))
    assert out.dtype == xp.float32
    expected = np.stack(
        [MIXTURE.denoise(LINEAR, x[i : i + 1], int(t[i]))[0] for i in range(3)]
    )
    np.testing.assert_allclose(to_numpy(out), expected, rtol=2e-4, atol=2e-5)


def test_models_predict_each_parameterisation() -> None:
    x = np.random.default_rng(4).standard_normal((3, 2))
    t = np.full(3, 321)
    eps = MIXTURE.model(LINEAR, "epsilon")(x, t)
    x_0 = MIXTURE.model(LINEAR, "sample")(x, t)
    v = MIXTURE.model(LINEAR, "v")(x, t)
    np.testing.assert_allclose(
        diffcore.x_0_from_eps(LINEAR, x, t, eps), x_0, rtol=1e-10
    )
    np.testing.assert_allclose(diffcore.x_0_from_v(LINEAR, x, t, v), x_0, rtol=1e-10)


def test_samples_have_the_mixture_moments() -> None:
    draws = MIXTURE.sample(20000, 0)
    mean = MIXTURE.weights @ MIXTURE.means
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.02)


def test_bad_reference_arguments_raise() -> None:
    with pytest.raises(ValueError, match="means must be a non-empty 2-d array"):
        GaussianMixture([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="stds must be finite and non-negative"):
        GaussianMixture([[1.0]], -1.0)
    with pytest.raises(ValueError, match="weights must be 2 positive"):
        GaussianMixture([[1.0], [2.0]], 1.0, [1.0, -1.0])
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 2\)"):
        MIXTURE.denoise(LINEAR, np.zeros((3, 3)), 5)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        MIXTURE.model(LINEAR, "score")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: IsotropicGaussian([0.0], "1"),
            TypeError,
            "std must be real numbers; got '1'",
        ),
        (
            lambda: IsotropicGaussian([0.0], None),
            TypeError,
            "std must be real numbers; got None",
        ),
        (
            lambda: IsotropicGaussian([1 + 1j], 1.0),
            TypeError,
            "mean must hold real numbers",
        ),
        (
            lambda: IsotropicGaussian([0.0], 1 + 1j),
            TypeError,
            "std must hold real numbers",
        ),
        (
            lambda: GaussianMixture([[0.0], [1.0]], 1.0, ["a", "b"]),
            TypeError,
            "weights must hold real numbers",
        ),
        (
            lambda: GaussianMixture([[0.0], [1.0, 2.0]], 1.0),
            ValueError,
            "means must be a rectangular array of numbers",
        ),
        (
            lambda: EmpiricalDistribution([[True]]),
            TypeError,
            "points must hold real numbers",
        ),
    ],
)
def test_reference_parameters_that_are_not_real_numbers_are_named(
    make: Any, error: type[Exception], match: str
) -> None:
    # "1" was read as 1.0; the others failed inside NumPy or blamed NaN.
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("generator", [1.5, "x", object()])
def test_reference_sample_names_a_bad_generator(generator: Any) -> None:
    with pytest.raises(
        TypeError, match=r"generator must be a numpy\.random\.Generator"
    ):
        IsotropicGaussian([0.0], 1.0).sample(2, generator)
