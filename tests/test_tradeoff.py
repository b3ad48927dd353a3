"""benchmarks.tradeoff: the method table (tradeoff_methods), lr selection on validation and
the sweep (tradeoff_sweep), resumability, report.

Everything runs on a tiny random BERT (hidden 64) and random token data, in a few seconds.
"""
import copy
import csv
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from benchmarks import tradeoff  # noqa: E402
from benchmarks.common import registry  # noqa: E402
from benchmarks.common import sweep as tradeoff_sweep  # noqa: E402
from benchmarks.tradeoff import methods as tradeoff_methods  # noqa: E402

NUM_LABELS = 5


def tiny_bert(seed: int = 0):
    config = transformers.BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=96,
                                     max_position_embeddings=16, num_labels=NUM_LABELS)
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(config)


def tiny_data(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 50, (n, 8), generator=gen),
            "attention_mask": torch.ones(n, 8, dtype=torch.long),
            "labels": torch.randint(0, NUM_LABELS, (n,), generator=gen)}


@pytest.fixture(scope="module")
def base():
    return tiny_bert()


def test_method_table_protocol():
    names = list(tradeoff_methods.METHODS)
    assert len(names) == len(set(names))
    for m in tradeoff_methods.METHODS.values():
        # at least 3 values spanning a factor 4 or more (the sweep grows the top while it wins)
        assert len(m.lrs) >= 3 and m.lrs[-1] / m.lrs[0] >= 4, m.name
        assert list(m.lrs) == sorted(m.lrs)
    # The specified span 5e-4 .. 1e-2, with at least 4 values inside it.
    assert tradeoff_methods.ADAPTER_LRS[0] == 5e-4 and 1e-2 in tradeoff_methods.ADAPTER_LRS
    assert sum(5e-4 <= lr <= 1e-2 for lr in tradeoff_methods.ADAPTER_LRS) >= 4
    # The priority rows come first.
    assert names[:3] == ["lora-r8", "lora-r1", "head"]
    assert {"oft", "boft", "full", "hamming-12-b3", "hamming-12-b8", "hamming-1-b8",
            "hamming-123-b8", "hamming-12-b3-expm", "hamming-12-b3-circuit"} <= set(names)


#: Rows whose shape divides MiniLM's width (384) but not this test's 64-wide encoder; peft
#: refuses them there.  tests/test_registry.py builds every entry on a one-layer MiniLM.
NEEDS_MINILM_WIDTH = {"c3a-b384": "a circulant block of 384", "vblora-r2-v16": "vectors of 128",
                      "c3a-b128": "a circulant block of 128", "vblora-r4-v32": "vectors of 128",
                      "psoft-r128": "a rank of 128 (at most the width)"}


@pytest.mark.parametrize("name", list(tradeoff_methods.METHODS))
def test_every_method_builds_and_counts_head_separately(base, name):
    method = tradeoff_methods.METHODS[name]
    why = tradeoff_methods.family_available(method)
    if why is not None:
        pytest.skip(why)
    if name in NEEDS_MINILM_WIDTH:
        pytest.skip(f"{NEEDS_MINILM_WIDTH[name]} does not fit the test encoder's width 64")
    layers = registry.get(name).config.get("layers_to_transform") or []
    if max(layers, default=-1) >= base.config.num_hidden_layers:
        pytest.skip(f"layers_to_transform={layers} selects MiniLM layers the test encoder "
                    f"({base.config.num_hidden_layers} layers) does not have")
    model, aux_loss_fn, record = method.build(copy.deepcopy(base))
    json.dumps(record)  # the record goes into the jsonl as is
    head = registry.head_parameters(model)
    assert head == 64 * NUM_LABELS + NUM_LABELS
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    adapter = sum(p.numel() for n, p in trainable) - head
    if name == "head":
        assert adapter == 0
    elif name == "full":
        assert adapter == sum(p.numel() for p in base.parameters()) - head
    else:
        assert 0 < adapter < sum(p.numel() for p in base.parameters()) // 4
        # Nothing of the pretrained encoder itself trains.
        assert not any(n.endswith("attention.self.key.weight") for n, _ in trainable)
    out = model(input_ids=torch.randint(1, 50, (2, 8)))
    assert out.logits.shape == (2, NUM_LABELS)
    if aux_loss_fn is not None:
        assert torch.as_tensor(aux_loss_fn()).dim() == 0
    if name == "boft":
        # The factor count that actually ran is recorded, not just the one asked for.
        assert record["ran_n_butterfly_factor"] and "fbd_cuda_available" in record


def _run(method, lr, seed, val, test):
    return {"method": method, "lr": lr, "seed": seed, "steps": 10, "batch_size": 4,
            "val_accuracy": val, "test_accuracy": test}


