"""Draw the figures of the documentation into docs/images/ (PNG, committed).

    .venv/bin/python docs/figures.py            # all figures, a few seconds

* ``circuits.png``: the pyramid and butterfly layouts on 8 qubits (``Circuit.pyramid(8)``,
  ``Circuit.butterfly(8)``), one box pair per gate, gates of one layer in one column
  (docs/circuits.md).
* ``compound.png``: a random orthogonal 6x6 ``Q`` and its weight-2 block ``compound(Q, 2)``
  (15 x 15) with the Hamming basis labels (docs/conventions.md, docs/hamming_adapter.md).
* ``physics_priors.png``: an 8x8 digit from scikit-learn's ``load_digits`` as a one-channel
  token grid, through ``physics.solvers.heat``, ``wave`` and ``poisson`` (docs/physics.md).

matplotlib and scikit-learn come with the ``test`` / ``bench`` extras.  Random inputs are
seeded: rerunning gives the same pictures.
"""
from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "images"

from qiadapters import Circuit, compound, hamming_basis  # noqa: E402
from physics import solvers  # noqa: E402


def _columns(layer):
    """Split one layer's gates into sub-columns whose wire spans do not overlap on paper."""
    columns: list[list] = []
    for gate in sorted(layer, key=lambda g: min(g.wires)):
        lo, hi = sorted(gate.wires)
        for col in columns:
            if all(hi < min(g.wires) or lo > max(g.wires) for g in col):
                col.append(gate)
                break
        else:
            columns.append([gate])
    return columns


def draw_circuit(ax, circuit: Circuit, title: str) -> None:
    n, x = circuit.n_qubits, 0.0
    placed = []
    for layer in circuit.layers:
        for col in _columns(layer):
            placed += [(x, g) for g in col]
            x += 1.0
        x += 0.4
    for q in range(n):
        ax.plot([-0.8, x - 0.6], [q, q], color="0.3", lw=1, zorder=0)
        ax.text(-1.0, q, f"q{q}", ha="right", va="center", fontsize=8)
    colors = {"RBS": "#4c72b0", "FBS": "#dd8452"}
    for gx, g in placed:
        i, j = g.wires
        ax.plot([gx, gx], [i, j], color="k", lw=1, zorder=1)
        for w in (i, j):
            ax.add_patch(plt.Rectangle((gx - 0.3, w - 0.3), 0.6, 0.6, zorder=2,
                                       facecolor=colors.get(type(g).__name__, "0.6"),
                                       edgecolor="k", lw=0.7))
        ax.text(gx, (i + j) / 2 if abs(i - j) > 1 else i - 0.45, f"θ{g.param}", fontsize=6,
                ha="center", va="center", zorder=3,
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"))
    ax.set_xlim(-1.6, x)
    ax.set_ylim(n - 0.4, -0.8)
    ax.set_axis_off()
    ax.set_title(f"{title}: {len(circuit.gates)} {'/'.join(sorted(circuit.gate_kinds)).upper()} "
                 f"gates, depth {circuit.depth}", fontsize=9)


def circuits_figure(path):
    pyr, bfly = Circuit.pyramid(8), Circuit.butterfly(8)
    fig, axes = plt.subplots(2, 1, figsize=(8, 6.2), gridspec_kw={"height_ratios": [1, 1]})
    draw_circuit(axes[0], pyr, "Circuit.pyramid(8)")
    draw_circuit(axes[1], bfly, "Circuit.butterfly(8)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def compound_figure(path, n: int = 6):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    Q = torch.linalg.matrix_exp(A - A.T)                      # a random orthogonal matrix
    B = compound(Q[None], 2)[0]
    labels1 = [f"{{{i}}}" for i in range(n)]
    labels2 = ["{" + ",".join(map(str, s)) + "}" for s in hamming_basis(n, 2)]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.6), gridspec_kw={"width_ratios": [n, len(labels2)]})
    for ax, M, labels, title in ((axes[0], Q, labels1, f"weight 1: Q ({n} x {n})"),
                                 (axes[1], B, labels2, f"weight 2: compound(Q, 2) ({len(labels2)} x {len(labels2)})")):
        im = ax.imshow(M.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.7)
    fig.suptitle("entry (S, T) of the weight-2 block = det Q[S, T]  (Hamming basis, lexicographic)",
                 fontsize=9)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def physics_figure(path):
    from sklearn.datasets import load_digits

    img = torch.tensor(load_digits().images[0], dtype=torch.float64) / 16.0  # an 8x8 "0"
    u0 = img[None, :, :, None]                                   # (batch, H, W, channels)
    panels = [("input (8x8 grid)", u0)]
    for t in (0.5, 2.0):
        panels.append((f"heat, κt = {t}", solvers.heat(u0, 1.0, t)))
    for t in (1.0, 2.5):
        panels.append((f"wave, ct = {t}, v0 = 0", solvers.wave(u0, torch.zeros_like(u0), 1.0, t)))
    panels.append(("Poisson -Δu = f (zero mean)", solvers.poisson(u0)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.6))
    for ax, (title, u) in zip(axes, panels):
        u = u[0, :, :, 0].numpy()
        lim = abs(u).max()
        ax.imshow(u, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([]); ax.set_yticks([])
    fig.suptitle("the physics priors on one channel of a token grid (Neumann boundary; colour "
                 "scale per panel)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


FIGURES = {"circuits.png": circuits_figure, "compound.png": compound_figure,
           "physics_priors.png": physics_figure}


def main(out: pathlib.Path = OUT) -> list[pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in FIGURES.items():
        make(out / name)
        paths.append(out / name)
    return paths


if __name__ == "__main__":
    for p in main():
        print(p.relative_to(ROOT), f"{p.stat().st_size // 1024} KiB")
