"""The method registry: every adapter configuration the benchmarks run, as data.

Each method is one JSON file ``benchmarks/configs/<name>.json`` (in the spirit of peft's
``method_comparison/``, where each experiment is a folder of JSON files)::

    {"family": "lora", "label": "peft LoRA r=8", "config": {"r": 8}}

* ``family``: a key of :data:`FAMILIES`, the one function that builds that kind of method;
* ``label``: what tables and plots call it;
* ``config``: keyword arguments of the family's config class (``target_modules`` defaults
  to :data:`~benchmarks.common.constants.TARGETS`);
* ``experts`` (mixtures only): the names of the methods mixed.

One key of a Hamming ``config`` is the benchmark's, not the library's: ``init_std`` (default
0) starts every skew generator's entries (the angles of the Cayley / exp parametrizations)
from ``N(0, init_std^2)`` instead of zero, drawn from torch's global generator right after
the model is built (so per seed, reproducibly).  It is the init study's switch: a random start
is not the identity, so it is measured here and not offered by ``HammingConfig``; the saved
``adapter_config.json`` of such a row is its zero-init twin's.

The vision entries (``benchmarks/configs/vision/``, names starting ``vision-``) adapt the
vision benchmark's ViT (:mod:`benchmarks.vision.model`).  A file holds inputs only: a
method's parameter count is measured when it runs and recorded in the results
(``adapter_params`` of each run, head excluded).

Benchmarks pick methods by name (``--methods lora-r8 hamming-12-b3``) and each keeps its own
protocol (which names, learning rates, steps).  ``build(name, model)`` returns ``(model to
train, aux_loss_fn or None, record)``; the record is the configuration that actually ran
(peft's BOFT silently changes its butterfly factor without its CUDA extension, so what the
layers hold is read back) and goes into the results as is.

LoRA, one convention everywhere: ``lora_alpha = r`` unless a config says otherwise, i.e.
peft's ``scaling = lora_alpha / r = 1`` at every rank, so a learning-rate sweep compares ranks
rather than scales.  Alpha only multiplies the LoRA update by a constant: it changes which
learning rate is best, not the cost of a step.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from .constants import HEAD, TARGETS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Entry:
    """One method: a family and its configuration (``benchmarks/configs/<name>.json``)."""
    name: str
    family: str
    label: str
    config: dict = field(default_factory=dict)
    experts: tuple = ()

    @property
    def group(self) -> str:
        """Which library the method comes from (tables and plots colour by it)."""
        return GROUPS[self.family]

    @property
    def targets(self):
        """The config's ``target_modules`` (default :data:`TARGETS`): a list of names, or
        the string ``"all-linear"`` as is."""
        targets = self.config.get("target_modules", TARGETS)
        return targets if isinstance(targets, str) else list(targets)

    def build(self, model: nn.Module) -> tuple:
        """``(model to train, aux_loss_fn or None, record of what ran)``."""
        return FAMILIES[self.family](model, self)


# --------------------------------------------------------------------------- peft families

def lora_config(r: int, lora_alpha: Optional[int] = None, target_modules=TARGETS,
                modules_to_save=(HEAD,)):
    """peft's ``LoraConfig`` as every benchmark uses it: no dropout, ``lora_alpha = r``
    (scale 1) unless given."""
    from peft import LoraConfig
    return LoraConfig(r=r, lora_alpha=r if lora_alpha is None else lora_alpha,
                      lora_dropout=0.0, target_modules=(
                          target_modules if isinstance(target_modules, str)
                          else list(target_modules)),
                      modules_to_save=None if modules_to_save is None else list(modules_to_save))


#: The peft families other than LoRA, by their config class (peft 0.21).  RoAd, FourierFT,
#: VeRA, IA3 and the second group (TinyLoRA to GraLoRA) are peft's methods built for tiny
#: budgets, the rivals of the trade-off's frontier (``docs/tradeoff.md``).
_PEFT_CLASSES = {"oft": "OFTConfig", "boft": "BOFTConfig", "hra": "HRAConfig",
                 "road": "RoadConfig", "fourierft": "FourierFTConfig", "vera": "VeraConfig",
                 "ia3": "IA3Config",
                 "tinylora": "TinyLoraConfig", "unilora": "UniLoraConfig",
                 "ln_tuning": "LNTuningConfig", "c3a": "C3AConfig", "beft": "BeftConfig",
                 "waveft": "WaveFTConfig", "vblora": "VBLoRAConfig", "randlora": "RandLoraConfig",
                 "shira": "ShiraConfig", "psoft": "PsoftConfig", "delora": "DeloraConfig",
                 "gralora": "GraloraConfig"}
#: The peft families whose trainable parameters are shared across layers (one vector or
#: bank for the whole model), or sit outside the layers (LN tuning's embedding norm): their
#: count is not the layers' count times a per-layer count.
SHARED_PARAMETER_FAMILIES = frozenset({"unilora", "vblora", "ln_tuning"})
_PEFT_RECORD_KEYS = {"peft_type", "r", "lora_alpha", "lora_dropout", "target_modules",
                     "oft_block_size", "use_cayley_neumann", "coft", "block_share",
                     "boft_block_size", "boft_block_num", "boft_n_butterfly_factor",
                     "boft_dropout", "module_dropout", "modules_to_save", "variant",
                     "group_size", "n_frequency", "scaling", "random_loc_seed",
                     "vera_dropout", "d_initial", "projection_prng_key",
                     "feedforward_modules",
                     # the tiny-budget families
                     "u", "weight_tying", "projection_seed", "theta_d_length", "proj_seed",
                     "block_size", "wavelet_family", "use_idwt", "num_vectors", "vector_length",
                     "topk", "randlora_alpha", "sparse", "very_sparse", "mask_type",
                     "random_seed", "psoft_alpha", "psoft_orth", "psoft_mag_a", "psoft_mag_b",
                     "delora_lambda", "alpha", "gralora_k", "hybrid_r"}


def peft_config(entry: Entry, target_modules=None, modules_to_save=(HEAD,)):
    """The peft config object of a peft-family entry (``target_modules`` overrides its own)."""
    kwargs = {k: v for k, v in entry.config.items() if k != "target_modules"}
    targets = entry.targets if target_modules is None else (
        target_modules if isinstance(target_modules, str) else list(target_modules))
    if entry.family == "lora":
        return lora_config(target_modules=targets, modules_to_save=modules_to_save, **kwargs)
    import peft
    cls = getattr(peft, _PEFT_CLASSES[entry.family])
    return cls(target_modules=targets, **kwargs,
               modules_to_save=None if modules_to_save is None else list(modules_to_save))


def _peft_record(config) -> dict:
    keep = {}
    for key, value in config.to_dict().items():
        if isinstance(value, set):
            value = sorted(value)
        if key in _PEFT_RECORD_KEYS:
            keep[key] = str(value) if key == "peft_type" else value
    return keep


def _build_peft(model, entry):
    from peft import get_peft_model
    config = peft_config(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = get_peft_model(model, config)
    record = _peft_record(config)
    if entry.family == "boft":
        # Without peft's fbd CUDA extension (any CPU machine) peft silently runs 1 butterfly
        # factor: record what the layers hold. boft_R: (factors, block_num, size, size).
        shapes = {tuple(p.shape) for name, p in model.named_parameters() if "boft_R" in name}
        record["ran_boft_R_shapes"] = sorted(list(s) for s in shapes)
        record["ran_n_butterfly_factor"] = sorted({s[0] for s in shapes})
        layer = next(m for m in model.modules() if hasattr(m, "fbd_cuda_available"))
        record["fbd_cuda_available"] = bool(layer.fbd_cuda_available)
        record["peft_warnings"] = sorted({str(w.message)[:160] for w in caught
                                          if "butterfly" in str(w.message).lower()
                                          or "cuda" in str(w.message).lower()})
    return model, None, record


# ---------------------------------------------------------------------- qiadapters / physics

_HAMMING_RECORD_KEYS = {"orders", "blocks", "parametrization", "side", "layout", "gate", "scale",
                        "target_modules", "n_qubits", "recompute_base"}
#: Keys of a Hamming entry's ``config`` that the benchmark applies itself (module docstring).
BENCHMARK_KEYS = ("init_std",)


def adapter_config(entry: Entry):
    """The qiadapters / physics config object of an entry (no ``modules_to_save``)."""
    kwargs = dict(entry.config, target_modules=entry.targets)
    if entry.family == "hamming":
        for key in BENCHMARK_KEYS:
            kwargs.pop(key, None)
        import qiadapters
        return qiadapters.HammingConfig(**dict(kwargs, orders=tuple(kwargs["orders"])))
    if entry.family == "physics":
        import physics
        return physics.PhysicsConfig(**kwargs)
    if entry.family == "mixture":
        import qiadapters
        return qiadapters.MixtureConfig(experts=[adapter_config(get(e)) for e in entry.experts],
                                        **kwargs)
    raise ValueError(f"{entry.name}: family {entry.family!r} is not a qiadapters family")


def _build_adapter(model, entry):
    import qiadapters
    config = adapter_config(entry)
    config.modules_to_save = [HEAD]
    adapted = qiadapters.get_adapter_model(model, config)
    if entry.family == "hamming":
        # older records have no block_size; records before 2026-12-07 had no
        # layers_to_transform (backfilled from the entries that set it)
        record = _without_unused_rule({k: v for k, v in config.to_dict().items()
                                       if k in _HAMMING_RECORD_KEYS or k == "default_layout"
                                       or (k in ("block_size", "layers_to_transform")
                                           and v is not None)
                                       or (k == "share_blocks" and v)})
        init_std = entry.config.get("init_std", 0)
        if init_std:
            record["init_std"] = random_start(adapted, init_std)
    else:
        record = json.loads(json.dumps(config.to_dict(), default=str))
        for expert in record.get("experts", []):
            _without_unused_rule(expert)
    return adapted, adapted.aux_loss, record


def random_start(model: nn.Module, init_std: float) -> float:
    """Draw every skew generator's entries of ``model``'s Hamming adapters from ``N(0,
    init_std^2)`` (torch's global generator); returns ``init_std``.  Raises if the model has
    no such generator (a circuit-angle parametrization, or no Hamming adapter)."""
    from qiadapters.adapters.hamming.parametrizations import SkewParametrization

    if not (isinstance(init_std, (int, float)) and init_std > 0):
        raise ValueError(f"init_std={init_std!r}; valid: a number > 0 (0 or absent: zero init)")
    skews = [m for m in model.modules() if isinstance(m, SkewParametrization)]
    if not skews:
        raise ValueError("init_std is set but the model has no Cayley / exp Hamming adapter")
    with torch.no_grad():
        for m in skews:
            m.weight.normal_(0.0, init_std)
    return float(init_std)


def _without_unused_rule(config: dict) -> dict:
    """A Hamming config dict without ``default_layout`` where ``blocks`` or ``block_size``
    decide the layout (records made before the rule existed have no such key)."""
    if config.get("blocks") is not None or config.get("block_size") is not None:
        config.pop("default_layout", None)
    return config


# --------------------------------------------------------------------------- the rest

def head_parameters(model: nn.Module) -> int:
    """Trainable parameters of the classification head (its trainable copy under an adapter)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and f".{HEAD}." in f".{name}")


