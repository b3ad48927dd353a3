"""Benchmark: compiled Hamming blocks vs the minors-by-determinant construction vs PennyLane.

    python -m benchmarks.circuits --threads 1 --budget 10   # the committed results/circuits*
    python -m benchmarks.circuits --quick                   # a smaller smoke run, results/quick/

For each (n, k) and r blocks, ``--threads`` threads, medians of interleaved timings after
warm-up (:func:`benchmarks.common.timing.interleaved`):

* ``ours_matrix``: all r weight-k blocks from r weight-1 orthogonal matrices
  (``compound``, the route the Cayley adapters use), forward and forward+backward;
* ``ours_angles``: the same from the pyramid circuit's angles (``Circuit.compile``);
* ``minors``: the paper's construction (:func:`benchmarks.common.paper.minors_compound`), every
  k x k minor of Q gathered from ``itertools.combinations`` index lists and passed to
  ``torch.linalg.det`` (batched over all minors at once, the fastest form of that
  construction);
* ``ours_kernel``: ``ours_matrix`` with the compiled CPU kernel of the order-2 compound
  switched on (``qiadapters.circuits.kernels.set_cpu_mode("on")``, the switch inside the
  timed call; k = 3 builds its order-2 minors with it), where the kernel builds;
* ``pennylane``: ``qml.matrix`` of the circuit and extraction of the weight-k block
  (n <= 12, one block, once: it is far too slow to repeat);
* ``floor``: writing a new tensor of the output's size (allocation and first touch
  included, as for any op that returns a fresh output), and ``floor_prealloc``: filling an
  already allocated one (the pure write bandwidth);
* ``autograd_floor_fb``: the cheapest differentiable map from ``Q`` to a fresh output of the
  blocks' size, forward + backward in the same harness as the contenders: one entry of ``Q``
  broadcast and copied (forward one write of the output, backward one sum over it, and
  autograd's per-operation cost).  A construction that autograd differentiates does at least
  this, so ``minors_fb / autograd_floor_fb`` bounds the speed-up over the minors that any
  such construction can show at that size (column ``largest_possible_speedup``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from ..common.constants import results_dir
from ..common.reporting import write_csv
from .figures import plot
from .measure import PENNYLANE_SIZES, SIZES, pennylane_block, run_case, run_pennylane  # noqa: F401
from .report import add_ratios, print_tables


def main(argv=None):
    ap = argparse.ArgumentParser(description="compiled Hamming blocks vs minors vs PennyLane")
    ap.add_argument("--quick", action="store_true", help="small sizes, r=1,3 only")
    ap.add_argument("--budget", type=float, default=15.0, help="seconds per case")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default benchmarks/results, results/quick with --quick)")
    ap.add_argument("--threads", type=int, default=2,
                    help="intra-op threads (2 as specified; 1 on a loaded machine, where "
                         "two threads mostly measure scheduler delay)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = SIZES[:4] if args.quick else SIZES
    rs = (1, 3) if args.quick else (1, 3, 8)
    rows = [run_case(n, k, r, args.budget)
            for n, k in tqdm(sizes, desc="sizes") for r in rs]
    pl_rows = [run_pennylane(n, k) for n, k in tqdm(PENNYLANE_SIZES[: 2 if args.quick else 3],
                                                     desc="PennyLane")]
    add_ratios(rows)
    out = args.out or results_dir(args.quick)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "circuits.csv", rows)
    write_csv(out / "circuits_pennylane.csv", pl_rows)
    plot(rows, out / "circuits.png")
    print_tables(rows, pl_rows, args.threads)


if __name__ == "__main__":
    main()
