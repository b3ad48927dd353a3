"""Old module paths kept working for one version after a move (``benchmarks.tradeoff_methods`` ->
``benchmarks.tradeoff.methods``, a flat module -> a benchmark folder).

An alias module makes its own name *the* moved module (one object in ``sys.modules``), so
``from benchmarks import tradeoff_methods`` and a test's ``monkeypatch.setattr`` on it reach
the code that runs.  A folder that replaced a module of the same name re-exports that
module's names lazily (:func:`folder_exports`), so ``python -m benchmarks.<name>.run`` does
not import its own ``run`` twice.
"""
from __future__ import annotations

import importlib
import runpy
import sys
import warnings


def alias(name: str, target: str):
    """Make the module ``name`` the module ``target`` (imported); returns it.  Run as a
    script (``python -m <old path>``, ``name == "__main__"``), run ``target`` as
    ``python -m <target>`` would instead."""
    if name == "__main__":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return None
    warnings.warn(f"{name} moved to {target}; import that instead (the old path goes in the "
                  f"next version)", DeprecationWarning, stacklevel=3)
    module = importlib.import_module(target)
    sys.modules[name] = module
    return module


def folder_exports(package: str, modules: tuple):
    """A module ``__getattr__`` for ``package``: a name the old flat module had is looked up,
    on first use, in ``modules`` (in order; a name without a dot is ``package``'s own)."""
    def __getattr__(name: str):
        if not name.startswith("__"):
            for module in modules:
                found = importlib.import_module(module if "." in module else f"{package}.{module}")
                if hasattr(found, name):
                    return getattr(found, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
