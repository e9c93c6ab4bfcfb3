"""The named schedules the command line offers, and their tables as columns."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .._schedule import Schedule

Column = NDArray[np.float64]

# Constructors by command-line name, each with its defaults from the papers.
SCHEDULES: dict[str, Callable[[int], Schedule]] = {
    "linear": Schedule.linear,
    "scaled_linear": Schedule.scaled_linear,
    "cosine": Schedule.cosine,
    "sigmoid_betas": Schedule.sigmoid_betas,
    "sigmoid_alphas_cumprod": Schedule.sigmoid_alphas_cumprod,
}

# The most steps any command accepts: tables of 10**6 steps take a few
# seconds and tens of megabytes; more is a typo, not a schedule.
MAX_STEPS = 1_000_000

# The three that every tutorial compares; the demo shows these.
DEMO_SCHEDULES = ("linear", "cosine", "scaled_linear")


def build(name: str, steps: int, zero_terminal_snr: bool = False) -> Schedule:
    """The schedule ``name`` with ``steps`` steps, rescaled to zero terminal SNR."""
    schedule = SCHEDULES[name](steps)
    if zero_terminal_snr:
        schedule = schedule.rescale_zero_terminal_snr()
    return schedule


def columns(schedule: Schedule) -> dict[str, Column]:
    """The per-step quantities that ``diffcore schedule`` prints, by name."""
    return {
        "t": np.arange(len(schedule), dtype=np.float64),
        "betas": schedule.betas,
        "alphas_cumprod": schedule.alphas_cumprod,
        "one_minus_alphas_cumprod": np.exp(schedule.log_one_minus_alphas_cumprod),
        "log_snr": schedule.log_snr,
        "posterior_variance": schedule.posterior_variance,
    }
