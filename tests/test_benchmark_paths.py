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
