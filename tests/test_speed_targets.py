"""The speed benchmark's target cases: the report's PASS/FAIL lines, the CUDA option's
errors, and the profile breakdown's categories (no timing is run here)."""
import pytest
import torch

from benchmarks import speed, speed_minilm
from benchmarks.speed_breakdown import labelled, split
from benchmarks.speed_report import _targets


def _row(case, method, lora, oft, growth=""):
    return {"case": case, "method": method, "trainable": "10", "median_ms": "1.0",
            "ratio_vs_lora": str(lora), "ratio_vs_oft": str(oft), "peak_growth_mib": "1",
            "growth_vs_lora": str(growth)}


def test_target_lines_per_case_and_hamming_method():
    rows = [_row("query,value 8x32", "hamming-12-b3", 1.04, 0.99, 1.01),
            _row("query,value 8x32", "lora-r8", 1.0, 0.9, 1.0),
            _row("all-linear 8x32", "hamming-12-b3", 1.2, 1.1, 1.2),
            _row("all-linear 8x32", "hamming-12-bs128", 1.0, 0.95)]
    _, lines = _targets(rows)
    assert [line.split()[0] for line in lines] == ["PASS", "PASS", "FAIL", "FAIL", "PASS"]
    assert "all-linear 8x32: hamming-12-b3 step = 1.100x OFT, 1.200x LoRA" in lines[2]


def test_cases_cover_both_targets_and_batches():
    cases = {(t if isinstance(t, str) else ",".join(t), b, s) for t, b, s in speed_minilm.CASES}
    assert cases == {("query,value", 8, 32), ("query,value", 32, 64), ("all-linear", 8, 32),
                     ("all-linear", 32, 64)}
    every_case = speed_minilm.CASE_METHODS
    assert speed_minilm.case_methods("all-linear")[:len(every_case)] == every_case
    assert set(speed_minilm.SMALL_BLOCK_METHODS) <= set(speed_minilm.case_methods("query,value"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


def test_breakdown_assigns_forward_and_backward_to_the_adapter_parts():
    from torch import nn
    from torch.profiler import ProfilerActivity, profile

    from qiadapters import HammingAdapter

    layer = HammingAdapter(nn.Linear(24, 24), orders=(1, 2), blocks=2)
    x = torch.randn(5, 24)
    with labelled(), profile(activities=[ProfilerActivity.CPU]) as prof:
        layer(x).square().sum().backward()
    totals = split(prof.events())
    for part in ("build Q (fwd)", "build Q (bwd)", "apply (fwd)", "apply (bwd)",
                 "base model (fwd)"):
        assert totals.get(part, 0) > 0, (part, totals)


def test_ablation_switches_are_restored_and_change_the_route(monkeypatch):
    """The ablation's switches turn batching and whole blocks off inside, and back after."""
    from benchmarks.speed_ablation import switched
    from qiadapters.adapters.hamming import batched
    from qiadapters.circuits import blockdiag

    before = (batched.may_batch, blockdiag.use_whole, batched.use_whole)
    with switched(batching=False, whole=False):
        assert not batched.may_batch() and not blockdiag.use_whole(128, (15, 105))
    assert (batched.may_batch, blockdiag.use_whole, batched.use_whole) == before
    assert blockdiag.use_whole(128, (15, 105))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_ablation_on_cuda_without_cuda_is_a_clear_error(capsys):
    from benchmarks import speed_ablation

    with pytest.raises(SystemExit):
        speed_ablation.main(["--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err
