"""Old benchmark module paths keep working after the moves into folders: each old flat module
still answers its names with the moved objects themselves (so a ``monkeypatch`` of them
reaches the code that runs), and every ``python -m benchmarks.<name>`` command the docs and
the Makefile use still finds a module to run."""
from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: old path -> (new module, a name it held)
MOVED = {
    "benchmarks.data": ("benchmarks.common.data", "load_minilm"),
    "benchmarks.forgetting": ("benchmarks.common.forgetting", "probe"),
    "benchmarks.paper": ("benchmarks.common.paper", "minors_compound"),
    "benchmarks.routing": ("benchmarks.common.routing", "router_weights"),
    "benchmarks.demo": ("benchmarks.demo.run", "DEFAULT_LRS"),
    "benchmarks.composition": ("benchmarks.composition.tasks", "read_verb_glosses"),
    "benchmarks.mixed_batch": ("benchmarks.common.architecture", "minilm_architecture"),
    "benchmarks.fold_route": ("benchmarks.fold_route.process", "worker"),
    "benchmarks.numerics": ("benchmarks.numerics.orthogonality", "drift"),
    "benchmarks.route_costs": ("benchmarks.route_costs.cases", "routes"),
    "benchmarks.circuits": ("benchmarks.circuits.measure", "run_case"),
    "benchmarks.op_count": ("benchmarks.op_count.count", "count_all"),
    "benchmarks.physics": ("benchmarks.physics.convergence", "accuracy"),
    "benchmarks.bottleneck": ("benchmarks.physics.bottleneck", "add_bottlenecks"),
    "benchmarks.design_study": ("benchmarks.design_study.compare", "best_under"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_answers_with_the_moved_object(old):
    new, name = MOVED[old]
    assert getattr(importlib.import_module(old), name) is getattr(
        importlib.import_module(new), name)


def _commands() -> set[str]:
    pages = [ROOT / "Makefile", ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "benchmarks").rglob("*.md"), *(ROOT / "benchmarks").rglob("*.py")]
    found = set()
    for page in pages:
        found |= set(re.findall(r"-m (benchmarks(?:\.\w+)+)", page.read_text()))
    return found


def test_every_documented_command_finds_its_module():
    commands = _commands()
    assert {"benchmarks.demo", "benchmarks.tradeoff", "benchmarks.numerics"} <= commands
    for command in sorted(commands):
        spec = importlib.util.find_spec(command)
        assert spec is not None, f"python -m {command}: no such module"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(command + ".__main__") is not None, command


def test_an_old_flat_path_warns_that_it_moved(monkeypatch):
    """A four-line alias (``benchmarks/speed_minilm.py``) is a deprecation alias: importing it
    warns with the path to import instead, and still gives the moved module itself."""
    import sys

    monkeypatch.delitem(sys.modules, "benchmarks.speed_minilm", raising=False)
    with pytest.warns(DeprecationWarning, match=r"benchmarks\.speed_minilm moved to "
                                                 r"benchmarks\.speed\.minilm"):
        old = importlib.import_module("benchmarks.speed_minilm")
    assert old is importlib.import_module("benchmarks.speed.minilm")


def _deprecated_aliases() -> set[str]:
    """The flat ``benchmarks/<name>.py`` files that are deprecation aliases."""
    return {path.stem for path in (ROOT / "benchmarks").glob("*.py")
            if "alias(__name__" in path.read_text()}


def test_nothing_in_the_repository_uses_a_deprecated_path():
    """The aliases go in the next version: the suite, the docs, the Makefile and the
    benchmarks themselves already import and run every module by its new path (this file,
    the aliases and the alias mechanism's own docstring excepted).  Fails naming each use of an old path."""
    aliases = _deprecated_aliases()
    assert {"speed_minilm", "tradeoff_methods", "forgetting"} <= aliases
    names = "|".join(sorted(aliases))
    dotted = re.compile(rf"\bbenchmarks\.({names})\b")
    listed = re.compile(r"from benchmarks import \(?([\w\s,]+)\)?")
    pages = [ROOT / "Makefile", ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "benchmarks").rglob("*.md"), *(ROOT / "tests").glob("*.py"),
             *(p for p in (ROOT / "benchmarks").rglob("*.py") if p.stem not in aliases)]
    uses = []
    for page in pages:
        if page in (Path(__file__).resolve(), ROOT / "benchmarks" / "common" / "alias.py"):
            continue
        text = page.read_text()
        uses += [f"{page.relative_to(ROOT)}: benchmarks.{m.group(1)}"
                 for m in dotted.finditer(text)]
        uses += [f"{page.relative_to(ROOT)}: from benchmarks import {name}"
                 for m in listed.finditer(text)
                 for name in re.split(r"[\s,]+", m.group(1)) if name in aliases]
    assert not uses, "old benchmark paths still in use:\n" + "\n".join(uses)
