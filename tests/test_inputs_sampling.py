"""Bad input and random streams of the samplers.

Seeds and JAX keys give fresh noise at every step; the options of
``sample``, ``dpmpp_2m_step``'s ``previous``, the noise levels of
``karras_sigmas``, ``timesteps_for_sigmas`` and the NCSN functions, and what
a score model returns are checked up front, with errors naming the argument.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from ._helpers import to_numpy

LINEAR = Schedule.linear(1000)
SHORT = Schedule.linear(4, beta_start=0.1, beta_end=0.5)


def _jax() -> Any:
    jax = pytest.importorskip("jax", reason="jax is not installed")
    jax.config.update("jax_enable_x64", True)
    return jax


def _ddpm_noises(x_T: Any, generator: Any) -> list[np.ndarray]:
    """The z of each DDPM step, recovered from the states the model sees."""
    states: list[np.ndarray] = []

    def model(x: Any, t: Any) -> Any:
        states.append(to_numpy(x))
        return 0 * x

    out = diffcore.sample(
        SHORT, model, x_T, generator=generator, prediction_type="sample"
    )
    states.append(to_numpy(out))
    noises = []
    for k, t in enumerate(range(len(SHORT) - 1, 0, -1)):
        mean = SHORT.posterior_mean_coef_xt[t] * states[k]
        noises.append((states[k + 1] - mean) / math.sqrt(SHORT.posterior_variance[t]))
    return noises


def _langevin_noises(x: Any, generator: Any) -> list[np.ndarray]:
    """The z of each Langevin step, with a zero score: the increments."""
    states: list[np.ndarray] = []

    def score(x: Any, sigma: float) -> Any:
        states.append(to_numpy(x))
        return 0 * x

    out = diffcore.annealed_langevin(score, x, [1.0, 0.5], 0.1, 2, generator=generator)
    states.append(to_numpy(out))
    return [b - a for a, b in itertools.pairwise(states)]


def _loop_noises(
    bound: Any, x_0: Any, generator: Any, first: int = 0
) -> list[np.ndarray]:
    """The eps of each step of a bound's loop (from step ``first``), from its x_t."""
    seen: list[np.ndarray] = []

    def model(x_t: Any, t: Any) -> Any:
        seen.append(to_numpy(x_t))
        return 0 * x_t, 0 * x_t

    bound(SHORT, model, x_0, generator=generator)
    x0 = to_numpy(x_0)
    return [
        (x_t - SHORT.sqrt_alphas_cumprod[t] * x0)
        / SHORT.sqrt_one_minus_alphas_cumprod[t]
        for t, x_t in enumerate(seen, start=first)
    ]


def _bound_noises(x_0: Any, generator: Any) -> list[np.ndarray]:
    """The eps of each step of variational_bound."""
    return _loop_noises(diffcore.variational_bound, x_0, generator)


def _all_distinct(noises: list[np.ndarray]) -> bool:
    return all(
        not np.allclose(a, b) for i, a in enumerate(noises) for b in noises[i + 1 :]
    )


# -- 1, 2: one stream of fresh noise from a seed or a key -------------------------


@pytest.mark.parametrize("seed", [0, np.int64(0), np.uint32(0)])
def test_an_integer_seed_gives_fresh_noise_at_every_step(seed: Any) -> None:
    x = np.zeros((2, 3))
    assert _all_distinct(_langevin_noises(x, seed))
    assert _all_distinct(_bound_noises(np.full((2, 3), -1.0), seed))
    assert _all_distinct(_ddpm_noises(x, seed))


def test_numpy_and_python_integer_seeds_give_the_same_streams() -> None:
    x = np.zeros((2, 3))
    for draws in (_langevin_noises, _ddpm_noises):
        np.testing.assert_array_equal(draws(x, 7), draws(x, np.int64(7)))


@pytest.mark.parametrize("draws", [_ddpm_noises, _langevin_noises, _bound_noises])
def test_a_jax_key_is_split_per_step(draws: Any) -> None:
    jax = _jax()
    x = jax.numpy.full((2, 3), -1.0)
    noises = draws(x, jax.random.key(0))
    assert _all_distinct(noises)
    again = draws(x, jax.random.key(0))
    np.testing.assert_array_equal(noises, again)


@pytest.mark.parametrize("draws", [_ddpm_noises, _langevin_noises, _bound_noises])
def test_an_int_seed_works_for_jax_arrays(draws: Any) -> None:
    jax = _jax()
    noises = draws(jax.numpy.full((2, 3), -1.0), np.int64(3))
    assert _all_distinct(noises)


def test_torch_gets_numpy_integer_seeds() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.zeros((2, 3), dtype=torch.float64)
    a = diffcore.standard_normal_like(x, np.int64(5))
    b = diffcore.standard_normal_like(x, 5)
    assert torch.equal(a, b)
    assert _all_distinct(_langevin_noises(x, np.int64(5)))


