"""Configuration of the mixture layer (``adapter_type="mixture"``): experts are configs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from ... import bounds, checks
from ..config import SELECTION_FIELDS, AdapterConfig, option
from ..registry import CONFIGS, PROVIDERS
from .routers import ROUTERS


def check_options(n_experts: int, router: str, top_k: Optional[int], temperature: float,
                  balance: float, z_loss: float) -> dict[str, Any]:
    """The mixture options, validated (shared by :class:`MixtureConfig` and the layer)."""
    if n_experts < 1:
        raise ValueError("experts=[] is empty; give at least one expert (an adapter config "
                         "such as HammingConfig(...), or an adapter layer)")
    check_count(n_experts)
    checks.choice("router", router, ROUTERS)
    if top_k is not None:
        top_k = checks.integer("top_k", top_k, low=1, high=n_experts)
    return {"router": router, "top_k": top_k,
            "temperature": checks.number("temperature", temperature, low=0, strict=True),
            "balance": checks.number("balance", balance, low=0),
            "z_loss": checks.number("z_loss", z_loss, low=0)}


def check_count(n_experts: int) -> None:
    """At most :data:`~qiadapters.bounds.MAX_EXPERTS` experts (checked before any is read)."""
    bounds.check("len(experts)", n_experts, n_experts, bounds.MAX_EXPERTS,
                 "the experts would number", "qiadapters.bounds.MAX_EXPERTS", "use fewer experts")


def expert_types() -> list[str]:
    """The ``adapter_type`` of every family a mixture's expert may be: registered ones and
    those whose package registers on demand (``physics``), mixtures excepted."""
    return [t for t in dict.fromkeys([*CONFIGS, *PROVIDERS]) if t != MixtureConfig.adapter_type]


def expert_config(i: int, expert: Any) -> AdapterConfig:
    """``experts[i]`` as an expert config (a dict is read with ``AdapterConfig.from_dict``)."""
    kind = expert.get("adapter_type") if isinstance(expert, dict) else None
    if isinstance(expert, dict) and kind != MixtureConfig.adapter_type:
        if kind not in expert_types():
            raise ValueError(f"experts[{i}] has adapter_type={kind!r}, which is not valid; "
                             f"choose one of {expert_types()}")
        expert = AdapterConfig.from_dict(expert)
    if isinstance(expert, MixtureConfig) or kind == MixtureConfig.adapter_type:
        raise TypeError(f"experts[{i}] is a MixtureConfig; a mixture's experts cannot be "
                        f"mixtures (list their experts in one mixture instead)")
    if not isinstance(expert, AdapterConfig):
        raise TypeError(f"experts[{i}] is a {type(expert).__name__}; a MixtureConfig's experts "
                        f"are adapter configs of the families {expert_types()}")
    if expert.modules_to_save is not None:
        raise ValueError(f"experts[{i}].modules_to_save={expert.modules_to_save!r}; set "
                         f"modules_to_save on the MixtureConfig, not on an expert")
    for name in SELECTION_FIELDS:  # the mixture selects its layers; experts adapt them all
        if getattr(expert, name) is not None:
            raise ValueError(f"experts[{i}].{name}={getattr(expert, name)!r}; set {name} on "
                             f"the MixtureConfig, not on an expert")
    return expert


@dataclass
class MixtureConfig(AdapterConfig):
    """A router-weighted mixture of adapters on each target module.

    For a target ``f`` with input ``x``, each expert ``e`` (an adapter config of any family)
    gives an adapted output ``E_e(x)``; the layer returns
    ``f(x) + Σ_e α_e(x) (E_e(x) - f(x))`` with router weights ``α`` summing to 1.

    Expert configs adapt the mixture's targets, so they leave ``target_modules`` out (or
    give the mixture's value); the mixture's ``target_modules`` may be left out to take the
    experts' common value.  ``modules_to_save`` belongs to the mixture only.

    Example::

        cfg = MixtureConfig(target_modules=["query", "value"], router="token", top_k=2,
                            experts=[HammingConfig(orders=(1,)),
                                     HammingConfig(orders=(1, 2), blocks=2)])
    """

    experts: list = option(default_factory=list, help=(
        "Expert adapter configs (any registered family except mixture), at least one.  "
        "Saved as a list of their own JSON dicts, each tagged with its adapter_type."))
    router: str = option("global", (
        f"How the experts are weighted: one of {list(ROUTERS)}: one learned vector "
        f"(mergeable), a linear gate on each sample's mean token, or on every token."))
    top_k: Optional[int] = option(None, (
        "Keep only the k largest router weights of each routing unit, renormalised "
        "(1 <= top_k <= len(experts)); None: dense routing.  With top_k=1 the kept weight is "
        "1, so only the aux losses train the router."))
    temperature: float = option(1.0, (
        "Softmax temperature T > 0: alpha = softmax(logits / T)."))
    balance: float = option(0.01, (
        "Weight (>= 0) of the Switch-Transformer load-balancing loss "
        "balance * E * sum_e f_e P_e, added to AdapterModel.aux_loss()."))
    z_loss: float = option(0.0, (
        "Weight (>= 0) of the router z-loss z_loss * mean(logsumexp(logits / T)^2)."))

    adapter_type: ClassVar[str] = "mixture"

    def __post_init__(self):
        if isinstance(self.experts, (str, bytes)) or not isinstance(self.experts, (list, tuple)):
            raise ValueError(f"experts={self.experts!r} must be a list of adapter configs")
        check_count(len(self.experts))
        self.experts = [expert_config(i, e) for i, e in enumerate(self.experts)]
        if self.target_modules is None:
            targets = [e.target_modules for e in self.experts if e.target_modules is not None]
            if any(t != targets[0] for t in targets):
                raise ValueError(f"the experts' target_modules differ ({targets}); give the "
                                 f"mixture's target_modules and leave the experts' out")
            self.target_modules = targets[0] if targets else None
        super().__post_init__()

    def validate(self) -> None:
        options = check_options(len(self.experts), self.router, self.top_k, self.temperature,
                                self.balance, self.z_loss)
        for key, value in options.items():
            setattr(self, key, value)
        for i, expert in enumerate(self.experts):
            if expert.target_modules not in (None, self.target_modules):
                raise ValueError(f"experts[{i}].target_modules={expert.target_modules!r} "
                                 f"differs from the mixture's target_modules="
                                 f"{self.target_modules!r}; every expert adapts the mixture's "
                                 f"targets (leave the expert's out)")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["experts"] = [e.to_dict() for e in self.experts]
        return out
