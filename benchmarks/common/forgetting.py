"""What fine-tuning costs the encoder: a sentence-similarity probe on held-out WordNet verbs.

The trade-off benchmark fine-tunes all-MiniLM-L6-v2 on noun glosses. This probe asks how much
of the pretrained encoder's own skill, sentence similarity, survives, on text the task never
saw: WordNet **verb** synsets (``/usr/share/wordnet/data.verb``, same ``wordnet-base`` package).

Protocol
--------
* Data: every verb synset whose gloss has a definition part and at least one quoted example
  (``draw in (air); "Inhale deeply"`` -> definition ``draw in (air)``, example
  ``Inhale deeply``, :func:`split_gloss`); a synset repeating an earlier definition or
  example is dropped, so every query has one right answer. ``N`` of them (1,000; 200 in
  ``--quick``) are taken in the order of ``sha256(f"{seed}:{offset}")`` (:func:`sample_pairs`):
  the same on every machine and Python version, and the ``N = 200`` sample is a prefix of
  the ``N = 1000`` one.
* Embedding (the sentence-transformers recipe of all-MiniLM-L6-v2): the encoder's last hidden
  state ``h: (B, T, 384)``, mean over the real tokens, L2-normalised,

      e = normalize( sum_t m_t h_t / max(sum_t m_t, 1e-9) ),   m = attention mask,

  inputs truncated at 64 tokens (sentence-transformers allows 256; no probe text comes
  close: the longest has 48). The model is called as the benchmark has it after training (a
  peft ``PeftModel``, a qiadapters ``AdapterModel`` or the plain Hugging Face model), adapters
  active, in eval mode under ``no_grad``, with ``output_hidden_states=True``; its last hidden
  state is the last hidden state of the BERT encoder inside (:func:`encoder_of`). Calling
  the outer model rather than the encoder keeps the forward hooks that qiadapters puts on it
  (they publish the attention mask that token-mixing adapters read); the classification
  head runs but is ignored.
* Metrics, with ``x_i`` the example and ``d_i`` the definition of synset ``i``:

      rank_i = 1 + #{ j : cos(x_i, d_j) > cos(x_i, d_i) }     (ties count in the query's favour)
      probe_recall1 = mean_i [rank_i = 1],   probe_mrr = mean_i 1 / rank_i
      probe_drift = 1 - mean_k cos(e_k, e0_k) = mean_k |e_k - e0_k|^2 / 2

  where ``k`` runs over the ``2N`` texts and ``e0`` are the embeddings of the untouched
  pretrained encoder (computed once per process, :func:`base_probe`), whose own recall@1 /
  MRR are ``probe_base_recall1`` / ``probe_base_mrr``. The squared-distance form equals
  ``1 - cos`` for unit vectors and is exactly 0 when nothing changed.

>>> probe(model)                                                    # doctest: +SKIP
{'probe_recall1': 0.6, 'probe_mrr': 0.7, 'probe_base_recall1': 0.62, ...}
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import data

WORDNET_VERB_PATH = Path("/usr/share/wordnet/data.verb")
#: Synsets probed by the benchmark, and by ``--quick``.
PROBE_N = 1000
QUICK_PROBE_N = 200
PROBE_SEED = 0
#: Token limit of the probe's inputs.
PROBE_MAX_LENGTH = 64
PROBE_BATCH = 128

_EXAMPLE = re.compile(r'"([^"]*)"')


@dataclass(frozen=True)
class ProbePair:
    """One verb synset: its offset in ``data.verb``, definition and first example."""
    offset: str
    definition: str
    example: str


def split_gloss(gloss: str) -> Optional[tuple[str, str]]:
    """``(definition, first example)`` of a WordNet gloss, or None when it lacks either.

    The definition is the text before the first double quote, without the separators that
    end it (``;``, ``:``, ``,``, spaces); the first example is the text between that quote and
    the next one. An unclosed first quote means no example.
    """
    match = _EXAMPLE.search(gloss)
    if match is None:
        return None
    definition = gloss[:match.start()].rstrip(" ;:,")
    example = match.group(1).strip()
    if not definition or not example:
        return None
    return definition, example


def parse_data_verb(lines) -> list[ProbePair]:
    """The probe pairs of the lines of a WordNet ``data.verb`` file, in file order.

    License header lines (two leading spaces) and blank lines are skipped; a synset line's
    gloss is the text after the first `` | ``. Synsets without a definition or an example, and
    those repeating an earlier pair's definition or example, are left out.
    """
    pairs: list[ProbePair] = []
    seen_definitions: set[str] = set()
    seen_examples: set[str] = set()
    for lineno, line in enumerate(lines, start=1):
        if line.startswith("  ") or not line.strip():
            continue
        head, sep, gloss = line.partition(" | ")
        fields = head.split()
        if not sep or len(fields) < 3 or fields[2] != "v":
            raise ValueError(f"data.verb line {lineno}: not a verb synset line: {line[:80]!r}")
        split = split_gloss(gloss.strip())
        if split is None:
            continue
        definition, example = split
        if definition in seen_definitions or example in seen_examples:
            continue
        seen_definitions.add(definition)
        seen_examples.add(example)
        pairs.append(ProbePair(fields[0], definition, example))
    return pairs


def ensure_wordnet_verbs(install: bool = True, path: str | os.PathLike | None = None) -> Path:
    """The path of ``data.verb``; at the default location a missing file is installed as
    :func:`benchmarks.common.data.ensure_wordnet` does (``wordnet-base`` ships both files).
    Raises :class:`~benchmarks.common.data.WordNetMissingError` naming the command to run."""
    target = Path(path) if path is not None else WORDNET_VERB_PATH
    if target.is_file():
        return target
    if target == WORDNET_VERB_PATH:
        try:
            data.ensure_wordnet(install=install)
        except data.WordNetMissingError:
            pass
        if target.is_file():
            return target
    raise data.WordNetMissingError(
        f"WordNet verb glosses not found at {target}. Install them with "
        f"`{data.INSTALL_HINT}` (Debian/Ubuntu, as root), or pass the path of a data.verb file.")


def sample_pairs(pairs: list[ProbePair], n: int, seed: int = PROBE_SEED) -> list[ProbePair]:
    """The first ``n`` pairs in the order of ``sha256(f"{seed}:{offset}")``."""
    if not 1 <= n <= len(pairs):
        raise ValueError(f"n={n}: the probe needs 1 <= n <= {len(pairs)} (the eligible synsets)")

    def key(pair: ProbePair) -> str:
        return hashlib.sha256(f"{seed}:{pair.offset}".encode()).hexdigest()

    return sorted(pairs, key=key)[:n]


@functools.lru_cache(maxsize=None)
def load_probe_pairs(n: int = PROBE_N, seed: int = PROBE_SEED,
                     path: str | None = None) -> tuple[ProbePair, ...]:
    """The probe's ``n`` synsets (cached per process). Raises WordNetMissingError."""
    target = ensure_wordnet_verbs(install=False, path=path)
    with open(target, encoding="utf-8") as f:
        return tuple(sample_pairs(parse_data_verb(f), n, seed))


