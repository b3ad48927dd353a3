"""benchmarks.frontier.init_drift: how far a method moves the pretrained model before any
training step, against direct computations (the pooled features by hand, FourierFT's delta
from its own coefficients through numpy's inverse FFT) and the identity-start invariant."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from benchmarks.common import forgetting, registry  # noqa: E402
from benchmarks.frontier import init_drift, run  # noqa: E402
from benchmarks.vision.model import load_backbone  # noqa: E402

#: Identity-initialised on the ViT -> their delta ratio: LoRA (zero B) and WaveFT (zero
#: coefficients by peft's default) have an additive delta, 0 at init; Hamming (zero angles,
#: scale 1) and RoAd (rotations and magnitudes) have none to report.
IDENTITY_START = {"vision-lora-r1": 0.0, "vision-waveft-n40": 0.0,
                  "vision-hamming-12-bs32-scale": None, "vision-road-1": None}


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(24, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def built(name: str, entry=None):
    torch.manual_seed(init_drift.BUILD_SEED)
    entry = entry if entry is not None else registry.get(name)
    return entry.build(load_backbone(10, seed=0))[0]


def test_vision_embed_is_the_mean_over_tokens_normalised(pixels):
    model = load_backbone(10, seed=0)
    got = init_drift.vision_embed(model, pixels)
    with torch.no_grad():
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    h = hidden.numpy().astype(np.float64).mean(axis=1)
    want = h / np.linalg.norm(h, axis=1, keepdims=True)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    assert model.training  # the mode is restored


@pytest.mark.parametrize("name", sorted(IDENTITY_START))
def test_an_identity_start_leaves_the_model_exactly_as_it_was(name, pixels):
    base = init_drift.vision_embed(load_backbone(10, seed=0), pixels)
    model = built(name)
    assert forgetting.drift(init_drift.vision_embed(model, pixels), base) < 1e-10
    assert init_drift.delta_ratio(model) == IDENTITY_START[name]


def fourierft_entry(init_weights: bool):
    return registry.Entry(name="fft", family="fourierft", label="fft",
                          config={"n_frequency": 500, "init_weights": init_weights,
                                  "target_modules": ["q_proj", "v_proj"]})


def test_fourierft_delta_ratio_is_its_coefficients_through_an_inverse_fft():
    """peft's default FourierFT (random coefficients) against its delta rebuilt by hand: the
    coefficients scattered on the layer's (d_out, d_in) grid, numpy's ifft2, real part,
    times the scaling; and it is several times the adapted weights on this small ViT."""
    from peft.tuners.fourierft.layer import FourierFTLayer

    model = built("fft", fourierft_entry(False))
    delta = base = 0.0
    layers = [m for m in model.modules() if isinstance(m, FourierFTLayer)]
    assert len(layers) == 12  # q and v of six blocks
    for m in layers:
        name = m.active_adapters[0]
        w = m.get_base_layer().weight.detach().numpy().astype(np.float64)
        dense = np.zeros(w.shape, dtype=np.complex128)
        rows, cols = m.indices[name].numpy()
        dense[rows, cols] = m.fourierft_spectrum[name].detach().numpy()
        d = np.fft.ifft2(dense).real * m.fourierft_scaling[name]
        delta += np.linalg.norm(d)
        base += np.linalg.norm(w)
    assert init_drift.delta_ratio(model) == pytest.approx(delta / base, rel=1e-4)
    assert delta / base > 2


def test_fourierft_moves_the_model_at_init_unless_told_to_start_at_zero(pixels):
    base = init_drift.vision_embed(load_backbone(10, seed=0), pixels)
    moved = forgetting.drift(init_drift.vision_embed(built("fft", fourierft_entry(False)),
                                                     pixels), base)
    still = forgetting.drift(init_drift.vision_embed(built("fft", fourierft_entry(True)),
                                                     pixels), base)
    assert moved > 0.1 and still < 1e-10
    # the drift is 1 - mean cosine, by hand
    emb = init_drift.vision_embed(built("fft", fourierft_entry(False)), pixels).double()
    cos = (emb * base.double()).sum(1) / (emb.norm(dim=1) * base.double().norm(dim=1))
    assert moved == pytest.approx(1 - cos.mean().item(), abs=1e-6)


def test_measure_missing_appends_only_what_is_missing(tmp_path, monkeypatch):
    calls = []

    def fake(name, task):
        calls.append((name, task))
        return {"method": name, "task": task, "init_drift": 0.5 if "fourier" in name else 0.0,
                "init_delta_ratio": None, "n": 1}

    monkeypatch.setattr(init_drift, "measure", fake)
    path = tmp_path / "frontier_init.jsonl"
    path.write_text(json.dumps({"method": "lora-r1", "task": "text", "init_drift": 0.0,
                                "init_delta_ratio": 0.0, "n": 1}) + "\n")
    rows = [{"task": "text", "method": "lora-r1", "adapter_params": 9, "point": True},
            {"task": "mnist", "method": "vision-fourierft-n500", "adapter_params": 6,
             "point": True},
            {"task": "mean", "method": "vision-fourierft-n500", "adapter_params": 6,
             "point": True},
            {"task": "text", "method": "head", "adapter_params": 0, "point": False}]
    init_drift.measure_missing(rows, path)
    assert calls == [("vision-fourierft-n500", "vision")]
    records = run.tables.load_records(path)
    assert set(records) == {("lora-r1", "text"), ("vision-fourierft-n500", "vision")}


def test_the_moved_at_init_cell():
    assert run.moved_at_init({}) == ""
    assert run.moved_at_init({"init_drift": 0.0, "init_delta_ratio": 0.0}) == "0"
    assert run.moved_at_init({"init_drift": 0.6473, "init_delta_ratio": 6.345}) == \
        "0.647 (dW 6.3x W)"
    assert run.moved_at_init({"init_drift": 2.6e-5, "init_delta_ratio": None}) == "2.6e-05"


def test_measure_refuses_an_unknown_task():
    with pytest.raises(ValueError, match="task='audio'; valid: 'text', 'vision'"):
        init_drift.measure("lora-r1", "audio")


def test_goal_lines_repeat_the_budget_check_against_peers_that_start_at_the_model():
    rows = [{"task": "t", "method": m, "label": m, "group": g, "adapter_params": p, "acc": a,
             "std": 0.1, "n_seeds": 3, "init_drift": d}
            for m, g, p, a, d in [("peer-random-start", "peft", 500, 75.0, 0.6),
                                  ("peer-zero-start", "peft", 600, 69.0, 2e-5),
                                  ("ours", "qiadapters", 400, 70.0, 0.0)]]
    lines = run.goal_lines(run.tables.mark(rows))
    assert lines[0].endswith(": 0 of 2; within one std (the goal's tolerance): 0 of 2")
    extra = [ln for ln in lines if "start at the pretrained model" in ln]
    assert len(extra) == 1 and "peer-random-start" in extra[0] and "peer-zero-start" not in extra[0]
    assert extra[0].endswith(": 1 of 1; within one std: 1 of 1")
    for r in rows:  # nothing measured: no extra line
        r["init_drift"] = None
    assert not [ln for ln in run.goal_lines(run.tables.mark(rows)) if "pretrained" in ln]
    assert run.starts_at_pretrained({"init_drift": 0.0})
    assert not run.starts_at_pretrained({"init_drift": run.INIT_DRIFT_TOL})
