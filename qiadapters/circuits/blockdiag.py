r"""Block-diagonal orthogonal maps built from Hamming blocks, applied without a dense matrix.

Layout of the ``d x d`` map ``D`` used by every Hamming adapter (``docs/conventions.md``):

.. math:: D = \bigoplus_{i<r} \Big[ \bigoplus_{k \in K} B_{i,k} \oplus I_{\text{pad}} \Big]
              \oplus I_{\text{tail}},

``r`` blocks of size ``b = sum_k C(n,k) + pad`` each, then an identity tail of
``d - r b`` dimensions.  ``B_{i,k}: (C(n,k), C(n,k))`` is the weight-k block of block ``i``.

Row-vector convention: :func:`apply_blocks` returns ``x D`` (``(..., d)`` -> ``(..., d)``),
:func:`apply_blocks` with ``transpose=True`` returns ``x D^T``.  Cost
``O(tokens * r * sum_k C(n,k)^2)``; the dense ``d x d`` matrix is never formed
(:func:`dense` builds it for tests and merging only).

:func:`apply_blocks` is the one way ``D`` is applied.  Either it splits ``x`` into the
per-order pieces ``(..., r, C(n,k))``, applies one batched product per order
(:func:`apply_block`) and passes the pad through, or -- where the whole ``b x b`` block costs
at most :data:`~qiadapters.circuits.route_cost.WHOLE_MAX_EXTRA` more multiply-adds per
feature than the per-order products
(:func:`~qiadapters.circuits.route_cost.use_whole`) -- it applies the whole blocks (the
orders' blocks and the pad's identity, :func:`assemble`) by one product (:func:`apply_whole`);
the tail passes through.  The blocks come built (a list of tensors, any parametrization), as
:class:`Compounds`, their weight-1 matrices ``U`` (block ``k`` is ``C_k(U)``), or as
:class:`Operands`, routes chosen (:func:`resolve`).  With :class:`Compounds` each order
``k >= 2`` is applied by whichever route :func:`~qiadapters.circuits.route_cost.use_modewise`
estimates cheaper for this many tokens on this device -- the built block ``x C_k(U)``, or
mode-wise without building it (:mod:`~qiadapters.circuits.modewise`: ``v -> U^T Omega(v) U``
for ``k = 2``).  All are exact; merging (:func:`dense`) always builds.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Optional, Sequence, Union

import torch

from .. import checks
from . import cache
from .basis import block_dim
from .compound import compounds
from .modewise import apply_compound, mode_tables
from .route_cost import use_modewise, use_whole


@dataclass(frozen=True)
class BlockLayout:
    """Sizes of the block-diagonal map: ``n`` qubits, ``orders``, ``blocks`` = r, ``pad``
    identity dims per block, ``dim`` = d in total (the identity tail is what is left)."""

    n: int
    orders: tuple[int, ...]
    blocks: int
    pad: int
    dim: int

    def __post_init__(self):
        checks.integer("blocks", self.blocks, low=1)
        checks.integer("pad", self.pad, low=0)
        # the derived sizes, computed once (read on every forward; plain attributes, which
        # torch.compile reads as constants); not fields: equality, hash and repr ignore them
        sizes = tuple(block_dim(self.n, k) for k in self.orders)
        size = sum(sizes) + self.pad
        object.__setattr__(self, "_derived", (sizes, sum(sizes), size,
                                              self.dim - self.blocks * size))
        if self.blocks * self.block_size > self.dim:
            raise ValueError(f"blocks={self.blocks} of size {self.block_size} need "
                             f"{self.blocks * self.block_size} dims but dim={self.dim}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """``C(n, k)`` for each order."""
        return self._derived[0]

    @property
    def active(self) -> int:
        """Dims per block acted on by Hamming blocks: ``sum_k C(n,k)``."""
        return self._derived[1]

    @property
    def block_size(self) -> int:
        return self._derived[2]

    @property
    def tail(self) -> int:
        """Identity dims after the last block."""
        return self._derived[3]


class ModeWise(NamedTuple):
    """An order's operand for the mode-wise route: ``C_k(U)`` given by ``U: (r|1, n, n)``,
    and the route's index tables ``mode_tables(n, k)``."""

    U: torch.Tensor
    k: int
    tables: tuple


def apply_block(x: torch.Tensor, B: Union[torch.Tensor, ModeWise],
                transpose: bool = False) -> torch.Tensor:
    """``x B`` (or ``x B^T``) per diagonal block: ``x: (..., r, m)``, ``B: (r, m, m)`` ->
    ``(..., r, m)``.  The per-order product of :func:`apply_blocks`; ``B`` a :class:`ModeWise`
    applies ``C_k(U)`` without building it (:func:`~qiadapters.circuits.modewise.apply_compound`)."""
    if isinstance(B, ModeWise):
        return apply_compound(x, B.U, B.k, B.tables, transpose)
    return per_block_product(x, B, transpose)


