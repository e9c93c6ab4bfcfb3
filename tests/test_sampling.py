"""Samplers: timestep spacings, DDPM, DDIM, DPM-Solver++(2M) and the loop.

The two-sample tests run NumPy float64 on a 2-D Gaussian mixture whose exact
denoiser stands in for a network (``diffcore.reference``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule
from diffcore.reference import GaussianMixture

from ._helpers import to_numpy

LINEAR = Schedule.linear(1000)
ZERO_SNR = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
SPACINGS = ["leading", "trailing", "linspace"]


# -- timestep spacings: reference cases C14, C15, C16, C22 ------------------------


@pytest.mark.parametrize(
    ("spacing", "n", "offset", "expected"),
    [
        ("linspace", 10, 0, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
        ("leading", 10, 0, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
        ("trailing", 10, 0, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
    ],
)
def test_c14_spacing_values(
    spacing: Any, n: int, offset: int, expected: list[int]
) -> None:
    steps = diffcore.timesteps_for(1000, n, spacing, offset)
    assert steps.tolist() == expected
    assert steps.dtype == np.int64


def test_c14_trailing_50_and_leading_50_with_offset() -> None:
    trailing = diffcore.timesteps_for(1000, 50, "trailing")
    assert trailing[:5].tolist() == [999, 979, 959, 939, 919] and trailing[-1] == 19
    leading = diffcore.timesteps_for(1000, 50, "leading", offset=1)
    assert leading[0] == 981 and leading[-1] == 1


def test_c15_schedules_that_a_stride_rule_gets_wrong() -> None:
    trailing = diffcore.timesteps_for(1000, 13, "trailing")
    expected = [999, 922, 845, 768, 691, 614, 537, 461, 384, 307, 230, 153, 76]
    assert trailing.tolist() == expected
    stride = (trailing - 1000 // 13).tolist()
    # the failure signature of prev = t - T // n, recorded in the case
    assert stride == [923, 846, 769, 692, 615, 538, 461, 385, 308, 231, 154, 77, 0]
    assert diffcore.timesteps_for(100, 5, "linspace").tolist() == [99, 74, 50, 25, 0]
    linspace = diffcore.timesteps_for(1000, 10, "linspace")
    assert (linspace - 1000 // 10).tolist() == [
        899, 788, 677, 566, 455, 344, 233, 122, 11, -100
    ]  # fmt: skip


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n", [1, 2, 5, 13, 50])
def test_c15_loop_reads_the_previous_timestep_from_the_array(
    monkeypatch: pytest.MonkeyPatch, spacing: Any, n: int
) -> None:
    seen: list[tuple[int, int]] = []
    original = diffcore._sampling.ddim_step

    def spy(schedule: Any, output: Any, x: Any, t: Any, t_prev: Any, **kw: Any) -> Any:
        seen.append((t, t_prev))
        return original(schedule, output, x, t, t_prev, **kw)

    monkeypatch.setattr(diffcore._sampling, "ddim_step", spy)
    steps = diffcore.timesteps_for(1000, n, spacing)
    diffcore.sample(LINEAR, lambda x, t: 0 * x, np.ones((1, 2)), steps, method="ddim")
    assert seen == list(zip(steps.tolist(), [*steps[1:].tolist(), -1], strict=True))


def test_c16_c22_every_n_and_mode_gives_n_unique_timesteps_in_range() -> None:
    T = 1000
    for spacing in SPACINGS:
        for n in range(1, T + 1):
            steps = diffcore.timesteps_for(T, n, spacing)
            assert steps.shape == (n,), (spacing, n)
            assert steps.min() >= 0 and steps.max() <= T - 1, (spacing, n)
            assert np.all(np.diff(steps) < 0), (spacing, n)


def test_c16_offset_never_produces_T() -> None:
    # diffusers' leading spacing with steps_offset = 1 reaches 1000 at n = 1000;
    # here every n either fits in [0, T) or raises.
    for n in range(1, 1001):
        try:
            steps = diffcore.timesteps_for(1000, n, "leading", offset=1)
        except ValueError as error:
            assert "offset = 1" in str(error)
            assert (n - 1) * (1000 // n) + 1 >= 1000
            continue
        assert steps.max() <= 999 and steps.size == n
    with pytest.raises(ValueError, match="outside"):
        diffcore.timesteps_for(1000, 1000, "leading", offset=1)
    with pytest.raises(ValueError, match="outside"):
        diffcore.timesteps_for(1000, 10, "trailing", offset=1)


def test_c22_rounded_fractional_positions_can_repeat_but_ours_do_not() -> None:
    # The case's rule (evenly spaced fractional positions, rounded; 500 twice for
    # T = n = 1000) is not given precisely and we could not reproduce it with the
    # usual rules (np/torch linspace, accumulated strides, float32).  A rule that
    # does repeat: cell centres i + 1/2 rounded ties-to-even.
    T = n = 1000
    rule = np.round(np.linspace(0.5, T - 0.5, n)).astype(np.int64)
    assert np.unique(rule).size < n
    for spacing in SPACINGS:
        ours = diffcore.timesteps_for(T, n, spacing)
        position = {int(v): i for i, v in enumerate(ours)}
        assert len(position) == n  # value -> position is unambiguous


@pytest.mark.parametrize("n", [0, -1, 1001])
def test_bad_step_counts_raise(n: int) -> None:
    with pytest.raises(ValueError, match="n must be"):
        diffcore.timesteps_for(1000, n)


def test_bad_spacing_and_types_raise() -> None:
    with pytest.raises(ValueError, match="spacing must be one of"):
        diffcore.timesteps_for(1000, 10, "uniform")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n must be an int"):
        diffcore.timesteps_for(1000, 10.0)  # type: ignore[arg-type]


# -- DDIM ---------------------------------------------------------------------


def ddim_reference(
    s: Schedule, eps: np.ndarray, x: np.ndarray, t: int, prev: int, eta: float, z: Any
) -> np.ndarray:
    """Song et al. (2021), eq. 12, straight from alpha_bar in float64."""
    ab_t = s.alphas_cumprod[t]
    ab_p = 1.0 if prev < 0 else s.alphas_cumprod[prev]
    x_0 = (x - np.sqrt(1 - ab_t) * eps) / np.sqrt(ab_t)
    sigma = eta * np.sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    out = np.sqrt(ab_p) * x_0 + np.sqrt(1 - ab_p - sigma**2) * eps
    return out + (sigma * z if z is not None else 0.0)


@pytest.mark.parametrize(("t", "prev"), [(999, 979), (500, 0), (20, -1), (0, -1)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_the_paper(xp: Any, t: int, prev: int, eta: float) -> None:
    rng = np.random.default_rng(t)
    x, eps, z = (rng.standard_normal((3, 4)) for _ in range(3))
    make = lambda a: xp.asarray(a, dtype=xp.float64)  # noqa: E731
    step = diffcore.ddim_step(
        LINEAR, make(eps), make(x), t, prev, eta=eta, noise=make(z)
    )
    expected = ddim_reference(LINEAR, eps, x, t, prev, eta, z)
    np.testing.assert_allclose(to_numpy(step.x_prev), expected, rtol=1e-10, atol=1e-10)


def test_ddim_step_with_per_sample_timesteps_and_the_sentinel(xp: Any) -> None:
    rng = np.random.default_rng(0)
    x, eps, z = (rng.standard_normal((3, 2)) for _ in range(3))
    t, prev = np.array([999, 40, 3]), np.array([500, 0, -1])
    make = lambda a: xp.asarray(a, dtype=xp.float32)  # noqa: E731
    step = diffcore.ddim_step(
        LINEAR, make(eps), make(x), xp.asarray(t), xp.asarray(prev), eta=1.0,
        noise=make(z),
    )  # fmt: skip
    assert step.x_prev.dtype == xp.float32
    for i in range(3):
        expected = ddim_reference(LINEAR, eps[i], x[i], t[i], prev[i], 1.0, z[i])
        np.testing.assert_allclose(
            to_numpy(step.x_prev)[i], expected, rtol=2e-5, atol=2e-5
        )


def test_final_alpha_choice_is_explicit() -> None:
    x, eps = np.array([[0.3, -0.2]]), np.array([[0.5, 0.1]])
    one = diffcore.ddim_step(LINEAR, eps, x, 0, -1, final_alpha_cumprod="one")
    first = diffcore.ddim_step(LINEAR, eps, x, 0, -1, final_alpha_cumprod="first")
    # "one": the step lands on the data and returns x_0_hat; "first": alpha_bar_0,
    # which from t = 0 is the identity (diffusers' set_alpha_to_one=False).
    np.testing.assert_allclose(one.x_prev, one.x_0_hat, rtol=1e-15)
    np.testing.assert_allclose(first.x_prev, x, rtol=1e-13)
    later = diffcore.ddim_step(LINEAR, eps, x, 20, -1, final_alpha_cumprod="first")
    np.testing.assert_allclose(
        later.x_prev, ddim_reference(LINEAR, eps, x, 20, 0, 0.0, None), rtol=1e-12
    )
    with pytest.raises(ValueError, match="final_alpha_cumprod must be one of"):
        diffcore.ddim_step(LINEAR, eps, x, 0, -1, final_alpha_cumprod="zero")  # type: ignore[arg-type]


def test_c10_ddim_from_the_terminal_step_with_v_prediction_is_finite() -> None:
    assert ZERO_SNR.alphas_cumprod[-1] == 0.0
    x_t, v = np.full((1, 3), 0.3), np.full((1, 3), -0.7)
    x_0 = diffcore.x_0_from_v(ZERO_SNR, x_t, 999, v)
    eps = diffcore.eps_from_v(ZERO_SNR, x_t, 999, v)
    assert x_0.tolist() == [[0.7] * 3] and eps.tolist() == [[0.3] * 3]
    for prev in (979, 0, -1):
        step = diffcore.ddim_step(ZERO_SNR, v, x_t, 999, prev, prediction_type="v")
        assert (
            np.all(np.isfinite(step.x_prev)) and step.x_0_hat.tolist() == x_0.tolist()
        )
    with pytest.raises(ValueError, match="zero terminal SNR"):
        diffcore.ddim_step(ZERO_SNR, v, x_t, 999, 979, prediction_type="epsilon")
    out = diffcore.p_mean_variance(ZERO_SNR, v, x_t, 999, prediction_type="v")
    assert all(np.all(np.isfinite(a)) for a in out)


def test_c10_whole_ddim_loop_on_a_zero_snr_schedule_with_v_is_finite() -> None:
    mix = GaussianMixture([[1.0, -1.0]], 0.2)
    x_T = np.random.default_rng(0).standard_normal((16, 2))
    steps = diffcore.timesteps_for(1000, 10, "trailing")
    out = diffcore.sample(
        ZERO_SNR, mix.model(ZERO_SNR, "v"), x_T, steps, method="ddim",
        prediction_type="v",
    )  # fmt: skip
    assert np.all(np.isfinite(out)) and np.all(np.abs(out - [1.0, -1.0]) < 1.5)


def test_ddim_eta_one_is_ancestral_sampling_on_the_respaced_schedule() -> None:
    steps = diffcore.timesteps_for(1000, 25, "trailing")
    respaced = LINEAR.respace(steps[::-1].copy())
    mix = GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], 0.1)
    x = np.random.default_rng(0).standard_normal((64, 2))
    ddim, ddpm = x, x
    for i, t in enumerate(steps.tolist()):
        prev = int(steps[i + 1]) if i + 1 < len(steps) else -1
        z = np.random.default_rng(100 + i).standard_normal(x.shape)
        ddim = diffcore.ddim_step(
            LINEAR, mix.eps(LINEAR, ddim, t), ddim, t, prev, eta=1.0, noise=z
        ).x_prev
        j = len(steps) - 1 - i
        assert respaced.timestep_map[j] == t
        ddpm = diffcore.ddpm_step(respaced, mix.eps(LINEAR, ddpm, t), ddpm, j, z).x_prev
        np.testing.assert_allclose(ddim, ddpm, rtol=1e-9, atol=1e-9)


def test_respaced_ddpm_loop_gives_the_model_original_timesteps() -> None:
    steps = diffcore.timesteps_for(1000, 8, "linspace")
    respaced = LINEAR.respace(steps[::-1].copy())
    seen: list[int] = []

    def model(x: Any, t: Any) -> Any:
        assert t.shape == (x.shape[0],) and t.dtype == np.int64
        seen.append(int(t[0]))
        return 0 * x

    diffcore.sample(respaced, model, np.ones((2, 2)), generator=0)
    assert seen == steps.tolist()


# -- the loop on every array library ------------------------------------------


def test_ddim_loop_runs_on_every_library(xp: Any) -> None:
    mix = GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], 0.1)
    x_np = np.random.default_rng(0).standard_normal((8, 2))
    steps = diffcore.timesteps_for(1000, 5, "trailing")
    calls: list[int] = []
    out = diffcore.sample(
        LINEAR, mix.model(LINEAR), xp.asarray(x_np), steps, method="ddim",
        progress=lambda i, t, x: calls.append(t),
    )  # fmt: skip
    expected = diffcore.sample(LINEAR, mix.model(LINEAR), x_np, steps, method="ddim")
    assert calls == steps.tolist()
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["ddpm", "dpmpp_2m"])
def test_other_loops_run_on_every_library(xp: Any, method: Any) -> None:
    x = xp.asarray(np.random.default_rng(0).standard_normal((4, 2)))
    schedule = LINEAR.respace(np.arange(0, 1000, 100))
    mix = GaussianMixture([[1.0, 1.0]], 0.1)
    steps = None if method == "ddpm" else diffcore.timesteps_for(1000, 6, "trailing")
    sched = schedule if method == "ddpm" else LINEAR
    out = diffcore.sample(
        sched, mix.model(LINEAR), x, steps, method=method, generator=1
    )
    assert type(out) is type(x) and tuple(out.shape) == (4, 2)
    assert np.all(np.abs(to_numpy(out) - 1.0) < 1.0)


def test_seeded_loops_are_reproducible() -> None:
    x = np.random.default_rng(0).standard_normal((4, 2))
    model = GaussianMixture([[0.0, 0.0]], 1.0).model(LINEAR)
    schedule = LINEAR.respace(np.arange(0, 1000, 50))
    first = diffcore.sample(schedule, model, x, generator=5)
    again = diffcore.sample(schedule, model, x, generator=5)
    other = diffcore.sample(schedule, model, x, generator=6)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


# -- two-sample tests on a 2-D Gaussian mixture -------------------------------

MIXTURE = GaussianMixture(
    [[-1.0, 0.0], [1.0, 0.5], [0.0, -1.0]], [0.05, 0.1, 0.05], [0.5, 0.3, 0.2]
)
N = 2000


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely and Rizzo 2013), V-statistic."""

    def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).mean())

    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)