# -- 12: every seed goes through one check ----------------------------------------


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (
            -1,
            ValueError,
            r"generator as an int seed must lie in \[0, 2\*\*63\); got -1",
        ),
        (2**70, ValueError, r"must lie in \[0, 2\*\*63\); got 1180591620717411303424"),
        (np.int64(-3), ValueError, r"got -3"),
        (True, TypeError, "got the bool True"),
        (np.True_, TypeError, "got the bool True"),
    ],
)
def test_bad_seeds_are_refused_alike_everywhere(
    seed: Any, error: type, match: str
) -> None:
    x = np.zeros((2, 3))
    calls = [
        lambda: diffcore.sample(SHORT, lambda x, t: 0 * x, x, generator=seed),
        lambda: diffcore.annealed_langevin(
            lambda x, s: 0 * x, x, [1.0], 0.1, 1, generator=seed
        ),
        lambda: diffcore.variational_bound(
            SHORT, lambda x, t: (0 * x, 0 * x), x - 1, generator=seed
        ),
        lambda: diffcore.q_sample(SHORT, x, 0, generator=seed),
    ]
    for call in calls:
        with pytest.raises(error, match=match):
            call()


def test_a_bad_generator_is_refused_before_the_model_is_called() -> None:
    def model(x: Any, t: Any) -> Any:
        raise AssertionError("the model was called")

    with pytest.raises(TypeError, match="generator must be None, an int seed"):
        diffcore.sample(SHORT, model, np.zeros(2), generator="seed")


# -- 3: sample's options, before any model call -----------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"method": "dpmpp_2m", "final_alpha_cumprod": "bogus"},
            ValueError,
            "final_alpha_cumprod must be one of 'one', 'first'; got 'bogus'",
        ),
        (
            {"final_alpha_cumprod": "bogus"},
            ValueError,
            "final_alpha_cumprod must be one of",
        ),
        ({"eta": "bogus"}, TypeError, "eta must be a float in \\[0, 1\\]; got 'bogus'"),
        ({"method": "ddim", "eta": 1.5}, ValueError, "eta must lie in \\[0, 1\\]"),
        (
            {"method": "dpmpp_2m", "eta": 0.5},
            ValueError,
            "eta applies to method=ddim only; got eta=0.5 with method='dpmpp_2m'",
        ),
        ({"eta": 0.5}, ValueError, "eta applies to method=ddim only"),
        (
            {"method": "ddim", "variance_type": "fixed_large"},
            ValueError,
            "variance_type applies to method=ddpm only",
        ),
        (
            {"final_alpha_cumprod": "first"},
            ValueError,
            "final_alpha_cumprod applies to method=ddim or dpmpp_2m only",
        ),
        ({"progress": 5}, TypeError, "progress must be None or callable"),
    ],
)
def test_sample_checks_every_option_before_the_model(
    kwargs: Any, error: type, match: str
) -> None:
    def model(x: Any, t: Any) -> Any:
        raise AssertionError("the model was called")

    with pytest.raises(error, match=match):
        diffcore.sample(SHORT, model, np.zeros(2), generator=0, **kwargs)


def test_sample_still_takes_the_options_its_method_uses() -> None:
    model = lambda x, t: 0.1 * x  # noqa: E731
    x = np.ones(2)
    for method in ("ddim", "dpmpp_2m"):
        out = diffcore.sample(
            SHORT, model, x, method=method, final_alpha_cumprod="first"
        )
        assert np.all(np.isfinite(out))
    out = diffcore.sample(SHORT, model, x, method="ddim", eta=0.5, generator=0)
    assert np.all(np.isfinite(out))
    out = diffcore.sample(SHORT, model, x, variance_type="fixed_large", generator=0)
    assert np.all(np.isfinite(out))


# -- 4: timesteps_for_sigmas ------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -1.0])
@pytest.mark.parametrize(
    "schedule", [LINEAR, Schedule.scaled_linear(1000).rescale_zero_terminal_snr()]
)
def test_timesteps_for_sigmas_refuses_levels_that_are_not_positive_finite(
    bad: float, schedule: Schedule
) -> None:
    with pytest.raises(
        ValueError, match=r"sigmas must be positive and finite; got sigmas\[0\]"
    ):
        diffcore.timesteps_for_sigmas(schedule, [bad, 1e10, 1.0])


def test_timesteps_for_sigmas_on_zero_terminal_snr_gives_no_warning() -> None:
    zero_snr = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
    steps = diffcore.timesteps_for_sigmas(zero_snr, [1e10, 1.0])
    assert steps.tolist()[0] == 998  # the noisiest finite level
    assert steps.tolist()[-1] < 998


# -- 5: karras_sigmas -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rho": math.inf}, ValueError, "rho must be positive and finite; got inf"),
        ({"rho": math.nan}, ValueError, "rho must be positive and finite; got nan"),
        ({"rho": True}, TypeError, "rho must be a real number; got bool True"),
        ({"sigma_min": "0.01"}, TypeError, "sigma_min must be a real number"),
    ],
)
def test_karras_sigmas_refuses_bad_parameters(
    kwargs: Any, error: type, match: str
) -> None:
    args = {"sigma_min": 0.01, "sigma_max": 80.0, **kwargs}
    with pytest.raises(error, match=match):
        diffcore.karras_sigmas(4, **args)