def freeze_all_but_head(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(f".{HEAD}." in f".{name}")


def _build_head(model, entry):
    freeze_all_but_head(model)
    return model, None, {"trainable": HEAD}


def _build_full(model, entry):
    for p in model.parameters():
        p.requires_grad_(True)
    return model, None, {"trainable": "all parameters (encoder, pooler, head)"}


def _build_bottleneck(model, entry):
    from ..physics.bottleneck import add_bottlenecks
    freeze_all_but_head(model)
    names = add_bottlenecks(model, entry.targets, entry.config["rank"], entry.config["placement"])
    return model, None, {"adapter": "down -> GELU -> up, up zero-initialised",
                         "rank": entry.config["rank"], "placement": entry.config["placement"],
                         "target_modules": entry.targets, "layers": len(names)}


def _build_paper_dense(model, entry):
    from .paper import replace_linears
    freeze_all_but_head(model)
    orders, blocks = tuple(entry.config["orders"]), entry.config["blocks"]
    count = replace_linears(model, entry.targets, orders, blocks)
    return model, None, {"construction": "dense D from minors (itertools + linalg.det)",
                         "orders": list(orders), "blocks": blocks, "layers": count}


def _build_paper_ablation(model, entry):
    from ..frontier.ablations import replace_linears
    freeze_all_but_head(model)
    options = dict(entry.config)
    options.pop("target_modules", None)
    options["orders"] = tuple(options.get("orders", (1, 2)))
    count = replace_linears(model, entry.targets, **options)
    return model, None, {"construction": "dense D from minors, ablated "
                                         "(benchmarks.frontier.ablations)",
                         **{k: list(v) if isinstance(v, tuple) else v
                            for k, v in options.items()}, "layers": count}


#: family -> builder ``(model, entry) -> (model, aux_loss_fn or None, record)``.
FAMILIES: dict[str, Callable] = {
    "lora": _build_peft, "oft": _build_peft, "boft": _build_peft, "hra": _build_peft,
    "road": _build_peft, "fourierft": _build_peft, "vera": _build_peft, "ia3": _build_peft,
    **{family: _build_peft for family in _PEFT_CLASSES},
    "hamming": _build_adapter, "physics": _build_adapter, "mixture": _build_adapter,
    "head": _build_head, "full": _build_full, "paper_dense": _build_paper_dense,
    "paper_ablation": _build_paper_ablation,
    "bottleneck": _build_bottleneck,
}
#: family -> where it comes from.
GROUPS = {"lora": "peft", "oft": "peft", "boft": "peft", "hra": "peft", "road": "peft",
          "fourierft": "peft", "vera": "peft", "ia3": "peft",
          **{family: "peft" for family in _PEFT_CLASSES},
          "hamming": "qiadapters", "physics": "physics", "mixture": "mixture",
          "head": "head", "full": "full", "paper_dense": "paper", "paper_ablation": "paper", "bottleneck": "bottleneck"}


def load(path: Path) -> Entry:
    """One config file as an :class:`Entry`; unknown keys or families are errors."""
    data = json.loads(Path(path).read_text())
    unknown = set(data) - {"family", "label", "config", "experts"}
    if unknown:
        measured = (" (adapter_params is measured when the method runs and recorded in the "
                    "results, not written into its config)" if "adapter_params" in unknown
                    else "")
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: config, experts, "
                         f"family, label{measured}")
    if data.get("family") not in FAMILIES:
        raise ValueError(f"{path}: family {data.get('family')!r}; valid: {sorted(FAMILIES)}")
    return Entry(name=Path(path).stem, family=data["family"], label=data["label"],
                 config=data.get("config", {}), experts=tuple(data.get("experts", ())))


