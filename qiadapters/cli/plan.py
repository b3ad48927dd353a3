"""Every Hamming adapter configuration that fits a trainable-parameter budget for one layer.

For a layer width ``d`` (the side ``D`` acts on) and a budget of ``N`` parameters per layer,
lists each (orders, blocks, parametrization, layout, shared; with ``--scale`` also with and
without a learned per-feature scale, ``d`` parameters more) whose adapter has at most ``N``
parameters, with its block layout: ``n`` qubits per block, the Hamming dimensions
``sum_k C(n,k)`` each block covers, the identity padding per block and the untouched tail,
the fraction of the ``d`` features the orthogonal map reaches, and what applying ``D`` costs:
multiply-adds per feature and token (:func:`~qiadapters.circuits.route_cost.apply_macs` over
``d``; LoRA rank r costs ``2 r`` per feature of a square layer, peft OFT's blocks of 32 cost
32).  Sorted by parameters (largest first), then by coverage, then by cost.  The row that
``HammingConfig`` builds when given only the orders (the default layout, blocks of about 32
features) is marked ``<- default``, and a last line states the default (orders (1, 2)) and
the paper's layout (``HammingConfig.paper()``) at this width, whether or not they fit.

Every count is in closed form (:meth:`~qiadapters.adapters.hamming.Parametrization.block_params`
and :func:`~qiadapters.circuits.layouts.gate_count`): no circuit or parameter is built, so a
layer of width 16384 (about 160,000 rows) is planned in about half a second, and the command
keeps only the rows it prints.

    qiadapters plan --dim 384 --budget 2000
    qiadapters plan --dim 1536 --budget 10000 --orders 1,2 --orders 1,2,3 --top 5
    qiadapters plan --dim 384 --budget 700 --orders 1,2 --scale
"""
from __future__ import annotations

import argparse
import heapq
from math import comb
from typing import Iterable, Iterator, Optional

from ..adapters.hamming import DEFAULT_LAYOUT, PARAMETRIZATIONS, plan_blocks
from ..adapters.hamming.config import check_orders
from ..circuits import LAYOUTS, max_qubits
from ..circuits.block_layout import BlockLayout
from ..circuits.route_cost import apply_macs
from .. import checks

#: Order sets tried when ``--orders`` is not given (every set contains 1: the paper's
#: ablation found that configurations without order 1 collapse).
DEFAULT_ORDERS = ((1,), (1, 2), (1, 2, 3))


def _orders(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--orders {text!r} is not valid; give comma-separated "
                                         f"integers, e.g. 1,2") from None
    try:
        return check_orders(ks)  # the adapter's own rule, so a row is always buildable
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--orders {text!r} is not valid: {e}") from None


def _top(text: str) -> int:
    try:
        top = int(text)
    except ValueError:
        top = -1
    if top < 0:
        raise argparse.ArgumentTypeError(f"--top {text!r} is not valid; give the number of rows "
                                         f"to print, an integer >= 1, or 0 for all of them")
    return top


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", type=int, required=True, help="layer width d that D acts on")
    p.add_argument("--budget", type=int, required=True, help="trainable parameters per layer")
    p.add_argument("--orders", type=_orders, action="append",
                   help="an order set such as 1,2 (repeatable; default 1 / 1,2 / 1,2,3)")
    p.add_argument("--parametrization", choices=list(PARAMETRIZATIONS), action="append",
                   help="repeatable; default all")
    p.add_argument("--top", type=_top, default=20, help="rows to print (default 20; 0: all)")
    p.add_argument("--scale", action="store_true",
                   help="also list every configuration with a learned per-feature scale "
                        "(HammingConfig(scale=True): d parameters more)")


def _layouts(name: str) -> tuple[Optional[str], ...]:
    """The circuit layouts a parametrization is listed with (None: it has no layout)."""
    return tuple(LAYOUTS) if name == "circuit" else (None,)


def plans(dim: int, budget: int, orders: Iterable[Iterable[int]] = DEFAULT_ORDERS,
          parametrizations: Iterable[str] = tuple(PARAMETRIZATIONS),
          scales: Iterable[bool] = (False,)) -> list[dict]:
    """Every configuration within ``budget`` for width ``dim`` (rows as dicts, sorted);
    ``scales=(False, True)`` lists each with and without a learned scale."""
    return sorted(iter_plans(dim, budget, orders, parametrizations, scales), key=_rank)


def _rank(row: dict) -> tuple:
    """The sort key of :func:`plans`: parameters (largest first), coverage, cost, blocks."""
    return -row["params"], -row["coverage"], row["macs"], row["blocks"]


def iter_plans(dim: int, budget: int, orders: Iterable[Iterable[int]] = DEFAULT_ORDERS,
               parametrizations: Iterable[str] = tuple(PARAMETRIZATIONS),
               scales: Iterable[bool] = (False,)) -> Iterator[dict]:
    """The rows of :func:`plans`, unsorted, one at a time (the arguments are checked first).

    Counted in closed form (:meth:`Parametrization.block_params
    <qiadapters.adapters.hamming.Parametrization.block_params>` and the block layout's
    sizes): no circuit or parameter is built, so a wide layer costs only its rows."""
    dim = checks.integer("dim", dim, low=1)
    budget = checks.integer("budget", budget, low=1)
    order_sets = [check_orders(ks) for ks in orders]
    kinds = [(checks.choice("parametrization", name, PARAMETRIZATIONS), layout)
             for name in parametrizations for layout in _layouts(name)]
    scales = sorted({checks.flag("scale", s) for s in scales})
    return _rows(dim, budget, order_sets, kinds, scales)


