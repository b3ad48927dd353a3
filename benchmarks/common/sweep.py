"""The sweep protocol of every benchmark that chooses a learning rate (trade-off, vision):
run records, the lr choice and what to train next.

A run is one JSON line keyed by (method, lr, seed, steps, batch size). The sweep trains every
lr of a method's grid at the first seed and picks the lr with the best VALIDATION accuracy;
while that lr is the grid's largest, the grid grows (:func:`sweep_grid`); then the other seeds
run at the chosen lr (:func:`plan`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Optional

from .methods import Method


# ------------------------------------------------------------------------------- run records

def run_key(method: str, lr: float, seed: int, steps: int, batch_size: int) -> tuple:
    return (method, float(f"{lr:.6g}"), int(seed), int(steps), int(batch_size))


def load_runs(path: Path) -> list[dict]:
    """Every recorded run; a truncated last line (a run killed mid-write) is ignored."""
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"warning: skipping an unreadable line of {path}", file=sys.stderr)
    return runs


def record_key(run: dict) -> tuple:
    return run_key(run["method"], run["lr"], run["seed"], run["steps"], run["batch_size"])


# ------------------------------------------------------------------- the grids a folder swept

#: The file of a results folder that names the base lr grid each (method, task) was swept on.
GRIDS_FILE = "lr_grids.json"


def record_grids(folder: Path, methods, tasks) -> None:
    """Remember, in ``folder/lr_grids.json``, the base grid (``method.lrs``) on which each of
    ``methods`` is swept for each of ``tasks`` by the command about to run.

    A folder's report rebuilds every row from its runs, and which lr it chose depends on the
    grid: a row swept on ``--lrs 0.003 0.01`` beside rows swept on ``0.01 0.03`` keeps its
    own grid in the report instead of the report's one.  A later command that sweeps the same
    (method, task) again replaces its entry, as it replaces what :func:`plan` trains.
    """
    path = Path(folder) / GRIDS_FILE
    grids = load_grids(folder)
    for method in methods:
        for task in tasks:
            grids.setdefault(method.name, {})[task] = [float(f"{lr:.6g}") for lr in method.lrs]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ",\n".join(f" {json.dumps(name)}: {json.dumps(grids[name], sort_keys=True)}"
                      for name in sorted(grids))                  # one line per method
    path.write_text("{\n" + rows + "\n}\n")


def load_grids(folder: Path) -> dict:
    """``{method: {task: [lr, ...]}}`` recorded by :func:`record_grids`; ``{}`` if none."""
    path = Path(folder) / GRIDS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def with_recorded_grid(method: Method, grids: dict, task: str) -> Method:
    """``method`` with the base grid recorded for ``task`` in ``grids``, else unchanged."""
    lrs = grids.get(method.name, {}).get(task)
    return dataclasses.replace(method, lrs=tuple(lrs)) if lrs else method


def append_run(path: Path, run: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(run) + "\n")
        f.flush()
        os.fsync(f.fileno())


def choose_lr(runs: list[dict], method: str, lrs, steps: int, batch_size: int,
              sweep_seed: int = 0) -> Optional[float]:
    """The lr of ``lrs`` with the best VALIDATION accuracy at ``sweep_seed``; None until every
    lr of the grid has a run. Ties go to the smaller lr."""
    done = {record_key(r): r for r in runs}
    scores = []
    for lr in lrs:
        run = done.get(run_key(method, lr, sweep_seed, steps, batch_size))
        if run is None or run.get("val_accuracy") is None:
            return None
        scores.append((-run["val_accuracy"], lr))
    return min(scores)[1]


#: An lr grid whose best value is its largest is extended upward by this factor ...
EXTEND_FACTOR = 2.5
#: ... at most this many times (``--extend``).
MAX_EXTEND = 2


def sweep_grid(runs: list[dict], method: str, lrs, steps: int, batch_size: int,
               sweep_seed: int = 0, extend: int = MAX_EXTEND) -> tuple:
    """The grid the sweep really uses: ``lrs`` plus up to ``extend`` values, each
    ``EXTEND_FACTOR`` x the last, added one at a time while the best validation accuracy sits
    at the grid's largest lr (an optimum at the edge of the grid is not an optimum).  The
    extension is a function of the recorded runs, so a rerun rebuilds the same grid."""
    grid = list(lrs)
    for _ in range(extend):
        if choose_lr(runs, method, grid, steps, batch_size, sweep_seed) != grid[-1]:
            break
        grid.append(float(f"{grid[-1] * EXTEND_FACTOR:.6g}"))
    return tuple(grid)


def plan(runs: list[dict], method: Method, lrs, seeds, steps: int, batch_size: int,
         extend: int = 0):
    """Next ``(lr, seed, splits)`` to train for ``method``, or None when it is complete.

    The sweep (every lr of :func:`sweep_grid` at ``seeds[0]``, scored on validation and test)
    comes first; then the other seeds at the chosen lr, scored on test only.
    """
    lrs = sweep_grid(runs, method.name, lrs, steps, batch_size, seeds[0], extend)
    done = {record_key(r) for r in runs}
    for lr in lrs:
        if run_key(method.name, lr, seeds[0], steps, batch_size) not in done:
            return lr, seeds[0], ("validation", "test")
    best = choose_lr(runs, method.name, lrs, steps, batch_size, seeds[0])
    for seed in seeds[1:]:
        if run_key(method.name, best, seed, steps, batch_size) not in done:
            return best, seed, ("test",)
    return None
