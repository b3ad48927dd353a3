"""The speed benchmark's target cases: the report's PASS/FAIL lines, the CUDA option's
errors, and the profile breakdown's categories (no timing is run here)."""
import pytest
import torch

from benchmarks import speed
from benchmarks.speed import minilm as speed_minilm
from benchmarks.speed.breakdown import labelled, split
from benchmarks.speed.report import _targets


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
    assert speed_minilm.DEFAULT in every_case
    assert set(speed_minilm.OTHER_BLOCK_METHODS) <= set(speed_minilm.case_methods("query,value"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
@pytest.mark.parametrize("module", ["speed", "speed_ablation"])
def test_cuda_device_without_cuda_is_a_clear_error(module, capsys):
    """``--device cuda`` of the speed benchmark and of its ablation, without CUDA."""
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(f"benchmarks.{module}").main(["--device", "cuda"])
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
    from benchmarks.speed.ablation import switched
    from qiadapters.adapters.hamming import batched
    from qiadapters.circuits import operands
    from qiadapters.circuits.block_layout import BlockLayout

    layout = BlockLayout(n=15, orders=(1, 2), blocks=3, pad=8, dim=384)
    before = (batched.may_batch, operands.use_whole)
    assert operands.plan_route(layout, 32, "cpu").whole
    with switched(batching=False, whole=False):
        assert not batched.may_batch() and not operands.plan_route(layout, 32, "cpu").whole
    assert (batched.may_batch, operands.use_whole) == before
    assert operands.plan_route(layout, 32, "cpu").whole


def test_fixed_cost_table_and_paired_difference():
    """The per-step overhead section: a table (no target) of what each method adds to the
    head-only step, from the median of per-round differences."""
    from benchmarks.speed.report import _fixed
    from benchmarks.common.timing import Timings

    t = Timings({"a": [3.0, 5.0, 4.0], "head": [1.0, 2.0, 1.0]},
                {"a": [0.0] * 3, "head": [0.0] * 3}, threads=1)
    assert t.paired_difference("a", "head") == 3.0   # rounds: 2, 3, 3
    rows = [{"case": "all-linear 1x32", "method": "hamming-12-bs32", "trainable": "23870",
             "median_ms": "40.8", "adds_to_head_ms": "28.8", "adds_vs_lora": "1.553",
             "ratio_vs_lora": "1.3654", "ratio_vs_oft": "0.8993"},
            {"case": "all-linear 1x32", "method": "head", "trainable": "10010",
             "median_ms": "11.9", "adds_to_head_ms": "0.0", "adds_vs_lora": "",
             "ratio_vs_lora": "0.39", "ratio_vs_oft": "0.27"}]
    md, verdicts = _fixed(rows)
    assert verdicts == []
    assert "| all-linear 1x32 | hamming-12-bs32 | 23,870 | 40.8 | 28.8 | 1.55 | 1.365 | 0.899 |" in md
    assert md[-1].startswith("| all-linear 1x32 | head |") and "|  |" in md[-1]
    assert speed.SECTIONS.index("fixed") < speed.SECTIONS.index("inference")
    assert "fixed" in speed.DEVICE_SECTIONS


def test_a_timed_case_measures_memory_after_the_steps_and_rows_start_alike(monkeypatch):
    """``sections.time_case`` (the targets section and the recompute study): every method's
    step timed interleaved (3 rounds with --quick), then the memory of the ones named."""
    import argparse

    from benchmarks.speed import sections

    calls = []

    def contenders(args, base, names, targets, batch, seq):
        return ({n: (lambda n=n: calls.append(n)) for n in names}, {n: f"cfg {n}" for n in names},
                {n: i for i, n in enumerate(names)})

    def memory(args, base, measured, targets, batch, seq):
        calls.append("memory")
        return {n: 2.0 for n in measured}

    monkeypatch.setattr(sections, "_contenders", contenders)
    monkeypatch.setattr(sections, "case_memory", memory)
    t, infos, counts, grown = sections.time_case(argparse.Namespace(quick=True), None,
                                                 ["a", "b"], "case", ("query",), 8, 32, ["a"])
    assert calls[-1] == "memory" and calls.count("memory") == 1 and calls.count("a") == 4
    assert grown == {"a": 2.0} and t.rounds("b") == 3
    row = sections.case_row("case", "b", infos, counts, t)
    assert list(row) == ["case", "method", "config", "trainable", "median_ms"]
    assert (row["config"], row["trainable"]) == ("cfg b", 1)
