"""benchmarks/gpu_step.py, the GPU benchmark at a Llama-like shape, runs: its --tiny
configuration on the CPU, every method eager and the fold route compiled, the CSV written;
the Triton rows where triton imports (in its interpreter)."""
import csv
import importlib.util
import os
import sys

import pytest
import torch

from benchmarks import gpu_step


def test_tiny_rows(tmp_path):
    rows = gpu_step.run("tiny", "cpu", targets=["q,v"], modes=["eager"], warmup=1, steps=1,
                        out=tmp_path, methods=gpu_step.METHODS)
    assert [(r["method"], r["mode"], r["status"]) for r in rows] == [
        (m, "eager", "ok") for m in gpu_step.METHODS]
    by = {r["method"]: r for r in rows}
    assert by["lora-r16"]["adapted_layers"] == by["hamming-bs32-fold"]["adapted_layers"] == 4
    assert by["lora-r16"]["step_vs_lora"] == 1.0
    assert all(r["step_vs_lora"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    with open(tmp_path / "gpu_step.csv") as f:
        written = list(csv.DictReader(f))
    assert [r["method"] for r in written] == gpu_step.METHODS
    assert written[0]["device"] == "cpu" and written[0]["size"] == "tiny"


@pytest.mark.slow
def test_tiny_compiled_row(tmp_path):
    """The compiled mode: each decoder layer compiled, one graph for the first layer (its
    input needs no gradient) and one shared by the others (aot_eager keeps the test short)."""
    torch._dynamo.reset()
    rows = gpu_step.run("tiny", "cpu", methods=["hamming-bs32-fold"], targets=["all-linear"],
                        modes=["compile"], warmup=1, steps=1, backend="aot_eager", out=tmp_path)
    assert rows[0]["status"] == "ok" and rows[0]["adapted_layers"] == 14
    assert rows[0]["graphs"] == 2 and "step_vs_lora" not in rows[0]


def test_budget_skips_rows(tmp_path):
    rows = gpu_step.run("tiny", "cpu", methods=["lora-r16"], targets=["q,v"], modes=["eager"],
                        budget=0.0, out=tmp_path)
    assert rows[0]["status"].startswith("skipped: the 0 s budget ran out")


def test_llm_shape():
    """The default shape is a decoder of about 0.5B parameters (counted on the meta device)."""
    model = gpu_step.build_base("llm", "meta", torch.bfloat16)
    assert 0.45e9 < sum(p.numel() for p in model.parameters()) < 0.55e9
    assert len(gpu_step.decoder_layers(model)) == 24


def test_bad_method():
    with pytest.raises(ValueError, match="method='x' is not valid"):
        gpu_step.attach("x", torch.nn.Linear(2, 2), ["q_proj"])


def test_triton_rows_are_default_only_where_the_kernels_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert gpu_step.methods_for("cpu") == gpu_step.METHODS


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_tiny_triton_rows_in_the_interpreter(tmp_path, monkeypatch):
    """The -triton rows on the tiny model, the kernels in Triton's interpreter on the CPU:
    the step runs and the kernels are used; the other Hamming rows run with them off."""
    sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers
    from testing_utils import triton_kernels_interpretable

    if not torch.cuda.is_available():
        if not triton_kernels_interpretable():
            pytest.skip("the kernels were imported outside Triton's interpreter")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    from qiadapters.circuits import kernels

    assert gpu_step.methods_for("cpu") == gpu_step.METHODS + gpu_step.TRITON_METHODS
    modes = []
    real = kernels.pair_minors

    def counted(*args):
        modes.append(kernels.get_mode())
        return real(*args)
    monkeypatch.setattr(kernels, "pair_minors", counted)
    rows = gpu_step.run("tiny", "cpu", methods=["hamming-bs32"] + gpu_step.TRITON_METHODS,
                        targets=["q,v"], modes=["eager"], warmup=1, steps=1, out=tmp_path)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert rows[1]["adapted_layers"] == rows[2]["adapted_layers"] == 4
    assert modes and set(modes) == {"on"}
