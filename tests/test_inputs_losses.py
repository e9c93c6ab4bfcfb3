"""Bad input and edge cases of the losses, the bound and the reference models.

Each case gets a clear error naming the argument, or a finite answer checked
against a high-precision reference.
"""

from __future__ import annotations

from typing import Any

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

import diffcore
from diffcore import Schedule, testing
from diffcore.reference import EmpiricalDistribution, GaussianMixture, IsotropicGaussian

# LossHistorySampler and UniformSampler


@pytest.mark.parametrize(
    ("t", "losses", "error", "match"),
    [
        ([True], [5.0], TypeError, "t must hold integers; got bool"),
        ([1.5], [5.0], TypeError, "t must hold integers; got float64"),
        ([1], ["a"], TypeError, "losses must hold real numbers; got <U1"),
        ([1], [np.nan], ValueError, "losses must be finite; got nan at t = 1"),
        ([0, 2], [1.0, np.inf], ValueError, "losses must be finite; got inf at t = 2"),
        ([-1], [1.0], ValueError, r"t must lie in \[0, 3\); got -1"),
        (
            [1, 2],
            [[1.0, 2.0], [3.0, 4.0]],
            ValueError,
            r"losses must have shape \(B,\)",
        ),
        (
            [[1, 2]],
            [1.0, 2.0],
            ValueError,
            r"t must have shape \(B,\).*got shape \(1, 2\)",
        ),
    ],
)
def test_loss_history_update_refuses_bad_input(
    t: Any, losses: Any, error: type[Exception], match: str
) -> None:
    sampler = diffcore.LossHistorySampler(3, history=1)
    with pytest.raises(error, match=match):
        sampler.update(t, losses)
    # nothing was recorded
    assert not sampler.warm and not sampler._counts.any()


def test_loss_history_reads_torch_losses_with_grad_and_bf16() -> None:
    torch = pytest.importorskip("torch")
    sampler = diffcore.LossHistorySampler(3, history=1)
    with_grad = torch.tensor([2.0, 4.0], requires_grad=True)
    sampler.update(torch.tensor([0, 1]), with_grad)
    sampler.update(torch.tensor([2]), torch.tensor([2.0], dtype=torch.bfloat16))
    assert sampler.warm
    assert sampler._losses[:, 0].tolist() == [2.0, 4.0, 2.0]
    with pytest.raises(TypeError, match="t must hold integers"):
        sampler.update(torch.tensor([1.0]), torch.tensor([1.0]))


def test_loss_history_probabilities_of_huge_losses_are_finite() -> None:
    sampler = diffcore.LossHistorySampler(3, history=2)
    for _ in range(2):
        sampler.update([0, 1, 2], [1e200, 1e200, 2e200])
    p = sampler.probabilities()
    u = sampler.uniform_share
    np.testing.assert_allclose(p, (1 - u) * np.array([1, 1, 2]) / 4 + u / 3)


@pytest.mark.parametrize("rng", [None, 0, np.int64(7)])
def test_sampler_takes_a_seed_or_none(rng: Any) -> None:
    t, w = diffcore.UniformSampler(10).sample(3, rng)
    assert t.shape == (3,) and t.dtype == np.int64 and w.tolist() == [1.0] * 3
    if rng is not None:
        again, _ = diffcore.UniformSampler(10).sample(3, rng)
        assert again.tolist() == t.tolist()


