"""benchmarks.common.registry: every method config loads, builds and has the parameters it claims;
one LoRA definition; the committed trade-off records are what the registry builds today.

Builds run on a one-layer random BERT of all-MiniLM-L6-v2's width (hidden 384, 12 heads,
MLP 1536; no network): every method adapts each layer alike, so its adapter parameters on
MiniLM's 6 layers are 6x those of one layer.
"""
import copy
import csv
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from benchmarks.common import paper, registry, timing  # noqa: E402
from benchmarks.common import sweep as tradeoff_sweep  # noqa: E402
from benchmarks.common.constants import RESULTS  # noqa: E402
from benchmarks.common.summary import parse_sweep  # noqa: E402
from benchmarks.speed import minilm as speed_minilm  # noqa: E402
from benchmarks.tradeoff import methods as tradeoff_methods  # noqa: E402
from benchmarks.demo import DEFAULT_LRS  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import minilm_shaped_bert  # noqa: E402

BENCHMARKS = RESULTS.parent
MINILM_LAYERS = 6
CONFIG_FILES = sorted(registry.CONFIGS.glob("*.json"))


@pytest.fixture(scope="module")
def one_layer_minilm():
    return minilm_shaped_bert(1)


@pytest.fixture(scope="module")
def six_layer_minilm():
    """all-MiniLM-L6-v2's shape at full depth (random weights): the methods whose parameters
    are shared across layers (:data:`registry.SHARED_PARAMETER_FAMILIES`) are counted here."""
    return minilm_shaped_bert(MINILM_LAYERS)


@pytest.fixture(scope="module")
def committed_tradeoff():
    with open(RESULTS / "tradeoff.csv", newline="") as f:
        return {row["method"]: row for row in csv.DictReader(f)}


def test_every_config_file_is_a_registry_entry():
    assert len(CONFIG_FILES) == len(registry.METHODS) >= 20
    for path in CONFIG_FILES:
        entry = registry.load(path)
        assert registry.METHODS[path.stem] == entry
        assert entry.label and "adapter_params" not in json.loads(path.read_text()), path.name
        assert all(e in registry.METHODS for e in entry.experts), path.name
        assert bool(entry.experts) == (entry.family == "mixture"), path.name


def test_unknown_names_and_families_list_the_valid_ones(tmp_path):
    with pytest.raises(KeyError, match="lora-r8"):
        registry.get("lora-r3")
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"family": "dora", "label": "x"}))
    with pytest.raises(ValueError, match="'lora'"):
        registry.load(bad)
    bad.write_text(json.dumps({"family": "lora", "label": "x", "lr": 1e-3}))
    with pytest.raises(ValueError, match="unknown keys"):
        registry.load(bad)


def measured_params(runs_files) -> dict:
    """method -> the adapter parameters its recorded runs measured (every run of a method
    measured the same count)."""
    counts: dict = {}
    for path in runs_files:
        for run in tradeoff_sweep.load_runs(path):
            counts.setdefault(run["method"], set()).add(run["adapter_params"])
    assert all(len(c) == 1 for c in counts.values()), counts
    return {name: c.pop() for name, c in counts.items()}


#: What the committed trade-off runs measured (the design study's forgetting runs too).
MEASURED = measured_params([RESULTS / "tradeoff_runs.jsonl",
                            *sorted((RESULTS / "forgetting").glob("*.jsonl"))])


def test_the_committed_runs_measured_most_entries():
    assert len(set(MEASURED) & set(registry.METHODS)) >= 30


