r"""Why a prior helps or not: the trained priors' frequency responses against the data's
spectrum, from the schedule sweep's run records.

Every run of a physics row records, per adapted layer
(:func:`benchmarks.vision.priors_log.prior_state`, on 64 validation images after training), each prior's response ``m_p(λ_m)`` on every grid
mode ``m`` (its eigenvalue on the mode: the heat prior multiplies the mode by
``exp(-κ t λ)``, the wave prior from rest by ``cos(c t √λ) + β sin(c t √λ)/(c √λ)``, the
screened Poisson prior by ``g / (λ + ε)``; ``λ_m`` the eigenvalue of ``-Δ`` on the Neumann
grid, ``λ_{ij} = 4 sin²(π i / 2H) + 4 sin²(π j / 2W)``, 0 to 8) and the mean power of the
adapter's input (the down-projected patch tokens) on each mode.  The figure draws, for the
row's run at the chosen lr of the longest schedule, every layer's and channel's response
against ``λ``, the initial response (dashed) and the input's power spectrum (share of the
power per mode, log scale, grey).  The passed energy of a prior,

.. math:: E_p = \frac{\sum_m P_m\, m_p(λ_m)^2}{\sum_m P_m},

(``P_m`` the input power on mode ``m``) says how much of what the adapter reads the prior lets
through; it is printed per prior and layer.

    python -m benchmarks.vision.spectra                      # rotation, 7x7, longest run
    python -m benchmarks.vision.spectra --task rotation --grid 14x14
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..common import cli
from .schedule import OUT, table
from .tables import load_all_runs

ROWS = ("vision-physics-heat-input", "vision-physics-moppa-input")
#: The responses at the adapter's initial constants (κ = c = t = 1, β = 0, g = ε = 0.1).
INITIAL = {"heat": lambda lam: np.exp(-lam), "wave": lambda lam: np.cos(np.sqrt(lam)),
           "poisson": lambda lam: 0.1 / (lam + 0.1)}


def passed_energy(power: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``E`` per channel: ``power, response: (modes, channels)`` -> ``(channels,)`` (module
    docstring)."""
    return (power * response ** 2).sum(0) / power.sum(0)


def pick(rows: list[dict], task: str, grid: tuple, method: str, steps: int | None):
    """The schedule table's row of ``method`` at ``steps`` (None: the longest recorded)."""
    mine = [r for r in rows if r["task"] == task and tuple(r["grid"]) == tuple(grid)
            and r["method"] == method and "priors" in r["run"]]
    if steps is not None:
        mine = [r for r in mine if r["steps"] == steps]
    return max(mine, key=lambda r: r["steps"]) if mine else None


def summary(row: dict) -> list[str]:
    """Lines: per prior and layer, the passed energy (mean over channels) and constants."""
    lines = []
    for layer, rec in row["run"]["priors"].items():
        power = np.array(rec["power"])
        for prior, resp in rec["response"].items():
            e = passed_energy(power, np.array(resp))
            consts = ", ".join(f"{k} {np.mean(v):.2f}" for k, v in rec["constants"][prior].items())
            lines.append(f"{row['method']} {row['steps']} steps {layer.split('.')[3]:>2} "
                         f"{prior:8s} passed energy {e.mean():.3f} "
                         f"(channels {' '.join(f'{x:.2f}' for x in e)}); {consts}")
    return lines


def figure(picked: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(row, prior) for row in picked for prior in
              next(iter(row["run"]["priors"].values()))["response"]]
    cols = min(2, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    cmap = plt.get_cmap("viridis")
    for ax, (row, prior) in zip(axes.flat, panels):
        layers = list(row["run"]["priors"].items())
        lam = np.array(layers[0][1]["lam"])
        order = np.argsort(lam, kind="stable")
        for i, (name, rec) in enumerate(layers):
            resp = np.array(rec["response"][prior])
            for ch in range(resp.shape[1]):
                ax.plot(lam[order], resp[order, ch], ".-", lw=0.7, ms=2, alpha=0.7,
                        color=cmap(i / max(1, len(layers) - 1)),
                        label=f"layer {name.split('.')[3]}" if ch == 0 else None)
        grid = np.linspace(0, lam.max(), 200)
        ax.plot(grid, INITIAL[prior](grid), "k--", lw=1.2, label="initial")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("λ of the grid mode (−Δ, Neumann)")
        ax.set_ylabel(f"{prior} response m(λ)")
        label = "heat alone" if "heat-input" in row["method"] else "MoPPA"
        ax.set_title(f"{label}: {prior} ({row['steps']} steps, lr {row['lr']:g})", fontsize=9)
        twin = ax.twinx()
        power = np.mean([np.array(rec["power"]).mean(1) for _, rec in layers], axis=0)
        share = power / power.sum()
        twin.scatter(lam, share, s=8, color="grey", alpha=0.6, label="input power share")
        twin.set_yscale("log")
        twin.set_ylabel("share of input power per mode", color="grey", fontsize=8)
        ax.legend(fontsize=6, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def low_mode_share(row: dict, below: float = 1.0) -> float:
    """The share of the input power (all layers and channels) on modes with ``λ < below``."""
    shares = []
    for rec in row["run"]["priors"].values():
        lam, power = np.array(rec["lam"]), np.array(rec["power"]).sum(1)
        shares.append(power[lam < below].sum() / power.sum())
    return float(np.mean(shares))


def parse_args(argv=None):
    p = cli.parser(__doc__, prog="python -m benchmarks.vision.spectra")
    p.add_argument("--task", default="rotation")
    p.add_argument("--grid", default="7x7", choices=["7x7", "14x14"])
    p.add_argument("--steps", type=int, default=None, help="default: the longest recorded")
    p.add_argument("--results", type=Path, default=OUT)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    grid = tuple(int(x) for x in args.grid.split("x"))
    rows = table(load_all_runs(args.results))
    picked = [r for r in (pick(rows, args.task, grid, m, args.steps) for m in ROWS) if r]
    if not picked:
        print(f"no physics run of {args.task} on the {args.grid} grid in {args.results}",
              file=sys.stderr)
        return 1
    path = args.results / f"spectra_{args.task}_{args.grid}.png"
    figure(picked, path, f"{args.task}, {args.grid} grid: trained responses per layer and "
           f"channel\nagainst the adapter input's power spectrum (grey, right axis)")
    lines = [line for row in picked for line in summary(row)]
    lines += [f"{r['method']} {r['steps']} steps: input power share on modes with λ < 1: "
              f"{100 * low_mode_share(r):.1f}% (mean over layers)" for r in picked]
    (args.results / f"spectra_{args.task}_{args.grid}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