def test_mixture_rows_name_their_single_expert_rows(base):
    """A mixture, its experts trained alone, and equal parameters."""
    mixtures = [m for m in tradeoff_methods.METHODS.values() if m.family == "mixture"]
    assert {"mixture-quantum", "mixture-physics", "mixture-both"} <= {m.name for m in mixtures}
    for m in mixtures:
        assert m.experts and set(m.experts) <= set(tradeoff_methods.METHODS), m.name

    def adapter_params(name):
        model = tradeoff_methods.METHODS[name].build(copy.deepcopy(base))[0]
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return trainable - registry.head_parameters(model)

    # A global router adds one logit per expert and wrapped module: 2 experts x 2 targets x
    # 2 layers of the tiny BERT.
    assert adapter_params("mixture-quantum") == (adapter_params("hamming-12-b3")
                                                  + adapter_params("hamming-12-b8") + 8)
    assert adapter_params("mixture-both") == (adapter_params("hamming-12-b3")
                                               + adapter_params("physics-qv-r4") + 8)


def _row(name, family, acc, std, params):
    return {"method": name, "label": name, "family": family, "test_acc_mean": acc,
            "test_acc_std": std, "adapter_params": params}


def test_mixture_lines_compare_with_experts_and_equal_parameters():
    methods = [tradeoff_methods.Method("mix", "mixture", "mix", None, experts=("a", "b"))]
    rows = [_row("a", "qiadapters", 0.60, 0.01, 100), _row("b", "physics", 0.70, 0.01, 900),
            _row("c", "qiadapters", 0.80, 0.02, 1050), _row("d", "qiadapters", 0.90, 0.0, 1200),
            _row("lora", "peft", 0.95, 0.0, 10), _row("mix", "mixture", 0.75, 0.03, 1000)]
    alone, equal = tradeoff.mixture_lines(rows, methods)
    # Against its experts: the best of a and b is b (70%): +5 points.
    assert "mix 75.00 ± 3.00 (1,000 params) beats its experts alone: best b" in alone
    assert "difference +5.00 points" in alone and "within" not in alone
    # Equal parameters = at most 1.1x: c (1,050) counts, d (1,200) and the peft row do not.
    assert "does not beat the best single expert with <= 1.1x its parameters: best c" in equal
    assert "difference -5.00 points" in equal
    rows[-1]["test_acc_mean"] = 0.79
    assert "(within one seed std)" in tradeoff.mixture_lines(rows, methods)[1]


def test_lr_is_chosen_on_validation_only():
    runs = [_run("m", 1e-3, 0, 0.50, 0.99), _run("m", 1e-2, 0, 0.70, 0.10)]
    assert tradeoff_sweep.choose_lr(runs, "m", (1e-3, 1e-2), 10, 4) == 1e-2
    # An unfinished sweep chooses nothing.
    assert tradeoff_sweep.choose_lr(runs, "m", (1e-3, 1e-2, 3e-2), 10, 4) is None
    method = tradeoff_methods.Method("m", "peft", "m", build=None, lrs=(1e-3, 1e-2))
    assert tradeoff_sweep.plan(runs, method, method.lrs, (0, 1, 2), 10, 4) == (1e-2, 1, ("test",))
    runs += [_run("m", 1e-2, 1, None, 0.2), _run("m", 1e-2, 2, None, 0.3)]
    assert tradeoff_sweep.plan(runs, method, method.lrs, (0, 1, 2), 10, 4) is None
    runs = [dict(r, adapter_params=7, head_params=3, median_seconds_per_step=0.1, config={})
            for r in runs]
    (row,) = tradeoff.summarize(runs, [method], (0, 1, 2), 10, 4)
    assert row["chosen_lr"] == 1e-2 and row["n_seeds"] == 3
    assert row["test_acc_mean"] == pytest.approx(0.2)


