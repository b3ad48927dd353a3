"""The vision benchmark's outputs from its recorded runs: CSV, markdown table, Pareto plot.

* ``vision.csv``: one row per task x method x seed at the learning rate chosen on that
  task's validation split (the seed-0 run is the sweep's own run);
* ``vision_table.md``: test accuracy per task (mean ± std over seeds) and the mean over
  tasks, methods sorted by trainable adapter parameters, then the routers' weights;
* ``vision.png``: mean accuracy over tasks against adapter parameters (log x), drawn by
  :func:`benchmarks.tradeoff.plot`; the error bar is the std over seeds of the task mean.

Per task, the sweep bookkeeping and the lr choice are :func:`benchmarks.tradeoff.summarize`.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from ..common.plotting import plot
from ..common.summary import summarize
from ..common.sweep import (load_grids, load_runs, record_key, run_key, sweep_grid,
                            with_recorded_grid)

CSV_FIELDS = ("task", "method", "label", "family", "seed", "lr", "test_accuracy",
              "val_accuracy_at_lr", "lr_at_grid_edge", "val_acc_sweep", "adapter_params",
              "head_params", "n_test", "steps", "batch_size", "median_s_per_step",
              "cpu_s_per_step", "router_names", "router_mean", "config")


def load_all_runs(folder: Path) -> list[dict]:
    """Every run recorded by any worker: all ``vision_runs*.jsonl`` files of ``folder``."""
    return [run for path in sorted(Path(folder).glob("vision_runs*.jsonl"))
            for run in load_runs(path)]


def _edge(chosen: float, grid: tuple, extend: int, base: tuple) -> str:
    """'low' when the chosen lr is the grid's smallest, 'high' when it is the largest of a
    grid that cannot grow further, else ''."""
    if chosen == grid[0] and len(grid) > 1:
        return "low"
    if chosen == grid[-1] and len(grid) > 1 and len(grid) - len(base) >= extend:
        return "high"
    return ""


def per_task(runs, tasks, methods, seeds, steps, batch_size, extend, grids=None) -> dict:
    """``{task: {method name: summary row + "runs" (the chosen runs) + "edge"}}``.

    A row's lr grid on a task is the one recorded for it in ``grids``
    (:func:`benchmarks.common.sweep.record_grids`), else its own ``lrs``."""
    out = {}
    for task in tasks:
        on_grid = [with_recorded_grid(m, grids or {}, task) for m in methods]
        mine = [r for r in runs if r.get("task") == task]
        done = {record_key(r): r for r in mine}
        rows = {}
        for row in summarize(mine, on_grid, seeds, steps, batch_size, extend=extend):
            method = next(m for m in on_grid if m.name == row["method"])
            grid = sweep_grid(mine, method.name, method.lrs, steps, batch_size, seeds[0], extend)
            row["runs"] = [done[k] for k in (run_key(method.name, row["chosen_lr"], s, steps,
                                                     batch_size) for s in seeds) if k in done]
            row["edge"] = _edge(row["chosen_lr"], grid, extend, method.lrs)
            rows[method.name] = row
        out[task] = rows
    return out


def write_csv(table: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for task, rows in table.items():
            for row in rows.values():
                for run in row["runs"]:
                    router = run.get("router") or {}
                    writer.writerow({
                        "task": task, "method": row["method"], "label": row["label"],
                        "family": row["family"], "seed": run["seed"], "lr": run["lr"],
                        "test_accuracy": f"{run['test_accuracy']:.4f}",
                        "val_accuracy_at_lr": f"{row['val_acc_at_lr']:.4f}",
                        "lr_at_grid_edge": row["edge"], "val_acc_sweep": row["val_acc_sweep"],
                        "adapter_params": run["adapter_params"],
                        "head_params": run["head_params"], "n_test": run.get("n_test"),
                        "steps": run["steps"], "batch_size": run["batch_size"],
                        "median_s_per_step": f"{run['median_seconds_per_step']:.4f}",
                        "cpu_s_per_step": f"{run['cpu_seconds_per_step']:.4f}",
                        "router_names": " ".join(router.get("names", [])),
                        "router_mean": " ".join(f"{w:.3f}" for w in router.get("mean", [])),
                        "config": json.dumps(run["config"], sort_keys=True)})


def over_tasks(table: dict, methods, seeds) -> list[dict]:
    """One row per method finished on every task: the mean over tasks of the per-task test
    means, and the std over seeds of the task-averaged accuracy."""
    rows = []
    for method in methods:
        cells = [rows_[method.name] for rows_ in table.values() if method.name in rows_]
        if not cells or len(cells) < len(table):
            continue
        by_seed = [[r["test_accuracy"] for c in cells for r in c["runs"] if r["seed"] == s]
                   for s in seeds]
        seed_means = [statistics.mean(v) for v in by_seed if len(v) == len(cells)]
        rows.append({"method": method.name, "label": method.label, "family": method.family,
                     "test_acc_mean": statistics.mean(c["test_acc_mean"] for c in cells),
                     "test_acc_std": (statistics.stdev(seed_means) if len(seed_means) > 1
                                      else float("nan")),
                     "n_seeds": len(seed_means), "adapter_params": cells[0]["adapter_params"]})
    return rows


def _cell(row: dict) -> str:
    std = "" if math.isnan(row["test_acc_std"]) else f" ± {100 * row['test_acc_std']:.1f}"
    return f"{100 * row['test_acc_mean']:.1f}{std}{'*' if row['edge'] else ''}"


def markdown(table: dict, mean_rows: list[dict], methods, title: str) -> str:
    tasks = list(table)
    means = {r["method"]: r for r in mean_rows}
    head = ("| method | adapter params | " + " | ".join(tasks) + " | mean over tasks |\n"
            "|---|---:|" + "---:|" * (len(tasks) + 1))
    lines = [title, "", head]
    order = sorted(methods, key=lambda m: next((rows[m.name]["adapter_params"]
                                                for rows in table.values() if m.name in rows), 0))
    for m in order:
        cells = [_cell(table[t][m.name]) if m.name in table[t] else "" for t in tasks]
        if not any(cells):
            continue
        params = next(rows[m.name]["adapter_params"] for rows in table.values() if m.name in rows)
        mean = means.get(m.name)
        mean_cell = "" if mean is None else (
            f"**{100 * mean['test_acc_mean']:.1f}**"
            + ("" if math.isnan(mean["test_acc_std"]) else f" ± {100 * mean['test_acc_std']:.1f}"))
        lines.append(f"| {m.label} | {params:,d} | " + " | ".join(cells) + f" | {mean_cell} |")
    lines += ["", "Test accuracy % (mean ± std over seeds); `*`: the lr chosen on validation is "
              "at an edge of its grid.", "", "Router weights (mean over layers, tokens, seeds; "
              "validation images):", ""]
    for m in methods:
        for task in tasks:
            row = table[task].get(m.name)
            routers = [r["router"] for r in (row or {}).get("runs", []) if r.get("router")]
            if routers:
                mean = [statistics.mean(w) for w in zip(*(r["mean"] for r in routers))]
                pairs = ", ".join(f"{n} {w:.2f}" for n, w in zip(routers[0]["names"], mean))
                lines.append(f"- {m.label}, {task}: {pairs}")
    return "\n".join(lines) + "\n"


def report(out: Path, tasks, methods, seeds, steps: int, batch_size: int, extend: int) -> dict:
    """Write ``vision.csv``, ``vision_table.md`` and ``vision.png`` into ``out``."""
    runs = load_all_runs(out)
    table = per_task(runs, tasks, methods, seeds, steps, batch_size, extend, load_grids(out))
    write_csv(table, out / "vision.csv")
    mean_rows = over_tasks(table, methods, seeds)
    n_tasks = f"{len(tasks)} task{'s' if len(tasks) > 1 else ''}"
    title = (f"ViT (width 128, depth 6, pretrained on Fashion-MNIST), {n_tasks} x 1,000 "
             f"examples: {steps} steps x batch {batch_size}, lr chosen on validation, "
             f"seeds {' '.join(map(str, seeds))}")
    text = markdown(table, mean_rows, methods, title)
    (out / "vision_table.md").write_text(text)
    if mean_rows:
        plot(mean_rows, out / "vision.png", f"mean test accuracy over {n_tasks} "
             f"({', '.join(tasks)}); {steps} steps x batch {batch_size}")
    print(text, end="")
    print(f"wrote {out / 'vision.csv'}, {out / 'vision_table.md'}, {out / 'vision.png'}")
    return table