@pytest.mark.parametrize(
    ("rng", "error", "match"),
    [
        (True, TypeError, "rng must be a seed, a generator or None; got the bool"),
        ("0", TypeError, "rng must be .* got str"),
        (-1, ValueError, r"rng as an int seed must lie in \[0, 2\*\*63\); got -1"),
    ],
)
def test_sampler_refuses_a_bad_rng(
    rng: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        diffcore.UniformSampler(10).sample(3, rng)


# Loss weights and the diffusion loss


def _vlb_reference(schedule: Schedule, variance_type: str, t: int) -> list[Any]:
    """Eps, x_0 and v weights of the bound at step t, in 40-digit arithmetic."""
    mp.mp.dps = 40
    betas = [mp.mpf(float(b)) for b in schedule.betas]
    ab = mp.fprod(1 - b for b in betas[: t + 1])
    ab_prev = mp.fprod(1 - b for b in betas[:t])
    if variance_type == "fixed_large":
        variance = betas[t]
    else:
        variance = mp.exp(mp.mpf(float(schedule.posterior_log_variance_clipped[t])))
    # beta^2 / (2 sigma^2 alpha (1 - ab)) times 1, snr and ab; alpha_bar_t / alpha_t
    # is alpha_bar_{t-1}, which keeps the last step of a zero-SNR schedule finite.
    scale = betas[t] ** 2 / (2 * variance * (1 - ab))
    alpha = 1 - betas[t]
    eps = scale / alpha if alpha > 0 else mp.inf
    return [eps, scale * ab_prev / (1 - ab), scale * ab_prev]


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_vlb_weights_of_a_zero_terminal_snr_schedule(variance_type: str) -> None:
    s = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
    assert s.alphas_cumprod[-1] == 0.0
    for t in (0, 1, 500, 998, 999):
        want = _vlb_reference(s, variance_type, t)
        for prediction_type, expected in zip(
            ["epsilon", "sample", "v"], want, strict=True
        ):
            got = diffcore.loss_weights(
                s, "vlb", prediction_type, variance_type=variance_type
            )
            if expected == mp.inf:
                assert got[t] == np.inf
            else:
                assert got[t] == pytest.approx(float(expected), rel=1e-10, abs=0)
    # the last step, analytically: alpha_bar_{T-2} / (2 sigma^2)
    ab = s.alphas_cumprod[-2]
    sigma2 = 1.0 - ab if variance_type == "fixed_small" else 1.0
    for prediction_type in ("sample", "v"):
        got = diffcore.loss_weights(
            s, "vlb", prediction_type, variance_type=variance_type
        )
        assert got[-1] == pytest.approx(ab / (2.0 * sigma2), rel=1e-12, abs=0)


def test_vlb_loss_at_the_last_zero_snr_step_is_finite() -> None:
    s = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
    x_0, noise = np.zeros((2, 3)), np.ones((2, 3))
    loss = diffcore.diffusion_loss(
        s, np.zeros((2, 3)), x_0, 999, noise, prediction_type="v", weighting="vlb"
    )
    # v = sqrt(ab) eps - sqrt(1 - ab) x_0 = 0 at the last step, so the error is 0
    weight = diffcore.loss_weights(s, "vlb", "v")[-1]
    assert np.isfinite(weight) and loss.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("gamma", [np.float32(5.0), np.float64(5.0), np.int64(5)])
def test_min_snr_gamma_takes_numpy_scalars(gamma: Any) -> None:
    s = Schedule.linear(100)
    np.testing.assert_array_equal(
        diffcore.loss_weights(s, "min_snr", gamma=gamma),
        diffcore.loss_weights(s, "min_snr", gamma=5.0),
    )


@pytest.mark.parametrize("gamma", [True, np.bool_(True), "5"])
def test_min_snr_gamma_refuses_bools_and_strings(gamma: Any) -> None:
    with pytest.raises(TypeError, match="gamma must be a positive finite number"):
        diffcore.loss_weights(Schedule.linear(10), "min_snr", gamma=gamma)


def test_diffusion_loss_refuses_samples_with_no_dimensions() -> None:
    s = Schedule.linear(10)
    empty = np.ones((2, 0))
    with pytest.raises(ValueError, match=r"x_0 must have at least one value per "):
        diffcore.diffusion_loss(s, empty, empty, 5, empty)


# normal_kl


@pytest.mark.parametrize(
    "d", [1e-9, -1e-9, 1e-4, -1e-3, 0.05, -0.099, 0.1, 0.3, -2.0, 30.0]
)
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-14), (np.float32, 2e-6)])
def test_normal_kl_of_nearly_equal_variances_matches_mpmath(
    d: float, dtype: Any, rtol: float
) -> None:
    mp.mp.dps = 50
    zero = np.zeros(1, dtype)
    log_variance_1 = np.array([d], dtype)
    kl = diffcore.normal_kl(zero, log_variance_1, zero, zero)
    exact = mp.mpf(float(log_variance_1[0]))
    want = 0.5 * (mp.expm1(exact) - exact)
    assert kl.dtype == dtype
    assert float(kl[0]) == pytest.approx(float(want), rel=rtol, abs=0)