@pytest.mark.parametrize(
    ("sigma_min", "rho"), [(0.01, 1e-3), (0.01, 1e-300), (5e-324, 7.0), (0.01, 1e6)]
)
def test_karras_sigmas_are_positive_decreasing_and_end_exactly(
    sigma_min: float, rho: float
) -> None:
    sigmas = diffcore.karras_sigmas(4, sigma_min, 80.0, rho=rho)
    assert sigmas[0] == 80.0 and sigmas[-1] == sigma_min
    assert np.all(sigmas > 0) and np.all(np.diff(sigmas) <= 0)


def test_karras_sigmas_match_the_root_formula() -> None:
    ramp = np.linspace(0.0, 1.0, 10)
    lo, hi = 0.002 ** (1 / 7), 80.0 ** (1 / 7)
    expected = (hi + ramp * (lo - hi)) ** 7
    got = diffcore.karras_sigmas(10, 0.002, 80.0)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


# -- 6: timesteps_for at the int64 limit ------------------------------------------


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_for_is_exact_for_huge_T(spacing: Any) -> None:
    T, n = 2**62, 3
    steps = diffcore.timesteps_for(T, n, spacing)
    assert steps.dtype == np.int64
    if spacing == "leading":
        exact = [(T // n) * i for i in range(n)]
    elif spacing == "trailing":
        exact = [((i + 1) * T * 2 + n) // (2 * n) - 1 for i in range(n)]
    else:
        exact = [(i * (T - 1) * 2 + (n - 1)) // (2 * (n - 1)) for i in range(n)]
    assert steps.tolist() == exact[::-1]
    assert np.all(np.diff(steps) < 0) and steps[-1] >= 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((2**63 + 10, 3), "T must be below 2\\*\\*63"),
        ((1000, 3, "leading", 2**70), "offset must lie in \\(-T, T\\)"),
    ],
)
def test_timesteps_for_refuses_what_does_not_fit(args: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        diffcore.timesteps_for(*args)


# -- 7: unsigned timesteps --------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64])
def test_sample_takes_unsigned_timesteps(dtype: Any) -> None:
    s = Schedule.linear(300)
    model = lambda x, t: 0 * x  # noqa: E731
    x = np.ones((2, 3))
    got = diffcore.sample(s, model, x, np.array([255, 100], dtype), method="ddim")
    expected = diffcore.sample(s, model, x, [255, 100], method="ddim")
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="strictly decreasing"):
        diffcore.sample(s, model, x, np.array([100, 255], dtype), method="ddim")


# -- 8: dpmpp_2m_step's previous and integer types ---------------------------------

X = np.ones((2, 3))
X0 = np.full((2, 3), 0.5)
LAST = np.full((2, 3), 0.25)


@pytest.mark.parametrize(
    ("previous", "error", "match"),
    [
        (
            (LAST, 500),
            ValueError,
            r"previous\[1\].*must lie in \(t, T\) = \(500, 1000\); got 500",
        ),
        ((LAST, 450), ValueError, r"got 450"),
        ((LAST, -1), ValueError, r"got -1"),
        ((LAST, 5000), ValueError, r"got 5000"),
        ((LAST, 600.0), TypeError, r"previous\[1\] must be an int, .*; got 600.0"),
        ((LAST, True), TypeError, r"previous\[1\] must be an int"),
        ((np.ones(3), 600), ValueError, r"previous\[0\] must have the shape of x_t"),
        ((np.ones(4), 600), ValueError, r"previous\[0\] must have the shape of x_t"),
        (
            (LAST.astype(np.float32), 600),
            TypeError,
            r"previous\[0\] must have the dtype",
        ),
        ((LAST * np.nan, 600), ValueError, r"previous\[0\] must be finite"),
        ([LAST, 600], TypeError, "previous must be None or a pair"),
        ((LAST, 600, 1), TypeError, "tuple of length 3"),
        (LAST, TypeError, "previous must be None or a pair"),
    ],
)
def test_dpmpp_2m_step_checks_previous(previous: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        diffcore.dpmpp_2m_step(LINEAR, X, X0, 500, 400, previous=previous)


def test_dpmpp_2m_step_takes_numpy_integers() -> None:
    expected = diffcore.dpmpp_2m_step(LINEAR, X, X0, 500, 400, previous=(LAST, 600))
    got = diffcore.dpmpp_2m_step(
        LINEAR, X, X0, np.int64(500), np.int32(400), previous=(LAST, np.int64(600))
    )
    np.testing.assert_array_equal(got, expected)
    t, t_prev = diffcore.timesteps_for(1000, 2, "trailing")
    assert diffcore.dpmpp_2m_step(LINEAR, X, X0, t, t_prev).shape == X.shape
    with pytest.raises(TypeError, match=r"t_prev must be an int, .*; got 400\.0"):
        diffcore.dpmpp_2m_step(LINEAR, X, X0, 500, 400.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"t must be an int, .*; got True"):
        diffcore.dpmpp_2m_step(LINEAR, X, X0, True, -1)
    # 0-d integer arrays, as diffusers loops pass (they were refused).
    zero_d = diffcore.dpmpp_2m_step(LINEAR, X, X0, np.array(500), np.array(400))
    np.testing.assert_array_equal(
        zero_d, diffcore.dpmpp_2m_step(LINEAR, X, X0, 500, 400)
    )
    with pytest.raises(TypeError, match=r"t must be an int, or a 0-d integer array"):
        diffcore.dpmpp_2m_step(LINEAR, X, X0, np.array(500.0), 400)


def test_dpmpp_2m_final_step_onto_alpha_bar_0_is_the_identity() -> None:
    # From t = 0 to final_alpha_cumprod="first" the step has h = 0; the
    # second-order correction divided by it.
    s = SHORT
    model = lambda x, t: 0.1 * x  # noqa: E731
    x = np.ones(2)
    full = diffcore.sample(s, model, x, method="dpmpp_2m", final_alpha_cumprod="first")
    short = diffcore.sample(
        s, model, x, [3, 2, 1], method="dpmpp_2m", final_alpha_cumprod="first"
    )
    np.testing.assert_array_equal(full, short)
    step = diffcore.dpmpp_2m_step(
        s, x, 0 * x, 0, -1, previous=(x, 1), final_alpha_cumprod="first"
    )
    np.testing.assert_array_equal(step, x)


# -- 9: NCSN sigma, checked alike in every library ---------------------------------


def _torch() -> Any:
    return pytest.importorskip("torch", reason="torch is not installed")


def _strict() -> Any:
    return pytest.importorskip("array_api_strict", reason="not installed")


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, 0.0])
@pytest.mark.parametrize("function", ["perturb", "dsm_target", "dsm_loss"])
def test_ncsn_sigma_arrays_are_checked_in_every_library(
    library: str, bad: float, function: str
) -> None:
    if library == "numpy":
        xp: Any = np
    elif library == "torch":
        xp = _torch()
    else:
        xp = _strict()
    x = xp.zeros((2, 3), dtype=xp.float64)
    sigma = xp.asarray([1.0, bad], dtype=xp.float64)
    call = {
        "perturb": lambda: diffcore.perturb(x, sigma, x),
        "dsm_target": lambda: diffcore.dsm_target(x, x, sigma),
        "dsm_loss": lambda: diffcore.dsm_loss(x, x, x, sigma),
    }[function]
    with pytest.raises(
        ValueError, match=r"sigma must be positive and finite; got sigma\[1\]"
    ):
        call()


@pytest.mark.parametrize(
    ("sigma", "error", "match"),
    [
        (
            "1",
            TypeError,
            "sigma must be a number or an array of shape \\(B,\\); got '1'",
        ),
        (None, TypeError, "sigma must be a number or an array"),
        (["a", "b"], TypeError, "sigma must be a number or a sequence of numbers"),
        ([1.0, -2.0], ValueError, r"got sigma\[1\] = -2.0"),
    ],
)
def test_ncsn_sigma_of_a_wrong_type(sigma: Any, error: type, match: str) -> None:
    x = np.zeros((2, 3))
    with pytest.raises(error, match=match):
        diffcore.perturb(x, sigma, x)


def test_ncsn_sigma_from_another_library_is_a_type_error() -> None:
    torch = _torch()
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"sigma is torch\.Tensor"):
        diffcore.perturb(x, torch.tensor([1.0, 2.0], dtype=torch.float64), x)


