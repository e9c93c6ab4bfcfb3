"""Edge cases a fresh user met: wide floats, empty and 0-d arrays, odd inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import diffcore
from diffcore import Schedule

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
