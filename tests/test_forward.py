"""The forward process on every array library: values, dtypes, timesteps, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from ._helpers import dtypes, to_numpy, tolerance

SCHEDULE = Schedule.linear(1000)


def make(xp: Any, values: np.ndarray, dtype: Any = None) -> Any:
    return xp.asarray(values, dtype=dtype if dtype is not None else xp.float64)


def reference_q_sample(x_0: np.ndarray, t: np.ndarray, noise: np.ndarray) -> np.ndarray:
    a = SCHEDULE.sqrt_alphas_cumprod[t].reshape(-1, *([1] * (x_0.ndim - 1)))
    b = SCHEDULE.sqrt_one_minus_alphas_cumprod[t].reshape(a.shape)
    return a * x_0 + b * noise


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
def test_q_sample_matches_float64_reference(xp: Any, dtype_name: str) -> None:
    if not hasattr(xp, dtype_name):
        pytest.skip(f"{xp.__name__} has no {dtype_name}")
    dtype = getattr(xp, dtype_name)
    rng = np.random.default_rng(0)
    x_0 = rng.uniform(-1, 1, (4, 3, 5))
    noise = rng.standard_normal((4, 3, 5))
    t = np.array([0, 1, 500, 999])
    x_xp, n_xp = make(xp, x_0, dtype), make(xp, noise, dtype)
    x_t = diffcore.q_sample(SCHEDULE, x_xp, xp.asarray(t), n_xp)
    assert x_t.dtype == dtype and tuple(x_t.shape) == (4, 3, 5)
    assert type(x_t) is type(x_xp)
    # Reference on the inputs as rounded to dtype, so only the computation is judged.
    expected = reference_q_sample(
        to_numpy(x_xp).astype(np.float64), t, to_numpy(n_xp).astype(np.float64)
    )
    np.testing.assert_allclose(
        to_numpy(x_t), expected, rtol=tolerance(dtype), atol=tolerance(dtype)
    )


def test_c02_float16_noise_coefficient_is_not_lost() -> None:
    for t, expected in [(0, 0.01000213623046875), (1, None)]:
        x_t = diffcore.q_sample(
            SCHEDULE, np.zeros(4, np.float16), t, np.ones(4, np.float16)
        )
        assert x_t.dtype == np.float16 and (x_t > 0).all()
        if expected is not None:
            assert float(x_t[0]) == expected


def test_c02_bfloat16_noise_coefficient_is_not_lost() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    sd = Schedule.scaled_linear(1000)
    for t, expected in [(0, 0.0291748046875), (1, 0.041259765625)]:
        x = torch.zeros(3, dtype=torch.bfloat16)
        x_t = diffcore.q_sample(sd, x, torch.tensor(t), torch.ones_like(x))
        assert x_t.dtype == torch.bfloat16
        assert float(x_t[0]) == expected
    lin = diffcore.q_sample(
        SCHEDULE,
        torch.zeros(10, 2, dtype=torch.bfloat16),
        torch.arange(10),
        torch.ones(10, 2, dtype=torch.bfloat16),
    )
    assert (lin > 0).all()


def test_c23_timestep_containers_give_identical_results() -> None:
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    noise = np.ones_like(x)
    variants: list[Any] = [
        [7, 7, 7],
        np.array([7, 7, 7]),
        np.array([7, 7, 7], np.int32),
        np.int64(7),
        np.array(7),
        7,
    ]
    torch = None
    try:
        import torch
    except ImportError:  # pragma: no cover
        pass
    if torch is not None:
        variants += [torch.tensor([7, 7, 7]), torch.tensor(7)]
    results = [diffcore.q_sample(SCHEDULE, x, t, noise) for t in variants]
    for r in results[1:]:
        assert r.dtype == np.float32 and isinstance(r, np.ndarray)
        np.testing.assert_array_equal(r, results[0])


def test_c23_numpy_timesteps_with_torch_samples() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.ones(3, 2)
    out = [
        diffcore.q_sample(SCHEDULE, x, t, x)
        for t in ([5, 6, 7], np.array([5, 6, 7]), torch.tensor([5, 6, 7]))
    ]
    for r in out:
        assert isinstance(r, torch.Tensor) and r.device == x.device
        assert torch.equal(r, out[0])


@pytest.mark.parametrize("shape", [(2, 3, 2), (2, 16, 4, 8, 8), (2, 4)])
def test_c24_per_sample_coefficients_broadcast_over_leading_axis(
    xp: Any, shape: tuple[int, ...]
) -> None:
    ones = xp.ones(shape, dtype=xp.float64)
    x_t = to_numpy(diffcore.q_sample(SCHEDULE, ones, xp.asarray([10, 900]), ones))
    np.testing.assert_allclose(x_t[0], 1.0457367262253217008, rtol=1e-14)
    np.testing.assert_allclose(x_t[1], 1.016303984144524022, rtol=1e-14)
    scalar = to_numpy(diffcore.q_sample(SCHEDULE, ones, 10, ones))
    np.testing.assert_allclose(scalar, 1.0457367262253217008, rtol=1e-14)
    with pytest.raises(
        ValueError, match=r"shape \(B,\) with B = x.shape\[0\] = 2; got shape \(3,\)"
    ):
        diffcore.q_sample(SCHEDULE, ones, xp.asarray([1, 2, 3]), ones)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        diffcore.q_sample(SCHEDULE, ones, xp.asarray([[1, 2], [3, 4]]), ones)


def test_mean_variance_functions_agree_with_their_samplers(xp: Any) -> None:
    rng = np.random.default_rng(2)
    x = make(xp, rng.standard_normal((3, 4)))
    zero = xp.zeros((3, 4), dtype=xp.float64)
    t = xp.asarray([0, 400, 999])
    for mean_var, sample in [
        (diffcore.q_mean_variance, diffcore.q_sample),
        (diffcore.q_step_mean_variance, diffcore.q_step_sample),
    ]:
        mean, var, log_var = mean_var(SCHEDULE, x, t)
        np.testing.assert_allclose(
            to_numpy(sample(SCHEDULE, x, t, zero)), to_numpy(mean), rtol=1e-15
        )
        np.testing.assert_allclose(np.exp(to_numpy(log_var)), to_numpy(var), rtol=1e-14)
        unit = xp.ones((3, 4), dtype=xp.float64)
        shift = to_numpy(sample(SCHEDULE, x, t, unit)) - to_numpy(mean)
        np.testing.assert_allclose(shift**2, to_numpy(var), rtol=1e-12)


def test_transition_composes_with_the_closed_form(xp: Any) -> None:
    x = make(xp, np.linspace(-1, 1, 6).reshape(2, 3))
    s, t = xp.asarray([100, 0]), xp.asarray([700, 999])
    mean_s, var_s, _ = diffcore.q_mean_variance(SCHEDULE, x, s)
    mean_ts, var_ts, log_ts = diffcore.q_transition_mean_variance(
        SCHEDULE, mean_s, s, t
    )
    mean_t, var_t, _ = diffcore.q_mean_variance(SCHEDULE, x, t)
    np.testing.assert_allclose(to_numpy(mean_ts), to_numpy(mean_t), rtol=1e-13)
    root = to_numpy(mean_ts) / to_numpy(mean_s)
    np.testing.assert_allclose(
        root**2 * to_numpy(var_s) + to_numpy(var_ts), to_numpy(var_t), rtol=1e-13
    )
    np.testing.assert_allclose(np.exp(to_numpy(log_ts)), to_numpy(var_ts), rtol=1e-13)
    zero = xp.zeros((2, 3), dtype=xp.float64)
    sample = diffcore.q_transition_sample(SCHEDULE, mean_s, s, t, zero)
    np.testing.assert_allclose(to_numpy(sample), to_numpy(mean_ts), rtol=1e-15)


def test_results_keep_namespace_and_dtype(xp: Any) -> None:
    for dtype in dtypes(xp):
        x = xp.ones((2, 2), dtype=dtype)
        for out in (
            diffcore.q_sample(SCHEDULE, x, 3, x),
            *diffcore.q_mean_variance(SCHEDULE, x, xp.asarray([1, 2])),
            diffcore.q_step_sample(SCHEDULE, x, 3, x),
            *diffcore.q_transition_mean_variance(SCHEDULE, x, 1, 3),
        ):
            assert out.dtype == dtype and tuple(out.shape) == (2, 2)
            assert type(out) is type(x)


def test_unreadable_timesteps_poison_with_nan_instead_of_wrapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from diffcore import _backends

    x = torch.ones(3, 2)
    # Pretend these CPU tensors live on an accelerator, where reading t would sync.
    monkeypatch.setattr(_backends.backend_for(x), "host", lambda t: None)
    x_t = diffcore.q_sample(SCHEDULE, x, torch.tensor([-1, 5, 1000]), x)
    assert torch.isnan(x_t[0]).all() and torch.isnan(x_t[2]).all()
    assert torch.isfinite(x_t[1]).all()


def test_meta_tensors_pass_through_without_reading_values() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.empty(4, 3, device="meta")
    t = torch.empty(4, dtype=torch.int64, device="meta")
    x_t = diffcore.q_sample(SCHEDULE, x, t, x)
    assert x_t.device.type == "meta" and x_t.shape == (4, 3)


@pytest.mark.parametrize(
    ("t", "error", "match"),
    [
        (1000, ValueError, r"t must lie in \[0, 1000\); got 1000$"),
        (-1, ValueError, r"got -1 \(negative timesteps never wrap"),
        ([-1, 3], ValueError, "got values from -1 to 3"),
        (2.0, TypeError, "t must be an integer timestep; got the float 2.0"),
        (True, TypeError, "bool"),
        (np.array([1.0, 2.0]), TypeError, "t must have an integer dtype; got float64"),
        (np.array([750, 999], np.float16), TypeError, "float16"),
        ("3", TypeError, "t must be an int or an integer array; got str"),
    ],
)
def test_bad_timesteps(t: Any, error: type, match: str) -> None:
    x = np.ones((2, 3))
    with pytest.raises(error, match=match):
        diffcore.q_sample(SCHEDULE, x, t, x)


def test_bad_timesteps_in_the_samples_library(xp: Any) -> None:
    x = xp.ones((2, 3), dtype=xp.float64)
    with pytest.raises(TypeError, match="t must have an integer dtype"):
        diffcore.q_sample(SCHEDULE, x, xp.asarray([1.0, 2.0]), x)
    if xp.__name__.split(".")[-1] in ("numpy", "array_api_strict", "torch"):
        with pytest.raises(ValueError, match="negative timesteps never wrap"):
            diffcore.q_sample(SCHEDULE, x, xp.asarray([-1, 2]), x)
        with pytest.raises(ValueError, match=r"\[0, 1000\)"):
            diffcore.q_sample(SCHEDULE, x, xp.asarray([1000, 2]), x)


def test_bad_samples(xp: Any) -> None:
    x = xp.ones((2, 3), dtype=xp.float64)
    with pytest.raises(
        ValueError, match=r"noise must have the shape of x_0, \(2, 3\); got \(3, 2\)"
    ):
        diffcore.q_sample(SCHEDULE, x, 1, xp.ones((3, 2), dtype=xp.float64))
    with pytest.raises(TypeError, match="noise must have the dtype of x_0"):
        diffcore.q_sample(SCHEDULE, x, 1, xp.ones((2, 3), dtype=xp.float32))
    with pytest.raises(TypeError, match="x_0 must have a real floating dtype; got"):
        diffcore.q_sample(
            SCHEDULE,
            xp.ones((2, 3), dtype=xp.int64),
            1,
            xp.ones((2, 3), dtype=xp.int64),
        )
    with pytest.raises(
        TypeError, match=r"schedule must be a diffcore\.Schedule; got list"
    ):
        diffcore.q_sample([0.1], x, 1, x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x_0 must be an array"):
        diffcore.q_sample(SCHEDULE, [1.0, 2.0], 1, x)


def test_mixed_libraries_name_both_sides() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    with pytest.raises(
        TypeError, match=r"one library; got x_0 is torch.Tensor, noise is numpy.ndarray"
    ):
        diffcore.q_sample(SCHEDULE, torch.ones(2), 1, np.ones(2))


def test_transition_needs_s_before_t() -> None:
    x = np.ones(2)
    with pytest.raises(ValueError, match="s must be smaller than t"):
        diffcore.q_transition_mean_variance(SCHEDULE, x, 5, 5)
    with pytest.raises(ValueError, match=r"s must lie in \[0, 1000\)"):
        diffcore.q_transition_sample(SCHEDULE, x, -1, 5, x)


def test_c20_timesteps_never_pass_through_a_float() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    # The hazard: bfloat16 cannot hold 999 or 750.
    assert float(torch.tensor(999, dtype=torch.bfloat16)) == 1000.0
    assert float(torch.tensor(750, dtype=torch.bfloat16)) == 752.0
    x = torch.ones(2, 3, dtype=torch.bfloat16)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        with pytest.raises(TypeError, match="t must have an integer dtype"):
            diffcore.q_sample(SCHEDULE, x, torch.tensor([750, 999], dtype=dtype), x)
    for t in (torch.tensor([750, 999], dtype=torch.int32), [750, 999]):
        out = diffcore.q_sample(SCHEDULE, x, t, x)
        expected = SCHEDULE.sqrt_alphas_cumprod[[750, 999]]
        expected += SCHEDULE.sqrt_one_minus_alphas_cumprod[[750, 999]]
        np.testing.assert_allclose(to_numpy(out)[:, 0], expected, rtol=1e-2)


def test_range_messages_are_exact() -> None:
    x = np.ones(2)
    with pytest.raises(ValueError) as scalar:
        diffcore.q_sample(SCHEDULE, x, 1000, x)
    assert str(scalar.value) == "t must lie in [0, 1000); got 1000"
    with pytest.raises(ValueError) as mixed:
        diffcore.q_sample(SCHEDULE, x, [-2, 5], x)
    assert str(mixed.value) == (
        "t must lie in [0, 1000); got values from -2 to 5 "
        "(negative timesteps never wrap around)"
    )


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (
            -1,
            ValueError,
            r"generator as an int seed must lie in \[0, 2\*\*63\); got -1",
        ),
        (2**70, ValueError, "got 1180591620717411303424"),
        (
            True,
            TypeError,
            "generator must be a seed, a generator or None; got the bool",
        ),
    ],
)
def test_bad_int_seeds(xp: Any, seed: Any, error: type, match: str) -> None:
    x = xp.ones((2, 3), dtype=xp.float32)
    with pytest.raises(error, match=match):
        diffcore.q_sample(SCHEDULE, x, 1, generator=seed)
