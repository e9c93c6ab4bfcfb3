"""Figures for the demo and ``diffcore schedule --plot``, drawn with Agg.

Figures are built as ``matplotlib.figure.Figure`` objects and saved
directly, so nothing touches pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from .._schedule import Schedule
from ._errors import InputError

Image = NDArray[np.floating]


def save(figure: Figure, path: Path) -> None:
    """Save ``figure`` to ``path``; an unwritable path is a one-line error."""
    try:
        figure.savefig(path, dpi=110)
    except (OSError, ValueError) as error:
        msg = f"cannot write {path}: {error}"
        raise InputError(msg) from None


def plot_schedules(schedules: dict[str, Schedule], path: Path) -> None:
    """alphas_cumprod, SNR (log scale) and posterior variance against t."""
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    panels = figure.subplots(1, 3)
    for label, schedule in schedules.items():
        t = np.arange(len(schedule))
        panels[0].plot(t, schedule.alphas_cumprod, label=label)
        panels[1].plot(t, schedule.snr, label=label)
        # The t = 0 posterior variance is exactly 0: a log axis starts at t = 1.
        panels[2].plot(t[1:], schedule.posterior_variance[1:], label=label)

    titles = (
        r"$\bar\alpha_t$",
        r"SNR $= \bar\alpha_t / (1 - \bar\alpha_t)$",
        r"posterior variance $\tilde\beta_t$",
    )
    for panel, title in zip(panels, titles, strict=True):
        panel.set_title(title)
        panel.set_xlabel("t (0-based)")
        panel.grid(alpha=0.3)
    panels[1].set_yscale("log")
    panels[2].set_yscale("log")
    panels[0].legend()
    save(figure, path)


def to_picture(x: Image) -> Image:
    """A (3, H, W) image in model units ([-1, 1]) as (H, W, 3) values in [0, 1]."""
    picture: Image = np.clip((np.moveaxis(x, 0, -1) + 1.0) / 2.0, 0.0, 1.0)
    return picture


def plot_strips(
    rows: Mapping[str, Sequence[Image]], titles: Sequence[str], path: Path
) -> None:
    """One labelled row of (3, H, W) images per entry of ``rows``."""
    columns = len(titles)
    figure = Figure(figsize=(1.6 * columns, 1.9 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c, image in enumerate(images):
            axes[r, c].imshow(to_picture(image), interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=10)
    save(figure, path)


def plot_samples(rows: Mapping[str, Image], path: Path, title: str) -> None:
    """Grids of generated images, one panel per sampler; each of shape (N, 3, h, w)."""
    figure = Figure(figsize=(4.2 * len(rows), 4.6), layout="constrained")
    axes = figure.subplots(1, len(rows), squeeze=False)[0]
    for axis, (label, batch) in zip(axes, rows.items(), strict=True):
        axis.imshow(_grid(batch), interpolation="nearest")
        axis.set_title(label, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    save(figure, path)


def _grid(batch: Image, pad: int = 1) -> Image:
    """(N, 3, h, w) images tiled into a square grid with white gaps."""
    n, _, h, w = batch.shape
    side = int(np.ceil(np.sqrt(n)))
    grid = np.ones(((h + pad) * side + pad, (w + pad) * side + pad, 3))
    for k in range(n):
        i, j = divmod(k, side)
        top, left = pad + i * (h + pad), pad + j * (w + pad)
        grid[top : top + h, left : left + w] = to_picture(batch[k])
    return grid
