"""The design study: Hamming variants against peft's tiny-budget methods at equal budget.

Reads what the trade-off (text) and vision benchmarks recorded (their ``*_runs*.jsonl``;
nothing is trained here) and writes, beside them:

* ``design_study.md``: per benchmark, every study row (parameters, test accuracy mean ± std
  over the seeds at the lr chosen on validation, that validation accuracy; for text the
  forgetting probe), then the budget comparison: at each budget cap, the best Hamming row
  with at most that many adapter parameters against the best RoAd / FourierFT row within
  the same cap, both chosen by VALIDATION accuracy, the verdict on test (mean ± std);
* ``design_study_text.png``, ``design_study_vision.png``: accuracy against adapter
  parameters (log x), one colour per family, the frontier (the best accuracy at or below
  each budget, over every method drawn) as a step line.

"Chosen by validation" matters: the best row under a cap is the one with the highest
validation accuracy at its own chosen lr, so the test column is never used to pick.

    python -m benchmarks.design_study          # rebuild the files from the recorded runs
"""
from __future__ import annotations

import math
from pathlib import Path

from ..common import registry
from ..common.constants import RESULTS
from ..common.summary import summarize
from ..tradeoff.methods import METHODS as TEXT_METHODS
from ..common.sweep import MAX_EXTEND, load_runs
from ..vision.methods import METHODS as VISION_METHODS
from ..vision.tables import load_all_runs, over_tasks, per_task

#: The peers the study must meet (peft's methods built for tiny budgets that it names).
PEERS = ("road", "fourierft")
#: Every family drawn, in legend order, with its colour.
COLOURS = {"hamming": "tab:red", "road": "tab:blue", "fourierft": "tab:cyan",
           "vera": "tab:olive", "ia3": "tab:purple", "lora": "tab:gray", "oft": "tab:brown",
           "boft": "tab:pink"}
#: Budget caps (adapter parameters) per benchmark: three between 1k and 10k.
CAPS = {"text": (1_600, 4_700, 10_000), "vision": (1_600, 3_100, 10_000)}
#: The text rows drawn and tabulated (the study's, its references, and the peers).
TEXT_ROWS = ("hamming-123-b3", "hamming-123-b8", "hamming-123-bs32", "hamming-12-bs32",
             "hamming-12-b3", "hamming-12-b8", "hamming-12-bs64", "hamming-12-b3-input-side",
             "hamming-12-bs32-value-scale", "hamming-123-bs32-scale", "hamming-12-bs32-scale",
             "hamming-123-bs32-all-linear", "hamming-12-bs32-angle-lr",
             "hamming-12-bs32-scale-angle-lr", "hamming-12-bs32-value-scale-angle-lr", "road-1", "road-1-adapter-lr", "road-2",
             "fourierft-n100",
             "fourierft-n300", "ia3", "vera-r256", "lora-r1", "lora-r2", "oft", "boft",
             "hamming-12-bs16", "hamming-123-bs16", "hamming-123-bs64")
#: The default layout's sweep: (orders, block size) -> the text registry name (the vision
#: suite's is ``"vision-" + name``).
DEFAULT_SWEEP = {(orders, size): f"hamming-{''.join(map(str, orders))}-bs{size}"
                 for orders in ((1, 2), (1, 2, 3)) for size in (16, 32, 64)}
VISION_ROWS = tuple(name for name in VISION_METHODS
                    if registry.get(name).family in COLOURS)


def _family(name: str) -> str:
    return registry.get(name).family


