"""The composition benchmark's two tasks: WordNet noun glosses (26 classes) and verb
glosses (15), as slices of one 41-way head (:mod:`benchmarks.composition.run` says more)."""
from __future__ import annotations

from pathlib import Path

from ..common.data import (WORDNET_NOUN_PATH, load_wordnet_splits, stratified_split,
                           tokenize)

VERB_PATH = WORDNET_NOUN_PATH.with_name("data.verb")
FIRST_VERB_FILE, VERB_CLASSES, NOUN_CLASSES = 29, 15, 26
TASKS = {"nouns": (0, NOUN_CLASSES), "verbs": (NOUN_CLASSES, NOUN_CLASSES + VERB_CLASSES)}


def read_verb_glosses(path: Path = VERB_PATH) -> tuple[list[str], list[int]]:
    """Verb glosses and their lexicographer class (files 29-43 -> 0-14)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: apt-get install -y wordnet-base")
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:
                continue
            head, _, gloss = line.partition(" | ")
            texts.append(gloss.strip())
            labels.append(int(head.split()[1]) - FIRST_VERB_FILE)
    return texts, labels


def load_tasks(tokenizer, n_test: int) -> dict[str, dict]:
    """``{task: {"train": tensors, "test": tensors}}``, labels already offset into the head:
    the trade-off benchmark's split (8,000 / 2,000 / 2,000, seed 0) of each task, the first
    ``n_test`` test examples (the test split is shuffled)."""
    nouns = load_wordnet_splits(0, 8000, 2000, 2000)
    verbs = stratified_split(*read_verb_glosses(), 8000, 2000, 2000, seed=0)
    out = {}
    for task, splits in (("nouns", nouns), ("verbs", verbs)):
        lo = TASKS[task][0]
        out[task] = {}
        for s, n in (("train", None), ("test", n_test)):
            texts, labels = splits[s].texts[:n], splits[s].labels[:n]
            out[task][s] = tokenize(texts, [lo + y for y in labels], tokenizer)
    return out
