"""The reverse step: parameterisations, variance types, clipping, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from ._helpers import to_numpy

LINEAR = Schedule.linear(1000)


def reference(
    s: Schedule,
    output: np.ndarray,
    x: np.ndarray,
    t: int,
    prediction: str,
    variance: str,
) -> tuple[np.ndarray, ...]:
    """p(x_{t-1} | x_t) straight from Ho et al. and Nichol and Dhariwal, in float64."""
    ab, beta = s.alphas_cumprod[t], s.betas[t]
    ab_prev = s.alphas_cumprod_prev[t]
    c = x.shape[1]
    pred, values = (
        (output[:, :c], output[:, c:]) if variance.startswith("l") else (output, None)
    )
    if prediction == "epsilon":
        x_0 = (x - np.sqrt(1 - ab) * pred) / np.sqrt(ab)
    elif prediction == "sample":
        x_0 = pred
    else:
        x_0 = np.sqrt(ab) * x - np.sqrt(1 - ab) * pred
    mean = (
        np.sqrt(ab_prev) * beta / (1 - ab) * x_0
        + np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * x
    )
    small = (1 - ab_prev) / (1 - ab) * beta
    log_small = np.log(small if t > 0 else s.posterior_variance[1])
    if variance == "fixed_small":
        log_var = np.full_like(x, log_small)
    elif variance == "fixed_large":
        log_var = np.full_like(x, np.log(beta if t > 0 else s.posterior_variance[1]))
    elif variance == "learned":
        log_var = values
    else:
        frac = (values + 1) / 2
        log_var = frac * np.log(beta) + (1 - frac) * log_small
    return mean, log_var, x_0


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v"])
@pytest.mark.parametrize(
    "variance", ["fixed_small", "fixed_large", "learned", "learned_range"]
)
@pytest.mark.parametrize("t", [0, 1, 500, 999])
def test_p_mean_variance_matches_float64_reference(
    xp: Any, prediction: Any, variance: Any, t: int
) -> None:
    rng = np.random.default_rng(t)
    x = rng.standard_normal((2, 3, 2))
    channels = 6 if variance.startswith("learned") else 3
    output = rng.uniform(-1, 1, (2, channels, 2))
    out = diffcore.p_mean_variance(
        LINEAR, xp.asarray(output), xp.asarray(x), t,
        prediction_type=prediction, variance_type=variance,
    )  # fmt: skip
    mean, log_var, x_0 = reference(LINEAR, output, x, t, prediction, variance)
    tol = {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_allclose(to_numpy(out.mean), mean, **tol)
    np.testing.assert_allclose(to_numpy(out.log_variance), log_var, **tol)
    np.testing.assert_allclose(to_numpy(out.x_0_hat), x_0, **tol)
    if variance == "fixed_small" and t == 0:
        # the posterior at t = 0 is a point mass; only its log is clipped
        assert np.all(to_numpy(out.variance) == 0.0)
    else:
        np.testing.assert_allclose(to_numpy(out.variance), np.exp(log_var), **tol)


def test_per_sample_timesteps_agree_with_scalar_ones(xp: Any) -> None:
    rng = np.random.default_rng(0)
    x, eps = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    t = np.array([0, 7, 999])
    out = diffcore.p_mean_variance(
        LINEAR, xp.asarray(eps), xp.asarray(x), xp.asarray(t),
        variance_type="fixed_large",
    )  # fmt: skip
    for i in range(3):
        one = diffcore.p_mean_variance(
            LINEAR, eps[i : i + 1], x[i : i + 1], int(t[i]), variance_type="fixed_large"
        )
        np.testing.assert_allclose(to_numpy(out.mean)[i], one.mean[0], rtol=1e-12)
        np.testing.assert_allclose(
            to_numpy(out.log_variance)[i], one.log_variance[0], rtol=1e-12
        )


def test_clipping_and_dynamic_thresholding() -> None:
    x = np.zeros((2, 4))
    x_0 = np.array([[3.0, -0.5, 0.2, 0.1], [0.9, -0.8, 0.5, 0.0]])
    out = diffcore.p_mean_variance(
        LINEAR, x_0, x, 10, prediction_type="sample", clip_denoised=(-1.0, 1.0)
    )
    assert out.x_0_hat.tolist() == [[1.0, -0.5, 0.2, 0.1], x_0[1].tolist()]
    # eps_hat is recomputed from the processed x_0_hat
    expected_eps = diffcore.eps_from_x_0(LINEAR, x, 10, out.x_0_hat)
    np.testing.assert_allclose(out.eps_hat, expected_eps, rtol=1e-15)

    # Saharia et al.: s = max(percentile(|x_0|, p), 1); clip to [-s, s] and divide
    out = diffcore.p_mean_variance(
        LINEAR, x_0, x, 10, prediction_type="sample", dynamic_threshold=90.0
    )
    s = np.percentile(np.abs(x_0[0]), 90.0)
    np.testing.assert_allclose(out.x_0_hat[0], np.clip(x_0[0], -s, s) / s, rtol=1e-14)
    np.testing.assert_allclose(out.x_0_hat[1], x_0[1], rtol=1e-15)  # s floored at 1


def test_dynamic_threshold_on_every_library(xp: Any) -> None:
    rng = np.random.default_rng(1)
    x_0 = rng.uniform(-3, 3, (3, 2, 5))
    x = xp.asarray(np.zeros_like(x_0))
    out = diffcore.p_mean_variance(
        LINEAR, xp.asarray(x_0), x, 3, prediction_type="sample",
        dynamic_threshold=99.5,
    )  # fmt: skip
    flat = np.abs(x_0.reshape(3, -1))
    s = np.maximum(np.percentile(flat, 99.5, axis=1), 1.0)[:, None, None]
    expected = np.clip(x_0, -s, s) / s
    np.testing.assert_allclose(to_numpy(out.x_0_hat), expected, rtol=1e-12)


def test_the_chain_driven_by_the_true_x_0_keeps_the_marginal_at_every_step() -> None:
    worst = marginal_chain_worst_deviation("fixed_small")
    print(f"fixed_small: worst |z| of mean {worst[0]:.2f}, of variance {worst[1]:.2f}")
    assert worst[0] < 5.0 and worst[1] < 5.0


def test_the_marginal_check_catches_fixed_large_in_place_of_fixed_small() -> None:
    worst = marginal_chain_worst_deviation("fixed_large")
    print(f"fixed_large: worst |z| of mean {worst[0]:.2f}, of variance {worst[1]:.2f}")
    assert worst[1] > 5.0


def marginal_chain_worst_deviation(variance_type: Any) -> tuple[float, float]:
    """Largest z-scores of per-step mean and variance against q(x_t | x_0).

    2000 chains in 2-D start from q(x_999 | x_0) and step with the model output
    x_0 itself (prediction "sample"), so fixed_small is the exact posterior.
    """
    chains, x_0 = 2000, np.array([0.5, -1.0])
    rng = np.random.default_rng(0)
    target = np.broadcast_to(x_0, (chains, 2))
    x = diffcore.q_sample(LINEAR, target, 999, rng.standard_normal((chains, 2)))
    worst_mean = worst_var = 0.0
    for t in range(999, 0, -1):
        x = diffcore.ddpm_step(
            LINEAR, target, x, t, rng.standard_normal((chains, 2)),
            prediction_type="sample", variance_type=variance_type,
        ).x_prev  # fmt: skip
        mean = LINEAR.sqrt_alphas_cumprod[t - 1] * x_0
        var = 1.0 - LINEAR.alphas_cumprod[t - 1]
        z_mean = np.abs(x.mean(0) - mean) / np.sqrt(var / chains)
        z_var = np.abs(x.var(0) / var - 1.0) / np.sqrt(2.0 / chains)
        worst_mean = max(worst_mean, float(z_mean.max()))
        worst_var = max(worst_var, float(z_var.max()))
    return worst_mean, worst_var


# -- bad input ----------------------------------------------------------------


def test_bad_model_outputs_raise() -> None:
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="model_output must have the shape"):
        diffcore.p_mean_variance(LINEAR, np.zeros((2, 3, 5)), x, 5)
    with pytest.raises(ValueError, match="model_output must be finite"):
        diffcore.p_mean_variance(LINEAR, np.full((2, 3, 4), np.nan), x, 5)
    with pytest.raises(ValueError, match=r"must have shape \(2, 6, 4\)"):
        diffcore.p_mean_variance(LINEAR, x, x, 5, variance_type="learned")
    with pytest.raises(ValueError, match="rank >= 2"):
        diffcore.p_mean_variance(
            LINEAR, np.zeros(4), np.zeros(2), 5, variance_type="learned_range"
        )
    with pytest.raises(TypeError, match="model_output must have the dtype"):
        diffcore.p_mean_variance(LINEAR, x.astype(np.float32), x, 5)


def test_unknown_options_raise() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        diffcore.p_mean_variance(LINEAR, x, x, 5, prediction_type="x0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variance_type must be one of"):
        diffcore.p_mean_variance(LINEAR, x, x, 5, variance_type="large")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        diffcore.p_mean_variance(
            LINEAR, x, x, 5, clip_denoised=(-1.0, 1.0), dynamic_threshold=99.0
        )
    with pytest.raises(ValueError, match="percentile in"):
        diffcore.p_mean_variance(LINEAR, x, x, 5, dynamic_threshold=0.0)
    with pytest.raises(TypeError, match="pair"):
        diffcore.p_mean_variance(LINEAR, x, x, 5, clip_denoised=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        diffcore.p_mean_variance(LINEAR, x, x, 1000)


@pytest.mark.parametrize("value", [None, 1, b"epsilon"])
def test_an_option_that_is_not_a_string_is_a_type_error(value: Any) -> None:
    x = np.zeros((1, 2))
    with pytest.raises(TypeError, match="prediction_type must be one of"):
        diffcore.p_mean_variance(LINEAR, x, x, 0, prediction_type=value)
    with pytest.raises(TypeError, match="first must be 'next' or 'floor'"):
        diffcore.Schedule.linear(5).with_posterior_log_variance(value)


def test_learned_variance_shape_errors_say_what_was_expected() -> None:
    x_1d, x_2d = np.ones(4, np.float32), np.ones((2, 2))
    with pytest.raises(ValueError, match=r"x_t must have rank >= 2") as info:
        diffcore.p_mean_variance(
            LINEAR, np.ones(8, np.float32), x_1d, 5, variance_type="learned"
        )
    assert "none" not in str(info.value)
    with pytest.raises(ValueError, match=r"must have shape \(2, 4\).*got \(2, 3\)"):
        diffcore.p_mean_variance(
            LINEAR, np.ones((2, 3)), x_2d, 5, variance_type="learned_range"
        )


def _reverse_entry(name: str) -> Any:
    """Call one public entry point that takes a model output, on x_t."""
    noise = np.zeros((2, 2))
    calls = {
        "p_mean_variance": lambda o, x: diffcore.p_mean_variance(LINEAR, o, x, 5),
        "p_mean_variance_learned": lambda o, x: diffcore.p_mean_variance(
            LINEAR, o, x, 5, variance_type="learned"
        ),
        "ddpm_step": lambda o, x: diffcore.ddpm_step(LINEAR, o, x, 5, noise),
        "ddpm_step_learned": lambda o, x: diffcore.ddpm_step(
            LINEAR, o, x, 5, noise, variance_type="learned_range"
        ),
        "ddim_step": lambda o, x: diffcore.ddim_step(LINEAR, o, x, 10, 5),
        "dpmpp_2m_step": lambda o, x: diffcore.dpmpp_2m_step(LINEAR, x, o, 10, 5),
    }
    return calls[name]


ENTRIES = [
    "p_mean_variance",
    "p_mean_variance_learned",
    "ddpm_step",
    "ddpm_step_learned",
    "ddim_step",
    "dpmpp_2m_step",
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("output", [[[0.0, 0.0], [0.0, 0.0]], None, (0.0, 0.0)])
def test_a_model_output_that_is_not_an_array_raises_type_error(
    entry: str, output: Any
) -> None:
    name = "x_0_hat" if entry == "dpmpp_2m_step" else "model_output"
    with pytest.raises(TypeError, match=f"{name} must be an array"):
        _reverse_entry(entry)(output, np.zeros((2, 2)))


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_model_output_from_another_library_names_both_libraries(
    entry: str,
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.zeros((2, 2), dtype=torch.float64)
    output = np.zeros((2, 4) if "learned" in entry else (2, 2))
    with pytest.raises(TypeError, match="arrays must come from one library") as info:
        _reverse_entry(entry)(output, x)
    assert "torch.Tensor" in str(info.value) and "numpy.ndarray" in str(info.value)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_model_output_raises_at_every_entry_point(
    entry: str, bad: float
) -> None:
    output = np.zeros((2, 4) if "learned" in entry else (2, 2))
    output[1, 0] = bad
    with pytest.raises(ValueError, match="must be finite"):
        _reverse_entry(entry)(output, np.ones((2, 2)))


def test_nan_model_output_in_a_lazy_graph_is_not_read() -> None:
    """Dask output stays lazy: the finiteness check never computes it."""
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    x = da.ones((2, 2), chunks=1)
    step = diffcore.ddim_step(LINEAR, x * np.nan, x, 10, 5)
    assert np.isnan(to_numpy(step.x_prev)).all()


@pytest.mark.parametrize("p", [0.995, 1.0, 0.5])
def test_dynamic_threshold_as_a_fraction_warns_once_at_the_caller(p: float) -> None:
    x = np.linspace(-3.0, 3.0, 8).reshape(2, 4)
    calls = [
        lambda: diffcore.p_mean_variance(LINEAR, x, x, 5, dynamic_threshold=p),
        lambda: diffcore.predict_x_0_eps(LINEAR, x, x, 5, dynamic_threshold=p),
        lambda: diffcore.ddpm_step(LINEAR, x, x, 5, x, dynamic_threshold=p),
        lambda: diffcore.ddim_step(LINEAR, x, x, 10, 5, dynamic_threshold=p),
    ]
    for call in calls:
        with pytest.warns(UserWarning, match=r"percentile in \(0, 100\]") as record:
            call()
        assert len(record) == 1
        assert record[0].filename == __file__
        assert f"dynamic_threshold={100 * p:g}" in str(record[0].message)


def test_dynamic_threshold_above_one_does_not_warn() -> None:
    x = np.linspace(-3.0, 3.0, 8).reshape(2, 4)
    for p in (1.5, 99.5, 100.0):
        diffcore.p_mean_variance(LINEAR, x, x, 5, dynamic_threshold=p)
