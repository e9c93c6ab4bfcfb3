"""The demo's generation part: DDPM and DDIM driven by an exact model of patches.

The data are small patches of the photograph (and their mirror images); the
model is the exact denoiser of their empirical distribution
(:class:`diffcore.reference.EmpiricalDistribution`), which is what a network
trained to zero loss on those patches would learn.  Such a model memorises,
so every sample should land on one of the patches: the check says how close.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from .._sampling import sample, timesteps_for
from .._schedule import Schedule
from ..reference import EmpiricalDistribution
from ._figures import plot_samples

Pixels = NDArray[np.float32]

PATCH = 16  # side of a patch, in pixels of the shrunk image
SHRUNK_SIDE = 64  # the image is averaged down to about this longest side first
SAMPLES = 16  # images drawn by each sampler
DDIM_STEPS = 50
DDPM_STEPS = 200  # ancestral steps on the respaced schedule (Nichol and Dhariwal)
# A sample "lands on" a patch when its RMS distance to it is below this.
LANDED = 0.05


def patches(x_0: Pixels) -> Pixels:
    """PATCH x PATCH patches of the shrunk image, stride 4, with mirror images.

    Returns float32 of shape (N, 3, PATCH, PATCH).
    """
    # Never more than the shorter side: a 1 x 5000 strip keeps its one row.
    factor = max(1, min(max(x_0.shape[1:]) // SHRUNK_SIDE, *x_0.shape[1:]))
    h, w = (x_0.shape[1] // factor) * factor, (x_0.shape[2] // factor) * factor
    small = x_0[:, :h, :w].reshape(3, h // factor, factor, w // factor, factor)
    small = small.mean(axis=(2, 4))

    side = min(PATCH, *small.shape[1:])
    windows = np.lib.stride_tricks.sliding_window_view(small, (side, side), (1, 2))
    picked = windows[:, ::4, ::4].reshape(3, -1, side, side).transpose(1, 0, 2, 3)
    return np.concatenate([picked, picked[..., ::-1]]).astype(np.float32)


def _run(
    schedule: Schedule, model: Any, x_T: Any, label: str, steps: Any, **options: Any
) -> Any:
    with tqdm(
        total=len(steps), desc=label, unit="step", leave=False, disable=None
    ) as bar:
        return sample(
            schedule,
            model,
            x_T,
            steps,
            progress=lambda i, t, x: bar.update(1),
            **options,
        )


def generate(x_0: Pixels, T: int, seed: int, lib: Any, out: Path) -> tuple[str, bool]:
    """Draw SAMPLES patches with DDPM and DDIM (eta = 0); plot and check them."""
    data = patches(x_0)
    flat = data.reshape(len(data), -1)
    schedule = Schedule.linear(T)
    model = EmpiricalDistribution(flat.astype(np.float64)).model(schedule)

    rng = np.random.default_rng(seed)
    x_T = lib.to_library(rng.standard_normal((SAMPLES, flat.shape[1]), np.float32))
    kept = np.sort(timesteps_for(T, min(DDPM_STEPS, T), "trailing"))
    short = schedule.respace(kept)
    ddpm_steps = np.arange(len(short) - 1, -1, -1)
    ddim_steps = timesteps_for(T, min(DDIM_STEPS, T), "trailing")
    drawn = {
        f"DDPM, {len(short)} of {T} steps": _run(
            short, model, x_T, "DDPM", ddpm_steps, method="ddpm", generator=seed
        ),
        f"DDIM (eta = 0), {len(ddim_steps)} steps": _run(
            schedule, model, x_T, "DDIM", ddim_steps, method="ddim"
        ),
    }
    drawn = {k: lib.to_numpy(v).reshape(-1, *data.shape[1:]) for k, v in drawn.items()}

    shown = {
        f"{SAMPLES} of the {len(data)} patches": data[:: max(1, len(data) // SAMPLES)][
            :SAMPLES
        ],
        **drawn,
    }
    path = out / "samples.png"
    plot_samples(
        shown, path, "exact model of the photograph's patches, linear schedule"
    )
    click.echo(f"wrote {path}")
    return nearest_table(drawn, flat)


def nearest_table(drawn: dict[str, Pixels], flat: Pixels) -> tuple[str, bool]:
    """RMS distance from each sample to its nearest training patch."""
    lines, passed = [], True
    for label, images in drawn.items():
        batch = images.reshape(len(images), -1).astype(np.float64)
        gaps = batch[:, None, :] - flat[None, :, :].astype(np.float64)
        nearest = np.sqrt((gaps**2).mean(axis=2)).min(axis=1)
        ok = bool(np.all(nearest < LANDED))
        passed &= ok
        lines.append(
            f"{label:>28}: nearest-patch RMS distance median {np.median(nearest):.2e}, "
            f"max {nearest.max():.2e} ({'yes' if ok else 'NO'}: below {LANDED:g})"
        )
    return "\n".join(lines), passed
