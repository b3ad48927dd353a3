"""Combining two task adapters into one: Hamming ``add_weighted_adapter`` against peft LoRA's.

all-MiniLM-L6-v2, two WordNet tasks from the same package (``apt-get install -y
wordnet-base``): the trade-off benchmark's noun glosses (26 lexicographer classes) and verb
glosses (15 classes, ``/usr/share/wordnet/data.verb``).  One 41-way head: nouns are labels
0-25, verbs 26-40; each task's loss and argmax read its own slice, so each task trains its
own rows of the head and the two heads never interfere (the head is a plain trainable
module, not a ``modules_to_save`` copy: peft refuses to combine adapters that hold copies).

For each library: an adapter trained on nouns, one on verbs (same steps, batch, schedule;
the learning rates the trade-off benchmark chose for the method), then the combinations
(ours: ``"product"`` and ``"generator"``; peft LoRA r=8: ``"linear"`` and ``"cat"``), each
scored on both test sets.  The question: does one combined adapter keep both tasks?

    python -m benchmarks.composition --threads 1     # the committed files, ~7 CPU minutes
    python -m benchmarks.composition --quick         # smoke check, results/quick/
"""
from __future__ import annotations

import json
import math
import time

import torch

from ..common import cli
from ..common.data import load_minilm
from .combine import LR, run_hamming, run_lora
from .report import markdown
from .tasks import NOUN_CLASSES, VERB_CLASSES, load_tasks


def main(argv=None) -> int:
    parser = cli.quick_parser(__doc__, "5 steps, 300 test examples")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=600)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.n_test = 5, 300
    out = cli.start(args)
    _, tokenizer = load_minilm(num_labels=NOUN_CLASSES + VERB_CLASSES, seed=0)
    tasks = load_tasks(tokenizer, args.n_test)
    started = time.process_time()
    rows = run_hamming(tasks, args.steps, args.batch) + run_lora(tasks, args.steps, args.batch)
    meta = {"steps": args.steps, "batch": args.batch, "n_test": args.n_test, "threads": args.threads or torch.get_num_threads(),
            "cpu_seconds": round(time.process_time() - started, 1),
            "lr": LR, "shared_machine": True}
    (out / "composition.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "composition.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0 if all(math.isfinite(r["nouns"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
