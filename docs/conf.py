"""Sphinx configuration for the diffcore documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
after ``pip install -r docs/requirements.txt``.  Formulas are typeset by
MathJax 3 served from the build itself (see ``_copy_mathjax``), so the pages
need no network.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from sphinx.util.fileutil import copy_asset, copy_asset_file

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Document the diffcore of this checkout, installed or not.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))  # demo_figures: runs `diffcore demo`

project = "diffcore"
author = "the diffcore developers"
copyright = "the diffcore developers (BSD-3-Clause)"

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "demo_figures",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "README.md"]

# -- MyST: $...$, $$...$$ (label) and amsmath environments ------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
math_eqref_format = "({number})"
math_numfig = True

# -- API reference ----------------------------------------------------------
autosummary_generate = False  # tables only; entries come from autodoc below
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- doctest builder: `sphinx-build -b doctest docs docs/_build/doctest` ----
doctest_global_setup = """
import numpy as np
import diffcore
from diffcore import Schedule
"""

# -- HTML -------------------------------------------------------------------
html_theme = "furo"
html_title = "diffcore"
html_static_path: list[str] = []

# MathJax 3 from the `django-static-mathjax` wheel (an unmodified MathJax
# release, Apache-2.0).  Its es5/ tree is copied to _static/mathjax/ and
# loaded from there; nothing is fetched from a CDN.
MATHJAX_DIR = "mathjax"
mathjax_path = f"{MATHJAX_DIR}/tex-chtml.js"


def _mathjax_source() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        msg = (
            "the MathJax files are missing: pip install -r docs/requirements.txt "
            "(package django-static-mathjax)"
        )
        raise RuntimeError(msg)
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static/mathjax/es5"
    if not (es5 / "tex-chtml.js").is_file():
        msg = f"no tex-chtml.js under {es5}; reinstall django-static-mathjax"
        raise RuntimeError(msg)
    return es5


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / MATHJAX_DIR
    source = _mathjax_source()
    copy_asset(source, target, force=True)
    copy_asset_file(source.parent / "LICENSE", target, force=True)


def setup(app):
    _mathjax_source()  # fail early, before any page is written
    app.connect("build-finished", _copy_mathjax)
