"""What a running :class:`~qiadapters.AdapterModel` publishes to its adapter layers.

Deep inside a model an adapter layer sees only its module's input.
Facts that some families need are published in a per-thread context while the
:class:`AdapterModel` works (any layer may read them; most ignore them):

* :func:`current_attention_mask` -- the ``attention_mask`` keyword argument of the running
  call of the wrapped model (``None`` when it was not given), e.g. for layers that mix
  tokens and must not mix padding in.  Plain-PyTorch code sets it with
  ``with attention_mask_context(mask): module(x)``.
* :func:`current_cache_length` -- how many earlier tokens the running call's KV cache
  (``past_key_values``, or ``cache`` in transformers 5) holds (0 without a cache): nonzero while ``generate()`` decodes with a
  KV cache, when a layer sees only the new tokens.
* :func:`current_model` -- the model being adapted while :meth:`AdapterModel.add_adapter` /
  :meth:`AdapterModel.load_adapter` build the adapters (``None`` otherwise), so a family's
  ``build`` can look at the module's place in the model (e.g. whether its attention is
  causal).  Set it with ``with model_context(model): ...``.
* :func:`current_call` -- scratch space of the running call of the wrapped model: a dict
  holding ``"model"`` (the wrapped model), where layers may keep work they share within
  that one call (Hamming adapters build all their blocks in a few batched calls,
  :mod:`qiadapters.adapters.hamming.batched`); ``None`` outside a call, dropped when it
  returns.

They are plain attributes of a ``threading.local`` (so ``torch.compile`` traces them), set
by forward hooks on the wrapped model -- so they hold for every call of it, ``generate()``'s
included, not only for :meth:`AdapterModel.forward`.

A leaf module (torch only), below both :mod:`qiadapters.adapters`, whose layers read it, and
:mod:`qiadapters.model`, whose hooks write it.  Its old home ``qiadapters.model.context``
still works and warns.
"""
from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn

__all__ = ["attention_mask_context", "current_attention_mask", "current_cache_length",
           "model_context", "current_model", "current_call", "publish_call", "restore_call"]


class _Context(threading.local):
    """What the running forward publishes, per thread; every field starts at its default
    (no ``setdefault`` on the first call: older ``torch.compile`` cannot trace it)."""

    def __init__(self):
        self.attention_mask: torch.Tensor | None = None
        self.cache_length = 0
        self.model: nn.Module | None = None
        self.call: dict | None = None
        self.calls: list[tuple[torch.Tensor | None, int, dict | None]] = []


_CONTEXT = _Context()


@contextlib.contextmanager
def _set_context(name: str, value):
    previous = getattr(_CONTEXT, name, None)
    setattr(_CONTEXT, name, value)
    try:
        yield
    finally:
        setattr(_CONTEXT, name, previous)


def attention_mask_context(attention_mask: torch.Tensor | None):
    """Context manager: :func:`current_attention_mask` returns ``attention_mask`` inside
    (``(batch, tokens)``, nonzero = a real token; ``None`` = no mask), the outer value after."""
    return _set_context("attention_mask", attention_mask)


def current_attention_mask() -> torch.Tensor | None:
    """The attention mask of the running forward (:func:`attention_mask_context`), or None."""
    return getattr(_CONTEXT, "attention_mask", None)


def current_cache_length() -> int:
    """Tokens held by the KV cache of the running call of the wrapped model (0: none)."""
    return getattr(_CONTEXT, "cache_length", 0)


def _cache_length(past) -> int:
    length = getattr(past, "get_seq_length", None)
    if callable(length):
        return int(length())
    return 0 if not past else int(past[0][0].shape[-2])  # legacy tuple of (key, value)


def publish_call(module: nn.Module, args, kwargs) -> None:
    """Forward pre-hook on the wrapped model: publish this call's mask and cache length."""
    _CONTEXT.calls.append((current_attention_mask(), current_cache_length(), current_call()))
    _CONTEXT.call = {"model": module}
    _CONTEXT.attention_mask = kwargs.get("attention_mask")
    past = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 4 / 5 names
    _CONTEXT.cache_length = _cache_length(past)


def restore_call(module: nn.Module, args, kwargs, output) -> None:
    """Forward hook (always called): restore what the outer call had published."""
    _CONTEXT.attention_mask, _CONTEXT.cache_length, _CONTEXT.call = _CONTEXT.calls.pop()


def current_call() -> dict | None:
    """Scratch space of the running call of the wrapped model (module docstring), or None."""
    return getattr(_CONTEXT, "call", None)


def model_context(model: nn.Module | None):
    """Context manager: :func:`current_model` returns ``model`` inside."""
    return _set_context("model", model)


def current_model() -> nn.Module | None:
    """The model whose adapters are being built (:func:`model_context`), or None."""
    return getattr(_CONTEXT, "model", None)
