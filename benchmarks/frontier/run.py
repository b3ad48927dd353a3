"""The tiny-budget frontier: accuracy against parameters and against cost, ours against
peft's methods made for tiny budgets, on the trade-off (text) and the vision suite.

It trains nothing: the accuracies are the two benchmarks' committed rows
(``python -m benchmarks.tradeoff``, ``python -m benchmarks.vision``: lr chosen on
validation, 3 seeds, test reported).  ``--costs`` measures, for every row lacking them, one
training step's FLOPs, the build of its weight-side matrices and its peak memory
(:mod:`benchmarks.frontier.costs`, one fresh process per row) into
``frontier_costs.jsonl``.  Then it writes, beside the other results:

``--init-drift`` measures, for every row lacking it, how far the method moves the pretrained
model before training (:mod:`benchmarks.frontier.init_drift`) into ``frontier_init.jsonl``.

* ``frontier.csv``: every row per task (text; the five vision tasks and their mean), its
  frontier marks (:mod:`.tables`) and costs;
* ``frontier.md``: the tables and the goal's checks (ours on or above peft's frontier at
  every budget up to 10k parameters; within 1 point of the best peer at 10x fewer);
* ``frontier_text.png`` / ``frontier_vision.png``: accuracy against parameters (log x) with
  the frontier drawn; ``frontier_text_speed.png`` / ``frontier_vision_speed.png``:
  accuracy against seconds per step.

Seconds (``s/step``, ``build_s``) were measured on a shared 2-core machine while other jobs
ran: compare them only loosely; FLOPs and parameter counts do not depend on the load.

    python -m benchmarks.frontier                # tables and plots from what is recorded
    python -m benchmarks.frontier --costs        # measure missing costs first (~10 s a row)
    python -m benchmarks.frontier --init-drift   # measure missing drifts at init (~2 s a row)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..common.constants import RESULTS
from . import init_drift, tables
from .plots import plot

VISION_TASKS = ["mean", "mnist", "digits", "rotation", "quadrant", "inverted"]
SHARED = ("s/step and build times: a shared 2-core machine with other jobs running "
          "(loose; the lead re-measures on an idle one); FLOPs and counts are load-free.")


def _f(v, spec: str, scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return format(v * scale, spec)


def table_md(rows: list[dict]) -> str:
    head = ("| method | params | test acc % | s/step | GFLOP/step | adapter GFLOP | "
            "build of D: MFLOP / ms | peak MiB | frontier | vs peers |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|\n")
    lines = []
    for r in sorted(rows, key=lambda r: (r["adapter_params"], -r["acc"])):
        if not r.get("point"):
            continue
        build = ("" if r.get("build_flops") is None else
                 f"{_f(r['build_flops'], '.3g', 1e-6)} / {_f(r['build_s'], '.1f', 1e3)}"
                 + ("" if r.get("build_in_forward") else " (merge only)"))
        gap = r.get("peer_gap", math.inf)
        lines.append(
            f"| {r['label']} | {r['adapter_params']:,} | {r['acc']:.2f} ± {r['std']:.2f} | "
            f"{_f(r['s_per_step'], '.3f')} | {_f(r.get('flops_per_step'), '.2f', 1e-9)} | "
            f"{_f(r.get('adapter_flops'), '.2f', 1e-9)} | {build} | "
            f"{_f(r.get('peak_growth_mib'), '.0f')} | {moved_at_init(r)} | "
            f"{'**yes**' if r.get('on_frontier') else ''} | "
            f"{'' if gap == math.inf else f'{gap:+.2f}'} |")
    return head + "\n".join(lines) + "\n"


def moved_at_init(row: dict) -> str:
    """The ``moved at init`` cell: the drift at initialisation (0: the pretrained model
    untouched), and ``|dW|/|W|`` where the method has an additive delta that moved."""
    drift = row.get("init_drift")
    if drift is None:
        return ""
    if drift == 0:
        return "0"
    ratio = row.get("init_delta_ratio")
    return f"{drift:.3g}" + ("" if not ratio else f" (dW {ratio:.2g}x W)")


def within_std(mine: dict | None, theirs: dict) -> bool:
    """Whether our row is below the peer's by at most one std over seeds (the larger of the
    two rows' stds): the goal's "at least the best peer's accuracy (+-1 std)"."""
    if mine is None:
        return False
    return theirs["acc"] - mine["acc"] <= max(mine["std"], theirs["std"])


def _budget_check(ours: list[dict], peers: list[dict]) -> tuple[list, list, list]:
    """``(budgets, lost, tied)``: every peer budget up to :data:`~.tables.GOAL_BUDGET`; the
    ``(budget, our best, their best)`` where our best with at most that many parameters is
    below their best; the lost budgets within one std."""
    def best(group, budget):
        found = [r for r in group if r["adapter_params"] <= budget]
        return max(found, key=lambda r: r["acc"]) if found else None

    budgets = sorted({r["adapter_params"] for r in peers
                      if r["adapter_params"] <= tables.GOAL_BUDGET})
    lost = []
    for b in budgets:
        mine, theirs = best(ours, b), best(peers, b)
        if mine is None or mine["acc"] < theirs["acc"]:
            lost.append((b, mine, theirs))
    tied = [b for b, mine, theirs in lost if within_std(mine, theirs)]
    return budgets, lost, tied


#: A method "starts at the pretrained model" when its drift at init is below this: 1 - cos of
#: 0.001 (Hamming, LoRA, RoAd, WaveFT: exactly 0; peft's C3A, UniLoRA and VB-LoRA draw small
#: random starts, 1e-9 to 3e-5; FourierFT's is 0.01-0.16 on MiniLM and up to 0.65 on the ViT).
INIT_DRIFT_TOL = 1e-3


def starts_at_pretrained(row: dict) -> bool:
    """Whether the row leaves the pretrained model where it was until it trains: its
    ``init_drift`` measured and below :data:`INIT_DRIFT_TOL` (every zero-start Hamming row
    has 0)."""
    return row.get("init_drift") is not None and row["init_drift"] < INIT_DRIFT_TOL


def goal_lines(rows: list[dict]) -> list[str]:
    """The goal's two checks for one task's rows: at every budget up to
    :data:`~.tables.GOAL_BUDGET` where peft's frontier steps (each peft row's parameter
    count), our best row with at most that many parameters against peft's best; and for
    every peft row, our best with :data:`~.tables.GOAL_FACTOR` x fewer parameters.  Where
    some peers move the pretrained model before training (``init_drift`` of at least
    :data:`INIT_DRIFT_TOL`), the first check is repeated against the peers that start at
    the pretrained model, as ours do."""
    pts = [r for r in rows if r.get("point")]
    ours = [r for r in pts if r["group"] == tables.OURS]
    peers = [r for r in pts if r["group"] == tables.PEERS]
    budgets, lost, tied = _budget_check(ours, peers)
    out = [f"- on or above peft's frontier at its budgets up to "
           f"{tables.GOAL_BUDGET:,} parameters: {len(budgets) - len(lost)} of "
           f"{len(budgets)}; within one std (the goal's tolerance): "
           f"{len(budgets) - len(lost) + len(tied)} of {len(budgets)}"]
    for b, mine, theirs in lost:
        ours_text = ("nothing of ours" if mine is None else
                     f"ours at best {mine['label']} {mine['acc']:.2f} ({mine['adapter_params']:,})")
        if b in tied:
            ours_text += (f"; within one std ({theirs['acc'] - mine['acc']:.2f} <= "
                          f"{max(mine['std'], theirs['std']):.2f})")
        out.append(f"  - loses at {b:,}: {theirs['label']} {theirs['acc']:.2f} "
                   f"({theirs['adapter_params']:,}); {ours_text}")
    moved = [r for r in peers
             if r.get("init_drift") is not None and not starts_at_pretrained(r)]
    if moved:
        still = [r for r in peers if starts_at_pretrained(r)]
        b2, lost2, tied2 = _budget_check(ours, still)
        names = ", ".join(sorted(r["label"] for r in moved))
        out.append(f"- the same against the peers that start at the pretrained model "
                   f"(leaving out those that move it before training, drift at init >= "
                   f"{INIT_DRIFT_TOL:g}: {names}): "
                   f"{len(b2) - len(lost2)} of {len(b2)}; within one std: "
                   f"{len(b2) - len(lost2) + len(tied2)} of {len(b2)}")
    lose = [r for r in peers if r["ours_at_tenth"] < -tables.GOAL_POINTS]
    out.append(f"- peft rows matched within {tables.GOAL_POINTS:g} point by ours with "
               f"{tables.GOAL_FACTOR}x fewer parameters: {len(peers) - len(lose)} of "
               f"{len(peers)}")
    for r in sorted(lose, key=lambda r: r["adapter_params"]):
        short = ("nothing of ours that small" if r["ours_at_tenth"] == -math.inf
                 else f"ours {-r['ours_at_tenth']:.2f} points below")
        out.append(f"  - not matched: {r['label']} ({r['adapter_params']:,}, "
                   f"{r['acc']:.2f}): {short}")
    return out


def markdown(rows: list[dict]) -> str:
    parts = ["# The tiny-budget frontier\n", f"_{SHARED}_\n",
             "`frontier`: no row of the task has at most as many parameters and a higher "
             "accuracy. `vs peers`: accuracy minus the best peft row with at most as many "
             "parameters. `adapter GFLOP`: the step's FLOPs minus the head-only step's. "
             "`build of D`: the adapter's weight-side matrices from its parameters, forward "
             "and backward, all layers (merge only: its forward never builds them). "
             "`moved at init`: 1 - mean cosine between the pretrained encoder's pooled "
             "features with the method built in, before any step, and without it, on held-out "
             "inputs (0: untouched), with the size of its additive delta against the "
             "adapted weights where that is not 0 (`benchmarks.frontier.init_drift`).\n"]
    for task, title in (("text", "Text: MiniLM, WordNet nouns (trade-off)"),
                        ("mean", "Vision: mean over the five tasks")):
        mine = [r for r in rows if r["task"] == task]
        if not mine:
            continue
        parts += [f"## {title}\n", table_md(mine), "\n".join(goal_lines(mine)) + "\n"]
    parts.append("## Vision, per task: the goal's checks\n")
    for task in VISION_TASKS[1:]:
        mine = [r for r in rows if r["task"] == task]
        if mine:
            parts += [f"### {task}\n", "\n".join(goal_lines(mine)) + "\n"]
    return "\n".join(parts)


def measure_missing(rows: list[dict], path: Path, threads: int,
                    max_params: float = math.inf) -> None:
    """Measure the costs of every row lacking them (the head-only rows too, the reference
    of ``adapter_flops``), text first, then by increasing parameters."""
    from .costs import measure_in_subprocess

    want = tables.missing(rows, tables.load_records(path),
                          lambda r: (r.get("point") and r["adapter_params"] <= max_params)
                          or r["method"] in ("head", "vision-head"))
    for i, (name, kind) in enumerate(want):
        try:
            c = measure_in_subprocess(name, kind, threads)
        except RuntimeError as err:
            print(f"[{i + 1}/{len(want)}] {err}", flush=True)
            continue
        with open(path, "a") as f:
            f.write(json.dumps(c) + "\n")
        print(f"[{i + 1}/{len(want)}] {name} ({kind}): {c['flops_per_step'] / 1e9:.2f} "
              f"GFLOP, build {c['build_flops'] / 1e6:.3g} MFLOP, {c['peak_growth_mib']} MiB",
              flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.frontier",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--costs", action="store_true",
                   help="measure the costs of rows that lack them first")
    p.add_argument("--threads", type=int, default=1, help="torch threads of a cost run")
    p.add_argument("--max-params", type=float, default=math.inf,
                   help="--costs: only rows with at most this many adapter parameters")
    p.add_argument("--init-drift", action="store_true",
                   help="measure how far each row lacking it moves the model at init first")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    out = args.results
    rows = tables.mark(tables.text_rows(out) + tables.vision_rows(out))
    costs_path = out / "frontier_costs.jsonl"
    if args.costs:
        measure_missing(rows, costs_path, args.threads, args.max_params)
    rows = tables.with_costs(rows, tables.load_records(costs_path))
    init_path = out / "frontier_init.jsonl"
    if args.init_drift:
        init_drift.measure_missing(rows, init_path)
    rows = tables.with_init_drift(rows, tables.load_records(init_path))
    tables.write_csv(rows, out / "frontier.csv")
    (out / "frontier.md").write_text(markdown(rows))
    for name, tasks in (("text", ["text"]), ("vision", VISION_TASKS)):
        plot(rows, tasks, out / f"frontier_{name}.png", "adapter_params",
             "trainable adapter parameters (head excluded, log scale)",
             f"{name}: accuracy against parameters; lines: the frontier")
        plot(rows, tasks, out / f"frontier_{name}_speed.png", "s_per_step",
             "seconds per training step (median; shared machine, log scale)",
             f"{name}: accuracy against step time (shared 2-core machine)")
    print(f"wrote {out / 'frontier.csv'}, frontier.md and 4 figures", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
