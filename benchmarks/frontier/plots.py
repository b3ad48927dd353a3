"""The frontier's figures: accuracy against parameters (log x) with the frontier drawn,
and accuracy against seconds per step, one panel per task."""
from __future__ import annotations

import math
from pathlib import Path

from . import pareto
from .tables import NOT_POINTS

COLORS = {"peft": "tab:blue", "qiadapters": "tab:red", "physics": "tab:green",
          "mixture": "tab:purple", "bottleneck": "tab:orange", "paper": "tab:brown"}
#: peft's tiny-budget families get their own marker so a reader can tell them apart.
MARKERS = "sDv^<>pPhX*d"


def _panel(ax, rows: list[dict], x: str, title: str, draw_frontier: bool) -> None:
    import matplotlib.ticker

    floor = next((r for r in rows if r["method"] in ("head", "vision-head")), None)
    if floor is not None:
        ax.axhline(floor["acc"], color="gray", ls="--", lw=1)
        ax.text(0.01, floor["acc"], " head only", color="gray", fontsize=7, va="bottom",
                transform=ax.get_yaxis_transform())
    points = [r for r in rows if r.get("point") and r.get(x) is not None
              and not math.isnan(float(r[x])) and float(r[x]) > 0]
    families = sorted({r["method"].replace("vision-", "").split("-")[0] for r in points
                       if r["group"] == "peft"})
    for r in points:
        fam = r["method"].replace("vision-", "").split("-")[0]
        marker = MARKERS[families.index(fam) % len(MARKERS)] if r["group"] == "peft" else "o"
        color = COLORS.get(r["group"], "black")
        ax.errorbar(r[x], r["acc"], yerr=0 if math.isnan(r["std"]) else r["std"],
                    fmt=marker, color=color, ms=4, capsize=2, lw=0.8)
        ax.annotate(r["method"].replace("vision-", ""), (r[x], r["acc"]), fontsize=5,
                    textcoords="offset points", xytext=(3, 2), color=color)
    if draw_frontier and points:
        for group, color, ls in ((None, "black", "-"), ("peft", "tab:blue", ":")):
            sub = [r for r in points if group is None or r["group"] == group]
            idx = pareto.frontier([(r[x], r["acc"]) for r in sub])
            xs = [sub[i][x] for i in idx]
            ys = [sub[i]["acc"] for i in idx]
            # a step: a budget's best accuracy holds until a larger budget beats it
            ax.step(xs + [max(r[x] for r in points) * 1.5], ys + ys[-1:], where="post",
                    color=color, ls=ls, lw=1, alpha=0.7)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.tick_params(labelsize=7)


def plot(rows: list[dict], tasks: list[str], path: Path, x: str, xlabel: str,
         title: str) -> None:
    """One panel per task of ``rows``: accuracy against ``x`` (``adapter_params`` with the
    frontier drawn: black every method's, dotted blue peft's; or ``s_per_step``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.pyplot as plt

    cols = min(3, len(tasks))
    rows_n = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.5 * cols, 4.8 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        _panel(ax, [r for r in rows if r["task"] == task], x, task, x == "adapter_params")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("test accuracy % (mean ± std, 3 seeds)", fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles = [matplotlib.lines.Line2D([], [], color=c, marker="o" if g != "peft" else "s",
                                       ls="", label=g) for g, c in COLORS.items()
               if any(r["group"] == g and r.get("point") for r in rows)]
    if x == "adapter_params":
        handles += [matplotlib.lines.Line2D([], [], color="black", label="frontier (all)"),
                    matplotlib.lines.Line2D([], [], color="tab:blue", ls=":",
                                            label="frontier (peft)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