@pytest.fixture(scope="module")
def null_threshold() -> float:
    """The largest energy distance between two true samples of size N, 8 seeds."""
    null = [
        energy_distance(MIXTURE.sample(N, 100 + 2 * i), MIXTURE.sample(N, 101 + 2 * i))
        for i in range(8)
    ]
    print(f"null energy distances: {np.round(null, 5).tolist()}")
    return max(null)


def check_matches_mixture(samples: np.ndarray, threshold: float, label: str) -> None:
    distance = energy_distance(samples, MIXTURE.sample(N, 7))
    print(f"{label}: energy distance {distance:.5f}, threshold {threshold:.5f}")
    assert distance <= threshold, f"{label}: {distance:.5f} > {threshold:.5f}"


def swapped_ddpm_step(
    schedule: Schedule, output: Any, x: Any, t: int, noise: Any, **kw: Any
) -> diffcore.Step:
    """A deliberately broken step: the posterior weights of x_0 and x_t swapped."""
    out = diffcore.p_mean_variance(schedule, output, x, t)
    c0, ct = schedule.posterior_mean_coef_x0[t], schedule.posterior_mean_coef_xt[t]
    mean = ct * out.x_0_hat + c0 * x
    return diffcore.Step(mean + (t > 0) * np.sqrt(out.variance) * noise, out.x_0_hat)