def test_normal_kl_adds_the_mean_term() -> None:
    mp.mp.dps = 50
    kl = diffcore.normal_kl(np.array([0.3]), np.array([1e-6]), np.zeros(1), np.ones(1))
    d, lv2 = mp.mpf(1e-6) - 1, mp.mpf(1)
    want = 0.5 * (mp.expm1(d) - d + mp.mpf(0.3) ** 2 * mp.exp(-lv2))
    assert float(kl[0]) == pytest.approx(float(want), rel=1e-14, abs=0)


def test_normal_kl_names_arrays_whose_shapes_do_not_broadcast() -> None:
    msg = (
        r"log_variance_1 has shape \(2,\), which does not broadcast with "
        r"the shape \(2, 3\) of mean_1"
    )
    with pytest.raises(ValueError, match=msg):
        diffcore.normal_kl(np.zeros((2, 3)), np.zeros(2), np.zeros(3), np.zeros(3))
    shape = diffcore.normal_kl(
        np.zeros((2, 3)), np.zeros(3), np.zeros((4, 1, 1)), np.zeros(1)
    ).shape
    assert shape == (4, 2, 3)


# The discretised decoder


def test_discretized_log_likelihood_says_nan() -> None:
    x = np.array([1.0 / 255.0, np.nan])
    with pytest.raises(ValueError, match=r"x_0 must lie in \[-1, 1\].*got NaN"):
        diffcore.discretized_gaussian_log_likelihood(x, np.zeros(2), np.zeros(2))


@pytest.mark.parametrize("bins", [np.int64(256), np.int32(256), np.uint16(256)])
def test_discretized_log_likelihood_takes_numpy_integer_bins(bins: Any) -> None:
    x = np.array([-1.0, 1.0 / 255.0, 1.0])
    want = diffcore.discretized_gaussian_log_likelihood(x, x * 0, x * 0)
    got = diffcore.discretized_gaussian_log_likelihood(x, x * 0, x * 0, bins=bins)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("bins", "error", "seen"),
    [
        (True, TypeError, "True"),
        (np.bool_(True), TypeError, "True"),
        (256.0, TypeError, "256.0"),
        (1, ValueError, "1"),
    ],
)
def test_discretized_log_likelihood_refuses_bool_and_float_bins(
    bins: Any, error: type[Exception], seen: str
) -> None:
    x = np.array([1.0])
    with pytest.raises(
        error, match=f"bins must be an integer of at least 2; got {seen}$"
    ):
        diffcore.discretized_gaussian_log_likelihood(x, x, x, bins=bins)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_discretized_log_likelihood_of_zero_variance_is_the_point_mass(
    dtype: Any,
) -> None:
    x = np.array([1 / 255, 1 / 255, -1.0, 1.0, 3 / 255], dtype)
    mean = np.array([1 / 255, 1.5 / 255, 0.0, 0.0, 0.0], dtype)
    for log_variance in (-np.inf, -800.0):
        ll = diffcore.discretized_gaussian_log_likelihood(
            x, mean, np.full(5, log_variance, dtype)
        )
        # the mean's own bin holds all the mass; every other bin none
        assert ll[:2].tolist() == [0.0, 0.0]
        assert np.all(ll[2:] < -1e20)


