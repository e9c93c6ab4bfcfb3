"""The variational bound, the discretised decoder, losses and timestep samplers."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from typing import Any

import mpmath as mp
import numpy as np
import pytest

import diffcore
from diffcore import Schedule
from diffcore.reference import IsotropicGaussian

from ._helpers import to_numpy
from .test_tutorials import ROOT, python_blocks

LN2 = float(np.log(2.0))
LINEAR_1000 = Schedule.linear(1000)


def test_prior_term_of_ho_linear_schedule_is_about_1e_5_bits() -> None:
    # E[x_0^2] = 1/3 (uniform data on [-1, 1]); Ho et al. (2020), section 4.3.
    x_0 = np.full((1, 3), 3**-0.5)
    value = float(diffcore.prior_bpd(Schedule.linear(1000), x_0)[0])
    print(f"L_T = {value:.4e} bits/dim")
    assert abs(value - 9.70e-6) < 5e-9


@pytest.mark.parametrize(
    "x", [-1e10, -40.0, -30.0, -8.0, -1.0, -0.02, 0.0, 0.3, 2.0, 2.83, 6.0, 9.0, 12.0]
)
def test_log_cdf_matches_mpmath(x: float) -> None:
    mp.mp.dps = 30
    got = float(diffcore.log_standard_normal_cdf(np.array([x]))[0])
    # log1p on the right, where log(ncdf(x)) would keep only 30 digits of 1.
    want = float(mp.log(mp.ncdf(x)) if x <= 0 else mp.log1p(-mp.ncdf(-x)))
    # Relative throughout: the Chebyshev series of log erfc is exact to float64.
    assert abs(got - want) <= 2e-14 * abs(want)
    got32 = diffcore.log_standard_normal_cdf(np.array([x], dtype=np.float32))
    assert got32.dtype == np.float32
    assert np.isfinite(got32[0])


def test_erfc_coefficients_are_those_the_script_computes() -> None:
    import importlib.util

    path = ROOT / "scripts" / "erfc_coefficients.py"
    spec = importlib.util.spec_from_file_location("erfc_coefficients", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    from diffcore._likelihood import _ERFC_CHEBYSHEV

    assert tuple(script.coefficients()) == _ERFC_CHEBYSHEV


def _exact_log_mass(k: int, mean: float, log_var: float) -> float:
    """log of level k's mass: its bin is [(2k - 1) / 255 - 1, (2k + 1) / 255 - 1]."""
    mp.mp.dps = 40
    std = mp.exp(mp.mpf(log_var) / 2)
    lo = -mp.inf if k == 0 else (mp.mpf(2 * k - 1) / 255 - 1 - mean) / std
    hi = mp.inf if k == 255 else (mp.mpf(2 * k + 1) / 255 - 1 - mean) / std
    # Reflect into the left tail, where mpmath's tiny CDFs keep their digits.
    mass = mp.ncdf(-lo) - mp.ncdf(-hi) if lo > 0 else mp.ncdf(hi) - mp.ncdf(lo)
    return float(mp.log(mass))


CASES = [
    (k, mean, log_var)
    for k in (0, 1, 100, 127, 128, 200, 254, 255)
    for mean in (-1.0, -0.3, 0.0, 0.999, 3.0)
    for log_var in (-14.0, -9.0, -4.0, 0.0, 3.0, 6.0, 10.0)
]
_DRAWS = np.random.default_rng(0)
CASES += [
    (int(k), float(mean), float(log_var))
    for k, mean, log_var in zip(
        _DRAWS.integers(0, 256, 500),
        _DRAWS.uniform(-3.0, 3.0, 500),
        _DRAWS.uniform(-16.0, 12.0, 500),
        strict=True,
    )
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_discretized_log_likelihood_matches_mpmath(dtype: Any) -> None:
    x = np.array([2 * k / 255 - 1 for k, _, _ in CASES])
    mean = np.array([m for _, m, _ in CASES])
    log_var = np.array([v for _, _, v in CASES])
    got = diffcore.discretized_gaussian_log_likelihood(
        x.astype(dtype), mean.astype(dtype), log_var.astype(dtype)
    )
    want = np.array([_exact_log_mass(*c) for c in CASES])
    assert got.dtype == dtype and np.all(np.isfinite(got))
    # Absolute error for bins of substantial mass, relative in the far tails.
    tol = 1e-14 if dtype == np.float64 else 2e-5
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    print(f"max error ({np.dtype(dtype).name}): {err.max():.2e}")
    assert err.max() < tol


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-14), (np.float32, 2e-6)])
def test_discretized_log_likelihood_far_from_the_mean_matches_mpmath(
    dtype: Any, tol: float
) -> None:
    # Narrow bins thousands of standard deviations out: log Phi(a) - log
    # Phi(b) cancelled (float32 was off by 67 nats at 2200 deviations).
    rng = np.random.default_rng(3)
    k = rng.integers(1, 255, 300)
    mean = rng.choice([-1.0, 1.0], 300) * 10 ** rng.uniform(0, 6, 300)
    log_var = rng.uniform(-10.0, 20.0, 300)
    x, mu, lv = (np.asarray(v, dtype) for v in (2 * k / 255 - 1, mean, log_var))
    got = diffcore.discretized_gaussian_log_likelihood(x, mu, lv).astype(np.float64)
    want = np.array(
        [
            _exact_log_mass(int(a), float(b), float(c))
            for a, b, c in zip(k, mu, lv, strict=True)
        ]
    )
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    print(f"max error ({np.dtype(dtype).name}): {err.max():.2e}")
    assert err.max() < tol


