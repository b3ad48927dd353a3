"""The accuracy-vs-parameters figure every accuracy benchmark draws (trade-off, vision)."""
from __future__ import annotations

import math
from pathlib import Path


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Test accuracy vs trainable adapter parameters (log x), error bars = std over seeds.
    Head-only has no adapter parameters: it is drawn as a horizontal line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"peft": "tab:blue", "qiadapters": "tab:red", "full": "black",
              "physics": "tab:green", "mixture": "tab:purple", "bottleneck": "tab:orange"}
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for r in rows:
        y, err = 100 * r["test_acc_mean"], 100 * r["test_acc_std"]
        err = 0.0 if math.isnan(err) else err
        if r["adapter_params"] == 0:
            ax.axhline(y, color="gray", ls="--", lw=1)
            ax.text(1.02, y, f" {r['label']}", color="gray", va="bottom", fontsize=8,
                    transform=ax.get_yaxis_transform())
            continue
        color = colors.get(r["family"], "tab:orange")
        marker = "s" if r["family"] == "peft" else "o"
        ax.errorbar(r["adapter_params"], y, yerr=err, fmt=marker, color=color, capsize=3)
        # The short method name keeps neighbouring points readable; the table has the labels.
        ax.annotate(r["method"], (r["adapter_params"], y), textcoords="offset points",
                    xytext=(5, -3), fontsize=7, color=color)
    ref = next((r for r in rows if r["method"] == "lora-r8"), None)
    if ref is not None:
        # The paper's claim region: >= 40x fewer adapter parameters, >= 99% of LoRA r=8.
        x40, y99 = ref["adapter_params"] / 40, 99 * ref["test_acc_mean"]
        ax.axvline(x40, color="tab:red", ls=":", lw=1)
        ax.axhline(y99, color="tab:red", ls=":", lw=1)
        ax.text(0.01, 0.01, "dotted red: LoRA r=8's parameters / 40 and 99% of its accuracy "
                "(the paper's claim: a point left of and above both)",
                color="tab:red", fontsize=7, ha="left", va="bottom", transform=ax.transAxes)
    present = {r["family"] for r in rows if r["adapter_params"] > 0}
    handles = [matplotlib.lines.Line2D([], [], color=colors.get(f, "tab:orange"),
                                       marker="s" if f == "peft" else "o", ls="", label=f)
               for f in [*[f for f in colors if f in present], *sorted(present - set(colors))]]
    ax.legend(handles=handles, loc="lower right", fontsize=8, title="family",
              title_fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10))
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    xs = [r["adapter_params"] for r in rows if r["adapter_params"] > 0]
    narrow = bool(xs) and max(xs) < 10 * min(xs)  # no power of ten may fall inside: label more
    ax.xaxis.set_minor_formatter(matplotlib.ticker.EngFormatter(sep="") if narrow
                                 else matplotlib.ticker.NullFormatter())
    ax.set_xlabel("trainable adapter parameters (head excluded, log scale)")
    ax.set_ylabel("test accuracy % (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