def test_sweep_grid_extends_until_the_best_lr_is_inside():
    runs = [_run("m", 1e-3, 0, 0.50, 0.0), _run("m", 1e-2, 0, 0.70, 0.0)]
    method = tradeoff_methods.Method("m", "peft", "m", build=None, lrs=(1e-3, 1e-2))
    # Best at the edge: the grid grows by 2.5x and the extension point is trained next.
    assert tradeoff_sweep.sweep_grid(runs, "m", method.lrs, 10, 4, extend=2) == (1e-3, 1e-2, 2.5e-2)
    assert tradeoff_sweep.plan(runs, method, method.lrs, (0, 1), 10, 4, extend=2) == (
        2.5e-2, 0, ("validation", "test"))
    # Without extension the edge value is taken as is.
    assert tradeoff_sweep.plan(runs, method, method.lrs, (0, 1), 10, 4) == (1e-2, 1, ("test",))
    # Still best at the new edge: one more value, and no more than ``extend``.
    runs.append(_run("m", 2.5e-2, 0, 0.80, 0.0))
    assert tradeoff_sweep.sweep_grid(runs, "m", method.lrs, 10, 4, extend=2)[-1] == 6.25e-2
    runs.append(_run("m", 6.25e-2, 0, 0.90, 0.0))
    assert len(tradeoff_sweep.sweep_grid(runs, "m", method.lrs, 10, 4, extend=2)) == 4
    # A worse extension point brackets the optimum: the seeds go to the interior best.
    runs[-1] = _run("m", 6.25e-2, 0, 0.10, 0.0)
    assert tradeoff_sweep.plan(runs, method, method.lrs, (0, 1), 10, 4, extend=2) == (
        2.5e-2, 1, ("test",))


def test_resumable_run_and_report(tmp_path, base):
    data = {"train": tiny_data(32, 0), "validation": tiny_data(16, 1), "test": tiny_data(16, 2)}
    methods = [tradeoff_methods.METHODS["head"], tradeoff_methods.METHODS["hamming-12-b3"]]
    runs_path = tmp_path / "tradeoff_runs.jsonl"

    def load_model(seed):
        return tiny_bert(seed)

    kwargs = dict(seeds=(0, 1), steps=2, batch_size=4, warmup_frac=0.5,
                  lrs_override=(1e-3, 1e-2), progress=False)
    trained = tradeoff.run_all(methods, data, load_model, runs_path, **kwargs)
    assert trained == 2 * (2 + 1)           # per method: 2 sweep lrs + 1 extra seed
    lines = runs_path.read_text().splitlines()
    assert len(lines) == trained
    first = json.loads(lines[0])
    assert first["val_accuracy"] is not None and first["test_accuracy"] is not None
    assert first["head_params"] == 64 * NUM_LABELS + NUM_LABELS
    # A rerun finds everything done; a half-written last line (killed run) is ignored.
    with open(runs_path, "a") as f:
        f.write('{"method": "head", "lr"')
    assert tradeoff.run_all(methods, data, load_model, runs_path, **kwargs) == 0
    # A deadline in the past starts nothing.
    assert tradeoff.run_all([tradeoff_methods.METHODS["lora-r1"]], data, load_model, runs_path,
                            deadline=0.0, **kwargs) == 0

    outputs = tmp_path / "t.csv", tmp_path / "t.png", tmp_path / "t.md"
    rows = tradeoff.report(runs_path, *outputs, methods, (0, 1), 2, 4, (1e-3, 1e-2))
    assert [r["method"] for r in rows] == ["head", "hamming-12-b3"]
    with open(outputs[0]) as f:
        table = list(csv.DictReader(f))
    assert table[1]["adapter_params"] == str(rows[1]["adapter_params"])
    assert outputs[1].stat().st_size > 0
    assert "incomplete or missing rows: none" in outputs[2].read_text()
    # The paper's claim is against LoRA r=8: a report without that row has no such section.
    assert "The paper's claim" not in outputs[2].read_text()


def test_the_angles_can_train_at_a_fraction_of_the_head_lr():
    from benchmarks.common.training import _lr_groups
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(4, 4)
            self.classifier = nn.Linear(4, 2)
            self.frozen = nn.Linear(4, 4).requires_grad_(False)

    model = Model()
    one = _lr_groups(model, 0.1, 1.0)
    assert len(one) == 1 and len(one[0]["params"]) == 4
    head, rest = _lr_groups(model, 0.1, 0.25)
    assert head["lr"] == 0.1 and rest["lr"] == 0.025
    assert {id(p) for p in head["params"]} == {id(p) for p in model.classifier.parameters()}
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.encoder.parameters()}