def swapped_ddim_step(
    schedule: Schedule, output: Any, x: Any, t: int, t_prev: int, **kw: Any
) -> diffcore.Step:
    """A deliberately broken DDIM step: the weights of x_0_hat and eps_hat swapped."""
    ab_p = 1.0 if t_prev < 0 else schedule.alphas_cumprod[t_prev]
    x_0, eps = diffcore.predict_x_0_eps(schedule, output, x, t)
    return diffcore.Step(np.sqrt(1 - ab_p) * x_0 + np.sqrt(ab_p) * eps, x_0)


X_T = np.random.default_rng(1).standard_normal((N, 2))


def test_ddpm_1000_steps_with_the_exact_denoiser_matches_the_mixture(
    null_threshold: float,
) -> None:
    samples = diffcore.sample(LINEAR, MIXTURE.model(LINEAR), X_T, generator=3)
    check_matches_mixture(samples, null_threshold, "DDPM 1000")


def test_ddim_50_steps_with_the_exact_denoiser_matches_the_mixture(
    null_threshold: float,
) -> None:
    steps = diffcore.timesteps_for(1000, 50, "trailing")
    samples = diffcore.sample(LINEAR, MIXTURE.model(LINEAR), X_T, steps, method="ddim")
    check_matches_mixture(samples, null_threshold, "DDIM 50")


