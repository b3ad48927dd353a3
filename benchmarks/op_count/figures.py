"""The op-count benchmark's plot: the ops each method adds over head-only, by phase."""
from __future__ import annotations


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(r["targets"] for r in rows))
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        block = [r for r in rows if r["targets"] == target and r["method"] != "head"]
        names = [r["method"] for r in block]
        bottom = [0] * len(block)
        for phase in ("forward", "backward", "optimizer"):
            head = next(r[phase] for r in rows if r["method"] == "head")
            values = [r[phase] - head for r in block]
            ax.bar(names, values, bottom=bottom, label=phase)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylim(top=1.12 * max(r["added"] for r in block))
        for i, r in enumerate(block):
            ax.text(i, r["added"], str(r["added"]), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{target}: ATen ops added over head-only")
        ax.set_ylabel("ops per training step (≈ kernel launches)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
    fig.suptitle("MiniLM architecture, 1 x 32 tokens, AdamW foreach (fewer is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