def on_every_layer(entry) -> bool:
    """Whether ``entry`` is built on all six layers: its parameters are shared across layers
    (their count does not scale with depth), or it selects layers by index (MiniLM's
    ``layers_to_transform``, which a one-layer model does not have)."""
    return (entry.family in registry.SHARED_PARAMETER_FAMILIES
            or "layers_to_transform" in entry.config)


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_entry_builds_with_the_parameters_its_runs_measured(one_layer_minilm, six_layer_minilm,
                                                           name):
    """Built on one MiniLM layer, six times its adapter parameters are the count the
    committed runs of the method measured on the six-layer model (a method never trained:
    some parameters, none of them the frozen key projections); a method whose parameters
    are shared across layers, or that selects layers by index, is built on all six."""
    entry = registry.get(name)
    why = registry.family_available(entry)
    if why is not None:
        pytest.skip(why)
    whole = on_every_layer(entry)
    base = copy.deepcopy(six_layer_minilm if whole else one_layer_minilm)
    model, aux_loss_fn, record = entry.build(base)
    json.dumps(record)  # records go into CSV / JSONL files as they are
    head = registry.head_parameters(model)
    assert head == 384 * 26 + 26
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    adapter = sum(p.numel() for _, p in trainable) - head
    if entry.family == "full":
        assert adapter == sum(p.numel() for p in one_layer_minilm.parameters()) - head
    else:
        if name in MEASURED:
            assert (1 if whole else MINILM_LAYERS) * adapter == MEASURED[name]
        assert (adapter > 0) == (entry.family != "head")
        assert not any(n.endswith("attention.self.key.weight") for n, _ in trainable)
    out = model(input_ids=torch.randint(1, 64, (2, 8)))
    assert out.logits.shape == (2, 26)
    if aux_loss_fn is not None:
        assert torch.as_tensor(aux_loss_fn()).dim() == 0


def test_one_lora_definition():
    """``LoraConfig(`` is written once in benchmarks/, and its alpha convention is r."""
    hits = [(p.name, line) for p in BENCHMARKS.rglob("*.py")
            for line in p.read_text().splitlines() if "LoraConfig(" in line]
    assert len(hits) == 1 and hits[0][0] == "registry.py", hits
    for r in (1, 4, 8):
        assert registry.lora_config(r).lora_alpha == r
    config = registry.peft_config(registry.get("lora-r8"), ["0", "1"], modules_to_save=None)
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 8, 0.0)
    assert sorted(config.target_modules) == ["0", "1"] and config.modules_to_save is None


def test_committed_tradeoff_rows_are_what_the_registry_builds(one_layer_minilm,
                                                              six_layer_minilm,
                                                              committed_tradeoff):
    """Each row of results/tradeoff.csv: same adapter parameters and the same recorded
    configuration (BOFT's peft warning text names a machine's cache path: left out)."""
    assert set(committed_tradeoff) == set(tradeoff_methods.METHODS)
    for name, row in committed_tradeoff.items():
        entry = registry.get(name)
        assert MEASURED[name] == int(row["adapter_params"]), name
        assert entry.group == row["family"] and entry.label == row["label"], name
        if registry.family_available(entry) is not None:
            continue
        base = six_layer_minilm if on_every_layer(entry) else one_layer_minilm
        record = entry.build(copy.deepcopy(base))[2]
        committed = json.loads(row["config"])
        if name == "boft":
            committed.pop("peft_warnings"), record.pop("peft_warnings")
            committed.pop("ran_boft_R_shapes"), record.pop("ran_boft_R_shapes")
        assert json.loads(json.dumps(record)) == committed, name


def test_every_committed_text_row_chose_an_lr_inside_its_sweep(committed_tradeoff):
    """The protocol's "the lr swept until interior": the lr a row chose on validation is
    neither the smallest nor the largest it ran (a grid whose top wins grows upward; one whose
    bottom wins is given a lower value in its ``training_params.json``)."""
    for name, row in committed_tradeoff.items():
        lrs = sorted(parse_sweep(row["val_acc_sweep"]))
        assert len(lrs) >= 3 and lrs[0] < float(row["chosen_lr"]) < lrs[-1], (
            f"{name} chose lr {row['chosen_lr']} at an edge of its sweep {lrs}")