def text_rows(folder: Path = RESULTS, seeds=(0, 1, 2)) -> list[dict]:
    """The trade-off rows of :data:`TEXT_ROWS`, with the forgetting probe of the chosen lr's
    runs: recorded with them, or for rows trained before the probe existed, by a rerun of
    the chosen lr into ``forgetting/`` (``python -m benchmarks.tradeoff --methods NAME --lrs
    LR --extend 0 --seeds 0 1 --results benchmarks/results/forgetting``)."""
    runs = load_runs(folder / "tradeoff_runs.jsonl")
    probed = runs + load_runs(folder / "forgetting" / "tradeoff_runs.jsonl")
    methods = [TEXT_METHODS[n] for n in TEXT_ROWS if n in TEXT_METHODS]
    rows = summarize(runs, methods, seeds, 100, 32, extend=MAX_EXTEND)
    for row in rows:
        chosen = [r for r in probed if r["method"] == row["method"]
                  and r["lr"] == row["chosen_lr"] and r["steps"] == 100
                  and "probe_recall1" in r]
        row["probe_recall1"] = _mean([r["probe_recall1"] for r in chosen])
        row["probe_base_recall1"] = _mean([r["probe_base_recall1"] for r in chosen])
        row["probe_drift"] = _mean([r["probe_drift"] for r in chosen])
        row["family_name"] = _family(row["method"])
    return rows


def vision_rows(folder: Path = RESULTS, seeds=(0, 1, 2)) -> list[dict]:
    from ..vision.run import BATCH_SIZE, STEPS
    from ..vision.data import TASKS
    methods = [VISION_METHODS[n] for n in VISION_ROWS]
    table = per_task(load_all_runs(folder), list(TASKS), methods, seeds, STEPS, BATCH_SIZE,
                     MAX_EXTEND)
    rows = over_tasks(table, methods, seeds)
    for row in rows:  # the validation accuracy over tasks, at each task's chosen lr
        row["val_acc_at_lr"] = _mean([t[row["method"]]["val_acc_at_lr"]
                                      for t in table.values()])
        row["family_name"] = _family(row["method"])
    return rows


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else math.nan


def best_under(rows: list[dict], cap: int, families) -> dict | None:
    """The row of ``families`` with at most ``cap`` adapter parameters and the highest
    validation accuracy (None if there is none)."""
    fits = [r for r in rows if r["family_name"] in families and 0 < r["adapter_params"] <= cap]
    return max(fits, key=lambda r: r["val_acc_at_lr"], default=None)


def comparison(rows: list[dict], caps) -> list[dict]:
    """Per cap: the best Hamming and the best peer row, and whether Hamming is at or above
    the peer within one std (the larger of the two stds)."""
    out = []
    for cap in caps:
        ours, peer = best_under(rows, cap, ("hamming",)), best_under(rows, cap, PEERS)
        verdict = "-"
        if ours is not None and peer is not None:
            gap = ours["test_acc_mean"] - peer["test_acc_mean"]
            std = max(_std(ours), _std(peer))
            verdict = "above" if gap >= 0 else "within 1 std" if -gap <= std else "below"
            verdict += f" ({100 * gap:+.1f} points, std {100 * std:.1f})"
        out.append({"cap": cap, "ours": ours, "peer": peer, "verdict": verdict})
    return out


def _std(row: dict) -> float:
    return 0.0 if math.isnan(row["test_acc_std"]) else row["test_acc_std"]


def _name(row: dict | None) -> str:
    return "-" if row is None else f"{row['method']} ({row['adapter_params']:,})"


def _acc(row: dict | None) -> str:
    if row is None:
        return "-"
    std = "" if math.isnan(row["test_acc_std"]) else f" ± {100 * row['test_acc_std']:.1f}"
    return f"{100 * row['test_acc_mean']:.1f}{std}"


