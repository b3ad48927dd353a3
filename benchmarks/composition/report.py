"""The composition benchmark's markdown table."""
from __future__ import annotations


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"all-MiniLM-L6-v2, WordNet noun glosses (26 classes) and verb glosses (15): "
             f"{meta['steps']} steps x batch {meta['batch']} per task, {meta['n_test']} test "
             f"examples per task, --threads {meta['threads']}.", "",
             "| library | adapter | nouns acc % | verbs acc % | mean |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['library']} | {r['adapter']} | {r['nouns']:.1f} | {r['verbs']:.1f} "
                     f"| {(r['nouns'] + r['verbs']) / 2:.1f} |")
    lines += ["", "One seed; each accuracy is over the task's first test examples (about ±2 points "
              "at 600).  Each task has its own rows of one head, trained with its adapter.  Run "
              "on a machine shared with other processes (CPU times in composition.json; the "
              "accuracies do not depend on it)."]
    return "\n".join(lines) + "\n"