# The reference models


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: GaussianMixture([[0.0], [1.0]], [0.1, 0.2, 0.3]),
            r"stds must be one number or 2 numbers, one per component; got shape \(3",
        ),
        (
            lambda: IsotropicGaussian([0.0], [1.0, 2.0]),  # type: ignore[arg-type]
            r"std must be one number; got shape \(2,\)",
        ),
        (lambda: IsotropicGaussian([0.0], -1.0), "std must be finite and non-negative"),
        (lambda: IsotropicGaussian([], 1.0), r"mean must be .*; got shape \(0,\)"),
        (lambda: EmpiricalDistribution([]), r"points must be .*; got shape \(0,\)"),
        (lambda: EmpiricalDistribution([[np.nan]]), "points must be finite"),
    ],
)
def test_reference_models_name_their_own_arguments(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("scale", [1e308, 5e-324])
def test_mixture_weights_at_the_ends_of_float64(scale: float) -> None:
    s = Schedule.linear(1000)
    mix = GaussianMixture([[0.0], [1.0]], 0.1, [scale, scale])
    assert mix.weights.tolist() == [0.5, 0.5]
    even = GaussianMixture([[0.0], [1.0]], 0.1)
    x_t = np.array([[0.3]])
    np.testing.assert_array_equal(mix.denoise(s, x_t, 5), even.denoise(s, x_t, 5))


def test_half_precision_log_prob_overflows_to_inf_without_a_warning() -> None:
    s = Schedule.cosine(1000)
    mix = GaussianMixture([[-1.0, 0.5], [2.0, 1.0]], [0.1, 0.0])
    x_t = np.full((1, 2), 200, np.float16)
    log_q = mix.log_prob(s, x_t, 0)
    assert log_q.dtype == np.float16 and log_q.tolist() == [-np.inf]
    wide = mix.log_prob(s, x_t.astype(np.float32), 0)
    assert wide[0] < -65504


@pytest.mark.parametrize(
    ("generator", "error", "match"),
    [
        (
            -1,
            ValueError,
            r"generator as an int seed must lie in \[0, 2\*\*63\); got -1",
        ),
        (True, TypeError, "generator must be a seed, a generator or None"),
    ],
)
def test_mixture_sample_names_a_bad_seed(
    generator: Any, error: type[Exception], match: str
) -> None:
    mix = GaussianMixture([[0.0], [1.0]], 0.1)
    with pytest.raises(error, match=match):
        mix.sample(2, generator)
    assert mix.sample(2, np.int64(3)).tolist() == mix.sample(2, 3).tolist()


# diffcore.testing checks its own arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_value": 2.0}, r"max_value=2.0, but it must lie in \(0, 1\]"),
        ({"min_value": 0.0}, r"min_value=0.0, but it must lie in \(0, 1\]"),
        ({"min_value": "a"}, "min_value='a', but it must be a real number"),
        ({"min_value": True}, "min_value=True, but it must be a real number"),
        ({"min_value": 0.5, "max_value": 0.1}, "min_value=0.5 exceeds max_value=0.1"),
        ({"min_size": 0}, "min_size=0, but it must be a positive int"),
        ({"min_size": 5, "max_size": 2}, "min_size=5 exceeds max_size=2"),
        ({"max_size": 10**9}, "max_size=1000000000, but it must be at most 10000000"),
    ],
)
def test_betas_strategy_checks_its_arguments(kwargs: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        testing.betas(**kwargs)


@pytest.mark.parametrize("bound", [0.1, 1e-5, 1e-300])
def test_betas_strategy_keeps_equal_bounds(bound: float) -> None:
    # exp(uniform(log lo, log hi)) rounded one ulp outside [lo, hi].
    @settings(max_examples=40, database=None)
    @given(testing.betas(max_size=20, min_value=bound, max_value=bound))
    def check(b: np.ndarray) -> None:
        assert np.all(b == bound)

    check()


def test_betas_strategy_draws_within_its_bounds() -> None:
    @settings(max_examples=30)
    @given(testing.betas(max_size=20, min_value=0.25, max_value=0.5))
    def check(b: np.ndarray) -> None:
        assert np.all((b >= 0.25) & (b <= 0.5))

    check()


def test_schedules_and_timesteps_strategies_check_their_arguments() -> None:
    with pytest.raises(InvalidArgument, match="max_T=0, but it must be a positive int"):
        testing.schedules(max_T=0)
    with pytest.raises(InvalidArgument, match="max_T=10000001, but it must be at most"):
        testing.schedules(max_T=10**7 + 1)
    with pytest.raises(InvalidArgument, match="schedule=10, but it must be a Schedule"):
        testing.timesteps(10)  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgument, match="batch=-1, but it must be None or an int"
    ):
        testing.timesteps(Schedule.linear(10), batch=-1)
    with pytest.raises(
        InvalidArgument, match=r"batch=2\.0, but it must be None or an int"
    ):
        testing.timesteps(Schedule.linear(10), batch=2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rtol", "error", "match"),
    [
        (0, ValueError, "rtol must be a positive finite number; got 0"),
        (-1, ValueError, "rtol must be a positive finite number; got -1"),
        (np.nan, ValueError, "rtol must be a positive finite number; got nan"),
        ("1e-9", TypeError, "rtol must be a positive finite number; got '1e-9'"),
    ],
)
def test_reference_checks_refuse_a_bad_rtol(
    rtol: Any, error: type[Exception], match: str
) -> None:
    s = Schedule.linear(10)
    with pytest.raises(error, match=match):
        testing.assert_closed_form_matches_chain(
            s.betas, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod, rtol=rtol
        )
    with pytest.raises(error, match=match):
        testing.assert_posterior_matches_bayes(
            s.betas,
            s.posterior_variance,
            s.posterior_mean_coef_x0,
            s.posterior_mean_coef_xt,
            rtol=rtol,
        )


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("x", [1.0], [0.0]), TypeError, "betas must be numbers"),
        (([0.1], "x", [0.0]), TypeError, "sqrt_alphas_cumprod must be numbers"),
        (([0.1], [1.0], np.array([True])), TypeError, "must hold real numbers, not"),
        (([], [], []), ValueError, r"betas must be a non-empty 1-d array"),
    ],
)
def test_reference_checks_name_bad_tables(
    args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        testing.assert_closed_form_matches_chain(*args)


def test_the_testing_module_example_runs_as_written() -> None:
    """The module docstring's example, with diffcore as 'my_library'."""
    from hypothesis import given, settings

    @settings(max_examples=20, deadline=None)
    @given(testing.betas())
    def test_my_library(b: Any) -> None:
        s = Schedule.from_betas(b)
        sqrt_ab, sqrt_one_minus_ab = (
            s.sqrt_alphas_cumprod,
            s.sqrt_one_minus_alphas_cumprod,
        )
        testing.assert_closed_form_matches_chain(b, sqrt_ab, sqrt_one_minus_ab)

    test_my_library()
    assert "assert_closed_form_matches_chain(b, sqrt_ab, sqrt_one_minus_ab)" in (
        testing.__doc__ or ""
    )


def test_reference_checks_name_a_table_of_the_wrong_length() -> None:
    s = Schedule.linear(10)
    msg = r"sqrt_alphas_cumprod must have the shape of betas, \(10,\); got \(5,\)"
    with pytest.raises(ValueError, match=msg):
        testing.assert_closed_form_matches_chain(
            s.betas, s.sqrt_alphas_cumprod[:5], s.sqrt_one_minus_alphas_cumprod
        )
    msg = r"posterior_mean_coef_xt must have the shape of betas, \(10,\); got \(9,\)"
    with pytest.raises(ValueError, match=msg):
        testing.assert_posterior_matches_bayes(
            s.betas,
            s.posterior_variance,
            s.posterior_mean_coef_x0,
            s.posterior_mean_coef_xt[1:],
        )


# Infinite loss weights, empty samples and extreme log variances


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("t", [9, [3, 9]])
def test_vlb_eps_loss_refuses_a_step_of_infinite_weight(library: str, t: Any) -> None:
    xp = np if library == "numpy" else pytest.importorskip("torch")
    s = Schedule.linear(10).rescale_zero_terminal_snr()
    x_0, noise = xp.ones((2, 3)), xp.zeros((2, 3))
    steps = t if isinstance(t, int) else xp.asarray(t)
    match = r"weighting='vlb' with prediction_type='epsilon' .* at t = \[9\]"
    for prediction in (xp.zeros((2, 3)), noise):  # a perfect prediction too
        with pytest.raises(ValueError, match=match):
            diffcore.diffusion_loss(s, prediction, x_0, steps, noise, weighting="vlb")


def _bound_model(x_t: Any, t: Any) -> tuple[Any, Any]:
    return np.zeros_like(x_t), np.zeros_like(x_t)


@pytest.mark.parametrize(
    "bound",
    [
        lambda s, x: diffcore.prior_bpd(s, x),
        lambda s, x: diffcore.vb_term_bpd(s, x, x, 3, x, x),
        lambda s, x: diffcore.vb_term_bpd(s, x, x, np.array([0, 3]), x, x),
        lambda s, x: diffcore.variational_bound(s, _bound_model, x, generator=0),
        lambda s, x: diffcore.sohl_dickstein_bound(s, _bound_model, x, generator=0),
        lambda s, x: diffcore.diffusion_loss(s, x, x, 5, x),
    ],
)
def test_bounds_refuse_samples_with_no_values(bound: Any) -> None:
    match = r"x_0 must have at least one value per sample .*; got shape \(2, 0\)"
    with pytest.raises(ValueError, match=match):
        bound(Schedule.linear(10), np.zeros((2, 0)))


_INF = float("inf")


@pytest.mark.parametrize("library", ["numpy", "array_api_strict", "torch"])
@pytest.mark.parametrize(
    ("mean_2", "log_variance_1", "log_variance_2", "expected"),
    [
        (0.0, 800.0, 0.0, _INF),  # exp(800) overflows float64
        (1.0, 0.0, -800.0, _INF),
        (0.0, _INF, 0.0, _INF),
        (0.0, 0.0, -_INF, _INF),  # equal means, a point-mass target
        (1.0, 0.0, -_INF, _INF),
        (0.0, 0.0, _INF, _INF),
        (0.0, -_INF, 0.0, _INF),
        (0.0, -_INF, -_INF, float("nan")),  # inf - inf: undefined, documented
        (0.0, _INF, _INF, float("nan")),
    ],
)
def test_normal_kl_of_extreme_log_variances_is_inf_without_warnings(
    library: str,
    mean_2: float,
    log_variance_1: float,
    log_variance_2: float,
    expected: float,
) -> None:
    xp = pytest.importorskip(library)
    args = (0.0, log_variance_1, mean_2, log_variance_2)
    kl = diffcore.normal_kl(*(xp.asarray([v], dtype=xp.float64) for v in args))
    np.testing.assert_array_equal(np.asarray([float(kl[0])]), [expected])


def test_normal_kl_overflows_float32_to_inf() -> None:
    zero, big = np.zeros(1, np.float32), np.full(1, 100.0, np.float32)
    kl = diffcore.normal_kl(zero, big, zero, zero)
    assert kl.dtype == np.float32 and kl.tolist() == [_INF]


# Types and values of scalar options


@pytest.mark.parametrize("share", [np.float32(0.5), np.float64(0.5), np.int64(1), 1])
def test_loss_history_takes_numpy_real_uniform_shares(share: Any) -> None:
    sampler = diffcore.LossHistorySampler(10, uniform_share=share)
    assert sampler.uniform_share == float(share)


@pytest.mark.parametrize(
    ("share", "error"),
    [
        (True, TypeError),
        (np.bool_(True), TypeError),
        ("x", TypeError),
        (0, ValueError),
        (np.float32(1.5), ValueError),
        (np.nan, ValueError),
    ],
)
def test_loss_history_refuses_a_bad_uniform_share(
    share: Any, error: type[Exception]
) -> None:
    match = r"uniform_share must be a real number in \(0, 1\]; got "
    with pytest.raises(error, match=match):
        diffcore.LossHistorySampler(10, uniform_share=share)


def test_min_snr_gamma_refuses_a_tensor_with_a_type_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"gamma must be .*; got tensor\(5\.\)"):
        diffcore.loss_weights(Schedule.linear(10), "min_snr", gamma=torch.tensor(5.0))


