"""The public API: __all__ matches the documented names; imports stay light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import diffcore

API_PAGE = Path(__file__).parents[1] / "docs" / "api.md"


def documented_names() -> set[str]:
    text = API_PAGE.read_text()
    names = re.findall(r"^\.\. auto(?:function|class|data):: (\w+)", text, re.M)
    return set(names)


def test_all_matches_the_api_reference() -> None:
    public = set(diffcore.__all__) - {"__version__"}
    documented = documented_names()
    assert sorted(public - documented) == [], "exported but not in docs/api.md"
    assert sorted(documented - public) == [], "in docs/api.md but not exported"


def test_all_is_sorted_and_importable() -> None:
    assert diffcore.__all__ == sorted(diffcore.__all__)
    for name in diffcore.__all__:
        assert hasattr(diffcore, name), name


def test_import_loads_no_framework_plugin_or_tool() -> None:
    code = (
        "import sys, diffcore; "
        "heavy = {'torch', 'jax', 'jaxlib', 'cupy', 'dask', 'diffcore_torch', "
        "'diffcore_cupy', 'hypothesis', 'matplotlib', 'PIL', 'click', 'tqdm', "
        "'mpmath', 'array_api_strict', 'scipy'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert diffcore.__version__ == version("diffcore")