def default_layout(dim: int, orders=(1, 2),
                   rule: str = DEFAULT_LAYOUT) -> Optional[BlockLayout]:
    """The layout ``HammingConfig(orders=orders, default_layout=rule)`` gives a ``dim``-wide
    layer (None where the layer is too narrow for the orders)."""
    try:
        return plan_blocks(dim, orders, default_layout=rule)
    except ValueError:
        return None


def _rows(dim, budget, order_sets, kinds, scales=(False,)) -> Iterator[dict]:
    counts = {}  # (parametrization, layout, n) -> parameters per block: few distinct n
    for ks in order_sets:
        default = default_layout(dim, ks)
        n_min = max(2, ks[-1])
        for blocks in range(1, dim // sum(comb(n_min, k) for k in ks) + 1):
            b, layouts = dim // blocks, {}
            n_max = max_qubits(b, ks)
            for name, layout in kinds:
                # plan_blocks' n: the largest that fits b (a power of two for a butterfly)
                n = 1 << (n_max.bit_length() - 1) if layout == "butterfly" else n_max
                if n < n_min:
                    continue
                if (name, layout, n) not in counts:
                    counts[name, layout, n] = PARAMETRIZATIONS[name].block_params(
                        n, layout or "pyramid")
                per_block = counts[name, layout, n]
                for shared in (False, True) if blocks > 1 else (False,):
                    for scale in scales:
                        params = per_block * (1 if shared else blocks) + (dim if scale else 0)
                        if params > budget:
                            continue
                        if n not in layouts:
                            layouts[n] = _layout_columns(BlockLayout(
                                n=n, orders=ks, blocks=blocks,
                                pad=b - sum(comb(n, k) for k in ks), dim=dim))
                        yield dict(params=params, **layouts[n], parametrization=name,
                                   layout=layout or "-", shared=shared, scale=scale,
                                   default=default is not None and blocks == default.blocks
                                   and name == "cayley" and not (shared or scale))


def _layout_columns(lay: BlockLayout) -> dict:
    """The columns a row takes from its block layout."""
    return dict(orders=lay.orders, blocks=lay.blocks, n=lay.n, block_size=lay.block_size,
                hamming_dims=lay.active, pad=lay.pad, tail=lay.tail,
                coverage=lay.blocks * lay.active / lay.dim,
                macs=apply_macs(lay.block_size, lay.sizes, lay.blocks) / lay.dim)


def main(args: argparse.Namespace) -> int:
    rows = iter_plans(args.dim, args.budget, args.orders or DEFAULT_ORDERS,
                      args.parametrization or tuple(PARAMETRIZATIONS),
                      (False, True) if args.scale else (False,))
    total = 0

    def counted(rows):
        nonlocal total
        for total, row in enumerate(rows, 1):
            yield row

    # only the rows shown are kept: a wide layer has 10^5 rows
    shown = heapq.nsmallest(args.top, counted(rows), key=_rank) if args.top else \
        sorted(counted(rows), key=_rank)
    if not total:
        raise ValueError(f"no Hamming configuration fits --budget {args.budget} at --dim "
                         f"{args.dim}; the smallest needs one block of n=2 (1 parameter) and "
                         f"a width of at least sum_k C(2,k) for the orders given")
    print(f"{total} configurations fit {args.budget:,} parameters at width {args.dim}"
          f"{'' if len(shown) == total else f'; the {len(shown)} largest'}:")
    head = (f"{'params':>8} {'orders':<9} {'blocks':>6} {'n':>3} {'block':>6} {'hamming':>8} "
            f"{'pad':>5} {'tail':>5} {'cover':>6} {'MACs/f':>6}  {'parametrization':<15} "
            f"{'layout':<9} shared{' scale' if args.scale else ''}")
    print(head)
    for r in shown:
        orders = ",".join(map(str, r["orders"]))
        print(f"{r['params']:>8,} {orders:<9} {r['blocks']:>6} {r['n']:>3} {r['block_size']:>6} "
              f"{r['hamming_dims']:>8} {r['pad']:>5} {r['tail']:>5} {r['coverage']:>6.1%} "
              f"{r['macs']:>6.1f}  "
              f"{r['parametrization']:<15} {r['layout']:<9} {'yes' if r['shared'] else 'no':<6}"
              f"{(' yes' if r['scale'] else ' no') if args.scale else ''}"
              f"{'  <- default' if r['default'] else ''}".rstrip())
    print(_defaults_line(args.dim, args.budget))
    return 0


def _defaults_line(dim: int, budget: int) -> str:
    """What the default layout and the paper's give a ``dim``-wide layer, orders (1, 2)."""
    def said(lay: Optional[BlockLayout]) -> str:
        if lay is None:
            return "does not fit this width"
        params = PARAMETRIZATIONS["cayley"].block_params(lay.n, "pyramid") * lay.blocks
        over = "" if params <= budget else ", over the budget"
        return (f"{lay.blocks} blocks of {lay.block_size} (n = {lay.n}), {params:,} "
                f"parameters{over}")
    return (f"recommended: the default, HammingConfig(orders=(1, 2)) with neither blocks nor "
            f"block_size: {said(default_layout(dim))}; the paper's layout, "
            f"HammingConfig.paper(): {said(default_layout(dim, rule='paper'))}")
