"""The frontier's rows: every finished row of the trade-off (text) and vision benchmarks,
per task, with their costs (:mod:`.costs`) and where they stand against the frontier
(:mod:`.pareto`).

Accuracy and ``s/step`` come from the benchmarks' own committed records (the trade-off's
``tradeoff.csv``; the vision suite's runs, per task and averaged over its five tasks); the
costs from ``frontier_costs.jsonl``.  A row is a point ``(adapter parameters, mean test
accuracy)``; the head-only and full fine-tuning rows are the floor and the ceiling, not
points.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from . import pareto

#: Rows that are not adapters at a budget: drawn as lines, never frontier points.
NOT_POINTS = {"head", "full", "vision-head", "vision-full"}
#: What "ours" and "peers" mean in the goal checks.
OURS, PEERS = "qiadapters", "peft"
#: The goal: on or above the peers' frontier up to this many parameters ...
GOAL_BUDGET = 10_000
#: ... and within this many points of the best peer with this factor more parameters.
GOAL_POINTS, GOAL_FACTOR = 1.0, 10


def text_rows(results: Path) -> list[dict]:
    """The trade-off's rows (``tradeoff.csv``), every seed count."""
    out = []
    with open(results / "tradeoff.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append({"task": "text", "method": r["method"], "label": r["label"],
                        "group": r["family"], "adapter_params": int(r["adapter_params"]),
                        "acc": 100 * float(r["test_acc_mean"]),
                        "std": 100 * float(r["test_acc_std"] or "nan"),
                        "n_seeds": int(r["n_seeds"]), "lr": float(r["chosen_lr"]),
                        "s_per_step": float(r["s_per_step"] or "nan")})
    return out


def vision_rows(results: Path) -> list[dict]:
    """The vision suite's rows, per task and ``mean`` (over its tasks), every method with
    runs recorded."""
    from ..common.sweep import MAX_EXTEND
    from ..vision.data import TASKS
    from ..vision.methods import DEFAULTS, METHODS
    from ..vision.tables import load_all_runs, over_tasks, per_task

    seeds, methods = tuple(DEFAULTS["seeds"]), list(METHODS.values())
    table = per_task(load_all_runs(results), list(TASKS), methods, seeds, DEFAULTS["steps"],
                     DEFAULTS["batch_size"], MAX_EXTEND)
    out, speed = [], {}
    for task, rows in table.items():
        for name, r in rows.items():
            steps = [run["median_seconds_per_step"] for run in r["runs"]]
            speed.setdefault(name, []).extend(steps)
            out.append({"task": task, "method": name, "label": r["label"],
                        "group": r["family"], "adapter_params": int(r["adapter_params"]),
                        "acc": 100 * r["test_acc_mean"], "std": 100 * r["test_acc_std"],
                        "n_seeds": r["n_seeds"], "lr": r["chosen_lr"],
                        "s_per_step": statistics.median(steps) if steps else math.nan})
    for r in over_tasks(table, methods, seeds):
        out.append({"task": "mean", "method": r["method"], "label": r["label"],
                    "group": r["family"], "adapter_params": int(r["adapter_params"]),
                    "acc": 100 * r["test_acc_mean"], "std": 100 * r["test_acc_std"],
                    "n_seeds": r["n_seeds"], "lr": math.nan,
                    "s_per_step": statistics.median(speed[r["method"]])})
    return out


def record_key(row: dict) -> tuple[str, str]:
    """``(method, task kind)``: how a row finds its measurements (``"text"``, or
    ``"vision"`` for the five vision tasks and their mean, which share one ViT step)."""
    return row["method"], "text" if row["task"] == "text" else "vision"


def missing(rows: list[dict], have: dict, wanted) -> list[tuple[str, str]]:
    """The :func:`record_key` of every row with ``wanted(row)`` true that ``have`` lacks,
    each once: text first, then by increasing parameters."""
    want = []
    for r in sorted(rows, key=lambda r: (r["task"] != "text", r["adapter_params"])):
        key = record_key(r)
        if wanted(r) and key not in have and key not in want:
            want.append(key)
    return want


def load_records(path: Path) -> dict:
    """``(method, task kind) -> record`` from a JSON-lines file of the frontier's
    measurements (``frontier_costs.jsonl``, ``frontier_init.jsonl``; the last line of a key
    wins, a missing file is empty)."""
    out = {}
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            if line.strip():
                c = json.loads(line)
                out[(c["method"], c["task"])] = c
    return out


def mark(rows: list[dict], min_seeds: int = 3) -> list[dict]:
    """Each row with ``point`` (complete: ``min_seeds`` seeds, and an adapter), ``on_frontier``
    (among every point of its task), ``peer_gap`` (its accuracy minus the best peer's at no
    more parameters; ``inf`` where no peer is that small) and ``ours_at_tenth`` (for a peer:
    the best of ours with at most a tenth of its parameters, minus the peer's accuracy)."""
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        for r in mine:
            r["point"] = r["n_seeds"] >= min_seeds and r["method"] not in NOT_POINTS
        points = [r for r in mine if r["point"]]
        xy = [(r["adapter_params"], r["acc"]) for r in points]
        on = set(pareto.frontier(xy))
        peers = [r for r in points if r["group"] == PEERS]
        ours = [r for r in points if r["group"] == OURS]
        for i, r in enumerate(points):
            r["on_frontier"] = i in on
            cheaper = [p["acc"] for p in peers if p["adapter_params"] <= r["adapter_params"]
                       and p is not r]
            r["peer_gap"] = r["acc"] - max(cheaper) if cheaper else math.inf
            if r["group"] == PEERS:
                small = [o["acc"] for o in ours
                         if o["adapter_params"] * GOAL_FACTOR <= r["adapter_params"]]
                r["ours_at_tenth"] = max(small) - r["acc"] if small else -math.inf
    return rows


def with_costs(rows: list[dict], costs: dict) -> list[dict]:
    """Each row with its costs (text rows: the text step; vision rows: the vision step),
    and ``adapter_flops``: its step's FLOPs minus the head-only step's."""
    head = {"text": costs.get(("head", "text")), "vision": costs.get(("vision-head", "vision"))}
    for r in rows:
        key = record_key(r)
        kind, c = key[1], costs.get(key)
        for key in ("flops_per_step", "build_flops", "build_s", "build_in_forward",
                    "peak_growth_mib"):
            r[key] = None if c is None else c[key]
        r["adapter_flops"] = (None if c is None or head[kind] is None
                              else c["flops_per_step"] - head[kind]["flops_per_step"])
    return rows


def with_init_drift(rows: list[dict], records: dict) -> list[dict]:
    """Each row with ``init_drift`` and ``init_delta_ratio`` (:mod:`.init_drift`; None where
    not measured)."""
    for r in rows:
        rec = records.get(record_key(r))
        r["init_drift"] = None if rec is None else rec["init_drift"]
        r["init_delta_ratio"] = None if rec is None else rec["init_delta_ratio"]
    return rows


CSV_FIELDS = ["task", "method", "label", "group", "adapter_params", "acc", "std", "n_seeds",
              "lr", "point", "on_frontier", "peer_gap", "ours_at_tenth", "s_per_step",
              "flops_per_step", "adapter_flops", "build_flops", "build_s", "build_in_forward",
              "peak_growth_mib", "init_drift", "init_delta_ratio"]


def write_csv(rows: list[dict], path: Path) -> None:
    def fmt(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else ("inf" if v == math.inf else
                                             "-inf" if v == -math.inf else f"{v:.6g}")
        return "" if v is None else v
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt(r.get(k)) for k in CSV_FIELDS})
