"""The design study's plot: accuracy against adapter parameters per family, with the frontier."""
from __future__ import annotations

import math
from pathlib import Path

from .compare import _std
from .rows import COLOURS


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy against adapter parameters (log x) per family, with the frontier."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["adapter_params"] > 0]
    fig, ax = plt.subplots(figsize=(9, 6))
    for family, colour in COLOURS.items():
        mine = [r for r in rows if r["family_name"] == family]
        if not mine:
            continue
        ax.errorbar([r["adapter_params"] for r in mine],
                    [100 * r["test_acc_mean"] for r in mine],
                    yerr=[100 * _std(r) for r in mine], fmt="o" if family == "hamming" else "s",
                    color=colour, capsize=3, label=family)
        for r in mine:
            ax.annotate(r["method"].replace("vision-", ""),
                        (r["adapter_params"], 100 * r["test_acc_mean"]),
                        textcoords="offset points", xytext=(4, -3), fontsize=6, color=colour)
    frontier, best = [], -math.inf
    for r in sorted(rows, key=lambda r: r["adapter_params"]):
        if r["test_acc_mean"] > best:
            best = r["test_acc_mean"]
            frontier.append((r["adapter_params"], 100 * best))
    if frontier:
        xs, ys = zip(*frontier)
        ax.step(xs, ys, where="post", color="black", lw=0.8, alpha=0.5, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("trainable adapter parameters (head excluded, log scale)")
    ax.set_ylabel("test accuracy %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
