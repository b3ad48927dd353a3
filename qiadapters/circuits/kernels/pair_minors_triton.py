r"""The order-2 compound of a batch of blocks as Triton kernels (imports ``triton``).

Forward, for ``U: (R, n, n)`` and the pairs ``x = (a, b)``, ``y = (c, d)`` (``a < b``,
``c < d``, lexicographic: the tables ``first``, ``second`` of
:func:`~qiadapters.circuits.compound.pair_tables`):

.. math:: C_2(U)_{x,y} = U_{ac} U_{bd} - U_{ad} U_{bc},

one program per block and ``BX x BY`` tile of the ``(m, m)`` output, ``m = C(n,2)``, four
gathers of ``U`` per entry.  Backward: the derivative of a 2x2 determinant is its cofactor,
so with ``s(p, p') = +1`` if ``p < p'`` else ``-1`` and ``[p p']`` the position of the pair
``{p, p'}`` in the lexicographic order (``i (2n - i - 1) / 2 + j - i - 1`` for ``i < j``),

.. math:: \partial U_{pq} = \sum_{p' \ne p} \sum_{q' \ne q}
          s(p, p')\, s(q, q')\, G_{[p p'], [q q']}\, U_{p' q'},

one program per block and tile of rows of ``dU``, gathering ``G`` (no scatter, no atomics:
deterministic).  Both passes cost ``O(R n^4)`` -- the output's size -- in one launch each.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["TritonPairMinors", "pair_minors_forward", "pair_minors_backward"]


@triton.jit
def _forward_kernel(U, first, second, out, n, m, BX: tl.constexpr, BY: tl.constexpr):
    blk = tl.program_id(0).to(tl.int64)
    xs = tl.program_id(1) * BX + tl.arange(0, BX)
    ys = tl.program_id(2) * BY + tl.arange(0, BY)
    mx, my = xs < m, ys < m
    a = tl.load(first + xs, mask=mx, other=0)
    b = tl.load(second + xs, mask=mx, other=0)
    c = tl.load(first + ys, mask=my, other=0)
    d = tl.load(second + ys, mask=my, other=0)
    mask = mx[:, None] & my[None, :]
    base = U + blk * n * n
    u_ac = tl.load(base + a[:, None] * n + c[None, :], mask=mask, other=0.0)
    u_bd = tl.load(base + b[:, None] * n + d[None, :], mask=mask, other=0.0)
    u_ad = tl.load(base + a[:, None] * n + d[None, :], mask=mask, other=0.0)
    u_bc = tl.load(base + b[:, None] * n + c[None, :], mask=mask, other=0.0)
    tl.store(out + blk * m * m + xs[:, None] * m + ys[None, :], u_ac * u_bd - u_ad * u_bc,
             mask=mask)


@triton.jit
def _backward_kernel(U, G, dU, n, m, BP: tl.constexpr, BQ: tl.constexpr):
    blk = tl.program_id(0).to(tl.int64)
    ps = tl.program_id(1) * BP + tl.arange(0, BP)
    qs = tl.arange(0, BQ)
    mp, mq = ps < n, qs < n
    u = U + blk * n * n
    g = G + blk * m * m
    acc = tl.full([BP, BQ], 0.0, U.dtype.element_ty)  # not tl.zeros (kernels/__init__.py)
    for pp in range(0, n):
        lo_p = tl.minimum(ps, pp)
        hi_p = tl.maximum(ps, pp)
        row = lo_p * (2 * n - lo_p - 1) // 2 + hi_p - lo_p - 1       # [p p'], (BP,)
        s_p = tl.where(ps < pp, 1.0, -1.0)
        ok_p = mp & (ps != pp)
        for qq in range(0, n):
            lo_q = tl.minimum(qs, qq)
            hi_q = tl.maximum(qs, qq)
            col = lo_q * (2 * n - lo_q - 1) // 2 + hi_q - lo_q - 1   # [q q'], (BQ,)
            s_q = tl.where(qs < qq, 1.0, -1.0)
            ok = ok_p[:, None] & (mq & (qs != qq))[None, :]
            grad = tl.load(g + row[:, None] * m + col[None, :], mask=ok, other=0.0)
            acc += (s_p[:, None] * s_q[None, :]) * grad * tl.load(u + pp * n + qq)
    tl.store(dU + blk * n * n + ps[:, None] * n + qs[None, :], acc,
             mask=mp[:, None] & mq[None, :])


def _tile(size: int, cap: int) -> int:
    return min(triton.next_power_of_2(max(size, 1)), cap)


def pair_minors_forward(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor
                        ) -> torch.Tensor:
    """``C_2(U)``: ``U: (..., n, n)`` -> ``(..., m, m)`` (module docstring)."""
    n = U.shape[-1]
    m = first.numel()
    flat = U.reshape(-1, n, n).contiguous()
    out = U.new_empty(flat.shape[0], m, m)
    if flat.shape[0] and m:
        BX = BY = _tile(m, 32)
        grid = (flat.shape[0], triton.cdiv(m, BX), triton.cdiv(m, BY))
        _forward_kernel[grid](flat, first.contiguous(), second.contiguous(), out, n, m,
                              BX=BX, BY=BY)
    return out.view(*U.shape[:-2], m, m)


def pair_minors_backward(U: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``dU`` from the output's gradient ``grad: (..., m, m)`` (module docstring)."""
    n = U.shape[-1]
    m = n * (n - 1) // 2
    flat = U.reshape(-1, n, n).contiguous()
    g = grad.to(U.dtype).reshape(-1, m, m).contiguous()
    dU = torch.empty_like(flat)
    if flat.shape[0]:
        BQ = triton.next_power_of_2(n)
        BP = _tile(n, 16)
        _backward_kernel[(flat.shape[0], triton.cdiv(n, BP))](flat, g, dU, n, m, BP=BP, BQ=BQ)
    return dU.view(U.shape)


class TritonPairMinors(torch.autograd.Function):
    """:class:`~qiadapters.circuits.compound.PairMinors` by the kernels: ``U: (..., n, n)``,
    the pair tables ``first``, ``second: (C(n,2),)`` on ``U``'s device -> ``(..., C(n,2),
    C(n,2))``.  Only ``U`` is saved.  A backward that must itself be differentiable
    (``create_graph=True``) runs the eager route's, which is."""

    @staticmethod
    def forward(ctx, U, first, second):
        ctx.save_for_backward(U, first, second)
        return pair_minors_forward(U, first, second)

    @staticmethod
    def backward(ctx, grad):
        U, first, second = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: through the eager route
            from ..compound import PairMinors

            return torch.autograd.grad(PairMinors.apply(U, first, second), U, grad,
                                       create_graph=True)[0], None, None
        return pair_minors_backward(U, grad), None, None