@pytest.mark.parametrize(
    ("n", "error"),
    [(2.0, TypeError), (True, TypeError), ("2", TypeError), (0, ValueError)],
)
def test_mixture_sample_refuses_a_bad_count(n: Any, error: type[Exception]) -> None:
    mix = GaussianMixture([[-1.0], [1.0]], [1.0, 1.0])
    with pytest.raises(error, match=f"n must be a positive int; got {n!r}"):
        mix.sample(n)


def test_loss_history_reads_lists_of_tensors_with_grad() -> None:
    torch = pytest.importorskip("torch")
    sampler = diffcore.LossHistorySampler(4, history=1)
    losses = [torch.tensor(1.0, requires_grad=True), torch.tensor(2.0)]
    sampler.update([torch.tensor(0), torch.tensor(1)], losses)
    np.testing.assert_array_equal(sampler._losses[:2, 0], [1.0, 2.0])
    with pytest.raises(TypeError, match="t must hold integers; got float32"):
        sampler.update([torch.tensor(1.0)], [torch.tensor(1.0)])


@pytest.mark.parametrize("argument", ["t", "losses"])
def test_loss_history_refuses_meta_tensors(argument: str) -> None:
    torch = pytest.importorskip("torch")
    values = {"t": torch.tensor([0, 1]), "losses": torch.tensor([1.0, 2.0])}
    values[argument] = values[argument].to("meta")
    match = f"{argument} must hold values to read; got a tensor on the meta device"
    with pytest.raises(ValueError, match=match):
        diffcore.LossHistorySampler(4).update(values["t"], values["losses"])


