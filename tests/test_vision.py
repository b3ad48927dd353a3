"""The vision benchmark without its data: task transforms on synthetic arrays, splits, the
ViT, every vision method (built on a one-layer ViT of the benchmark's width), identity at
initialisation, one training step per family, and the report from fabricated run records.

Fashion-MNIST (a Debian package) and the pretrained checkpoint are not needed: CI has
neither apt nor the time to pretrain.
"""
import copy
import csv
import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from benchmarks import vision  # noqa: E402
from benchmarks.common import registry  # noqa: E402
from benchmarks.common.constants import RESULTS  # noqa: E402
from benchmarks.common.routing import router_weights  # noqa: E402
from benchmarks.common.summary import parse_sweep  # noqa: E402
from benchmarks.common.training import train  # noqa: E402
from benchmarks.vision import data as vision_data  # noqa: E402
from benchmarks.vision import methods as vision_methods  # noqa: E402
from benchmarks.vision import tables as vision_report  # noqa: E402
from benchmarks.vision.model import VIT, build_vit  # noqa: E402


@pytest.fixture(scope="module")
def one_layer_vit():
    return build_vit(num_labels=4, seed=0, num_hidden_layers=1)


@pytest.fixture(scope="module")
def six_layer_vit():
    return build_vit(num_labels=4, seed=0)


def _images(n=8, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


# ------------------------------------------------------------------------------ transforms

def test_rotation_labels_are_the_quarter_turns():
    images = _images()
    rotated, k = vision_data.rotate(images, seed=3)
    assert rotated.shape == images.shape and set(k) <= {0, 1, 2, 3}
    for img, out, j in zip(images, rotated, k):
        np.testing.assert_array_equal(np.rot90(out, -int(j)), img)
    np.testing.assert_array_equal(vision_data.rotate(images, seed=3)[1], k)


def test_quadrant_task_puts_the_shrunk_item_in_the_labelled_quadrant():
    images = _images(12) + 0.1                       # strictly positive everywhere
    out, q = vision_data.into_quadrant(images, seed=1)
    assert out.shape == images.shape and set(q) == {0, 1, 2, 3}
    for img, canvas, j in zip(images, out, q):
        r, c = (j // 2) * 14, (j % 2) * 14
        window = canvas[r:r + 14, c:c + 14]
        np.testing.assert_allclose(window, img.reshape(14, 2, 14, 2).mean((1, 3)), rtol=1e-6)
        assert canvas.sum() == pytest.approx(window.sum())      # nothing outside it


def test_inversion_and_normalisation():
    images = _images(3)
    np.testing.assert_allclose(vision_data.invert(vision_data.invert(images)), images)
    x = vision_data.normalise(images)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 0] * vision_data.STD + vision_data.MEAN,
                               torch.as_tensor(images))


def test_splits_are_seeded_disjoint_and_shaped():
    images, labels = _images(60), np.arange(60) % 4
    a = vision_data.task_splits(images, labels, n_train=20, n_val=10, n_test=25, seed=0)
    b = vision_data.task_splits(images, labels, n_train=20, n_val=10, n_test=25, seed=0)
    assert {k: len(v["labels"]) for k, v in a.items()} == {"train": 20, "validation": 10,
                                                            "test": 25}
    for split in a:
        torch.testing.assert_close(a[split]["pixel_values"], b[split]["pixel_values"])
    seen = [tuple(x.flatten()[:4].tolist()) for s in a.values() for x in s["pixel_values"]]
    assert len(set(seen)) == 55
    with pytest.raises(ValueError, match="none for the test split"):
        vision_data.task_splits(images, labels, n_train=50, n_val=10)


def test_missing_data_names_the_install_command(tmp_path):
    with pytest.raises(vision_data.VisionDataMissingError,
                       match="apt-get install -y dataset-fashion-mnist"):
        vision_data.fashion_mnist("test", root=tmp_path)
    with pytest.raises(KeyError, match="'rotation'"):
        vision_data.load_task("cifar")
    with pytest.raises(ValueError, match="'train', 'test'"):
        vision_data.fashion_mnist("validation", root=tmp_path)


