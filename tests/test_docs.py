"""The code blocks of the documentation pages run as written.

Every page with a ```python block (README.md, docs/*.md, docs/howto/*.md, the benchmarks' lab
notes benchmarks/*/notes.md) is found here, and
its ```python blocks run in order in one module namespace (later blocks may use names from
earlier ones; classes defined there pickle like any module's), inside a fresh temporary
directory (so ``save_pretrained("out/")`` writes there).  Blocks that are not meant to run
(shell commands, outputs, excerpts) are fenced ```bash / ```text.  A python block followed by
a paragraph starting "It prints" and a ```text block must print exactly that text.  Long loops read their
length from ``QIADAPTERS_DOCS_STEPS`` (set small here; each page says what its published
numbers used).
"""
import contextlib
import io
import pathlib
import re
import sys
import types

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
DOCS_STEPS = "3"


PRINTS = re.compile(r"\s*It prints[^\n]*\n\s*```text\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / page).read_text())


def printed_outputs(page: str) -> list[str | None]:
    """For each python block, the text the page says it prints (None: the page does not say)."""
    text = (ROOT / page).read_text()
    outputs = []
    for m in BLOCK.finditer(text):
        shown = PRINTS.match(text, m.end())
        outputs.append(shown.group(1) if shown else None)
    return outputs


def doc_pages() -> list[pathlib.Path]:
    """The pages checked here: the README, docs/ and the benchmarks' lab notes (a
    benchmark folder's ``notes.md``)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
            *sorted((ROOT / "benchmarks").glob("*/notes.md"))]


def pages_with_code() -> list[str]:
    pages = doc_pages()
    return [str(p.relative_to(ROOT)) for p in pages if python_blocks(str(p.relative_to(ROOT)))]


PAGES = pages_with_code()


def test_pages_are_found():
    """The discovery above sees the pages whose code is known to matter (a broken regex or a
    moved folder would otherwise silently run nothing)."""
    for page in ("README.md", "docs/architecture.md", "docs/model_api.md", "docs/physics.md",
                 "docs/howto/plan.md", "docs/speed.md", "benchmarks/speed/notes.md"):
        assert page in PAGES
    assert sum(len(python_blocks(p)) for p in PAGES) >= 26
    assert printed_outputs("docs/howto/plan.md")[0].startswith("{'params': 351")


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page, monkeypatch, tmp_path):
    blocks = python_blocks(page)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("QIADAPTERS_DOCS_STEPS", DOCS_STEPS)
    name = "docs_" + re.sub(r"\W", "_", page.removesuffix(".md"))
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    threads = torch.get_num_threads()  # a page may set it (benchmarks use 1): not for later tests
    try:
        for i, (code, shown) in enumerate(zip(blocks, printed_outputs(page))):
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{page} block {i + 1}", "exec"), namespace)
            except Exception as e:  # name the block that failed
                raise AssertionError(f"{page} block {i + 1} failed: {type(e).__name__}: {e}") from e
            if shown is not None:
                assert out.getvalue() == shown, f"{page} block {i + 1} printed:\n{out.getvalue()}"
    finally:
        torch.set_num_threads(threads)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_and_images_resolve():
    """Every relative link and image of the pages points at a file (an anchor part is not
    checked); every committed figure is shown by some page."""
    pages = doc_pages()
    shown, broken = set(), []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            shown.add(path)
    assert not broken, broken
    images = sorted((ROOT / "docs" / "images").glob("*.png"))
    assert images and all(p.resolve() in shown for p in images), images
    assert all(p.stat().st_size < 100_000 for p in images)


def test_figures_script_draws_every_figure(tmp_path):
    """docs/figures.py makes each committed figure (into a temp folder here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "docs" / "figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    made = figures.main(tmp_path)
    assert sorted(p.name for p in made) == sorted(p.name for p in (ROOT / "docs" / "images").glob("*.png"))
    assert all(p.stat().st_size > 5_000 for p in made)
