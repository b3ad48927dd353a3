r"""An orthogonal block-diagonal map about a point, differentiated from its output.

.. math:: z = (y - c)\, D + c = y D + (c - c D)

for ``y: (..., d)``, a point ``c: (d,)`` (an output-side adapter's base bias) and ``D`` given
as resolved :class:`~qiadapters.circuits.operands.Operands` with every block built.  The
forward is :func:`~qiadapters.circuits.apply.apply_blocks` of ``y`` and of the one row
``c``, so at ``D = I`` the output is ``y`` bit for bit.

The gradient of a block ``B`` is :math:`(y - c)^T \partial z` summed over the tokens.  Since
``D`` is orthogonal, :math:`y - c = (z - c) D^T`, so

.. math:: \partial B = B\, \big[(z - c)^T \partial z\big], \qquad
          \partial y = \partial z\, D^T, \qquad
          \partial c = \textstyle\sum_\text{tokens} (\partial z - \partial y),

the same three token-sized products as differentiating ``y D`` (``y^T dz``, ``dz D^T``, and
the forward), plus one ``b x b`` product per block.  What is saved for the backward is the
output ``z`` instead of the input ``y``: the layer that follows often keeps ``z`` anyway
(an activation keeps its input; attention, which keeps reshaped copies of its queries and
values, does not), while ``y`` would be held for this map alone -- one ``tokens x d`` tensor
per adapted layer (``benchmarks/speed/notes.md``, "Smaller blocks, made fast").  The
backward is written in differentiable operations, so higher-order gradients work.  Exact up
to the orthogonality of ``D`` (float rounding).
"""
from __future__ import annotations

from typing import Optional

import torch

from .apply import apply_head
from .block_layout import BlockLayout
from .operands import ModeWise, Operands
from .precision import without_autocast

__all__ = ["apply_about", "supports"]


def supports(operands: Operands) -> bool:
    """Whether :func:`apply_about` takes these operands: every block built (no order applied
    mode-wise, whose ``U`` is not a block)."""
    return not any(isinstance(B, ModeWise) for B in operands.orders)


def apply_about(y: torch.Tensor, center: Optional[torch.Tensor], operands: Operands,
                layout: BlockLayout) -> torch.Tensor:
    """``(y - c) D + c`` (``y D`` without a ``center``) for ``y: (..., d)``, ``c: (d,)``,
    saving the output for the backward (module docstring).  ``operands``: resolved, every
    block built (:func:`supports`).  The identity tail passes through."""
    if not supports(operands):
        raise ValueError("apply_about needs every block built; got an order applied "
                         "mode-wise (apply it with apply_blocks instead)")
    r, b = layout.blocks, layout.block_size
    blocks = (operands.whole,) if operands.whole is not None else tuple(operands.orders)
    tail = layout.tail  # without one, no slice (a view node each way) is made
    head = (y[..., : r * b] if tail else y).unflatten(-1, (r, b))
    c = None if center is None else (center[: r * b] if tail else center).unflatten(-1, (r, b))
    out = _AboutPoint.apply(head, c, *blocks).flatten(-2)
    return torch.cat([out, y[..., r * b:]], -1) if tail else out


def _operands(blocks, b: int) -> Operands:
    """The whole ``(r, b, b)`` blocks, or one block per order (one order without a pad is
    both, and either reading applies it alike)."""
    return Operands([], blocks[0]) if blocks[0].shape[-1] == b else Operands(list(blocks))


def _apply_row(c: torch.Tensor, ops: Operands) -> torch.Tensor:
    """``c D`` for the one row ``c: (r, b)`` (one ``bmm`` with whole blocks)."""
    if ops.whole is None:
        return apply_head(c, ops)
    return torch.bmm(c.unsqueeze(-2), ops.whole.to(c.dtype)).squeeze(-2)


def _rows(t: torch.Tensor, ops: Operands) -> list[torch.Tensor]:
    """``t: (..., r, b)`` as the rows each block tensor of ``ops`` acts on, ``[(r, tokens,
    m)]`` (the pad dropped)."""
    head = t.reshape(-1, *t.shape[-2:]).transpose(0, 1)
    if ops.whole is not None:
        return [head]
    sizes = [B.shape[-1] for B in ops.orders]
    return list(head.split(sizes + [t.shape[-1] - sum(sizes)], dim=-1))[:len(sizes)]


class _AboutPoint(torch.autograd.Function):
    """:func:`apply_about` on the blocks' features, ``(..., r, b)`` and a center ``(r, b)``,
    as one autograd node (module docstring).  Its arguments are tensors only: the layout is
    read from their shapes (``torch.compile`` traces an ``autograd.Function``'s other
    arguments as tensors)."""

    @staticmethod
    def forward(ctx, y, center, *blocks):
        ops = _operands(blocks, y.shape[-1])
        with without_autocast(y):
            z = apply_head(y, ops)
            # token-major, so that the caller's flatten is a view of what is saved (the
            # products leave the blocks' axis outermost)
            if center is None:
                z = z.contiguous()
            else:
                z = torch.add(z, center - _apply_row(center, ops),
                              out=torch.empty(z.shape, dtype=z.dtype, device=z.device))
        ctx.save_for_backward(z, center, *blocks)
        return z

    @staticmethod
    def backward(ctx, dz):
        saved = ctx.saved_tensors  # unpacked once (checkpointing allows no second unpack)
        with without_autocast(dz):
            return _AboutPoint._backward(ctx, dz.to(saved[0].dtype), *saved)

    @staticmethod
    def _backward(ctx, dz, z, center, *blocks):
        ops = _operands(blocks, dz.shape[-1])
        need_y, need_center, *need_blocks = ctx.needs_input_grad
        dy = dcenter = None
        if need_y or need_center:
            dy = apply_head(dz, ops, transpose=True)
        if need_center:
            dcenter = (dz - dy).reshape(-1, *dz.shape[-2:]).sum(0)
        grads = [None] * len(blocks)
        if any(need_blocks):
            u = z if center is None else z - center
            for i, (B, zu, g) in enumerate(zip(blocks, _rows(u, ops), _rows(dz, ops))):
                if need_blocks[i]:
                    grads[i] = B @ (zu.transpose(-1, -2) @ g).to(B.dtype)
        return (dy if need_y else None, dcenter, *grads)
