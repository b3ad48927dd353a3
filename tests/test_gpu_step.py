"""benchmarks/gpu_step.py, the GPU benchmark at a Llama-like shape, runs: its --tiny
configuration on the CPU, every method eager and the fold route compiled, the CSV written."""
import csv

import pytest
import torch

from benchmarks import gpu_step


def test_tiny_rows(tmp_path):
    torch._dynamo.reset()
    rows = gpu_step.run("tiny", "cpu", targets=["q,v"], modes=["eager"], warmup=1, steps=1,
                        out=tmp_path)
    rows += gpu_step.run("tiny", "cpu", methods=["hamming-bs32-fold"], targets=["all-linear"],
                         modes=["compile"], warmup=1, steps=1, backend="aot_eager",
                         out=tmp_path)
    assert [(r["method"], r["mode"], r["status"]) for r in rows] == [
        (m, "eager", "ok") for m in gpu_step.METHODS] + [("hamming-bs32-fold", "compile", "ok")]
    by = {(r["method"], r["targets"]): r for r in rows}
    assert by["lora-r16", "q,v"]["adapted_layers"] == 4      # 2 layers x (q, v)
    assert by["hamming-bs32-fold", "all-linear"]["adapted_layers"] == 14
    # one graph for the first layer (its input needs no gradient), one for the other
    assert by["hamming-bs32-fold", "all-linear"]["graphs"] == 2
    assert all(r["step_vs_lora"] > 0 for r in rows[:4]) and "step_vs_lora" not in rows[4]
    assert all(r["tokens_per_s"] > 0 for r in rows)
    with open(tmp_path / "gpu_step.csv") as f:
        written = list(csv.DictReader(f))
    assert [r["method"] for r in written] == ["hamming-bs32-fold"]
    assert written[0]["device"] == "cpu" and written[0]["size"] == "tiny"


def test_llm_shape():
    """The default shape is a decoder of about 0.5B parameters (counted on the meta device)."""
    model = gpu_step.build_base("llm", "meta", torch.bfloat16)
    assert 0.45e9 < sum(p.numel() for p in model.parameters()) < 0.55e9
    assert len(gpu_step.decoder_layers(model)) == 24


def test_bad_method():
    with pytest.raises(ValueError, match="method='x' is not valid"):
        gpu_step.attach("x", torch.nn.Linear(2, 2), ["q_proj"])