def test_ncsn_array_sigma_with_0d_x_is_a_value_error() -> None:
    x = np.zeros(())
    with pytest.raises(ValueError, match="a number for 0-d x; got shape \\(1,\\)"):
        diffcore.perturb(x, np.ones(1), x)
    assert float(diffcore.perturb(x, 2.0, np.ones(()))) == 2.0


# -- 10: what the score model returns ---------------------------------------------


@pytest.mark.parametrize(
    ("score", "x", "error", "match"),
    [
        (
            lambda x, s: np.zeros((5, 2, 3)),
            np.zeros((2, 3)),
            ValueError,
            "score must have the shape of x, \\(2, 3\\); got \\(5, 2, 3\\)",
        ),
        (
            lambda x, s: np.zeros((2, 3), np.float32),
            np.zeros((2, 3), np.float16),
            TypeError,
            "score must have the dtype of x, float16; got float32",
        ),
        (
            lambda x, s: [0.0] * 6,
            np.zeros((2, 3)),
            TypeError,
            "score must return an array of x's library, numpy.ndarray; at sigma = "
            "1.0 it returned list",
        ),
    ],
)
def test_annealed_langevin_checks_the_score(
    score: Any, x: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        diffcore.annealed_langevin(score, x, [1.0, 0.5], 0.1, 2, generator=0)


@pytest.mark.parametrize("denoise", ["no", 1, None])
def test_annealed_langevin_denoise_must_be_a_bool(denoise: Any) -> None:
    with pytest.raises(TypeError, match="denoise must be a bool"):
        diffcore.annealed_langevin(
            lambda x, s: 0 * x, np.zeros(2), [1.0], 0.1, 1, denoise=denoise
        )


def test_annealed_langevin_keeps_a_float16_state() -> None:
    out = diffcore.annealed_langevin(
        lambda x, s: -x, np.zeros((2, 3), np.float16), [1.0, 0.5], 0.1, 2, generator=0
    )
    assert out.dtype == np.float16


# -- 11: no JAX dtype warning in 32-bit mode --------------------------------------


def test_jax_32_bit_mode_sample_and_bound_give_no_warning() -> None:
    pytest.importorskip("jax", reason="jax is not installed")
    code = (
        "import jax, jax.numpy as jnp, diffcore\n"
        "s = diffcore.Schedule.linear(4)\n"
        "x = jnp.full((2, 3), -1.0)\n"
        "seen = []\n"
        "def model(x, t):\n"
        "    seen.append(t.dtype)\n"
        "    return 0 * x\n"
        "diffcore.sample(s, model, x, generator=0)\n"
        "diffcore.sample(s, model, x, method='ddim')\n"
        "diffcore.variational_bound(s, lambda x, t: (0 * x, 0 * x), x, generator=0)\n"
        "assert all(d == jnp.int32 for d in seen), seen\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


# -- the 2015 bound draws its noise like the other loops --------------------------


def _sohl_dickstein_noises(x_0: Any, generator: Any) -> list[np.ndarray]:
    """The eps of each step of sohl_dickstein_bound (steps 1 to T - 1)."""
    return _loop_noises(diffcore.sohl_dickstein_bound, x_0, generator, first=1)


def test_sohl_dickstein_bound_draws_fresh_noise_from_any_seed() -> None:
    x_0 = np.full((2, 3), -1.0)
    noises = _sohl_dickstein_noises(x_0, np.int64(4))
    assert len(noises) == len(SHORT) - 1
    assert _all_distinct(noises)
    np.testing.assert_array_equal(noises, _sohl_dickstein_noises(x_0, 4))


@pytest.mark.parametrize("make", ["key", "seed"])
def test_sohl_dickstein_bound_splits_a_jax_key(make: str) -> None:
    jax = _jax()
    x_0 = jax.numpy.full((2, 3), -1.0)
    source = jax.random.key(0) if make == "key" else 3
    noises = _sohl_dickstein_noises(x_0, source)
    assert _all_distinct(noises)


# -- NCSN levels that the samples' compute dtype cannot hold -----------------------


@pytest.mark.parametrize(
    ("dtype", "sigma", "to"),
    [
        (np.float32, 1e-46, "0"),
        (np.float32, 1e-200, "0"),
        (np.float32, 1e300, "inf"),
        (np.float16, 1e-46, "0"),
        (np.float32, np.array([1.0, 1e-46]), "0"),
    ],
)
@pytest.mark.parametrize("function", ["perturb", "dsm_target", "dsm_loss"])
def test_ncsn_sigma_that_rounds_to_zero_or_inf_is_refused(
    function: str, dtype: Any, sigma: Any, to: str
) -> None:
    x = np.zeros((2, 3), dtype)
    call = {
        "perturb": lambda: diffcore.perturb(x, sigma, x),
        "dsm_target": lambda: diffcore.dsm_target(x, x, sigma),
        "dsm_loss": lambda: diffcore.dsm_loss(x, x, x, sigma),
    }[function]
    name = "sigma" if np.ndim(sigma) == 0 else r"sigma\[1\]"
    wanted = "float32" if dtype == np.float16 else np.dtype(dtype).name
    with pytest.raises(
        ValueError, match=rf"sigma must be representable in {wanted}.*{name} = .*{to}"
    ):
        call()


def test_ncsn_sigma_that_rounds_to_zero_in_torch_is_refused() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="sigma must be representable in float32"):
        diffcore.dsm_target(x, x, 1e-46)


def test_ncsn_results_too_large_for_the_dtype_are_inf_without_a_warning() -> None:
    x32, x64 = np.zeros((2, 3), np.float32), np.zeros((2, 3))
    assert np.all(diffcore.dsm_target(x32, x32 + 1, 1e-40) == -np.inf)
    assert np.all(diffcore.dsm_target(x64, x64 + 1, 1e-200) == -np.inf)
    assert np.all(diffcore.dsm_loss(x64, x64, x64 + 1, 1e-200) == np.inf)
    x16 = np.zeros(2, np.float16)
    assert np.all(diffcore.perturb(x16, 1e10, np.ones_like(x16)) == np.inf)


# -- empty timesteps, NumPy etas, bool levels ---------------------------------------


def test_sample_refuses_an_empty_list_of_timesteps_as_empty() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="timesteps must be a non-empty 1-d array"):
        diffcore.sample(SHORT, lambda x, t: 0 * x, x, [], method="ddim")


