"""Edge cases of the core: wide floats, empty and 0-d arrays, odd inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule, _arrays

from ._helpers import to_numpy

SCHEDULE = Schedule.linear(1000)


# -- long double: tables gathered in float64, whatever the timesteps ---------


@pytest.mark.skipif(
    np.finfo(np.longdouble).bits <= 64, reason="long double is float64 here"
)
@pytest.mark.parametrize("t", [500, np.array([500, 500])], ids=["int", "array"])
def test_long_double_samples_gather_float64_tables(t: Any) -> None:
    x_0 = np.ones((2, 1), dtype=np.longdouble)
    x_t = diffcore.q_sample(SCHEDULE, x_0, t, np.zeros_like(x_0))
    assert x_t.dtype == np.longdouble
    want = np.longdouble(SCHEDULE.sqrt_alphas_cumprod[500])
    assert np.all(x_t == want)


# -- dynamic thresholding on empty batches and empty samples -----------------


@pytest.mark.parametrize("shape", [(0, 3), (0,), (0, 0)])
def test_dynamic_threshold_of_an_empty_batch_is_empty(xp: Any, shape: Any) -> None:
    x = xp.ones(shape, dtype=xp.float32)
    t = xp.zeros((0,), dtype=xp.int64)
    out = diffcore.p_mean_variance(SCHEDULE, x, x, t, dynamic_threshold=99.5)
    assert tuple(out.mean.shape) == shape and out.mean.dtype == xp.float32
    assert tuple(out.x_0_hat.shape) == shape


def test_dynamic_threshold_refuses_samples_without_entries(xp: Any) -> None:
    x = xp.ones((2, 0), dtype=xp.float32)
    t = xp.zeros((2,), dtype=xp.int64)
    with pytest.raises(ValueError, match=r"x_t must have at least one entry per"):
        diffcore.p_mean_variance(SCHEDULE, x, x, t, dynamic_threshold=99.5)


# -- 0-d NumPy arrays give 0-d arrays, never NumPy scalars -------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"clip_denoised": (-1, 1)}, {"dynamic_threshold": 99.0}],
    ids=["plain", "clip", "threshold"],
)
def test_zero_d_numpy_input_gives_zero_d_arrays(options: dict[str, Any]) -> None:
    model_output, x_t = np.array(3.0), np.array(5.0)
    results = [
        *diffcore.predict_x_0_eps(SCHEDULE, model_output, x_t, 5, **options),
        *diffcore.ddpm_step(SCHEDULE, model_output, x_t, 5, np.array(0.1), **options),
        *diffcore.ddim_step(SCHEDULE, model_output, x_t, 5, 3, **options),
        *diffcore.p_mean_variance(SCHEDULE, model_output, x_t, 5, **options),
    ]
    for result in results:
        assert type(result) is np.ndarray and result.shape == ()


@pytest.mark.parametrize(
    "name",
    ["eps_from_x_0", "score_from_eps", "eps_from_score", "x_0_from_eps"],
)
def test_zero_d_conversions_give_zero_d_arrays(name: str) -> None:
    result = getattr(diffcore, name)(SCHEDULE, np.array(3.0), 5, np.array(0.5))
    assert type(result) is np.ndarray and result.shape == ()


def test_zero_d_q_mean_variance_gives_zero_d_arrays() -> None:
    for result in diffcore.q_mean_variance(SCHEDULE, np.array(3.0), 5):
        assert type(result) is np.ndarray and result.shape == ()


def test_zero_d_clip_matches_one_d() -> None:
    zero_d = diffcore.predict_x_0_eps(
        SCHEDULE, np.array(3.0), np.array(5.0), 5, clip_denoised=(-1, 1)
    )
    one_d = diffcore.predict_x_0_eps(
        SCHEDULE, np.array([3.0]), np.array([5.0]), 5, clip_denoised=(-1, 1)
    )
    for a, b in zip(zero_d, one_d, strict=True):
        assert a == b[0]


# -- dtypes and devices torch cannot compute with -------------------------------


def test_float8_samples_are_refused() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("this torch has no float8")
    x = torch.ones(2, 3).to(torch.float8_e4m3fn)
    match = r"x_0 must have a real floating dtype of 16 bits or more .*float8_e4m3fn"
    with pytest.raises(TypeError, match=match):
        diffcore.q_sample(SCHEDULE, x, 5, x)


def test_timesteps_on_the_meta_device_are_refused_for_cpu_samples() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.ones(2, 3)
    t = torch.tensor([1, 2], device="meta")
    with pytest.raises(ValueError, match=r"t must be on the samples' device, cpu"):
        diffcore.q_sample(SCHEDULE, x, t, x)


# -- small items ----------------------------------------------------------------


def test_an_empty_list_of_timesteps_is_an_empty_int_array(xp: Any) -> None:
    empty = xp.ones((0, 3), dtype=xp.float32)
    x_t = diffcore.q_sample(SCHEDULE, empty, [], empty)
    assert tuple(x_t.shape) == (0, 3)

    x = xp.ones((2, 3), dtype=xp.float32)
    with pytest.raises(ValueError, match=r"B = x.shape\[0\] = 2; got shape \(0,\)"):
        diffcore.q_sample(SCHEDULE, x, [], x)


@pytest.mark.parametrize(
    "options",
    [
        {"clip_denoised": (np.float32(-1), np.float32(1))},
        {"clip_denoised": (np.int64(-1), 1.0)},
        {"dynamic_threshold": np.float32(99.5)},
    ],
    ids=["clip-float32", "clip-int64", "threshold-float32"],
)
def test_numpy_scalars_are_accepted_as_options(xp: Any, options: Any) -> None:
    x = xp.asarray([[4.0, -0.5, 0.25]], dtype=xp.float32)
    got = diffcore.predict_x_0_eps(SCHEDULE, x, x, 5, **options)
    ((key, value),) = options.items()
    plain = {key: tuple(map(float, value)) if key == "clip_denoised" else float(value)}
    want = diffcore.predict_x_0_eps(SCHEDULE, x, x, 5, **plain)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"clip_denoised": (False, True)}, "clip_denoised must be None or a pair"),
        ({"clip_denoised": True}, r"improved-diffusion's True is \(-1\.0, 1\.0\)"),
        ({"clip_denoised": np.False_}, "False is None"),
        ({"dynamic_threshold": np.True_}, "dynamic_threshold must be None or a"),
        ({"dynamic_threshold": True}, "dynamic_threshold must be None or a"),
    ],
)
def test_bools_are_refused_as_options(options: Any, match: str) -> None:
    x = np.ones((1, 3))
    with pytest.raises(TypeError, match=match):
        diffcore.predict_x_0_eps(SCHEDULE, x, x, 5, **options)


@pytest.mark.parametrize(
    ("call", "values", "match"),
    [
        (
            diffcore.sigmas_from_alphas_cumprod,
            [0.5, 1.5, np.nan],
            r"got alphas_cumprod\[1\] = 1.5$",
        ),
        (
            diffcore.sigmas_from_alphas_cumprod,
            [[0.5, 0.2], [-1.0, np.nan]],
            r"got alphas_cumprod\[1, 0\] = -1.0$",
        ),
        (diffcore.sigmas_from_alphas_cumprod, np.nan, r"got alphas_cumprod = nan$"),
        (
            diffcore.alphas_cumprod_from_sigmas,
            [0.5, np.nan, -1.0],
            r"got sigmas\[1\] = nan$",
        ),
    ],
)
def test_range_errors_name_the_first_bad_entry(
    xp: Any, call: Any, values: Any, match: str
) -> None:
    if "dask" in xp.__name__:
        pytest.skip("Dask arrays are lazy: their values are not read by this check")
    array = xp.asarray(np.asarray(values), dtype=xp.float64)
    with pytest.raises(ValueError, match=match):
        call(array)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "bfloat16", "int4"])
def test_numpy_arrays_of_ml_dtypes_are_refused_by_name(name: str) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    x = np.zeros((2, 3), dtype=getattr(ml_dtypes, name))
    with pytest.raises(TypeError, match=f"x_0 must have a real floating dtype.*{name}"):
        diffcore.q_sample(diffcore.Schedule.linear(10), x, np.array([1, 2]), x)
    # Refused dtypes stay out of the dtype cache: torch.compile traces lookups
    # in it and cannot compare ml_dtypes keys (fullgraph q_sample then failed
    # in any process that had been handed such an array).
    cached = [key[1] for key in _arrays._DTYPES if key[0] == "numpy"]
    assert x.dtype not in cached


_LIST_CASES = {
    "t": lambda s: diffcore.q_sample(s, np.zeros((2, 3)), [1, True], np.zeros((2, 3))),
    "timesteps": lambda s: diffcore.sample(
        s, lambda x, t: 0 * x, np.zeros((2, 3)), [5, True, False], method="ddim"
    ),
    "sigmas": lambda s: diffcore.timesteps_for_sigmas(s, [2.0, True]),
    "betas": lambda s: Schedule.from_betas([0.1, True]),
    "indices": lambda s: s.respace([0, True, 5]),
    "sigma": lambda s: diffcore.perturb(
        np.zeros((2, 3)), [1.5, True], np.zeros((2, 3))
    ),
    "t_prev": lambda s: diffcore.ddim_step(
        s, np.zeros((2, 3)), np.zeros((2, 3)), [3, 3], [True, 0]
    ),
    "t ": lambda s: diffcore.q_sample(
        s, np.zeros((2, 3)), [np.array(True), 2], np.zeros((2, 3))
    ),
}


@pytest.mark.parametrize("name", list(_LIST_CASES))
def test_a_bool_inside_a_list_is_refused_by_name(name: str) -> None:
    # NumPy reads [2, True] as [2, 1]; a bool alone is refused, so inside too
    with pytest.raises(TypeError, match=f"{name.strip()} must hold numbers, not bools"):
        _LIST_CASES[name](Schedule.linear(100))
