"""The vision benchmark's long protocol, 14x14 backbone, router logging and spectra.

Each property is checked against an independent reference: a hand count of steps and runs, a
hand computation of the route regulariser, scipy's matrix exponential and numpy's
eigendecomposition of the finite-difference Laplacian for the frequency responses, and
explicit upsampling for the resized patch kernel.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
physics = pytest.importorskip("physics")

from benchmarks.common.training import train  # noqa: E402
from benchmarks.vision import run as vision_run  # noqa: E402
from benchmarks.vision import worker as vision_worker  # noqa: E402
from benchmarks.vision.model import BACKBONES, VIT, build_vit  # noqa: E402
from benchmarks.vision.priors_log import prior_state, router_summary  # noqa: E402
from benchmarks.vision.resize import resize_state, sum_pool_kernel  # noqa: E402


def _tiny_data(n=16, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(n, 1, 28, 28, generator=gen),
            "labels": torch.randint(0, classes, (n,), generator=gen)}


# ------------------------------------------------------------------ the schedule option

def test_epochs_give_the_stated_step_count():
    assert vision_run.steps_for(100, 32) == 2500        # 100 x 800 / 32
    assert vision_run.steps_for(2.4, 32) == 60           # the short protocol
    args = vision_run.parse_args(["--epochs", "100", "--methods", "vision-head"])
    s = vision_run.settings(args)
    assert s["steps"] == 2500 and s["out"].name == "vision_7x7_2500steps"
    with pytest.raises(ValueError, match="epochs"):
        vision_run.steps_for(0, 32)


def test_train_takes_the_steps_and_monitors_at_the_stated_steps():
    model = build_vit(num_labels=4, num_hidden_layers=1)
    calls = []
    metrics = train(model, _tiny_data(), steps=7, batch_size=4, lr=1e-3, progress=False,
                    monitor=lambda step: calls.append(step) or {"x": step}, monitor_every=3)
    assert len(metrics["losses"]) == 7
    assert calls == [0, 3, 6, 7]
    assert metrics["history"] == [{"step": s, "x": s} for s in (0, 3, 6, 7)]


# ------------------------------------------------------------------ resumable sweep

def _fake_train_one(calls):
    def fake(method, lr, seed, scored, splits, load_model, steps, batch_size, warmup_frac,
             progress=True, monitor_for=None, monitor_every=None):
        model, _, _ = method.build(load_model(seed))     # fills the worker's holder
        calls.append((method.name, lr, seed, steps))
        acc = 0.5 + 0.01 * math.log10(lr)                # a smaller lr scores lower
        return {"method": method.name, "family": method.family, "label": method.label,
                "lr": lr, "seed": seed, "steps": steps, "batch_size": batch_size,
                "val_accuracy": acc if "validation" in scored else None, "test_accuracy": acc,
                "adapter_params": 1, "head_params": 1, "median_seconds_per_step": 0.0,
                "train_seconds": 0.0, "cpu_seconds_per_step": 0.0, "config": {}}
    return fake


def test_a_killed_sweep_resumes_and_appends(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    from benchmarks.vision.model import CHECKPOINT
    if not CHECKPOINT.is_file():
        pytest.skip("the committed checkpoint is not here")
    splits = {k: _tiny_data(8, seed=i) for i, k in enumerate(("train", "validation", "test"))}
    monkeypatch.setattr(vision_worker, "load_task", lambda task, n_test: (splits, 4))
    calls = []
    monkeypatch.setattr(vision_worker, "train_one", _fake_train_one(calls))
    method = dataclasses.replace(vision_run.METHODS["vision-physics-moppa-input"],
                                 lrs=(0.001, 0.003))
    path = tmp_path / "vision_runs.w0.jsonl"
    # a run recorded before the kill, and one on the other backbone (a different key)
    first = {"method": method.name, "lr": 0.001, "seed": 0, "steps": 5, "batch_size": 4,
             "val_accuracy": 0.4, "test_accuracy": 0.4, "task": "rotation", "grid": [7, 7]}
    other = {**first, "lr": 0.003, "grid": [14, 14]}      # same key but the grid
    path.write_text(json.dumps(first) + "\n" + json.dumps(other) + "\n")
    trained = vision_run.run_worker(["rotation"], [method], tmp_path, (0, 1), 5, 4, 8, 0)
    # the missing sweep lr at seed 0, then seed 1 at the chosen (largest) lr
    assert calls == [(method.name, 0.003, 0, 5), (method.name, 0.003, 1, 5)]
    assert trained == 2
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 4 and lines[:2] == [first, other]
    assert all(r["grid"] == [7, 7] and r["backbone"] == "7x7" for r in lines[2:])
    assert lines[2]["priors"] and lines[2]["router"]["names"] == ["heat", "wave", "poisson"]
    assert vision_run.run_worker(["rotation"], [method], tmp_path, (0, 1), 5, 4, 8, 0) == 0
    assert len(path.read_text().splitlines()) == 4


# ------------------------------------------------------------------ the 14x14 backbone

def test_the_14x14_backbone_has_196_patch_tokens_and_the_priors_follow_its_grid():
    spec = BACKBONES["14x14"]
    vit = build_vit(num_labels=4, num_hidden_layers=1, **spec.overrides)
    x = torch.randn(2, 1, 28, 28)
    assert vit.vit.embeddings(x).shape == (2, 197, VIT["hidden_size"]) and spec.tokens == 197
    method = vision_run.on_grid(vision_run.METHODS["vision-physics-moppa-input"], spec.grid)
    model, aux_loss_fn, record = method.build(vit)
    assert record["grid"] == [14, 14]
    adapter = next(m for m in model.modules() if isinstance(m, physics.PhysicsAdapter))
    assert adapter.grid == (14, 14) and adapter.grid_shape(197) == (14, 14)
    torch.testing.assert_close(model(pixel_values=x).logits, vit(pixel_values=x).logits)
    lora = vision_run.METHODS["vision-lora-r4"]
    assert vision_run.on_grid(lora, spec.grid) is lora


def test_the_committed_14x14_checkpoint_matches_its_digest_and_loads():
    pytest.importorskip("safetensors")
    from benchmarks.vision.model import CheckpointError, check_checkpoint, load_backbone, sha256

    spec = BACKBONES["14x14"]
    if not spec.checkpoint.is_file():
        pytest.skip("the 14x14 checkpoint is not here")
    assert spec.checkpoint.stat().st_size < 20 * 2 ** 20
    assert spec.digest.read_text().split()[0] == sha256(spec.checkpoint)
    model = load_backbone(num_labels=4, seed=0, backbone="14x14")
    assert model.vit.embeddings(torch.zeros(1, 1, 28, 28)).shape[1] == spec.tokens == 197
    with pytest.raises(CheckpointError, match="does not match"):
        check_checkpoint(spec.checkpoint, BACKBONES["7x7"].digest)


def test_the_resized_kernel_sees_the_upsampled_patch():
    w4 = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    p = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    up = p.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)        # nearest, 4x4
    expected = torch.einsum("ocij,bcij->bo", w4, up)
    got = torch.einsum("ocij,bcij->bo", sum_pool_kernel(w4, 2), p)
    torch.testing.assert_close(got, expected)
    small = build_vit(num_labels=10, num_hidden_layers=1)
    big = build_vit(num_labels=10, num_hidden_layers=1, patch_size=2)
    big.load_state_dict(resize_state(small.state_dict(), 4, 2, 28))       # strict: all fit
    img = torch.randn(2, 1, 28, 28)
    tokens = big.vit.embeddings.patch_embeddings(img)
    upsampled = img.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    conv = torch.nn.functional.conv2d(upsampled, small.vit.embeddings.patch_embeddings
                                      .projection.weight,
                                      small.vit.embeddings.patch_embeddings.projection.bias,
                                      stride=4)
    torch.testing.assert_close(tokens, conv.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ router and priors

def test_the_load_balance_and_entropy_terms_match_a_hand_computation():
    w = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]], dtype=torch.float64)
    # mean weights (0.3, 0.3, 0.4): 3 * (0.09 + 0.09 + 0.16) - 1 = 0.02
    assert physics.route_loss(w, 1.0, 0.0).item() == pytest.approx(0.02)
    h = (math.log(2) + -(2 * 0.1 * math.log(0.1) + 0.8 * math.log(0.8))) / 2
    assert physics.route_loss(w, 0.0, 1.0).item() == pytest.approx(math.log(3) - h)


def _moppa_vit(seed=0):
    vit = build_vit(num_labels=4, num_hidden_layers=2)
    model, _, _ = vision_run.METHODS["vision-physics-moppa-input"].build(vit)
    torch.manual_seed(seed)
    for adapter in (m for m in model.modules() if isinstance(m, physics.PhysicsAdapter)):
        with torch.no_grad():
            for p in adapter.parameters():
                p.add_(0.5 * torch.randn_like(p))
    return model


def test_router_summary_entropy_and_shares_match_the_router():
    model = _moppa_vit()
    x = {"pixel_values": torch.randn(3, 1, 28, 28)}
    summary = router_summary(model, x)
    assert summary["names"] == ["heat", "wave", "poisson"] and len(summary["per_layer"]) == 2
    name, adapter = next((n, m) for n, m in model.named_modules()
                         if isinstance(m, physics.PhysicsAdapter))
    seen = {}
    handle = adapter.register_forward_hook(lambda m, a, o: seen.setdefault("x", a[0]))
    model.eval()
    with torch.no_grad():
        model(**x)
    handle.remove()
    with torch.no_grad():
        w = adapter.route(seen["x"]).reshape(-1, 3).double()               # (tokens, P)
    assert w.shape[0] == 3 * 49                                             # per token
    entropy = float(-(w * w.log()).sum(-1).mean())
    assert summary["per_layer"][name]["entropy"] == pytest.approx(entropy, abs=1e-4)
    assert summary["per_layer"][name]["shares"] == pytest.approx(w.mean(0).tolist(), abs=1e-4)
    assert 0 < summary["entropy"] < math.log(3)


def test_the_frequency_response_is_the_operator_on_each_grid_mode():
    from scipy.linalg import expm

    model = _moppa_vit(seed=1)
    state = prior_state(model, {"pixel_values": torch.randn(2, 1, 28, 28)})
    name, rec = next(iter(state.items()))
    adapter = model.get_submodule(name)
    assert rec["grid"] == [7, 7] and len(rec["lam"]) == 49 and len(rec["power"]) == 49
    lap = -physics.laplacian_matrix((7, 7), "neumann").toarray()           # -Δ, 49 x 49
    evals, evecs = np.linalg.eigh(lap)
    b = physics.basis("neumann", 7).numpy()
    modes = np.einsum("ia,jb->ijab", b, b).reshape(49, 49)                  # row m: mode m
    heat, wave = adapter.priors["heat"], adapter.priors["wave"]
    kappa, t_h = (torch.nn.functional.softplus(p).detach().double().numpy()
                  for p in (heat.raw_kappa, heat.raw_t))
    c, t_w = (torch.nn.functional.softplus(p).detach().double().numpy()
              for p in (wave.raw_c, wave.raw_t))
    beta = wave.velocity.detach().double().numpy()
    heat_resp, wave_resp = np.array(rec["response"]["heat"]), np.array(rec["response"]["wave"])
    root = np.sqrt(np.clip(evals, 0, None))
    for ch in range(adapter.rank):
        op_heat = expm(-kappa[ch] * t_h[ch] * lap)
        arg = c[ch] * t_w[ch] * root
        sinc = np.where(root > 1e-12, np.sin(arg) / np.where(root > 1e-12, c[ch] * root, 1),
                        t_w[ch])
        op_wave = evecs @ np.diag(np.cos(arg) + beta[ch] * sinc) @ evecs.T
        for m in range(49):
            np.testing.assert_allclose(op_heat @ modes[m], heat_resp[m, ch] * modes[m],
                                       atol=2e-5)
            np.testing.assert_allclose(op_wave @ modes[m], wave_resp[m, ch] * modes[m],
                                       atol=2e-5)
    np.testing.assert_allclose(np.sort(rec["lam"]), evals, atol=1e-5)
    assert all(v >= 0 for row in rec["power"] for v in row)


def test_schedule_stages_parse_and_the_lr_chosen_at_a_length_is_the_best_on_validation():
    from benchmarks.vision.schedule import chosen, parse_stage

    assert parse_stage("300:0.003,0.01") == (300, (0.003, 0.01), True)
    assert parse_stage("1000:0.003,0.01!") == (1000, (0.003, 0.01), False)
    assert parse_stage("2500:best@1000") == (2500, "best@1000", False)
    assert parse_stage("300:best@300/7x7") == (300, "best@300/7x7", False)
    with pytest.raises(ValueError, match="STEPS:LR"):
        parse_stage("300")
    runs = [{"task": "rotation", "method": "m", "lr": lr, "seed": 0, "steps": 1000,
             "batch_size": 32, "val_accuracy": acc, "grid": grid}
            for lr, acc, grid in ((0.001, 0.6, [7, 7]), (0.003, 0.7, [7, 7]),
                                  (0.01, 0.65, [7, 7]), (0.01, 0.9, [14, 14]))]
    assert chosen(runs, "rotation", "m", 1000, (7, 7), 32, 0) == 0.003
    assert chosen(runs, "rotation", "m", 1000, (14, 14), 32, 0) == 0.01
    assert chosen(runs, "rotation", "m", 300, (7, 7), 32, 0) is None


# ------------------------------------------------------------------ per-row lr grids

def _run(method, task, lr, val, seed=0, steps=5):
    return {"method": method, "task": task, "lr": lr, "seed": seed, "steps": steps,
            "batch_size": 4, "val_accuracy": val, "test_accuracy": val, "label": method,
            "family": "x", "adapter_params": 1, "head_params": 1,
            "median_seconds_per_step": 0.0, "cpu_seconds_per_step": 0.0, "config": {}}


def test_the_report_rebuilds_each_row_on_the_grid_it_was_swept_on(tmp_path, monkeypatch):
    """Two commands with different ``--lrs`` into one folder: the report chooses each row's
    lr on its own recorded grid (a single report-wide grid would drop one of them)."""
    from benchmarks.common import sweep
    from benchmarks.vision import tables

    lora, oft = (vision_run.METHODS[n] for n in ("vision-lora-r4", "vision-oft"))
    # what the two commands' parents record before their workers start
    monkeypatch.setattr(vision_run, "_spawn", lambda argv, workers: 0)
    monkeypatch.setattr(vision_run, "report", lambda *a, **k: None)
    for lrs, name in ((["0.01", "0.03"], lora.name), (["0.003", "0.01"], oft.name)):
        assert vision_run.main(["--epochs", "100", "--tasks", "rotation", "--seeds", "0",
                                "--results", str(tmp_path), "--methods", name,
                                "--lrs", *lrs]) == 0
    grids = sweep.load_grids(tmp_path)
    assert grids == {lora.name: {"rotation": [0.01, 0.03]},
                     oft.name: {"rotation": [0.003, 0.01]}}
    runs = [_run(lora.name, "rotation", 0.01, 0.6), _run(lora.name, "rotation", 0.03, 0.7),
            _run(lora.name, "rotation", 0.075, 0.65),       # the grid grew once: 0.03 won
            _run(oft.name, "rotation", 0.003, 0.8), _run(oft.name, "rotation", 0.01, 0.5)]
    table = tables.per_task(runs, ["rotation"], [lora, oft], (0,), 5, 4, 2, grids)
    rows = table["rotation"]
    assert rows[lora.name]["chosen_lr"] == 0.03 and rows[lora.name]["edge"] == ""
    assert rows[oft.name]["chosen_lr"] == 0.003 and rows[oft.name]["edge"] == "low"
    # without the record, one report-wide grid (0.01, 0.03) cannot rebuild the OFT row
    lone = [dataclasses.replace(m, lrs=(0.01, 0.03)) for m in (lora, oft)]
    assert oft.name not in tables.per_task(runs, ["rotation"], lone, (0,), 5, 4, 2)["rotation"]
    # a later sweep of the same (method, task) replaces its entry; other tasks are kept
    sweep.record_grids(tmp_path, [dataclasses.replace(oft, lrs=(0.001,))], ["rotation", "mnist"])
    assert sweep.load_grids(tmp_path)[oft.name] == {"rotation": [0.001], "mnist": [0.001]}
    assert sweep.load_grids(tmp_path)[lora.name] == {"rotation": [0.01, 0.03]}
