"""What importing the packages and adapting a plain model load: nothing the work does not
need.  ``torch._dynamo`` alone costs about a second (it is what ``torch.compile`` needs, not
an adapter), and the optional backends (bitsandbytes, torchao, PennyLane) print warnings when
they load on a machine without their kernels.  Each check runs in a fresh interpreter, where
``sys.modules`` shows exactly what an import pulled in."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qiadapters.circuits import cache

ROOT = Path(__file__).resolve().parents[1]
#: Loaded only by the work that needs them: torch.compile, the optional backends, the
#: integrations (transformers, peft), the reference solvers (scipy), the Triton kernels
#: (tried on an adapter's first call on a CUDA tensor).
HEAVY = ("torch._dynamo", "bitsandbytes", "torchao", "pennylane", "transformers", "peft",
         "scipy", "accelerate", "triton")

ADAPT_PLAIN_MODEL = """
import torch
from torch import nn
import qiadapters as qa
model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
am = qa.get_adapter_model(model, qa.HammingConfig(target_modules=["0", "2"]))
am(torch.randn(2, 32)).sum().backward()
"""


def loaded_after(code: str) -> tuple[list[str], str]:
    """The :data:`HEAVY` modules in ``sys.modules`` after running ``code`` in a fresh
    interpreter, and what it printed (stdout and stderr)."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *printed, last = proc.stdout.splitlines()
    return json.loads(last), "\n".join(printed) + proc.stderr


@pytest.mark.parametrize("code", ["import qiadapters", "import physics",
                                  "import qiadapters.cli", ADAPT_PLAIN_MODEL],
                         ids=["qiadapters", "physics", "cli", "adapt-plain-model"])
def test_import_and_plain_adapting_load_nothing_heavy_and_print_nothing(code):
    loaded, printed = loaded_after(code)
    assert loaded == [] and printed == ""


def test_physics_reference_solvers_load_on_first_use():
    loaded, _ = loaded_after("import physics\nphysics.poisson_sparse")
    assert loaded == ["scipy"]
    import physics
    from physics import reference

    assert physics.heat_euler is reference.heat_euler
    assert set(physics.__all__) | {"heat_euler", "poisson_sparse"} <= set(dir(physics))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        physics.nope


def test_a_miss_inside_torch_compile_is_built_outside_the_trace():
    """The table builder runs eagerly (it sees no trace) when a compiled function meets a
    cold cache; the compiled result equals eager."""
    seen = []

    def build(n):
        seen.append(torch.compiler.is_compiling())
        return (torch.arange(n),)

    for n in (3, 5):  # the first miss makes the untraced wrapper, the second reuses it
        compiled = torch.compile(lambda x: x * cache.tables(build, n)[0], backend="eager")
        torch.testing.assert_close(compiled(torch.ones(n)), torch.arange(n, dtype=torch.float))
    assert seen == [False, False]
