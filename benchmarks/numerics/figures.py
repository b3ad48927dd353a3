"""The numerics benchmark's plot: the worst orthogonality error against the step."""
from __future__ import annotations

import os


def plot(rows: list[dict], runs, out) -> None:
    """One line per (parametrization, lr) of ``runs``, and the bound; ``out``/numerics.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for p, lr in runs:
        sel = [r for r in rows if r["parametrization"] == p and r["lr"] == lr]
        ax.semilogy([r["step"] for r in sel], [max(r["error"], 1e-17) for r in sel],
                    label=f"{p}, lr={lr:g}")
    ax.axhline(1e-5, color="k", ls="--", lw=1, label="bound 1e-5")
    ax.set_xlabel("AdamW step")
    ax.set_ylabel("max |B B^T - I| (float32 blocks)")
    ax.set_title("Orthogonality drift of Hamming blocks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "numerics.png"), dpi=120)
