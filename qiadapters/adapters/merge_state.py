"""A layer's merge state in its ``state_dict``, so that merged weights never meet a layer
that thinks it is unmerged.

A merged layer's base weights hold ``D`` already; loaded into an unmerged layer, its forward
would apply ``D`` a second time.  So every layer that can merge (its family implements
``fold``; a mixture's experts are merged by their mixture and carry nothing) writes
``<layer path>._extra_state``: the names of its merged adapters, as the UTF-8 bytes of a JSON
list in a ``uint8`` tensor (a tensor, so safetensors files -- transformers' ``save_pretrained``,
``Trainer`` checkpoints -- hold it; ``_extra_state`` is the suffix ``torch.distributed
.checkpoint`` knows).  Loading it brings the layer to the loaded state *before* its base
weights are copied (a module loads its own entries before its children's):

* same names as the layer's: nothing to do;
* other names, with the base weights in the same state dict: the layer takes the loaded
  merge state (the weights that follow are merged with exactly those adapters, and unmerging
  later inverts them with the loaded adapter tensors); a base parameter tied to another
  module (:mod:`.tied`, GPT-2's head and embedding) gets its private copy before the merged
  weights are copied in, as :meth:`~qiadapters.adapters.layer.AdapterLayer.merge` gives it,
  and is tied again when an unmerged state is loaded;
* a layer whose merge keeps the original weights outside the state dict (a mixture:
  ``fold_invertible = False``) cannot take a merged state from an unmerged one: an error;
* names the layer does not hold, or a state dict without the base weights: an error.

Errors join ``load_state_dict``'s own (a ``RuntimeError`` naming the layer, raised after the
load, as torch does for a shape mismatch).  A state dict without the key (written before
this existed) loads as before, ``strict=True`` included: the layer keeps its own state.
"""
from __future__ import annotations

import json

import torch

from . import tied

#: ``state_dict`` key suffix of a layer's merge state (torch's name for a module's extra state).
KEY = "_extra_state"


def encode(names: list[str]) -> torch.Tensor:
    """``names`` as a ``uint8`` tensor (the UTF-8 bytes of their JSON list)."""
    return torch.tensor(list(json.dumps(list(names)).encode()), dtype=torch.uint8)


def decode(value) -> list[str]:
    """Inverse of :func:`encode`; ValueError for anything else."""
    try:
        names = json.loads(bytes(torch.as_tensor(value).to("cpu", torch.uint8).tolist()).decode())
    except (ValueError, TypeError, RuntimeError, UnicodeDecodeError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("it is not a merge state written by qiadapters (a uint8 tensor of "
                         "the JSON list of merged adapter names)")
    return names


def _problem(layer, names: list[str], state_dict: dict, prefix: str) -> str | None:
    """Why ``layer`` cannot take the loaded merge state ``names``, or None."""
    loaded = f"merged with {names} in the state dict" if names else "unmerged in the state dict"
    here = f"merged with {layer.merged_adapters} here" if layer.merged else "unmerged here"
    unknown = [n for n in names if n not in layer.adapter_names]
    if unknown:
        return f"{loaded}, but this layer holds the adapters {layer.adapter_names}"
    weights = [f"{prefix}base_layer.{n}" for n, p in layer.base_layer.named_parameters()
               if p.is_floating_point()]
    missing = [k for k in weights if k not in state_dict]
    if missing:
        return (f"{loaded}, {here}, and the state dict lacks the base weights {missing[:2]} "
                f"that go with its merge state; load the whole state dict, or one without "
                f"'{prefix}{KEY}'")
    if names and not layer.fold_invertible:
        return (f"{loaded}, {here}: a {type(layer).__name__} keeps its original weights "
                f"outside the state dict while merged, so it cannot take a merged state; "
                f"unmerge_adapter() before state_dict(), or merge this model the same way "
                f"before loading")
    return None


def load(layer, state_dict: dict, prefix: str, local_metadata, strict: bool,
         missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
    """The end of ``layer._load_from_state_dict``: take the loaded merge state (module
    docstring) or add an error to ``error_msgs``."""
    key = prefix + KEY
    if key in unexpected_keys:
        unexpected_keys.remove(key)
    if key not in state_dict or not layer.records_merge():
        return
    try:
        names = decode(state_dict[key])
    except ValueError as e:
        error_msgs.append(f"{prefix[:-1]}: '{key}' cannot be read: {e}")
        return
    if names == layer.merged_adapters:
        return
    problem = _problem(layer, names, state_dict, prefix)
    if problem is not None:
        error_msgs.append(f"{prefix[:-1] or type(layer).__name__}: {problem}")
        return
    if not layer.fold_invertible:  # loaded unmerged: the kept originals are stale
        layer.drop_kept_weights()
    if names and not layer.merged:  # a tied base parameter gets its private copy, as in merge
        tied.untie(layer, list(getattr(layer, "tied_parameters", None) or {}))
    elif not names:  # the other holders' parameter is the layer's again, as in unmerge
        tied.retie(layer)
    layer.merged_adapters = list(names)
