"""Bad input and edge cases of the losses, the bound and the reference models.

Cases a fresh user met in a trial: each gets a clear error naming the
argument, or a finite answer checked against a high-precision reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore

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
