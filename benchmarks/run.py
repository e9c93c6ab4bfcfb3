"""diffcore's benchmark suite: ratios measured in one process, one run.

Usage (``make bench`` runs the first)::

    python benchmarks/run.py            # the full tables (15 s on 2 cores)
    python benchmarks/run.py --quick    # tiny sizes, a few repeats (CI smoke run)
    python benchmarks/run.py --markdown table.md   # also write the table there
    python benchmarks/run.py --gpu      # CUDA torch and CuPy rows instead

Every figure is a median over repeats, taken in interleaved order (each
repeat times every contender once, in an order shuffled afresh with a fixed
seed), after warm-up calls.  Times are
reported in microseconds and as multiples of the same framework's copy of one
input array into a preallocated output (the memory-bandwidth unit: a
three-stream elementwise kernel cannot beat about 1.5 of them).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import diffcore

SHAPES = [(1, 3, 64, 64), (16, 3, 64, 64), (128, 3, 64, 64), (64, 4, 128, 128)]
THREADS_ENV = "DIFFCORE_NUM_THREADS"
NUMBA_ENV = "DIFFCORE_NUMBA"
# diffcore's NumPy kernel uses threads from this many elements (4 MiB float32).
THREADED = 1 << 20
QUICK_SHAPES = [(1, 3, 8, 8), (4, 3, 16, 16)]
STEP_SHAPES = [(1, 3, 32, 32), (16, 3, 64, 64)]
# 64 MiB and 256 MiB of float32 for the GPU target (at most 1.6 copies).
GPU_SHAPES = [
    (1, 3, 64, 64),
    (64, 4, 128, 128),
    (256, 4, 128, 128),
    (256, 16, 128, 128),
]
GPU_QUICK_SHAPES = [(1, 3, 8, 8), (64, 4, 128, 128)]


@dataclass
class Row:
    """One line of a results table."""

    case: str
    shape: tuple[int, ...]
    times: dict[str, float] = field(default_factory=dict)
    # competitor -> the diffcore contender it is compared with
    versus: dict[str, str] = field(default_factory=dict)


def measure(
    contenders: dict[str, Callable[[], Any]], repeat: int, number: int
) -> dict[str, float]:
    """Median seconds per call of each contender, interleaved, after warm-up.

    Each repeat times every contender once, in an order shuffled afresh (with a
    fixed seed): a contender timed right after one that dirties tens of MiB
    pays for writing them back, and a fixed order would charge that to the
    same contender every time (measured: 2.4 against 2.0 copies for NumPy
    ``out=`` at 16 MiB, timed after the improved-diffusion pattern).
    """
    for fn in contenders.values():
        fn()
        fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    shuffle = random.Random(0).shuffle
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            shuffle(order)
            for name in order:
                fn = contenders[name]
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def calls_per_sample(nbytes: int) -> int:
    """Calls per timing sample: enough to last about a millisecond."""
    return max(1, min(200, 2_000_000 // max(nbytes, 1)))


# -- NumPy ------------------------------------------------------------------


def with_env(fn: Callable[[], Any], name: str, value: str) -> Callable[[], Any]:
    """fn run with the environment variable ``name`` set to ``value``."""

    def run() -> Any:
        saved = os.environ.get(name)
        os.environ[name] = value
        try:
            return fn()
        finally:
            if saved is None:
                del os.environ[name]
            else:
                os.environ[name] = saved

    return run


def one_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn with diffcore's NumPy kernel held to one thread (DIFFCORE_NUM_THREADS=1)."""
    return with_env(fn, THREADS_ENV, "1")


def numba_found() -> bool:
    """Whether diffcore's Numba kernel runs here (it needs Numba)."""
    from diffcore import _fused

    return _fused.available()


