"""How far a method moves the pretrained model before any training step.

An adapter that starts at the identity (LoRA's zero ``B``, Hamming's zero angles, RoAd,
VeRA...) leaves the pretrained model exactly as it was until it trains; one that starts
from random values changes it at once.  peft's FourierFT does by default
(``init_weights=False``: its spectral coefficients ``~ N(0, 1)``, times ``scaling`` 150), and
on a small model the change is large: its ``Delta W`` is a sum of ``n`` random Fourier modes
normalised by ``1 / (d_out d_in)``, so its size relative to ``W`` grows as the layer shrinks.
Two numbers per method, both at initialisation (the model as the benchmark builds it, seed 0):

* ``init_drift``: ``1 - mean_k cos(e_k, e0_k)`` over held-out inputs, where ``e`` is the
  mean over tokens of the encoder's last hidden state, L2-normalised, with the method built in
  and ``e0`` without it (the forgetting probe's ``probe_drift``,
  :func:`benchmarks.common.forgetting.drift`: exactly 0 when nothing moved).  Text: the
  probe's first :data:`TEXT_N` WordNet verb texts (never trained on); vision: the first
  :data:`VISION_N` Fashion-MNIST test images (the ViT's own pretraining domain).
* ``init_delta_ratio``: over the adapted layers that expose ``get_delta_weight`` (peft's
  tuner layers), ``sum ||Delta W||_F / sum ||W||_F``; ``None`` for methods without one
  (Hamming rotates, so it has no additive ``Delta W``; its drift says the same).

    python -m benchmarks.frontier --init-drift     # measure rows lacking it, then report
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

#: Held-out inputs per measurement.
TEXT_N, VISION_N = 100, 256
#: The global seed a method is built under (peft's random inits draw from it).
BUILD_SEED = 0


def vision_inputs(n: int = VISION_N) -> torch.Tensor:
    """``(n, 1, 28, 28)``: the first ``n`` Fashion-MNIST test images, normalised as in
    pretraining."""
    from ..vision.data import fashion_mnist, normalise

    images, _ = fashion_mnist("test")
    return normalise(images[:n])


def vision_embed(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """``(N, H)`` unit embeddings of the ViT's last hidden state: the mean over its tokens,
    L2-normalised (eval, no grad)."""
    from ..common.forgetting import mean_pool

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(pixel_values=pixels, output_hidden_states=True)
    finally:
        model.train(was_training)
    hidden = out.hidden_states[-1].float()
    return mean_pool(hidden, torch.ones(hidden.shape[:2]))


def delta_ratio(model: nn.Module) -> float | None:
    """``sum ||Delta W||_F / sum ||W||_F`` over the peft tuner layers of ``model`` whose
    ``get_delta_weight`` (of an active adapter) returns a tensor of the base weight's shape,
    or ``None`` when there are none."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    delta = base = 0.0
    found = False
    with torch.no_grad():
        for m in model.modules():
            if not (isinstance(m, BaseTunerLayer) and hasattr(m, "get_delta_weight")):
                continue
            weight = m.get_base_layer().weight
            for name in m.active_adapters:
                d = m.get_delta_weight(name)
                if not torch.is_tensor(d) or d.shape != weight.shape:
                    continue
                delta += float(d.float().norm())
                base += float(weight.float().norm())
                found = True
    return delta / base if found and base > 0 else None


@functools.lru_cache(maxsize=None)
def held_out(task: str) -> tuple[object, torch.Tensor]:
    """``(inputs, embeddings of the pretrained model)`` of a task, once per process: the
    probe's texts or the Fashion-MNIST images (module docstring)."""
    from ..common import forgetting
    from .costs import load_model

    if task == "text":
        texts = forgetting.probe_texts(forgetting.load_probe_pairs(TEXT_N // 2))
        return texts, forgetting.embed(load_model(task), texts)
    pixels = vision_inputs()
    return pixels, vision_embed(load_model(task), pixels)


def measure(name: str, task: str) -> dict:
    """``init_drift`` and ``init_delta_ratio`` of registry method ``name`` on the text or
    vision backbone (module docstring)."""
    from ..common import forgetting, registry
    from .costs import load_model

    if task not in ("text", "vision"):
        raise ValueError(f"task={task!r}; valid: 'text', 'vision'")
    inputs, base = held_out(task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        model, _, _ = registry.build(name, load_model(task))
    emb = forgetting.embed(model, inputs) if task == "text" else vision_embed(model, inputs)
    return {"method": name, "task": task, "init_drift": forgetting.drift(emb, base),
            "init_delta_ratio": delta_ratio(model), "n": len(base)}


def measure_missing(rows: list[dict], path: Path) -> None:
    """Measure every row lacking a record (text first), appending to ``path``."""
    from . import tables

    want = tables.missing(rows, tables.load_records(path), lambda r: r.get("point"))
    for i, (name, kind) in enumerate(want):
        rec = measure(name, kind)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        ratio = rec["init_delta_ratio"]
        print(f"[{i + 1}/{len(want)}] {name} ({kind}): drift at init {rec['init_drift']:.4f}"
              + ("" if ratio is None else f", |dW|/|W| {ratio:.3f}"), flush=True)