# ------------------------------------------------------------------------------ embedding

def encoder_of(model: nn.Module) -> nn.Module:
    """The BERT encoder inside ``model``: the first module with ``.embeddings`` and
    ``.encoder`` (a Hugging Face ``BertModel``), under any adapter wrapper."""
    for module in model.modules():
        if hasattr(module, "embeddings") and hasattr(module, "encoder"):
            return module
    raise TypeError(f"model={type(model).__name__}: no module with .embeddings and .encoder "
                    f"(a BERT encoder) inside it")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``normalize(sum_t m_t h_t / max(sum_t m_t, 1e-9))``: ``hidden: (B, T, H)``,
    ``mask: (B, T)`` -> ``(B, H)`` unit vectors."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


@functools.lru_cache(maxsize=None)
def _tokenizer():
    return data.load_minilm_tokenizer()


_BATCHES: dict[tuple, list[tuple[torch.Tensor, dict[str, torch.Tensor]]]] = {}


def _batches(texts: tuple[str, ...], tokenizer, max_length: int, batch_size: int):
    """``(positions, inputs)`` per batch, texts sorted by length so that padding is short
    (cached per process: every probe of a run embeds the same texts)."""
    key = (getattr(tokenizer, "name_or_path", type(tokenizer).__name__), max_length,
           batch_size, texts)
    if key not in _BATCHES:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        order = sorted(range(len(texts)), key=lambda i: -len(enc["input_ids"][i]))
        batches = []
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            rows = [{k: enc[k][i] for k in enc.keys()} for i in index]
            batches.append((torch.tensor(index), dict(tokenizer.pad(rows, return_tensors="pt"))))
        _BATCHES[key] = batches
    return _BATCHES[key]