def test_the_learned_scales_can_train_at_their_own_rate():
    """``scale_lr_scale``: exactly the Hamming adapters' scale vectors (found by their module,
    not their name) leave the adapter's group; the row's method carries the factor from its
    ``training_params.json`` and a model without a learned scale is refused by name."""
    import qiadapters
    from benchmarks.common.training import _lr_groups
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.query = nn.Linear(64, 64)
            self.classifier = nn.Linear(64, 2)

    def built(scale):
        torch.manual_seed(0)
        return qiadapters.get_adapter_model(Model(), qiadapters.HammingConfig(
            target_modules=["query"], orders=(1, 2), block_size=16, scale=scale,
            modules_to_save=["classifier"]))

    model = built(scale=True)
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    head, angles, scales = _lr_groups(model, 0.1, 0.25, 3.0)
    assert (head["lr"], angles["lr"], scales["lr"]) == (0.1, 0.025, pytest.approx(0.3))
    assert [trainable[id(p)].rsplit(".", 1)[-1] for p in scales["params"]] == ["scale"]
    assert all("classifier" in trainable[id(p)] for p in head["params"])
    assert all(not trainable[id(p)].endswith("scale") and "classifier" not in trainable[id(p)]
               for p in angles["params"])
    assert sum(len(g["params"]) for g in (head, angles, scales)) == len(trainable)
    assert len(_lr_groups(model, 0.1, 1.0, 1.0)) == 1  # every rate is lr: one group
    with pytest.raises(ValueError, match="scale_lr_scale=3.0 is set but the model has no"):
        _lr_groups(built(scale=False), 0.1, 1.0, 3.0)
    row = tradeoff_methods.METHODS["hamming-123-bs16-scale-angle-lr-top4-scale-at-lr"]
    assert (row.adapter_lr_scale, row.scale_lr_scale) == (0.25, 1.0)
    assert tradeoff_methods.METHODS["hamming-123-bs16-scale-angle-lr-top4"].scale_lr_scale is None


def test_every_row_is_an_experiment_folder_and_every_folder_a_row():
    """The inputs (benchmarks/tradeoff/experiments/<family>/<name>/training_params.json) and
    the table's rows name the same methods, each under its registry family."""
    from benchmarks.common import experiments
    assert experiments.names(tradeoff_methods.EXPERIMENTS) == sorted(tradeoff_methods.ROWS)
    for name in tradeoff_methods.ROWS:
        params = experiments.training_params(tradeoff_methods.EXPERIMENTS, name)
        assert tuple(params["lrs"]) == tradeoff_methods.METHODS[name].lrs
        assert params["steps"] == tradeoff_methods.DEFAULTS["steps"]


def test_training_params_reject_unknown_keys_and_per_row_protocol(tmp_path):
    """A row's file may change its grid and adapter-lr scale, never the protocol (steps,
    seeds, ...), and an unknown key is an error that names it."""
    from benchmarks.common import experiments
    (tmp_path / experiments.DEFAULTS).write_text(json.dumps({"lrs": [1e-3], "steps": 5}))
    row = tmp_path / "lora" / "lora-r8"
    row.mkdir(parents=True)
    (row / experiments.PARAMS).write_text(json.dumps({"lrs": [2e-3], "adapter_lr_scale": 0.5}))
    assert experiments.training_params(tmp_path, "lora-r8") == {
        "lrs": [2e-3], "steps": 5, "adapter_lr_scale": 0.5}
    (row / experiments.PARAMS).write_text(json.dumps({"steps": 7}))
    with pytest.raises(ValueError, match="unknown keys \\['steps'\\]"):
        experiments.training_params(tmp_path, "lora-r8")
    with pytest.raises(FileNotFoundError, match="lora-r1"):
        experiments.training_params(tmp_path, "lora-r1")


def test_views_are_derived_per_experiment(tmp_path):
    """``benchmarks.common.views``: one ``<family>--<name>.json`` per row, its training
    parameters, its runs and the sweep's summary, from a run record it only reads."""
    from benchmarks.common import views
    lrs = tradeoff_methods.METHODS["lora-r8"].lrs
    runs = [{"method": "lora-r8", "lr": lr, "seed": 0, "steps": 100, "batch_size": 32,
             "val_accuracy": 0.6 if lr == 1e-2 else 0.5, "test_accuracy": 0.55,
             "adapter_params": 7, "head_params": 3, "median_seconds_per_step": 0.1,
             "config": {}} for lr in lrs]
    runs += [dict(runs[0], lr=1e-2, seed=seed, test_accuracy=acc, val_accuracy=None)
             for seed, acc in ((1, 0.65), (2, 0.6))]
    record = tmp_path / "tradeoff_runs.jsonl"
    record.write_text("".join(json.dumps(r) + "\n" for r in runs))
    before = record.read_text()
    paths = views.write("tradeoff", results=tmp_path, out=tmp_path / "views")
    assert len(paths) == len(tradeoff_methods.METHODS) and record.read_text() == before
    view = json.loads((tmp_path / "views" / "lora--lora-r8.json").read_text())
    assert view["training_params"]["lrs"] == list(lrs)
    (task,) = view["tasks"].values()
    assert len(task["runs"]) == len(lrs) + 2
    assert task["summary"]["chosen_lr"] == 1e-2 and task["summary"]["n_seeds"] == 3
    assert task["summary"]["test_acc_mean"] == pytest.approx((0.55 + 0.65 + 0.6) / 3)
    assert json.loads((tmp_path / "views" / "head--head.json").read_text())["tasks"] == {}