def test_discretized_log_likelihood_of_far_means_is_never_nan_or_plus_inf() -> None:
    # They gave NaN (both tails' log-CDFs underflowing) or +inf (He_8(m)
    # overflowing while h^8 underflowed).
    d = diffcore.discretized_gaussian_log_likelihood
    x = np.array([1 / 255])
    assert d(x, np.array([1e160]), np.array([0.0]))[0] == -np.inf  # below -1e308
    far = float(d(x, np.array([1e300]), np.array([700.0]))[0])
    assert far == pytest.approx(-0.5 * (1e300 * np.exp(-350.0)) ** 2, rel=1e-12)
    x32 = x.astype(np.float32)
    assert (
        d(x32, np.array([1e20], np.float32), np.array([0.0], np.float32))[0] == -np.inf
    )
    far32 = float(
        d(x32, np.array([1e30], np.float32), np.array([100.0], np.float32))[0]
    )
    assert far32 == pytest.approx(-0.5 * (1e30 * np.exp(-50.0)) ** 2, rel=1e-5)
    # A variance so wide that its half-width underflows: the density is flat.
    flat = float(d(x, np.array([1e300]), np.array([1500.0]))[0])
    assert flat == pytest.approx(np.log(2 / 255) - 750.0 - 0.5 * np.log(2 * np.pi))
    for bins in (3, 256):
        for dtype, mean in ((np.float32, 1e30), (np.float64, 1e300)):
            grid = np.linspace(-1.0, 1.0, bins).astype(dtype)
            for mu in (mean, -mean, 1e5):
                for log_var in (-np.inf, -70.0, 0.0, 50.0, 1e30):
                    got = d(
                        grid,
                        np.full(bins, mu, dtype),
                        np.full(bins, log_var, dtype),
                        bins=bins,
                    )
                    assert not np.any(np.isnan(got) | (got == np.inf)), (mu, log_var)


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-14), (np.float32, 3e-7)])
@pytest.mark.parametrize(
    ("mean", "log_var"),
    # 0.0 is the edge between levels 127 and 128: a point mass there is
    # shared, not counted twice (the sum was 1.017 at log_var -70).
    [
        (0.1, -6.0),
        (-0.9, -2.0),
        (0.0, 2.0),
        (0.0, -70.0),
        (0.0, -60.0),
        (0.0, -40.0),
        (0.0, -10.0),
        (1 / 255, -70.0),
        (0.3, -40.0),
    ],
)
def test_discretized_masses_sum_to_one(
    mean: float, log_var: float, dtype: Any, tol: float
) -> None:
    x = np.linspace(-1.0, 1.0, 256, dtype=dtype)
    ll = diffcore.discretized_gaussian_log_likelihood(
        x, np.full(256, mean, dtype), np.full(256, log_var, dtype)
    )
    assert abs(np.exp(ll.astype(np.float64)).sum() - 1.0) < tol


def test_discretized_log_likelihood_on_every_library(xp: Any) -> None:
    x = xp.asarray(np.array([-1.0, 1 / 255, 1.0]), dtype=xp.float32)
    ll = diffcore.discretized_gaussian_log_likelihood(
        x, xp.zeros_like(x), xp.full_like(x, -3.0)
    )
    expected = diffcore.discretized_gaussian_log_likelihood(
        np.array([-1.0, 1 / 255, 1.0]), np.zeros(3), np.full(3, -3.0)
    )
    np.testing.assert_allclose(to_numpy(ll), expected, rtol=1e-4)


