r"""``x B`` per diagonal block as Triton kernels (imports ``triton``).

For ``x: (T, r, K)`` (any leading dims flattened to ``T`` rows) and ``B: (r, K, N)``:

.. math:: y_{t,i,:} = x_{t,i,:} B_i, \qquad
          \partial x_{t,i,:} = \partial y_{t,i,:} B_i^T, \qquad
          \partial B_i = \textstyle\sum_t x_{t,i,:}^T\, \partial y_{t,i,:}.

The forward and the input gradient are one kernel (:func:`_product_kernel`, the gradient
reading ``B`` through transposed strides): one program per block and ``BT x BN`` tile of
rows and output features, a loop over ``K`` in tiles of ``BK``.  The block gradient is a
second kernel (one program per block and ``BK x BN`` tile of ``dB``, a loop over the rows).
Operands are read through their strides -- ``x`` as it lies in the activations
(``(..., r, m)``: features of one block contiguous), ``B`` expanded or transposed -- and
``y`` is written token-major, the layout the caller's ``flatten`` views; the eager route's
``bmm`` needs the blocks' axis outermost and copies on the way in and out.  Products in IEEE
float32 (no TF32), accumulated in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["TritonBlockProduct", "block_product_forward", "block_grad"]


@triton.jit
def _product_kernel(X, B, Y, T, K, N, sx_t, sx_r, sx_k, sb_r, sb_k, sb_n, sy_t, sy_r,
                    BT: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    ts = (tl.program_id(1) * BT + tl.arange(0, BT)).to(tl.int64)
    ns = tl.program_id(2) * BN + tl.arange(0, BN)
    mt, mn = ts < T, ns < N
    acc = tl.full([BT, BN], 0.0, tl.float32)  # not tl.zeros (kernels/__init__.py)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        mk = ks < K
        xt = tl.load(X + i * sx_r + ts[:, None] * sx_t + ks[None, :] * sx_k,
                     mask=mt[:, None] & mk[None, :], other=0.0)
        bt = tl.load(B + i * sb_r + ks[:, None] * sb_k + ns[None, :] * sb_n,
                     mask=mk[:, None] & mn[None, :], other=0.0)
        acc += tl.dot(xt, bt, input_precision="ieee")
    tl.store(Y + i * sy_r + ts[:, None] * sy_t + ns[None, :], acc,
             mask=mt[:, None] & mn[None, :])


@triton.jit
def _grad_kernel(X, G, dB, T, K, N, sx_t, sx_r, sx_k, sg_t, sg_r, sg_n,
                 BT: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    ks = tl.program_id(1) * BK + tl.arange(0, BK)
    ns = tl.program_id(2) * BN + tl.arange(0, BN)
    mk, mn = ks < K, ns < N
    acc = tl.full([BK, BN], 0.0, tl.float32)
    for t0 in range(0, T, BT):
        ts = (t0 + tl.arange(0, BT)).to(tl.int64)
        mt = ts < T
        xt = tl.load(X + i * sx_r + ks[:, None] * sx_k + ts[None, :] * sx_t,
                     mask=mk[:, None] & mt[None, :], other=0.0)      # (BK, BT): x^T
        gt = tl.load(G + i * sg_r + ts[:, None] * sg_t + ns[None, :] * sg_n,
                     mask=mt[:, None] & mn[None, :], other=0.0)      # (BT, BN)
        acc += tl.dot(xt, gt, input_precision="ieee")
    tl.store(dB + i * K * N + ks[:, None] * N + ns[None, :], acc,
             mask=mk[:, None] & mn[None, :])


def _tile(size: int) -> int:
    """A tile edge for ``size``: a power of two in ``[16, 64]`` (``tl.dot`` needs 16)."""
    return min(max(triton.next_power_of_2(size), 16), 64)


def block_product_forward(x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``x B`` per block: ``x: (..., r, K)``, ``B: (r, K, N)`` (any strides) ->
    ``(..., r, N)``, contiguous."""
    r, K = x.shape[-2:]
    N = B.shape[-1]
    X = x.reshape(-1, r, K)
    T = X.shape[0]
    Y = x.new_empty(T, r, N)
    BT, BK, BN = 64, _tile(K), _tile(N)
    grid = (r, triton.cdiv(T, BT), triton.cdiv(N, BN))
    _product_kernel[grid](X, B, Y, T, K, N, *X.stride(), *B.stride(), Y.stride(0),
                          Y.stride(1), BT=BT, BK=BK, BN=BN)
    return Y.view(*x.shape[:-1], N)


def block_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``dB_i = sum_t x_{t,i}^T grad_{t,i}``: ``x: (..., r, K)``, ``grad: (..., r, N)`` ->
    ``(r, K, N)``."""
    r, K = x.shape[-2:]
    N = grad.shape[-1]
    X, G = x.reshape(-1, r, K), grad.reshape(-1, r, N)
    dB = x.new_empty(r, K, N)
    BT, BK, BN = 64, _tile(K), _tile(N)
    grid = (r, triton.cdiv(K, BK), triton.cdiv(N, BN))
    _grad_kernel[grid](X, G, dB, X.shape[0], K, N, *X.stride(), *G.stride(), BT=BT, BK=BK,
                       BN=BN)
    return dB


def _eager(x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The same product in differentiable torch operations (for double backward)."""
    return torch.einsum("...rk,rkn->...rn", x, B)


class TritonBlockProduct(torch.autograd.Function):
    """:func:`~qiadapters.circuits.apply.per_block_product` by the kernels: ``x: (..., r, m)``,
    ``B: (r, m, p)`` -> ``(..., r, p)``; with ``transpose``, ``B: (r, p, m)`` read
    transposed (``x B^T``, no copy).  Float32.  A backward that must itself be
    differentiable (``create_graph=True``) runs in torch operations."""

    @staticmethod
    def forward(ctx, x, B, transpose):
        ctx.transpose = transpose
        ctx.save_for_backward(x, B)
        return block_product_forward(x, B.transpose(-1, -2) if transpose else B)

    @staticmethod
    def backward(ctx, grad):
        x, B = ctx.saved_tensors
        Bm = B.transpose(-1, -2) if ctx.transpose else B        # (r, K, N): y = x Bm
        need_x, need_B, _ = ctx.needs_input_grad
        if torch.is_grad_enabled():  # double backward: in differentiable operations
            inputs = [t for t, need in ((x, need_x), (B, need_B)) if need]
            grads = iter(torch.autograd.grad(_eager(x, Bm), inputs, grad, create_graph=True))
            return (next(grads) if need_x else None, next(grads) if need_B else None, None)
        dx = block_product_forward(grad, Bm.transpose(-1, -2)) if need_x else None
        dB = None
        if need_B:
            dB = block_grad(x, grad)
            dB = dB.transpose(-1, -2) if ctx.transpose else dB
        return dx, dB, None
