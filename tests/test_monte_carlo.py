"""Monte Carlo: sampled Markov steps and the closed form give one distribution.

Each test draws N chains by iterating q_step_sample from a fixed x_0 and N
draws of q_sample, then compares them with three statistics per coordinate:
the difference of means (z-test), the ratio of variances (its log is
approximately normal with variance 2/(N-1) per sample) and the two-sample
Kolmogorov-Smirnov distance.  Each statistic is compared with the critical
value of a test at level 1e-6; with 3 statistics over 4 coordinates the
false-positive rate of one test run is at most 12e-6 (Bonferroni), and the
seeds are fixed, so a run is reproducible.  A deliberately wrong closed form
(the timestep off by one) must fail the same comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

LEVEL = 1e-6
Z = NormalDist().inv_cdf(1 - LEVEL / 2)
N = 20_000
X_0 = np.array([1.0, -0.5, 0.25, 0.0])


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    both = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), both, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), both, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def same_distribution(a: np.ndarray, b: np.ndarray) -> list[str]:
    """The statistics (per coordinate) that reject 'same distribution' at LEVEL."""
    n, m = a.shape[0], b.shape[0]
    failures = []
    ks_critical = math.sqrt(-math.log(LEVEL / 2) / 2) * math.sqrt((n + m) / (n * m))
    for j in range(a.shape[1]):
        x, y = a[:, j], b[:, j]
        z_mean = (x.mean() - y.mean()) / math.sqrt(x.var() / n + y.var() / m)
        z_var = math.log(x.var(ddof=1) / y.var(ddof=1)) / math.sqrt(
            2 / (n - 1) + 2 / (m - 1)
        )
        if abs(z_mean) > Z:
            failures.append(f"mean[{j}] z = {z_mean:.2f}")
        if abs(z_var) > Z:
            failures.append(f"variance[{j}] z = {z_var:.2f}")
        if ks_distance(x, y) > ks_critical:
            failures.append(f"KS[{j}] = {ks_distance(x, y):.4f} > {ks_critical:.4f}")
    return failures


def chain(
    schedule: Schedule, t: int, dtype: Any, rng: np.random.Generator
) -> np.ndarray:
    x = np.broadcast_to(X_0, (N, X_0.size)).astype(dtype)
    for step in range(t + 1):
        noise = rng.standard_normal(x.shape).astype(dtype)
        x = diffcore.q_step_sample(schedule, x, step, noise)
    return x


def closed_form(
    schedule: Schedule, t: int, dtype: Any, rng: np.random.Generator
) -> np.ndarray:
    x_0 = np.broadcast_to(X_0, (N, X_0.size)).astype(dtype)
    return diffcore.q_sample(
        schedule, x_0, t, rng.standard_normal(x_0.shape).astype(dtype)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("kind", "t"), [("linear", 0), ("linear", 99), ("cosine", 60)])
def test_iterated_steps_and_closed_form_agree(dtype: Any, kind: str, t: int) -> None:
    schedule = getattr(Schedule, kind)(100)
    rng = np.random.default_rng([t, 1])
    a = chain(schedule, t, dtype, rng)
    b = closed_form(schedule, t, dtype, rng)
    assert a.dtype == dtype and b.dtype == dtype
    assert same_distribution(a.astype(np.float64), b.astype(np.float64)) == []


@pytest.mark.parametrize(
    "wrong",
    [
        lambda s, t: diffcore.q_sample(s, *t[:1], t[1] - 1, t[2]),  # off by one step
        lambda s, t: s.sqrt_alphas_cumprod[t[1]] * t[0] + s.betas[t[1]] ** 0.5 * t[2],
    ],
    ids=["off-by-one", "beta-for-variance"],
)
def test_the_comparison_catches_a_wrong_closed_form(wrong: Callable[..., Any]) -> None:
    schedule = Schedule.linear(100)
    rng = np.random.default_rng(7)
    t = 20
    a = chain(schedule, t, np.float64, rng)
    x_0 = np.broadcast_to(X_0, (N, X_0.size)).copy()
    b = wrong(schedule, (x_0, t, rng.standard_normal(x_0.shape)))
    assert same_distribution(a, b) != []
