"""Configuration of the physics-prior adapter family (``adapter_type="physics"``).

Every field except the shared ones (``target_modules``, ``modules_to_save`` and peft's layer
selection: :data:`qiadapters.adapters.config.SHARED_FIELDS`), ``placement`` and
``route_weight`` is passed to :class:`physics.PhysicsAdapter`; see ``docs/physics.md``
("Using it in a model").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from qiadapters.adapters.config import AdapterConfig, option

from .bases import BOUNDARIES
from .grids import GRID_MODES
from .options import PLACEMENTS, check_layer_options
from .priors import PRIORS
from .routers import ROUTERS
from .solvers import ZERO_MODES

__all__ = ["PhysicsConfig", "PLACEMENTS"]

@dataclass
class PhysicsConfig(AdapterConfig):
    """Mixture-of-physical-priors adapter (MoPPA) on the token grid of each target module.

    ``placement="parallel"``: ``y = f(x) + delta(x)``; ``placement="input"``:
    ``y = f(x + delta(x), ...)``; ``delta`` is a :class:`physics.PhysicsAdapter`, exactly 0
    at initialisation.  Not mergeable: ``delta`` mixes tokens, it is not a weight update.

    Example (MoPPA's placement, before self-attention, in a ViT with CLS + 14x14 patches)::

        cfg = PhysicsConfig(target_modules=["attention"], placement="input", rank=8,
                            extra_tokens=1, modules_to_save=["classifier"])
    """

    rank: int = option(8, (
        "Bottleneck width r >= 1: the adapter projects d -> r, applies the priors to the r "
        "channels on the token grid and projects r -> d."))
    priors: tuple[str, ...] = option(("heat", "wave", "poisson"), (
        f"Physical priors mixed by the router, distinct names from {list(PRIORS)}."))
    grid: Union[str, tuple[int, ...]] = option("auto", (
        f"Token grid: one of {list(GRID_MODES)} or a fixed (H, W) / (L,).  'auto' is a "
        f"square (s, s) grid when the grid tokens are s*s (s >= 2), else 1D; text models "
        f"should use 'sequence'.  A fixed grid must match the token count at every forward."))
    router: str = option("token", (
        f"How the priors are mixed: one of {list(ROUTERS)} (weights per token, per sample, "
        f"or one learned vector)."))
    boundary: str = option("neumann", (
        f"Grid boundary condition and basis: one of {list(BOUNDARIES)} (DCT-II, DST-I, real "
        f"Fourier)."))
    extra_tokens: int = option(0, (
        "Leading tokens that bypass the grid operator (1 for a ViT's CLS token); they still "
        "get the low-rank path."))
    placement: str = option("parallel", (
        f"Where the adapter sits: one of {list(PLACEMENTS)}.  'parallel' needs a square "
        f"nn.Linear target; 'input' works on any module whose first argument is the hidden "
        f"states (e.g. BERT 'attention.self', ViT 'attention')."))
    dim: Optional[int] = option(None, (
        "Width of the hidden states the adapter reads (placement='input'); None infers it from "
        "the target (an nn.Linear's or transformers Conv1D's input width, a LayerNorm's size, "
        "or that of the first such layer inside).  Required where it cannot be inferred."))
    causal: Optional[bool] = option(None, (
        "True: each token sees the operator solved on its own prefix (no later token; 1D "
        "grids).  False: the bidirectional operator (refused in a causal model).  None: "
        "follow the model (causal when the target's attention has is_causal=True or "
        "config.is_decoder is True)."))
    route_weight: float = option(1.0, (
        "Weight of each layer's route regulariser in AdapterModel.aux_loss() (>= 0; 0 turns "
        "it off).  The regulariser's own terms are weighted by balance and entropy."))
    balance: float = option(0.01, (
        "Weight alpha >= 0 of the load-balancing term of the route regulariser."))
    entropy: float = option(0.0, (
        "Weight beta >= 0 of the entropy term of the route regulariser."))
    kappa: float = option(1.0, (
        "Initial heat diffusivity (> 0, learned per channel through softplus)."))
    c: float = option(1.0, (
        "Initial wave speed (> 0, learned per channel through softplus)."))
    t: float = option(1.0, (
        "Initial time of the heat and wave priors (> 0, learned per channel)."))
    poisson_gain: float = option(0.1, (
        "Initial Poisson source gain (> 0, learned per channel)."))
    poisson_zero_mode: str = option("screened", (
        f"Rule for the Poisson lambda = 0 mode: one of {list(ZERO_MODES)}."))
    poisson_eps: float = option(0.1, (
        "Screening eps > 0 of poisson_zero_mode='screened': (-Laplacian + eps) u = g z."))
    scale: float = option(1.0, (
        "Initial value of the learnable scalar output scale."))
    bias: bool = option(True, (
        "Whether the down- and up-projections have biases."))

    adapter_type: ClassVar[str] = "physics"
    check_options: ClassVar = staticmethod(check_layer_options)

    #: fields added after configs were first saved: written only when set, so a config
    #: that leaves them at None saves (and records) exactly as before; loading fills None.
    _WRITTEN_WHEN_SET: ClassVar[tuple[str, ...]] = ("dim", "causal")

    def to_dict(self):
        out = super().to_dict()
        for name in self._WRITTEN_WHEN_SET:
            if out.get(name) is None:
                out.pop(name, None)
        return out
