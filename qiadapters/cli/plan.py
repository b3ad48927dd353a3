"""Every Hamming adapter configuration that fits a trainable-parameter budget for one layer.

For a layer width ``d`` (the side ``D`` acts on) and a budget of ``N`` parameters per layer,
lists each (orders, blocks, parametrization, layout, shared) whose adapter has at most ``N``
parameters, with its block layout: ``n`` qubits per block, the Hamming dimensions
``sum_k C(n,k)`` each block covers, the identity padding per block and the untouched tail,
the fraction of the ``d`` features the orthogonal map reaches, and what applying ``D`` costs:
multiply-adds per feature and token (:func:`~qiadapters.circuits.route_cost.apply_macs` over
``d``; LoRA rank r costs ``2 r`` per feature of a square layer, peft OFT's blocks of 32 cost
32).  Sorted by parameters (largest first), then by coverage, then by cost.

    qiadapters plan --dim 384 --budget 2000
    qiadapters plan --dim 1536 --budget 10000 --orders 1,2 --orders 1,2,3 --top 5
"""
from __future__ import annotations

import argparse
from math import comb
from typing import Iterable, Optional

from ..adapters.hamming import PARAMETRIZATIONS, plan_blocks
from ..circuits import LAYOUTS, Circuit
from ..circuits.route_cost import apply_macs
from .. import checks

#: Order sets tried when ``--orders`` is not given (every set contains 1: the paper's
#: ablation found that configurations without order 1 collapse).
DEFAULT_ORDERS = ((1,), (1, 2), (1, 2, 3))


def _orders(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--orders {text!r} is not valid; give comma-separated "
                                         f"integers, e.g. 1,2") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", type=int, required=True, help="layer width d that D acts on")
    p.add_argument("--budget", type=int, required=True, help="trainable parameters per layer")
    p.add_argument("--orders", type=_orders, action="append",
                   help="an order set such as 1,2 (repeatable; default 1 / 1,2 / 1,2,3)")
    p.add_argument("--parametrization", choices=list(PARAMETRIZATIONS), action="append",
                   help="repeatable; default all")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0: all)")


def _circuit_params(layout: str, n: int) -> Optional[int]:
    if layout == "butterfly" and n & (n - 1):
        return None
    return Circuit.from_layout(layout, n).n_params


def plans(dim: int, budget: int, orders: Iterable[Iterable[int]] = DEFAULT_ORDERS,
          parametrizations: Iterable[str] = tuple(PARAMETRIZATIONS)) -> list[dict]:
    """Every configuration within ``budget`` for width ``dim`` (rows as dicts, sorted)."""
    dim = checks.integer("dim", dim, low=1)
    budget = checks.integer("budget", budget, low=1)
    rows = []
    for ks in orders:
        ks = checks.orders("orders", ks, 64)
        need = sum(comb(max(2, ks[-1]), k) for k in ks)
        for blocks in range(1, dim // need + 1):
            for name in parametrizations:
                checks.choice("parametrization", name, PARAMETRIZATIONS)
                layouts = list(LAYOUTS) if name == "circuit" else [None]
                for layout in layouts:
                    try:
                        lay = plan_blocks(dim, ks, blocks=blocks,
                                          power_of_two=layout == "butterfly")
                    except ValueError:  # e.g. no power-of-two n fits these blocks
                        continue
                    if layout is None:
                        per_block = lay.n * (lay.n - 1) // 2
                    else:
                        per_block = 2 * _circuit_params(layout, lay.n)
                    for shared in (False, True):
                        params = per_block * (1 if shared else blocks)
                        if params > budget or (shared and blocks == 1):
                            continue
                        hamming = lay.active
                        rows.append(dict(params=params, orders=ks, blocks=blocks, n=lay.n,
                                         block_size=lay.block_size, hamming_dims=hamming,
                                         pad=lay.pad, tail=lay.tail,
                                         coverage=blocks * hamming / dim,
                                         macs=apply_macs(lay.block_size, lay.sizes,
                                                         blocks) / dim,
                                         parametrization=name, layout=layout or "-",
                                         shared=shared))
    rows.sort(key=lambda r: (-r["params"], -r["coverage"], r["macs"], r["blocks"]))
    return rows


def main(args: argparse.Namespace) -> int:
    rows = plans(args.dim, args.budget, args.orders or DEFAULT_ORDERS,
                 args.parametrization or tuple(PARAMETRIZATIONS))
    if not rows:
        raise ValueError(f"no Hamming configuration fits --budget {args.budget} at --dim "
                         f"{args.dim}; the smallest needs one block of n=2 (1 parameter) and "
                         f"a width of at least sum_k C(2,k) for the orders given")
    shown = rows if args.top <= 0 else rows[:args.top]
    print(f"{len(rows)} configurations fit {args.budget:,} parameters at width {args.dim}"
          f"{'' if len(shown) == len(rows) else f'; the {len(shown)} largest'}:")
    head = (f"{'params':>8} {'orders':<9} {'blocks':>6} {'n':>3} {'block':>6} {'hamming':>8} "
            f"{'pad':>5} {'tail':>5} {'cover':>6} {'MACs/f':>6}  {'parametrization':<15} "
            f"{'layout':<9} shared")
    print(head)
    for r in shown:
        orders = ",".join(map(str, r["orders"]))
        print(f"{r['params']:>8,} {orders:<9} {r['blocks']:>6} {r['n']:>3} {r['block_size']:>6} "
              f"{r['hamming_dims']:>8} {r['pad']:>5} {r['tail']:>5} {r['coverage']:>6.1%} "
              f"{r['macs']:>6.1f}  "
              f"{r['parametrization']:<15} {r['layout']:<9} {'yes' if r['shared'] else 'no'}")
    return 0
