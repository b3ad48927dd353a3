r"""The Hamming adapter layer: an ``nn.Linear`` times a block-diagonal orthogonal ``D``.

Output side (the paper): :math:`y = (x W_0^T) D + b`, merged weight :math:`D^T W_0`.
Input side (as OFT):     :math:`y = (x D) W_0^T + b`, merged weight :math:`W_0 D^T`.

.. math:: D = \bigoplus_{i<r} \Big[ \bigoplus_{k \in K} B_{i,k} \oplus I_{\text{pad}} \Big]
              \oplus I_{\text{tail}}

with ``B_{i,k}`` the weight-k Hamming block of block ``i`` (see
:mod:`~qiadapters.adapters.hamming.parametrizations`).  ``D`` is applied block by block
(:func:`~qiadapters.circuits.blockdiag.apply_blocks`), never as a dense ``d x d`` matrix, in
float32 (float64 for a float64 base) whatever the base dtype.  Several active adapters on one
layer apply as their product in the order they were added.
"""
from __future__ import annotations

from math import comb
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ... import _checks
from ...circuits import GATES, LAYOUTS, max_qubits
from ...circuits.blockdiag import BlockLayout
from ..base import AdapterLayer, AdapterParts
from .config import DEFAULT_BLOCKS, SIDES, check_orders
from .parametrizations import PARAMETRIZATIONS, Parametrization


def plan_blocks(dim: int, orders, blocks: int | None = None, block_size: int | None = None,
                n_qubits: int | None = None, power_of_two: bool = False) -> BlockLayout:
    """The :class:`BlockLayout` of a Hamming adapter acting on ``dim`` features.

    ``r = blocks`` (default :data:`DEFAULT_BLOCKS`) and ``b = floor(dim / r)``, or
    ``b = block_size`` and ``r = floor(dim / b)``; ``n`` defaults to the largest ``n`` with
    ``sum_k C(n,k) <= b`` (a power of two if ``power_of_two``); ``pad = b - sum_k C(n,k)``.
    """
    ks = check_orders(orders)
    if blocks is not None and block_size is not None:
        raise ValueError(f"give blocks or block_size, not both (got blocks={blocks}, "
                         f"block_size={block_size})")
    n_min = max(2, ks[-1])
    need = sum(comb(n_min, k) for k in ks)
    if block_size is None:
        r = _checks.integer("blocks", DEFAULT_BLOCKS if blocks is None else blocks, low=1)
        b = dim // r
        what = f"blocks={r} gives block size floor({dim} / {r}) = {b}"
        fix = f"use blocks <= {dim // need}" if dim >= need else "target a wider layer"
    else:
        b = _checks.integer("block_size", block_size, low=1)
        r = dim // b
        what = f"block_size={b}"
        fix = f"use {need} <= block_size <= {dim}" if dim >= need else "target a wider layer"
    if b < need or r < 1:
        raise ValueError(f"{what} on a dimension of {dim}, but orders={ks} need blocks of at "
                         f"least sum_k C({n_min},k) = {need}; {fix}")
    if n_qubits is None:
        n = max_qubits(b, ks)
        if power_of_two:
            n = 1 << (n.bit_length() - 1)
            if n < n_min:
                raise ValueError(f"{what}: the largest power-of-two n with sum_k C(n,k) <= {b} "
                                 f"is {n}, below max(orders)={ks[-1]}; use larger blocks")
    else:
        n = _checks.integer("n_qubits", n_qubits, low=n_min)
        if sum(comb(n, k) for k in ks) > b:
            raise ValueError(f"n_qubits={n} needs sum_k C({n},k) = "
                             f"{sum(comb(n, k) for k in ks)} dims for orders={ks}, more than "
                             f"the block size {b}; valid: {n_min} <= n_qubits <= "
                             f"{max_qubits(b, ks)}")
        if power_of_two and n & (n - 1):
            raise ValueError(f"n_qubits={n} is not valid for layout='butterfly'; n must be a "
                             f"power of two")
    ks = _checks.orders("orders", ks, n)
    return BlockLayout(n=n, orders=ks, blocks=r, pad=b - sum(comb(n, k) for k in ks), dim=dim)


