r"""The paper's ablations, on the paper's own construction (the dense ``D`` from minors,
:mod:`benchmarks.common.paper`), rerunnable in one command with the trade-off's protocol.

The paper (Raj & Coyle 2025) reports that a configuration without order 1 collapses, that
replacing the determinants of the compound by the max or mean of each minor is far worse,
that dropping orthogonality collapses, and that a product of several adapters helps a little.
Each is one option of :class:`AblationLinear` (all at the reference ``{1,2}``, 3 blocks of
128 on query/value, ``paper-dense-12-b3``):

* ``orders = (2,)``: the weight-2 blocks alone (``ablation-no-order1``);
* ``compound = "max" | "mean"``: ``C_k(Q)[I, J] = max`` (or mean) of the entries of
  ``Q[I, J]`` instead of ``det Q[I, J]`` (order 1 is unchanged: a 1 x 1 minor is its entry);
  at ``Q = I`` neither is the identity (``ablation-det-max``, ``ablation-det-mean``);
* ``orthogonal = False``: ``Q = I + A``, ``A`` any ``n x n`` matrix (zero at the start)
  instead of the Cayley transform of a skew ``S`` (``ablation-non-orthogonal``);
* ``copies = c``: ``D = D_1 D_2 ... D_c``, ``c`` independent adapters applied one after the
  other (``ablation-product-2``).

    python -m benchmarks.frontier.ablations --threads 1       # results/ablations.{csv,md,png}
    python -m benchmarks.frontier.ablations --threads 1 --lrs 0.005 0.01 0.02   # the committed run
    python -m benchmarks.frontier.ablations --quick           # smoke run, results/quick/

Each row gets the trade-off's protocol (lr grid at seed 0 chosen on validation, extended
upward while its top wins, seeds 0 1 2 reported on test), its runs in
``ablations_runs.jsonl``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from ..common.paper import DenseCompoundLinear, minors_compound

#: How an entry of a compound block is made from its ``k x k`` minor.
COMPOUNDS = ("det", "max", "mean")
#: The ablation rows (registry entries), the reference first.
ROWS = ("paper-dense-12-b3", "ablation-no-order1", "ablation-det-max", "ablation-det-mean",
        "ablation-non-orthogonal", "ablation-product-2")


def approx_compound(Q: torch.Tensor, k: int, index: torch.Tensor, how: str) -> torch.Tensor:
    """``Q: (r, n, n) -> (r, C(n,k), C(n,k))``: every ``k x k`` minor reduced by ``how``
    (``"det"``: :func:`benchmarks.common.paper.minors_compound`; ``"max"`` / ``"mean"``: of its
    entries)."""
    if how == "det":
        return minors_compound(Q, k, index)
    minors = Q[:, index[:, None, :, None], index[None, :, None, :]]   # (r, N, N, k, k)
    if how == "max":
        return minors.amax(dim=(-2, -1))
    if how == "mean":
        return minors.mean(dim=(-2, -1))
    raise ValueError(f"compound={how!r}; valid: {COMPOUNDS}")


class AblationLinear(DenseCompoundLinear):
    """:class:`benchmarks.common.paper.DenseCompoundLinear` with the paper's ablations as options
    (the module docstring); ``compound="det", orthogonal=True, copies=1`` is it exactly."""

    def __init__(self, linear: nn.Linear, orders=(1, 2), blocks: int = 3,
                 compound: str = "det", orthogonal: bool = True, copies: int = 1):
        super().__init__(linear, orders, blocks)
        if compound not in COMPOUNDS:
            raise ValueError(f"compound={compound!r}; valid: {COMPOUNDS}")
        if not (isinstance(copies, int) and copies >= 1):
            raise ValueError(f"copies={copies!r}; valid: an integer >= 1")
        self.compound, self.orthogonal, self.copies = compound, bool(orthogonal), copies
        r, n = self.layout.blocks, self.layout.n
        width = n * (n - 1) // 2 if orthogonal else n * n
        self.weight = nn.Parameter(torch.zeros(copies, r, width))

    def block_matrices(self, weight: torch.Tensor) -> torch.Tensor:
        """``(blocks, n, n)``: each block's ``Q`` from one copy's ``weight``."""
        r, n = self.layout.blocks, self.layout.n
        eye = torch.eye(n, dtype=weight.dtype, device=weight.device)
        if not self.orthogonal:
            return eye + weight.view(r, n, n)
        upper = weight.new_zeros(r, n, n)
        upper[:, self.triu[0], self.triu[1]] = weight
        S = upper - upper.transpose(-1, -2)
        return torch.linalg.solve(eye + S, eye - S)

    def dense(self) -> torch.Tensor:
        """``(d, d)``: ``D_1 ... D_c``, each assembled as the paper does."""
        lay, out = self.layout, None
        for c in range(self.copies):
            Q = self.block_matrices(self.weight[c])
            parts = []
            minors = {k: approx_compound(Q, k, getattr(self, f"subsets_{k}"), self.compound)
                      for k in lay.orders}
            eye_pad = torch.eye(lay.pad, dtype=Q.dtype, device=Q.device)
            for i in range(lay.blocks):
                parts += [minors[k][i] for k in lay.orders] + [eye_pad]
            parts.append(torch.eye(lay.tail, dtype=Q.dtype, device=Q.device))
            D = torch.block_diag(*parts)
            out = D if out is None else out @ D
        return out


def replace_linears(model: nn.Module, suffixes, **options) -> int:
    """Swap every ``nn.Linear`` whose name ends in one of ``suffixes`` for an
    :class:`AblationLinear` with ``options``; returns how many were swapped."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.split(".")[-1] in suffixes]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, AblationLinear(getattr(parent, child), **options))
    return len(names)


