"""Schedules: values against mpmath, the reference cases, conventions and bad input."""

from __future__ import annotations

import math
import pickle

import mpmath as mp
import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from . import _reference

TABLES = [
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "snr",
    "log_snr",
    "sigmas",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef_x0",
    "posterior_mean_coef_xt",
]
CONSTRUCTORS = {
    "linear": Schedule.linear,
    "scaled_linear": Schedule.scaled_linear,
    "cosine": Schedule.cosine,
}


def relative_error(
    actual: np.ndarray, reference: list[mp.mpf], floor: float = 0.0
) -> np.ndarray:
    """|actual - reference| / max(|reference|, floor), 0 where both are equal.

    A log table crosses zero (log_snr near alpha_bar = 1/2), where no float64
    value can have a small relative error; those are measured with floor = 1,
    i.e. relative to max(|value|, 1).
    """
    out = []
    for a, r in zip(actual.tolist(), reference, strict=True):
        if mp.mpf(a) == r:
            out.append(0.0)
        elif max(abs(r), floor) == 0:
            out.append(math.inf)
        else:
            out.append(float(abs(mp.mpf(a) - r) / max(abs(r), floor)))
    return np.asarray(out)


@pytest.mark.parametrize("T", [1, 2, 10, 1000, 4000])
@pytest.mark.parametrize("kind", list(CONSTRUCTORS))
def test_every_table_matches_mpmath(kind: str, T: int) -> None:
    schedule = CONSTRUCTORS[kind](T)
    reference = _reference.tables(kind, T)
    for name in TABLES:
        table = getattr(schedule, name)
        assert table.dtype == np.float64 and table.shape == (T,)
        floor = 1.0 if name.startswith(("log", "posterior_log")) else 0.0
        error = relative_error(table, reference[name], floor)
        worst = int(np.argmax(error))
        assert error[worst] <= 1e-13, (
            f"{name}[{worst}]: relative error {error[worst]:.3g}"
        )


def test_c01_linear_alphas_cumprod_and_its_complement() -> None:
    s = Schedule.linear(1000)
    assert s.alphas_cumprod.dtype == np.float64
    assert s.alphas_cumprod[999] == pytest.approx(4.0358297653756833148e-05, rel=1e-12)
    assert s.alphas_cumprod[499] == pytest.approx(0.078587242881778237343, rel=1e-12)
    one_minus = s.sqrt_one_minus_alphas_cumprod**2
    assert one_minus[0] == pytest.approx(1.0e-4, rel=1e-14)
    assert one_minus[1] == pytest.approx(2.1990792792792792793e-04, rel=1e-14)
    assert one_minus[4] == pytest.approx(6.9900565791898680585e-04, rel=1e-14)
    reference = _reference.tables("linear", 1000)["sqrt_one_minus_alphas_cumprod"]
    exact = [r**2 for r in reference]
    assert relative_error(np.exp(s.log_one_minus_alphas_cumprod), exact).max() <= 1e-15


def test_c02_half_precision_alpha_bar_rounds_to_one_but_diffcore_keeps_the_noise() -> (
    None
):
    s = Schedule.linear(1000)
    # The failure signature: the rounded table says there is no noise at all.
    assert np.float16(s.alphas_cumprod[0]) == 1.0
    assert s.sqrt_one_minus_alphas_cumprod[0] == pytest.approx(0.01, rel=1e-15)
    assert s.sqrt_alphas_cumprod[0] == pytest.approx(0.99994999874993749609, rel=1e-15)
    sd = Schedule.scaled_linear(1000)
    assert sd.sqrt_one_minus_alphas_cumprod[0] == pytest.approx(
        0.029154759474226502354, rel=1e-14
    )
    assert sd.sqrt_one_minus_alphas_cumprod[1] == pytest.approx(
        0.041279197685378909522, rel=1e-14
    )


