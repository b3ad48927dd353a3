"""The demo's printed table."""
from __future__ import annotations


def format_table(rows: list[dict]) -> str:
    header = ("method", "adapter params", "head params", "test acc", "val acc", "s/step")
    lines = [header]
    for r in rows:
        lines.append((r["method"], f"{r['adapter_params']:,d}", f"{r['head_params']:,d}",
                      f"{100 * r['test_accuracy']:.2f}%", f"{100 * r['val_accuracy']:.2f}%",
                      f"{r['seconds_per_step']:.3f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
