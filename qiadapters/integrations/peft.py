"""Stacking qiadapters with Hugging Face peft's methods (LoRA, ...) in one model.

Nothing here imports peft: peft's modules are recognised by class path.

* **Other PEFT methods' parameters** -- the adapter modules of peft's tuner layers (everything
  in a ``BaseTunerLayer`` but its ``base_layer``) and peft's ``modules_to_save`` copies
  (``AuxiliaryTrainingWrapper`` but its ``original_module``) -- are :func:`foreign_adapter_parameters`:
  injecting a qiadapters adapter leaves their ``requires_grad`` as it was, as peft itself does
  with adapter parameters it does not own when it adds an adapter.  Every other parameter
  that is not a qiadapters adapter's is frozen.
* **A Hamming adapter on a peft layer**: :class:`PeftLinearKind` (registered in
  ``BASE_KINDS`` as ``"peft-linear"``) lets a Hamming layer wrap a peft tuner layer around an
  ``nn.Linear`` (e.g. ``lora.Linear``): ``f`` is the peft layer's own forward, base plus its
  adapters, so ``D`` acts on the LoRA-adapted output.  Not mergeable (``unload()`` works).
* **peft after qiadapters**: peft's ``get_peft_model`` / ``add_adapter`` freeze every
  parameter that is not one of peft's own, our adapters included; :func:`get_peft_model`
  (or ``with keep_trainable(model): ...`` around any peft call) restores ours.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from torch import nn

from ..adapters.hamming.kinds import BASE_KINDS, LinearKind
from ..adapters.layer import AdapterLayer, class_path, inherits

__all__ = ["PEFT_TUNER_LAYER", "PEFT_AUXILIARY_WRAPPER", "is_peft_layer", "is_peft_wrapper",
           "foreign_adapter_parameters", "keep_trainable", "get_peft_model", "PeftLinearKind"]

#: peft's base class of every tuner layer (``lora.Linear``, ...), by class path.
PEFT_TUNER_LAYER = "peft.tuners.tuners_utils.BaseTunerLayer"
#: peft's base class of ``modules_to_save`` wrappers, by class path.
PEFT_AUXILIARY_WRAPPER = "peft.utils.other.AuxiliaryTrainingWrapper"


def is_peft_layer(module: nn.Module) -> bool:
    """Whether ``module`` is one of peft's tuner layers (it holds a ``base_layer``)."""
    return inherits(module, PEFT_TUNER_LAYER)


def is_peft_wrapper(module: nn.Module) -> bool:
    """Whether ``module`` is one of peft's ``modules_to_save`` (auxiliary) wrappers."""
    return inherits(module, PEFT_AUXILIARY_WRAPPER)


def peft_base(module: nn.Module) -> nn.Module:
    """The module a peft tuner layer finally wraps (``module`` itself if it is none)."""
    return module.get_base_layer() if is_peft_layer(module) else module


def foreign_adapter_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """Parameters of other PEFT methods' adapters in ``model``: peft tuner layers' own
    modules (not their ``base_layer``) and peft's ``modules_to_save`` copies (not the
    ``original_module``)."""
    for module in model.modules():
        if is_peft_layer(module):
            base = {id(p) for p in module.get_base_layer().parameters()}
        elif is_peft_wrapper(module):
            base = {id(p) for p in module.original_module.parameters()}
        else:
            continue
        yield from (p for p in module.parameters() if id(p) not in base)


def _ours(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, AdapterLayer)
            for attr in m.adapter_layer_names for p in getattr(m, attr).parameters()]


@contextlib.contextmanager
def keep_trainable(model: nn.Module):
    """Context manager: the ``requires_grad`` of every qiadapters adapter parameter in
    ``model`` is restored on exit (peft's injection freezes them)."""
    saved = [(p, p.requires_grad) for p in _ours(model)]
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def get_peft_model(model: nn.Module, peft_config, *args, **kwargs):
    """``peft.get_peft_model(model, peft_config, ...)`` keeping the qiadapters adapters of
    ``model`` (an :class:`~qiadapters.AdapterModel` or a model holding adapter layers)
    trainable as they were.  peft's modules must not target a qiadapters layer itself (peft
    refuses it); target other modules, or add peft first and qiadapters on top."""
    import peft

    with keep_trainable(model):
        return peft.get_peft_model(model, peft_config, *args, **kwargs)


class PeftLinearKind(LinearKind):
    """A peft tuner layer around an ``nn.Linear`` (``lora.Linear``, ...): widths and bias
    are its base layer's; ``f`` is the tuner layer's forward.  Never merged."""

    name = "peft-linear"
    covers = f"{PEFT_TUNER_LAYER} around a torch.nn.Linear (e.g. peft.tuners.lora.Linear)"

    def matches(self, module):
        return is_peft_layer(module) and isinstance(module.get_base_layer(), nn.Linear)

    def widths(self, module):
        return super().widths(module.get_base_layer())

    def merge_blocker(self, module: nn.Module) -> Optional[str]:
        return (f"its base is a {class_path(module)} whose output includes peft's own adapters, "
                f"so D cannot be folded into one weight; merge peft's adapters first or remove "
                f"the Hamming adapter with unload()")


BASE_KINDS.setdefault(PeftLinearKind.name, PeftLinearKind())