@pytest.mark.parametrize(
    ("T", "ab0", "beta0"),
    [
        (1000, 0.9999587157751782222, 4.1284224821777802353e-05),
        (250, 0.99980573120267168957, None),
    ],
)
def test_c04_cosine_table_has_length_T_and_no_unit_entry(
    T: int, ab0: float, beta0: float | None
) -> None:
    s = Schedule.cosine(T)
    assert len(s) == T and s.alphas_cumprod.shape == (T,)
    assert s.alphas_cumprod[0] == pytest.approx(ab0, rel=1e-13)
    if beta0 is not None:
        assert s.betas[0] == pytest.approx(beta0, rel=1e-12)
    assert ((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1)).all()
    assert s.posterior_mean_coef_x0[0] == 1.0 and s.posterior_mean_coef_xt[0] == 0.0
    assert s.posterior_variance[0] == 0.0
    for name in TABLES:
        assert np.isfinite(getattr(s, name)).all(), name


def test_c04_eps_to_x0_coefficients_at_t0() -> None:
    s = Schedule.cosine(1000)
    recip = diffcore.x_0_from_eps(s, np.ones(1), 0, np.zeros(1))
    recipm1 = -diffcore.x_0_from_eps(s, np.zeros(1), 0, np.ones(1))
    assert recip[0] == pytest.approx(1.0000206427515780857, rel=1e-14)
    assert recipm1[0] == pytest.approx(0.0064254127711271707561, rel=1e-13)


def test_c07_scaled_linear_is_not_linear_and_sd_sigma_range() -> None:
    sd = Schedule.scaled_linear(1000)
    same_ends = Schedule.linear(1000, 0.00085, 0.012)
    assert sd.betas[499] == pytest.approx(0.0048037929805507178224, rel=1e-13)
    assert same_ends.betas[499] == pytest.approx(0.0064194194194194194194, rel=1e-13)
    assert sd.alphas_cumprod[999] == pytest.approx(0.0046600985130772404039, rel=1e-12)
    assert same_ends.alphas_cumprod[999] == pytest.approx(
        0.0015789629305514416211, rel=1e-12
    )
    assert sd.sigmas[0] == pytest.approx(0.02916715815172006662, rel=1e-12)
    assert sd.sigmas[999] == pytest.approx(14.614641229333635971, rel=1e-12)


def test_stable_diffusion_terminal_values_and_zero_snr_rescale() -> None:
    sd = Schedule.scaled_linear(1000)
    assert sd.sqrt_alphas_cumprod[-1] == pytest.approx(0.0682649, abs=5e-8)
    assert sd.snr[-1] == pytest.approx(0.00468192, abs=5e-9)
    z = sd.rescale_zero_terminal_snr()
    assert z.alphas_cumprod[-1] == 0.0 and z.sqrt_alphas_cumprod[-1] == 0.0
    assert z.snr[-1] == 0.0 and z.log_snr[-1] == -np.inf and z.sigmas[-1] == np.inf
    assert z.betas[-1] == 1.0
    assert z.alphas_cumprod[0] == pytest.approx(sd.alphas_cumprod[0], rel=1e-14)
    for name in TABLES:
        assert not np.isnan(getattr(z, name)).any(), name
    finite = [n for n in TABLES if n not in ("log_snr", "sigmas")]
    for name in finite:
        assert np.isfinite(getattr(z, name)).all(), name


def test_rescaled_complement_is_accurate_at_early_steps() -> None:
    sd = Schedule.scaled_linear(1000)
    z = sd.rescale_zero_terminal_snr()
    root = [
        mp.sqrt(a) for a in _reference.tables("scaled_linear", 1000)["alphas_cumprod"]
    ]
    first, last = root[0], root[-1]
    new = [((r - last) * first / (first - last)) ** 2 for r in root]
    error = relative_error(
        np.exp(z.log_one_minus_alphas_cumprod[:-1]), [1 - a for a in new[:-1]]
    )
    assert error.max() <= 1e-12


@pytest.mark.parametrize("kind", ["linear", "scaled_linear"])
def test_rescaled_betas_keep_their_digits_at_early_steps(kind: str) -> None:
    # log of a root within 1e-4 of 1 lost about four digits: beta'_0 came
    # out 2.4e-12 off the beta_0 it must equal.
    z = getattr(Schedule, kind)(1000).rescale_zero_terminal_snr()
    root = [mp.sqrt(a) for a in _reference.tables(kind, 1000)["alphas_cumprod"]]
    first, last = root[0], root[-1]
    new = [((r - last) * first / (first - last)) ** 2 for r in root]
    betas = [1 - new[0]] + [1 - new[t] / new[t - 1] for t in range(1, 10)]
    assert relative_error(z.betas[:10], betas).max() <= 5e-15
    assert relative_error(z.alphas_cumprod[:10], new[:10]).max() <= 2e-15


