"""Vision benchmark: every adapter family on a small pretrained ViT, five 1,000-example tasks.

Backbone: :mod:`benchmarks.vision.model` (ViT, 28x28 one-channel, 4-pixel patches = 7x7 grid
+ CLS, width 128, depth 6), pretrained on Fashion-MNIST by :mod:`benchmarks.vision.pretrain`
and loaded from the committed checkpoint with a fresh head per task and seed.  Tasks
(:mod:`benchmarks.vision.data`): ``mnist``, ``digits``, ``rotation``, ``quadrant``,
``inverted``; each a fixed seeded split of 800 train / 200 validation / up to 1,000 test
images.  Methods: :mod:`benchmarks.vision.methods` (registry names ``vision-*``).

Protocol, per task and method (the text trade-off's, :mod:`benchmarks.common.sweep`):
learning-rate sweep at seed 0 scored on VALIDATION (a grid whose best lr is its largest is
extended x2.5, at most twice), then seeds 1 and 2 at the chosen lr; the table reports the
mean / std of TEST accuracy over the three seeds.  Same steps, batch, AdamW and warm-up +
cosine for every method (:func:`benchmarks.common.training.train`).

Budget (the arithmetic behind the defaults, measured on the 2-core machine while other jobs
shared it, load 2-3, one torch thread per worker): a training step of batch 32 costs 0.03 s of
CPU (head only) to 0.18 s (mixture), 0.10 s on average over the 20 methods; a run (build,
``STEPS = 60`` steps, scoring 200 validation + 1,000 test images) costs 6-10 s of wall time.
Runs per (task, method): 3 sweep + 2 seeds + grid extensions = 5.5 (measured: the
``rotation`` task alone was 110 runs for the 20 methods).  That task took 9 min 25 s over two
workers (10.3 s per run per worker, start-up included), so the five tasks take ~47 minutes
at that load: 100 pairs x 5.5 runs x 10.3 s / 2 workers.  Measured: the other four tasks
took 26 minutes on an otherwise idle machine, so the whole suite takes about 35 minutes.  ``--quick`` (two tasks, each
method at the middle of its grid, seeds 0 and 1, 20 steps, 200 test images) is 80 runs:
~3 minutes.

Resumable: each finished run is one JSON line in ``vision_runs.w<worker>.jsonl`` (every such
file in the results folder is read back; a rerun skips recorded runs), then ``vision.csv``
(task x method x seed at the chosen lr), ``vision_table.md`` and ``vision.png`` are rebuilt
from every method and task recorded there (``--methods`` / ``--tasks`` choose what to train,
not what the report shows).

    python -m benchmarks.vision                    # the committed results, ~35 min on 2 cores
    python -m benchmarks.vision --quick            # smoke run into results/quick/, ~3 min
    python -m benchmarks.vision --tasks digits --methods vision-lora-r4 --workers 1
    python -m benchmarks.vision --report-only      # rebuild csv / md / png from the runs

**Long (VTAB-1k-length) protocol** (``--epochs``): VTAB-1k trains about 100 epochs on its
1,000 images; ``--epochs 100`` trains 100 passes over the same 800 training images
(``steps = round(epochs * 800 / batch_size)`` = 2,500 at batch 32), the same AdamW, warm-up
10% + cosine, no augmentation, the lr still chosen on validation.  ``--lrs`` replaces every
chosen row's grid (a long schedule wants smaller rates than the 60-step grids), and the
folder's ``lr_grids.json`` remembers the grid each (method, task) was swept on, so the report
rebuilds each row on its own grid after commands with different ``--lrs``;
``--backbone 14x14`` trains on the 2-pixel-patch ViT (:data:`benchmarks.vision.model.BACKBONES`;
the physics rows' grid follows it).  Each run records ``grid``, ``backbone`` and, for routed
physics adapters, ``history`` (router shares and entropy every ``--monitor-every`` steps,
:mod:`benchmarks.vision.priors_log`) and ``priors`` (the learned constants, frequency
responses and the input's power spectrum); runs are keyed by (task, method, lr, seed, steps,
grid), so a killed sweep resumes where it stopped.  Without ``--results`` such a run writes to
``benchmarks/results/vision_<backbone>_<steps>steps/``.  Budget of the full long table
(5 tasks x 8 key rows, ``--seeds 0``, 3 lrs each): 120 runs x 2,500 steps x 0.1-0.16 s of
one core (7x7; measured on a shared machine) = 8.3-13 core-hours, 4-7 hours over two
workers; with seeds 1 and 2 at the chosen lr, 5-11 hours.  The 14x14 grid costs ~5x per
step.

    python -m benchmarks.vision --epochs 100 --seeds 0 --lrs 0.001 0.003 0.01 \
        --methods vision-bottleneck-input vision-physics-heat-input \
        vision-physics-wave-input vision-physics-poisson-input vision-physics-moppa-input \
        vision-lora-r4 vision-oft vision-hamming-12-b3
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..common import cli
from ..common.constants import results_dir
from ..common.sweep import MAX_EXTEND, record_grids
from .data import TASKS, VisionDataMissingError
from .methods import METHODS, QUICK, middle_lr
from .tables import report
# the worker's names, importable from the command as before
from .worker import (BATCH_SIZE, SEEDS, STEPS, WARMUP_FRAC, on_backbone,  # noqa: F401
                     on_grid, pairs, run_worker, steps_for)

def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser(__doc__, prog="python -m benchmarks.vision")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}, every method at "
                   f"the middle of its lr grid; writes to results/quick/")
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=None)
    p.add_argument("--methods", nargs="+", metavar="NAME", default=None,
                   help=f"rows (default all, in this order): {list(METHODS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="the first is the sweep seed; default 0 1 2")
    p.add_argument("--steps", type=int, default=None, help=f"optimiser steps ({STEPS})")
    p.add_argument("--epochs", type=float, default=None,
                   help="passes over the 800 training images instead of --steps (100: the "
                        "VTAB-1k-length protocol, 2,500 steps at batch 32)")
    p.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="one lr grid for every chosen row (default: each row's own)")
    p.add_argument("--backbone", default="7x7", choices=["7x7", "14x14"],
                   help="the pretrained ViT: 4-pixel patches (7x7 grid) or 2-pixel (14x14)")
    p.add_argument("--monitor-every", type=int, default=None,
                   help="router shares and entropy every this many steps (default a tenth)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes, one torch thread each (default 2)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # "i/n", set by the parent
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", type=Path, default=None,
                   help="output folder (default benchmarks/results, results/quick/ with --quick)")
    return p.parse_args(argv)


def settings(args) -> dict:
    """What a run of these arguments trains: tasks, methods (quick: one lr each), seeds,
    steps, test size, grid extensions and the output folder."""
    quick = args.quick
    names = args.methods or list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown methods {unknown}; valid: {list(METHODS)}")
    methods = [METHODS[n] for n in names]
    if getattr(args, "lrs", None):
        methods = [dataclasses.replace(m, lrs=tuple(args.lrs)) for m in methods]
    if quick:
        methods = [dataclasses.replace(m, lrs=(middle_lr(m),)) for m in methods]
    epochs, backbone = getattr(args, "epochs", None), getattr(args, "backbone", "7x7")
    steps = (steps_for(epochs, args.batch_size) if epochs else
             args.steps or (QUICK["steps"] if quick else STEPS))
    out = args.results or results_dir(quick)
    if args.results is None and (epochs or backbone != "7x7"):
        out = out / f"vision_{backbone}_{steps}steps"
    return {"tasks": args.tasks or list(QUICK["tasks"] if quick else TASKS),
            "methods": methods,
            "seeds": tuple(args.seeds or (QUICK["seeds"] if quick else SEEDS)),
            "steps": steps,
            "batch_size": args.batch_size,
            "n_test": QUICK["n_test"] if quick else 1000,
            "extend": 0 if quick else MAX_EXTEND,
            "out": out, "backbone": backbone,
            "monitor_every": getattr(args, "monitor_every", None)}


def _spawn(argv, workers: int) -> int:
    """Run ``workers`` copies of this command, worker ``i`` with ``--worker i/workers``."""
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.vision.run", *argv,
                               "--worker", f"{i}/{workers}"]) for i in range(workers)]
    return max(p.wait() for p in procs)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    s = settings(args)
    s["out"].mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        worker, workers = (int(x) for x in args.worker.split("/"))
        torch.set_num_threads(1)
        run_worker(s["tasks"], s["methods"], s["out"], s["seeds"], s["steps"],
                   s["batch_size"], s["n_test"], s["extend"], worker, workers, s["backbone"],
                   s["monitor_every"])
        return 0
    if not args.report_only:
        try:
            for task in s["tasks"]:
                TASKS[task][0]()  # fail now, with the install command, not in a worker
        except VisionDataMissingError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        record_grids(s["out"], s["methods"], s["tasks"])
        started = time.perf_counter()
        rc = _spawn(argv, args.workers)
        print(f"workers finished (exit {rc}) in {time.perf_counter() - started:.0f} s",
              flush=True)
    # the report covers every method and task recorded in the folder, not only those just
    # trained: a run of a few methods adds their rows to the committed table
    every = settings(argparse.Namespace(**{**vars(args), "methods": None, "tasks": None}))
    report(s["out"], every["tasks"], every["methods"], s["seeds"], s["steps"], s["batch_size"],
           s["extend"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
