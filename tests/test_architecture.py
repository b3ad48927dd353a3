"""The rules of docs/architecture.md, read from the source: the import graph of ``qiadapters``
and ``physics`` has no circles, a lower layer never imports a higher one, ``qiadapters``
never imports ``physics``; and importing the packages installs nothing process-wide in torch.

The graph is read with ``ast`` (nothing is imported to build it).  An import of ``a.b.c``
depends on the packages ``a.b`` and ``a.b.c`` as well (their ``__init__`` runs first), except
for the importer's own packages, which are loading already."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qiadapters", "physics")

#: The layers of docs/architecture.md, lowest first: a module belongs to the entry with the
#: longest prefix of its name.  Anything not listed belongs to the top (``qiadapters`` itself,
#: the command line, the integrations with other libraries, the testing helpers).
LAYERS = [
    ("foundation", ("qiadapters._version", "qiadapters.checks", "qiadapters.bounds",
                    "qiadapters.context", "qiadapters.deprecation", "qiadapters.tiny_models")),
    ("circuits", ("qiadapters.circuits",)),
    ("adapters", ("qiadapters.adapters", "physics", "qiadapters.integrations",
                  "qiadapters.integrations.peft")),
    ("model", ("qiadapters.model",)),
    ("top", ("qiadapters", "qiadapters.integrations.transformers",
             "qiadapters.integrations.trl")),
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is a package)}`` of every source file of the packages."""
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def _imports(tree: ast.Module, lazy: bool) -> list:
    """The import statements run when the module is imported (at its top level, in its
    ``if`` / ``try`` blocks); ``lazy``: every import statement, those inside functions too.
    ``if TYPE_CHECKING:`` blocks never run."""
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
            for n in ast.walk(node)}
    if lazy:
        nodes = list(ast.walk(tree))
    else:
        nodes, todo = [], list(tree.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try, ast.ExceptHandler)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    todo += getattr(node, field, [])
    return [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]


def _targets(importer: str, node) -> list[str]:
    """The modules an import statement names (``from a import b``: ``a``, and ``a.b`` when
    that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        path, is_package = MODULES[importer]
        base = (importer if is_package else importer.rpartition(".")[0]).split(".")
        base = base[: len(base) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module
    return [module] + [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]


def _edges(importer: str, lazy: bool) -> set[str]:
    """The modules of the packages that importing ``importer`` runs first."""
    tree = ast.parse(MODULES[importer][0].read_text())
    out = set()
    for node in _imports(tree, lazy):
        for target in _targets(importer, node):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                own = importer == name or importer.startswith(name + ".")
                if name in MODULES and not own:
                    out.add(name)
    return out


GRAPH = {name: _edges(name, lazy=False) for name in MODULES}
LAZY_GRAPH = {name: _edges(name, lazy=True) for name in MODULES}


def _layer(name: str) -> int:
    best, rank = -1, len(LAYERS) - 1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    assert len(MODULES) > 80
    assert "qiadapters.context" in GRAPH["qiadapters.adapters.hamming.batched"]
    assert "qiadapters.adapters" in GRAPH["physics.config"]  # a package's __init__ counts
    assert "qiadapters.adapters.hamming" not in GRAPH["qiadapters.adapters.hamming.layer"]
    assert "qiadapters.adapters.selection" in LAZY_GRAPH["qiadapters.adapters.config"]
    assert "qiadapters.adapters.selection" not in GRAPH["qiadapters.adapters.config"]


def test_no_import_circles():
    """No set of modules imports itself round at module level: every module can be imported
    first, whatever was imported before it."""
    assert _cycles(GRAPH) == []


def test_no_circle_hidden_in_a_function():
    """No module imports, even inside a function, a module that imports it at module level
    (the registry and the family configs, the batched build and the Hamming layer did)."""
    hidden = sorted((a, b) for a in MODULES for b in LAZY_GRAPH[a] if a in GRAPH[b])
    assert hidden == []


def test_a_lower_layer_never_imports_a_higher_one():
    """docs/architecture.md: checks < circuits < adapters (with physics) < model < the rest,
    for imports inside functions too.  The root packages are entry points: every import of
    ``qiadapters.x`` from ``physics`` loads ``qiadapters/__init__``, which is no layer."""
    upward = sorted((a, b, LAYERS[_layer(a)][0], LAYERS[_layer(b)][0])
                    for a in MODULES for b in LAZY_GRAPH[a]
                    if b not in PACKAGES and _layer(b) > _layer(a))
    assert upward == [], "a new module below the top belongs in LAYERS"


def test_qiadapters_never_imports_physics():
    assert sorted((a, b) for a in MODULES if a.startswith("qiadapters")
                  for b in LAZY_GRAPH[a] if b.split(".")[0] == "physics") == []


def test_the_registry_and_the_context_are_leaves():
    """The registry holds the families' classes without importing them (a saved config names
    a provider package, loaded with importlib); the context is read by the adapters and
    written by the model machinery, so it imports neither."""
    for leaf in ("qiadapters.adapters.registry", "qiadapters.context"):
        assert LAZY_GRAPH[leaf] == set(), leaf


def test_every_family_registers_in_its_package_init():
    calls = {}
    for name, (path, _) in MODULES.items():
        if name == "qiadapters.adapters.registry":
            continue  # where register is defined
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register"
                    and len(node.args) == 2):
                calls[name] = [a.id for a in node.args]
    assert calls == {"qiadapters.adapters.hamming": ["HammingConfig", "HammingAdapter"],
                     "qiadapters.adapters.mixture": ["MixtureConfig", "Mixture"],
                     "physics": ["PhysicsConfig", "PhysicsLayer"]}


def test_the_old_context_module_warns_and_forwards():
    from qiadapters import context

    with pytest.warns(DeprecationWarning, match="moved to qiadapters.context.current_call"):
        from qiadapters.model.context import current_call
    assert current_call is context.current_call
    import qiadapters.model.context as old

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert old.attention_mask_context is context.attention_mask_context
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        old.nope


# ------------------------------------------------------------------- nothing installed
#: Every process-wide hook registry of torch's modules and optimizers, by its length.
HOOK_PROBE = """
import json
import torch.nn.modules.module as module
import torch.optim.optimizer as optimizer

def registries():
    return {f"{m.__name__}.{name}": len(value) for m in (module, optimizer)
            for name, value in vars(m).items()
            if name.startswith("_global") and isinstance(value, dict)}

before = registries()
import qiadapters, physics, qiadapters.cli, qiadapters.integrations.peft
import qiadapters.adapters.hamming.batched, qiadapters.adapters.hamming.parametrizations
print(json.dumps([before, registries()]))
"""


def test_importing_the_packages_installs_no_torch_hooks():
    """Importing qiadapters and physics leaves torch's global module and optimizer hook
    registries as they were (a fresh interpreter: nothing imported them before)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-c", HOOK_PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = json.loads(proc.stdout.splitlines()[-1])
    assert {"torch.nn.modules.module._global_module_registration_hooks",
            "torch.nn.modules.module._global_forward_hooks",
            "torch.optim.optimizer._global_optimizer_pre_hooks",
            "torch.optim.optimizer._global_optimizer_post_hooks"} <= set(before)
    assert after == before
