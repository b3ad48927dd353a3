"""The rows of the vision benchmark (:mod:`benchmarks.vision`) and their training parameters.

What each method is lives in the registry (``benchmarks/configs/vision/*.json``); how the
benchmark trains it lives in ``benchmarks/vision/experiments/``
(:mod:`benchmarks.common.experiments`: ``default_training_params.json`` and, per row,
``<family>/<name>/training_params.json`` with its lr grid where it differs, and why).  This
table says which rows the benchmark trains, in which order.  Grids have three points a
factor ~3 apart; the sweep extends a grid upward (x2.5, at most twice) while its best value
is its largest, as the text trade-off does; a best value at the bottom of a grid is flagged
in the table (``edge``), not extended.
"""
from __future__ import annotations

from pathlib import Path

from ..common import experiments
from ..common.methods import Method

#: The inputs: default and per-row training parameters.
EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
#: What every row trains with: steps, batch size, warm-up, seeds, and the grid of adapters
#: acting additively (LoRA, bottleneck, physics, mixture).
DEFAULTS = experiments.defaults(EXPERIMENTS)

#: Registry names in training order: the references first, then the families.
ROWS = (
    "vision-head", "vision-lora-r4", "vision-physics-moppa-input", "vision-hamming-12-b3",
    "vision-full", "vision-lora-r1", "vision-lora-r8", "vision-oft", "vision-boft",
    "vision-hamming-12-b8", "vision-hamming-12-bs32", "vision-bottleneck-input",
    "vision-bottleneck-qv",
    "vision-physics-heat-input", "vision-physics-wave-input", "vision-physics-poisson-input",
    "vision-physics-heat-qv", "vision-physics-wave-qv", "vision-physics-poisson-qv",
    "vision-physics-moppa-qv", "vision-mixture",
    # peft's methods built for tiny budgets, and the design study's Hamming variants.
    "vision-road-1", "vision-road-2", "vision-road-4", "vision-fourierft-n100",
    "vision-fourierft-n250", "vision-fourierft-n500", "vision-vera-r256", "vision-ia3",
    "vision-hamming-123-bs32", "vision-hamming-123-bs32-scale", "vision-hamming-12-bs32-scale",
    "vision-hamming-12-bs32-all-linear", "vision-hamming-12-bs32-all-linear-scale",
    "vision-hamming-12-bs32-angle-lr", "vision-road-1-adapter-lr",
    "vision-hamming-12-bs32-scale-angle-lr",
    # The default layout's sweep: blocks of 16 / 32 / 64 x orders {1,2} / {1,2,3}.
    "vision-hamming-12-bs16", "vision-hamming-12-bs64", "vision-hamming-123-bs16",
    "vision-hamming-123-bs64",
    # The tiny-budget frontier: peft 0.21's methods made for tiny budgets (the registry's
    # text entries at more budgets; these two at their smallest).
    "vision-unilora-d256", "vision-psoft-r8", "vision-tinylora-r2-u64", "vision-waveft-n40",
    # ... and the three strongest of them at a second budget.
    "vision-waveft-n300", "vision-psoft-r32", "vision-unilora-d2048",
    # Ours at UniLoRA's budget: blocks of 32 sharing their angles within a layer (252).
    "vision-hamming-12-bs32-shared-angle-lr",
    # The init study: blocks of 32 from a small random start (angles ~ N(0, std^2)) instead
    # of zero (the identity).
    "vision-hamming-12-bs32-init-std01", "vision-hamming-12-bs32-init-std05",
    # The rest of the frontier's named peers: circulant blocks (C3A) and the LayerNorms alone.
    "vision-c3a-b64", "vision-ln-tuning",
    # peft's other tiny-budget families on the ViT (the biases alone, a shared vector bank,
    # and LoRA r=1's count: random bases, a sparse mask, a decoupled scale, granular blocks),
    # and a second and third budget of VeRA, C3A and TinyLoRA.
    "vision-beft", "vision-vblora-r1-v8", "vision-vblora-r2-v16", "vision-randlora-r128",
    "vision-shira-r1", "vision-delora-r1", "vision-gralora-r1",
    "vision-vera-r16", "vision-c3a-b128", "vision-c3a-b32", "vision-tinylora-r16-u256",
    # Every family towards 100k: the second budget of the families with one row and the
    # third of those with two, smallest first.
    "vision-shira-r2", "vision-delora-r2", "vision-vblora-r4-v32", "vision-randlora-r32",
    "vision-gralora-r4", "vision-tinylora-r32-u1024", "vision-vera-r1024",
    "vision-unilora-d16384", "vision-waveft-n2000", "vision-shira-r8", "vision-delora-r8",
    "vision-gralora-r8", "vision-psoft-r128",
    # FourierFT n=500 from zero coefficients instead of peft's random start, which moves the
    # ViT far before any step: what its trained coefficients do alone.
    "vision-fourierft-n500-zero-init",
    # RandLoRA's third budget (its count grows as r falls).
    "vision-randlora-r8",
    # The weight-1 blocks by the matrix exponential instead of the Cayley transform.
    "vision-hamming-12-bs32-expm", "vision-hamming-12-bs32-scale-expm",
    # The patch embedding adapted with query / value.
    "vision-hamming-12-bs32-patch", "vision-hamming-12-bs32-scale-patch",
    # Order 1 alone in OFT's blocks of 32 with the learned scale (25,344): ours above 10k.
    "vision-hamming-1-bs32-scale",
    # The best q/v row on the input side (OFT's): query and value read rotated inputs.
    "vision-hamming-12-bs32-scale-input",
    # ... with its learned scales faster than its angles (lr x 3, x 10).
    "vision-hamming-12-bs32-scale-at-3lr", "vision-hamming-12-bs32-scale-at-10lr",
    # ... and on the {1,2,3} row with the scale (2,016).
    "vision-hamming-123-bs32-scale-at-3lr", "vision-hamming-123-bs32-scale-at-10lr",
)


#: name -> Method, in :data:`ROWS` order.
METHODS: dict[str, Method] = experiments.table(EXPERIMENTS, ROWS)

#: ``--quick``: every method on two tasks, one lr (the middle of its grid), two seeds, few
#: steps, a 200-image test split -- a smoke check of every code path in a few minutes.
QUICK = {"tasks": ("digits", "rotation"), "seeds": (0, 1), "steps": 20, "n_test": 200}


def middle_lr(method: Method) -> float:
    """The middle value of a method's grid (``--quick`` trains that one only)."""
    return method.lrs[len(method.lrs) // 2]
