r"""Applying the block-diagonal ``D`` to activations, without a dense matrix.

Row-vector convention: :func:`apply_blocks` returns ``x D`` (``(..., d)`` -> ``(..., d)``),
with ``transpose=True`` ``x D^T``.  Cost ``O(tokens * r * sum_k C(n,k)^2)`` (``r b^2`` with
whole blocks); the dense ``d x d`` matrix is never formed (:func:`dense` builds it for tests
and inspection only).

:func:`apply_blocks` is the one way ``D`` is applied.  It resolves its blocks
(:func:`~qiadapters.circuits.operands.resolve`: the route is chosen there), then either
applies the whole blocks by one batched product (:func:`apply_whole`), or splits ``x`` into
the per-order pieces ``(..., r, C(n,k))``, applies one batched product per order
(:func:`apply_block`: the built block, or mode-wise, :mod:`.modewise`) and passes the pad
through; the tail passes through.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

from . import kernels
from .basis import block_dim
from .block_layout import BlockLayout
from .modewise import apply_compound
from .operands import Compounds, ModeWise, Operands, resolve

__all__ = ["apply_blocks", "apply_head", "apply_block", "apply_whole", "per_block_product",
           "dense"]


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
    one ``bmm`` over the blocks on ``x`` viewed ``(r, tokens, m)`` (an ``einsum`` would lay
    its operands out again)."""
    lead = x.shape[:-2]
    B = B.to(x.dtype)
    if kernels.use_kernels(x, B) and kernels.block_product_supported(x, B, transpose):
        return kernels.block_product(x, B, transpose)  # Triton, on a GPU (kernels/__init__.py)
    y = torch.bmm(x.reshape(-1, *x.shape[-2:]).transpose(0, 1),
                  B.transpose(-1, -2) if transpose else B)
    return y.transpose(0, 1).reshape(*lead, *y.shape[::2])


def apply_whole(x: torch.Tensor, W: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x W`` (``x W^T``) per whole block: ``x: (..., r, b)``, ``W: (r, b, b)``."""
    return per_block_product(x, W, transpose)


def apply_blocks(x: torch.Tensor, blocks: Union[Sequence[torch.Tensor], Compounds, Operands],
                 layout: BlockLayout, transpose: bool = False) -> torch.Tensor:
    """``x D`` (or ``x D^T``) for ``x: (..., d)`` and ``blocks[o]: (r, C(n,k_o), C(n,k_o))``,
    :class:`~qiadapters.circuits.operands.Compounds` or
    :class:`~qiadapters.circuits.operands.Operands` (routes chosen by
    :func:`~qiadapters.circuits.operands.resolve`, module docstring).

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
    """The dense ``d x d`` matrix ``D`` (for tests and inspection)."""
    ref = blocks[0]
    parts = []
    for i in range(layout.blocks):
        parts += [B[i] for B in blocks]
        parts.append(torch.eye(layout.pad, dtype=ref.dtype, device=ref.device))
    parts.append(torch.eye(layout.tail, dtype=ref.dtype, device=ref.device))
    return torch.block_diag(*parts)