@pytest.mark.parametrize("eta", [np.float32(0.5), np.float16(1.0), np.int64(1)])
def test_eta_may_be_a_numpy_real_scalar(eta: Any) -> None:
    x, noise = np.zeros((2, 3)), np.ones((2, 3))
    out = diffcore.sample(SHORT, lambda x, t: 0 * x, x, method="ddim", eta=eta)
    assert out.shape == x.shape
    step = diffcore.ddim_step(SHORT, 0 * x, x, 3, 2, eta=eta, noise=noise)
    same = diffcore.ddim_step(SHORT, 0 * x, x, 3, 2, eta=float(eta), noise=noise)
    np.testing.assert_array_equal(step.x_prev, same.x_prev)


@pytest.mark.parametrize("eta", [True, np.bool_(True), np.bool_(False)])
def test_eta_may_not_be_a_bool(eta: Any) -> None:
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="eta must be a float in"):
        diffcore.sample(SHORT, lambda x, t: 0 * x, x, method="ddim", eta=eta)
    with pytest.raises(TypeError, match="eta must be a float in"):
        diffcore.ddim_step(SHORT, 0 * x, x, 3, 2, eta=eta, noise=x)


@pytest.mark.parametrize("sigmas", [[True], np.array([True, False]), True])
def test_timesteps_for_sigmas_refuses_bools(sigmas: Any) -> None:
    bools = "sigmas must (be real noise levels|hold numbers), not bools"
    with pytest.raises(TypeError, match=bools):
        diffcore.timesteps_for_sigmas(LINEAR, sigmas)


