"""Schedule sweep: the same rows trained for longer and longer, the lr chosen on validation
at each length, on either backbone.

Does a physics prior need a long schedule to pay?  MoPPA's gain is reported on VTAB-1k
(about 100 epochs of 1,000 images); the vision suite trains 60 steps (2.4 epochs of 800).
Each stage of ``--plan`` is ``STEPS:GRID``: ``GRID`` is comma-separated learning rates (the
sweep at the first seed scores each on validation and extends the grid x2.5 upward while its
best is its largest, :mod:`benchmarks.common.sweep`; a final ``!`` fixes the grid), or
``best@S``, the one lr chosen on validation at the stage of ``S`` steps (for schedules too
long to sweep).  Stages run in
order, each for every task and row; a run is one JSON line in ``vision_runs.w0.jsonl`` of
the folder, keyed by (task, method, lr, seed, steps, grid), so a killed sweep continues
where it stopped and the 7x7 and 14x14 runs share the folder.

    python -m benchmarks.vision.schedule --tasks rotation      # the committed sweep (PLAN)
    python -m benchmarks.vision.schedule --backbone 14x14 --plan 300:best@300/7x7
    python -m benchmarks.vision.schedule --report-only

``best@S/7x7`` takes the lr chosen at ``S`` steps on the 7x7 backbone (the finer grid costs
~5x per step: no sweep of its own).  Writes ``schedule_table.md`` (per backbone, task, row
and length: the chosen lr, validation and test accuracy, the routers' entropy and shares at
the start, middle and end of training) and ``schedule.png`` (test accuracy against steps,
log x) into ``benchmarks/results/vision_schedule/``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from ..common import cli
from ..common.constants import RESULTS
from ..common.sweep import MAX_EXTEND, choose_lr, sweep_grid
from .data import TASKS
from .methods import METHODS
from .tables import load_all_runs

OUT = RESULTS / "vision_schedule"
#: The rows the sweep compares: the equal-parameter bottleneck, one prior, the routed three.
ROWS = ("vision-bottleneck-input", "vision-physics-heat-input", "vision-physics-moppa-input")
#: The committed sweep: three lrs (extended upward) at 60 and 300 steps, the two best rates of
#: those sweeps at 1,000 steps (one run is 3-4 minutes of a shared core), and 2,500 steps
#: (100 epochs, 8 minutes a run) at the lr chosen at 1,000.
PLAN = ("60:0.003,0.01,0.03", "300:0.003,0.01,0.03", "1000:0.01,0.03!", "2500:best@1000")


def parse_stage(text: str) -> tuple[int, tuple | str, bool]:
    """``"300:0.003,0.01"`` -> ``(300, (0.003, 0.01), True)``; a grid ending in ``!`` is not
    extended (``"1000:0.003,0.01!"`` -> ``(1000, (0.003, 0.01), False)``);
    ``"2500:best@1000"`` -> ``(2500, "best@1000", False)``; a clear error otherwise."""
    try:
        steps, grid = text.split(":", 1)
        steps = int(steps)
        if grid.startswith("best@"):
            int(grid[5:].split("/")[0])
            return steps, grid, False
        fixed = grid.endswith("!")
        return steps, tuple(float(x) for x in grid.rstrip("!").split(",")), not fixed
    except ValueError:
        raise ValueError(f"stage {text!r} is not valid; valid: STEPS:LR,LR,... (a final ! "
                         f"fixes the grid) or STEPS:best@S or STEPS:best@S/7x7") from None


def chosen(runs, task: str, method, steps: int, grid, batch_size: int, seed: int):
    """The lr chosen on validation for ``method`` at ``steps`` on the backbone ``grid``
    (None until its sweep is complete)."""
    from .worker import on_backbone

    mine = on_backbone(runs, task, grid)
    lrs = [r["lr"] for r in mine if r["method"] == method and r["steps"] == steps
           and r["seed"] == seed]
    if not lrs:
        return None
    base = tuple(sorted(set(lrs)))
    full = sweep_grid(mine, method, base, steps, batch_size, seed, 0)
    return choose_lr(mine, method, full, steps, batch_size, seed)


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser(__doc__, prog="python -m benchmarks.vision.schedule")
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["rotation"])
    p.add_argument("--methods", nargs="+", default=list(ROWS), help=f"default {list(ROWS)}")
    p.add_argument("--plan", nargs="+", default=list(PLAN), help=f"default {list(PLAN)}")
    p.add_argument("--backbone", default="7x7", choices=["7x7", "14x14"])
    p.add_argument("--seed", type=int, default=0, help="the seed these runs train with")
    p.add_argument("--sweep-seed", type=int, default=0,
                   help="the seed whose validation choice best@S reads (default 0): "
                        "--seed 1 --plan 300:best@300 repeats seed 0's choice with seed 1")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--monitor-every", type=int, default=None)
    p.add_argument("--results", type=Path, default=OUT)
    p.add_argument("--report-only", action="store_true")
    return p.parse_args(argv)


def run(args) -> None:
    import dataclasses

    from .model import get_backbone
    from .worker import run_worker

    grid = get_backbone(args.backbone).grid
    for steps, lrs, extends in (parse_stage(s) for s in args.plan):
        for task in args.tasks:
            for name in args.methods:
                method = METHODS[name]
                extend = MAX_EXTEND if extends else 0
                if isinstance(lrs, str):
                    at, _, other = lrs[5:].partition("/")
                    source = get_backbone(other).grid if other else grid
                    lr = chosen(load_all_runs(args.results), task, name, int(at), source,
                                args.batch_size, args.sweep_seed)
                    if lr is None:
                        print(f"skip {task} {name} at {steps} steps: no finished sweep at "
                              f"{lrs[5:]}", flush=True)
                        continue
                    grid_lrs = (lr,)
                else:
                    grid_lrs = lrs
                run_worker([task], [dataclasses.replace(method, lrs=grid_lrs)], args.results,
                           (args.seed,), steps, args.batch_size, 1000, extend,
                           backbone=args.backbone, monitor_every=args.monitor_every)


def _history_cell(run: dict) -> str:
    """Router entropy and shares at the start, middle and end of training."""
    hist = [h for h in run.get("history", []) if h.get("router")]
    if not hist:
        return ""
    picks = [hist[0], hist[len(hist) // 2], hist[-1]]
    return " → ".join(f"{h['step']}: H {h['router']['entropy']:.3f} "
                      f"({'/'.join(f'{w:.2f}' for w in h['router']['shares'])})" for h in picks)


def _seeds_cell(tests: list) -> str:
    """``mean ± std (n)`` of test accuracies over seeds, '' with one seed."""
    if len(tests) < 2:
        return ""
    return (f"{100 * statistics.mean(tests):.1f} ± {100 * statistics.stdev(tests):.1f} "
            f"({len(tests)})")


def table(runs: list[dict], seed: int = 0) -> list[dict]:
    """One row per (backbone, task, method, steps): the lr chosen on validation and its
    run."""
    from .worker import on_backbone

    keys = sorted({(tuple(r.get("grid", (7, 7))), r["task"], r["method"], r["steps"],
                    r["batch_size"]) for r in runs if r["seed"] == seed})
    rows = []
    for grid, task, method, steps, batch in keys:
        lr = chosen(runs, task, method, steps, grid, batch, seed)
        if lr is None:
            continue
        mine = on_backbone(runs, task, grid)
        run = next(r for r in mine if r["method"] == method and r["steps"] == steps
                   and r["seed"] == seed and abs(r["lr"] - lr) < 1e-12)
        grid_lrs = sorted(r["lr"] for r in mine if r["method"] == method
                          and r["steps"] == steps and r["seed"] == seed)
        tests = [r["test_accuracy"] for r in mine if r["method"] == method
                 and r["steps"] == steps and abs(r["lr"] - lr) < 1e-12]
        rows.append({"grid": grid, "task": task, "method": method, "steps": steps, "lr": lr,
                     "lrs": grid_lrs, "val": run["val_accuracy"], "test": run["test_accuracy"],
                     "tests": tests,
                     "params": run["adapter_params"], "run": run,
                     "train_seconds": run["train_seconds"],
                     "s_per_step": run["median_seconds_per_step"]})
    return rows


def markdown(rows: list[dict]) -> str:
    label = {name: METHODS[name].label if name in METHODS else name
             for name in {r["method"] for r in rows}}
    lines = ["Schedule sweep (seed 0, lr chosen on validation at each length; test accuracy "
             "on up to 1,000 held-out images)", "",
             "| grid | task | method | params | steps | lrs tried | lr | val % | test % | "
             "test %, all seeds at this lr | "
             "router entropy (shares heat/wave/Poisson) at start → middle → end | "
             "s/step (shared machine) |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: (r["grid"], r["task"], r["method"], r["steps"])):
        lines.append(
            f"| {r['grid'][0]}x{r['grid'][1]} | {r['task']} | {label[r['method']]} | "
            f"{r['params']:,d} | {r['steps']} | {', '.join(f'{x:g}' for x in r['lrs'])} | "
            f"{r['lr']:g} | {100 * r['val']:.1f} | {100 * r['test']:.1f} | "
            f"{_seeds_cell(r['tests'])} | "
            f"{_history_cell(r['run'])} | {r['s_per_step']:.3f} |")
    lines += ["", "Gap to the bottleneck (test points, same grid, task and length):", ""]
    base = {(r["grid"], r["task"], r["steps"]): r for r in rows
            if r["method"] == "vision-bottleneck-input"}
    for r in sorted(rows, key=lambda r: (r["grid"], r["task"], r["method"], r["steps"])):
        b = base.get((r["grid"], r["task"], r["steps"]))
        if b is not None and r is not b:
            seeds = ""
            if len(r["tests"]) > 1 and len(b["tests"]) > 1:
                gap = statistics.mean(r["tests"]) - statistics.mean(b["tests"])
                seeds = (f"; over seeds {100 * gap:+.1f} ({len(r['tests'])} vs "
                         f"{len(b['tests'])})")
            lines.append(f"- {r['grid'][0]}x{r['grid'][1]} {r['task']} {r['steps']} steps, "
                         f"{label[r['method']]}: {100 * (r['test'] - b['test']):+.1f} "
                         f"(val {100 * (r['val'] - b['val']):+.1f}){seeds}")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["grid"], r["task"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (grid, task) in zip(axes[0], panels):
        for i, method in enumerate(sorted({r["method"] for r in rows})):
            mine = sorted((r["steps"], 100 * r["test"], 100 * r["val"]) for r in rows
                          if (r["grid"], r["task"], r["method"]) == (grid, task, method))
            if mine:
                steps, test, val = zip(*mine)
                label = METHODS[method].label if method in METHODS else method
                ax.plot(steps, test, "o-", color=f"C{i}", label=f"{label} (test)")
                ax.plot(steps, val, "x:", color=f"C{i}", alpha=0.6)
        ax.set_xscale("log")
        ticks = sorted({r["steps"] for r in rows if (r["grid"], r["task"]) == (grid, task)})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("optimiser steps (batch 32; 2,500 = 100 epochs of 800 images)")
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{task}, {grid[0]}x{grid[1]} grid, seed 0 (dotted: validation)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(folder: Path, seed: int = 0) -> list[dict]:
    rows = table(load_all_runs(folder), seed)
    if not rows:
        print(f"no finished sweep in {folder}")
        return rows
    text = markdown(rows)
    (folder / "schedule_table.md").write_text(text)
    plot(rows, folder / "schedule.png")
    print(text, end="")
    print(f"wrote {folder / 'schedule_table.md'}, {folder / 'schedule.png'}; "
          f"mean train time per run by length: " + ", ".join(
              f"{s}: {statistics.mean(r['train_seconds'] for r in rows if r['steps'] == s):.0f} s"
              for s in sorted({r['steps'] for r in rows})))
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.results.mkdir(parents=True, exist_ok=True)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        print(f"error: unknown methods {unknown}; valid: {list(METHODS)}", file=sys.stderr)
        return 1
    for stage in args.plan:
        parse_stage(stage)
    if not args.report_only:
        run(args)
    report(args.results, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
