"""The tutorials in docs/tutorials/ run as written.

Each page's ```python blocks run in order, in one namespace, in a fresh
interpreter (so JAX's x64 flag or a torch seed on one page cannot leak into
another) with warnings as errors.  Blocks are compiled against the page's own
line numbers, so a traceback points into the Markdown file.  A page whose
library is missing skips with a reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
PAGES = sorted(path.stem for path in TUTORIALS.glob("*.md"))

# The libraries each page imports beyond NumPy; pages not listed need none.
NEEDS = {
    "cupy": ["cupy"],
    "jax": ["jax"],
    "pytorch": ["torch"],
    "sampler": ["torch", "jax"],
}
WHERE_ELSE = {"cupy": "; the CuPy tutorial runs in scripts/gpu-check.sh"}

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# Runs in the child: exec each block of the page in one shared namespace.
_RUNNER = """
import sys
from tests.test_tutorials import python_blocks

path = sys.argv[1]
namespace = {"__name__": "__main__"}
for line, code in python_blocks(path):
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def python_blocks(path: str | Path) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown page as (first code line, code) pairs."""
    text = Path(path).read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((line, match.group(1)))
    return blocks


def _skip_unless_available(page: str) -> None:
    for module in NEEDS.get(page, []):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed{WHERE_ELSE.get(page, '')}")
    if page == "cupy":  # pragma: no cover - needs a CUDA build of CuPy
        import cupy

        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("cupy needs a CUDA GPU; none is present")


def test_every_page_has_code() -> None:
    assert PAGES, f"no tutorials found under {TUTORIALS}"
    empty = [page for page in PAGES if not python_blocks(TUTORIALS / f"{page}.md")]
    assert not empty, f"tutorials without a ```python block: {empty}"


@pytest.mark.parametrize("page", PAGES)
def test_tutorial_runs(page: str) -> None:
    _skip_unless_available(page)
    path = TUTORIALS / f"{page}.md"
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUNNER, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{path.relative_to(ROOT)} failed:\n{result.stdout}\n{result.stderr}"
    )
