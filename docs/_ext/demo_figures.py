"""Sphinx extension: run ``diffcore demo`` so that demo.md has its figures.

The figures go to ``docs/_generated/demo/`` (ignored by git).  They are made
once; delete that folder (``make docs`` does) to make them again.  The demo
needs diffcore's ``demo`` extra: click, tqdm, matplotlib and Pillow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
FOLDER = Path("_generated") / "demo"


def _run_demo(app: Any) -> None:
    target = Path(app.srcdir) / FOLDER
    if (target / "checks.txt").is_file():
        return

    # The checkout's diffcore, installed or not, as conf.py documents it.
    root = str(Path(app.srcdir).parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "diffcore", "demo", "--out", str(target)]
    LOGGER.info("running %s", " ".join(command[1:]))
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if done.returncode != 0:
        msg = f"`diffcore demo` exited with {done.returncode}: {done.stderr.strip()}"
        raise ExtensionError(msg)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _run_demo)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
