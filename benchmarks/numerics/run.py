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

from ..common.constants import RESULTS as _RESULTS
from ..common.reporting import write_csv
from .figures import plot
from .orthogonality import (LEARNING_RATES, PARAMETRIZATIONS, drift,  # noqa: F401
                            orthogonality_error)

RESULTS = str(_RESULTS)


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
    plot(rows, runs, args.out)
    for p, lr in runs:
        worst = max(r["error"] for r in rows if r["parametrization"] == p and r["lr"] == lr)
        print(f"{p:8s} lr={lr:<4g} worst orthogonality error {worst:.3g}")


if __name__ == "__main__":
    main()