class HammingAdapter(AdapterLayer):
    r"""A frozen ``nn.Linear`` with a Hamming-weight orthogonal adapter.

    .. math:: y = (x W_0^T) D + b \quad(\text{side="output"}),\qquad
              y = (x D) W_0^T + b \quad(\text{side="input"})

    **Details:** ``D`` is block diagonal: ``r`` blocks of size ``b = floor(d / r)`` (``d`` =
    out_features on the output side, in_features on the input side), each holding the
    weight-k Hamming blocks ``C(n,k) x C(n,k)`` for ``k in orders`` and an identity pad; the
    last ``d - r b`` features pass through.  ``D = I`` at initialisation for every
    parametrization.  Exactly one of ``blocks`` / ``block_size`` (default ``blocks=3``).

    Args:
        linear: the ``nn.Linear`` to adapt (its parameters are frozen).
        orders: Hamming weights, distinct integers ``>= 1``.
        blocks, block_size, n_qubits: the block layout (see :func:`plan_blocks`).
        layout, gate: the circuit for ``parametrization="circuit"``.
        side: ``"output"`` or ``"input"``.
        parametrization: ``"cayley"`` (default), ``"expm"`` or ``"circuit"``.
        share_blocks: one parameter set for all ``r`` blocks.
        adapter_name: the name of this first adapter (more can be added with
            :meth:`add_adapter`; several active ones apply as a product).

    Example::

        >>> layer = HammingAdapter(nn.Linear(64, 64), orders=(1, 2), blocks=2)
        >>> layer.hamming["default"].block_layout.n
        7
    """

    adapter_layer_names = ("hamming",)
    other_param_names = ("side",)
    mergeable = True

    def __init__(self, linear: nn.Linear, orders: Sequence[int] = (1, 2),
                 blocks: int | None = None, block_size: int | None = None,
                 n_qubits: int | None = None, layout: str = "pyramid", gate: str = "rbs",
                 side: str = "output", parametrization: str = "cayley",
                 share_blocks: bool = False, *, adapter_name: str = "default"):
        parts = self.build(linear, orders=orders, blocks=blocks, block_size=block_size,
                           n_qubits=n_qubits, layout=layout, gate=gate, side=side,
                           parametrization=parametrization, share_blocks=share_blocks)
        super().__init__(linear)
        linear.requires_grad_(False)
        self.attach(adapter_name, parts)
        self.set_adapter(adapter_name)

    @classmethod
    def build(cls, base_layer: nn.Module, *, orders=(1, 2), blocks=None, block_size=None,
              n_qubits=None, layout="pyramid", gate="rbs", side="output",
              parametrization="cayley", share_blocks=False) -> AdapterParts:
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"a Hamming adapter wraps an nn.Linear, got "
                            f"{type(base_layer).__name__}")
        _checks.choice("side", side, SIDES)
        _checks.choice("parametrization", parametrization, PARAMETRIZATIONS)
        _checks.choice("layout", layout, LAYOUTS)
        _checks.choice("gate", gate, GATES)
        if not isinstance(share_blocks, bool):
            raise ValueError(f"share_blocks={share_blocks!r} must be True or False")
        dim = base_layer.out_features if side == "output" else base_layer.in_features
        circuit = parametrization == "circuit"
        block_layout = plan_blocks(dim, orders, blocks, block_size, n_qubits,
                                   power_of_two=circuit and layout == "butterfly")
        module = PARAMETRIZATIONS[parametrization](block_layout, gate=gate, layout=layout,
                                                   share_blocks=share_blocks)
        return AdapterParts(modules={"hamming": module}, settings={"side": side})

    # ------------------------------------------------------------ forward
    def _compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.base_layer.weight.dtype == torch.float64 else torch.float32

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        base = self.base_layer
        compute = self._compute_dtype()
        before = [a for a in adapter_names if self.side[a] == "input"]
        after = [a for a in adapter_names if self.side[a] == "output"]
        h = x
        if before:
            h = h.to(compute)
            for a in before:
                h = self.hamming[a](h)
            h = h.to(x.dtype)
        if not after:
            return base(h)
        y = F.linear(h, base.weight)
        out_dtype = y.dtype
        y = y.to(compute)
        for a in after:
            y = self.hamming[a](y)
        y = y.to(out_dtype)
        return y if base.bias is None else y + base.bias

    def adapter_output(self, x: torch.Tensor, base_output: torch.Tensor,
                       adapter_names: list[str], *args, **kwargs):
        """Adapted output from a precomputed ``base_output = x W0^T + b``: output-side maps
        only need ``(base_output - b) D + b``; an input-side map needs the base applied to
        ``x D`` (a second base call)."""
        if any(self.side[a] == "input" for a in adapter_names):
            return self.adapter_forward(x, adapter_names, *args, **kwargs)
        bias = self.base_layer.bias
        y = base_output.to(self._compute_dtype())
        if bias is not None:
            y = y - bias.to(y.dtype)
        for a in adapter_names:
            y = self.hamming[a](y)
        y = y.to(base_output.dtype)
        return y if bias is None else y + bias

    # ------------------------------------------------------------ merge
    def _merge_sequence(self, adapter_names: list[str]) -> list[str]:
        # Output-side maps compose after the (merged) base in added order; input-side maps
        # compose before it, so the last-added input map is folded in first.
        after = [a for a in adapter_names if self.side[a] == "output"]
        before = [a for a in adapter_names if self.side[a] == "input"]
        return after + before[::-1]

    def _fold(self, W: torch.Tensor, name: str, inverse: bool) -> torch.Tensor:
        """``W -> D^T W`` (output side) or ``W D^T`` (input side); ``inverse`` undoes it."""
        rot: Parametrization = self.hamming[name]
        if self.side[name] == "output":  # D^T W = (W^T D)^T ; D W = (W^T D^T)^T
            return rot(W.T, transpose=inverse).T
        return rot(W, transpose=not inverse)  # W D^T ; W D

    @torch.no_grad()
    def _merge(self, adapter_names: list[str], safe_merge: bool) -> None:
        weight = self.base_layer.weight
        W = weight.to(self._compute_dtype())
        for a in self._merge_sequence(adapter_names):
            W = self._fold(W, a, inverse=False)
        if safe_merge and not torch.isfinite(W).all():
            raise ValueError(f"merging adapters {adapter_names} gives non-finite weights; "
                             f"the layer was left unmerged")
        weight.copy_(W.to(weight.dtype))

    @torch.no_grad()
    def _unmerge(self, adapter_names: list[str]) -> None:
        weight = self.base_layer.weight
        W = weight.to(self._compute_dtype())
        for a in reversed(self._merge_sequence(adapter_names)):
            W = self._fold(W, a, inverse=True)
        weight.copy_(W.to(weight.dtype))

    def delta_matrix(self, adapter_name: str) -> torch.Tensor:
        """The dense ``D`` of one adapter (``d x d``; for inspection and tests)."""
        return self.hamming[adapter_name].dense(self._compute_dtype())

    def extra_repr(self) -> str:
        base = self.base_layer
        return (f"in_features={base.in_features}, out_features={base.out_features}, "
                f"side={self.side}, {super().extra_repr()}")
