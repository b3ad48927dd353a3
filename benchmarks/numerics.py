"""Orthogonality drift of Hamming blocks under long, aggressive training.

For every parametrization (cayley, expm, circuit) one ``HammingAdapter`` on an
``nn.Linear(48, 48)`` (orders (1, 2), 3 blocks, float32) is trained with AdamW at large
learning rates on random gradients (a random input and a random output gradient every step)
for ``--steps`` steps; every ``--every`` steps the worst orthogonality error of its blocks,
``max |B B^T - I|`` over every block ``B``, is recorded.  The claim checked: it stays below
1e-5 throughout.

    python -m benchmarks.numerics --steps 10000 --every 250

writes ``benchmarks/results/numerics.csv`` (parametrization, lr, step, error, parameter norm)
and ``benchmarks/results/numerics.png``.  ``tests/test_numerics.py`` runs the same function
for 300 steps.
"""
from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from qiadapters.adapters.hamming import HammingAdapter

from .common.reporting import write_csv

PARAMETRIZATIONS = ("cayley", "expm", "circuit")
LEARNING_RATES = (0.1, 1.0)
RESULTS = os.path.join(os.path.dirname(__file__), "results")


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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    from tqdm import tqdm

    torch.set_num_threads(1)
    rows = []
    runs = [(p, lr) for p in PARAMETRIZATIONS for lr in LEARNING_RATES]
    with tqdm(total=len(runs) * args.steps, desc="AdamW steps") as bar:
        for p, lr in runs:
            rows += drift(p, lr, args.steps, args.every, progress=bar)
    os.makedirs(args.out, exist_ok=True)
    write_csv(os.path.join(args.out, "numerics.csv"), rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for p, lr in runs:
        sel = [r for r in rows if r["parametrization"] == p and r["lr"] == lr]
        ax.semilogy([r["step"] for r in sel], [max(r["error"], 1e-17) for r in sel],
                    label=f"{p}, lr={lr:g}")
    ax.axhline(1e-5, color="k", ls="--", lw=1, label="bound 1e-5")
    ax.set_xlabel("AdamW step")
    ax.set_ylabel("max |B B^T - I| (float32 blocks)")
    ax.set_title("Orthogonality drift of Hamming blocks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "numerics.png"), dpi=120)
    for p, lr in runs:
        worst = max(r["error"] for r in rows if r["parametrization"] == p and r["lr"] == lr)
        print(f"{p:8s} lr={lr:<4g} worst orthogonality error {worst:.3g}")


if __name__ == "__main__":
    main()
