"""Schedules: extreme but valid parameters, and bad scalars blamed on the argument."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import mpmath as mp
import numpy as np
import pytest

import diffcore
from diffcore import Schedule
from diffcore import _schedule as schedule_module
from diffcore.testing import assert_posterior_matches_bayes


def _posterior_reference(betas: list[float]) -> list[mp.mpf]:
    """beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), digits enough for 1e-323."""
    with mp.workdps(400):
        out, prod = [], mp.mpf(1)
        for b in betas:
            prev, prod = prod, prod * (1 - mp.mpf(b))
            out.append(mp.mpf(b) * (1 - prev) / (1 - prod))
    return out


@pytest.mark.parametrize("beta", [1e-200, 1e-160, 1e-300])
def test_posterior_variance_of_tiny_betas_matches_mpmath(beta: float) -> None:
    s = Schedule.from_betas([beta] * 3)
    reference = _posterior_reference([beta] * 3)

    assert s.posterior_variance[0] == 0.0
    for t in (1, 2):
        exact = reference[t]
        assert abs(s.posterior_variance[t] - exact) / exact <= 1e-13
        log_error = abs(s.posterior_log_variance_clipped[t] - mp.log(exact))
        assert log_error <= 1e-13 * abs(mp.log(exact))
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    assert_posterior_matches_bayes(
        s.betas, s.posterior_variance, s.posterior_mean_coef_x0,
        s.posterior_mean_coef_xt,
    )  # fmt: skip


def test_posterior_log_variance_stays_finite_below_the_smallest_normal() -> None:
    # beta = 5e-324 (the smallest subnormal): the variance rounds to 0 or to
    # one subnormal, but its log is still computed from logs.
    s = Schedule.from_betas([5e-324] * 3)
    exact = [mp.log(v) for v in _posterior_reference([5e-324] * 3)]
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    for t in (1, 2):
        error = abs(s.posterior_log_variance_clipped[t] - exact[t])
        assert error <= 1e-13 * abs(exact[t])
    # Every true variance here lies below the floor.
    floored = s.with_posterior_log_variance("floor", 1e-320)
    np.testing.assert_allclose(
        floored.posterior_log_variance_clipped, math.log(1e-320), rtol=1e-15
    )


BUILDERS: dict[str, Callable[[Any], Any]] = {
    "s": lambda v: Schedule.cosine(10, s=v),
    "max_beta": lambda v: Schedule.cosine(10, max_beta=v),
    "low": lambda v: Schedule.sigmoid_betas(5, low=v),
    "high": lambda v: Schedule.sigmoid_betas(5, high=v),
    "start": lambda v: Schedule.sigmoid_alphas_cumprod(5, start=v),
    "end": lambda v: Schedule.sigmoid_alphas_cumprod(5, end=v),
    "tau": lambda v: Schedule.sigmoid_alphas_cumprod(5, tau=v),
    "min_beta": lambda v: diffcore.sohl_dickstein_betas(10, min_beta=v),
    "beta_1": lambda v: diffcore.sohl_dickstein_betas(10, beta_1=v),
    "floor": lambda v: Schedule.linear(5).with_posterior_log_variance("floor", v),
    "scale_by_T": lambda v: Schedule.linear(10, scale_by_T=v),
}
BAD_SCALARS: list[tuple[str, Any, type, str]] = [
    ("s", "a", TypeError, "must be a real number; got str 'a'"),
    ("s", True, TypeError, "must be a real number; got bool True"),
    ("s", math.inf, ValueError, "must be finite; got inf"),
    ("max_beta", None, TypeError, "must be a real number; got NoneType None"),
    ("max_beta", True, TypeError, "must be a real number; got bool True"),
    ("max_beta", np.array([0.5, 0.9]), TypeError, "must be a real number; got ndarray"),
    ("max_beta", np.bool_(True), TypeError, "must be a real number; got bool"),
    ("low", "a", TypeError, "must be a real number; got str"),
    ("low", math.nan, ValueError, "must be finite; got nan"),
    ("high", math.inf, ValueError, "must be finite; got inf"),
    ("start", "a", TypeError, "must be a real number; got str"),
    ("end", math.nan, ValueError, "must be finite; got nan"),
    ("tau", math.inf, ValueError, "must be finite; got inf"),
    ("min_beta", "x", TypeError, "must be a real number; got str 'x'"),
    ("beta_1", True, TypeError, "must be a real number; got bool"),
    ("beta_1", math.nan, ValueError, r"must lie in \[0, 0.5\); got nan"),
    ("floor", "1e-20", TypeError, "must be a real number; got str '1e-20'"),
    ("floor", True, TypeError, "must be a real number; got bool"),
    ("floor", math.inf, ValueError, "must be finite; got inf"),
    ("floor", 0.0, ValueError, r"must lie in \(0, 1\] \(every posterior"),
    ("floor", 5.0, ValueError, r"must lie in \(0, 1\] .*; got 5.0"),
    ("scale_by_T", "yes", TypeError, "must be a bool; got str 'yes'"),
    ("scale_by_T", None, TypeError, "must be a bool; got NoneType None"),
]


@pytest.mark.parametrize(
    ("name", "value", "error", "match"),
    BAD_SCALARS,
    ids=[f"{row[0]}={row[1]!r}" for row in BAD_SCALARS],
)
def test_bad_scalar_parameters_are_named(
    name: str, value: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=rf"^{name} {match}"):
        BUILDERS[name](value)


@pytest.mark.parametrize(
    "value", [np.float32(0.5), np.float64(0.5), np.int64(1), 1, 0.5]
)
def test_numpy_and_python_real_scalars_are_accepted(value: Any) -> None:
    cosine = Schedule.cosine(10, max_beta=value)
    assert cosine.betas.max() <= float(value)
    floor = Schedule.linear(5).with_posterior_log_variance("floor", value)
    assert floor.posterior_log_variance_clipped[0] == math.log(float(value))
    assert len(Schedule.sigmoid_betas(5, low=-value, high=value)) == 5
    assert len(Schedule.sigmoid_alphas_cumprod(5, tau=value)) == 5
    assert diffcore.sohl_dickstein_betas(10, beta_1=value / 4)[0] > value / 4


def test_a_floor_given_with_next_is_refused() -> None:
    s = Schedule.linear(5)
    match = "floor applies to first='floor' only; got first='next' and floor=0.001"
    with pytest.raises(ValueError, match=match):
        s.with_posterior_log_variance("next", floor=1e-3)
    floored = s.with_posterior_log_variance("floor")
    assert floored.log_variance_floor == 1e-20


def test_linear_scaled_by_T_blames_its_arguments() -> None:
    match = r"beta_end \* 1000 / T = 2\.0 .*beta_start.*beta_end.*T = 10"
    with pytest.raises(ValueError, match=match):
        Schedule.linear(10, scale_by_T=True)
    with pytest.raises(ValueError, match=r"beta_start \* 1000 / T"):
        Schedule.linear(1, 0.01, 0.02, scale_by_T=True)
    assert Schedule.linear(100, scale_by_T=True).betas[-1] == pytest.approx(0.2)
    assert Schedule.linear(np.int64(100), scale_by_T=np.bool_(True)).betas[0] > 1e-4


def test_cosine_with_a_huge_offset_matches_mpmath() -> None:
    s, T = 1e300, 10
    betas = Schedule.cosine(T, s=s).betas
    with mp.workdps(700):
        offset = mp.mpf(s)
        f = lambda u: mp.cos((u + offset) / (1 + offset) * mp.pi / 2) ** 2  # noqa: E731
        for t in range(T - 1):
            exact = 1 - f(mp.mpf(t + 1) / T) / f(mp.mpf(t) / T)
            assert abs(betas[t] - exact) <= 1e-14 * exact
    with pytest.raises(ValueError, match=r"s must leave .* got s=1e\+308 with T=10"):
        Schedule.cosine(T, s=1e308)


def _chen_gamma(u: mp.mpf, start: float, end: float, tau: float) -> mp.mpf:
    """Chen (2023) alpha_bar by its definition, with digits enough to subtract."""
    sig = lambda v: 1 / (1 + mp.exp(-v))  # noqa: E731
    a, b = mp.mpf(start) / tau, mp.mpf(end) / tau
    z = (u * (mp.mpf(end) - start) + start) / tau
    return (sig(b) - sig(z)) / (sig(b) - sig(a))


@pytest.mark.parametrize(
    ("T", "start", "end", "tau", "steps"),
    [
        (1000, 0.0, 3.0, 0.01, [0, 1, 300, 998]),
        (100000, -3.0, 3.0, 0.1, [0, 1, 50000, 99998]),
        (50, -0.05, 3.0, 0.002, [0, 1, 25, 48]),
    ],
)
def test_sigmoid_alphas_cumprod_without_cancellation(
    T: int, start: float, end: float, tau: float, steps: list[int]
) -> None:
    s = Schedule.sigmoid_alphas_cumprod(T, start, end, tau)
    digits = 60 + int(max(abs(start), abs(end)) / tau / 2.3)
    with mp.workdps(digits):
        for t in steps:
            gamma = _chen_gamma(mp.mpf(t + 1) / T, start, end, tau)
            log_ab = s.log_alphas_cumprod[t]
            assert abs(log_ab - mp.log(gamma)) <= 1e-13 * max(1, abs(mp.log(gamma)))
            log_1m = s.log_one_minus_alphas_cumprod[t]
            exact_1m = mp.log(1 - gamma)
            assert abs(log_1m - exact_1m) <= 1e-13 * max(1, abs(exact_1m))
    assert s.alphas_cumprod[-1] == 0.0 and s.betas[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"tau": 1e-3}, {"start": -1e6}, {"start": -1e6, "end": 1e6}],
)
def test_sigmoid_alphas_cumprod_refuses_a_flat_start_by_name(
    kwargs: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match=r"start.*tau.*rounds to 0"):
        Schedule.sigmoid_alphas_cumprod(5, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 1e-310}, r"\(end - start\) / tau must be finite"),
        ({"start": -1e308, "end": 1e308}, r"\(end - start\) / tau must be finite"),
        (
            {"tau": 1e300, "start": 0.0, "end": 1e-20},
            r"at least the smallest normal float64",
        ),
    ],
)
def test_sigmoid_alphas_cumprod_refuses_unrepresentable_slopes(
    kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Schedule.sigmoid_alphas_cumprod(5, **kwargs)


@pytest.mark.parametrize(
    ("lam", "step"),
    [
        (np.array([1e300, 2.0, 1.0]), 0),
        (np.array([800.0, 2.0, 1.0]), 0),
        (np.array([1.0, 1e-17, -1e-17]), 2),  # both log(alpha_bar) round to -log 2
    ],
)
def test_from_log_snr_blames_log_snr_for_a_step_without_noise(
    lam: np.ndarray, step: int
) -> None:
    match = rf"log_snr\(u\)\[{step}\] = .* beta_{step} rounds to 0"
    with pytest.raises(ValueError, match=match):
        Schedule.from_log_snr(lambda u: lam, 3)


def test_from_log_snr_keeps_the_largest_representable_first_step() -> None:
    s = Schedule.from_log_snr(lambda u: np.array([700.0, 2.0, 1.0]), 3)
    assert s.betas[0] == pytest.approx(math.exp(-700.0), rel=1e-13)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64, np.int8])
def test_respace_orders_unsigned_indices_without_wrapping(dtype: type) -> None:
    s = Schedule.linear(100)
    with pytest.raises(ValueError, match=r"indices must be strictly increasing"):
        s.respace(np.array([40, 20], dtype))
    r = s.respace(np.array([0, 20, 40], dtype))
    assert r.timestep_map.tolist() == [0, 20, 40]
    assert r.timestep_map.dtype == np.int64


def test_respace_reports_huge_unsigned_indices_as_given() -> None:
    with pytest.raises(ValueError, match=r"from 0 to 18446744073709551615"):
        Schedule.linear(10).respace(np.array([0, 2**64 - 1], np.uint64))


@pytest.mark.parametrize("kind", ["requires_grad", "bfloat16", "float16", "int64"])
def test_from_betas_takes_any_torch_tensor_as_float64_host_data(kind: str) -> None:
    torch = pytest.importorskip("torch")
    values = [0.125, 0.25]
    if kind == "requires_grad":
        betas = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    elif kind == "int64":
        # Integer betas in (0, 1] are 1, allowed at the last step only.
        betas = torch.tensor([1])
        values = [1.0]
    else:
        betas = torch.tensor(values, dtype=getattr(torch, kind))
    s = Schedule.from_betas(betas)
    assert s.betas.dtype == np.float64
    assert s.betas.tolist() == values  # exact in every dtype here
    from_ac = Schedule.from_alphas_cumprod(
        torch.tensor([0.5, 0.25], requires_grad=True)
    )
    assert from_ac.betas.tolist() == [0.5, 0.5]


def test_from_betas_refuses_a_bool_tensor() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="betas must hold real numbers; got dtype bool"):
        Schedule.from_betas(torch.tensor([True]))


def test_from_betas_takes_a_jax_bfloat16_array() -> None:
    jnp = pytest.importorskip("jax.numpy")
    s = Schedule.from_betas(jnp.asarray([0.125, 0.25], dtype=jnp.bfloat16))
    assert s.betas.dtype == np.float64 and s.betas.tolist() == [0.125, 0.25]


@pytest.mark.parametrize("build", ["from_betas", "from_alphas_cumprod"])
def test_a_meta_tensor_has_no_values_to_build_a_schedule_from(build: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    values = torch.tensor([0.1, 0.2], device="meta")
    name = "betas" if build == "from_betas" else "alphas_cumprod"
    with pytest.raises(ValueError, match=rf"{name} must hold values to read.*meta"):
        getattr(Schedule, build)(values)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Schedule.from_betas([1.0, 1.0, 1.0]), r"betas may be 1 only at the"),
        (lambda: Schedule.from_betas([0.5, 1.0, 0.5]), r"got betas\[1\] = 1\.0"),
        (lambda: Schedule.linear(3, 1.0, 1.0), r"betas may be 1 only at the last"),
        (
            lambda: Schedule.sigmoid_alphas_cumprod(10, end=1e300),
            r"end=1e\+300 .* reaches 0 at step 0 of T = 10, before the last",
        ),
        (
            lambda: Schedule.from_alphas_cumprod([0.0, 0.0, 0.0]),
            "alphas_cumprod must be strictly decreasing",
        ),
    ],
)
def test_alpha_bar_may_reach_zero_only_at_the_last_step(
    build: Callable[[], Schedule], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_a_beta_of_one_at_the_last_step_is_zero_terminal_snr() -> None:
    for s in (Schedule.from_betas([0.5, 1.0]), Schedule.cosine(10, max_beta=1.0)):
        assert s.alphas_cumprod[-1] == 0.0 and np.all(s.alphas_cumprod[:-1] > 0)


def test_from_betas_takes_a_sparse_torch_tensor() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    dense = torch.tensor([0.1, 0.2], dtype=torch.float64)
    got = Schedule.from_betas(dense.to_sparse()).betas
    np.testing.assert_array_equal(got, dense.numpy())


@pytest.mark.parametrize(
    "build",
    [
        lambda: Schedule.linear(10**1000),
        lambda: Schedule.cosine(10**400),
        lambda: Schedule.cosine(2**62),
        lambda: Schedule.sigmoid_betas(np.uint64(2**63)),
    ],
)
def test_a_step_count_beyond_what_numpy_can_address_is_named(
    build: Callable[[], Schedule],
) -> None:
    # These failed inside NumPy ("Maximum allowed size exceeded") or in a
    # float conversion ("int too large to convert to float").
    with pytest.raises(ValueError, match=r"^T must be at most \d+ .*; got \d") as info:
        build()
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "call",
    [
        lambda big: Schedule.linear(big),
        lambda big: Schedule.linear(10, beta_start=big),
        lambda big: diffcore.ddim_step(
            Schedule.linear(10), np.zeros(2), np.zeros(2), 5, 4, prediction_type=big
        ),
        lambda big: diffcore.annealed_langevin(
            lambda x, s: x, np.zeros(2), [1.0, 0.5], 0.1, big
        ),
        lambda big: diffcore.discretized_gaussian_log_likelihood(
            np.zeros(1), np.zeros(1), np.zeros(1), bins=big
        ),
    ],
)
@pytest.mark.parametrize("big", ["x" * 10_000, list(range(10_000))])
def test_messages_shorten_huge_arguments(call: Callable[[Any], Any], big: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        call(big)
    assert len(str(info.value)) < 400, str(info.value)[:400]


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("n", lambda big: diffcore.karras_sigmas(big, 0.1, 10.0)),
        ("L", lambda big: diffcore.geometric_sigmas(1.0, 0.1, big)),
        ("T", lambda big: diffcore.sohl_dickstein_betas(big)),
        ("T", lambda big: diffcore.LossHistorySampler(big)),
        ("history", lambda big: diffcore.LossHistorySampler(10, history=big)),
        ("batch_size", lambda big: diffcore.UniformSampler(100).sample(big)),
    ],
)
def test_counts_beyond_what_numpy_can_address_are_named(name: str, call: Any) -> None:
    # They failed inside NumPy ("Maximum allowed size exceeded", "Python int
    # too large to convert to C long").
    with pytest.raises(ValueError, match=rf"^{name} must be at most \d+ "):
        call(2**70)


@pytest.mark.parametrize(
    ("error", "match", "call"),
    [
        (
            ValueError,
            r"^dynamic_threshold must be a percentile in \(0, 100\]; got 1000",
            lambda: diffcore.ddim_step(
                Schedule.linear(10),
                np.zeros(2),
                np.zeros(2),
                5,
                4,
                dynamic_threshold=10**400,
            ),
        ),
        (
            ValueError,
            r"^sigma must be positive and finite; got 1000",
            lambda: diffcore.perturb(np.zeros(2), 10**400, np.zeros(2)),
        ),
        (
            ValueError,
            r"^sigma must be positive and finite; got 1000",
            lambda: diffcore.dsm_target(np.zeros(2), np.zeros(2), 10**400),
        ),
        (
            TypeError,
            r"^sigmas must be numbers \(a list or a 1-d array\); got 'x'",
            lambda: diffcore.annealed_langevin(
                lambda x, s: x, np.zeros(2), "x", 0.1, 2
            ),
        ),
        (
            TypeError,
            r"^sigmas must be numbers \(a list or a 1-d array\); got 'x'",
            lambda: diffcore.timesteps_for_sigmas(Schedule.linear(10), "x"),
        ),
        (
            TypeError,
            r"^sigmas must be real numbers; got \[<object",
            lambda: diffcore.timesteps_for_sigmas(Schedule.linear(10), [object()]),
        ),
    ],
)
def test_huge_ints_and_strings_are_named(
    error: type[Exception], match: str, call: Callable[[], Any]
) -> None:
    # OverflowError "int too large to convert to float" or NumPy's "could not
    # convert string to float", naming no argument.
    with pytest.raises(error, match=match):
        call()


def _rescaled_reference(betas: Any) -> tuple[list[float], list[float]]:
    """Lin et al.'s rescaling in 700-digit arithmetic: alpha_bar and 1 - it."""
    with mp.workdps(700):
        product, roots = mp.mpf(1), []
        for beta in betas:
            product *= 1 - mp.mpf(float(beta))
            roots.append(mp.sqrt(product))
        first, last = roots[0], roots[-1]
        new = [(r - last) * first / (first - last) for r in roots]
        return [float(n**2) for n in new], [float(1 - n**2) for n in new]