@pytest.mark.parametrize("s", ["0.008", "0.0", "0.1"])
def test_cosine_betas_are_exact_to_a_few_ulps(s: str) -> None:
    # sin(a + b) took an argument near pi at small t: 3.6e-14 off at s = 0.
    got = Schedule.cosine(1000, s=float(s)).betas
    want = _reference.cosine_betas(1000, s=mp.nstr(mp.mpf(float(s)), 30))
    assert relative_error(got, want).max() <= 2e-15


def test_c12_posterior_variance_and_clipped_log() -> None:
    s = Schedule.linear(1000)
    assert s.posterior_variance[0] == 0.0
    assert s.posterior_variance[1] == pytest.approx(
        5.4531876613026053947e-05, rel=1e-13
    )
    assert s.posterior_variance[999] == pytest.approx(
        0.019999983526560607476, rel=1e-13
    )
    assert s.posterior_log_variance_clipped[0] == pytest.approx(
        -9.8167251352955939914, rel=1e-14
    )
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    floor = s.with_posterior_log_variance("floor", floor=1e-20)
    assert floor.posterior_log_variance_clipped[0] == pytest.approx(math.log(1e-20))
    assert (
        floor.posterior_log_variance_clipped[1] == s.posterior_log_variance_clipped[1]
    )
    assert floor.respace([0, 5]).posterior_log_variance_clipped[0] == pytest.approx(
        math.log(1e-20)
    )


def test_one_step_schedule_uses_log_beta_for_the_first_log_variance() -> None:
    s = Schedule.linear(1)
    assert s.posterior_log_variance_clipped[0] == pytest.approx(math.log(1e-4))


def test_c13_respacing_takes_betas_from_alpha_bar_ratios() -> None:
    s = Schedule.linear(1000)
    r = s.respace(range(0, 1000, 20))
    assert len(r) == 50
    assert r.timestep_map.tolist() == list(range(0, 1000, 20))
    assert r.betas[0] == pytest.approx(1e-4, rel=1e-14)
    assert r.betas[25] == pytest.approx(0.17995439100829400102, rel=1e-13)
    np.testing.assert_allclose(
        np.cumprod(r.alphas), s.alphas_cumprod[::20], rtol=0, atol=1e-15
    )
    assert r.posterior_variance[25] == pytest.approx(0.17662303428009879117, rel=1e-13)
    twice = r.respace([0, 25, 49])
    assert twice.timestep_map.tolist() == [0, 500, 980]
    assert twice.alphas_cumprod[1] == s.alphas_cumprod[500]


def test_sigmoid_schedules_follow_their_definitions() -> None:
    geo = Schedule.sigmoid_betas(100)
    z = np.linspace(-6, 6, 100)
    np.testing.assert_allclose(
        geo.betas, 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-z)), rtol=1e-15
    )
    chen = Schedule.sigmoid_alphas_cumprod(100, start=-3, end=3, tau=1)
    sig = lambda v: 1 / (1 + mp.exp(-v))  # noqa: E731
    for i in (0, 10, 50, 98):
        u = mp.mpf(i + 1) / 100
        gamma = (sig(3) - sig(6 * u - 3)) / (sig(3) - sig(-3))
        assert chen.alphas_cumprod[i] == pytest.approx(float(gamma), rel=1e-13)
        one_minus = np.exp(chen.log_one_minus_alphas_cumprod[i])
        assert one_minus == pytest.approx(float(1 - gamma), rel=1e-13)
    assert chen.alphas_cumprod[-1] == 0.0 and chen.betas[-1] == 1.0
    assert not np.allclose(
        geo.alphas_cumprod, Schedule.sigmoid_alphas_cumprod(100).alphas_cumprod
    )