# -- JAX sources of noise: named as passed, one key at a time ------------------------


def _zero_model(x: Any, t: Any) -> Any:
    return 0 * x


@pytest.mark.parametrize("loop", ["sample", "annealed_langevin", "normal"])
def test_a_jax_source_that_is_not_a_key_is_blamed_on_generator(loop: str) -> None:
    jax = _jax()
    x = jax.numpy.zeros((2, 3))
    rng = np.random.default_rng(0)
    call = {
        "sample": lambda: diffcore.sample(SHORT, _zero_model, x, generator=rng),
        "annealed_langevin": lambda: diffcore.annealed_langevin(
            _zero_model, x, [1.0, 0.5], 0.1, 2, generator=rng
        ),
        "normal": lambda: diffcore.standard_normal_like(x, rng),
    }[loop]
    with pytest.raises(TypeError, match=r"generator must be a JAX PRNG key.*Generator"):
        call()


@pytest.mark.parametrize("make", ["key", "PRNGKey"])
@pytest.mark.parametrize("loop", ["sample", "annealed_langevin", "normal"])
def test_a_batch_of_jax_keys_is_refused(loop: str, make: str) -> None:
    jax = _jax()
    x = jax.numpy.zeros((2, 3))
    keys = jax.random.split(getattr(jax.random, make)(0), 2)
    call = {
        "sample": lambda: diffcore.sample(SHORT, _zero_model, x, generator=keys),
        "annealed_langevin": lambda: diffcore.annealed_langevin(
            _zero_model, x, [1.0, 0.5], 0.1, 2, generator=keys
        ),
        "normal": lambda: diffcore.standard_normal_like(x, key=keys),
    }[loop]
    name = "key" if loop == "normal" else "generator"
    with pytest.raises(
        ValueError, match=rf"{name} must be a single JAX PRNG key; got a batch.*\(2,\)"
    ):
        call()


def test_a_raw_jax_key_still_works() -> None:
    jax = _jax()
    x = jax.numpy.zeros((2, 3))
    out = diffcore.sample(SHORT, _zero_model, x, generator=jax.random.PRNGKey(0))
    assert out.shape == x.shape


def test_jax_sampling_without_a_source_is_blamed_on_generator() -> None:
    jax = _jax()
    x = jax.numpy.zeros((2, 3))
    with pytest.raises(TypeError, match=r"generator must be a JAX PRNG key.*nothing"):
        diffcore.sample(SHORT, _zero_model, x)
    out = diffcore.sample(SHORT, _zero_model, x, method="ddim")
    assert out.shape == x.shape


# -- annealed Langevin checks its score like sample checks its model ---------------


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_annealed_langevin_refuses_a_score_that_is_not_finite(bad: float) -> None:
    def score(x: Any, sigma: float) -> Any:
        return 0 * x + (bad if sigma < 1.0 else 0.0)

    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"score at sigma = 0\.5 must be finite"):
        diffcore.annealed_langevin(score, x, [1.0, 0.5], 0.1, 1, generator=0)


# -- half-precision steps round once -----------------------------------------------


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_half_precision_steps_keep_x_0_hat_in_float32(library: str) -> None:
    # x_0_hat overflows float16 at t = 999 of a cosine schedule, x_prev does not.
    s = Schedule.cosine(1000)
    if library == "torch":
        torch = pytest.importorskip("torch", reason="torch is not installed")
        x_t = torch.full((1, 4), 4.0, dtype=torch.float16)
        zeros = torch.zeros_like(x_t)
    else:
        x_t = np.full((1, 4), 4.0, np.float16)
        zeros = np.zeros_like(x_t)
    ddpm = diffcore.ddpm_step(s, zeros, x_t, 999, zeros)
    ddim = diffcore.ddim_step(s, zeros, x_t, 999, 900)
    x64 = to_numpy(x_t).astype(np.float64)
    z64 = np.zeros_like(x64)
    want_ddpm = diffcore.ddpm_step(s, z64, x64, 999, z64).x_prev
    want_ddim = diffcore.ddim_step(s, z64, x64, 999, 900).x_prev
    np.testing.assert_allclose(to_numpy(ddpm.x_prev), want_ddpm, rtol=1e-3)
    np.testing.assert_allclose(to_numpy(ddim.x_prev), want_ddim, rtol=1e-3)
    assert np.isinf(to_numpy(ddim.x_0_hat)).all()  # beyond float16, rounded once
    assert ddim.x_0_hat.dtype == x_t.dtype