def test_idx_reader(tmp_path):
    import gzip
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in data.shape)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + data.tobytes()))
    np.testing.assert_array_equal(vision_data.read_idx(path), data)


# ----------------------------------------------------------------------- model and methods

def test_vit_is_a_7x7_grid_plus_cls_with_q_and_v_projections():
    model = build_vit(num_labels=4, num_hidden_layers=1)
    names = {n for n, _ in model.named_modules()}
    assert {"vit.layers.0.attention.q_proj", "vit.layers.0.attention.v_proj",
            "classifier"} <= names
    seen = {}
    model.vit.layers[0].attention.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("x", args[0]))
    assert model(pixel_values=torch.zeros(2, 1, 28, 28)).logits.shape == (2, 4)
    assert seen["x"].shape == (2, 1 + 7 * 7, VIT["hidden_size"])


def test_every_vision_row_is_a_vision_registry_entry():
    assert set(vision_methods.METHODS) == set(registry.VISION_METHODS)
    assert not set(registry.VISION_METHODS) & set(registry.METHODS)
    assert all(n.startswith("vision-") for n in registry.VISION_METHODS)
    physics_rows = [e for e in registry.VISION_METHODS.values() if e.family == "physics"]
    assert {(tuple(e.config["priors"]), e.config["placement"]) for e in physics_rows} == {
        (p, place) for p in (("heat",), ("wave",), ("poisson",), ("heat", "wave", "poisson"))
        for place in ("input", "parallel")}
    assert all(e.config["grid"] == [7, 7] and e.config["extra_tokens"] == 1
               for e in physics_rows)


def test_every_vision_row_has_committed_results():
    """results/vision.csv holds every row of the vision table, and nothing else: a row added
    to ROWS is trained before it lands, as the trade-off's rows are."""
    with open(RESULTS / "vision.csv", newline="") as f:
        committed = {r["method"] for r in csv.DictReader(f)}
    assert committed == set(vision_methods.ROWS)


#: A validation score this close to 100% is the task's ceiling (one of the 200 validation
#: images): a sweep that reaches it at its smallest lr has nothing below it to find.
CEILING = 99.5