def markdown(text: list[dict], vision: list[dict]) -> str:
    lines = ["# Design study: Hamming against peft's tiny-budget methods", "",
             "Written by `python -m benchmarks.design_study` from the recorded runs of "
             "`benchmarks.tradeoff` (MiniLM, WordNet nouns, 100 steps) and `benchmarks.vision` "
             "(ViT, 5 tasks, 60 steps). Test accuracy % (mean ± std over seeds) at the lr "
             "chosen on validation; `val` is that validation accuracy.", ""]
    for title, rows, caps in (("Text (MiniLM query/value unless named)", text, CAPS["text"]),
                              ("Vision (mean over 5 tasks)", vision, CAPS["vision"])):
        probe = title.startswith("Text")
        lines += [f"## {title}", "",
                  "| method | family | params | test | val | seeds |"
                  + (" probe R@1 | drift |" if probe else ""),
                  "|---|---|---:|---:|---:|---:|" + ("---:|---:|" if probe else "")]
        for r in sorted(rows, key=lambda r: r["adapter_params"]):
            extra = ""
            if probe:
                rec, drift = r.get("probe_recall1", math.nan), r.get("probe_drift", math.nan)
                extra = (f" {'-' if math.isnan(rec) else f'{100 * rec:.1f}'} |"
                         f" {'-' if math.isnan(drift) else f'{drift:.3f}'} |")
            lines.append(f"| {r['method']} | {r['family_name']} | {r['adapter_params']:,} | "
                         f"{_acc(r)} | {100 * r['val_acc_at_lr']:.1f} | {r['n_seeds']} |"
                         + extra)
        if probe:
            base = _mean([r.get("probe_base_recall1") for r in rows
                          if not math.isnan(r.get("probe_base_recall1", math.nan))])
            scores = "" if math.isnan(base) else f"; the pretrained encoder scores {100 * base:.1f}"
            lines += ["", f"Probe: recall@1 of held-out WordNet verb examples -> definitions "
                      f"(1,000 pairs) with the fine-tuned encoder{scores}. Drift: 1 - mean "
                      f"cosine to the pretrained embeddings. `-`: runs recorded before the "
                      f"probe existed."]
        lines += ["", "At equal budget (best row under the cap, chosen on validation):", "",
                  "| cap | best Hamming | test | best RoAd / FourierFT | test | Hamming is |",
                  "|---:|---|---:|---|---:|---|"]
        for c in comparison(rows, caps):
            o, p = c["ours"], c["peer"]
            lines.append(f"| {c['cap']:,} | {_name(o)} | {_acc(o)} | {_name(p)} | {_acc(p)} | "
                         f"{c['verdict']} |")
        lines.append("")
    return "\n".join(lines + default_sweep(text, vision))


def default_sweep(text: list[dict], vision: list[dict]) -> list[str]:
    """The default layout's sweep as a markdown table: per (orders, block size), parameters
    and accuracies on both benchmarks, and the gap of its VALIDATION accuracy to the best
    layout's there (the choice uses only these; test is shown, never used)."""
    by = {r["method"]: r for r in text + vision}
    found = {key: (by.get(name), by.get(f"vision-{name}")) for key, name in DEFAULT_SWEEP.items()}
    found = {k: v for k, v in found.items() if None not in v}
    if not found:
        return []
    best = [max(v[i]["val_acc_at_lr"] for v in found.values()) for i in (0, 1)]
    lines = ["## The default layout's sweep", "",
             "Blocks of 16 / 32 / 64 features x orders {1,2} / {1,2,3} (Cayley, output side, "
             "query/value), chosen on validation: `val gap` is the layout's validation "
             "accuracy minus the best layout's on that benchmark.", "",
             "| orders | block | params text / vision | text val | val gap | text test | "
             "vision val | val gap | vision test |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (orders, size), (t, v) in sorted(found.items()):
        gaps = [100 * (r["val_acc_at_lr"] - b) for r, b in zip((t, v), best)]
        lines.append(f"| {{{','.join(map(str, orders))}}} | {size} | {t['adapter_params']:,} / "
                     f"{v['adapter_params']:,} | {100 * t['val_acc_at_lr']:.1f} | "
                     f"{gaps[0]:+.1f} | {_acc(t)} | {100 * v['val_acc_at_lr']:.1f} | "
                     f"{gaps[1]:+.1f} | {_acc(v)} |")
    return lines + [""]


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


def main(folder: Path = RESULTS) -> int:
    text, vision = text_rows(folder), vision_rows(folder)
    (folder / "design_study.md").write_text(markdown(text, vision))
    plot(text, folder / "design_study_text.png",
         "MiniLM on WordNet nouns (100 steps): Hamming variants and peft's tiny-budget methods")
    plot(vision, folder / "design_study_vision.png",
         "ViT, 5 vision tasks (60 steps): Hamming variants and peft's tiny-budget methods")
    print((folder / "design_study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