def test_dpm_solver_2m_20_karras_steps_matches_the_mixture(
    null_threshold: float,
) -> None:
    # 20 trailing steps give 0.0073 (over the threshold); Karras spacing 0.0012.
    sigmas = diffcore.karras_sigmas(
        20, float(LINEAR.sigmas[0]), float(LINEAR.sigmas[-1])
    )
    steps = diffcore.timesteps_for_sigmas(LINEAR, sigmas)
    samples = diffcore.sample(
        LINEAR, MIXTURE.model(LINEAR), X_T, steps, method="dpmpp_2m"
    )
    check_matches_mixture(samples, null_threshold, "DPM-Solver++(2M) 20 Karras")


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_the_two_sample_test_catches_swapped_coefficients(
    monkeypatch: pytest.MonkeyPatch, null_threshold: float, method: str
) -> None:
    if method == "ddpm":
        monkeypatch.setattr(diffcore._sampling, "ddpm_step", swapped_ddpm_step)
        samples = diffcore.sample(LINEAR, MIXTURE.model(LINEAR), X_T, generator=3)
    else:
        monkeypatch.setattr(diffcore._sampling, "ddim_step", swapped_ddim_step)
        steps = diffcore.timesteps_for(1000, 50, "trailing")
        samples = diffcore.sample(
            LINEAR, MIXTURE.model(LINEAR), X_T, steps, method="ddim"
        )
    with pytest.raises(AssertionError, match=r"swapped: [0-9.]+ > "):
        check_matches_mixture(samples, null_threshold, f"{method} swapped")


