"""NCSN: geometric levels, denoising score matching, annealed Langevin, VP <-> VE."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

MEANS = np.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]])
STD, WEIGHTS = 0.4, np.array([0.5, 0.3, 0.2])


def mixture_score(x: Any, sigma: float) -> Any:
    """Exact score of the mixture convolved with N(0, sigma^2 I)."""
    var = STD**2 + sigma**2
    diff = x[:, None, :] - MEANS[None]
    logits = np.log(WEIGHTS) - 0.5 * np.sum(diff**2, axis=2) / var
    resp = np.exp(logits - logits.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    return -np.sum(resp[..., None] * diff, axis=1) / var


def mixture_sample(n: int, rng: np.random.Generator) -> Any:
    k = rng.choice(3, size=n, p=WEIGHTS)
    return MEANS[k] + STD * rng.standard_normal((n, 2))


def energy_distance(a: Any, b: Any) -> float:
    def mean_dist(u: Any, v: Any) -> float:
        return float(np.mean(np.linalg.norm(u[:, None] - v[None], axis=2)))

    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def test_geometric_sigmas() -> None:
    sigmas = diffcore.geometric_sigmas(50.0, 0.01, 10)
    ratios = sigmas[1:] / sigmas[:-1]
    assert sigmas[0] == 50.0 and sigmas[-1] == 0.01
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1.0, 1.0, 10), "sigma_min < sigma_max"),
        ((1.0, 0.0, 10), "0 < sigma_min"),
        ((1.0, 0.1, 1), "L must be at least 2"),
    ],
)
def test_geometric_sigmas_bad_input(args: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        diffcore.geometric_sigmas(*args)


def test_dsm_target_and_weighted_loss() -> None:
    rng = np.random.default_rng(0)
    x, z = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    sigma = np.array([0.1, 0.5, 1.0, 5.0])
    x_tilde = diffcore.perturb(x, sigma, z)
    np.testing.assert_allclose(x_tilde, x + sigma[:, None] * z)
    target = diffcore.dsm_target(x, x_tilde, sigma)
    np.testing.assert_allclose(target, -z / sigma[:, None])
    np.testing.assert_allclose(
        diffcore.dsm_loss(target, x, x_tilde, sigma), 0, atol=1e-12
    )
    # sigma^2 weighting: a zero score costs ||z||^2 / 2 at every level.
    zero = diffcore.dsm_loss(np.zeros_like(x), x, x_tilde, sigma)
    np.testing.assert_allclose(zero, 0.5 * np.sum(z**2, axis=1))
    with pytest.raises(ValueError, match="sigma must be positive"):
        diffcore.perturb(x, -1.0, z)


def test_vp_to_ve_and_back() -> None:
    s = Schedule.linear(1000)
    rng = np.random.default_rng(1)
    x_0, eps = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    t = np.array([0, 10, 300, 700, 999])
    sigma = s.sigmas[t][:, None]
    # VP sample -> VE: exactly the NCSN perturbation of x_0 at sigma_t.
    x_ve = diffcore.ve_from_vp(s, diffcore.q_sample(s, x_0, t, eps), t)
    np.testing.assert_allclose(
        x_ve, diffcore.perturb(x_0, s.sigmas[t], eps), rtol=1e-12
    )
    # VE perturbation -> VP: exactly q_sample.
    x_vp = diffcore.vp_from_ve(s, x_0 + sigma * eps, t)
    np.testing.assert_allclose(x_vp, diffcore.q_sample(s, x_0, t, eps), rtol=1e-12)

    # Scores: grad log p_VE(x~) = sqrt(alpha_bar) grad log p_VP(x_t), on the mixture.
    from diffcore.reference import GaussianMixture

    mix = GaussianMixture(MEANS, STD, WEIGHTS)
    x_t = diffcore.q_sample(s, rng.standard_normal((5, 2)), t, eps)
    ve_score = np.stack(
        [
            mixture_score(diffcore.ve_from_vp(s, x_t, t)[i : i + 1], s.sigmas[t[i]])[0]
            for i in range(5)
        ]
    )
    vp_score = mix.score(s, x_t, t)
    np.testing.assert_allclose(
        ve_score, s.sqrt_alphas_cumprod[t][:, None] * vp_score, rtol=1e-9, atol=1e-12
    )
    # Sigmas <-> alpha_bar.
    back = diffcore.alphas_cumprod_from_sigmas(s.sigmas[:-1])
    np.testing.assert_allclose(back, s.alphas_cumprod[:-1], rtol=1e-12)


def test_ve_from_vp_names_only_the_steps_where_sigma_is_infinite() -> None:
    s = Schedule.linear(100).rescale_zero_terminal_snr()
    with pytest.raises(ValueError, match=r"zero terminal SNR\); got t = 99 there$"):
        diffcore.ve_from_vp(s, np.ones((4, 2)), np.array([0, 1, 2, 99]))


def test_ve_from_vp_beyond_float32_is_inf_without_a_warning() -> None:
    s = Schedule.from_alphas_cumprod([0.5, 1e-200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x_ve = diffcore.ve_from_vp(s, np.ones(2, np.float32), 1)
    assert x_ve.dtype == np.float32 and np.all(x_ve == np.inf)


def test_ve_from_vp_where_alpha_bar_underflows_but_sigma_is_finite() -> None:
    # log alpha_bar_T = -800: alpha_bar_T is 0 in float64, 1/sqrt(alpha_bar_T)
    # = e^400 is not.
    s = Schedule.from_log_snr(lambda u: 10.0 - 810.0 * u, 100)
    assert s.alphas_cumprod[-1] == 0.0
    x_ve = diffcore.ve_from_vp(s, np.ones(2), 99)
    np.testing.assert_allclose(x_ve, np.exp(400.0), rtol=1e-12)
    deeper = Schedule.from_log_snr(lambda u: 10.0 - 1610.0 * u, 100)
    with pytest.raises(ValueError, match="underflows float64 there"):
        diffcore.ve_from_vp(deeper, np.ones(2), 99)


def test_annealed_langevin_reproduces_a_gaussian_mixture() -> None:
    rng = np.random.default_rng(2)
    n = 600
    sigmas = diffcore.geometric_sigmas(6.0, 0.02, 12)
    start = rng.uniform(-6, 6, (n, 2))
    out = diffcore.annealed_langevin(
        mixture_score, start, sigmas, 2e-5, 100, generator=3, denoise=True
    )
    # Threshold: the spread of the statistic between two true samples.
    null = [
        energy_distance(mixture_sample(n, rng), mixture_sample(n, rng))
        for _ in range(20)
    ]
    threshold = float(np.quantile(null, 0.95)) * 1.5
    got = energy_distance(out, mixture_sample(n, rng))
    print(f"energy distance {got:.4f}; null 95% {np.quantile(null, 0.95):.4f}")
    assert got < threshold
    # And the test can fail: a single Langevin level at sigma_1 does not mix.
    bad = diffcore.annealed_langevin(
        mixture_score, start, sigmas[:1], 2e-5, 100, generator=3
    )
    assert energy_distance(bad, mixture_sample(n, rng)) > threshold


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"n_steps": 1.5}, TypeError, "n_steps"),
        ({"sigmas": [0.1, 0.5]}, ValueError, "decrease"),
        ({"sigmas": [1.0, -0.5]}, ValueError, "positive"),
    ],
)
def test_annealed_langevin_bad_input(kwargs: Any, error: type, match: str) -> None:
    args = {"sigmas": [1.0, 0.1], "epsilon": 1e-3, "n_steps": 2} | kwargs
    with pytest.raises(error, match=match):
        diffcore.annealed_langevin(mixture_score, np.zeros((2, 2)), **args)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, sigma: diffcore.perturb(x, sigma, x),
        lambda x, sigma: diffcore.dsm_target(x, x, sigma),
        lambda x, sigma: diffcore.dsm_loss(x, x, x, sigma),
    ],
)
@pytest.mark.parametrize(
    ("sigma", "match"),
    [
        ([-1.0, 2.0], r"positive and finite; got sigma\[0\] = -1.0$"),
        (np.array([1.0, np.nan]), r"positive and finite; got sigma\[1\] = nan$"),
        (np.array(0.0), r"positive and finite; got sigma = 0.0$"),
        ([1e-50, 1.0], r"representable in float32.*sigma\[0\] = 1e-50"),
    ],
)
def test_host_levels_are_checked_whatever_library_x_is(
    xp: Any, call: Any, sigma: Any, match: str
) -> None:
    # Lists and NumPy arrays are read on the host even for Dask and JAX x,
    # whose own values the checks cannot read (they were passed unchecked).
    x = xp.ones((2, 3), dtype=xp.float32)
    with pytest.raises(ValueError, match=match):
        call(x, sigma)


def test_ncsn_functions_take_a_traced_jax_sigma() -> None:
    # A tracer has no device: sigma was refused as "on None" under jit/grad/vmap.
    jax = pytest.importorskip("jax", reason="jax is not installed")
    jnp = jax.numpy
    x = jnp.ones((4, 3))
    sigma = jnp.array([1.0, 2.0, 3.0, 4.0])
    loss = jax.jit(lambda s: diffcore.dsm_loss(x, x, x + 0.5, s))(sigma)
    want = 0.5 * 3 * (np.asarray(sigma) + 0.5 / np.asarray(sigma)) ** 2
    np.testing.assert_allclose(np.asarray(loss), want, rtol=1e-6)
    grad = jax.grad(lambda s: diffcore.dsm_loss(x, x, x + 0.5, s).sum())(sigma)
    s_np = np.asarray(sigma)
    want_grad = 3 * (s_np + 0.5 / s_np) * (1 - 0.5 / s_np**2)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-5)
    drawn = jax.vmap(lambda s: diffcore.perturb(x, s, x))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(drawn)[:, 0, 0], [2.0, 3.0])
    target = jax.jit(lambda s: diffcore.dsm_target(x, x + 0.5, s))(sigma)
    np.testing.assert_allclose(np.asarray(target)[:, 0], -0.5 / s_np**2, rtol=1e-6)


def test_geometric_sigmas_refuse_levels_too_close_to_be_distinct() -> None:
    # They returned [1, 1, 1], which annealed_langevin then refused.
    with pytest.raises(ValueError, match="too close for L = 3 distinct float64 levels"):
        diffcore.geometric_sigmas(1.0, 1.0 - 1e-16, 3)
    levels = diffcore.geometric_sigmas(1.0, 1.0 - 1e-15, 3)
    assert np.all(np.diff(levels) < 0)
