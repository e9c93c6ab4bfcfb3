"""diffusers 0.42.1 DDPMScheduler and DDIMScheduler against diffcore, float32.

Where the two differ, the test records which is right against float64.
Findings (also in docs/derivations/samplers.md):

* DDIMScheduler.step takes the previous timestep as t - T // n.  That is the
  next entry of its own timestep array only for "leading" spacing (and for
  "trailing" when n divides T); for "linspace" (and trailing otherwise) it
  steps to a timestep the sampler never visits, and its last step goes from
  t = 0 ... to a negative index treated as the data, e.g. 999 -> 899 while the
  array says 888.  diffcore reads t_prev from the array (reference case C15).
* DDPMScheduler's "learned" variance takes the square root of the model's
  extra channels: its network predicts the variance itself, whereas
  diffcore's (and improved-diffusion's) "learned" predicts the log variance.
  Same numbers once the channels are exponentiated; a convention, not a bug.
* DDPMScheduler's leading spacing with steps_offset = 1 reaches timestep T
  for n = T (reference case C16); diffcore raises instead.
* "trailing" and "linspace" timestep arrays differ by one step at exact ties,
  which diffusers' float64 rounding breaks either way; some of its trailing
  arrays have n + 1 entries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed")
torch = pytest.importorskip("torch", reason="torch is not installed")

T = 1000
LINEAR = Schedule.linear(T)
TOL = {"rtol": 1e-5, "atol": 1e-5}
PREDICTIONS = {"epsilon": "epsilon", "sample": "sample", "v": "v_prediction"}


def tensors(seed: int, shape: tuple[int, ...] = (2, 3, 4)) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [
        torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        for _ in range(3)
    ]


def agree_or_diffusers_is_wrong(ours: Any, theirs: Any, exact: Any, case: str) -> None:
    """ours within 1e-5 of the float64 value; diffusers within 1e-5 of ours, or
    else (recorded) further from the float64 value than ours."""
    ours, theirs, exact = ours.numpy(), theirs.numpy(), exact.numpy()
    np.testing.assert_allclose(ours, exact, **TOL)
    if np.allclose(theirs, ours, **TOL):
        return
    error_theirs = np.abs(theirs - exact).max()
    error_ours = np.abs(ours - exact).max()
    print(f"{case}: diffusers off by {error_theirs:.2e}, diffcore by {error_ours:.2e}")
    assert error_theirs > 10 * error_ours


def noise_like(x: Any, seed: int) -> Any:
    """The noise diffusers draws with torch.Generator().manual_seed(seed)."""
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("t", [0, 1, 250, 999])
def test_add_noise_is_q_sample(t: int) -> None:
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T)
    x_0, noise, _ = tensors(t)
    steps = torch.full((2,), t, dtype=torch.int64)
    theirs = scheduler.add_noise(x_0, noise, steps)
    ours = diffcore.q_sample(LINEAR, x_0, steps, noise)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), **TOL)


@pytest.mark.parametrize("prediction", list(PREDICTIONS))
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("t", [0, 1, 500, 999])
def test_ddpm_step(prediction: Any, variance: Any, t: int) -> None:
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T, prediction_type=PREDICTIONS[prediction],
        variance_type=variance, clip_sample=False,
    )  # fmt: skip
    x, output, extra = tensors(t)
    if variance == "learned_range":
        output = torch.cat([output, extra.clamp(-1, 1)], dim=1)
    theirs = scheduler.step(output, t, x, generator=torch.Generator().manual_seed(7))
    ours = diffcore.ddpm_step(
        LINEAR, output, x, t, noise_like(x, 7), prediction_type=prediction,
        variance_type=variance,
    )  # fmt: skip
    exact = diffcore.ddpm_step(
        LINEAR, output.double(), x.double(), t, noise_like(x, 7).double(),
        prediction_type=prediction, variance_type=variance,
    )  # fmt: skip
    case = f"DDPM {prediction} {variance} t={t}"
    agree_or_diffusers_is_wrong(ours.x_prev, theirs.prev_sample, exact.x_prev, case)


def test_ddpm_learned_variance_is_a_variance_in_diffusers_and_a_log_in_ours() -> None:
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T, variance_type="learned", clip_sample=False
    )
    x, eps, extra = tensors(3)
    log_variance = -4.0 + 0.1 * extra
    theirs = scheduler.step(
        torch.cat([eps, log_variance.exp()], dim=1), 500, x,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    ours = diffcore.ddpm_step(
        LINEAR, torch.cat([eps, log_variance], dim=1), x, 500, noise_like(x, 1),
        variance_type="learned",
    )  # fmt: skip
    np.testing.assert_allclose(ours.x_prev.numpy(), theirs.prev_sample.numpy(), **TOL)


@pytest.mark.parametrize("n", [10, 50, 1000])
def test_ddpm_on_fewer_steps_is_ddpm_on_the_respaced_schedule(n: int) -> None:
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=False)
    scheduler.set_timesteps(n)
    ours_steps = diffcore.timesteps_for(T, n, "leading")
    assert scheduler.timesteps.tolist() == ours_steps.tolist()
    respaced = LINEAR.respace(ours_steps[::-1].copy())
    x, eps, _ = tensors(n)
    for j, t in [
        (n - 1, int(ours_steps[0])),
        (n // 2, int(ours_steps[n - 1 - n // 2])),
    ]:
        theirs = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(j))
        ours = diffcore.ddpm_step(respaced, eps, x, j, noise_like(x, j))
        np.testing.assert_allclose(
            ours.x_prev.numpy(), theirs.prev_sample.numpy(), **TOL
        )


def test_ddpm_clipping_and_thresholding() -> None:
    x, eps, _ = tensors(11)
    eps = 3 * eps
    for options, ours_options in [
        ({"clip_sample": True, "clip_sample_range": 1.0},
         {"clip_denoised": (-1.0, 1.0)}),
        (
            {"thresholding": True, "dynamic_thresholding_ratio": 0.995,
             "sample_max_value": 1e6},
            {"dynamic_threshold": 99.5},
        ),
    ]:  # fmt: skip
        scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, **options)
        theirs = scheduler.step(eps, 400, x, generator=torch.Generator().manual_seed(2))
        ours = diffcore.ddpm_step(LINEAR, eps, x, 400, noise_like(x, 2), **ours_options)
        np.testing.assert_allclose(
            ours.x_prev.numpy(), theirs.prev_sample.numpy(), **TOL
        )


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("n", [1, 7, 10, 13, 50, 999, 1000])
def test_ddim_timesteps_agree(spacing: Any, n: int) -> None:
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    scheduler.set_timesteps(n)
    assert (
        scheduler.timesteps.tolist() == diffcore.timesteps_for(T, n, spacing).tolist()
    )


def _exact_twice(spacing: str, n: int, position: int) -> tuple[int, int]:
    """Twice the unrounded timestep at a position of the descending array,
    as a fraction (numerator, denominator)."""
    i = n - 1 - position
    if spacing == "linspace":
        return 2 * i * (T - 1), n - 1
    return 2 * T * (i + 1) - 2 * n, n  # trailing: T (i + 1) / n - 1


def test_timestep_arrays_differ_from_diffusers_only_at_exact_ties() -> None:
    # diffusers rounds float64 linspace/arange values, whose rounding errors
    # break exact ties either way; diffcore rounds exact ties to even.  For
    # trailing, np.arange's float length also gives n + 1 timesteps for some n.
    counts = {}
    for spacing in ("leading", "trailing", "linspace"):
        scheduler = diffusers.DDIMScheduler(
            num_train_timesteps=T, timestep_spacing=spacing
        )
        longer, differing = 0, 0
        for n in range(1, T + 1):
            scheduler.set_timesteps(n)
            theirs = scheduler.timesteps.numpy()
            ours = diffcore.timesteps_for(T, n, spacing)
            if theirs.shape != ours.shape:
                assert theirs.shape == (n + 1,) and spacing == "trailing"
                longer += 1
                continue
            for position in np.flatnonzero(theirs != ours):
                a, b = int(theirs[position]), int(ours[position])
                numerator, denominator = _exact_twice(spacing, n, position)
                # a and b are the two integers either side of a tie.
                assert abs(a - b) == 1 and (a + b) * denominator == numerator
            differing += bool(np.any(theirs != ours))
        counts[spacing] = (longer, differing)
    print(counts)
    assert counts == {"leading": (0, 0), "trailing": (62, 49), "linspace": (0, 92)}


def test_ddpm_leading_offset_one_reaches_T_in_diffusers_but_raises_here() -> None:
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, steps_offset=1)
    scheduler.set_timesteps(T)
    assert int(scheduler.timesteps.max()) == T  # out of the table
    with pytest.raises(ValueError, match="outside"):
        diffcore.timesteps_for(T, T, "leading", offset=1)


@pytest.mark.parametrize("prediction", list(PREDICTIONS))
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("set_alpha_to_one", [True, False])
def test_ddim_step_with_leading_spacing(
    prediction: Any, eta: float, set_alpha_to_one: bool
) -> None:
    n = 20
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T, prediction_type=PREDICTIONS[prediction],
        clip_sample=False, set_alpha_to_one=set_alpha_to_one,
    )  # fmt: skip
    scheduler.set_timesteps(n)
    steps = diffcore.timesteps_for(T, n, "leading")
    final: Any = "one" if set_alpha_to_one else "first"
    x, output, _ = tensors(int(eta))
    for i in (0, 10, n - 1):
        t = int(steps[i])
        t_prev = int(steps[i + 1]) if i + 1 < n else -1
        theirs = scheduler.step(
            output, t, x, eta=eta, generator=torch.Generator().manual_seed(i)
        )
        ours = diffcore.ddim_step(
            LINEAR, output, x, t, t_prev, eta=eta, noise=noise_like(x, i),
            prediction_type=prediction, final_alpha_cumprod=final,
        )  # fmt: skip
        np.testing.assert_allclose(
            ours.x_prev.numpy(), theirs.prev_sample.numpy(), rtol=1e-5, atol=2e-5
        )


def test_ddim_linspace_steps_to_a_timestep_off_its_own_array() -> None:
    n = 10
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T, timestep_spacing="linspace", clip_sample=False
    )
    scheduler.set_timesteps(n)
    steps = diffcore.timesteps_for(T, n, "linspace")
    x, eps, _ = tensors(5)
    theirs = scheduler.step(eps, 999, x).prev_sample
    # diffusers agrees with diffcore told to step to 999 - 1000 // 10 = 899 ...
    stride = diffcore.ddim_step(LINEAR, eps, x, 999, 899).x_prev
    np.testing.assert_allclose(stride.numpy(), theirs.numpy(), **TOL)
    # ... but the array's next timestep is 888: the float64 DDIM step to 888,
    # which the next call (at t = 888) assumes, is diffcore's result.
    assert int(steps[1]) == 888
    ours = diffcore.ddim_step(LINEAR, eps, x, 999, 888).x_prev
    x64, eps64 = x.double().numpy(), eps.double().numpy()
    ab_t, ab_p = LINEAR.alphas_cumprod[999], LINEAR.alphas_cumprod[888]
    x_0 = (x64 - np.sqrt(1 - ab_t) * eps64) / np.sqrt(ab_t)
    exact = np.sqrt(ab_p) * x_0 + np.sqrt(1 - ab_p) * eps64
    np.testing.assert_allclose(ours.numpy(), exact, **TOL)
    assert np.abs(theirs.numpy() - exact).max() > 1e-2
