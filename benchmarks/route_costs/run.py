"""The two routes of a compound block, timed against the cost model that picks one.

    python -m benchmarks.route_costs [--device cuda] [--threads 1]

For each (n, k, tokens), 3 blocks: forward + backward of the block route (build ``C_k(U)``
from ``U`` and apply it) and of the mode-wise route (:mod:`qiadapters.circuits.modewise`),
interleaved (:func:`benchmarks.common.timing.interleaved`, median ms), with the estimates of
:mod:`qiadapters.circuits.route_cost` and whether its choice was the faster route.  Use it
to check or refit the constants of a device type (:data:`~qiadapters.circuits.route_cost.COSTS`).
"""
from __future__ import annotations

import argparse

import torch

from qiadapters.circuits.route_cost import block_cost, mode_cost, use_modewise

from ..common.timing import interleaved
from .cases import BLOCKS, GRID, TOKENS, routes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device).type
    print(f"{'k':>2} {'n':>3} {'tokens':>6} {'block ms':>9} {'mode ms':>9} "
          f"{'est block':>10} {'est mode':>10}  model picks  faster")
    right = total = 0
    for k, n in GRID:
        for tokens in TOKENS:
            t = interleaved(routes(n, k, tokens, args.device), reps=args.reps, warmup=2)
            pick = "mode" if use_modewise(tokens, n, k, dev, blocks=BLOCKS) else "block"
            faster = "mode" if t.median("mode") < t.median("block") else "block"
            right, total = right + (pick == faster), total + 1
            print(f"{k:>2} {n:>3} {tokens:>6} {t.median('block') * 1e3:9.3f} "
                  f"{t.median('mode') * 1e3:9.3f} "
                  f"{block_cost(tokens, n, k, dev, blocks=BLOCKS) / 1e6:10.3f} "
                  f"{mode_cost(tokens, n, k, dev, blocks=BLOCKS) / 1e6:10.3f}  "
                  f"{pick:11s}  {faster}", flush=True)
    print(f"the model picked the faster route in {right} of {total} cases")


if __name__ == "__main__":
    main()
