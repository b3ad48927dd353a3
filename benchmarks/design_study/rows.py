"""The design study's rows: which methods it reads, their families and budget caps, and
their summaries from the recorded runs of the trade-off and vision benchmarks."""
from __future__ import annotations

import math
from pathlib import Path

from ..common import registry
from ..common.constants import RESULTS
from ..common.summary import summarize
from ..common.sweep import MAX_EXTEND, load_runs
from ..tradeoff.methods import METHODS as TEXT_METHODS
from ..vision.methods import METHODS as VISION_METHODS
from ..vision.tables import load_all_runs, over_tasks, per_task

#: The peers the study must meet (peft's methods built for tiny budgets that it names).
PEERS = ("road", "fourierft")
#: Every family drawn, in legend order, with its colour.
COLOURS = {"hamming": "tab:red", "road": "tab:blue", "fourierft": "tab:cyan",
           "vera": "tab:olive", "ia3": "tab:purple", "lora": "tab:gray", "oft": "tab:brown",
           "boft": "tab:pink"}
#: Budget caps (adapter parameters) per benchmark: three between 1k and 10k.
CAPS = {"text": (1_600, 4_700, 10_000), "vision": (1_600, 3_100, 10_000)}
#: The text rows drawn and tabulated (the study's, its references, and the peers).
TEXT_ROWS = ("hamming-123-b3", "hamming-123-b8", "hamming-123-bs32", "hamming-12-bs32",
             "hamming-12-b3", "hamming-12-b8", "hamming-12-bs64", "hamming-12-b3-input-side",
             "hamming-12-bs32-value-scale", "hamming-123-bs32-scale", "hamming-12-bs32-scale",
             "hamming-123-bs32-all-linear", "hamming-12-bs32-angle-lr",
             "hamming-12-bs32-scale-angle-lr", "hamming-12-bs32-value-scale-angle-lr",
             "hamming-12-bs32-angle-lr-init-std01", "hamming-12-bs32-qkvo-scale-angle-lr",
             "road-1", "road-1-adapter-lr", "road-2",
             "fourierft-n100",
             "fourierft-n300", "fourierft-n800", "ia3", "vera-r256", "lora-r1", "lora-r2",
             "oft", "boft",
             "hamming-12-bs16", "hamming-123-bs16", "hamming-123-bs64",
             "hamming-123-bs16-angle-lr", "hamming-123-bs16-scale-angle-lr",
             "hamming-123-bs16-scale-angle-lr-top4", "hamming-123-bs16-scale-angle-lr2-top4",
             "hamming-123-bs16-scale-angle-lr8-top4", "hamming-123-bs16-angle-lr-top4",
             "hamming-123-bs16-scale-angle-lr-top3", "hamming-123-bs16-scale-angle-lr-top2",
             "hamming-123-bs16-angle-lr-top3", "hamming-123-bs16-angle-lr-top2")
#: The default layout's sweep: (orders, block size) -> the text registry name (the vision
#: suite's is ``"vision-" + name``).
DEFAULT_SWEEP = {(orders, size): f"hamming-{''.join(map(str, orders))}-bs{size}"
                 for orders in ((1, 2), (1, 2, 3)) for size in (16, 32, 64)}
VISION_ROWS = tuple(name for name in VISION_METHODS
                    if registry.get(name).family in COLOURS)


def _family(name: str) -> str:
    return registry.get(name).family


def text_rows(folder: Path = RESULTS, seeds=(0, 1, 2)) -> list[dict]:
    """The trade-off rows of :data:`TEXT_ROWS`, with the forgetting probe of the chosen lr's
    runs: recorded with them, or for rows trained before the probe existed, by a rerun of
    the chosen lr into ``forgetting/`` (``python -m benchmarks.tradeoff --methods NAME --lrs
    LR --extend 0 --seeds 0 1 --results benchmarks/results/forgetting``)."""
    runs = load_runs(folder / "tradeoff_runs.jsonl")
    probed = runs + load_runs(folder / "forgetting" / "tradeoff_runs.jsonl")
    methods = [TEXT_METHODS[n] for n in TEXT_ROWS if n in TEXT_METHODS]
    rows = summarize(runs, methods, seeds, 100, 32, extend=MAX_EXTEND)
    for row in rows:
        chosen = [r for r in probed if r["method"] == row["method"]
                  and r["lr"] == row["chosen_lr"] and r["steps"] == 100
                  and "probe_recall1" in r]
        row["probe_recall1"] = _mean([r["probe_recall1"] for r in chosen])
        row["probe_base_recall1"] = _mean([r["probe_base_recall1"] for r in chosen])
        row["probe_drift"] = _mean([r["probe_drift"] for r in chosen])
        row["family_name"] = _family(row["method"])
    return rows


def vision_rows(folder: Path = RESULTS, seeds=(0, 1, 2)) -> list[dict]:
    from ..vision.run import BATCH_SIZE, STEPS
    from ..vision.data import TASKS
    methods = [VISION_METHODS[n] for n in VISION_ROWS]
    table = per_task(load_all_runs(folder), list(TASKS), methods, seeds, STEPS, BATCH_SIZE,
                     MAX_EXTEND)
    rows = over_tasks(table, methods, seeds)
    for row in rows:  # the validation accuracy over tasks, at each task's chosen lr
        row["val_acc_at_lr"] = _mean([t[row["method"]]["val_acc_at_lr"]
                                      for t in table.values()])
        row["family_name"] = _family(row["method"])
    return rows


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else math.nan
