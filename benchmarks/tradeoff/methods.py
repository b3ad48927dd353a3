"""The rows of the trade-off benchmark (:mod:`benchmarks.tradeoff`) and their training
parameters.

What a method *is* lives in the registry (:mod:`benchmarks.common.registry`, one JSON file per
method); how the trade-off trains it lives in ``benchmarks/tradeoff/experiments/``
(:mod:`benchmarks.common.experiments`: ``default_training_params.json``, and a folder
``<family>/<name>/`` per row with its ``training_params.json``: its lr grid and adapter-lr
scale where they differ, and why).  This module only says which rows the trade-off trains
and in which order.  Add a row by adding its name to :data:`ROWS` and its folder.
"""
from __future__ import annotations

from pathlib import Path

from ..common import experiments
from ..common.methods import Method, family_available

#: The inputs: default and per-row training parameters.
EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
#: What every row trains with (steps, batch size, warm-up, seeds, the adapter lr grid).
DEFAULTS = experiments.defaults(EXPERIMENTS)
#: The adapter grid, every row's unless its ``training_params.json`` says otherwise.
ADAPTER_LRS = tuple(DEFAULTS["lrs"])

#: Registry names in the order the full run trains them (the reference LoRA r=8, the best
#: LoRA and the head-only floor first).
ROWS = (
    "lora-r8", "lora-r1", "head", "hamming-12-b3",
    "hamming-12-b8", "hamming-1-b8", "hamming-123-b8", "oft", "boft",
    "hamming-123-b3", "hamming-1-b3", "lora-r4", "lora-r2", "full",
    "hamming-12-b3-expm", "hamming-12-b3-circuit",
    # Placement and side: {1,2} b8 on value alone is the only {1,2} setting under the claim's
    # 40x bound (1,728 parameters); input side rotates x instead of W x.
    "hamming-12-b8-value", "hamming-12-b3-input-side", "physics",
    # Mixtures of one family, of the other, and of both; each next to single experts of the
    # same family at the same sites with about the same parameter count.
    "physics-qv-r8", "physics-qv-r4",
    "mixture-quantum", "mixture-physics", "mixture-both",
    # Block size: {1,2} in blocks of 64 and 32 features (n = 10, 7; 32 is OFT's block), the
    # speed-first layouts, against blocks of 128 (= hamming-12-b3 on MiniLM's 384 features).
    "hamming-12-bs64", "hamming-12-bs32",
    # peft's methods built for tiny budgets (registry entries at more budgets: road-1-value,
    # fourierft-n300, fourierft-n800 -- not trained yet; road-2 below).
    "road-1", "fourierft-n100", "ia3",
    # The design study against them: orders {1,2,3} at small n, a learned scale beside the
    # rotation (the scale alone is peft's IA3 on the same layers), all linear layers.
    "hamming-123-bs32-scale", "hamming-12-bs32-scale",
    "hamming-123-bs32-all-linear",
    # The lr rule: at 100 steps the fresh head wants a larger lr than the angles (head alone:
    # best 0.25; Hamming: 0.02); these rows train the angles at lr / 4 and sweep lr upward.
    "hamming-12-bs32-angle-lr",
    "hamming-12-bs32-scale-angle-lr",
    "hamming-12-bs32-value-scale-angle-lr",
    # The same rule for RoAd (its parameters at lr x 0.4: its own best, 0.05, at lr = 0.125),
    # so that the rule is not a protocol advantage of one side.
    "road-1-adapter-lr",
    # The default layout's sweep: blocks of 16 / 32 / 64 x orders {1,2} / {1,2,3}, from the
    # top of the adapter grid (the block-size rows above were best at 2e-2 and 5e-2; the
    # grid grows while its top wins).
    "hamming-12-bs16", "hamming-123-bs16", "hamming-123-bs32", "hamming-123-bs64",
    # The tiny-budget frontier: peft 0.21's methods made for tiny budgets, smallest first
    # (docs/tradeoff.md; the registry holds more budgets of each, not trained yet).
    "unilora-d256", "psoft-r8", "tinylora-r2-u64", "waveft-n40",
    # Ours at their budgets: {1,2,3} in blocks of 32 on value only (720), the lr rule ...
    "hamming-123-bs32-value-angle-lr",
    # ... and at UniLoRA's 256: blocks of 32 sharing their angles within a layer (252).
    "hamming-12-bs32-shared-angle-lr",
    # The init study: the lr-rule row from a small random start (angles ~ N(0, 0.01^2))
    # instead of zero (the identity).
    "hamming-12-bs32-angle-lr-init-std01",
    # RoAd at the design study's 10k cap (road_2).
    "road-2",
    # A Hamming entry between 10k and 20k: the best q/v row (scale, lr rule) on query, key,
    # value and the attention output (15,264).
    "hamming-12-bs32-qkvo-scale-angle-lr",
    # VeRA (shared frozen random projections, trained scaling vectors) at 7,680.
    "vera-r256",
    # The tiny-budget frontier at a second budget (UniLoRA, PSOFT, TinyLoRA, WaveFT, VeRA,
    # FourierFT's third), and peft's other tiny-budget families below 5k: VB-LoRA, C3A, BEFT.
    "unilora-d2048", "psoft-r32", "vblora-r1-v8", "tinylora-r16-u256", "waveft-n300",
    "fourierft-n300", "c3a-b384", "beft", "vera-r16", "vblora-r2-v16",
    # Ours at UniLoRA d=2048's budget: {1,2,3} in blocks of 16 with the lr rule (1,728).
    "hamming-123-bs16-angle-lr",
    # peft's tiny-budget families at LoRA r=1's count (9.2k-10k): SHiRA, RandLoRA, DeLoRA,
    # LN tuning; FourierFT's third budget (GraLoRA: below, with the lr rule).
    "shira-r1", "randlora-r384", "delora-r1", "ln-tuning", "fourierft-n800",
    # The learned scale on the best row at 1,728 (6,336): aimed where RoAd and BEFT lead.
    "hamming-123-bs16-scale-angle-lr",
    # ... and on the top four of six layers (4,224), to fit under 4,608.
    "hamming-123-bs16-scale-angle-lr-top4",
    # The lr rule for the peers the head's rate breaks (they chose the bottom of the shared
    # grid, below or near the head alone): the adapter slower than the head (DeLoRA x 0.04,
    # RandLoRA x 0.1, GraLoRA x 0.01: each row's file says why).
    "delora-r1-adapter-lr", "randlora-r384-adapter-lr", "gralora-r1-adapter-lr",
    # Every family towards 100k: a third budget of the families with two rows.
    "c3a-b128", "tinylora-r32-u1024", "waveft-n2000", "unilora-d16384", "vblora-r4-v32",
    # SHiRA at LoRA r=8's scale; VeRA's and RoAd's third budgets.
    "shira-r8", "vera-r1024", "road-4",
    # Every family towards 100k, continued: PSOFT's and C3A's third budgets, FourierFT at
    # WaveFT n=40's count, and the second budgets of the families that need the lr rule
    # (each factor scaled from its r=1 / r=384 row by peft's update scale: the row's file).
    "psoft-r128", "c3a-b64", "fourierft-n40", "randlora-r32-adapter-lr",
    "gralora-r8-adapter-lr", "delora-r8-adapter-lr", "randlora-r128-adapter-lr",
    "gralora-r4-adapter-lr", "delora-r2-adapter-lr",
    # The lr rule's factor one step each way on the best row under 10k (angles and scales at
    # lr / 2 and lr / 8 instead of lr / 4).
    "hamming-123-bs16-scale-angle-lr2-top4", "hamming-123-bs16-scale-angle-lr8-top4",
    # Ours under FourierFT n=100's 1,200 once its grid is bracketed: {1,2,3} in blocks of 16
    # with the lr rule on the top four layers (1,152).
    "hamming-123-bs16-angle-lr-top4",
    # Our recipe (learned scale, the lr rule) towards 100k: every linear layer (about 34k),
    # and order 1 alone in OFT's blocks of 32 on query/value (76k).
    "hamming-12-bs32-all-linear-scale-angle-lr", "hamming-1-bs32-scale-angle-lr",
    # ... on the top four layers (50,688), and in blocks of 16 (39,168).
    "hamming-1-bs32-scale-angle-lr-top4", "hamming-1-bs16-scale-angle-lr",
    # The best row under 10k on fewer layers: the top three (3,168, under FourierFT n=300's
    # 3,600 and a tenth of BOFT's 41,472) and the top two (2,112).
    "hamming-123-bs16-scale-angle-lr-top3", "hamming-123-bs16-scale-angle-lr-top2",
    # ... and without the scale (864, 576): a tenth of the peers at 5.8k-10k.
    "hamming-123-bs16-angle-lr-top3", "hamming-123-bs16-angle-lr-top2",
    # The lr rule on the angles only, the learned scales at the head's lr (top four, three).
    "hamming-123-bs16-scale-angle-lr-top4-scale-at-lr",
    "hamming-123-bs16-scale-angle-lr-top3-scale-at-lr",
    # The best row under 10k on the top five layers (5,280).
    "hamming-123-bs16-scale-angle-lr-top5",
)


#: name -> Method, in :data:`ROWS` order.
METHODS: dict[str, Method] = experiments.table(EXPERIMENTS, ROWS)

#: ``--quick``: a smoke check of every code path that matters, well under 10 minutes.
QUICK = {"methods": ("head", "lora-r8", "hamming-12-b3"), "lrs": (2e-3, 1e-2),
         "seeds": (0, 1), "steps": 15, "eval_examples": 256}