def per_block_product(x: torch.Tensor, B: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x B`` (``x B^T``) per block, ``x: (..., r, m)``, ``B: (r, m, p)`` -> ``(..., r, p)``:
    one ``bmm`` over the blocks on ``x`` viewed ``(r, tokens, m)`` (5-18% faster forward +
    backward on CPU than the same ``einsum``, which lays its operands out again)."""
    lead = x.shape[:-2]
    B = B.to(x.dtype)
    y = torch.bmm(x.reshape(-1, *x.shape[-2:]).transpose(0, 1),
                  B.transpose(-1, -2) if transpose else B)
    return y.transpose(0, 1).reshape(*lead, *y.shape[::2])


@dataclass(frozen=True)
class Compounds:
    """The Hamming blocks ``C_k(U_i)`` of a layout's orders, given by ``U: (copies, n, n)``
    (``copies`` = r, or 1 when the r blocks share one ``U``), not built until a route needs them.

    ``compound_tables``: ``{j: tables}`` of :func:`~qiadapters.circuits.compound.compounds`,
    ``modes``: ``{k: mode_tables(n, k)}`` (either None: read from the table cache);
    ``built``: per order, its block already built (the inference cache builds every order,
    a batched build the orders it was asked for) or None; or None for nothing built.
    """

    U: torch.Tensor
    orders: tuple[int, ...]
    blocks: int
    compound_tables: Optional[dict] = None
    modes: Optional[dict] = None
    built: Optional[tuple] = None

    def build(self, orders: Optional[Sequence[int]] = None) -> list[torch.Tensor]:
        """The blocks ``[(r, C(n,k), C(n,k)) for k in orders]`` (default: all orders)."""
        orders = self.orders if orders is None else tuple(orders)
        ready = {k: self._built(k) for k in orders}
        missing = [k for k in orders if ready[k] is None]
        if missing:
            out = compounds(self.U, missing, self.compound_tables)
            ready.update((k, B.expand(self.blocks, *B.shape[1:])) for k, B in zip(missing, out))
        return [ready[k] for k in orders]

    def _built(self, k: int) -> Optional[torch.Tensor]:
        """Order ``k``'s block if it came built, else None."""
        return None if self.built is None else self.built[self.orders.index(k)]

    def with_blocks(self) -> "Compounds":
        """The same operand with every block built (kept by the inference cache)."""
        return replace(self, built=tuple(self.build()))

    def operands(self, tokens: int, device_type: str) -> list:
        """Per order, what :func:`apply_block` applies to ``tokens`` rows: the built block,
        or :class:`ModeWise` where :func:`~qiadapters.circuits.route_cost.use_modewise`
        says so (the blocks wanted are built together, sharing lower orders; a block that
        came built costs only its application)."""
        n = self.U.shape[-1]
        mode = [use_modewise(tokens, n, k, device_type, self._built(k) is not None,
                             self.blocks) for k in self.orders]
        blocks = iter(self.build([k for k, m in zip(self.orders, mode) if not m]))
        return [ModeWise(self.U, k, self._mode_tables(k)) if m else next(blocks)
                for k, m in zip(self.orders, mode)]

    def _mode_tables(self, k: int) -> tuple:
        if self.modes is not None:
            return self.modes[k]
        return cache.tables(mode_tables, self.U.shape[-1], k, device=self.U.device)


class Operands(NamedTuple):
    """What :func:`apply_blocks` applies, routes chosen: per order the built block or
    :class:`ModeWise`; ``whole``: the ``(r, b, b)`` whole blocks (every order's block and the
    identity pad, :func:`assemble`) when ``D`` is applied whole, else None (with whole blocks
    ``orders`` is not read and may be empty)."""

    orders: list
    whole: Optional[torch.Tensor] = None


def assemble(blocks: Sequence[torch.Tensor], layout: BlockLayout) -> torch.Tensor:
    """The ``r`` whole blocks ``B_{i,k_1} + B_{i,k_2} + ... + I_pad``: ``(r, b, b)`` from the
    orders' built blocks ``[(r, C(n,k), C(n,k))]``, written into one zero tensor by one
    autograd node whose backward hands each block a view of the gradient (165 blocks of 128,
    forward + backward on CPU: 1.3 ms, against 1.8 ms concatenating zero-widened rows and
    5.5 ms with autograd's slice assignments)."""
    ref = blocks[0]
    pad = torch.eye(layout.pad, dtype=ref.dtype, device=ref.device).expand(ref.shape[0], -1, -1)
    return AssembleBlocks.apply(*blocks, pad)


class AssembleBlocks(torch.autograd.Function):
    """:func:`assemble` as one autograd node: ``(B_1, B_2, ..., B_last) -> (r, b, b)`` for
    blocks ``B_k: (r, m_k, m_k)``, on the diagonal from the top left, ``b = sum_k m_k``
    (the pad's identity comes as the last block).  Tensors only: ``torch.compile`` traces an
    ``autograd.Function``'s integer arguments as tensors."""

    @staticmethod
    def forward(ctx, *blocks):
        b = sum(B.shape[-1] for B in blocks)
        W = blocks[0].new_zeros(blocks[0].shape[0], b, b)
        start = 0
        for B in blocks:
            m = B.shape[-1]
            W[:, start:start + m, start:start + m] = B
            start += m
        ctx.sizes = [B.shape[-1] for B in blocks]
        return W

    @staticmethod
    def backward(ctx, grad):
        out, start = [], 0
        for m, needed in zip(ctx.sizes, ctx.needs_input_grad):
            out.append(grad[:, start:start + m, start:start + m] if needed else None)
            start += m
        return tuple(out)


def resolve(blocks: Union[Sequence[torch.Tensor], Compounds, Operands], layout: BlockLayout,
            tokens: int, device_type: str) -> Operands:
    """The routes for ``tokens`` rows: each :class:`Compounds` order built or mode-wise
    (:func:`~qiadapters.circuits.route_cost.use_modewise`), then, with every order built,
    applied whole where :func:`~qiadapters.circuits.route_cost.use_whole` says so.  Resolve
    once to apply the same ``D`` to several inputs (an output-side layer's bias)."""
    if isinstance(blocks, Operands):
        return blocks
    if isinstance(blocks, Compounds):
        blocks = blocks.operands(tokens, device_type)
    blocks = list(blocks)
    if any(isinstance(B, ModeWise) for B in blocks) or not use_whole(layout.block_size,
                                                                     layout.sizes):
        return Operands(blocks)
    return Operands(blocks, assemble(blocks, layout))


def apply_whole(x: torch.Tensor, W: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x W`` (``x W^T``) per whole block: ``x: (..., r, b)``, ``W: (r, b, b)``."""
    return per_block_product(x, W, transpose)


def apply_blocks(x: torch.Tensor, blocks: Union[Sequence[torch.Tensor], Compounds, Operands],
                 layout: BlockLayout, transpose: bool = False) -> torch.Tensor:
    """``x D`` (or ``x D^T``) for ``x: (..., d)`` and ``blocks[o]: (r, C(n,k_o), C(n,k_o))``,
    :class:`Compounds` or :class:`Operands` (routes chosen by :func:`resolve`, module docstring).

    Whole blocks: one batched product over the r blocks (:func:`apply_whole`); otherwise each
    order is one (:func:`apply_block`) and the identity pad passes through.  The tail passes
    through untouched.
    """
    ops = resolve(blocks, layout, x.numel() // max(x.shape[-1], 1), x.device.type)
    r, b = layout.blocks, layout.block_size
    out = apply_head(x[..., : r * b].unflatten(-1, (r, b)), ops, transpose).flatten(-2)
    return torch.cat([out, x[..., r * b:]], -1) if layout.tail else out  # one copy fewer


def _width(B: Union[torch.Tensor, ModeWise]) -> int:
    """The features an order's operand acts on: ``C(n, k)``."""
    return block_dim(B.U.shape[-1], B.k) if isinstance(B, ModeWise) else B.shape[-1]


def apply_head(head: torch.Tensor, ops: Operands, transpose: bool = False) -> torch.Tensor:
    """The blocks of ``D`` applied, routes chosen: ``head: (..., r, b)``, the features of the
    ``r`` blocks (the tail left out) -> ``(..., r, b)``.  The orders' widths and the pad are
    read from the shapes (no layout needed)."""
    if ops.whole is not None:
        return apply_whole(head, ops.whole, transpose)
    sizes = [_width(B) for B in ops.orders]
    pad = head.shape[-1] - sum(sizes)
    pieces = head.split(sizes + [pad], dim=-1)
    out = [apply_block(p, B, transpose) for p, B in zip(pieces, ops.orders)]
    if pad:
        out.append(pieces[-1])
    return torch.cat(out, -1)


def dense(blocks: Sequence[torch.Tensor], layout: BlockLayout) -> torch.Tensor:
    """The dense ``d x d`` matrix ``D`` (for merging weights and for tests)."""
    ref = blocks[0]
    parts = []
    for i in range(layout.blocks):
        parts += [B[i] for B in blocks]
        parts.append(torch.eye(layout.pad, dtype=ref.dtype, device=ref.device))
    parts.append(torch.eye(layout.tail, dtype=ref.dtype, device=ref.device))
    return torch.block_diag(*parts)
