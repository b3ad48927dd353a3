"""The design study's budget comparison: the best row under a cap, chosen on validation, and
the verdict on test within the larger std."""
from __future__ import annotations

import math

from .rows import PEERS


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