def test_half_precision_steps_are_rounded_once() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    s = Schedule.cosine(1000)
    gen = torch.Generator().manual_seed(0)
    x_t, output, noise = (torch.randn(4096, generator=gen).half() for _ in range(3))
    ddim = diffcore.ddim_step(s, output, x_t, 500, 400).x_prev
    exact = diffcore.ddim_step(s, output.double(), x_t.double(), 500, 400).x_prev
    ddpm = diffcore.ddpm_step(s, output, x_t, 500, noise).x_prev
    exact_ddpm = diffcore.ddpm_step(
        s, output.double(), x_t.double(), 500, noise.double()
    ).x_prev
    # float32 work rounded once to float16: off by a float32 rounding at most,
    # so almost every entry is the correctly rounded one (it was about a third)
    assert int((ddim != exact.half()).sum()) <= 8
    assert int((ddpm != exact_ddpm.half()).sum()) <= 8


# -- starting states are checked finite --------------------------------------------


@pytest.mark.parametrize("method", ["ddpm", "ddim", "dpmpp_2m"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_sample_refuses_an_x_T_that_is_not_finite(method: str, bad: float) -> None:
    x_T = np.array([[0.0, bad, 1.0]])
    with pytest.raises(ValueError, match=r"x_T must be finite"):
        diffcore.sample(SHORT, lambda x, t: np.zeros_like(x), x_T, method=method)


# -- raw JAX key data must have the default implementation's shape -----------------


def _keyed_calls(key: Any) -> dict[str, Any]:
    """Every entry point that takes a JAX key, called with key on JAX arrays."""
    x = _jax().numpy.zeros((2, 3))
    return {
        "sample": lambda: diffcore.sample(SHORT, lambda x, t: 0 * x, x, generator=key),
        "annealed_langevin": lambda: diffcore.annealed_langevin(
            lambda x, s: 0 * x, x, [1.0], 0.1, 1, generator=key
        ),
        "variational_bound": lambda: diffcore.variational_bound(
            SHORT, lambda x, t: (0 * x, 0 * x), x - 1, generator=key
        ),
        "q_sample": lambda: diffcore.q_sample(SHORT, x, 0, key=key),
    }


@pytest.mark.parametrize(
    "call", ["sample", "annealed_langevin", "variational_bound", "q_sample"]
)
@pytest.mark.parametrize("shape", [(3,), (4,), (0,), ()])
def test_raw_jax_key_data_of_a_wrong_shape_is_refused(
    call: str, shape: tuple[int, ...]
) -> None:
    jax = _jax()
    key = jax.numpy.zeros(shape, jax.numpy.uint32)
    name = "key" if call == "q_sample" else "generator"
    got = ", ".join(map(str, shape))
    match = rf"{name} as raw JAX key data must have shape \(2,\); got shape \({got}"
    with pytest.raises(ValueError, match=match):
        _keyed_calls(key)[call]()


def test_raw_jax_key_data_of_the_right_shape_is_taken() -> None:
    jax = _jax()
    for call in _keyed_calls(jax.random.PRNGKey(0)).values():
        call()


def test_a_bool_key_is_told_what_key_takes() -> None:
    x = _jax().numpy.zeros((2, 3))
    match = r"key must be a JAX PRNG key or an int seed; got the bool True"
    with pytest.raises(TypeError, match=match):
        diffcore.q_sample(SHORT, x, 0, key=True)


# -- NCSN sigma: 0-d arrays are one level, other devices are refused ---------------


def _ncsn_calls(x: Any, sigma: Any) -> dict[str, Any]:
    return {
        "perturb": lambda: diffcore.perturb(x, sigma, x),
        "dsm_target": lambda: diffcore.dsm_target(x, x + 1, sigma),
        "dsm_loss": lambda: diffcore.dsm_loss(x, x, x + 1, sigma),
    }


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("function", ["perturb", "dsm_target", "dsm_loss"])
def test_ncsn_0d_sigma_is_taken_like_a_number(library: str, function: str) -> None:
    xp: Any = {"numpy": np, "torch": None, "array_api_strict": None}[library]
    xp = xp or (_torch() if library == "torch" else _strict())
    x = xp.ones((2, 3), dtype=xp.float32)
    got = _ncsn_calls(x, xp.asarray(2.0, dtype=xp.float32))[function]()
    want = _ncsn_calls(x, 2.0)[function]()
    np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    assert got.dtype == want.dtype


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (-1.0, r"positive and finite; got sigma = -1\.0"),
        (1e-46, r"float32.*got sigma = 1e-46, which rounds to 0"),
    ],
)
@pytest.mark.parametrize("function", ["perturb", "dsm_target", "dsm_loss"])
def test_ncsn_0d_sigma_is_checked_like_a_number(
    bad: float, match: str, function: str
) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        _ncsn_calls(x, np.asarray(bad))[function]()


