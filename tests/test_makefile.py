"""The Makefile refuses an interpreter that is missing, not Python, or too old."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("python", "says"),
    [
        ("/bin/true", "does not run Python"),  # runs, prints nothing
        ("/nonexistent/python3", "was not found or does not run Python"),
        (
            "printf False; :",  # stands in for an old Python's answer
            "diffcore needs Python 3.11 or newer",
        ),
    ],
)
def test_a_bad_interpreter_is_refused_before_a_venv_is_made(
    tmp_path: Path, python: str, says: str
) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")

    done = subprocess.run(
        ["make", "--no-print-directory", ".venv/bin/python", f"PYTHON={python}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert says in done.stdout + done.stderr
    assert not (tmp_path / ".venv").exists()
