"""The benchmark suite runs at a tiny size and prints its table (no timings checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.mark.skipif(not RUN.exists(), reason="benchmarks/run.py is not in this tree")
def test_quick_benchmark_prints_a_table() -> None:
    result = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("machine: ") for line in lines)
    header = "| case | shape | contender | time (us) | x copy | competitor / diffcore |"
    assert header in lines
    rows = [line for line in lines if line.startswith("| q_sample numpy |")]
    assert any("| copy |" in row for row in rows)
    assert any("| diffcore out= |" in row for row in rows)
    assert any(line.startswith("| q_posterior_sample numpy |") for line in lines)