# -- DPM-Solver++(2M) and Karras sigmas ---------------------------------------


def test_dpm_solver_first_step_is_ddim() -> None:
    rng = np.random.default_rng(0)
    x, eps = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    x_0, _ = diffcore.predict_x_0_eps(LINEAR, eps, x, 700)
    dpm = diffcore.dpmpp_2m_step(LINEAR, x, x_0, 700, 500)
    ddim = diffcore.ddim_step(LINEAR, eps, x, 700, 500).x_prev
    np.testing.assert_allclose(dpm, ddim, rtol=1e-12, atol=1e-12)


def test_dpm_solver_is_second_order_on_a_gaussian() -> None:
    # For Gaussian data the probability-flow ODE maps standardised values to
    # themselves; run from t = 999 to t = 0 ("first": the last step lands on
    # timestep 0) with n = 40, 80, 160 steps: the error must fall about 4x each time
    # (fewer steps are still pre-asymptotic on linspace timesteps), and drop
    # below DDIM's, which only halves.
    gauss = GaussianMixture([[0.5]], 0.5)
    x_T = np.array([[1.3]])
    errors, ddim_errors = [], []
    for n in (40, 80, 160):
        steps = diffcore.timesteps_for(999, n, "linspace") + 1
        out = diffcore.sample(
            LINEAR, gauss.model(LINEAR), x_T, steps, method="dpmpp_2m",
            final_alpha_cumprod="first",
        )  # fmt: skip
        ddim = diffcore.sample(
            LINEAR, gauss.model(LINEAR), x_T, steps, method="ddim",
            final_alpha_cumprod="first",
        )  # fmt: skip
        exact = ddim_exact_gaussian(x_T, int(steps[0]), 0.5, 0.5)
        errors.append(abs(float(out[0, 0]) - exact))
        ddim_errors.append(abs(float(ddim[0, 0]) - exact))
    print(f"DPM-Solver++(2M) errors {errors}, DDIM errors {ddim_errors}")
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3, errors
    assert errors[1] < ddim_errors[1] and errors[2] < ddim_errors[2]


