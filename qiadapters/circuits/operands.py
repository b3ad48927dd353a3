r"""What applies ``D``: the Hamming blocks, given lazily, and the one choice of route.

The blocks of a :class:`~qiadapters.circuits.block_layout.BlockLayout` come in one of three
forms, each a step further along the path to the output:

* a list of built blocks ``[(r, C(n,k), C(n,k)) for k in orders]`` (any parametrization);
* :class:`Compounds`: the weight-1 matrices ``U`` (block ``k`` is ``C_k(U)``), each block
  built only if its route needs it;
* :class:`Operands`: routes chosen, what :mod:`.apply` applies -- per order the built block
  or :class:`ModeWise` (``C_k(U)`` applied without building it, :mod:`.modewise`), or the
  whole ``(r, b, b)`` blocks (:func:`assemble`).

The route is chosen in one place, :func:`plan_route`, from the shapes and the device type
(no data, no sync; the cost model is :mod:`.route_cost`): per order ``k >= 2`` built or
mode-wise (:func:`~qiadapters.circuits.route_cost.use_modewise`), then, with every order
built, whole blocks or order by order (:func:`~qiadapters.circuits.route_cost.use_whole`).
:func:`resolve` turns blocks into :class:`Operands` by it; the inference cache and the
batched build of a model's layers plan by it too.  All routes are exact.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Collection, NamedTuple, Optional, Sequence, Union

import torch

from . import cache
from .basis import block_dim
from .block_layout import BlockLayout
from .compound import compounds
from .modewise import mode_tables
from .route_cost import use_modewise, use_whole

__all__ = ["ModeWise", "Compounds", "Operands", "Route", "plan_route", "resolve", "assemble",
           "AssembleBlocks"]


class Route(NamedTuple):
    """How ``D`` is applied to some number of rows: ``modewise[o]`` is True where order
    ``orders[o]`` is applied mode-wise (its block never built), False where its built block
    is applied; ``whole``: every order built and applied, with the pad, as whole blocks."""

    modewise: tuple[bool, ...]
    whole: bool


def plan_route(layout: BlockLayout, tokens: int, device_type: str,
               built: Collection[int] = (),
               modewise: Optional[Sequence[bool]] = None) -> Route:
    """The route that applies ``D`` of ``layout`` to ``tokens`` rows on ``device_type``.

    ``built``: the orders whose blocks come built (they cost only their application).
    ``modewise``: the per-order routes where they are fixed already (blocks given as a list:
    a tensor is applied as it is, a :class:`ModeWise` mode-wise); by default each order
    ``k`` is mode-wise where :func:`~qiadapters.circuits.route_cost.use_modewise` estimates
    it cheaper for the layout's ``r`` blocks.  Whole blocks where no order is mode-wise and
    :func:`~qiadapters.circuits.route_cost.use_whole` says so."""
    if modewise is None:
        modewise = tuple(use_modewise(tokens, layout.n, k, device_type, k in built,
                                      layout.blocks) for k in layout.orders)
    modewise = tuple(modewise)
    return Route(modewise, not any(modewise) and use_whole(layout.block_size, layout.sizes))


class ModeWise(NamedTuple):
    """An order's operand for the mode-wise route: ``C_k(U)`` given by ``U: (r|1, n, n)``,
    and the route's index tables ``mode_tables(n, k)``."""

    U: torch.Tensor
    k: int
    tables: tuple


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

    def built_orders(self) -> tuple[int, ...]:
        """The orders whose blocks came built."""
        return tuple(k for k in self.orders if self._built(k) is not None)

    def with_blocks(self) -> "Compounds":
        """The same operand with every block built (kept by the inference cache)."""
        return replace(self, built=tuple(self.build()))

    def operands(self, tokens: int, device_type: str, route: Optional[Route] = None) -> list:
        """Per order, what :func:`~qiadapters.circuits.apply.apply_block` applies to
        ``tokens`` rows: the built block, or :class:`ModeWise` where the route says so
        (``route``, or :func:`plan_route` for ``tokens`` rows on ``device_type``).  The blocks
        wanted are built together, sharing lower orders; a block that came built costs only
        its application."""
        if route is None:
            n = self.U.shape[-1]
            orders_only = BlockLayout(n, self.orders, self.blocks, 0,
                                      self.blocks * sum(block_dim(n, k) for k in self.orders))
            route = plan_route(orders_only, tokens, device_type, self.built_orders())
        mode = route.modewise
        blocks = iter(self.build([k for k, m in zip(self.orders, mode) if not m]))
        return [ModeWise(self.U, k, self._mode_tables(k)) if m else next(blocks)
                for k, m in zip(self.orders, mode)]

    def _mode_tables(self, k: int) -> tuple:
        if self.modes is not None:
            return self.modes[k]
        return cache.tables(mode_tables, self.U.shape[-1], k, device=self.U.device)