def numpy_q_sample_row(
    schedule: diffcore.Schedule, shape: tuple[int, ...], repeat: int
) -> Row:
    rng = np.random.default_rng(0)
    x_0 = rng.standard_normal(shape, dtype=np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    t = rng.integers(0, len(schedule), shape[0])
    out = np.empty_like(x_0)
    table_a, table_b = (
        schedule.sqrt_alphas_cumprod,
        schedule.sqrt_one_minus_alphas_cumprod,
    )

    def improved_diffusion_pattern() -> Any:
        # The schedule kept as float64 NumPy, gathered and converted on every call.
        a = table_a[t].astype(np.float32).reshape(-1, *([1] * (x_0.ndim - 1)))
        b = table_b[t].astype(np.float32).reshape(a.shape)
        return np.broadcast_to(a, shape) * x_0 + np.broadcast_to(b, shape) * noise

    contenders: dict[str, Callable[[], Any]] = {
        "copy": lambda: np.copyto(out, x_0),
        "diffcore": lambda: diffcore.q_sample(schedule, x_0, t, noise),
        "improved-diffusion pattern": improved_diffusion_pattern,
    }
    if _accepts_out():
        contenders["diffcore out="] = lambda: diffcore.q_sample(
            schedule, x_0, t, noise, out=out
        )
        if x_0.size >= THREADED:
            # Setting the variable costs about a microsecond: noise at this size.
            contenders["diffcore out=, 1 thread"] = one_thread(
                lambda: diffcore.q_sample(schedule, x_0, t, noise, out=out)
            )
            if numba_found():
                contenders["diffcore out=, no Numba"] = with_env(
                    lambda: diffcore.q_sample(schedule, x_0, t, noise, out=out),
                    NUMBA_ENV,
                    "0",
                )
    row = Row("q_sample numpy", shape)
    row.times = measure(contenders, repeat, calls_per_sample(x_0.nbytes))
    row.versus = {"improved-diffusion pattern": "diffcore"}
    return row


def numpy_posterior_row(
    schedule: diffcore.Schedule, shape: tuple[int, ...], repeat: int
) -> Row:
    """q_posterior_sample: three streams in, one out."""
    rng = np.random.default_rng(1)
    x_0, x_t, noise = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    t = rng.integers(1, len(schedule), shape[0])
    out = np.empty_like(x_0)
    tables = [
        schedule.posterior_mean_coef_x0,
        schedule.posterior_mean_coef_xt,
        np.sqrt(schedule.posterior_variance),
    ]
    lead = (-1,) + (1,) * (x_0.ndim - 1)

    def improved_diffusion_pattern() -> Any:
        c0, ct, sd = (table[t].astype(np.float32).reshape(lead) for table in tables)
        return c0 * x_0 + ct * x_t + sd * noise

    contenders: dict[str, Callable[[], Any]] = {
        "copy": lambda: np.copyto(out, x_0),
        "diffcore": lambda: diffcore.q_posterior_sample(schedule, x_0, x_t, t, noise),
        "improved-diffusion pattern": improved_diffusion_pattern,
    }
    if _accepts_out(diffcore.q_posterior_sample):
        contenders["diffcore out="] = lambda: diffcore.q_posterior_sample(
            schedule, x_0, x_t, t, noise, out=out
        )
    row = Row("q_posterior_sample numpy", shape)
    row.times = measure(contenders, repeat, calls_per_sample(x_0.nbytes))
    row.versus = {"improved-diffusion pattern": "diffcore"}
    return row


# -- torch ------------------------------------------------------------------


def torch_rows(
    schedule: diffcore.Schedule,
    shapes: list[tuple[int, ...]],
    repeat: int,
    device: str = "cpu",
) -> list[Row]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return []
    rows = [torch_q_sample_row(schedule, shape, repeat, device) for shape in shapes]
    rows += [torch_posterior_row(schedule, shape, repeat, device) for shape in shapes]
    return rows


def _synchronised(device: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn followed by a device synchronisation (CUDA), so the kernels are timed."""
    if device == "cpu":
        return fn
    import torch

    def timed() -> Any:
        result = fn()
        torch.cuda.synchronize()
        return result

    return timed


def torch_q_sample_row(
    schedule: diffcore.Schedule,
    shape: tuple[int, ...],
    repeat: int,
    device: str = "cpu",
) -> Row:
    import torch

    gen = torch.Generator().manual_seed(0)
    x_0 = torch.randn(shape, generator=gen).to(device)
    noise = torch.randn(shape, generator=gen).to(device)
    t = torch.randint(0, len(schedule), (shape[0],), generator=gen).to(device)
    out = torch.empty_like(x_0)
    # improved-diffusion keeps writable float64 NumPy tables.
    table_a = schedule.sqrt_alphas_cumprod.copy()
    table_b = schedule.sqrt_one_minus_alphas_cumprod.copy()

    def pattern() -> Any:
        a = torch.from_numpy(table_a).to(device)[t].float()
        b = torch.from_numpy(table_b).to(device)[t].float()
        while a.ndim < x_0.ndim:
            a, b = a[..., None], b[..., None]
        return a.expand(x_0.shape) * x_0 + b.expand(x_0.shape) * noise

    contenders: dict[str, Callable[[], Any]] = {
        "copy": lambda: out.copy_(x_0),
        "diffcore": lambda: diffcore.q_sample(schedule, x_0, t, noise),
        "improved-diffusion pattern": pattern,
    }
    if _accepts_out():
        contenders["diffcore out="] = lambda: diffcore.q_sample(
            schedule, x_0, t, noise, out=out
        )
    diffusers = _diffusers()
    if diffusers is not None:
        scheduler = diffusers.DDPMScheduler(num_train_timesteps=len(schedule))
        contenders["diffusers add_noise"] = lambda: scheduler.add_noise(x_0, noise, t)
    row = Row(f"q_sample torch {device}", shape)
    timed = {name: _synchronised(device, fn) for name, fn in contenders.items()}
    row.times = measure(timed, repeat, calls_per_sample(x_0.numel() * 4))
    row.versus = {
        "improved-diffusion pattern": "diffcore",
        "diffusers add_noise": "diffcore",
    }
    return row


def torch_posterior_row(
    schedule: diffcore.Schedule,
    shape: tuple[int, ...],
    repeat: int,
    device: str = "cpu",
) -> Row:
    import torch

    gen = torch.Generator().manual_seed(1)
    x_0, x_t, noise = (torch.randn(shape, generator=gen).to(device) for _ in range(3))
    t = torch.randint(1, len(schedule), (shape[0],), generator=gen).to(device)
    out = torch.empty_like(x_0)
    tables = [
        torch.from_numpy(table.copy()).to(device)
        for table in (
            schedule.posterior_mean_coef_x0,
            schedule.posterior_mean_coef_xt,
            np.sqrt(schedule.posterior_variance),
        )
    ]
    lead = (-1,) + (1,) * (x_0.ndim - 1)

    def pattern() -> Any:
        c0, ct, sd = (table[t].float().reshape(lead) for table in tables)
        return c0 * x_0 + ct * x_t + sd * noise

    contenders: dict[str, Callable[[], Any]] = {
        "copy": lambda: out.copy_(x_0),
        "diffcore": lambda: diffcore.q_posterior_sample(schedule, x_0, x_t, t, noise),
        "improved-diffusion pattern": pattern,
    }
    if _accepts_out(diffcore.q_posterior_sample):
        contenders["diffcore out="] = lambda: diffcore.q_posterior_sample(
            schedule, x_0, x_t, t, noise, out=out
        )
    row = Row(f"q_posterior_sample torch {device}", shape)
    timed = {name: _synchronised(device, fn) for name, fn in contenders.items()}
    row.times = measure(timed, repeat, calls_per_sample(x_0.numel() * 4))
    row.versus = {"improved-diffusion pattern": "diffcore"}
    return row


def cupy_rows(
    schedule: diffcore.Schedule, shapes: list[tuple[int, ...]], repeat: int
) -> list[Row]:
    """q_sample on CuPy arrays against CuPy's copy (GPU table only)."""
    try:
        import cupy
    except ImportError:
        return []
    return [_cupy_row(cupy, schedule, shape, repeat) for shape in shapes]


def _cupy_row(
    cupy: Any, schedule: diffcore.Schedule, shape: tuple[int, ...], repeat: int
) -> Row:
    rng = cupy.random.default_rng(0)
    x_0 = rng.standard_normal(shape, dtype=cupy.float32)
    noise = rng.standard_normal(shape, dtype=cupy.float32)
    t = cupy.asarray(np.random.default_rng(0).integers(0, len(schedule), shape[0]))
    out = cupy.empty_like(x_0)

    def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
        def timed() -> Any:
            result = fn()
            cupy.cuda.Device().synchronize()
            return result

        return timed

    contenders = {
        "copy": synced(lambda: cupy.copyto(out, x_0)),
        "diffcore": synced(lambda: diffcore.q_sample(schedule, x_0, t, noise)),
        "diffcore out=": synced(
            lambda: diffcore.q_sample(schedule, x_0, t, noise, out=out)
        ),
    }
    row = Row("q_sample cupy", shape)
    row.times = measure(contenders, repeat, calls_per_sample(x_0.nbytes))
    return row


def step_rows(shapes: list[tuple[int, ...]], repeat: int) -> list[Row]:
    """Per-step overhead of DDPM and DDIM steps with a model that outputs zeros."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return []
    if not hasattr(diffcore, "ddpm_step") or not hasattr(diffcore, "ddim_step"):
        return []
    return [step_row(shape, repeat) for shape in shapes]


def step_row(shape: tuple[int, ...], repeat: int) -> Row:
    import torch

    schedule = diffcore.Schedule.linear(1000)
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(shape, generator=gen)
    zeros = torch.zeros(shape)
    noise = torch.randn(shape, generator=gen)
    t = 500
    # Precomputed coefficients of the DDPM mean for eps_hat = 0, plus the noise.
    scale = float(
        schedule.posterior_mean_coef_x0[t] / schedule.sqrt_alphas_cumprod[t]
        + schedule.posterior_mean_coef_xt[t]
    )
    sd = float(np.sqrt(schedule.posterior_variance[t]))

    out = torch.empty_like(x_t)
    contenders: dict[str, Callable[[], Any]] = {
        "copy": lambda: out.copy_(x_t),
        "hand loop": lambda: (x_t * scale).add_(noise, alpha=sd),
        "diffcore ddpm_step": lambda: diffcore.ddpm_step(
            schedule, zeros, x_t, t, noise=noise
        ),
        "diffcore ddim_step": lambda: diffcore.ddim_step(
            schedule, zeros, x_t, t, t - 20, eta=0.0
        ),
    }
    diffusers = _diffusers()
    if diffusers is not None:
        ddpm = diffusers.DDPMScheduler(num_train_timesteps=1000)
        ddim = diffusers.DDIMScheduler(num_train_timesteps=1000)
        ddim.set_timesteps(50)
        contenders["diffusers DDPM step"] = lambda: ddpm.step(zeros, t, x_t)
        contenders["diffusers DDIM step"] = lambda: ddim.step(zeros, 501, x_t)
    row = Row("step torch", shape)
    row.times = measure(contenders, repeat, calls_per_sample(x_t.numel() * 4))
    row.versus = {
        "hand loop": "diffcore ddpm_step",
        "diffusers DDPM step": "diffcore ddpm_step",
        "diffusers DDIM step": "diffcore ddim_step",
    }
    return row


def gpu_rows(
    schedule: diffcore.Schedule, shapes: list[tuple[int, ...]], repeat: int
) -> list[Row]:
    """CUDA torch and CuPy rows; empty (with a note) when there is no CUDA GPU."""
    rows: list[Row] = []
    try:
        import torch

        if torch.cuda.is_available():
            rows += torch_rows(schedule, shapes, repeat, device="cuda")
    except ImportError:
        pass
    rows += cupy_rows(schedule, shapes, repeat)
    if not rows:
        print("no CUDA device: neither CUDA torch nor CuPy is usable", file=sys.stderr)
    return rows


# -- construction and import -------------------------------------------------


def construction_row(repeat: int) -> list[Row]:
    rows = []
    for T in (1000, 100_000):
        row = Row("Schedule construction", (T,))
        row.times = measure(
            {
                "linear": lambda T=T: diffcore.Schedule.linear(T),
                "cosine": lambda T=T: diffcore.Schedule.cosine(T),
            },
            max(3, repeat // 4),
            1,
        )
        rows.append(row)
    return rows


def import_row(repeat: int) -> Row:
    """Seconds to import modules in a fresh interpreter (median of runs)."""
    snippets = {
        # Each snippet times its own imports with perf_counter: the wall time
        # of a whole interpreter moves by more than diffcore's import takes.
        "numpy + array_api_compat": (
            "import time; t0 = time.perf_counter();"
            " import numpy, array_api_compat; print(time.perf_counter() - t0)"
        ),
        "diffcore on top": (
            "import time, numpy, array_api_compat; t0 = time.perf_counter();"
            " import diffcore; print(time.perf_counter() - t0)"
        ),
        "first q_sample on NumPy": (
            "import numpy as np, diffcore, time;"
            " s = diffcore.Schedule.linear(1000);"
            " x = np.ones((2, 3), np.float32); t0 = time.perf_counter();"
            " diffcore.q_sample(s, x, np.array([1, 2]), x);"
            " print(time.perf_counter() - t0)"
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in snippets}
    for _ in range(max(3, repeat // 4)):
        for name, code in snippets.items():
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            elapsed = time.perf_counter() - start
            times[name].append(
                float(result.stdout) if result.stdout.strip() else elapsed
            )
    row = Row("import (fresh interpreter)", ())
    row.times = {name: statistics.median(v) for name, v in times.items()}
    return row


# -- output -------------------------------------------------------------------


def _accepts_out(function: Callable[..., Any] | None = None) -> bool:
    import inspect

    target = diffcore.q_sample if function is None else function
    return "out" in inspect.signature(target).parameters


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        return None
    return diffusers


def versions() -> str:
    names = ["diffcore", "numpy", "array-api-compat", "numba", "torch", "diffusers"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine() -> str:
    import os

    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"


def format_rows(rows: list[Row]) -> str:
    """The table: each time in microseconds and as a multiple of the copy.

    The last column is competitor time / diffcore time (above 1: diffcore is
    faster), against the diffcore contender named in the row's ``versus``.
    """
    lines = [
        f"machine: {machine()}",
        f"versions: {versions()}",
        "",
        "x copy: the time as a multiple of the same framework's copy of one input "
        "into a preallocated array.  competitor / diffcore: the competitor's time "
        "over the diffcore row it replaces (the allocating one for q_sample); "
        "above 1, diffcore is faster.  Import rows: a fresh interpreter, "
        "in microseconds, each timed inside it.",
        "",
        "| case | shape | contender | time (us) | x copy | competitor / diffcore |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        copy = row.times.get("copy")
        for name, seconds in row.times.items():
            unit = f"{seconds / copy:.2f}" if copy else ""
            base = row.times.get(row.versus.get(name, ""))
            versus = f"{seconds / base:.2f}" if base else ""
            shape = "x".join(map(str, row.shape))
            lines.append(
                f"| {row.case} | {shape} | {name} | {seconds * 1e6:.1f} "
                f"| {unit} | {versus} |"
            )
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """One line per target of issue 7 that this run measured: met or not."""
    lines = []

    def check(label: str, value: float, limit: float, at_most: bool) -> None:
        met = value <= limit if at_most else value >= limit
        bound = "at most" if at_most else "at least"
        verdict = "met" if met else "NOT met"
        lines.append(f"- {label}: {value:.2f} ({bound} {limit}): {verdict}")

    for row in rows:
        t, big = row.times, math.prod(row.shape) * 4 >= 16 * 2**20
        name = f"{row.case} {'x'.join(map(str, row.shape))}"
        if row.case.startswith("q_sample") and "copy" in t and "diffcore out=" in t:
            if big and row.case in ("q_sample torch cpu", "q_sample numpy"):
                limit = 1.6 if "torch" in row.case else 2.0
                check(
                    f"{name}: out= / copy", t["diffcore out="] / t["copy"], limit, True
                )
            single = t.get("diffcore out=, 1 thread")
            if big and single is not None:
                ratio = single / t["copy"]
                lines.append(f"- {name}: out= on one thread / copy: {ratio:.2f}")
            blocked = t.get("diffcore out=, no Numba")
            if big and blocked is not None:
                ratio = blocked / t["copy"]
                lines.append(f"- {name}: out= without Numba / copy: {ratio:.2f}")
        if "diffusers add_noise" in t:
            ratio = t["diffusers add_noise"] / t["diffcore"]
            limit = 3.0 if row.shape == (1, 3, 64, 64) else 2.0
            check(f"{name}: add_noise / diffcore", ratio, limit, False)
        if row.case == "step torch" and "diffusers DDPM step" in t:
            limit = 4.0 if row.shape == (1, 3, 32, 32) else 1.4
            for kind in ("DDPM", "DDIM"):
                ratio = t[f"diffusers {kind} step"] / t[f"diffcore {kind.lower()}_step"]
                check(f"{name}: diffusers {kind} / diffcore", ratio, limit, False)
        if row.case.startswith("import"):
            extra = t["diffcore on top"] * 1e3
            check("import diffcore on top of numpy (ms)", extra, 30.0, True)
            first = t["first q_sample on NumPy"] * 1e3
            check("first q_sample on NumPy (ms)", first, 50.0, True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (CI smoke run)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed repeats per contender"
    )
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="CUDA torch and CuPy rows (needs a CUDA GPU) instead of the CPU tables",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 31)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    step_shapes = QUICK_SHAPES if args.quick else STEP_SHAPES
    schedule = diffcore.Schedule.linear(1000)

    if args.gpu:
        rows = gpu_rows(
            schedule, GPU_QUICK_SHAPES if args.quick else GPU_SHAPES, repeat
        )
    else:
        rows = [numpy_q_sample_row(schedule, shape, repeat) for shape in shapes]
        rows += [numpy_posterior_row(schedule, shape, repeat) for shape in shapes]
        rows += torch_rows(schedule, shapes, repeat)
        rows += step_rows(step_shapes, repeat)
        if not args.quick:
            rows += construction_row(repeat)
        rows.append(import_row(3 if args.quick else repeat))
    table = format_rows(rows)
    verdicts = targets(rows)
    if verdicts:
        table += "\n\ntargets (issue 7), from this run:\n" + "\n".join(verdicts)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
