"""Parameter count vs accuracy, qiadapters against Hugging Face peft in one run.

all-MiniLM-L6-v2 (``AutoModelForSequenceClassification``, fresh 26-way head, trainable and
counted separately for every method) on WordNet noun glosses (seeded stratified split
8,000 / 2,000 / 2,000, max length 32). Every method (a row of :data:`METHODS`) gets the same
protocol (the methods themselves are registry entries, :mod:`benchmarks.common.registry`):

1. learning-rate sweep: one run per lr of its grid at seed 0, scored on VALIDATION (the test
   accuracy of the same run is recorded too, but never looked at for the choice); while the
   best lr is the grid's largest, the grid grows by x2.5 (at most twice, ``--extend``);
2. the lr with the best validation accuracy is run at the remaining seeds (seed 0 is the
   sweep run itself), and the row reports mean / std of TEST accuracy over the seeds.

Same steps, batch, AdamW (no weight decay), linear warm-up + cosine for every method
(:func:`benchmarks.common.training.train`). A seed sets the head's initialisation, the data order
and dropout; the split is always the seed-0 split.

Resumable: every finished training run is one JSON line in ``tradeoff_runs.jsonl``; a rerun
reads it and skips runs already there (keyed by method, lr, seed, steps, batch size), then
rebuilds ``tradeoff.csv`` and ``tradeoff.png`` from everything recorded.

After scoring, every run is also probed for what it cost the pretrained encoder (sentence
similarity on held-out WordNet verb glosses, :mod:`benchmarks.common.forgetting`; 1,000 synsets, 200
in ``--quick``; ``--no-probe`` skips it): the ``probe_*`` fields of the run's record.

    python -m benchmarks.tradeoff --threads 1           # the committed files (hours on 2 cores)
    python -m benchmarks.tradeoff --quick               # smoke check, < 10 min, results/quick/
    python -m benchmarks.tradeoff --methods lora-r8 hamming-12-b3 --seeds 0 1 2
    python -m benchmarks.tradeoff --report-only         # rebuild csv / png from the jsonl
    python -m benchmarks.tradeoff --list                # the method table
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..common import forgetting
from ..common import cli
from ..common.constants import RESULTS, results_dir
from ..common.runs import run_all
from ..common.sweep import EXTEND_FACTOR, MAX_EXTEND
from .methods import DEFAULTS, METHODS, QUICK
from .tables import report


# -------------------------------------------------------------------------------------- CLI

def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser(__doc__, prog="python -m benchmarks.tradeoff")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: methods {QUICK['methods']}, lrs {QUICK['lrs']}, seeds "
                        f"{QUICK['seeds']}, {QUICK['steps']} steps, scored on the first "
                        f"{QUICK['eval_examples']} val/test examples; writes to results/quick/")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help=f"rows to train (default all, in this order): {list(METHODS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="the first is the sweep seed; default "
                        f"{' '.join(map(str, DEFAULTS['seeds']))}")
    p.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="override every method's lr grid")
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimiser steps (default {DEFAULTS['steps']})")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--warmup-frac", type=float, default=DEFAULTS["warmup_frac"])
    p.add_argument("--extend", type=int, default=None,
                   help=f"extend a grid whose best lr is its largest by x{EXTEND_FACTOR:g}, at "
                        f"most this many times (default {MAX_EXTEND}; 0 in --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--deadline", default=None,
                   help="HH:MM local time; no new run starts after it")
    p.add_argument("--report-only", action="store_true",
                   help="only rebuild the csv / png / md from the recorded runs")
    p.add_argument("--list", action="store_true", help="print the method table and exit")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the forgetting probe (benchmarks.common.forgetting) after each run")
    p.add_argument("--probe-n", type=int, default=None,
                   help="held-out verb synsets the probe uses (default 1000; 200 in --quick)")
    p.add_argument("--results", type=Path, default=None,
                   help=f"output folder (default {RESULTS}; results/quick/ with --quick)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for m in METHODS.values():
            print(f"{m.name:24s} {m.family:11s} lrs {' '.join(f'{x:g}' for x in m.lrs):30s} "
                  f"{m.label}")
        return 0
    out = args.results or results_dir(args.quick)
    names = args.methods or (list(QUICK["methods"]) if args.quick else list(METHODS))
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        print(f"error: unknown methods {unknown}; valid: {list(METHODS)}", file=sys.stderr)
        return 2
    methods = [METHODS[n] for n in names]
    seeds = tuple(args.seeds or (QUICK["seeds"] if args.quick else DEFAULTS["seeds"]))
    steps = args.steps or (QUICK["steps"] if args.quick else DEFAULTS["steps"])
    lrs = args.lrs or (QUICK["lrs"] if args.quick else None)
    extend = args.extend if args.extend is not None else (0 if args.quick else MAX_EXTEND)
    runs_path = out / "tradeoff_runs.jsonl"
    outputs = out / "tradeoff.csv", out / "tradeoff.png", out / "tradeoff_table.md"
    probe_n = None if args.no_probe else (
        args.probe_n or (forgetting.QUICK_PROBE_N if args.quick else forgetting.PROBE_N))

    if not args.report_only:
        from ..common.data import (NUM_CLASSES, WordNetMissingError, ensure_wordnet, load_minilm,
                           load_wordnet_splits, tokenize_splits)
        try:
            ensure_wordnet(install=False)
        except WordNetMissingError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if probe_n:
            try:
                forgetting.load_probe_pairs(probe_n)
            except (WordNetMissingError, ValueError) as err:
                print(f"error: --probe-n {probe_n}: {err} (--no-probe skips the probe)",
                      file=sys.stderr)
                return 1
        if args.threads:
            torch.set_num_threads(args.threads)
        splits = load_wordnet_splits(seed=0)
        _, tokenizer = load_minilm(NUM_CLASSES, seed=0)
        data = tokenize_splits(splits, tokenizer)
        if args.quick:
            k = QUICK["eval_examples"]
            for split in ("validation", "test"):
                data[split] = {name: t[:k] for name, t in data[split].items()}

        def load_model(seed):
            return load_minilm(NUM_CLASSES, seed=seed)[0]

        print(f"{len(methods)} methods, seeds {seeds}, {steps} steps x batch "
              f"{args.batch_size}, {torch.get_num_threads()} threads; runs -> {runs_path}",
              flush=True)
        run_all(methods, data, load_model, runs_path, seeds, steps, args.batch_size,
                args.warmup_frac, lrs, progress=not args.no_progress,
                deadline=cli.deadline(args.deadline), extend=extend, probe_n=probe_n)
    report(runs_path, *outputs, methods, seeds, steps, args.batch_size, lrs, extend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
