"""Conversions between eps, x_0, v and score, and the VP/VE noise levels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

from ._helpers import to_numpy

SCHEDULE = Schedule.linear(1000)


def test_c11_v_signs_and_round_trips() -> None:
    # (b): linear T = 1000, t = 499, x_0 = 1, eps = -0.5.
    x_0, eps = np.array([1.0]), np.array([-0.5])
    x_t = diffcore.q_sample(SCHEDULE, x_0, 499, eps)
    v = diffcore.velocity(SCHEDULE, x_0, 499, eps)
    assert SCHEDULE.sqrt_alphas_cumprod[499] == pytest.approx(
        0.28033416288739807701, rel=1e-14
    )
    assert SCHEDULE.sqrt_one_minus_alphas_cumprod[499] == pytest.approx(
        0.95990247271179678041, rel=1e-14
    )
    assert x_t[0] == pytest.approx(-0.1996170734685003132, rel=1e-14)
    assert v[0] == pytest.approx(-1.1000695541554958189, rel=1e-14)
    assert diffcore.x_0_from_v(SCHEDULE, x_t, 499, v)[0] == pytest.approx(
        1.0, rel=1e-14
    )
    assert diffcore.eps_from_v(SCHEDULE, x_t, 499, v)[0] == pytest.approx(
        -0.5, rel=1e-14
    )


def test_c11_v_signs_at_alpha_0_6() -> None:
    # (a): alpha = 0.6, sigma = 0.8 is alpha_bar = 0.36, one step with beta = 0.64.
    s = Schedule.from_betas([0.64])
    x_0, eps = np.array([1.0]), np.array([-0.5])
    x_t = diffcore.q_sample(s, x_0, 0, eps)
    v = diffcore.velocity(s, x_0, 0, eps)
    assert x_t[0] == pytest.approx(0.2, rel=1e-14)
    assert v[0] == pytest.approx(-1.1, rel=1e-14)
    assert diffcore.x_0_from_v(s, x_t, 0, v)[0] == pytest.approx(1.0, rel=1e-14)
    assert diffcore.eps_from_v(s, x_t, 0, v)[0] == pytest.approx(-0.5, rel=1e-14)


def test_c10_zero_snr_v_is_exact_and_eps_refuses() -> None:
    s = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
    x_t, v = np.array([0.3]), np.array([-0.7])
    assert diffcore.x_0_from_v(s, x_t, 999, v)[0] == 0.7
    assert diffcore.eps_from_v(s, x_t, 999, v)[0] == 0.3
    with pytest.raises(ValueError, match=r"alphas_cumprod is 0.*v-prediction"):
        diffcore.x_0_from_eps(s, x_t, 999, v)
    with pytest.raises(ValueError, match="alphas_cumprod is 0"):
        diffcore.x_0_from_eps(s, np.ones(2), np.array([5, 999]), np.ones(2))


def test_conversions_round_trip_on_every_library(xp: Any) -> None:
    rng = np.random.default_rng(5)
    x_0_np, eps_np = rng.standard_normal((2, 3, 4))
    x_0, eps = xp.asarray(x_0_np), xp.asarray(eps_np)
    t = xp.asarray([3, 400, 999])
    x_t = diffcore.q_sample(SCHEDULE, x_0, t, eps)
    v = diffcore.velocity(SCHEDULE, x_0, t, eps)
    score = diffcore.score_from_eps(SCHEDULE, x_t, t, eps)
    checks = {
        "x_0_from_eps": (diffcore.x_0_from_eps(SCHEDULE, x_t, t, eps), x_0_np),
        "eps_from_x_0": (diffcore.eps_from_x_0(SCHEDULE, x_t, t, x_0), eps_np),
        "x_0_from_v": (diffcore.x_0_from_v(SCHEDULE, x_t, t, v), x_0_np),
        "eps_from_v": (diffcore.eps_from_v(SCHEDULE, x_t, t, v), eps_np),
        "eps_from_score": (diffcore.eps_from_score(SCHEDULE, x_t, t, score), eps_np),
    }
    for name, (got, want) in checks.items():
        # x_0 from eps at t = 3 divides by sigma ~ 0.02: allow for that conditioning.
        np.testing.assert_allclose(
            to_numpy(got), want, rtol=1e-10, atol=1e-11, err_msg=name
        )
    sigma = SCHEDULE.sqrt_one_minus_alphas_cumprod[[3, 400, 999]][:, None]
    np.testing.assert_allclose(to_numpy(score), -eps_np / sigma, rtol=1e-14)


def test_c08_sigma_conversions_at_the_edges() -> None:
    ab = np.array([4.8973451890853435e-08, 2.0**-24, 0.0, 1.0, 1e-10])
    sigma = diffcore.sigmas_from_alphas_cumprod(ab)
    expected = [4518.763698655855888, 4095.999877929685681, np.inf, 0.0, 99999.999995]
    np.testing.assert_allclose(sigma, expected, rtol=1e-13)
    assert not np.isnan(sigma).any()
    back = diffcore.alphas_cumprod_from_sigmas(sigma)
    np.testing.assert_allclose(back, ab, rtol=1e-12)
    half = diffcore.sigmas_from_alphas_cumprod(np.array([6e-8, 0.5], np.float16))
    assert half.dtype == np.float32 and np.isfinite(half).all()
    assert (
        diffcore.alphas_cumprod_from_sigmas(np.array([2.0], np.float16)).dtype
        == np.float32
    )


def test_c08_float16_rounding_of_small_alpha_bar_is_what_the_docs_warn_about() -> None:
    assert float(np.float16(4.8973451890853435e-08)) == 5.960464477539063e-08
    assert diffcore.sigmas_from_alphas_cumprod(np.array([2.3305818391693686813e-10]))[
        0
    ] == pytest.approx(65504, rel=1e-6)


def test_sigma_conversions_on_every_library(xp: Any) -> None:
    ab = xp.asarray([0.0, 0.25, 1.0], dtype=xp.float64)
    np.testing.assert_allclose(
        to_numpy(diffcore.sigmas_from_alphas_cumprod(ab)),
        [np.inf, 3**0.5, 0.0],
        rtol=1e-15,
    )


def test_bad_conversion_input() -> None:
    with pytest.raises(ValueError, match=r"alphas_cumprod must lie in \[0, 1\]"):
        diffcore.sigmas_from_alphas_cumprod(np.array([1.5]))
    with pytest.raises(ValueError, match="sigmas must be non-negative"):
        diffcore.alphas_cumprod_from_sigmas(np.array([-1.0]))
    with pytest.raises(
        TypeError, match="alphas_cumprod must have a real floating dtype"
    ):
        diffcore.sigmas_from_alphas_cumprod(np.array([0, 1]))
    with pytest.raises(ValueError, match="eps must have the shape of x_t"):
        diffcore.x_0_from_eps(SCHEDULE, np.ones(3), 1, np.ones(2))


def test_c10_error_names_only_the_zero_snr_steps() -> None:
    s = Schedule.scaled_linear(1000).rescale_zero_terminal_snr()
    with pytest.raises(ValueError, match=r"got t = 999 there"):
        diffcore.x_0_from_eps(s, np.ones(4), np.array([0, 1, 999, 999]), np.ones(4))
