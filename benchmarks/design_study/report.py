"""The design study's markdown: every row, the comparison at each cap, the default sweep."""
from __future__ import annotations

import math

from .compare import comparison
from .rows import CAPS, DEFAULT_SWEEP, _mean


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
