"""Edge cases of the bounds, NCSN targets and learned variances."""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import numpy as np
import pytest

import diffcore

SCHEDULE = diffcore.Schedule.linear(10)


def test_dsm_target_of_a_tiny_sigma_is_finite_and_quiet() -> None:
    x = np.zeros(3)
    noise = np.array([1.0, -2.0, 0.5])
    sigma = 1e-200  # sigma**2 underflows to 0 in float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        target = diffcore.dsm_target(x, x + sigma * noise, sigma)
    # -(x_tilde - x) / sigma^2 = -noise / sigma, which float64 holds
    np.testing.assert_allclose(target, -noise / sigma, rtol=1e-15)


def test_a_huge_learned_log_variance_gives_inf_without_a_warning() -> None:
    x_t = np.zeros((1, 2))
    output = np.concatenate([np.zeros((1, 2)), np.full((1, 2), 1000.0)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = diffcore.p_mean_variance(
            SCHEDULE, output, x_t, 3, variance_type="learned"
        )
    assert np.isinf(out.variance).all()
    np.testing.assert_array_equal(out.log_variance, 1000.0)


def test_prior_bpd_of_0d_input_is_a_0d_array() -> None:
    got = diffcore.prior_bpd(SCHEDULE, np.array(0.5))
    assert isinstance(got, np.ndarray)
    assert got.shape == ()
    want = diffcore.prior_bpd(SCHEDULE, np.array([0.5]))[0]
    assert float(got) == pytest.approx(float(want), rel=1e-15)


@pytest.mark.parametrize("bound", ["variational_bound", "sohl_dickstein_bound"])
def test_bounds_name_x_0_without_a_batch_axis(bound: str) -> None:
    def model(x_t: object, t: object) -> tuple[object, object]:
        return x_t, x_t

    with pytest.raises(ValueError, match="x_0 must have a batch axis"):
        getattr(diffcore, bound)(SCHEDULE, model, np.array(0.5), generator=0)


def test_messages_show_plain_numbers_not_numpy_reprs() -> None:
    x_0 = np.array([[-1.5, 0.3]])
    zeros = np.zeros_like(x_0)
    with pytest.raises(ValueError) as info:
        diffcore.discretized_gaussian_log_likelihood(x_0, zeros, zeros)
    assert "np.float64" not in str(info.value)
    assert "from -1.5 to 0.3" in str(info.value)


def test_half_precision_results_beyond_the_dtype_are_inf_without_a_warning() -> None:
    s = diffcore.Schedule.linear(1000)
    big = np.full(2, 65000.0, np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x_t = diffcore.q_sample(s, big, 1, big)
        step = diffcore.ddim_step(s, np.zeros(2, np.float16), x_t, 999, -1)
    assert np.isinf(x_t).all() and x_t.dtype == np.float16
    assert step.x_prev.dtype == np.float16


def test_loops_on_meta_tensors_take_an_int_seed() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.zeros(2, 3, device="meta")
    out = diffcore.annealed_langevin(lambda x, s: 0 * x, x, [1.0], 1.0, 1, generator=0)
    assert out.is_meta and out.shape == (2, 3)


def test_messages_show_numpy_scalars_as_plain_numbers() -> None:
    s, x = diffcore.Schedule.linear(10), np.zeros(2)
    with pytest.raises(TypeError, match=r"got the float 3\.0$"):
        diffcore.q_sample(s, x, np.float64(3.0), x)
    with pytest.raises(ValueError, match=r"got -0\.5$"):
        diffcore.ddim_step(s, x, x, 3, 1, eta=np.float64(-0.5))
    with pytest.raises(ValueError, match=r"got \(1\.0, -1\.0\)$"):
        diffcore.predict_x_0_eps(
            s, x, x, 3, clip_denoised=(np.float64(1.0), np.float64(-1.0))
        )


def test_a_huge_timestep_is_shown_shortened() -> None:
    x = np.zeros(2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 10\); got 1000") as info:
        diffcore.q_sample(diffcore.Schedule.linear(10), x, 10**1000, x)
    assert len(str(info.value)) < 120


_SPARSE_CASES = {
    "x_0": lambda s, d, sp: diffcore.q_sample(s, sp(d), 3, d),
    "noise": lambda s, d, sp: diffcore.q_sample(s, d, 3, sp(d)),
    "t": lambda s, d, sp: diffcore.q_sample(s, d, sp(torch_of(d).tensor([1, 2])), d),
    "mean_1": lambda s, d, sp: diffcore.normal_kl(sp(d), d, d, d),
    "sigma": lambda s, d, sp: diffcore.perturb(
        d, sp(torch_of(d).tensor([1.0, 2.0])), d
    ),
    "sigmas": lambda s, d, sp: diffcore.timesteps_for_sigmas(
        s, sp(torch_of(d).tensor([1.0, 2.0]))
    ),
    "indices": lambda s, d, sp: s.respace(sp(torch_of(d).tensor([0, 5]))),
    "t_prev": lambda s, d, sp: diffcore.ddim_step(
        s, d, d, torch_of(d).tensor([5, 5]), sp(torch_of(d).tensor([1, 2]))
    ),
    "alphas_cumprod": lambda s, d, sp: diffcore.sigmas_from_alphas_cumprod(
        sp(torch_of(d).tensor([0.5, 0.2]))
    ),
}


def torch_of(x: Any) -> Any:
    return sys.modules[type(x).__module__.split(".")[0]]


@pytest.mark.parametrize("name", list(_SPARSE_CASES))
@pytest.mark.parametrize("layout", ["sparse_coo", "sparse_csr"])
def test_sparse_tensors_are_refused_by_name(name: str, layout: str) -> None:
    # They failed deep inside torch ("add(sparse, dense) is not supported").
    torch = pytest.importorskip("torch", reason="torch is not installed")
    s = diffcore.Schedule.linear(10)
    dense = torch.ones(2, 3)

    def sparse(x: Any) -> Any:
        if layout == "sparse_csr" and x.ndim == 2:
            return x.to_sparse_csr()
        return x.to_sparse()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        with pytest.raises(TypeError, match=rf"^{name} must be a dense \(strided\)"):
            _SPARSE_CASES[name](s, dense, sparse)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("x_0", lambda s, m, x: diffcore.q_sample(s, m, 5, x)),
        ("noise", lambda s, m, x: diffcore.q_sample(s, x, 5, m)),
        ("x_0", lambda s, m, x: diffcore.q_sample(s, m, 5, m)),
        ("t", lambda s, m, x: diffcore.q_sample(s, x, np.ma.masked_array([1, 2]), x)),
        ("out", lambda s, m, x: diffcore.q_sample(s, x, 5, x, out=m)),
    ],
)
def test_masked_arrays_are_refused_by_name(name: str, call: Any) -> None:
    # Their masks were dropped in silence (and large ones failed inside Numba).
    s = diffcore.Schedule.linear(10)
    x = np.ones((2, 3), dtype=np.float32)
    masked = np.ma.masked_array(x.copy(), mask=[[True, False, False]] * 2)
    with pytest.raises(TypeError, match=rf"^{name} must not be a NumPy masked array"):
        call(s, masked, x)


def test_memmaps_mix_with_plain_numpy_arrays(tmp_path: Any) -> None:
    # They were refused as coming from two libraries (their types differ).
    s = diffcore.Schedule.linear(10)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(
        tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(2, 3)
    )

    expected = diffcore.q_sample(s, x, 5, x)
    np.testing.assert_array_equal(diffcore.q_sample(s, mapped, 5, x), expected)
    np.testing.assert_array_equal(diffcore.q_sample(s, x, 5, mapped), expected)
    assert diffcore.q_sample(s, x, 5, x, out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("t_prev", [None, "3", 1j, object()])
def test_ddim_step_names_a_t_prev_of_the_wrong_type(t_prev: Any) -> None:
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="t_prev must be an integer timestep, -1"):
        diffcore.ddim_step(SCHEDULE, x, x, 5, t_prev)


@pytest.mark.parametrize(
    ("t_prev", "error", "match"),
    [
        (2**70, ValueError, r"t_prev must lie in \[-1, 10\).*1180591620717411303424"),
        ([], ValueError, r"t_prev must be a scalar or have shape \(B,\).*\(0,\)"),
    ],
)
def test_ddim_step_names_a_huge_or_empty_t_prev(
    t_prev: Any, error: type[Exception], match: str
) -> None:
    x = np.ones((2, 3))
    with pytest.raises(error, match=match):
        diffcore.ddim_step(SCHEDULE, x, x, 5, t_prev)


_META_CALLS = {
    "q_sample t": lambda m, x: diffcore.q_sample(SCHEDULE, x, m, x),
    "q_transition s": lambda m, x: diffcore.q_transition_mean_variance(
        SCHEDULE, x, m, 9
    ),
    "ddim_step t_prev": lambda m, x: diffcore.ddim_step(SCHEDULE, x, x, 9, m),
    "sample timesteps": lambda m, x: diffcore.sample(
        SCHEDULE, lambda a, t: 0 * a, x, m[:2]
    ),
    "respace indices": lambda m, x: SCHEDULE.respace(m[:2]),
    "sigmas": lambda m, x: diffcore.timesteps_for_sigmas(SCHEDULE, m * 0.1),
}


@pytest.mark.parametrize("call", list(_META_CALLS))
def test_a_meta_tensor_beside_numpy_samples_is_named(call: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    meta = torch.tensor([5, 3], device="meta")
    name = call.split()[-1]
    with pytest.raises(ValueError, match=rf"^{name} must hold values to read.*meta"):
        _META_CALLS[call](meta, np.ones((2, 3), np.float32))


def test_messages_keep_the_device_of_a_short_tensor() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from diffcore._arrays import shown

    assert "meta" in shown(torch.tensor([5.0, 3.0], device="meta"))
    long = shown(torch.arange(1000.0))
    assert long == "a Tensor of shape (1000,) and dtype torch.float32 on cpu"
    assert shown(np.arange(3)) == "array([0, 1, 2])"


_BIG = 3e38  # float32 products and sums of it overflow
_LOUD_CALLS = {
    "q_sample": lambda xp, b: diffcore.q_sample(SCHEDULE, b, 5, b),
    "q_sample, 2**20 elements": lambda xp, b: diffcore.q_sample(
        SCHEDULE, _tile(xp, b), 5, _tile(xp, b)
    ),
    "x_0_from_eps": lambda xp, b: diffcore.x_0_from_eps(SCHEDULE, b, 9, -b),
    "eps_from_x_0": lambda xp, b: diffcore.eps_from_x_0(SCHEDULE, b, 0, -b),
    "score_from_eps": lambda xp, b: diffcore.score_from_eps(SCHEDULE, b, 0, -b),
    "ddpm_step": lambda xp, b: diffcore.ddpm_step(SCHEDULE, b, -b, 9, noise=b).x_prev,
    "ddim_step": lambda xp, b: diffcore.ddim_step(SCHEDULE, b, -b, 9, 0).x_prev,
    "learned_range": lambda xp, b: (
        diffcore.p_mean_variance(
            SCHEDULE, xp.concat([b, b], axis=1), b, 5, variance_type="learned_range"
        ).log_variance
    ),
    "log_standard_normal_cdf": lambda xp, b: diffcore.log_standard_normal_cdf(
        xp.full_like(b, -math.inf)
    ),
    "gaussian_log_likelihood": lambda xp, b: diffcore.gaussian_log_likelihood(
        b, -b, -b
    ),
}


def _tile(xp: Any, b: Any) -> Any:
    """2**20 elements of b's first value: the threaded and Numba paths."""
    return xp.full((16, 2**16), float(b[0, 0]), dtype=b.dtype)


@pytest.mark.parametrize("call", list(_LOUD_CALLS))
def test_overflow_gives_inf_without_a_warning_as_in_torch(call: str) -> None:
    big = np.full((2, 3), _BIG, np.float32)
    big[1] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = np.asarray(_LOUD_CALLS[call](np, big))
    torch = pytest.importorskip("torch", reason="torch is not installed")
    import array_api_compat.torch as tx

    want = _LOUD_CALLS[call](tx, torch.from_numpy(big)).numpy()
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    assert not np.isfinite(got).all()


def test_normal_kl_promotes_dtypes_as_documented() -> None:
    one32, zero64 = np.ones(2, np.float32), np.zeros(2)
    kl = diffcore.normal_kl(one32, zero64, zero64, zero64)
    assert kl.dtype == np.float64
    np.testing.assert_array_equal(kl, 0.5)