class Operands(NamedTuple):
    """What :func:`~qiadapters.circuits.apply.apply_blocks` applies, routes chosen: per order
    the built block or :class:`ModeWise`; ``whole``: the ``(r, b, b)`` whole blocks (every
    order's block and the identity pad, :func:`assemble`) when ``D`` is applied whole, else
    None (with whole blocks ``orders`` is not read and may be empty)."""

    orders: list
    whole: Optional[torch.Tensor] = None


def resolve(blocks: Union[Sequence[torch.Tensor], Compounds, Operands], layout: BlockLayout,
            tokens: int, device_type: str, route: Optional[Route] = None) -> Operands:
    """The operands for ``tokens`` rows, by the route (``route``, or :func:`plan_route`):
    each :class:`Compounds` order built or mode-wise, and the whole blocks assembled where
    ``D`` is applied whole.  Resolve once to apply the same ``D`` to several inputs (an
    output-side layer's bias)."""
    if isinstance(blocks, Operands):
        return blocks
    if isinstance(blocks, Compounds):
        if route is None:
            route = plan_route(layout, tokens, device_type, blocks.built_orders())
        blocks = blocks.operands(tokens, device_type, route)
    else:
        blocks = list(blocks)
        if route is None:
            route = plan_route(layout, tokens, device_type,
                               modewise=[isinstance(B, ModeWise) for B in blocks])
    return Operands(blocks, assemble(blocks, layout) if route.whole else None)


def assemble(blocks: Sequence[torch.Tensor], layout: BlockLayout) -> torch.Tensor:
    """The ``r`` whole blocks ``B_{i,k_1} + B_{i,k_2} + ... + I_pad``: ``(r, b, b)`` from the
    orders' built blocks ``[(r, C(n,k), C(n,k))]``, written into one zero tensor by one
    autograd node whose backward hands each block a view of the gradient (no zero-widened
    copies, no slice assignments recorded by autograd)."""
    ref = blocks[0]
    pad = ref[:, :1, :1].expand(ref.shape[0], layout.pad, layout.pad)  # its shape only
    return AssembleBlocks.apply(*blocks, pad)


class AssembleBlocks(torch.autograd.Function):
    """:func:`assemble` as one autograd node: ``(B_1, B_2, ..., B_k, pad) -> (r, b, b)`` for
    blocks ``B_k: (r, m_k, m_k)``, on the diagonal from the top left, then the identity on
    the last ``p`` diagonal entries, ``b = sum_k m_k + p``.  ``pad`` says ``p`` by its shape
    ``(r, p, p)`` (any tensor of that shape, never read: an expanded view costs nothing);
    the identity is one write into the diagonal, not a built ``eye`` copied in.  Tensors
    only: ``torch.compile`` traces an ``autograd.Function``'s integer arguments as
    tensors."""

    @staticmethod
    def forward(ctx, *blocks):
        *blocks, pad = blocks
        p = pad.shape[-1]
        b = sum(B.shape[-1] for B in blocks) + p
        W = blocks[0].new_zeros(blocks[0].shape[0], b, b)
        start = 0
        for B in blocks:
            m = B.shape[-1]
            W[:, start:start + m, start:start + m] = B
            start += m
        if p:
            W[:, start:, start:].diagonal(dim1=-2, dim2=-1).fill_(1)
        ctx.sizes = [B.shape[-1] for B in blocks]
        return W

    @staticmethod
    def backward(ctx, grad):
        out, start = [], 0
        for m, needed in zip(ctx.sizes, ctx.needs_input_grad):
            out.append(grad[:, start:start + m, start:start + m] if needed else None)
            start += m
        return (*out, None)  # the pad's shape holder gets no gradient
