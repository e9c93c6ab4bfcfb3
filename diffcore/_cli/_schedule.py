"""``diffcore schedule NAME``: print or plot one schedule's tables."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import click
import numpy as np

from ._errors import InputError
from ._schedules import MAX_STEPS, SCHEDULES, Column, build, columns

# Figure formats that --plot writes, told apart by the file's suffix.
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _rows(steps: int, rows: int | None) -> list[int]:
    """Indices of ``rows`` evenly spaced steps, first and last included."""
    if rows is None or rows == 0 or rows >= steps:
        return list(range(steps))
    return sorted({round(float(i)) for i in np.linspace(0, steps - 1, rows)})


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _as_table(data: dict[str, Column], picked: list[int]) -> str:
    names = list(data)
    cells = [
        [f"{int(data['t'][i])}"] + [f"{float(data[n][i]):.6g}" for n in names[1:]]
        for i in picked
    ]
    widths = [max(len(n), *(len(r[j]) for r in cells)) for j, n in enumerate(names)]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(lines)


def _as_csv(data: dict[str, Column], picked: list[int]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(data)
    for i in picked:
        writer.writerow(_number(float(column[i])) for column in data.values())
    return buffer.getvalue().rstrip("\n")


def _json_value(value: float) -> float | int | str:
    # JSON has no infinities: write them as the strings float() reads back.
    if not math.isfinite(value):
        return str(value)
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


def _as_json(data: dict[str, Column], picked: list[int], name: str) -> str:
    document: dict[str, object] = {"schedule": name, "T": len(data["t"])}
    for key, column in data.items():
        document[key] = [_json_value(float(column[i])) for i in picked]
    return json.dumps(document, indent=1, allow_nan=False)


def _plot_path(
    ctx: click.Context, param: click.Parameter, path: Path | None
) -> Path | None:
    """Refuse a --plot path that cannot be written before any table is printed."""
    if path is None:
        return None
    if path.suffix.lower() not in PLOT_SUFFIXES:
        msg = f"must end in .png, .pdf or .svg; got {path.name!r}"
        raise click.BadParameter(msg, ctx, param)

    folder = path.parent
    problem = None
    if not folder.exists():
        problem = "does not exist"
    elif not folder.is_dir():
        problem = "is a file, not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = "is not writable"
    if problem is not None:
        msg = f"{str(path)!r} cannot be written: {str(folder)!r} {problem}"
        raise click.BadParameter(msg, ctx, param)
    _try_writing(path, ctx, param)
    return path


def _try_writing(path: Path, ctx: click.Context, param: click.Parameter) -> None:
    """Open path for appending (no truncation) and remove it if it was not there.

    Permission bits do not tell everything: /proc, for one, looks writable to
    root but takes no new files.
    """
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as error:
        msg = f"{str(path)!r} cannot be written: {error.strerror or error}"
        raise click.BadParameter(msg, ctx, param) from None
    if not existed:
        path.unlink(missing_ok=True)


class _ScheduleName(click.Choice):  # type: ignore[type-arg]
    """A schedule name, read with hyphens or underscores alike."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> object:
        if isinstance(value, str) and value.replace("-", "_") in self.choices:
            return value.replace("-", "_")
        return super().convert(value, param, ctx)


@click.command()
@click.argument("name", type=_ScheduleName(sorted(SCHEDULES)), metavar="NAME")
@click.option(
    "--steps",
    "-T",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_STEPS),
    help="Number of steps T.",
)
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "csv", "json"]),
    help="Output format.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=0),
    default=None,
    help="Print this many evenly spaced steps (0: all).  "
    "Default: 21 for a table, all for csv and json.",
)
@click.option(
    "--zero-terminal-snr",
    is_flag=True,
    help="Rescale so that alpha_bar reaches 0 at the last step.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    callback=_plot_path,
    help="Also plot alphas_cumprod, SNR and posterior variance to "
    "this file (.png, .pdf or .svg).",
)
def schedule(
    name: str,
    steps: int,
    fmt: str,
    rows: int | None,
    zero_terminal_snr: bool,
    plot: Path | None,
) -> None:
    """Print the per-step tables of schedule NAME (hyphens or underscores).

    NAME is one of: linear, scaled_linear, cosine, sigmoid_betas,
    sigmoid_alphas_cumprod.

    Columns: t (0-based), betas, alphas_cumprod, one_minus_alphas_cumprod,
    log_snr and posterior_variance, all from diffcore's float64 tables.
    JSON writes infinities as the strings "inf" and "-inf".
    """
    try:
        table = build(name, steps, zero_terminal_snr)
    except ValueError as error:
        raise InputError(str(error)) from None

    data = columns(table)
    if fmt == "table":
        picked = _rows(steps, 21 if rows is None else rows)
        click.echo(_as_table(data, picked))
    elif fmt == "csv":
        click.echo(_as_csv(data, _rows(steps, rows)))
    else:
        click.echo(_as_json(data, _rows(steps, rows), name))

    if plot is not None:
        from ._figures import plot_schedules

        label = name + (" (zero terminal SNR)" if zero_terminal_snr else "")
        plot_schedules({label: table}, plot)
        click.echo(f"wrote {plot}", err=True)