def test_lora_r8_record_is_the_committed_one(one_layer_minilm, committed_tradeoff):
    record = registry.build("lora-r8", copy.deepcopy(one_layer_minilm))[2]
    assert record == json.loads(committed_tradeoff["lora-r8"]["config"])
    assert record["lora_alpha"] == record["r"] == 8


def test_benchmarks_pick_registry_names():
    names = set(registry.METHODS)
    assert set(speed_minilm.METHODS) <= names and set(DEFAULT_LRS) <= names
    assert set(tradeoff_methods.METHODS) <= names
    assert registry.get("mixture-physics").experts == ("physics-qv-r4", "physics-qv-r4-periodic")
    assert tradeoff_methods.METHODS["mixture-physics"].experts == ("physics-qv-r4",)


def test_paper_minors_are_the_compound_matrix():
    from qiadapters import compound_by_minors

    Q = torch.linalg.qr(torch.randn(2, 6, 6, dtype=torch.float64))[0]
    for k in (1, 2, 3):
        got = paper.minors_compound(Q, k)
        for i in range(2):
            torch.testing.assert_close(got[i], compound_by_minors(Q[i], k))


def test_paper_dense_layer_is_orthogonal_and_identity_at_init():
    layer = paper.DenseCompoundLinear(torch.nn.Linear(40, 40), orders=(1, 2), blocks=2)
    x = torch.randn(3, 40)
    torch.testing.assert_close(layer(x), layer.base_layer(x))
    with torch.no_grad():
        layer.weight.normal_(0, 0.3)
    D = layer.dense()
    torch.testing.assert_close(D @ D.T, torch.eye(40), atol=1e-5, rtol=0)
    assert not torch.allclose(D, torch.eye(40))


def test_timing_harness_records_wall_cpu_threads_and_order():
    calls = []
    t = timing.interleaved({"a": lambda: calls.append("a") or 1,
                            "b": lambda: calls.append("b") or 2},
                           reps=4, warmup=1, alternate=True)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert t.rounds("a") == t.rounds("b") == 4 and t.results["b"] == [2] * 4
    assert t.threads == torch.get_num_threads()
    assert all(x >= 0 for x in t.wall["a"] + t.cpu["a"])
    assert t.paired_ratio("a", "a") == 1.0
    t.extend(timing.interleaved({"a": lambda: None}, reps=2, warmup=0))
    assert t.rounds("a") == 6 and t.rounds("b") == 4


def test_no_quick_outputs_are_committed_or_linked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", str(RESULTS)], capture_output=True,
                             text=True, cwd=BENCHMARKS.parent).stdout
    assert "quick" not in tracked
    docs = BENCHMARKS.parent / "docs"
    for path in [*docs.glob("*.md"), *RESULTS.glob("*.md")]:
        # a markdown link or image into quick outputs, or an old *_quick file name
        assert not re.search(r"\]\([^)]*quick[^)]*\)|_quick\.", path.read_text()), path.name


@pytest.mark.parametrize("name", ["hamming-default", speed_minilm.DEFAULT])
def test_the_default_entries_are_the_librarys_default_layout(one_layer_minilm, name):
    """``hamming-default`` (no layout in its config) and the speed targets' Hamming contender
    build exactly the layouts ``HammingConfig`` gives by default, on every MiniLM layer
    (query/value and all linear layers)."""
    from qiadapters import HammingConfig, get_adapter_model

    def layouts(model):
        return {n: m.hamming["default"].block_layout for n, m in model.named_modules()
                if hasattr(m, "hamming")}
    for targets in (["query", "value"], "all-linear"):
        entry = registry.get(name)
        config = registry.adapter_config(entry)
        config.target_modules = targets
        built = layouts(get_adapter_model(copy.deepcopy(one_layer_minilm), config))
        default = layouts(get_adapter_model(copy.deepcopy(one_layer_minilm),
                                            HammingConfig(target_modules=targets)))
        assert built == default and len(built) in (2, 7)  # q/v; 6 in the layer + pooler
