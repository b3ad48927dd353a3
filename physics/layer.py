r"""The physics-prior adapter layer: a frozen module with :class:`PhysicsAdapter` deltas.

For a wrapped module ``f`` called as ``f(x, *a, **k)`` with hidden states
``x: (batch, T, d)`` and the active adapters' deltas ``δ_i(x)`` (each a
:class:`physics.PhysicsAdapter`, exactly 0 at initialisation):

.. code-block:: text

    placement="parallel":  y = f(x, *a, **k) + Σ_i δ_i(x)      f: an nn.Linear (d_in -> d_out)
    placement="input":     y = f(x + Σ_i δ_i(x), *a, **k)      f: any module taking x first

Several active adapters on one layer all read the module's input ``x`` and their deltas add
up (input-placed ones before ``f``, parallel ones after).  Adapters run in float32 (their
parameters' dtype) whatever the base dtype; the deltas are cast back to ``x.dtype``.

**Padding.**  The attention mask of the running forward (published by
``AdapterModel.forward``, or set with :func:`physics.token_mask`) is passed to every delta,
so each row's grid is its real tokens.  **Causality.**  ``causal=None`` (the default) follows
the model (:func:`causal_reason`); ``causal=False`` in a causal model is refused.

``δ(x)`` mixes tokens through the heat / wave / Poisson operators on the token grid, so it is
not a change of ``f``'s weights: the layer is not mergeable.  :meth:`PhysicsLayer.aux_loss`
returns ``Σ_i route_weight_i · L_route,i`` of the adapters that ran in the latest forward.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from qiadapters.adapters.base_modules import input_width
from qiadapters.adapters.layer import AdapterLayer, AdapterParts, linear_widths, unwrap
from qiadapters.adapters.mixed_batch import row_groups
from qiadapters.context import (attention_mask_context, current_attention_mask,
                                current_cache_length, current_model)

from .adapter import PhysicsAdapter
from .config import PhysicsConfig
from .options import check_model_options, check_placement

__all__ = ["PhysicsLayer", "feature_width", "linear_widths", "causal_reason", "token_mask"]

#: ``with physics.token_mask(mask): module(x)`` -- the attention mask ``(batch, tokens)``
#: (nonzero = real token) the physics layers inside read (``AdapterModel.forward`` sets it
#: from its ``attention_mask`` argument).
token_mask = attention_mask_context


def feature_width(module: nn.Module) -> int:
    """Width ``d`` of the hidden states a module takes first: an ``nn.Linear``'s (or
    ``Conv1D``'s) input width, a ``LayerNorm``'s last normalised size, else the input width of
    the first such projection inside it (BERT's ``query``, ViT's ``q_proj``, GPT-2's
    ``c_attn``): :func:`~qiadapters.adapters.base_modules.input_width`.  Raises TypeError
    naming the class and ``dim=`` when there is none."""
    width = input_width(module)
    if width is not None:
        return width
    raise TypeError(f"cannot tell the hidden width of a {type(module).__name__} (it is not and "
                    f"holds no nn.Linear, transformers Conv1D or nn.LayerNorm); set "
                    f"PhysicsConfig(dim=...) to the width d of the hidden states (batch, tokens, "
                    f"d) it takes first, or target a module that takes hidden states")


def _causal_flags(module: nn.Module) -> list[tuple[str, bool]]:
    return [(n, m.is_causal) for n, m in module.named_modules()
            if isinstance(getattr(m, "is_causal", None), bool)]


def causal_reason(base: nn.Module, model: nn.Module | None = None) -> str | None:
    """Why ``base`` (a module of ``model``) sits in a causal model, or None if it does not.

    The nearest scope around ``base`` (itself, then its parent, ... up to ``model``) that
    holds attention modules with a boolean ``is_causal`` attribute decides (transformers sets
    it on every attention module: True in GPT-2, Llama, a BERT decoder; False in BERT's
    encoder, ViT): causal if any of them is.  With no such attribute anywhere,
    ``model.config.is_decoder is True`` decides.
    """
    base = unwrap(base)
    path = None if model is None else next((n for n, m in model.named_modules() if m is base),
                                           None)
    scopes = [(path or "", base)]
    parts = path.split(".") if path else []
    for k in range(len(parts) - 1, -1, -1):
        prefix = ".".join(parts[:k])
        scopes.append((prefix, model.get_submodule(prefix)))
    for prefix, scope in scopes:
        flags = _causal_flags(scope)
        if flags:
            causal = [n for n, flag in flags if flag]
            if not causal:
                return None
            where = ".".join(p for p in (prefix, causal[0]) if p)
            return f"{where or type(scope).__name__}.is_causal=True"
    if model is not None and getattr(getattr(model, "config", None), "is_decoder", None) is True:
        return "config.is_decoder=True"
    return None


def patch_grid(model: nn.Module | None) -> str | None:
    """``"<Model> has a patch grid (image_size=..., patch_size=...)"`` when ``model``'s config
    names both (a ViT and its kin: its tokens are extra tokens, then a square of patches),
    else None."""
    config = getattr(model, "config", None)
    sizes = [getattr(config, key, None) for key in ("image_size", "patch_size")]
    if any(size is None for size in sizes):
        return None
    return (f"{type(model).__name__} has a patch grid (image_size={sizes[0]}, "
            f"patch_size={sizes[1]})")


class PhysicsLayer(AdapterLayer):
    r"""A frozen module with mixture-of-physical-priors adapters (see the module docstring).

    **Details:** each adapter is a :class:`physics.PhysicsAdapter`: for
    ``placement="parallel"`` the target must be an ``nn.Linear`` or a transformers ``Conv1D``
    and the adapter maps its input width to its output width; for ``placement="input"`` it
    maps ``d -> d`` with ``d = dim`` if given, else the :func:`feature_width` of the target.  Not mergeable (:meth:`merge` raises TypeError).

    Args:
        base_layer: the module to adapt (its parameters are frozen).
        adapter_name: the name of this first adapter.
        **options: the per-layer fields of :class:`physics.PhysicsConfig` (``rank``,
            ``priors``, ``grid``, ``router``, ``boundary``, ``extra_tokens``, ``placement``,
            ``route_weight`` and the :class:`PhysicsAdapter` constants).

    Example::

        >>> layer = PhysicsLayer(nn.Linear(32, 32), rank=4, grid="sequence")
        >>> y = layer(torch.randn(2, 10, 32))        # == layer.base_layer(x) at init
        >>> loss = y.square().mean() + layer.aux_loss()
    """

    adapter_layer_names = ("physics",)
    other_param_names = ("placement", "route_weight")

    def __init__(self, base_layer: nn.Module, *, adapter_name: Optional[str] = "default",
                 parts: Optional[AdapterParts] = None, **options):
        super().__init__(base_layer, adapter_name, parts=parts, **options)
        #: adapters that ran in the latest forward (their route regularisers are current).
        self._ran: tuple[str, ...] = ()

    @classmethod
    def build(cls, base_layer: nn.Module, *, placement: str = "parallel",
              route_weight: float = 1.0, dim: int | None = None, causal: bool | None = None,
              **adapter_options) -> AdapterParts:
        """Check the layer's own options, resolve ``dim`` and ``causal`` against the target
        (and the model being adapted, if any), then construct the :class:`PhysicsAdapter`
        (which checks the rest: ``rank``, ``priors``, ``grid``, ``router``, ...)."""
        settings = check_placement(placement, route_weight)
        dim, causal = check_model_options(dim, causal).values()
        model = current_model()
        reason = causal_reason(base_layer, model)
        if reason is not None and causal is False:
            name = type(model if model is not None else unwrap(base_layer)).__name__
            raise ValueError(f"causal=False is not valid in {name}, a causal model ({reason}): "
                             f"the bidirectional operator lets every token see later tokens; "
                             f"use causal=True (each token sees the operator solved on its "
                             f"prefix) or causal=None (follow the model)")
        causal = reason is not None if causal is None else causal
        if settings["placement"] == "parallel":
            widths = linear_widths(unwrap(base_layer))
            if widths is None:
                raise TypeError(f"placement='parallel' adds the delta to the output of an "
                                f"nn.Linear or transformers Conv1D, got "
                                f"{type(unwrap(base_layer)).__name__}; target one of those or "
                                f"use placement='input'")
            if dim is not None and dim != widths[0]:
                raise ValueError(f"dim={dim} is not valid for placement='parallel' on a "
                                 f"{type(unwrap(base_layer)).__name__} with input width "
                                 f"{widths[0]}; valid: None or {widths[0]}")
            dim, out_dim = widths
        else:
            dim = out_dim = feature_width(base_layer) if dim is None else dim
        adapter = PhysicsAdapter(dim, out_dim=out_dim, causal=causal,
                                 square_grid=patch_grid(model), **adapter_options)
        return AdapterParts(modules={"physics": adapter}, settings=settings)

    # ------------------------------------------------------------ forward
    def _mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The published attention mask for ``x: (batch, T, d)``, checked against it."""
        cached = current_cache_length()
        if cached:
            raise ValueError(
                f"a physics layer got {x.shape[1]} new token(s) after {cached} cached ones: "
                f"incremental decoding with a KV cache shows the operator only the new tokens, "
                f"but it needs every token of the sequence at each call; use "
                f"generate(..., use_cache=False)")
        mask = current_attention_mask()
        if mask is None:
            return None
        if mask.ndim != 2 or tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"attention_mask.shape={tuple(mask.shape)} does not fit the hidden states "
                f"{tuple(x.shape)} of a physics layer; valid: (batch, tokens) = "
                f"{tuple(x.shape[:2])}.  The operator needs every token of the sequence at "
                f"each call: incremental decoding with a KV cache (generate(use_cache=True)) "
                f"shows it only the new tokens; use generate(..., use_cache=False)")
        return mask

    def _delta(self, name: str, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.physics[name](x.to(self.adapter_dtype), mask).to(x.dtype)

    def forward(self, *args, **kwargs):
        self._ran = ()  # a forward without adapters leaves no route regulariser behind
        return super().forward(*args, **kwargs)

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        # every delta reads the module's input; a token count that fits no grid raises here,
        # before the base module runs
        mask = self._mask(x)
        deltas = {a: self._delta(a, x, mask) for a in adapter_names}
        self._ran = tuple(adapter_names)
        h = x
        for a in adapter_names:
            if self.placement[a] == "input":
                h = h + deltas[a]
        y = self.base_layer(h, *args, **kwargs)
        for a in adapter_names:
            if self.placement[a] == "parallel":
                y = y + deltas[a]
        return y

    def mixed_forward(self, x: torch.Tensor, rows, *args, **kwargs):
        """A mixed-adapter batch (:mod:`qiadapters.adapters.mixed_batch`): each adapter's
        delta on its rows (their attention mask), added to the input rows (``"input"``) or
        to the output rows of the one base call (``"parallel"``)."""
        mask = self._mask(x)
        groups = row_groups(rows, self.adapter_names, x.device)
        deltas = [(a, idx, self._delta(a, x[idx], None if mask is None else mask[idx]))
                  for a, idx in groups]
        self._ran = tuple(a for a, _ in groups)
        h = x
        for a, idx, delta in deltas:
            if self.placement[a] == "input":
                h = h.index_copy(0, idx, x[idx] + delta)
        y = self.base_layer(h, *args, **kwargs)
        for a, idx, delta in deltas:
            if self.placement[a] == "parallel":
                y = y.index_copy(0, idx, y[idx] + delta)
        return y

    def aux_loss(self) -> torch.Tensor:
        """``Σ route_weight · L_route`` over the adapters that ran in the latest forward
        (zero if none did, e.g. after a forward with adapters disabled)."""
        ran = [a for a in self._ran if a in self.route_weight]
        if not ran:
            return super().aux_loss()
        return torch.stack([self.route_weight[a] * self.physics[a].aux_loss() for a in ran]).sum()

    def adapter_output(self, x: torch.Tensor, base_output: torch.Tensor,
                       adapter_names: list[str], *args, **kwargs):
        """The adapted output given ``base_output = f(x, ...)`` (e.g. from a mixture layer):
        ``base_output + Σ δ(x)`` when every adapter is parallel, else a full forward."""
        if any(self.placement[a] != "parallel" for a in adapter_names):
            return self.adapter_forward(x, adapter_names, *args, **kwargs)
        mask = self._mask(x)
        deltas = [self._delta(a, x, mask) for a in adapter_names]
        self._ran = tuple(adapter_names)
        for delta in deltas:
            base_output = base_output + delta
        return base_output

    # ------------------------------------------------------------ merge
    def merge_blocker(self, adapter_names=None) -> str:
        """Why the adapters cannot be merged: always (there is no :meth:`fold`)."""
        return ("their delta mixes tokens through heat / wave / Poisson operators on the token "
                "grid, so it is not a weight update of the wrapped module")

    def extra_repr(self) -> str:
        return f"placement={self.placement}, {super().extra_repr()}"
