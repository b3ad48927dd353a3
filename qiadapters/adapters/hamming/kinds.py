r"""Base kinds: what a Hamming adapter needs to know about the module it wraps.

A Hamming adapter multiplies the features of a frozen module ``f`` by an orthogonal ``D``:
after it (``side="output"``: :math:`y = (f(x) - b) D + b`) or before it (``side="input"``:
:math:`y = f(x D)`).  Which axis holds the features, how wide they are, where they sit in the
weight and whether ``D`` can be folded into that weight depends on the module's type, and only
on that: one :class:`BaseKind` per type, registered in :data:`BASE_KINDS`.  A new layer type is
one small class and one registry line; the layer itself has no type switches.

=====================  ==========================  ===========  =============  ============
kind                   modules                     feature axis weight (out, in) sides
=====================  ==========================  ===========  =============  ============
``linear``             ``nn.Linear`` + subclasses  last         ``(0, 1)``     both
``conv1d-transposed``  transformers' ``Conv1D``    last         ``(1, 0)``     both
``conv``               ``nn.Conv1d/2d/3d``         channels     ``(0, 1)``     both
=====================  ==========================  ===========  =============  ============

The forward always calls the module itself (quantized and custom layers run their own
forward); ``b`` is the module's ``bias`` (none: 0).  Folding ``D`` into the weight is exact
only when the module computes ``x W^T + b`` with a plain floating weight: a kind says why not
otherwise (:meth:`BaseKind.merge_blocker`).
"""
from __future__ import annotations

from typing import ClassVar, Optional

import torch
from torch import nn

from ..base_modules import TRANSFORMERS_CONV1D, base_widths, class_path, inherits

__all__ = ["BaseKind", "LinearKind", "TransposedConv1DKind", "ConvKind", "BASE_KINDS",
           "base_kind", "plain_weight"]


def plain_weight(weight) -> bool:
    """Whether ``weight`` is a plain floating tensor (not packed, quantized or a subclass:
    bitsandbytes' ``Int8Params`` / ``Params4bit``, torchao's quantized tensors)."""
    return type(weight) in (torch.Tensor, nn.Parameter) and weight.is_floating_point() and \
        type(weight.data) is torch.Tensor


class BaseKind:
    """One type of base module.  Subclasses set the class attributes and :meth:`matches`."""

    #: registry key, named in error messages
    name: ClassVar[str] = ""
    #: the modules it covers, for error messages
    covers: ClassVar[str] = ""
    #: axis of the features in the module's inputs and outputs
    feature_axis: ClassVar[int] = -1
    #: axes of the weight holding the output and the input features
    weight_axes: ClassVar[tuple[int, int]] = (0, 1)
    #: forwards that compute ``x W^T + b`` (a module overriding them is not merged)
    affine_forwards: ClassVar[tuple] = ()

    def matches(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def widths(self, module: nn.Module) -> tuple[int, int]:
        """``(d_in, d_out)``: the widths ``D`` acts on for the input and the output side, the
        module's :func:`~qiadapters.adapters.base_modules.base_widths` (a kind for modules
        whose widths are read elsewhere overrides this)."""
        widths = base_widths(module)
        if widths is None:
            raise TypeError(f"the widths of a {class_path(module)} are unknown to the "
                            f"{self.name!r} base kind")
        return widths

    def check(self, module: nn.Module, side: str) -> None:
        """Raise (naming the module's class and the value) if the module cannot take an
        adapter on ``side``.  Default: every module of the kind can."""

    def merge_blocker(self, module: nn.Module) -> Optional[str]:
        """Why ``D`` cannot be folded into ``module``'s weight, or None."""
        weight = module.weight
        if not plain_weight(weight):
            return (f"its weight is a {class_path(weight)} ({weight.dtype}, packed or "
                    f"quantized): folding D would write into quantized data; remove the adapter "
                    f"with unload(), or merge into a dequantized (fp32/fp16/bf16) copy of the "
                    f"base model")
        if type(module).forward not in self.affine_forwards:
            return (f"{class_path(module)} overrides forward, so folding D into its weight is "
                    f"not known to give (f(x) - b) D + b; remove the adapter with unload()")
        return None

    # ------------------------------------------------------------ features
    def features_last(self, t: torch.Tensor) -> torch.Tensor:
        """A view of ``t`` with the feature axis last."""
        return t if self.feature_axis == -1 else t.movedim(self.feature_axis, -1)

    def features_back(self, t: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`features_last`."""
        return t if self.feature_axis == -1 else t.movedim(-1, self.feature_axis)

    def specialise(self, module: nn.Module) -> "BaseKind":
        """The kind to use for this matched module (default: this one)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearKind(BaseKind):
    """``nn.Linear`` and its subclasses (bitsandbytes' ``Linear8bitLt`` / ``Linear4bit``,
    custom layers): weight ``(out, in)``; ``in_features`` / ``out_features``."""

    name = "linear"
    covers = "torch.nn.Linear and subclasses (quantized ones included)"
    affine_forwards = (nn.Linear.forward,)

    def matches(self, module):
        return isinstance(module, nn.Linear)


class TransposedConv1DKind(BaseKind):
    """transformers' ``Conv1D`` (GPT-2 family): ``y = x W + b`` with the weight stored
    ``(in, out)`` (``nx`` inputs, ``nf`` outputs)."""

    name = "conv1d-transposed"
    covers = TRANSFORMERS_CONV1D
    weight_axes = (1, 0)

    @property
    def affine_forwards(self):
        from transformers.pytorch_utils import Conv1D  # present: a Conv1D was matched

        return (Conv1D.forward,)

    def matches(self, module):
        return inherits(module, TRANSFORMERS_CONV1D)


class ConvKind(BaseKind):
    """``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d`` with ``groups=1``: ``D`` mixes the
    output channels (output side) or the input channels (input side) at every position, as
    peft's OFT / BOFT do; weight ``(out, in, *kernel)``."""

    name = "conv"
    covers = "torch.nn.Conv1d, Conv2d, Conv3d (groups=1)"
    weight_axes = (0, 1)
    affine_forwards = (nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward)

    def __init__(self, spatial: int = 2):
        self.spatial = spatial

    @property
    def feature_axis(self):  # channels: (N, C, *spatial) or unbatched (C, *spatial)
        return -(self.spatial + 1)

    def matches(self, module):
        return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))

    def check(self, module, side):
        if module.groups != 1:
            raise ValueError(f"{class_path(module)} has groups={module.groups}; a Hamming "
                             f"adapter mixes all the {side} channels, which a grouped weight "
                             f"cannot hold; valid: groups=1")

    def specialise(self, module):
        return ConvKind(len(module.kernel_size))

    def __repr__(self):
        return f"ConvKind(spatial={self.spatial})"


#: Base kinds by name, tried in this order (the first that matches wins).
BASE_KINDS: dict[str, BaseKind] = {
    "linear": LinearKind(),
    "conv1d-transposed": TransposedConv1DKind(),
    "conv": ConvKind(),
}


def base_kind(module: nn.Module) -> BaseKind:
    """The :class:`BaseKind` of ``module`` (a convolution's carries its spatial dims);
    TypeError naming the module's class and the supported kinds if there is none."""
    for kind in BASE_KINDS.values():
        if kind.matches(module):
            return kind.specialise(module)
    supported = "; ".join(f"{k!r}: {kind.covers}" for k, kind in BASE_KINDS.items())
    raise TypeError(f"a Hamming adapter cannot wrap a {class_path(module)}; supported base "
                    f"kinds: {supported}")
