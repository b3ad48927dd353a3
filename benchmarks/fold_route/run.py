"""The fold route against the activation route and LoRA r=8: peak memory and the CPU time of a
MiniLM training step, one fresh process per row.

    python -m benchmarks.fold_route                 # results/fold_route.csv (~3 min)
    python -m benchmarks.fold_route --batch 8 --seq 64 --steps 10 --threads 1

Each row (method, route, targets) runs in its own process (:mod:`benchmarks.speed.memory`'s
method: ``VmHWM`` after a reset, ``MALLOC_MMAP_THRESHOLD_=65536`` so RSS follows live
tensors): all-MiniLM-L6-v2 (its weights), the classifier trained, AdamW; the peak memory
growth of two steps over the built model, then ``--steps`` more steps timed by the process's
CPU time (``time.process_time``: user + system of every thread) and by the wall clock.  On a
shared machine the CPU time is the number to read (it does not count the time the process
waits for a core); ratios are to LoRA r=8 on the same targets.  The route changes the ops,
not the arithmetic: ``W' = D^T W0`` costs about ``b d_in d_out`` multiply-adds per layer and
step whatever the batch, the activation route about ``b d`` per token.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..common import cli
from ..common.constants import REPO_ROOT, RESULTS
from ..common.reporting import write_csv
from .process import COLUMNS, ROWS, TARGETS, worker


def main(argv=None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        method, route, targets = json.loads(args.worker)
        print("RESULT " + json.dumps(worker(method, route, targets, args.batch, args.seq,
                                            args.steps, args.threads)), flush=True)
        return 0
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(args.threads),
               PYTHONWARNINGS="ignore")
    root = REPO_ROOT
    rows = []
    for targets in TARGETS.values():
        block = []
        for method, route in ROWS:
            cmd = [sys.executable, "-m", "benchmarks.fold_route", "--worker",
                   json.dumps([method, route, targets]), "--batch", str(args.batch), "--seq",
                   str(args.seq), "--steps", str(args.steps), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
            found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if not found:
                raise RuntimeError(f"{method} {route} {targets} failed:\n{proc.stderr[-2000:]}")
            block.append(json.loads(found[0][len("RESULT "):]))
            print(block[-1], flush=True)
        lora = block[0]
        for r in block:
            r["growth_vs_lora"] = round(r["peak_growth_mib"] / lora["peak_growth_mib"], 3)
            r["cpu_vs_lora"] = round(r["cpu_ms_per_step"] / lora["cpu_ms_per_step"], 3)
        rows += block
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "fold_route.csv", rows, COLUMNS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
