"""What an adapter layer needs to know about the base modules it wraps, without importing
their packages: a module's class path, whether it is a linear map of the last axis, its
widths (:func:`base_widths`, the one place they are read), the tensor that fixes where its
adapters live, the dtype adapter math runs in, :class:`SharedBase`, a stand-in for a base
module owned elsewhere, and how a module call passes its first input (:func:`split_input`).

Re-exported by :mod:`qiadapters.adapters.layer`, where they were first defined.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Optional

import torch
from torch import nn

__all__ = ["SharedBase", "compute_dtype", "reference_tensor", "unwrap", "class_path",
           "inherits", "is_linear", "TRANSFORMERS_CONV1D", "base_widths", "linear_widths",
           "input_width", "split_input", "INPUT_KEYWORDS"]


#: transformers' ``Conv1D`` (GPT-2 family): a linear map with its weight stored ``(in, out)``.
#: Recognised by name so that nothing here imports transformers.
TRANSFORMERS_CONV1D = "transformers.pytorch_utils.Conv1D"


def compute_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The dtype adapter math runs in for tensors of ``dtype``: float64 stays float64,
    everything else (float16, bfloat16, float32, integer or packed weights, None) is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def unwrap(module: nn.Module) -> nn.Module:
    """The module a :class:`SharedBase` stands for (any other module is returned as is)."""
    return module.target if isinstance(module, SharedBase) else module


def class_path(obj: Any) -> str:
    """``module.QualName`` of ``obj``'s class (a class is named itself), as error messages
    name a base module's type, e.g. ``bitsandbytes.nn.modules.Linear4bit``."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def inherits(module: Any, path: str) -> bool:
    """Whether ``module``'s class is, or derives from, the class named ``path``
    (``module.QualName``) -- a check that needs no import of the class's package."""
    return any(class_path(c) == path for c in type(module).__mro__)


def is_linear(module: nn.Module) -> bool:
    """A linear map of the last axis: an ``nn.Linear`` (or subclass, quantized ones included)
    or transformers' ``Conv1D``.  What ``target_modules="all-linear"`` selects."""
    return isinstance(module, nn.Linear) or inherits(module, TRANSFORMERS_CONV1D)


def base_widths(module: nn.Module) -> Optional[tuple[int, int]]:
    """``(in, out)``: the widths of the features a base module maps, else None.  An
    ``nn.Linear``'s (or subclass's) ``in_features`` / ``out_features``, a transformers
    ``Conv1D``'s ``weight: (in, out)``, a convolution's ``in_channels`` / ``out_channels``.
    The one place a base module's widths are read: adapter layers, base kinds, saved shape
    records and the physics and mixture layers all ask here."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if inherits(module, TRANSFORMERS_CONV1D):
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.in_channels, module.out_channels
    return None


def linear_widths(module: nn.Module) -> Optional[tuple[int, int]]:
    """:func:`base_widths` of a linear map of the last axis (:func:`is_linear`), else None."""
    return base_widths(module) if is_linear(module) else None


def input_width(module: nn.Module, inside: bool = True) -> Optional[int]:
    """Width ``d`` of the hidden states ``(..., d)`` a module takes first, else None: a
    linear map's input width (:func:`linear_widths`), a ``LayerNorm``'s last normalised size,
    else (``inside``) the input width of the first linear map inside it (BERT's ``query``,
    ViT's ``q_proj``, GPT-2's ``c_attn``)."""
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1])
    for sub in module.modules() if inside else (module,):
        widths = linear_widths(sub)
        if widths is not None:
            return widths[0]
    return None


def reference_tensor(module: nn.Module) -> Optional[torch.Tensor]:
    """The tensor that fixes where a module's adapters live: its first floating parameter or
    buffer (else its first tensor at all; None for a module without tensors)."""
    module, first = unwrap(module), None
    own = next(iter(module._parameters.values()), None)  # the first of parameters(), cheaply
    if own is not None and own.is_floating_point():
        return own
    for t in chain(module.parameters(), module.buffers()):  # read every forward: stop early
        if t.is_floating_point():
            return t
        first = t if first is None else first
    return first


class SharedBase(nn.Module):
    """Stands for a base module owned elsewhere (a mixture's experts share its base).

    Calls and attribute reads go to ``target``, which is not registered as a submodule: its
    parameters are neither saved, moved nor counted a second time through this proxy.
    """

    def __init__(self, target: nn.Module):
        super().__init__()
        object.__setattr__(self, "target", unwrap(target))

    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            target = self.__dict__.get("target")
            if target is None:
                raise
            return getattr(target, name)

    def extra_repr(self) -> str:
        return f"target={type(self.target).__name__}"


#: Keywords under which modules receive their first input when it is not passed by position.
INPUT_KEYWORDS = ("hidden_states", "input", "x")


def split_input(args: tuple, kwargs: dict) -> tuple[Any, tuple]:
    """``(first input, remaining positional args)`` of a module call; a first input given as
    one of :data:`INPUT_KEYWORDS` is popped from ``kwargs``."""
    if args:
        return args[0], args[1:]
    for key in INPUT_KEYWORDS:
        if key in kwargs:
            return kwargs.pop(key), ()
    raise TypeError(f"an adapter layer needs the wrapped module's input, by position or as one "
                    f"of {list(INPUT_KEYWORDS)}; got keywords {sorted(kwargs)}")