@pytest.mark.parametrize(
    "schedule",
    [Schedule.linear(3, 1e-18, 1e-18), Schedule.from_betas([1e-300, 1e-300])],
    ids=["betas 1e-18", "betas 1e-300"],
)
def test_rescale_zero_terminal_snr_of_betas_below_the_rounding_of_one(
    schedule: Schedule,
) -> None:
    """sqrt(alpha_bar) rounds to 1 at every step; the one-minus table does not."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rescaled = schedule.rescale_zero_terminal_snr()
    alphas_cumprod, one_minus = _rescaled_reference(schedule.betas)
    np.testing.assert_allclose(rescaled.alphas_cumprod, alphas_cumprod, rtol=1e-15)
    np.testing.assert_allclose(
        rescaled._one_minus_alphas_cumprod, one_minus, rtol=1e-15
    )


def test_rescale_zero_terminal_snr_keeps_small_roots_positive() -> None:
    """sqrt(alpha_bar) below 2**-53 used to round to 0 (1 - (1 - root))."""
    schedule = Schedule.linear(100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rescaled = schedule.rescale_zero_terminal_snr()
    assert np.isfinite(rescaled._log_alphas_cumprod[:-1]).all()
    assert rescaled.alphas_cumprod[-1] == 0.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: Schedule.from_alphas_cumprod([0.5, 1e-20, 1e-30]),
        lambda: Schedule.from_log_snr(lambda u: 10 - 200 * u, 4),
        lambda: Schedule.linear(100_000).respace([0, 50_000, 99_999]),
    ],
    ids=["from_alphas_cumprod", "from_log_snr", "respace"],
)
def test_derived_betas_may_round_to_one_while_alpha_bar_is_positive(
    build: Callable[[], Schedule],
) -> None:
    schedule = build()
    logs = schedule._log_alphas_cumprod
    assert np.isfinite(logs).all()
    # alpha_t = alpha_bar_t / alpha_bar_{t-1} from the logs, not 1 - beta_t = 0
    want = np.exp(np.diff(logs, prepend=0.0))
    np.testing.assert_allclose(schedule.alphas, want, rtol=1e-12)


def test_x_0_from_eps_where_alpha_bar_underflows_but_its_root_does_not() -> None:
    """alpha_bar_t = exp(-1011.7) is 0 in float64; 1 / sqrt(it) is finite."""
    schedule = Schedule.linear(100_000)
    t = 99_998
    assert schedule.alphas_cumprod[t] == 0.0
    x_t, eps = np.array([[2.0, -1.0]]), np.array([[1.0, 0.5]])
    got = diffcore.x_0_from_eps(schedule, x_t, t, eps)
    with mp.workdps(50):
        log_ab = mp.mpf(float(schedule._log_alphas_cumprod[t]))
        a = mp.exp(-log_ab / 2)
        b = mp.sqrt(mp.exp(-log_ab) - 1)
        want = [float(a * x - b * e) for x, e in zip(x_t[0], eps[0], strict=True)]
    np.testing.assert_allclose(got[0], want, rtol=1e-12)


def test_zero_terminal_snr_and_underflow_are_told_apart() -> None:
    from diffcore._parameterisation import why_zero

    assert why_zero(Schedule.linear(10).rescale_zero_terminal_snr(), [9]) == (
        "zero terminal SNR"
    )
    assert "underflows float64" in why_zero(Schedule.linear(100_000), [99_998])


@pytest.mark.parametrize(
    "build",
    [
        lambda: Schedule.linear(10**9),
        lambda: Schedule.cosine(schedule_module.MAX_STEPS + 1),
        lambda: Schedule.from_betas(np.full(schedule_module.MAX_STEPS + 1, 1e-4)),
    ],
    ids=["linear", "cosine", "from_betas"],
)
def test_a_schedule_too_large_for_memory_is_named_before_building(
    build: Callable[[], Schedule],
) -> None:
    """T = 10**9 was killed for memory on a 24 GB machine."""
    with pytest.raises(ValueError, match=r"^T must be at most 10000000 \(a schedule"):
        build()
