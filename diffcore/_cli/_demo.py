"""``diffcore demo``: diffusion on a real photograph, shown and checked.

Noise is drawn by NumPy from ``--seed`` and moved to the chosen library, so
every backend shows the same picture; only the arithmetic runs there.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from .._forward import q_sample, q_step_sample
from .._posterior import q_posterior_mean_variance
from .._schedule import Schedule
from ._errors import InputError
from ._figures import plot_schedules, plot_strips
from ._images import Photo, load_image, sample_photo
from ._schedules import DEMO_SCHEDULES, MAX_STEPS, build

Pixels = NDArray[np.float32]

# Fractions of T at which the strips and the check tables look at x_t.
FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)

# A statistic passes when it lies within this many standard errors.
TOLERANCE = 5.0

LIBRARIES = {"numpy": "NumPy", "torch": "PyTorch", "cupy": "CuPy", "jax": "JAX"}


@dataclass(frozen=True)
class Library:
    """How to move NumPy arrays into one array library and back."""

    name: str
    to_library: Callable[[Pixels], Any]
    to_numpy: Callable[[Any], Pixels]


def library(name: str) -> Library:
    """The converters for ``--backend name``; a missing library is a usage error."""
    module = {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "jax": "jax.numpy"}
    try:
        xp = importlib.import_module(module[name])
    except ImportError as error:
        msg = f"--backend {name} needs {LIBRARIES[name]}, which failed to import: "
        raise InputError(msg + str(error)) from None

    if name == "torch":
        return Library(name, xp.from_numpy, lambda x: x.detach().cpu().numpy())
    if name == "cupy":
        return Library(name, xp.asarray, xp.asnumpy)
    return Library(name, xp.asarray, np.asarray)


def checkpoints(T: int) -> list[int]:
    """The 0-based steps shown: about FRACTIONS of T, the last step included."""
    return sorted({min(T - 1, max(0, round(f * T) - 1)) for f in FRACTIONS})


@dataclass(frozen=True)
class Fit:
    """x_t regressed on x_0 over pixels: the slope and the residual's spread."""

    slope: float
    noise_std: float


def fit(x_t: Pixels, x_0: Pixels, sqrt_alpha_bar: float) -> Fit:
    """Estimate sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) from one x_t."""
    noisy, clean = x_t.astype(np.float64).ravel(), x_0.astype(np.float64).ravel()
    centred = clean - clean.mean()
    slope = float(centred @ noisy / (centred @ centred))
    return Fit(slope, float(np.std(noisy - sqrt_alpha_bar * clean)))


def within(fitted: Fit, schedule: Schedule, t: int, x_0: Pixels) -> bool:
    """Whether a fit agrees with q(x_t | x_0) within TOLERANCE standard errors."""
    n = x_0.size
    sigma = float(schedule.sqrt_one_minus_alphas_cumprod[t])
    slope_error = sigma / (float(np.std(x_0)) * np.sqrt(n))
    std_error = sigma / np.sqrt(2.0 * n)
    slope_gap = abs(fitted.slope - schedule.sqrt_alphas_cumprod[t])
    std_gap = abs(fitted.noise_std - sigma)
    return bool(
        slope_gap <= TOLERANCE * slope_error + 1e-5
        and std_gap <= TOLERANCE * std_error + 1e-5
    )


class Noise:
    """Standard normal draws from one seeded NumPy generator, moved to a library."""

    def __init__(self, seed: int, lib: Library) -> None:
        self.rng = np.random.default_rng(seed)
        self.lib = lib

    def like(self, shape: tuple[int, ...]) -> Any:
        draws = self.rng.standard_normal(shape, dtype=np.float32)
        return self.lib.to_library(draws)


def closed_form(
    schedule: Schedule, x_0: Pixels, steps: list[int], noise: Noise
) -> dict[int, Pixels]:
    """x_t ~ q(x_t | x_0) at each of ``steps`` in one batched call (one noise)."""
    lib = noise.lib
    batch = np.repeat(x_0[None], len(steps), axis=0)
    shared = np.repeat(lib.to_numpy(noise.like((1, *x_0.shape))), len(steps), axis=0)
    t = np.asarray(steps, dtype=np.int64)
    x_t = q_sample(schedule, lib.to_library(batch), t, lib.to_library(shared))
    return dict(zip(steps, lib.to_numpy(x_t), strict=True))


def chain(
    schedule: Schedule, x_0: Pixels, steps: list[int], noise: Noise, label: str
) -> dict[int, Pixels]:
    """Run the Markov chain q(x_t | x_{t-1}) from x_0 and keep x_t at ``steps``."""
    lib = noise.lib
    x = lib.to_library(x_0[None])
    kept = {}
    for t in tqdm(
        range(len(schedule)),
        desc=f"chain {label}",
        unit="step",
        leave=False,
        disable=None,
    ):
        x = q_step_sample(schedule, x, t, noise.like(tuple(x_0[None].shape)))
        if t in steps:
            kept[t] = lib.to_numpy(x)[0]
    return kept