#: name -> Entry, every file of ``benchmarks/configs/``.
METHODS: dict[str, Entry] = {p.stem: load(p) for p in sorted(CONFIGS.glob("*.json"))}
#: The vision benchmark's methods (on its ViT), every file of ``benchmarks/configs/vision/``.
VISION_CONFIGS = CONFIGS / "vision"
VISION_METHODS: dict[str, Entry] = {p.stem: load(p)
                                    for p in sorted(VISION_CONFIGS.glob("*.json"))}


def get(name: str) -> Entry:
    """The entry called ``name``, from :data:`METHODS` or :data:`VISION_METHODS`."""
    for table in (METHODS, VISION_METHODS):
        if name in table:
            return table[name]
    raise KeyError(f"unknown method {name!r}; valid: {sorted(METHODS) + sorted(VISION_METHODS)}")


def build(name: str, model: nn.Module) -> tuple:
    """``get(name).build(model)``."""
    return get(name).build(model)


def family_available(entry: Entry) -> Optional[str]:
    """None when the entry can be built here, else why not (a family's package missing)."""
    families = {entry.family} | {get(e).family for e in entry.experts}
    try:
        if "physics" in families:
            import physics
            if not hasattr(physics, "PhysicsConfig"):
                return "physics.PhysicsConfig does not exist"
        if "mixture" in families:
            import qiadapters
            if not hasattr(qiadapters, "MixtureConfig"):
                return "qiadapters.MixtureConfig does not exist"
    except Exception as err:  # an import error in a half-finished family
        return f"{type(err).__name__}: {err}"
    return None