# diffcore.testing


def test_timesteps_strategy_takes_a_numpy_integer_batch() -> None:
    s = Schedule.linear(10)

    @given(testing.timesteps(s, np.int8(2)))
    @settings(max_examples=5)
    def draws(t: Any) -> None:
        assert t.shape == (2,) and t.dtype == np.int64

    draws()


@pytest.mark.parametrize(
    ("betas", "match"),
    [
        ([0.5, 2.0], r"betas\[1\] = 2\.0"),
        ([np.nan], r"betas\[0\] = nan"),
        ([0.1, np.inf], r"betas\[1\] = inf"),
        (np.zeros(10), r"betas\[0\] = 0\.0"),
        ([0.1, -0.1], r"betas\[1\] = -0\.1"),
    ],
)
def test_reference_checks_refuse_betas_outside_0_1(betas: Any, match: str) -> None:
    match = r"betas must lie in \(0, 1\]; got " + match
    s = Schedule.linear(len(betas))
    with pytest.raises(ValueError, match=match):
        testing.compose_steps(betas)
    with pytest.raises(ValueError, match=match):
        testing.assert_closed_form_matches_chain(
            betas, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod
        )
    with pytest.raises(ValueError, match=match):
        testing.assert_posterior_matches_bayes(
            betas,
            s.posterior_variance,
            s.posterior_mean_coef_x0,
            s.posterior_mean_coef_xt,
        )


