"""Benchmark: compiled Hamming blocks vs the minors-by-determinant construction vs PennyLane.

    python -m benchmarks.circuits --threads 1 --budget 10   # the committed results/circuits*
    python -m benchmarks.circuits --quick                   # a smaller smoke run, results/quick/

For each (n, k) and r blocks, ``--threads`` threads, medians of interleaved timings after
warm-up (:func:`benchmarks.common.timing.interleaved`):

* ``ours_matrix``: all r weight-k blocks from r weight-1 orthogonal matrices
  (``compound``, the route the Cayley adapters use), forward and forward+backward;
* ``ours_angles``: the same from the pyramid circuit's angles (``Circuit.compile``);
* ``minors``: the paper's construction (:func:`benchmarks.paper.minors_compound`), every
  k x k minor of Q gathered from ``itertools.combinations`` index lists and passed to
  ``torch.linalg.det`` (batched over all minors at once, the fastest form of that
  construction);
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
import math
from pathlib import Path

import torch
from tqdm import tqdm

import qiadapters as qa

from ..common.constants import results_dir
from ..paper import minors_compound
from ..common.reporting import write_csv
from ..common.timing import interleaved

SIZES = [(8, 2), (11, 3), (13, 2), (13, 3), (22, 2), (44, 2), (64, 2)]
PENNYLANE_SIZES = [(8, 2), (10, 2), (11, 3)]


def pennylane_block(circuit, theta, k):
    return qa.pennylane.hamming_block(circuit, theta, k)


def run_case(n: int, k: int, r: int, budget: float) -> dict:
    gen = torch.Generator().manual_seed(n * 100 + k * 10 + r)
    circuit = qa.Circuit.pyramid(n)
    op = circuit.compile(orders=(k,), blocks=r)
    theta = torch.randn(r, circuit.n_params, generator=gen) * 0.3
    Q = torch.linalg.qr(torch.randn(r, n, n, generator=gen))[0]
    Qg, tg = Q.clone().requires_grad_(), theta.clone().requires_grad_()
    m = math.comb(n, k)
    out = torch.empty(r, m, m)

    def fb(fn, x):
        def step():
            fn(x).sum().backward()
            x.grad = None
        return step

    def no_grad(fn, x):
        def step():
            with torch.no_grad():
                fn(x)
        return step

    contenders = {
        "floor": lambda: torch.ones(r, m, m),
        "floor_prealloc": lambda: out.fill_(1.0),
        "autograd_floor_fb": fb(lambda q: q[:, :1, :1].expand(r, m, m).clone(), Qg),
        "ours_matrix_fwd": no_grad(lambda q: qa.compound(q, k), Q),
        "ours_matrix_fb": fb(lambda q: qa.compound(q, k), Qg),
        "ours_angles_fwd": no_grad(lambda t: op(t)[0], theta),
        "ours_angles_fb": fb(lambda t: op(t)[0], tg),
        "minors_fwd": no_grad(lambda q: minors_compound(q, k), Q),
        "minors_fb": fb(lambda q: minors_compound(q, k), Qg),
    }
    t = interleaved(contenders, reps=7, warmup=2, min_reps=3, budget_s=budget)
    row = dict(n=n, k=k, r=r, block=m, **t.medians(), threads=t.threads)
    torch.testing.assert_close(qa.compound(Q, k), minors_compound(Q, k), atol=1e-4, rtol=0)
    return row


def run_pennylane(n: int, k: int) -> dict:
    circuit = qa.Circuit.pyramid(n)
    theta = torch.randn(circuit.n_params, dtype=torch.float64)
    op = circuit.compile(orders=(k,), blocks=1, dtype=torch.float64)
    # PennyLane is far too slow to repeat: one timed call, no warm-up.
    pl = interleaved({"pl": lambda: pennylane_block(circuit, theta, k)}, reps=1, warmup=0)
    ours = interleaved({"ours": lambda: op(theta[None])[0]}, reps=20, warmup=2, min_reps=3,
                       budget_s=20.0).median("ours")
    err = (op(theta[None])[0][0] - pennylane_block(circuit, theta, k)).abs().max().item()
    return dict(n=n, k=k, block=math.comb(n, k), pennylane=pl.median("pl"),
                ours_angles_fwd=ours, speedup=pl.median("pl") / ours, max_abs_diff=err,
                threads=pl.threads)


def plot(rows, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = sorted({row["r"] for row in rows})
    fig, axes = plt.subplots(1, len(rs), figsize=(5 * len(rs), 4), sharey=True)
    for ax, r in zip(axes if len(rs) > 1 else [axes], rs):
        sub = sorted((row for row in rows if row["r"] == r), key=lambda row: row["block"])
        for key, style in [("ours_matrix_fb", "o-"), ("ours_angles_fb", "s-"),
                           ("minors_fb", "^-"), ("ours_matrix_fwd", "o--"), ("floor", "k:")]:
            ax.loglog([row["block"] for row in sub], [row[key] for row in sub], style, label=key)
        ax.set_title(f"r = {r} blocks")
        ax.set_xlabel("block size C(n, k)")
        ax.grid(True, which="both", alpha=0.3)
    (axes[0] if len(rs) > 1 else axes).set_ylabel("seconds (median)")
    (axes[0] if len(rs) > 1 else axes).legend(fontsize=8)
    fig.suptitle("Hamming blocks: ours vs minors-by-determinant (fwd+bwd unless 'fwd')")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
    for row in rows:
        row["speedup_fb_vs_minors"] = row["minors_fb"] / row["ours_matrix_fb"]
        row["fwd_over_floor"] = row["ours_matrix_fwd"] / row["floor"]
        row["fwd_over_floor_prealloc"] = row["ours_matrix_fwd"] / row["floor_prealloc"]
        row["largest_possible_speedup"] = row["minors_fb"] / row["autograd_floor_fb"]
    out = args.out or results_dir(args.quick)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "circuits.csv", rows)
    write_csv(out / "circuits_pennylane.csv", pl_rows)
    plot(rows, out / "circuits.png")
    ms = lambda s: f"{s * 1e3:9.3f}"  # noqa: E731
    print(f"threads={args.threads}")
    print(f"{'n':>3}{'k':>3}{'r':>3}{'C(n,k)':>8}{'floor':>10}{'ours fwd':>10}{'ours fb':>10}"
          f"{'angles fb':>10}{'minors fb':>11}{'fb speedup':>11}{'possible':>10}"
          f"{'fwd/floor':>10}{'fwd/prealloc':>13}   (ms)")
    for row in rows:
        print(f"{row['n']:>3}{row['k']:>3}{row['r']:>3}{row['block']:>8}{ms(row['floor']):>10}"
              f"{ms(row['ours_matrix_fwd']):>10}{ms(row['ours_matrix_fb']):>10}"
              f"{ms(row['ours_angles_fb']):>10}{ms(row['minors_fb']):>11}"
              f"{row['speedup_fb_vs_minors']:>10.1f}x{row['largest_possible_speedup']:>9.1f}x"
              f"{row['fwd_over_floor']:>9.1f}x"
              f"{row['fwd_over_floor_prealloc']:>12.1f}x")
    print("\nPennyLane (qml.matrix + block extraction, one block) vs ours from angles (fwd):")
    for row in pl_rows:
        print(f"  n={row['n']:>2} k={row['k']}: PennyLane {row['pennylane']:.3f} s, ours "
              f"{row['ours_angles_fwd'] * 1e3:.3f} ms, speedup {row['speedup']:.0f}x, "
              f"max |diff| {row['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