def main(argv=None) -> int:
    """Train the ablation rows with the trade-off's protocol; write its table and plot."""
    from ..common.constants import results_dir
    from ..common.methods import method
    from ..common.runs import run_all
    from ..common.sweep import MAX_EXTEND
    from ..tradeoff.methods import ADAPTER_LRS, DEFAULTS
    from ..tradeoff.tables import report

    p = argparse.ArgumentParser(prog="python -m benchmarks.frontier.ablations",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 15 steps, one lr, seeds 0 1, results/quick/")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--lrs", nargs="+", type=float, default=None,
                   help=f"the lr grid at seed 0 (default: the trade-off's, {ADAPTER_LRS}); "
                        f"it still grows upward while its top wins")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", type=Path, default=None)
    args = p.parse_args(argv)
    out = args.results or results_dir(args.quick)
    seeds = (0, 1) if args.quick else tuple(DEFAULTS["seeds"])
    steps = 15 if args.quick else DEFAULTS["steps"]
    lrs = (0.01,) if args.quick else tuple(args.lrs or ADAPTER_LRS)
    extend = 0 if args.quick else MAX_EXTEND
    methods = [method(name, lrs) for name in args.methods]
    runs_path = out / "ablations_runs.jsonl"
    if not args.report_only:
        from ..common.data import NUM_CLASSES, load_minilm, load_wordnet_splits, tokenize_splits
        if args.threads:
            torch.set_num_threads(args.threads)
        _, tokenizer = load_minilm(NUM_CLASSES, seed=0)
        data = tokenize_splits(load_wordnet_splits(seed=0), tokenizer)
        if args.quick:
            for split in ("validation", "test"):
                data[split] = {k: t[:256] for k, t in data[split].items()}
        run_all(methods, data, lambda seed: load_minilm(NUM_CLASSES, seed=seed)[0], runs_path,
                seeds, steps, DEFAULTS["batch_size"], DEFAULTS["warmup_frac"], None,
                progress=False, extend=extend)
    report(runs_path, out / "ablations.csv", out / "ablations.png", out / "ablations.md",
           methods, seeds, steps, DEFAULTS["batch_size"], None, extend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