def test_endpoints_in_either_order_give_the_reversed_ramp() -> None:
    # Documented: any betas in (0, 1] form a schedule, so only
    # sigmoid_alphas_cumprod (whose alpha_bar must decrease) orders its pair.
    up, down = Schedule.linear(50), Schedule.linear(50, 0.02, 1e-4)
    np.testing.assert_allclose(down.betas, up.betas[::-1], rtol=1e-12)
    geo = Schedule.sigmoid_betas(50, low=6.0, high=-6.0)
    np.testing.assert_allclose(
        geo.betas, Schedule.sigmoid_betas(50).betas[::-1], rtol=1e-15
    )
    flat = Schedule.sigmoid_betas(50, low=1.0, high=1.0)
    assert np.all(flat.betas == flat.betas[0])
    with pytest.raises(ValueError, match="start < end"):
        Schedule.sigmoid_alphas_cumprod(50, start=3.0, end=-3.0)


def test_from_log_snr_reproduces_the_cosine_schedule() -> None:
    T = 200
    s = Schedule.from_log_snr(lambda u: -2 * np.log(np.tan(np.pi * u / 2)), T)
    cos = Schedule.cosine(T, s=0.0, max_beta=1.0)
    np.testing.assert_allclose(
        s.alphas_cumprod[:-1], cos.alphas_cumprod[:-1], rtol=1e-12
    )
    np.testing.assert_allclose(s.log_snr[:-1], cos.log_snr[:-1], rtol=1e-12, atol=1e-14)
    zero = Schedule.from_log_snr(
        lambda u: np.where(u < 1, -2 * np.log(u / (1 - np.minimum(u, 0.5))), -np.inf),
        10,
    )
    assert zero.alphas_cumprod[-1] == 0.0 and zero.sigmas[-1] == np.inf


def test_from_alphas_cumprod_round_trips() -> None:
    s = Schedule.cosine(300)
    again = Schedule.from_alphas_cumprod(s.alphas_cumprod)
    np.testing.assert_allclose(again.betas, s.betas, rtol=1e-11)
    np.testing.assert_array_equal(again.alphas_cumprod, s.alphas_cumprod)


def test_linear_endpoint_convention_is_explicit() -> None:
    given = Schedule.linear(250)
    scaled = Schedule.linear(250, scale_by_T=True)
    assert given.betas[0] == 1e-4 and given.betas[-1] == 0.02
    assert scaled.betas[0] == pytest.approx(4e-4) and scaled.betas[-1] == pytest.approx(
        0.08
    )


def test_schedule_is_immutable_and_read_only() -> None:
    s = Schedule.linear(10)
    with pytest.raises(AttributeError, match="immutable"):
        s.betas = np.zeros(10)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        s.alphas_cumprod[0] = 0.5
    with pytest.raises(TypeError, match="constructor"):
        Schedule()
    again = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(again.posterior_variance, s.posterior_variance)


def test_c03_helpers_leave_the_stored_schedule_untouched() -> None:
    s = Schedule.linear(1000)
    snapshot = {n: getattr(s, n).tobytes() for n in TABLES}
    x = np.ones((2, 3), np.float16)
    t = np.array([1, 500])
    diffcore.q_sample(s, x, t, x)
    diffcore.velocity(s, x, t, x)
    diffcore.q_posterior_mean_variance(s, x, x, t)
    diffcore.x_0_from_eps(s, x, t, x)
    for name in TABLES:
        table = getattr(s, name)
        assert table.dtype == np.float64 and isinstance(table, np.ndarray)
        assert table.tobytes() == snapshot[name], name
    assert s.posterior_mean_coef_x0[1] == pytest.approx(
        0.54529149951027148423, rel=1e-12
    )
    assert s.posterior_mean_coef_xt[1] == pytest.approx(
        0.45470849899056467211, rel=1e-12
    )


