"""The mixed-batch benchmark's plot: rows per second, one mixed batch against four."""
from __future__ import annotations


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    libraries = list(dict.fromkeys(r["library"] for r in rows))
    sizes = list(dict.fromkeys(r["rows_per_adapter"] for r in rows))
    width = 0.8 / (2 * len(libraries))
    for j, lib in enumerate(libraries):
        for k, key in enumerate(("mixed", "separate")):
            values = [next(r[f"{key}_rows_per_s"] for r in rows
                           if r["library"] == lib and r["rows_per_adapter"] == s) for s in sizes]
            xs = [i + (2 * j + k - len(libraries) + 0.5) * width for i in range(len(sizes))]
            ax.bar(xs, values, width, label=f"{lib}: {'one mixed batch' if key == 'mixed' else '4 separate batches'}")
    ax.set_xticks(range(len(sizes)), [f"{s} rows/adapter" for s in sizes])
    ax.set_ylabel("rows per second (higher is better)")
    ax.set_title("4 adapters, MiniLM architecture, CPU (shared machine)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
