"""Per-experiment views of the recorded runs: ``benchmarks/<benchmark>/results/<family>--<name>.json``.

Derived, never an input: made from the committed run records (``benchmarks/results/``, read
only) and the experiments' inputs (:mod:`benchmarks.common.experiments`), rerunnable
(``make bench-views``), ignored by git.  One file per row of a benchmark: its training
parameters, and per task (the text trade-off has one, ``null``) the sweep's summary (chosen
lr, test mean / std over seeds, the adapter parameters the runs measured; null until the
sweep is complete) and every run of the row at those parameters.

    python -m benchmarks.common.views                     # the trade-off and vision views
    python -m benchmarks.common.views --benchmarks vision
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from . import experiments, registry
from .constants import REPO_ROOT, RESULTS
from .summary import summarize
from .sweep import MAX_EXTEND, load_runs

#: benchmark -> its run records in :data:`~benchmarks.common.constants.RESULTS` (a glob).
RUN_RECORDS = {"tradeoff": "tradeoff_runs.jsonl", "vision": "vision_runs.w*.jsonl"}


def view(method, params: dict, runs: list[dict]) -> dict:
    """The view of one row: ``params`` (its training parameters) and, per task, its summary
    and its runs at those steps and batch size."""
    mine = [r for r in runs if r["method"] == method.name and r["steps"] == params["steps"]
            and r["batch_size"] == params["batch_size"]]
    tasks = {}
    for task in sorted({r.get("task") for r in mine}, key=str):
        task_runs = [r for r in mine if r.get("task") == task]
        rows = summarize(task_runs, [method], tuple(params["seeds"]), params["steps"],
                         params["batch_size"], None, MAX_EXTEND)
        tasks[str(task) if task is not None else "null"] = {
            "summary": rows[0] if rows else None, "runs": task_runs}
    return {"experiment": method.name, "family": registry.get(method.name).family,
            "label": method.label, "training_params": params, "tasks": tasks}


def write(benchmark: str, results: Path = RESULTS, out: Path = None) -> list[Path]:
    """Every row's view of ``benchmark`` into ``out`` (default
    ``benchmarks/<benchmark>/results/``); returns the paths written."""
    table = importlib.import_module(f"benchmarks.{benchmark}.methods")
    runs = [r for p in sorted(Path(results).glob(RUN_RECORDS[benchmark])) for r in load_runs(p)]
    out = Path(out or REPO_ROOT / "benchmarks" / benchmark / "results")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, method in table.METHODS.items():
        data = view(method, experiments.training_params(table.EXPERIMENTS, name), runs)
        path = out / f"{data['family']}--{name}.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
        paths.append(path)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.common.views",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmarks", nargs="+", choices=sorted(RUN_RECORDS),
                   default=sorted(RUN_RECORDS))
    p.add_argument("--results", type=Path, default=RESULTS, help="where the run records are")
    args = p.parse_args(argv)
    for benchmark in args.benchmarks:
        paths = write(benchmark, args.results)
        print(f"{benchmark}: {len(paths)} views in {paths[0].parent if paths else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
