"""Tied weights: base parameters an adapter layer shares with other modules of its model.

A model may hold one parameter in two modules: GPT-2's output head ``lm_head.weight`` *is*
its input embedding ``transformer.wte.weight``.  An adapter layer's forward only changes
what its own module computes, so the embedding is untouched; writing a merge into the shared
weight would rotate the embedding too.  So:

* :func:`find_ties` records, per layer, which base parameters the model also holds
  elsewhere (``layer.tied_parameters``: name -> the other names).  The model machinery calls
  it when adapters are injected and again before each merge.
* :meth:`AdapterLayer.merge` gives each recorded parameter that a merge changes a private
  copy first (:func:`untie`): the merged layer computes what the unmerged one did and the
  other holders keep the original.  :meth:`AdapterLayer.unmerge` puts the original back
  (:func:`retie`), so the model is tied as before.
* ``merge_and_unload`` returns a model whose head is its own tensor; a transformers model's
  config is set to ``tie_word_embeddings=False`` (:func:`untie_config`) so that
  ``save_pretrained`` writes both tensors and ``from_pretrained`` does not tie them again.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from torch import nn

__all__ = ["find_ties", "untie", "untied", "retie", "untie_config"]


def find_ties(model: nn.Module, layers: Iterable[tuple[str, nn.Module]]) -> None:
    """Set ``layer.tied_parameters`` for every ``(name, layer)`` of ``model``: each base
    parameter that ``model`` also holds outside the layer, with those other names."""
    holders: dict[int, list[str]] = defaultdict(list)
    for name, p in model.named_parameters(remove_duplicate=False):
        holders[id(p)].append(name)
    for name, layer in layers:
        inside = f"{name}." if name else ""
        tied = {}
        for n, p in layer.base_layer.named_parameters(remove_duplicate=False):
            others = tuple(h for h in holders[id(p)] if not h.startswith(inside))
            if others:
                tied[n] = others
        layer.tied_parameters = tied


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (module.get_submodule(path) if path else module), leaf


def untie(layer: nn.Module, changed: Iterable[str]) -> dict[str, nn.Parameter]:
    """Give each base parameter of ``layer`` named in ``changed`` that is tied (recorded in
    ``layer.tied_parameters``) a private copy: same values, same ``requires_grad``.  The
    originals are kept on the layer for :func:`retie`.  Returns the copies by name."""
    recorded = getattr(layer, "tied_parameters", None) or {}  # a layer pickled before 0.3.3
    kept = layer.__dict__.setdefault("_untied", {})
    copies = {}
    for n in changed:
        if n not in recorded or n in kept:
            continue
        owner, leaf = _owner(layer.base_layer, n)
        original = owner._parameters[leaf]
        copies[n] = nn.Parameter(original.detach().clone(), requires_grad=original.requires_grad)
        owner._parameters[leaf] = copies[n]
        kept[n] = original
    return copies


def untied(layer: nn.Module) -> list[str]:
    """Names of the base parameters of ``layer`` that hold a private copy now."""
    return list(layer.__dict__.get("_untied", ()))


def retie(layer: nn.Module) -> None:
    """Put back the parameters :func:`untie` replaced (they were never written)."""
    kept = layer.__dict__.get("_untied", {})
    for n, original in kept.items():
        owner, leaf = _owner(layer.base_layer, n)
        owner._parameters[leaf] = original
    kept.clear()


def untie_config(model: nn.Module, untied: Iterable[str]) -> None:
    """After ``untied`` parameters of ``model`` got their own tensors: every transformers
    model inside whose config ties word embeddings and whose tie map names one of them gets
    ``config.tie_word_embeddings = False``; as its other ties would then not be restored by
    ``from_pretrained`` either, each of them that still shares its tensor gets its own copy,
    so that ``save_pretrained`` writes it."""
    untied = set(untied)
    for prefix, sub in model.named_modules():
        config = getattr(sub, "config", None)
        expand = getattr(sub, "get_expanded_tied_weights_keys", None)
        if not (getattr(config, "tie_word_embeddings", False) and callable(expand)):
            continue
        ties = {_join(prefix, t): _join(prefix, s) for t, s in expand().items()}
        if not untied & (set(ties) | set(ties.values())):
            continue
        config.tie_word_embeddings = False
        for target, source in ties.items():
            t_owner, t_leaf = _owner(model, target)
            if t_owner._parameters.get(t_leaf) is _parameter(model, source):
                shared = t_owner._parameters[t_leaf]
                t_owner._parameters[t_leaf] = nn.Parameter(shared.detach().clone(),
                                                           requires_grad=shared.requires_grad)
        known = getattr(sub, "all_tied_weights_keys", None)
        if isinstance(known, dict):  # what tie_weights() uses without recomputing the map
            sub.all_tied_weights_keys = {k: v for k, v in known.items()
                                         if _join(prefix, k) not in ties}


def _parameter(model: nn.Module, name: str):
    owner, leaf = _owner(model, name)
    return owner._parameters.get(leaf)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
