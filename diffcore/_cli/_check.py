"""``diffcore check FILE``: is a third party's schedule valid, and safe in float32?

The file holds betas or alphas_cumprod as ``.npy`` (read with
``allow_pickle=False``), ``.csv`` or ``.json``.  Reading never unpickles.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from .._likelihood import normal_kl
from .._schedule import Float64Array, Schedule
from ._errors import InputError

KINDS = ("betas", "alphas_cumprod")

# 1 - float32(alpha_bar) may differ from the exact 1 - alpha_bar by this much,
# relatively, before a step is reported: about 10 of float32's 24 bits left.
RELATIVE_BOUND = 1e-3

# E[x_0^2] for data spread uniformly over [-1, 1], as images are scaled.
DATA_SECOND_MOMENT = 1.0 / 3.0

NPY_MAGIC = b"\x93NUMPY"


def _numbers(path: Path, cells: list[Any]) -> Float64Array:
    # JSON's true and false would pass float() as 1 and 0: refuse them too.
    try:
        if any(isinstance(cell, bool) for cell in cells):
            raise TypeError
        values = np.array([float(cell) for cell in cells], dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"{path} must hold numbers only; found {cells[:3]!r}..."
        raise InputError(msg) from None
    return values


def plural(count: int, noun: str) -> str:
    """``1 value``, ``2 values``: a count with its noun."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _preferred(kind: str) -> tuple[str, ...]:
    # --kind picks among the named fields; auto prefers betas, the primary one.
    return KINDS if kind == "auto" else (kind, *(k for k in KINDS if k != kind))


def _from_npy(path: Path) -> Float64Array:
    with path.open("rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        msg = f"{path} is not a .npy file (it lacks the NumPy header)"
        raise InputError(msg)

    # allow_pickle=False: an object array is refused, never unpickled.
    array = np.load(path, allow_pickle=False)
    if array.dtype.kind not in "iuf":
        msg = f"{path} must hold real numbers; got dtype {array.dtype}"
        raise InputError(msg)
    return np.asarray(array, dtype=np.float64)


def _from_csv(path: Path, kind: str) -> tuple[Float64Array, str | None]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    header = None
    if rows and not _is_number(rows[0][0]):
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    if header is None and len(rows) == 1:
        return _numbers(path, rows[0]), None  # one row of values
    if header is not None and not rows:
        if any(cell in KINDS for cell in header):
            msg = f"{path} has a header ({','.join(header)}) and no values below it"
        else:  # one line that is neither a header nor numbers
            msg = f"{path} must hold numbers separated by commas; row 1 is "
            msg += f"{','.join(header)!r}"
        raise InputError(msg)

    width = len(header) if header is not None else len(rows[0]) if rows else 1
    for number, row in enumerate(rows, start=1 if header is None else 2):
        if len(row) != width:
            msg = f"{path} row {number} has {plural(len(row), 'cell')}; "
            msg += f"row 1 has {width}"
            raise InputError(msg)

    if width == 1:
        named = header[0] if header and header[0] in KINDS else None
        return _numbers(path, [row[0] for row in rows]), named

    named = next((k for k in _preferred(kind) if header and k in header), None)
    if header is None or named is None:
        msg = f"{path} has {width} columns; give it one column, or a header "
        msg += "naming a betas or alphas_cumprod column"
        raise InputError(msg)
    column = header.index(named)
    return _numbers(path, [row[column] for row in rows]), named


def _json_numbers(path: Path, cells: list[Any]) -> Float64Array:
    # JSON has numbers: a string ("0.2") is refused like a bool, not parsed.
    if any(isinstance(cell, str) for cell in cells):
        msg = f"{path} must hold JSON numbers only; found {cells[:3]!r}..."
        raise InputError(msg)
    return _numbers(path, cells)


def _from_json(path: Path, kind: str) -> tuple[Float64Array, str | None]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document, list):
        return _json_numbers(path, document), None
    if isinstance(document, dict):
        for named in _preferred(kind):
            if isinstance(document.get(named), list):
                return _json_numbers(path, document[named]), named
    msg = f"{path} must hold a list of numbers or an object with a 'betas' or "
    msg += "'alphas_cumprod' list"
    raise InputError(msg)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load(path: Path, kind: str = "auto") -> tuple[Float64Array, str | None]:
    """The numbers in ``path`` and the kind its field names declare, if any.

    Where the file names both kinds, ``kind`` picks one (auto: betas).
    """
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv", ".json"):
        msg = f"FILE must end in .npy, .csv or .json; got {path.name!r}"
        raise InputError(msg)
    try:
        if suffix == ".npy":
            values, declared = _from_npy(path), None
        elif suffix == ".csv":
            values, declared = _from_csv(path, kind)
        else:
            values, declared = _from_json(path, kind)
    except (OSError, ValueError, EOFError, RecursionError) as error:
        msg = f"cannot read {path}: {error}"
        raise InputError(msg) from None

    if values.ndim != 1 or values.size == 0:
        msg = f"{path} must hold a non-empty 1-d list; got shape {values.shape}"
        raise InputError(msg)
    return values, declared


def _guess_kind(values: Float64Array) -> str:
    # alpha_bar starts near 1 and falls; betas start small.
    return "alphas_cumprod" if values[0] > 0.5 else "betas"


