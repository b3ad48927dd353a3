"""Verification table: every layout x gate kind against PennyLane on random angles.

Run with ``python -m qiadapters.circuits.verify [--max-n 8]``.  For each layout, gate kind,
``n`` and ``k`` it prints the block size ``C(n,k)``, the parameter count, the circuit depth
and the largest deviation of :meth:`Circuit.hamming_block` from PennyLane's ``qml.matrix``
(float64), and whether the block equals the compound of the weight-1 block.
"""
from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from . import compound, hamming_basis
from .basis import state_index
from .circuit import Circuit
from .layouts import LAYOUTS
from . import pennylane as qpl


def rows(max_n: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    cases = [(lay, g, n) for lay in LAYOUTS for g in ("rbs", "fbs") for n in range(2, max_n + 1)
             if lay != "butterfly" or n & (n - 1) == 0]
    for layout, gate, n in tqdm(cases, desc="PennyLane", leave=False):
        c = Circuit.from_layout(layout, n, gate=gate)
        theta = torch.randn(c.n_params, generator=gen, dtype=torch.float64)
        full = torch.as_tensor(qpl.matrix(c, theta)).real
        U = c.hamming_block(theta, 1)
        for k in range(n + 1):
            idx = torch.tensor([state_index(n, s) for s in hamming_basis(n, k)])
            block = c.hamming_block(theta, k)
            dev = (block - full[idx][:, idx]).abs().max().item()
            comp = (block - compound(U, k)).abs().max().item()
            yield dict(layout=layout, gate=gate, n=n, k=k, size=len(idx), params=c.n_params,
                       depth=c.depth, max_dev=dev, compound=comp < 1e-10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"{'layout':<10}{'gate':<5}{'n':>3}{'k':>3}{'C(n,k)':>8}{'params':>8}{'depth':>7}"
          f"{'max|ours-PennyLane|':>21}  block==C_k(U)")
    worst = 0.0
    for r in rows(args.max_n, args.seed):
        worst = max(worst, r["max_dev"])
        print(f"{r['layout']:<10}{r['gate']:<5}{r['n']:>3}{r['k']:>3}{r['size']:>8}"
              f"{r['params']:>8}{r['depth']:>7}{r['max_dev']:>21.2e}  {r['compound']}")
    print(f"worst deviation from PennyLane: {worst:.2e}")
    return 0 if worst < 1e-10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
