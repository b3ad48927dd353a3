"""The rows of the vision benchmark (:mod:`benchmarks.vision`) and their lr grids.

What each method is lives in the registry (``benchmarks/configs/vision/*.json``); this table
says which the benchmark trains, in which order, with which learning-rate grid.  Grids have
three points a factor ~3 apart; the sweep extends a grid upward (x2.5, at most twice) while
its best value is its largest, as the text trade-off does; a best value at the bottom of a
grid is flagged in the table (``edge``), not extended.
"""
from __future__ import annotations

from ..common import registry
from ..common.methods import Method, method

# The grids are placed where a probe run (digits and rotation, 60 steps, seed 0) found the
# optimum: with the grids one step lower, LoRA r=4 chose 1e-2 / 3e-3, physics MoPPA 2.5e-2,
# Hamming {1,2} b3 3e-2 / 7.5e-2 and the head 7.5e-2 / 1e-2 (digits / rotation), mostly
# after extensions.
#: Adapters acting additively (LoRA, bottleneck, physics, mixture).
ADAPTER_LRS = (3e-3, 1e-2, 3e-2)
#: Orthogonal multiplicative adapters (Hamming, BOFT) start at the identity with small
#: gradients: the same grid one step up.  peft's OFT is not among them: in ``--quick`` (20
#: steps) it reached 66.6% at 1e-2 and collapsed to 38.9% at 3e-2, so it gets ADAPTER_LRS.
ORTHOGONAL_LRS = (1e-2, 3e-2, 1e-1)
#: A linear probe of frozen features.
HEAD_LRS = (1e-2, 3e-2, 1e-1)
#: Every weight of the backbone.
FULL_LRS = (1e-4, 3e-4, 1e-3)

#: FourierFT scales its spectral coefficients by 150 (peft's default): one step lower.
FOURIERFT_LRS = (1e-3, 3e-3, 1e-2)

_GRIDS = {"head": HEAD_LRS, "full": FULL_LRS, "hamming": ORTHOGONAL_LRS,
          "boft": ORTHOGONAL_LRS, "fourierft": FOURIERFT_LRS}

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
)


#: Rows whose adapter trains at a fraction of the head's lr (the head at lr), with their grid:
#: the text trade-off's lr rule (:data:`benchmarks.tradeoff_methods.ROWS`) on the ViT.
ADAPTER_LR_SCALES = {"vision-hamming-12-bs32-angle-lr": (0.25, (3e-2, 1e-1, 3e-1)),
                     "vision-hamming-12-bs32-scale-angle-lr": (0.25, (3e-2, 1e-1, 3e-1)),
                     "vision-road-1-adapter-lr": (0.4, (3e-2, 1e-1, 3e-1))}


def _method(name: str) -> Method:
    family = registry.get(name).family
    scale, lrs = ADAPTER_LR_SCALES.get(name, (1.0, _GRIDS.get(family, ADAPTER_LRS)))
    return method(name, lrs, scale, rows=ROWS)


#: name -> Method, in :data:`ROWS` order.
METHODS: dict[str, Method] = {name: _method(name) for name in ROWS}

#: ``--quick``: every method on two tasks, one lr (the middle of its grid), two seeds, few
#: steps, a 200-image test split -- a smoke check of every code path in a few minutes.
QUICK = {"tasks": ("digits", "rotation"), "seeds": (0, 1), "steps": 20, "n_test": 200}


def middle_lr(method: Method) -> float:
    """The middle value of a method's grid (``--quick`` trains that one only)."""
    return method.lrs[len(method.lrs) // 2]
