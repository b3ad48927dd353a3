"""Build the API reference (HTML, from the docstrings) with pdoc.

    python docs/api.py [OUTPUT_DIR]      # default build/api/ (ignored by git); or `make docs`

Every module of ``qiadapters`` and ``physics`` gets a page (``qiadapters/circuits/circuit.html``,
``physics/adapter.html``, ...), not only the names the packages re-export; ``__main__``
modules are left out (importing them runs the command).  Returns the warnings pdoc raised;
``tests/test_api_docs.py`` builds into a temporary folder and checks the pages and warnings.
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import pkgutil
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("qiadapters", "physics")


def modules(packages=PACKAGES) -> list[str]:
    """The dotted names of every module in ``packages`` except ``__main__``, and except the
    Triton kernels' modules where ``triton`` does not import (they import it at the top)."""
    triton = importlib.util.find_spec("triton") is not None
    names = []
    for name in packages:
        package = importlib.import_module(name)
        names.append(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=name + "."):
            if not info.name.endswith(".__main__") and (triton or not
                                                        info.name.endswith("_triton")):
                names.append(info.name)
    return names


def build(output: str | pathlib.Path = ROOT / "build" / "api") -> list[str]:
    """Write the reference under ``output``; return pdoc's warnings as strings."""
    import pdoc
    import pdoc.render

    # the docstrings are reStructuredText (``code``, :func:`...`, .. math::)
    pdoc.render.configure(docformat="restructuredtext", math=True)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pdoc.extract import walk_specs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # pdoc walks a package's public submodules itself (its __all__): name each module once
        specs, covered = [], set()
        for name in modules():
            if name not in covered:
                specs.append(name)
                covered.update(walk_specs([name]))
        pdoc.pdoc(*specs, output_directory=pathlib.Path(output))
    return [str(w.message) for w in caught if w.filename.startswith(str(pathlib.Path(pdoc.__file__).parent))]


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "api"
    for message in build(out):
        print("warning:", message)
    print(f"API reference: {out / 'index.html'}")