def embed(model: nn.Module, texts, tokenizer=None, max_length: int = PROBE_MAX_LENGTH,
          batch_size: int = PROBE_BATCH) -> torch.Tensor:
    """``(len(texts), H)`` float32 unit embeddings on the CPU (module docstring); the model's
    train / eval mode is restored afterwards."""
    encoder_of(model)  # a clear error for a model without a BERT encoder
    tokenizer = tokenizer if tokenizer is not None else _tokenizer()
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    out = None
    try:
        with torch.no_grad():
            for index, inputs in _batches(tuple(texts), tokenizer, max_length, batch_size):
                inputs = {k: v.to(param.device) for k, v in inputs.items()}
                result = model(**inputs, output_hidden_states=True)
                hidden = getattr(result, "last_hidden_state", None)
                if hidden is None:
                    hidden = result.hidden_states[-1]
                pooled = mean_pool(hidden.float(), inputs["attention_mask"]).cpu()
                if out is None:
                    out = torch.empty(len(texts), pooled.shape[1])
                out[index] = pooled
    finally:
        model.train(was_training)
    return out


# -------------------------------------------------------------------------------- metrics

def retrieval(queries: torch.Tensor, keys: torch.Tensor) -> tuple[float, float]:
    """``(recall@1, MRR)`` of query ``i`` retrieving key ``i`` among all keys by cosine
    (unit vectors: the dot product), ties counted in the query's favour."""
    sims = queries @ keys.T
    correct = sims.diagonal().unsqueeze(1)
    rank = 1 + (sims > correct).sum(1)
    return (rank == 1).double().mean().item(), (1.0 / rank.double()).mean().item()


def drift(emb: torch.Tensor, base: torch.Tensor) -> float:
    """``1 - mean_k cos(emb_k, base_k)`` of unit vectors, as ``mean_k |emb_k - base_k|^2 / 2``
    (exactly 0 when nothing moved)."""
    return 0.5 * (emb.double() - base.double()).pow(2).sum(1).mean().item()


def probe_texts(pairs) -> tuple[str, ...]:
    """The probe's texts of ``pairs``: every definition, then every example (the order the
    retrieval scores and the drift read them in)."""
    return tuple(p.definition for p in pairs) + tuple(p.example for p in pairs)


def _scores(emb: torch.Tensor, n: int) -> tuple[float, float]:
    definitions, examples = emb[:n], emb[n:]
    return retrieval(examples, definitions)


def load_base_encoder() -> nn.Module:
    """The pretrained all-MiniLM-L6-v2 encoder (``BertModel``), loaded offline, without
    touching the global random state."""
    data._offline()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            return AutoModel.from_pretrained(str(data.minilm_path()))
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_enabled:
            hf_logging.enable_progress_bar()


_BASE: dict[tuple, tuple[torch.Tensor, float, float]] = {}


def base_probe(n: int = PROBE_N, seed: int = PROBE_SEED, device: str | torch.device = "cpu",
               base_model: Optional[nn.Module] = None) -> tuple[torch.Tensor, float, float]:
    """``(embeddings (2N, H), recall@1, MRR)`` of the pretrained encoder (``base_model`` or
    :func:`load_base_encoder`), cached per process by ``(n, seed, device)``."""
    key = (n, seed, str(torch.device(device)))
    if key not in _BASE:
        model = base_model if base_model is not None else load_base_encoder()
        model = model.to(device)
        emb = embed(model, probe_texts(load_probe_pairs(n, seed)))
        _BASE[key] = (emb, *_scores(emb, n))
    return _BASE[key]


def probe(model: nn.Module, n: int = PROBE_N, seed: int = PROBE_SEED) -> dict:
    """The probe of ``model`` against the pretrained encoder (module docstring): floats
    ``probe_recall1``, ``probe_mrr``, ``probe_base_recall1``, ``probe_base_mrr``,
    ``probe_drift``, ``probe_seconds`` (wall time of this call, the base's first computation
    included) and the int ``probe_n``."""
    t0 = time.perf_counter()
    pairs = load_probe_pairs(n, seed)
    device = next(model.parameters()).device
    base_emb, base_recall1, base_mrr = base_probe(n, seed, device)
    emb = embed(model, probe_texts(pairs))
    recall1, mrr = _scores(emb, n)
    return {"probe_recall1": recall1, "probe_mrr": mrr,
            "probe_base_recall1": base_recall1, "probe_base_mrr": base_mrr,
            "probe_drift": drift(emb, base_emb), "probe_n": n,
            "probe_seconds": time.perf_counter() - t0}
