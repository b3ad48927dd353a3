"""The circuits benchmark's plot: seconds against block size ``C(n, k)``, one panel per r."""
from __future__ import annotations

from pathlib import Path


def plot(rows, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = sorted({row["r"] for row in rows})
    fig, axes = plt.subplots(1, len(rs), figsize=(5 * len(rs), 4), sharey=True)
    for ax, r in zip(axes if len(rs) > 1 else [axes], rs):
        sub = sorted((row for row in rows if row["r"] == r), key=lambda row: row["block"])
        for key, style in [("ours_matrix_fb", "o-"), ("ours_kernel_fb", "D-"),
                           ("ours_angles_fb", "s-"), ("minors_fb", "^-"),
                           ("ours_matrix_fwd", "o--"), ("autograd_floor_fb", "k--"),
                           ("floor", "k:")]:
            if not all(row.get(key) for row in sub):
                continue
            ax.loglog([row["block"] for row in sub], [row[key] for row in sub], style, label=key)
        ax.set_title(f"r = {r} blocks")
        ax.set_xlabel("block size C(n, k)")
        ax.grid(True, which="both", alpha=0.3)
    (axes[0] if len(rs) > 1 else axes).set_ylabel("seconds (median)")
    (axes[0] if len(rs) > 1 else axes).legend(fontsize=8)
    fig.suptitle("Hamming blocks: ours vs minors-by-determinant (fwd+bwd unless 'fwd')")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