@pytest.mark.parametrize(
    ("betas", "error", "match"),
    [
        ([0.1, 0.0], ValueError, r"betas must lie in \(0, 1\].*betas\[1\] = 0.0"),
        ([0.1, 1.5], ValueError, r"betas\[1\] = 1.5"),
        ([0.1, np.nan], ValueError, r"betas\[1\] = nan"),
        ([-0.1], ValueError, r"betas\[0\] = -0.1"),
        ([], ValueError, "non-empty"),
        ([[0.1]], ValueError, "1-d"),
        (["a"], TypeError, "real numbers"),
    ],
)
def test_bad_betas(betas: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Schedule.from_betas(betas)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("T", "error"),
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)],
)
@pytest.mark.parametrize(
    "name",
    ["linear", "scaled_linear", "cosine", "sigmoid_betas", "sigmoid_alphas_cumprod"],
)
def test_bad_T(name: str, T: object, error: type) -> None:
    with pytest.raises(error, match="T must"):
        getattr(Schedule, name)(T)


@pytest.mark.parametrize(
    ("indices", "error", "match"),
    [
        ([5, 3], ValueError, "strictly increasing"),
        ([3, 3], ValueError, "strictly increasing"),
        ([0, 10], ValueError, r"\[0, 10\); got values from 0 to 10"),
        ([-1, 3], ValueError, r"got values from -1"),
        ([0.0, 2.0], TypeError, "integers"),
        ([], ValueError, "non-empty"),
    ],
)
def test_bad_respace_indices(indices: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Schedule.linear(10).respace(indices)


def test_bad_alphas_cumprod_and_log_snr() -> None:
    with pytest.raises(ValueError, match="strictly decreasing"):
        Schedule.from_alphas_cumprod([0.9, 0.95])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Schedule.from_alphas_cumprod([1.0, 0.5])
    with pytest.raises(ValueError, match="strictly decreasing"):
        Schedule.from_log_snr(lambda u: u, 5)
    with pytest.raises(ValueError, match="finite"):
        Schedule.from_log_snr(lambda u: np.full_like(u, np.nan), 5)
    with pytest.raises(ValueError, match="shape"):
        Schedule.from_log_snr(lambda u: -u[:2], 5)
    with pytest.raises(ValueError, match="max_beta"):
        Schedule.cosine(10, max_beta=1.5)
    with pytest.raises(ValueError, match="T >= 2"):
        Schedule.linear(1).rescale_zero_terminal_snr()
    with pytest.raises(ValueError, match="first must be"):
        Schedule.linear(5).with_posterior_log_variance("clip")  # type: ignore[arg-type]


def test_tables_survive_alpha_bar_underflow() -> None:
    # alpha_bar underflows float64 (log alpha_bar < -745) while its square root
    # and the posterior weight of x_0 are still normal numbers.
    s = Schedule.from_betas(np.full(1076, 0.5))
    assert s.alphas_cumprod[-1] == 0.0
    expected = 0.5 * 0.5 ** (1075 / 2) / (1 - 0.5**1076)
    assert s.posterior_mean_coef_x0[-1] == pytest.approx(expected, rel=1e-12)
    assert s.sqrt_alphas_cumprod[-1] == pytest.approx(0.5 ** (1076 / 2), rel=1e-12)


def test_tables_cannot_be_made_writeable_again() -> None:
    s = Schedule.linear(10)
    for table in (s.sqrt_alphas_cumprod, s.betas, s.timestep_map):
        with pytest.raises(ValueError, match="WRITEABLE"):
            table.flags.writeable = True
    r = s.respace([0, 5])
    with pytest.raises(ValueError, match="WRITEABLE"):
        r.timestep_map.flags.writeable = True


@pytest.mark.parametrize("name", ["linear", "scaled_linear", "sigmoid_betas"])
def test_bad_beta_endpoints(name: str) -> None:
    build = getattr(Schedule, name)
    with pytest.raises(TypeError, match="beta_start must be a real number; got str"):
        build(10, beta_start="a")
    with pytest.raises(ValueError, match=r"beta_end must lie in \(0, 1\]; got -1"):
        build(10, beta_end=-1)
    with pytest.raises(ValueError, match=r"beta_start must lie in \(0, 1\]; got nan"):
        build(10, beta_start=float("nan"))


def test_bad_log_snr_and_respace_types() -> None:
    with pytest.raises(TypeError, match=r"log_snr must be a callable.*got float 3.0"):
        Schedule.from_log_snr(3.0, 10)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="indices must be a 1-d array of ints; got None"
    ):
        Schedule.linear(10).respace(None)  # type: ignore[arg-type]