def ddim_exact_gaussian(x_T: np.ndarray, t: int, mean: float, std: float) -> float:
    """The probability-flow map from step t to step 0 for x_0 ~ N(mean, std^2)."""
    ab = LINEAR.alphas_cumprod
    scale_t = np.sqrt(ab[t] * std**2 + 1 - ab[t])
    scale_0 = np.sqrt(ab[0] * std**2 + 1 - ab[0])
    z = (float(x_T[0, 0]) - np.sqrt(ab[t]) * mean) / scale_t
    return float(np.sqrt(ab[0]) * mean + scale_0 * z)


def test_karras_sigmas_and_their_timesteps() -> None:
    sigmas = diffcore.karras_sigmas(10, 0.002, 80.0)
    assert sigmas[0] == pytest.approx(80.0) and sigmas[-1] == pytest.approx(0.002)
    assert np.all(np.diff(sigmas) < 0)
    sigmas = diffcore.karras_sigmas(10, LINEAR.sigmas[0], LINEAR.sigmas[-1])
    steps = diffcore.timesteps_for_sigmas(LINEAR, sigmas)
    assert np.all(np.diff(steps) < 0) and steps[0] == 999 and steps[-1] == 0
    with pytest.raises(ValueError, match="sigma_min"):
        diffcore.karras_sigmas(10, 1.0, 0.5)


# -- bad input ----------------------------------------------------------------


def test_bad_sampler_arguments_raise() -> None:
    x = np.ones((2, 2))
    model = lambda x, t: 0 * x  # noqa: E731
    with pytest.raises(ValueError, match="method must be one of"):
        diffcore.sample(LINEAR, model, x, method="euler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consecutive"):
        diffcore.sample(LINEAR, model, x, [999, 500, 0], method="ddpm")
    gap = r"got timesteps\[1\] = 998 followed by 996;"
    with pytest.raises(ValueError, match=gap):
        diffcore.sample(LINEAR, model, x, [999, 998, 996, 995], method="ddpm")
    with pytest.raises(ValueError, match="strictly decreasing"):
        diffcore.sample(LINEAR, model, x, [0, 500], method="ddim")
    with pytest.raises(ValueError, match="strictly decreasing"):
        diffcore.sample(LINEAR, model, x, [1000, 500], method="ddim")
    with pytest.raises(TypeError, match="model must be callable"):
        diffcore.sample(LINEAR, None, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="t_prev must be smaller than t"):
        diffcore.ddim_step(LINEAR, x, x, 10, 10)
    with pytest.raises(ValueError, match=r"t_prev must lie in \[-1, 1000\)"):
        diffcore.ddim_step(LINEAR, x, x, 10, -2)
    with pytest.raises(ValueError, match="eta must lie in"):
        diffcore.ddim_step(LINEAR, x, x, 10, 5, eta=1.5, noise=x)
    with pytest.raises(ValueError, match="noise is needed"):
        diffcore.ddim_step(LINEAR, x, x, 10, 5, eta=0.5)
    with pytest.raises(ValueError, match="model_output must have the shape"):
        diffcore.ddim_step(LINEAR, np.ones((2, 3)), x, 10, 5)


