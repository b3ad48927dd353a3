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

``δ(x)`` mixes tokens through the heat / wave / Poisson operators on the token grid, so it is
not a change of ``f``'s weights: the layer is not mergeable.  :meth:`PhysicsLayer.aux_loss`
returns ``Σ_i route_weight_i · L_route,i`` of the adapters that ran in the latest forward.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from qiadapters.adapters.layer import AdapterLayer, AdapterParts
from qiadapters.adapters.registry import register

from .adapter import PhysicsAdapter
from .config import PhysicsConfig
from .options import check_placement

__all__ = ["PhysicsLayer", "feature_width"]


def feature_width(module: nn.Module) -> int:
    """Width ``d`` of the hidden states a module takes first: an ``nn.Linear``'s
    ``in_features``, a ``LayerNorm``'s last normalised size, else the ``in_features`` of the
    first ``nn.Linear`` inside it (BERT's ``BertSelfAttention.query``, ViT's ``q_proj``)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1])
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return sub.in_features
    raise TypeError(f"cannot tell the hidden width of a {type(module).__name__} (it is not an "
                    f"nn.Linear or nn.LayerNorm and holds no nn.Linear); target a module "
                    f"that takes hidden states (batch, tokens, d), e.g. a self-attention block")


class PhysicsLayer(AdapterLayer):
    r"""A frozen module with mixture-of-physical-priors adapters (see the module docstring).

    **Details:** each adapter is a :class:`physics.PhysicsAdapter`: for
    ``placement="parallel"`` the target must be an ``nn.Linear`` and the adapter maps its
    ``in_features`` to its ``out_features``; for ``placement="input"`` it maps ``d -> d`` with
    ``d`` the :func:`feature_width` of the target.  Not mergeable (:meth:`merge` raises TypeError).

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
              route_weight: float = 1.0, **adapter_options) -> AdapterParts:
        """Check the layer's own options, then construct the :class:`PhysicsAdapter` (which
        checks the rest: ``rank``, ``priors``, ``grid``, ``router``, ...)."""
        settings = check_placement(placement, route_weight)
        if settings["placement"] == "parallel":
            if not isinstance(base_layer, nn.Linear):
                raise TypeError(f"placement='parallel' adds the delta to the output of an "
                                f"nn.Linear, got {type(base_layer).__name__}; target an "
                                f"nn.Linear or use placement='input'")
            dim, out_dim = base_layer.in_features, base_layer.out_features
        else:
            dim = out_dim = feature_width(base_layer)
        adapter = PhysicsAdapter(dim, out_dim=out_dim, **adapter_options)
        return AdapterParts(modules={"physics": adapter}, settings=settings)

    # ------------------------------------------------------------ forward
    def _delta(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.physics[name](x.to(self.adapter_dtype)).to(x.dtype)

    def forward(self, x, *args, **kwargs):
        self._ran = ()  # a forward without adapters leaves no route regulariser behind
        return super().forward(x, *args, **kwargs)

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        # every delta reads the module's input; a token count that fits no grid raises here,
        # before the base module runs
        deltas = {a: self._delta(a, x) for a in adapter_names}
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
        deltas = [self._delta(a, x) for a in adapter_names]
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


register(PhysicsConfig, PhysicsLayer)
