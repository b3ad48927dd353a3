"""Names every benchmark shares: where results go, which modules are adapted, the head.

One place for them, so that a method means the same thing in every benchmark.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Committed results (each benchmark's docstring gives the command that writes its files).
RESULTS = REPO_ROOT / "benchmarks" / "results"
#: Smoke runs (``--quick``) write here; ignored by git, never linked from the docs.
QUICK_RESULTS = RESULTS / "quick"

#: The modules every MiniLM benchmark adapts (a method's config may name others).
TARGETS = ["query", "value"]
#: The fresh classification head: trainable for every method, counted apart from the adapter.
HEAD = "classifier"


def results_dir(quick: bool) -> Path:
    """Where a run writes: :data:`QUICK_RESULTS` for ``--quick``, else :data:`RESULTS`."""
    return QUICK_RESULTS if quick else RESULTS