@pytest.mark.parametrize("method", ["ddpm", "ddim", "dpmpp_2m"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_model_output_raises_in_every_sampler(
    method: Any, bad: float
) -> None:
    steps = None if method == "ddpm" else diffcore.timesteps_for(1000, 10)
    # Named by the step: model_output is no argument of sample.
    match = r"the model's output at timestep t = \d+ must be finite"
    with pytest.raises(ValueError, match=match):
        diffcore.sample(LINEAR, lambda x, t: x * bad, np.ones((2, 2)), steps,
                        method=method)  # fmt: skip


@pytest.mark.parametrize("method", ["ddpm", "ddim", "dpmpp_2m"])
def test_a_model_output_that_does_not_fit_x_names_the_step(method: Any) -> None:
    steps = None if method == "ddpm" else diffcore.timesteps_for(1000, 10)
    with pytest.raises(
        ValueError, match=r"at timestep t = \d+ does not fit x: .*shape"
    ):
        diffcore.sample(LINEAR, lambda x, t: x[:, :1], np.ones((2, 2)), steps,
                        method=method)  # fmt: skip
    with pytest.raises(TypeError, match=r"at timestep t = \d+ does not fit x: .*dtype"):
        diffcore.sample(LINEAR, lambda x, t: x.astype(np.float32), np.ones((2, 2)),
                        steps, method=method)  # fmt: skip


@pytest.mark.parametrize("method", ["ddpm", "ddim", "dpmpp_2m"])
@pytest.mark.parametrize(
    ("returned", "kind"),
    [(lambda x: [[0.0, 0.0]], "list"), (lambda x: None, "None"),
     (lambda x: (0.0,), "tuple"), (lambda x: np.zeros((2, 2)), "numpy.ndarray")],
)  # fmt: skip
def test_a_model_returning_a_non_array_or_another_library_names_the_timestep(
    method: Any, returned: Any, kind: str
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x_T = torch.ones((2, 2), dtype=torch.float64)
    steps = [999, 998] if method == "ddpm" else [999, 500]
    with pytest.raises(TypeError, match="model must return an array") as info:
        diffcore.sample(LINEAR, lambda x, t: returned(x), x_T, steps, method=method)
    message = str(info.value)
    assert "torch.Tensor" in message and f"t = 999 it returned {kind}" in message


@pytest.mark.parametrize("method", ["ddpm", "ddim", "dpmpp_2m"])
def test_sample_warns_once_for_a_fractional_dynamic_threshold(method: Any) -> None:
    steps = [999, 998, 997] if method == "ddpm" else [999, 500, 0]
    with pytest.warns(UserWarning, match="dynamic_threshold=99.5") as record:
        diffcore.sample(LINEAR, lambda x, t: 0 * x, np.ones((2, 2)), steps,
                        method=method, dynamic_threshold=0.995)  # fmt: skip
    assert len(record) == 1 and record[0].filename == __file__


def test_a_0d_state_takes_the_numpy_scalar_its_arithmetic_returns() -> None:
    """0.5 * np.array(1.0) is np.float64(0.5), not a 0-d array."""
    schedule = diffcore.Schedule.linear(1000)

    def model(x: Any, t: Any) -> Any:
        return 0.5 * x

    def as_array(x: Any, t: Any) -> Any:
        return np.asarray(0.5 * x)

    assert isinstance(model(np.array(1.0), 0), np.float64)
    steps = [999, 500, 0]
    got = diffcore.sample(schedule, model, np.array(1.0), steps, method="ddim")
    want = diffcore.sample(schedule, as_array, np.array(1.0), steps, method="ddim")
    assert isinstance(got, np.ndarray) and got.shape == ()
    np.testing.assert_array_equal(got, want)
    levels = [1.0, 0.1]
    got = diffcore.annealed_langevin(model, np.array(1.0), levels, 1e-3, 2, generator=0)
    want = diffcore.annealed_langevin(
        as_array, np.array(1.0), levels, 1e-3, 2, generator=0
    )
    assert got.shape == ()
    np.testing.assert_array_equal(got, want)