def test_every_readable_library_gets_the_grid_and_finiteness_checks(xp: Any) -> None:
    # Concrete JAX arrays had their mean read for finiteness but x_0 not
    # checked against the grid: one rule (the backend's readable) now.
    if "dask" in xp.__name__:
        pytest.skip("Dask arrays are lazy: their values are not read")
    x = xp.asarray(np.array([-1.0, 1 / 255 + 0.003, 1.0]), dtype=xp.float32)
    with pytest.raises(ValueError, match="grid"):
        diffcore.discretized_gaussian_log_likelihood(
            x, xp.zeros_like(x), xp.zeros_like(x)
        )
    x = xp.asarray(np.array([-1.0, 1 / 255, 1.0]), dtype=xp.float32)
    with pytest.raises(ValueError, match="mean must be finite"):
        diffcore.discretized_gaussian_log_likelihood(
            x, xp.full_like(x, float("nan")), xp.zeros_like(x)
        )


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.array([0.0]), "grid"),
        (np.array([1.5]), r"\[-1, 1\]"),
        (np.array([-1.2]), r"\[-1, 1\]"),
    ],
)
def test_discretized_log_likelihood_refuses_bad_data(x: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        diffcore.discretized_gaussian_log_likelihood(x, x * 0, x * 0)


@pytest.mark.parametrize(
    ("mean", "log_variance", "match"),
    [
        ([np.inf, 0.0], [0.0, 0.0], "mean must be finite"),
        ([0.0, np.nan], [0.0, 0.0], "mean must be finite"),
        ([0.0, 0.0], [np.nan, 0.0], "log_variance must be a number below"),
        ([0.0, 0.0], [0.0, np.inf], "log_variance must be a number below"),
    ],
)
def test_discretized_log_likelihood_refuses_a_gaussian_that_is_not_one(
    mean: Any, log_variance: Any, match: str
) -> None:
    # A mean of +inf gave -inf and NaN side by side.
    x = np.array([-1.0, 1.0 / 255])
    with pytest.raises(ValueError, match=match):
        diffcore.discretized_gaussian_log_likelihood(
            x, np.array(mean), np.array(log_variance)
        )


def test_a_point_mass_decoder_is_taken() -> None:
    x = np.array([-1.0, 1.0 / 255, 1.0])
    ll = diffcore.discretized_gaussian_log_likelihood(
        x, np.full(3, 1.0 / 255), np.full(3, -np.inf)
    )
    assert ll[1] == 0.0 and ll[0] < -1e20 and ll[2] < -1e20


@pytest.mark.parametrize(("decoder", "error"), [(1, TypeError), ("gauss", ValueError)])
def test_a_bad_decoder_is_named(decoder: Any, error: type[Exception]) -> None:
    x = np.zeros((2, 3))
    with pytest.raises(error, match="decoder must be one of 'discretized', 'gaussian'"):
        diffcore.vb_term_bpd(LINEAR_1000, x, x, 1, x, x, decoder=decoder)


def test_the_bounds_name_a_model_that_is_not_callable() -> None:
    s, x_0 = Schedule.linear(3), np.full((1, 2), -1.0)
    match = "model must be callable as model\\(x_t, t\\); got 3"
    with pytest.raises(TypeError, match=match):
        diffcore.variational_bound(s, 3, x_0, generator=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=match):
        diffcore.variational_bound_estimate(s, 3, x_0, 1, x_0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=match):
        diffcore.sohl_dickstein_bound(s, 3, x_0, generator=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_variational_bound_refuses_a_model_that_is_not_finite(bad: float) -> None:
    s = Schedule.linear(3)
    x_0 = np.full((1, 2), -1.0)
    with pytest.raises(ValueError, match="model_mean must be finite"):
        diffcore.variational_bound(s, lambda x, t: (x * bad, x), x_0, generator=0)
    with pytest.raises(ValueError, match="model_log_variance must be a number"):
        diffcore.variational_bound(s, lambda x, t: (x, x * 0 + bad), x_0, generator=0)


def test_discretized_log_likelihood_refuses_bad_bins() -> None:
    x = np.array([1.0])
    with pytest.raises(ValueError, match="bins"):
        diffcore.discretized_gaussian_log_likelihood(x, x, x, bins=1)


def test_normal_kl_values() -> None:
    kl = diffcore.normal_kl(
        np.array([0.0, 1.0]), np.log([1.0, 2.0]), np.array([0.0, 0.0]), np.zeros(2)
    )
    np.testing.assert_allclose(kl, [0.0, 0.5 * (-np.log(2.0) + 2.0 + 1.0 - 1.0)])
    with pytest.raises(TypeError, match="log_variance_2"):
        diffcore.normal_kl(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, int))


def test_decoder_and_bound_options_are_checked() -> None:
    s = Schedule.linear(10)
    with pytest.raises(ValueError, match="decoder"):
        diffcore.variational_bound(
            s, lambda x, t: (x, x), np.zeros((1, 1)), decoder="x"
        )
    with pytest.raises(TypeError, match="model must return"):
        diffcore.variational_bound(s, lambda x, t: x, np.full((1, 1), -1.0))


def _gaussian_model(s: Schedule, g: IsotropicGaussian, std: float) -> Any:
    """Exact denoiser with fixed_small variances; the decoder gets the exact
    conditional variance of x_0 given x_1, so the gap comes from the steps."""

    def model(x_t: Any, t: Any) -> Any:
        out = diffcore.p_mean_variance(
            s, g.denoise(s, x_t, t), x_t, t, prediction_type="sample"
        )
        if int(t[0]) > 0:
            return out
        ab = s.alphas_cumprod[0]
        variance = std**2 * (1 - ab) / (ab * std**2 + 1 - ab)
        return out.mean, np.full_like(x_t, np.log(variance))

    return model


def test_bound_lies_above_the_true_nll_and_approaches_it() -> None:
    std, dim = 0.5, 4
    g = IsotropicGaussian(np.zeros(dim), std)
    x_0 = g.sample(3000, 1)
    nll = np.mean(0.5 * np.log(2 * np.pi * std**2) + x_0**2 / (2 * std**2), axis=1)
    gaps = []
    for T in (10, 100, 1000):
        # log-SNR linear in u from 10 to -10: refining T refines every step.
        s = Schedule.from_log_snr(lambda u: 10.0 - 20.0 * u, T)
        bound = diffcore.variational_bound(
            s, _gaussian_model(s, g, std), x_0, generator=2, decoder="gaussian"
        )
        gap = bound.total_bpd - nll / LN2
        mean, se = float(gap.mean()), float(gap.std() / np.sqrt(gap.size))
        print(f"T = {T}: bound - NLL = {mean:.4f} +- {se:.4f} bits/dim")
        assert mean > 3 * se
        gaps.append((mean, se))
    for (a, sa), (b, sb) in itertools.pairwise(gaps):
        assert a - b > 3 * np.hypot(sa, sb)
    assert gaps[-1][0] < 0.1


def test_the_worked_example_prints_what_the_page_says() -> None:
    page = ROOT / "docs" / "derivations" / "likelihood.md"
    ((line, code),) = python_blocks(page)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    shown = re.search(r"^prints\n\n```text\n(.*?)```", page.read_text(), re.S | re.M)
    assert shown is not None, f"{page}: no ```text block after 'prints'"
    assert printed.getvalue() == shown.group(1)

    # The page's claim for fixed_small at t = 0 too: 34.2 bits/dim.
    s, data, x_0 = namespace["s"], namespace["data"], namespace["x_0"]

    def fixed_small(x_t: Any, t: Any) -> Any:
        denoised = data.denoise(s, x_t, t)
        return diffcore.p_mean_variance(s, denoised, x_t, t, prediction_type="sample")

    narrow = diffcore.variational_bound(
        s, fixed_small, x_0, generator=0, decoder="gaussian"
    )
    assert f"{narrow.total_bpd.mean():.1f}" == "34.2"
    assert "a bound of 34.2 bits/dim" in " ".join(page.read_text().split())


def test_on_a_respaced_schedule_the_model_gets_indices_to_map() -> None:
    full = Schedule.linear(50, beta_start=1e-3, beta_end=0.2)
    short = full.respace([0, 10, 20, 49])
    data = IsotropicGaussian(np.zeros(3), 0.5)
    x_0 = data.sample(8, 0)
    seen: list[int] = []

    def on_short(x_t: Any, t: Any) -> Any:  # indices into the short schedule
        seen.append(int(t[0]))
        x_0_hat = data.denoise(short, x_t, t)
        return diffcore.p_mean_variance(
            short, x_0_hat, x_t, t, prediction_type="sample"
        )

    def on_full(x_t: Any, t: Any) -> Any:  # a full-schedule network, mapped
        x_0_hat = data.denoise(full, x_t, short.timestep_map[t])
        return diffcore.p_mean_variance(
            short, x_0_hat, x_t, t, prediction_type="sample"
        )

    a = diffcore.variational_bound(
        short, on_short, x_0, generator=1, decoder="gaussian"
    )
    b = diffcore.variational_bound(short, on_full, x_0, generator=1, decoder="gaussian")
    assert seen == [0, 1, 2, 3]
    np.testing.assert_allclose(a.terms_bpd, b.terms_bpd, rtol=1e-12)


def test_one_sample_estimate_is_unbiased() -> None:
    std, T, n = 0.5, 20, 20000
    s = Schedule.from_log_snr(lambda u: 6.0 - 12.0 * u, T)
    g = IsotropicGaussian([0.0], std)
    model = _gaussian_model(s, g, std)
    x_0 = np.full((n, 1), 0.3)
    rng = np.random.default_rng(5)
    full = diffcore.variational_bound(s, model, x_0, generator=6, decoder="gaussian")
    t, _ = diffcore.UniformSampler(T).sample(n, rng)
    noise = rng.standard_normal(x_0.shape)
    order = np.argsort(t, kind="stable")  # the model reads t[0] for the decoder
    est = np.empty(n)
    for step in range(T):
        rows = order[t[order] == step]
        if rows.size:
            est[rows] = diffcore.variational_bound_estimate(
                s, model, x_0[rows], t[rows], noise[rows], decoder="gaussian"
            )
    a, sa = est.mean(), est.std() / np.sqrt(n)
    b, sb = full.total_bpd.mean(), full.total_bpd.std() / np.sqrt(n)
    print(f"one-sample mean {a:.4f} +- {sa:.4f}; full sum {b:.4f} +- {sb:.4f}")
    assert abs(a - b) < 4 * np.hypot(sa, sb)


def test_vlb_weights_turn_the_simple_loss_into_the_kl_terms() -> None:
    s = Schedule.linear(1000)
    rng = np.random.default_rng(0)
    x_0, noise = rng.uniform(-1, 1, (6, 5)), rng.standard_normal((6, 5))
    eps_hat = noise + 0.1 * rng.standard_normal((6, 5))
    t = np.array([1, 5, 100, 500, 900, 999])
    x_t = diffcore.q_sample(s, x_0, t, noise)
    out = diffcore.p_mean_variance(s, eps_hat, x_t, t)
    kl_nats = diffcore.vb_term_bpd(s, x_0, x_t, t, out.mean, out.log_variance) * LN2
    loss = diffcore.diffusion_loss(s, eps_hat, x_0, t, noise, weighting="vlb")
    np.testing.assert_allclose(loss, kl_nats, rtol=1e-9)


@pytest.mark.parametrize("prediction_type", ["sample", "v"])
def test_epsilon_weighting_makes_every_target_the_simple_loss(
    prediction_type: str,
) -> None:
    s = Schedule.cosine(100)
    rng = np.random.default_rng(1)
    x_0, noise = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    eps_hat = noise + rng.standard_normal((5, 3))
    t = np.array([0, 10, 50, 90, 99])
    x_t = diffcore.q_sample(s, x_0, t, noise)
    simple = diffcore.diffusion_loss(s, eps_hat, x_0, t, noise)
    if prediction_type == "sample":
        prediction = diffcore.x_0_from_eps(s, x_t, t, eps_hat)
    else:
        prediction = diffcore.velocity(
            s, diffcore.x_0_from_eps(s, x_t, t, eps_hat), t, eps_hat
        )
    loss = diffcore.diffusion_loss(
        s,
        prediction,
        x_0,
        t,
        noise,
        prediction_type=prediction_type,
        weighting="epsilon",
    )
    np.testing.assert_allclose(loss, simple, rtol=1e-8)


def test_min_snr_weights() -> None:
    s = Schedule.linear(1000)
    snr = s.snr
    np.testing.assert_allclose(
        diffcore.loss_weights(s, "min_snr", "sample", gamma=5.0), np.minimum(snr, 5)
    )
    np.testing.assert_allclose(
        diffcore.loss_weights(s, "min_snr", "v", gamma=5.0),
        np.minimum(snr, 5) / (snr + 1),
    )
    bad = [(0.0, ValueError), (10**400, ValueError), (float("nan"), ValueError)]
    bad += [(True, TypeError), ("5", TypeError)]
    for gamma, error in bad:
        with pytest.raises(error, match="gamma"):
            diffcore.loss_weights(s, "min_snr", gamma=gamma)
        with pytest.raises(error, match="gamma"):
            diffcore.diffusion_loss(
                s, np.zeros(2), np.zeros(2), 1, np.zeros(2), gamma=gamma
            )
    with pytest.raises(ValueError, match="weighting"):
        diffcore.loss_weights(s, "snr")


def test_loss_history_sampler_is_unbiased_once_warm() -> None:
    T = 8
    sampler = diffcore.LossHistorySampler(T, history=3)
    np.testing.assert_allclose(sampler.probabilities(), 1 / T)
    losses = np.arange(1.0, T + 1.0)
    for _ in range(3):
        sampler.update(np.arange(T), losses)
    p = sampler.probabilities()
    assert sampler.warm and np.argmax(p) == T - 1 and abs(p.sum() - 1) < 1e-12
    # E_p[w_t L_t] = mean over t of L_t, exactly, with w = 1 / (T p_t).
    assert abs(np.sum(p * losses / (T * p)) - losses.mean()) < 1e-12
    t, w = sampler.sample(200000, np.random.default_rng(0))
    assert abs(np.mean(w * losses[t]) - losses.mean()) < 0.03


def test_sampler_bad_input() -> None:
    with pytest.raises(ValueError, match="T must be a positive integer"):
        diffcore.UniformSampler(0)
    with pytest.raises(ValueError, match="uniform_share"):
        diffcore.LossHistorySampler(10, uniform_share=0.0)
    with pytest.raises(ValueError, match="t must lie"):
        diffcore.LossHistorySampler(10).update([10], [1.0])


def test_diffusion_loss_builds_each_weight_table_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from diffcore import _losses

    built: list[tuple[Any, ...]] = []
    weights = _losses._weights

    def counted(*args: Any) -> Any:
        built.append(args[1:])
        return weights(*args)

    monkeypatch.setattr(_losses, "_weights", counted)
    s = Schedule.linear(100)
    rng = np.random.default_rng(2)
    x_0, noise, prediction = rng.standard_normal((3, 3, 4))
    t = np.array([0, 50, 99])
    options = [("min_snr", 5.0), ("min_snr", 2.0), ("vlb", 5.0)]
    for _ in range(3):
        for weighting, gamma in options:
            loss = diffcore.diffusion_loss(
                s, prediction, x_0, t, noise, weighting=weighting, gamma=gamma
            )
            table = diffcore.loss_weights(s, weighting, gamma=gamma)
            squared = ((prediction - noise) ** 2).mean(axis=1)
            np.testing.assert_allclose(loss, table[t] * squared, rtol=1e-15)
    # one table per (weighting, gamma), from the loss; loss_weights builds its own
    assert len(built) == len(options) + 3 * len(options)
    assert len({args for args in built}) == len(options)


def test_bfloat16_data_on_the_grid_has_its_level_likelihood() -> None:
    """bfloat16 rounds levels by up to 0.25 of a bin; each stands for its level."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    grid = torch.linspace(-1, 1, 256, dtype=torch.float64)[None]
    mean = torch.full_like(grid, 0.1)
    log_variance = torch.full_like(grid, -3.0)
    want = diffcore.discretized_gaussian_log_likelihood(grid, mean, log_variance)
    got = diffcore.discretized_gaussian_log_likelihood(
        *(a.bfloat16() for a in (grid, mean, log_variance))
    )
    assert got.dtype == torch.bfloat16
    # mean and log variance round to bfloat16 too: compare with their rounding
    rounded = diffcore.discretized_gaussian_log_likelihood(
        grid, mean.bfloat16().double(), log_variance.bfloat16().double()
    )
    torch.testing.assert_close(got.double(), rounded, rtol=2**-7, atol=1e-3)
    assert (want - rounded).abs().max() < 0.05


def test_a_dtype_too_coarse_for_the_grid_is_named() -> None:
    x = np.zeros(3, np.float16)
    with pytest.raises(TypeError, match="dtype float16 cannot hold the 4096-level"):
        diffcore.discretized_gaussian_log_likelihood(x, x, x, bins=4096)