@pytest.mark.parametrize(
    ("library", "dtype", "big"),
    [
        ("numpy", "float64", 1e200),
        ("numpy", "float32", 1e30),
        ("torch", "float64", 1e200),
    ],
)
def test_mixture_log_prob_of_huge_samples_is_minus_inf(
    library: str, dtype: str, big: float
) -> None:
    xp = pytest.importorskip(library)
    s = Schedule.linear(10)
    mix = GaussianMixture([[-1.0], [1.0]], [1.0, 1.0])
    x_t = xp.asarray([[big], [1.0]], dtype=getattr(xp, dtype))
    log_q = np.asarray(mix.log_prob(s, x_t, 0).tolist())
    assert log_q[0] == -np.inf and np.isfinite(log_q[1])


def test_a_huge_gamma_is_shown_shortened() -> None:
    with pytest.raises(ValueError, match=r"gamma must be .*got 1000.*\.\.\.") as info:
        diffcore.loss_weights(Schedule.linear(10), "min_snr", gamma=10**400)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize("weighting", ["simple", "epsilon", "min_snr", "vlb"])
@pytest.mark.parametrize("target", ["epsilon", "sample", "v"])
def test_loss_weights_are_a_fresh_writeable_array(weighting: str, target: str) -> None:
    # ("epsilon", "sample") returned the schedule's read-only snr table itself.
    s = Schedule.linear(10)
    w = diffcore.loss_weights(s, weighting, target)  # type: ignore[arg-type]
    assert w.flags.writeable and w.dtype == np.float64 and w.shape == (10,)
    assert not np.shares_memory(w, s.snr) and not np.shares_memory(w, s.alphas_cumprod)
    w /= w.max()


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: diffcore.UniformSampler(3), "T"),
        (lambda: diffcore.LossHistorySampler(3), "T"),
        (lambda: diffcore.LossHistorySampler(3), "history"),
        (lambda: diffcore.LossHistorySampler(3), "uniform_share"),
    ],
)
def test_sampler_sizes_are_read_only(make: Any, name: str) -> None:
    # UniformSampler(3) with T set to 7 failed inside NumPy in sample().
    sampler = make()
    with pytest.raises(AttributeError):
        setattr(sampler, name, 7)
    t, _ = sampler.sample(4, 0)
    assert np.all((t >= 0) & (t < 3))