def reverse_given_x_0(
    schedule: Schedule, x_0: Pixels, steps: list[int], noise: Noise, label: str
) -> tuple[dict[int, Pixels], Pixels]:
    """Run q(x_{t-1} | x_t, x_0) from x_{T-1} ~ q(x_{T-1} | x_0) down past t = 0.

    Returns x_t at ``steps`` and the final state, which the t = 0 posterior (a
    point mass) puts exactly at x_0.
    """
    lib = noise.lib
    shape = tuple(x_0[None].shape)
    truth = lib.to_library(x_0[None])
    T = len(schedule)
    x = q_sample(schedule, truth, T - 1, noise.like(shape))
    kept = {}
    for t in tqdm(
        range(T - 1, -1, -1),
        desc=f"reverse {label}",
        unit="step",
        leave=False,
        disable=None,
    ):
        if t in steps:
            kept[t] = lib.to_numpy(x)[0]
        mean, variance, _ = q_posterior_mean_variance(schedule, truth, x, t)
        x = mean + variance**0.5 * noise.like(shape)
    return kept, lib.to_numpy(x)[0]


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)


def forward_table(
    schedules: dict[str, Schedule],
    x_0: Pixels,
    closed: dict[str, dict[int, Pixels]],
    chained: dict[str, dict[int, Pixels]],
) -> tuple[str, bool]:
    """Closed form against the iterated chain: slope and noise std per step."""
    header = [
        "schedule",
        "t",
        "sqrt(ab)",
        "closed",
        "chain",
        "sqrt(1-ab)",
        "closed",
        "chain",
        "ok",
    ]
    rows, passed = [], True
    for name, schedule in schedules.items():
        for t in closed[name]:
            root = float(schedule.sqrt_alphas_cumprod[t])
            a, b = fit(closed[name][t], x_0, root), fit(chained[name][t], x_0, root)
            ok = within(a, schedule, t, x_0) and within(b, schedule, t, x_0)
            passed &= ok
            rows.append(
                [
                    name,
                    str(t),
                    f"{root:.5f}",
                    f"{a.slope:.5f}",
                    f"{b.slope:.5f}",
                    f"{schedule.sqrt_one_minus_alphas_cumprod[t]:.5f}",
                    f"{a.noise_std:.5f}",
                    f"{b.noise_std:.5f}",
                    "yes" if ok else "NO",
                ]
            )
    return _format_table(header, rows), passed


def reverse_table(
    schedules: dict[str, Schedule],
    x_0: Pixels,
    reversed_: dict[str, tuple[dict[int, Pixels], Pixels]],
) -> tuple[str, bool]:
    """The reverse chain's marginals against q(x_t | x_0), and its end point."""
    header = ["schedule", "t", "sqrt(ab)", "slope", "sqrt(1-ab)", "noise std", "ok"]
    rows, passed = [], True
    for name, schedule in schedules.items():
        kept, final = reversed_[name]
        for t in sorted(kept):
            root = float(schedule.sqrt_alphas_cumprod[t])
            fitted = fit(kept[t], x_0, root)
            ok = within(fitted, schedule, t, x_0)
            passed &= ok
            rows.append(
                [
                    name,
                    str(t),
                    f"{root:.5f}",
                    f"{fitted.slope:.5f}",
                    f"{schedule.sqrt_one_minus_alphas_cumprod[t]:.5f}",
                    f"{fitted.noise_std:.5f}",
                    "yes" if ok else "NO",
                ]
            )
        gap = float(np.max(np.abs(final - x_0)))
        passed &= gap == 0.0
        rows.append(
            [
                name,
                "end",
                "",
                f"max |x - x_0| = {gap:.3g}",
                "",
                "",
                "yes" if gap == 0.0 else "NO",
            ]
        )
    return _format_table(header, rows), passed


@click.command()
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A photograph (PNG, JPEG, ...) instead of matplotlib's "
    "bundled grace_hopper.jpg.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("diffcore-demo"),
    show_default=True,
    help="Folder for the figures and the check tables.",
)
@click.option(
    "--backend",
    type=click.Choice(list(LIBRARIES)),
    default="numpy",
    show_default=True,
    help="Array library that does the arithmetic.",
)
@click.option(
    "--seed",
    # The demo's three parts draw from seed, seed + 1 and seed + 2, and
    # seeds must lie in [0, 2**63).
    type=click.IntRange(min=0, max=2**63 - 3),
    default=0,
    show_default=True,
    help="Seed of the NumPy generator that draws all noise.",
)
@click.option(
    "--steps",
    "-T",
    type=click.IntRange(min=8, max=MAX_STEPS),
    default=1000,
    show_default=True,
    help="Number of diffusion steps T.",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=8, max=2048),
    default=256,
    show_default=True,
    help="Larger images are shrunk so that their longest side is this.",
)
def demo(
    image: Path | None, out: Path, backend: str, seed: int, steps: int, max_side: int
) -> None:
    """Noise a photograph with the linear, cosine and scaled-linear schedules.

    Writes into OUT: forward_process.png (x_0 ... x_T for each schedule),
    schedules.png (alphas_cumprod, SNR and posterior variance against t),
    reverse_given_x0.png (the reverse chain driven by the true image),
    samples.png (DDPM and DDIM with an exact model of the image's patches)
    and checks.txt, the tables it prints: the closed form q(x_t | x_0)
    against the iterated chain, the reverse chain q(x_{t-1} | x_t, x_0)
    returning exactly to the image, and the samples landing on patches.
    Exit code 1 if a check fails.
    """
    started = time.perf_counter()
    lib = library(backend)
    source = image if image is not None else sample_photo()
    photo = load_image(source, max_side)
    _check_contrast(source, photo)
    x_0 = photo.x_0
    _make_folder(out)
    click.echo(
        f"image: {source} -> {x_0.shape[2]} x {x_0.shape[1]} pixels, "
        f"T = {steps}, backend {backend}, seed {seed}"
    )

    schedules = {name: build(name, steps) for name in DEMO_SCHEDULES}
    shown = checkpoints(steps)
    passed = _forward_part(schedules, x_0, shown, Noise(seed, lib), out)
    passed &= _reverse_part(schedules, x_0, shown, Noise(seed + 1, lib), out)
    passed &= _generation_part(x_0, steps, seed + 2, lib, out)

    click.echo(f"done in {time.perf_counter() - started:.1f} s")
    if not passed:
        click.get_current_context().exit(1)


