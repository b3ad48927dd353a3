"""The code blocks of the documentation pages run as written.

Each page's ```python blocks run in order in one module namespace (later blocks may use names
from earlier ones; classes defined there pickle like any module's), from the repository root.  A page joins the check by being listed here.
"""
import pathlib
import re
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["docs/architecture.md", "docs/conventions.md", "docs/pennylane.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / page).read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if (ROOT / p).exists()])
def test_code_blocks_run(page, monkeypatch):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python block"
    monkeypatch.chdir(ROOT)
    module = types.ModuleType(f"docs_{pathlib.Path(page).stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page} block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block that failed
            raise AssertionError(f"{page} block {i + 1} failed: {type(e).__name__}: {e}") from e