@pytest.mark.parametrize("function", ["perturb", "dsm_target", "dsm_loss"])
def test_ncsn_sigma_on_another_device_is_refused(function: str) -> None:
    torch = _torch()
    x = torch.ones(2, 3)
    sigma = torch.ones(2, device="meta")
    match = r"sigma must be on x's device, cpu; got sigma on meta"
    with pytest.raises(ValueError, match=match):
        _ncsn_calls(x, sigma)[function]()


# -- annealed Langevin: updates in the compute dtype, states checked ---------------


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_annealed_langevin_updates_half_precision_in_float32(library: str) -> None:
    # 0.5 * step * score = -70000 overflows float16; x + it = -10000 does not.
    xp: Any = _torch() if library == "torch" else np
    x = xp.full((2, 2), 60000.0, dtype=xp.float16)
    out = diffcore.annealed_langevin(lambda x, s: -x, x, [1.0], 7 / 3, 1, generator=0)
    assert out.dtype == x.dtype
    np.testing.assert_allclose(to_numpy(out).astype(np.float64), -10000, atol=20)


@pytest.mark.parametrize(
    ("sigmas", "epsilon", "at"), [([1e3, 1e-3], 1.0, "1000.0"), ([1.0], 1e12, "1.0")]
)
def test_annealed_langevin_reports_a_state_beyond_the_dtype(
    sigmas: list[float], epsilon: float, at: str
) -> None:
    x = np.zeros((2, 2), np.float16)
    match = rf"x overflowed its dtype, float16, .* at sigma = {at}.*epsilon"
    with pytest.raises(ValueError, match=match):
        diffcore.annealed_langevin(lambda x, s: -x, x, sigmas, epsilon, 1, generator=0)


@pytest.mark.parametrize("bad", [math.nan, -math.inf])
def test_annealed_langevin_refuses_a_starting_x_that_is_not_finite(
    bad: float,
) -> None:
    def score(x: Any, sigma: float) -> Any:
        raise AssertionError("the score was called")

    x = np.array([[0.0, bad]])
    with pytest.raises(ValueError, match=r"^x must be finite"):
        diffcore.annealed_langevin(score, x, [1.0], 0.1, 1, generator=0)


def test_annealed_langevin_refuses_an_infinite_step_size() -> None:
    match = r"the first Langevin step size, must be finite; got epsilon = 1\.0"
    with pytest.raises(ValueError, match=match):
        diffcore.annealed_langevin(
            lambda x, s: -x, np.zeros((1, 2)), [1e200, 1e-200], 1.0, 1, generator=0
        )


def test_sample_names_a_state_that_overflows_its_dtype() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x_T = torch.full((2,), 1000.0, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"x overflowed its dtype, torch.float16"):
        diffcore.sample(LINEAR, lambda x, t: 0 * x, x_T, [999, 899, 0], method="ddim")


@pytest.mark.parametrize(
    "sigma", [2.0, np.asarray(2.0), [2.0, 2.0], np.array([2.0, 2.0])], ids=str
)
def test_dsm_loss_keeps_the_dtype_of_x_whatever_form_sigma_takes(sigma: Any) -> None:
    x = np.zeros((2, 3), np.float32)
    loss = diffcore.dsm_loss(x, x, x + np.float32(0.1), sigma)
    assert loss.dtype == np.float32
    want = diffcore.dsm_loss(x, x, x + np.float32(0.1), 2.0)
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_dsm_loss_of_half_precision_x_is_in_the_compute_dtype() -> None:
    # Documented, like diffusion_loss: a sum over dimensions in float32.
    x = np.zeros((2, 3), np.float16)
    loss = diffcore.dsm_loss(x, x, x + np.float16(0.5), 0.5)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss, 0.5**2 / 2 * 3 * (0.5 / 0.5**2) ** 2, rtol=1e-6)


def test_ints_beyond_float64_are_named_not_overflow_errors() -> None:
    huge = 10**400
    with pytest.raises(ValueError, match="rho"):
        diffcore.karras_sigmas(4, 0.01, 80.0, rho=huge)
    with pytest.raises(ValueError, match="epsilon"):
        diffcore.annealed_langevin(
            lambda x, s: -x, np.zeros(2), [1.0], huge, 1, generator=0
        )
    with pytest.raises(ValueError, match="sigma_max"):
        diffcore.geometric_sigmas(huge, 0.01, 10)


def test_complex_noise_levels_are_refused_by_name() -> None:
    # They were cut to their real part with a ComplexWarning.
    levels = np.array([1 + 1j, 0.5])
    with pytest.raises(
        TypeError, match="sigmas must be real numbers; got dtype complex128"
    ):
        diffcore.annealed_langevin(lambda x, s: -x, np.zeros((1, 2)), levels, 0.1, 1)
    with pytest.raises(TypeError, match="sigmas must be real numbers"):
        diffcore.timesteps_for_sigmas(LINEAR, levels)
