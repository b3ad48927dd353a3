"""benchmarks.tradeoff: the method table, lr selection on validation, resumability, report.

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
    names = list(tradeoff.METHODS)
    assert len(names) == len(set(names))
    for m in tradeoff.METHODS.values():
        assert len(m.lrs) >= 4, m.name
        assert list(m.lrs) == sorted(m.lrs)
    assert tradeoff.ADAPTER_LRS[0] == 5e-4 and tradeoff.ADAPTER_LRS[-1] == 1e-2
    # The priority rows come first.
    assert names[:3] == ["lora-r8", "lora-r1", "head"]
    assert {"oft", "boft", "full", "hamming-12-b3", "hamming-12-b8", "hamming-1-b8",
            "hamming-123-b8", "hamming-12-b3-expm", "hamming-12-b3-circuit"} <= set(names)


@pytest.mark.parametrize("name", list(tradeoff.METHODS))
def test_every_method_builds_and_counts_head_separately(base, name):
    method = tradeoff.METHODS[name]
    why = tradeoff.family_available(method)
    if why is not None:
        pytest.skip(why)
    model, aux_loss_fn, record = method.build(copy.deepcopy(base))
    json.dumps(record)  # the record goes into the jsonl as is
    head = tradeoff.head_parameters(model)
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


def test_lr_is_chosen_on_validation_only():
    runs = [_run("m", 1e-3, 0, 0.50, 0.99), _run("m", 1e-2, 0, 0.70, 0.10)]
    assert tradeoff.choose_lr(runs, "m", (1e-3, 1e-2), 10, 4) == 1e-2
    # An unfinished sweep chooses nothing.
    assert tradeoff.choose_lr(runs, "m", (1e-3, 1e-2, 3e-2), 10, 4) is None
    method = tradeoff.Method("m", "peft", "m", build=None, lrs=(1e-3, 1e-2))
    assert tradeoff.plan(runs, method, method.lrs, (0, 1, 2), 10, 4) == (1e-2, 1, ("test",))
    runs += [_run("m", 1e-2, 1, None, 0.2), _run("m", 1e-2, 2, None, 0.3)]
    assert tradeoff.plan(runs, method, method.lrs, (0, 1, 2), 10, 4) is None
    runs = [dict(r, adapter_params=7, head_params=3, median_seconds_per_step=0.1, config={})
            for r in runs]
    (row,) = tradeoff.summarize(runs, [method], (0, 1, 2), 10, 4)
    assert row["chosen_lr"] == 1e-2 and row["n_seeds"] == 3
    assert row["test_acc_mean"] == pytest.approx(0.2)


def test_resumable_run_and_report(tmp_path, base):
    data = {"train": tiny_data(32, 0), "validation": tiny_data(16, 1), "test": tiny_data(16, 2)}
    methods = [tradeoff.METHODS["head"], tradeoff.METHODS["hamming-12-b3"]]
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
    assert tradeoff.run_all([tradeoff.METHODS["lora-r1"]], data, load_model, runs_path,
                            deadline=0.0, **kwargs) == 0

    outputs = tmp_path / "t.csv", tmp_path / "t.png", tmp_path / "t.md"
    rows = tradeoff.report(runs_path, *outputs, methods, (0, 1), 2, 4, (1e-3, 1e-2))
    assert [r["method"] for r in rows] == ["head", "hamming-12-b3"]
    with open(outputs[0]) as f:
        table = list(csv.DictReader(f))
    assert table[1]["adapter_params"] == str(rows[1]["adapter_params"])
    assert outputs[1].stat().st_size > 0
    assert "incomplete or missing rows: none" in outputs[2].read_text()
