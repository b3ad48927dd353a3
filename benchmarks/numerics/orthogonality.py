"""The numerics benchmark's measurement: one Hamming adapter trained hard, its blocks'
worst orthogonality error recorded as it goes (:mod:`benchmarks.numerics.run` says more)."""
from __future__ import annotations

import torch
from torch import nn

from qiadapters.adapters.hamming import HammingAdapter

PARAMETRIZATIONS = ("cayley", "expm", "circuit")
LEARNING_RATES = (0.1, 1.0)


def orthogonality_error(layer: HammingAdapter) -> float:
    """``max |B B^T - I|`` over every Hamming block of every adapter of ``layer`` (float64)."""
    worst = 0.0
    for param in layer.hamming.values():
        for block in param.blocks(torch.float32):
            b = block.detach().double()
            eye = torch.eye(b.shape[-1], dtype=b.dtype)
            worst = max(worst, float((b @ b.transpose(-1, -2) - eye).abs().max()))
    return worst


def drift(parametrization: str, lr: float, steps: int, every: int, seed: int = 0,
          progress=None) -> list[dict]:
    """Train one layer as described in the module docstring; the recorded rows."""
    torch.manual_seed(seed)
    base = nn.Linear(48, 48)
    layer = HammingAdapter(base, orders=(1, 2), blocks=3, parametrization=parametrization)
    params = [p for p in layer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed + 1)
    rows = []
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in params)))
            rows.append({"parametrization": parametrization, "lr": lr, "step": step,
                         "error": orthogonality_error(layer), "param_norm": norm})
        if step == steps:
            break
        x = torch.randn(8, 48, generator=gen)
        g = torch.randn(8, 48, generator=gen)
        opt.zero_grad(set_to_none=True)
        (layer(x) * g).sum().backward()
        opt.step()
        if progress is not None:
            progress.update(1)
    return rows