def test_every_committed_vision_sweep_chose_an_lr_inside_it():
    """The protocol's "the lr swept until interior", per task: the lr chosen on validation
    at seed 0 is neither end of what the sweep ran, unless another lr scored the same (a
    plateau, not an edge) or the score is the task's ceiling."""
    with open(RESULTS / "vision.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["seed"] == "0"]
    assert len(rows) == 5 * len(vision_methods.ROWS)
    for row in rows:
        sweep = parse_sweep(row["val_acc_sweep"])
        lrs, chosen = sorted(sweep), float(row["lr"])
        others = [acc for lr, acc in sweep.items() if lr != chosen]
        inside = lrs[0] < chosen < lrs[-1]
        assert len(lrs) >= 3 and (inside or sweep[chosen] <= max(others)
                                  or sweep[chosen] >= CEILING), (
            f"{row['method']} on {row['task']} chose lr {chosen} at an edge of {sweep}")


#: What the latest committed run of each vision method measured: method -> adapter
#: parameters.  The latest, because the physics rows' ``rotation`` runs were recorded before
#: the rest, by a version of the priors with 5 more parameters per adapted layer.
MEASURED = {run["method"]: run["adapter_params"]
            for run in sorted(vision_report.load_all_runs(RESULTS), key=lambda r: r["finished"])}


#: peft's methods that do not start as the identity with their default initialisation (the
#: benchmarks keep peft's defaults): FourierFT and VB-LoRA draw their coefficients at
#: random, C3A draws its kernels (xavier_uniform), UniLoRA its shared vector (+-0.02).
NOT_IDENTITY_AT_INIT = {"full", "head", "fourierft", "c3a", "unilora", "vblora"}


@pytest.mark.parametrize("name", sorted(registry.VISION_METHODS))
def test_vision_entry_builds_with_the_parameters_its_runs_measured(six_layer_vit, name):
    """Built on the six-layer ViT, its adapter parameters are what the latest committed run
    measured (an entry not trained yet: some parameters)."""
    entry = registry.get(name)
    base = six_layer_vit
    model, aux_loss_fn, record = entry.build(copy.deepcopy(base))
    json.dumps(record)
    head = registry.head_parameters(model)
    assert head == VIT["hidden_size"] * 4 + 4
    adapter = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
    if entry.family == "full":
        assert adapter == sum(p.numel() for p in base.parameters()) - head
    if name in MEASURED:
        assert adapter == MEASURED[name]
    else:
        assert adapter > 0
    x = torch.randn(2, 1, 28, 28)
    out = model(pixel_values=x).logits
    assert out.shape == (2, 4)
    if entry.config.get("init_std"):  # the init study's random start: not the identity
        assert not torch.allclose(out, base(pixel_values=x).logits, atol=1e-5)
    elif entry.family not in NOT_IDENTITY_AT_INIT:
        # every other adapter starts as the identity: the pretrained model's logits
        torch.testing.assert_close(out, base(pixel_values=x).logits)


@pytest.mark.parametrize("name", ["vision-head", "vision-lora-r1", "vision-oft",
                                  "vision-hamming-12-b8", "vision-bottleneck-input",
                                  "vision-physics-moppa-input", "vision-physics-heat-qv",
                                  "vision-mixture"])
def test_one_training_step_moves_the_adapter(one_layer_vit, name):
    model, aux_loss_fn, _ = registry.build(name, copy.deepcopy(one_layer_vit))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    data = {"pixel_values": torch.randn(4, 1, 28, 28), "labels": torch.tensor([0, 1, 2, 3])}
    metrics = train(model, data, steps=1, batch_size=4, lr=1e-2, warmup_frac=0.0,
                    aux_loss_fn=aux_loss_fn, progress=False)
    assert np.isfinite(metrics["losses"][0])
    moved = {n for n, p in model.named_parameters() if p.requires_grad
             and not torch.equal(p.detach(), before[n])}
    assert any("classifier" in n for n in moved)
    if name != "vision-head":
        assert any("classifier" not in n for n in moved), name


def test_router_weights_are_read_per_prior_and_per_expert(one_layer_vit):
    x = {"pixel_values": torch.randn(3, 1, 28, 28)}
    moppa = router_weights(registry.build("vision-physics-moppa-input",
                                          copy.deepcopy(one_layer_vit))[0], x)
    assert moppa["kind"] == "priors" and moppa["names"] == ["heat", "wave", "poisson"]
    assert moppa["mean"] == pytest.approx([1 / 3] * 3)          # routers start uniform
    mix = router_weights(registry.build("vision-mixture", copy.deepcopy(one_layer_vit))[0], x)
    assert mix["kind"] == "experts" and len(mix["per_layer"]) == 2 and len(mix["mean"]) == 2
    assert router_weights(registry.build("vision-lora-r1", copy.deepcopy(one_layer_vit))[0],
                          x) == {}


# --------------------------------------------------------------------------- the protocol

def test_workers_share_the_pairs_without_overlap():
    methods = list(vision_methods.METHODS.values())[:3]
    tasks = ["a", "b", "c"]
    dealt = [vision.pairs(tasks, methods, w, 2) for w in range(2)]
    keys = [(t, m.name) for share in dealt for t, m in share]
    assert len(keys) == len(set(keys)) == 9 and abs(len(dealt[0]) - len(dealt[1])) <= 1


def test_quick_settings_train_one_lr_per_method():
    s = vision.settings(vision.parse_args(["--quick"]))
    assert s["tasks"] == list(vision_methods.QUICK["tasks"]) and s["extend"] == 0
    assert all(len(m.lrs) == 1 for m in s["methods"]) and len(s["methods"]) == len(vision_methods.ROWS)
    assert "quick" in str(s["out"])
    with pytest.raises(SystemExit, match="unknown methods"):
        vision.settings(vision.parse_args(["--methods", "lora-r8"]))


def _run(task, method, lr, seed, val, test, router=None):
    return {"task": task, "method": method, "family": "x", "label": method, "lr": lr,
            "seed": seed, "steps": 5, "batch_size": 4, "val_accuracy": val,
            "test_accuracy": test, "adapter_params": 10, "head_params": 2, "n_test": 9,
            "median_seconds_per_step": 0.1, "cpu_seconds_per_step": 0.1, "config": {},
            "router": router or {}}


def test_report_chooses_on_validation_and_writes_seed_rows(tmp_path):
    method = vision_methods.Method("m", "physics", "m", None, lrs=(1e-3, 3e-3))
    router = {"kind": "priors", "names": ["heat", "wave"], "mean": [0.25, 0.75]}
    runs = []
    for task, (v1, v2) in {"t1": (0.5, 0.9), "t2": (0.8, 0.6)}.items():
        runs += [_run(task, "m", 1e-3, 0, v1, 0.4, router), _run(task, "m", 3e-3, 0, v2, 0.3)]
        best = 3e-3 if v2 > v1 else 1e-3
        runs.append(_run(task, "m", best, 1, None, 0.5, router))
    path = tmp_path / "vision_runs.w0.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in runs))
    table = vision_report.report(tmp_path, ["t1", "t2"], [method], (0, 1), 5, 4, extend=0)
    assert table["t1"]["m"]["chosen_lr"] == 3e-3 and table["t2"]["m"]["chosen_lr"] == 1e-3
    assert table["t1"]["m"]["edge"] == "high" and table["t2"]["m"]["edge"] == "low"
    rows = list(csv.DictReader(open(tmp_path / "vision.csv")))
    assert [(r["task"], r["seed"], r["test_accuracy"]) for r in rows] == [
        ("t1", "0", "0.3000"), ("t1", "1", "0.5000"), ("t2", "0", "0.4000"),
        ("t2", "1", "0.5000")]
    md = (tmp_path / "vision_table.md").read_text()
    assert "| m | 10 | 40.0 ± 14.1* | 45.0 ± 7.1* | **42.5** ± 10.6 |" in md
    assert "heat 0.25, wave 0.75" in md
    assert (tmp_path / "vision.png").stat().st_size > 0


def test_a_run_of_some_methods_reports_every_recorded_one(tmp_path, monkeypatch):
    """``--methods`` / ``--tasks`` choose what to train; the report is rebuilt from every
    method and task recorded in the folder (it once kept only those just trained and so
    dropped the other rows from the committed table)."""
    first, second = list(vision_methods.METHODS)[:2]
    runs = []
    for task in vision.TASKS:
        for name in (first, second):
            lrs = vision_methods.METHODS[name].lrs  # the sweep at seed 0, the first lr best
            runs += [_run(task, name, lr, 0, 0.6 if lr == lrs[0] else 0.5, 0.5) for lr in lrs]
            runs += [_run(task, name, lrs[0], seed, None, 0.5) for seed in (1, 2)]
    (tmp_path / "vision_runs.w0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    monkeypatch.setattr(vision_report, "plot", lambda *a, **k: None)
    assert vision.main(["--report-only", "--methods", first, "--tasks", "digits",
                        "--steps", "5", "--batch-size", "4", "--results", str(tmp_path)]) == 0
    md = (tmp_path / "vision_table.md").read_text()
    labels = [vision_methods.METHODS[n].label for n in (first, second)]
    assert all(f"| {label} |" in md for label in labels), md


def test_every_row_is_an_experiment_folder_and_every_folder_a_row():
    """benchmarks/vision/experiments/<family>/<name>/ holds each row's training parameters."""
    from benchmarks.common import experiments
    assert experiments.names(vision_methods.EXPERIMENTS) == sorted(vision_methods.ROWS)
    assert vision.STEPS == vision_methods.DEFAULTS["steps"] == 60
