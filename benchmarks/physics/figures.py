"""The physics benchmark's plot: error against dt, and the step-time ratios."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(acc: dict, speed_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    styles = {"1d-32": "-", "2d-12x12": "--"}
    colors = {"euler": "C0", "crank_nicolson": "C1", "leapfrog": "C2"}
    orders = {(o["grid"], o["method"]): o["order"] for o in acc["orders"]}
    for (grid, method), order in orders.items():
        pts = [r for r in acc["convergence"] if r["grid"] == grid and r["method"] == method]
        ax.loglog([r["dt"] for r in pts], [r["error"] for r in pts], styles[grid], marker="o",
                  ms=3, color=colors[method], label=f"{method} {grid} (order {order:.2f})")
    ax.set_xlabel("time step dt")
    ax.set_ylabel("max |FD - exact spectral|")
    ax.set_title("Time steppers converge to the spectral solution (Neumann)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    labels = [f"{r['setting']}\n{r['layout'].split('-')[0]} {r['router']}" for r in speed_rows]
    xs = np.arange(len(speed_rows))
    for j, (key, label) in enumerate((("ratio", "median wall"), ("paired_ratio", "paired wall"),
                                      ("cpu_ratio", "median CPU time"))):
        ax.bar(xs + (j - 1) * 0.27, [r[key] for r in speed_rows], width=0.27, label=label)
    ax.axhline(1.15, color="k", ls="--", lw=1, label="target 1.15x")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(speed_rows)))
    ax.set_xticklabels(labels, fontsize=6, rotation=60)
    for tick, r in zip(ax.get_xticklabels(), speed_rows):
        tick.set_color("C3" if r["setting"] == "adapter-only" else "C0")
    ax.set_ylabel("step time: PhysicsAdapter / bottleneck")
    ax.set_title("Step-time ratio, alternating A/B steps")
    ax.set_xlabel("red: adapter-only stack; blue: adapters in 4 frozen ViT-S blocks", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