def _steps(indices: np.ndarray[Any, Any], limit: int = 6) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    more = f" and {indices.size - limit} more" if indices.size > limit else ""
    return f"t = {shown}{more}"


def prior_kl_bits(schedule: Schedule) -> float:
    """Mean KL(q(x_T | x_0) || N(0, 1)) per dimension in bits, E[x_0^2] = 1/3.

    With a = alpha_bar_T and m2 = E[x_0^2] the KL is
    (a m2 + (1 - a) - 1 - log(1 - a)) / 2 nats; it is 0 when a = 0.
    """
    # The KL is quadratic in the mean, so averaging it over x_0 is the KL at
    # the RMS mean sqrt(a m2).
    a = schedule.alphas_cumprod[-1:]
    mean = np.sqrt(a * DATA_SECOND_MOMENT)
    log_variance = schedule.log_one_minus_alphas_cumprod[-1:]
    zero = np.zeros(1)
    nats = float(normal_kl(mean, log_variance, zero, zero)[0])
    return max(nats, 0.0) / math.log(2.0)


def rounding_problems(schedule: Schedule) -> tuple[list[str], list[str]]:
    """Steps that float32 (failures) or float16 (notes) cannot represent well."""
    alphas_cumprod = schedule.alphas_cumprod
    exact = np.exp(schedule.log_one_minus_alphas_cumprod)
    failures, notes = [], []

    naive = 1.0 - alphas_cumprod.astype(np.float32).astype(np.float64)
    relative = np.abs(naive - exact) / exact
    lossy = np.flatnonzero(relative > RELATIVE_BOUND)
    if lossy.size:
        failures.append(
            f"float32: 1 - alphas_cumprod computed from float32 alphas_cumprod is "
            f"off by up to {relative.max():.3g} relatively (bound "
            f"{RELATIVE_BOUND:g}) at {_steps(lossy)}"
        )
    one = np.flatnonzero(alphas_cumprod.astype(np.float32) == 1.0)
    if one.size:
        failures.append(f"float32: alphas_cumprod rounds to exactly 1 at {_steps(one)}")
    still = np.flatnonzero(schedule.alphas.astype(np.float32) == 1.0)
    if still.size:
        failures.append(
            f"float32: alpha_t = 1 - beta_t rounds to 1 (the step adds no noise) "
            f"at {_steps(still)}"
        )

    half = np.flatnonzero(alphas_cumprod.astype(np.float16) == 1.0)
    if half.size:
        notes.append(f"float16: alphas_cumprod rounds to exactly 1 at {_steps(half)}")
    return failures, notes


def _build(values: Float64Array, kind: str) -> Schedule:
    if kind == "betas":
        return Schedule.from_betas(values)
    return Schedule.from_alphas_cumprod(values)


def _report(schedule: Schedule) -> tuple[list[str], list[str], list[str]]:
    alphas_cumprod = schedule.alphas_cumprod
    T = len(schedule)
    ends = f"alphas_cumprod: {alphas_cumprod[0]:.6g} at t = 0"
    if T > 1:
        ends += f", {alphas_cumprod[-1]:.6g} at t = {T - 1}"
    lines = [
        ends,
        f"terminal SNR: {schedule.snr[-1]:.4g} (log SNR {schedule.log_snr[-1]:.4g})",
        f"prior KL: {prior_kl_bits(schedule):.4g} bits/dim "
        "(KL(q(x_T | x_0) || N(0, I)) for data with E[x_0^2] = 1/3)",
    ]
    failures, notes = rounding_problems(schedule)
    return lines, failures, notes


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["auto", *KINDS]),
    default="auto",
    show_default=True,
    help="What the numbers are.  auto: a field named betas or "
    "alphas_cumprod decides, else a first value above 0.5 means "
    "alphas_cumprod.",
)
@click.pass_context
def check(ctx: click.Context, file: Path, kind: str) -> None:
    """Check the betas or alphas_cumprod in FILE (.npy, .csv or .json).

    Reports whether they form a valid schedule, its terminal SNR, its prior
    KL in bits/dim, and each step that float32 (a failure) or float16 (a
    note) cannot represent well.  Exit code 1 when a check fails.

    .npy files are read without pickle.  JSON holds a list, or an object
    with a "betas" or "alphas_cumprod" list.  CSV holds one column (with or
    without a header) or one row of numbers; a file with more columns needs
    a header naming a betas or alphas_cumprod column, which is read and the
    others ignored, so the CSV of `diffcore schedule` is accepted.  Where
    both kinds are named, --kind picks one (auto: betas).
    """
    values, declared = load(file, kind)
    if kind == "auto":
        kind = declared or _guess_kind(values)
    click.echo(f"file: {file} ({plural(values.size, 'value')} read as {kind})")

    try:
        schedule = _build(values, kind)
    except ValueError as error:
        click.echo(f"valid schedule: no: {error}")
        click.echo("result: FAILED")
        ctx.exit(1)

    lines, failures, notes = _report(schedule)
    click.echo("valid schedule: yes")
    for line in lines + [f"note: {n}" for n in notes]:
        click.echo(line)
    for failure in failures:
        click.echo(f"problem: {failure}")
    click.echo("result: FAILED" if failures else "result: ok")
    ctx.exit(1 if failures else 0)
