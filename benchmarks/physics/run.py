"""Physics benchmark: solver accuracy against the references, and PhysicsAdapter step time.

Run from the repository root::

    .venv/bin/python -m benchmarks.physics                          # physics.{json,csv,png}
    .venv/bin/python -m benchmarks.physics --threads 1 --tag threads1  # physics_threads1.*
    .venv/bin/python -m benchmarks.physics --quick    # smoke run, a few reps, results/quick/

(the full runs take ~15 min on 2 busy cores).

Part 1 (accuracy, float64): max-abs error of explicit Euler and Crank–Nicolson (heat) and
leapfrog (wave) against the exact spectral solution, for a range of step sizes, on a 1D and a
2D Neumann grid; the fitted order (slope of log error against log dt); Poisson against the
sparse direct solve for every boundary and zero-mode rule.

Part 2 (speed, float32, ``torch.set_num_threads(threads)``): one training step = forward,
backward and AdamW on the adapters, for a stack of 4 residual blocks, batch 32, dim 384, with
(a) 197 tokens = CLS + a 14x14 grid and (b) a 1D sequence of 128 tokens.  Two settings:

* ``blocks``: each block is a frozen ViT-S-like ``nn.TransformerEncoderLayer`` (6 heads, MLP
  1536, pre-norm) with the adapter in parallel, ``h = layer(h) + adapter(h)``;
* ``adapter-only``: ``h = h + adapter(h)``, nothing else (the adapters' own cost).

Each PhysicsAdapter (rank 8, all three priors, every router) is timed against a plain
bottleneck adapter of the same rank (down, GELU, up) built on the same input, both trained by
AdamW (the fused CPU kernel where available); A and B steps alternate after warm-up
(:func:`benchmarks.common.timing.interleaved`, the order reversed every other round), and the
medians of wall time and process CPU time, their ratios and the median per-pair ratio are
reported.  A short profile of
the PhysicsAdapter step and a transform micro-benchmark (cached basis matmul vs an FFT-based
DCT-II) say where the time goes.

Writes ``benchmarks/results/physics.json`` (everything), ``physics.csv`` (the timing rows) and
``physics.png`` (error vs dt, and the step-time ratios).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ..common import cli
from ..common.constants import results_dir
from ..common.reporting import write_csv
from .convergence import accuracy
from .figures import plot
from .step_time import (BATCH, DEPTH, DIM, LAYOUTS, RANK, Bottleneck, Stack,  # noqa: F401
                        frozen_layers, make_adapter, make_optimizer, profile_step, speed,
                        time_pair, train_step)
from .transforms import dct2_fft, dct2_fft_2d, transform_micro  # noqa: F401


def main(argv=None) -> dict:
    parser = cli.quick_parser(__doc__, "few reps, for a smoke test", threads=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps-adapter", type=int, default=15)
    parser.add_argument("--reps-blocks", type=int, default=7)
    parser.add_argument("--routers", default="token,sample,global")
    parser.add_argument("--settings", default="adapter-only,blocks")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default benchmarks/results; results/quick with "
                             "--quick)")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.reps_adapter, args.reps_blocks = 1, 3, 1
    torch.set_num_threads(args.threads)
    args.out = args.out or results_dir(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    started = time.time()
    acc = accuracy()
    for o in acc["orders"]:
        print(f"order {o['grid']:9s} {o['method']:15s} {o['order']:.3f}")
    for p in acc["poisson"]:
        print(f"poisson {p['boundary']:9s} {p['zero_mode']:9s} max|spectral - spsolve| "
              f"{p['max_abs_error']:.2e} (|u| <= {p['max_abs_solution']:.2f})")
    micro = transform_micro()
    for m in micro:
        print(f"transform {m['grid']:6s} {m['method']:12s} {m['median_us']:.1f} us")
    rows = speed(args.routers.split(","), args.settings.split(","), args.warmup,
                 args.reps_adapter, args.reps_blocks)
    prof = profile_step()
    result = dict(
        command=("python -m benchmarks.physics " + " ".join(argv if argv is not None
                                                            else sys.argv[1:])).strip(),
        torch=torch.__version__, threads=args.threads, machine=platform.machine(),
        cpu_count=os.cpu_count(), load_average_before=load_before,
        load_average_after=os.getloadavg(), seconds=round(time.time() - started, 1),
        accuracy=acc, transform_micro=micro, speed=rows, profile_physics_adapter_only=prof)
    stem = "physics" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    write_csv(args.out / f"{stem}.csv", rows)
    plot(acc, rows, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json, .csv, .png "
          f"in {result['seconds']} s (load average {load_before} -> "
          f"{result['load_average_after']})")
    return result


if __name__ == "__main__":
    main()
