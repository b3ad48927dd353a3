"""Kernel launches per training step, counted as the ATen ops it dispatches (no timing).

On a GPU a small step is bound by kernel launches, not arithmetic, and launches can be
counted on a CPU, exactly: :class:`qiadapters.op_count.OpCounter` records every ATen op of one
step (forward, backward, ``torch.optim.AdamW(foreach=True)``: the multi-tensor AdamW PyTorch
picks on CUDA), leaving out views, metadata queries, bare allocations and the optimizer's
host-side step counters (its docstring says which ops and why). Every op counted is at least
one kernel launch.

MiniLM's architecture (all-MiniLM-L6-v2's BERT config, random weights: the op count does
not depend on them), train mode with dropout off (:data:`DROPOUT`), one sequence of 32
tokens, 26 labels; each registry method (:mod:`benchmarks.common.registry`) on every linear layer
below the head (peft's ``"all-linear"``: the encoder's 36 and the pooler's) and on
``query``/``value``; the head (``classifier``) is trained by every method, and ``head``
trains it alone. The Hamming adapters choose their routes as on CUDA (:func:`routes_as`).
The second step is counted (the first creates the optimizer's state). What to read is the
ops each method adds over the head-only step. Rows named ``...+fold`` run the Hamming layers
by the fold route (:mod:`qiadapters.adapters.hamming.fold_route`: each layer's adapted
weight folded for all layers of a shape at once, then one linear per layer).

    python -m benchmarks.op_count                          # results/op_count.csv, .json, .png
    python -m benchmarks.op_count --layers 2 --out /tmp/ops  # the counts tests/test_op_count.py pins
"""
from __future__ import annotations

import argparse
import json

import torch

from ..common.constants import RESULTS
from ..common.reporting import write_csv
from .count import (COLUMNS, FOLD, FOLD_METHODS, FULL, METHODS, NUM_LABELS,  # noqa: F401
                    REFERENCE, TARGET_SETS, TOKENS, count_all, count_method, routes_as)
from .figures import plot


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6, help="encoder layers (MiniLM: 6)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the result files")
    args = parser.parse_args(argv)
    rows = count_all(layers=args.layers)
    print(f"{'method':22s} {'targets':12s} {'ops':>6s} {'added':>6s} {'x LoRA':>7s} "
          f"{'fwd':>5s} {'bwd':>5s} {'opt':>4s}")
    for r in rows:
        print(f"{r['method']:22s} {r['targets']:12s} {r['ops']:6d} {r['added']:6d} "
              f"{r['ratio_to_lora'] if r['ratio_to_lora'] is not None else '':>7} "
              f"{r['forward']:5d} {r['backward']:5d} {r['optimizer']:4d}")
    from pathlib import Path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "op_count.csv", rows, COLUMNS, ignore_extra=True)
    meta = {"model": "all-MiniLM-L6-v2 architecture, random init, train mode, dropout off",
            "routes": "the Hamming adapters' device-type choices made as on CUDA "
                      "(benchmarks.op_count.routes_as); ops_cpu_routes: as on the CPU",
            "layers": args.layers, "batch": 1, "tokens": TOKENS, "num_labels": NUM_LABELS,
            "optimizer": "torch.optim.AdamW(foreach=True)", "torch": torch.__version__,
            "counted": "second step; qiadapters.op_count.OpCounter (views, metadata, "
                       "allocations and host-side step-counter ops left out)"}
    (out / "op_count.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, out / "op_count.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
