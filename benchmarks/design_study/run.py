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

from pathlib import Path

from ..common.constants import RESULTS
from .compare import best_under, comparison  # noqa: F401
from .figures import plot
from .report import default_sweep, markdown  # noqa: F401
from .rows import (CAPS, COLOURS, DEFAULT_SWEEP, PEERS, TEXT_ROWS, VISION_ROWS,  # noqa: F401
                   text_rows, vision_rows)


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