def _check_contrast(source: Path, photo: Photo) -> None:
    """Refuse an image of one flat colour: no slope of x_t on x_0 can be fitted."""
    if float(np.ptp(photo.x_0)) > 0.0:
        return
    level = photo.stored_value(float(photo.x_0.flat[0]))
    msg = (
        f"the image {source} has no variation (every pixel value is {level}); "
        "the demo fits x_t against x_0 and needs an image with some contrast"
    )
    raise click.BadParameter(msg, param_hint="'--image'")


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the output folder {out}: {error}"
        raise InputError(msg) from None
    if not os.access(out, os.W_OK | os.X_OK):
        msg = f"cannot write into the output folder {out}: permission denied"
        raise InputError(msg)


def _wrote(path: Path) -> None:
    click.echo(f"wrote {path}")


def _forward_part(
    schedules: dict[str, Schedule],
    x_0: Pixels,
    shown: list[int],
    noise: Noise,
    out: Path,
) -> bool:
    closed = {n: closed_form(s, x_0, shown, noise) for n, s in schedules.items()}
    titles = ["x_0 (image)"] + [f"t = {t}" for t in shown]
    strips = {n: [x_0, *closed[n].values()] for n in schedules}
    plot_strips(strips, titles, out / "forward_process.png")
    _wrote(out / "forward_process.png")
    plot_schedules(schedules, out / "schedules.png")
    _wrote(out / "schedules.png")

    chained = {n: chain(s, x_0, shown, noise, n) for n, s in schedules.items()}
    table, passed = forward_table(schedules, x_0, closed, chained)
    heading = (
        "closed form q(x_t | x_0) against the chain q(x_t | x_{t-1}) run "
        f"t + 1 times; slope and noise std of x_t over {x_0.size} pixels "
        f"(pass: within {TOLERANCE:g} standard errors)"
    )
    _print_table(out / "checks.txt", heading, table, "w")
    return passed


def _reverse_part(
    schedules: dict[str, Schedule],
    x_0: Pixels,
    shown: list[int],
    noise: Noise,
    out: Path,
) -> bool:
    runs = {n: reverse_given_x_0(s, x_0, shown, noise, n) for n, s in schedules.items()}
    titles = [f"t = {t}" for t in reversed(shown)] + ["end (t = 0 step)"]
    strips = {
        n: [*(kept[t] for t in reversed(shown)), end] for n, (kept, end) in runs.items()
    }
    plot_strips(strips, titles, out / "reverse_given_x0.png")
    _wrote(out / "reverse_given_x0.png")

    table, passed = reverse_table(schedules, x_0, runs)
    heading = (
        "reverse chain q(x_{t-1} | x_t, x_0) driven by the true image: "
        "x_t keeps the law q(x_t | x_0), and the last step lands on x_0"
    )
    _print_table(out / "checks.txt", heading, table, "a", announce=False)
    return passed


def _generation_part(x_0: Pixels, T: int, seed: int, lib: Library, out: Path) -> bool:
    from ._generate import LANDED, generate

    table, passed = generate(x_0, T, seed, lib, out)
    heading = (
        "DDPM and DDIM with the exact model of the image's patches: each "
        f"sample should land on a patch (RMS distance below {LANDED:g})"
    )
    _print_table(out / "checks.txt", heading, table, "a")
    return passed


def _print_table(
    path: Path, heading: str, table: str, mode: str, announce: bool = True
) -> None:
    click.echo(f"\n{heading}\n{table}\n")
    try:
        with path.open(mode, encoding="utf-8") as handle:
            handle.write(f"{heading}\n{table}\n\n")
    except OSError as error:
        msg = f"cannot write {path}: {error}"
        raise InputError(msg) from None
    if announce and mode == "a":
        _wrote(path)
