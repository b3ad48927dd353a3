"""Finding target modules and wrapping them, in two phases.

:func:`plan` validates everything and builds every new adapter's state without touching the
model; :func:`apply` then swaps in the adapter layers.  A bad config (no match, a target the
family cannot wrap, a block size too small, ...) therefore fails before the model is modified.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn

from ..adapters.config import AdapterConfig
from ..adapters.patterns import compile_pattern
from ..adapters.layer import AdapterLayer, AdapterParts, check_adapter_name, is_linear
from ..adapters.registry import layer_class
from ..adapters.tied import find_ties
from ..integrations.peft import (foreign_adapter_parameters, is_peft_layer, is_peft_wrapper,
                                peft_base)
from .modules_to_save import ModulesToSave
from .selection import check_built, check_patterns, layer_options, select

#: Module names treated as a model's output head by ``target_modules="all-linear"``.
HEAD_NAMES = frozenset({"classifier", "score", "lm_head", "qa_outputs", "head", "cls"})


def visible_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``named_modules`` without the insides of adapter layers (their base and adapters),
    ours or peft's (tuner layers, modules_to_save wrappers): ``"all-linear"`` never selects
    a LoRA matrix."""
    hidden: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(h + ".") for h in hidden):
            continue
        if isinstance(module, AdapterLayer) or is_peft_layer(module) or is_peft_wrapper(module):
            hidden.append(name)
        yield name, module


def _base(module: nn.Module) -> nn.Module:
    return module.base_layer if isinstance(module, AdapterLayer) else module


def _kind_of(module: nn.Module) -> nn.Module:
    """The module whose type says what ``module`` is (inside our layers and peft's)."""
    return peft_base(_base(module))


def output_heads(model: nn.Module) -> set[str]:
    """Names of the output head's linear modules (excluded by ``"all-linear"``; linear:
    :func:`~qiadapters.adapters.layer.is_linear`, ``nn.Linear`` or transformers' ``Conv1D``)."""
    modules = list(visible_modules(model))
    linears = [n for n, m in modules if is_linear(_kind_of(m))]
    heads = {n for n in linears if HEAD_NAMES & set(n.split("."))}
    get_out = getattr(model, "get_output_embeddings", None)
    if callable(get_out):
        try:
            out = get_out()
        except (NotImplementedError, AttributeError):
            out = None
        heads |= {n for n, m in modules if out is not None and (m is out or _kind_of(m) is out)}
    if not heads and linears:
        heads.add(linears[-1])
    return heads


def _suffix_match(name: str, keys) -> bool:
    return any(name == k or name.endswith("." + k) for k in keys)


def match_targets(model: nn.Module, target_modules) -> list[str]:
    """Names of the modules selected by ``target_modules`` (see :class:`AdapterConfig`)."""
    modules = [(n, m) for n, m in visible_modules(model) if n]
    if target_modules == "all-linear":
        heads = output_heads(model)
        return [n for n, m in modules if is_linear(_kind_of(m)) and n not in heads]
    if isinstance(target_modules, str):
        pattern = compile_pattern(target_modules)  # linear time: no backtracking
        return [n for n, _ in modules if pattern.fullmatch(n)]
    return [n for n, _ in modules if _suffix_match(n, target_modules)]


def _examples(model: nn.Module, limit: int = 8) -> list[str]:
    names = [n for n, m in visible_modules(model) if n and is_linear(_kind_of(m))]
    names = names or [n for n, _ in visible_modules(model) if n]
    return names[:limit] + (["..."] if len(names) > limit else [])


def _closest(model: nn.Module, entry: str) -> list[str]:
    """Module names (and their last components) of ``model`` closest to ``entry``."""
    names = {n for n, _ in visible_modules(model) if n}
    names |= {n.rsplit(".", 1)[-1] for n in names}
    return difflib.get_close_matches(entry, sorted(names), n=3, cutoff=0.6)


def _warn_unmatched(model: nn.Module, target_modules) -> None:
    """UserWarning naming every list entry of ``target_modules`` that matches no module while
    others do (a typo such as ``["querry", "value"]`` would silently adapt only ``value``).
    A config listing names for several architectures at once stays usable (a warning, not
    an error); a list that matches nothing at all is refused by :func:`plan`."""
    if isinstance(target_modules, str):
        return
    modules = [n for n, _ in visible_modules(model) if n]
    for entry in target_modules:
        if not any(_suffix_match(n, [entry]) for n in modules):
            warnings.warn(f"target_modules entry {entry!r} matches no module of "
                          f"{type(model).__name__} (the other entries do); closest module "
                          f"names: {_closest(model, entry)}", UserWarning, stacklevel=4)


@dataclass
class Plan:
    """Everything :func:`apply` will do: ``(module name, current module, built state)``."""

    adapter_name: str
    config: AdapterConfig
    layer_cls: type[AdapterLayer]
    targets: list[tuple[str, nn.Module, AdapterParts]] = field(default_factory=list)
    saves: list[tuple[str, nn.Module, AdapterParts]] = field(default_factory=list)

    def entries(self) -> Iterator[tuple[str, nn.Module, AdapterParts, type[AdapterLayer]]]:
        for name, module, parts in self.targets:
            yield name, module, parts, self.layer_cls
        for name, module, parts in self.saves:
            yield name, module, parts, ModulesToSave

    def expected_state(self) -> dict[str, torch.Size]:
        """Saved-key -> shape of every tensor this adapter will hold (see :mod:`.io`)."""
        out = {}
        for name, _, parts, _ in self.entries():
            for attr, module in parts.modules.items():
                for key, value in module.state_dict().items():
                    out[f"{name}.{attr}.{key}"] = value.shape
        return out

    def modules(self) -> Iterator[tuple[str, nn.Module]]:
        """``(saved-key prefix, module)`` for every new adapter module."""
        for name, _, parts, _ in self.entries():
            for attr, module in parts.modules.items():
                yield f"{name}.{attr}", module


def plan(model: nn.Module, config: AdapterConfig, adapter_name: str,
         record: dict[str, dict] | None = None) -> Plan:
    """Validate ``config`` on ``model`` and build the new adapter's state; modifies nothing.
    ``record``: a saved file's per-layer record, whose layouts the layers are built with
    (:mod:`.selection`)."""
    if not isinstance(config, AdapterConfig):
        raise TypeError(f"config must be an AdapterConfig (e.g. HammingConfig), got "
                        f"{type(config).__name__}")
    check_adapter_name(adapter_name)
    if config.target_modules is None:
        raise ValueError(f"target_modules is required to inject a {type(config).__name__} into "
                         f"a model: a list of module-name suffixes, a regex string, or "
                         f"'all-linear'; some module names: {_examples(model)}")
    layer_cls = layer_class(config)
    result = Plan(adapter_name, config, layer_cls)
    names = match_targets(model, config.target_modules)
    if not names:
        close = ("" if isinstance(config.target_modules, str) else
                 f"; closest names: { {e: _closest(model, e) for e in config.target_modules} }")
        raise ValueError(f"target_modules={config.target_modules!r} matches no module of "
                         f"{type(model).__name__}; some module names: {_examples(model)}{close}")
    _warn_unmatched(model, config.target_modules)
    names = select(model, config, names)
    check_patterns(config, names)
    saves = []
    if config.modules_to_save:
        saves = [n for n, _ in visible_modules(model)
                 if n and _suffix_match(n, config.modules_to_save)]
        if not saves:
            raise ValueError(f"modules_to_save={config.modules_to_save!r} matches no module "
                             f"of {type(model).__name__}; some module names: {_examples(model)}")
        both = sorted(set(saves) & set(names))
        if both:
            raise ValueError(f"modules {both} are both targets and modules_to_save; a module "
                             f"is either adapted or trained in full")
    for kind, name in [("target", n) for n in names] + [("save", n) for n in saves]:
        module = model.get_submodule(name)
        cls = layer_cls if kind == "target" else ModulesToSave
        if isinstance(module, AdapterLayer):
            if type(module) is not cls:
                raise ValueError(f"module {name!r} is already wrapped by "
                                 f"{type(module).__name__}; it cannot also hold a "
                                 f"{cls.__name__} adapter (one family per layer)")
            if adapter_name in module.adapter_names:
                raise ValueError(f"adapter_name={adapter_name!r} already exists on module "
                                 f"{name!r}; existing: {module.adapter_names}")
        try:
            entry = (record or {}).get(name)
            options = layer_options(config, name, module, entry) if kind == "target" else {}
            parts = cls.build(_base(module), **options)
        except (ValueError, TypeError) as e:
            raise type(e)(f"module {name!r} ({type(_base(module)).__name__}): {e}") from None
        if kind == "target":
            check_built(name, parts, entry)
        (result.targets if kind == "target" else result.saves).append((name, module, parts))
    return result


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def adapter_parameter_ids(model: nn.Module) -> set[int]:
    """``id`` of every parameter held by an adapter (not by a base layer)."""
    ids = set()
    for _, layer in adapter_layers(model):
        for attr in layer.adapter_layer_names:
            ids |= {id(p) for p in getattr(layer, attr).parameters()}
    return ids


def apply(model: nn.Module, plan: Plan, active: list[str], trainable: bool = True) -> None:
    """Attach the planned adapter, freeze every parameter that is no adapter's.

    New adapter modules are trainable if ``trainable`` (the layers place them next to their
    base module); new wrappers get ``active`` as their active adapters.  Adapter parameters
    -- ours, and other PEFT methods' (:func:`~qiadapters.integrations.peft.foreign_adapter_parameters`,
    e.g. a ``PeftModel``'s LoRA matrices) -- keep their ``requires_grad``, as in peft.
    """
    foreign = [(p, p.requires_grad) for p in foreign_adapter_parameters(model)]
    for name, module, parts, cls in plan.entries():
        for part in parts.modules.values():
            part.requires_grad_(trainable)
        if isinstance(module, AdapterLayer):
            module.attach(plan.adapter_name, parts)
        else:
            layer = cls(module, adapter_name=plan.adapter_name, parts=parts)
            layer.set_adapter(active)
            _replace(model, name, layer)
    keep = adapter_parameter_ids(model)
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)
    for p, flag in foreign:  # a layer freezes its whole base, a peft layer's adapters too
        p.requires_grad_(flag)
    record_ties(model)


def record_ties(model: nn.Module) -> None:
    """Record on every adapter layer of ``model`` which of its base parameters the model
    also holds elsewhere (tied weights: :mod:`qiadapters.adapters.tied`); a merge gives
    those a private copy.  Called at injection and again before merging."""
    find_ties(model, adapter_layers(model))


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, AdapterLayer]]:
    """``(name, layer)`` for every adapter layer of ``model`` that is not inside another
    (a mixture's experts belong to their mixture)."""
    for name, module in visible_modules(model):
        if isinstance(module, AdapterLayer):
            yield name, module


def held(layer: AdapterLayer, names: Sequence[str]) -> list[str]:
    """Those of ``names`` that ``layer`` holds, in the order added to it."""
    return [a for a in layer.adapter_names if a in set(names)]


def check_mergeable(model: nn.Module, names: list[str]) -> None:
    """TypeError naming every adapter layer of ``model`` that cannot merge those of ``names``
    it holds (its ``merge_blocker``), raised before any layer changes."""
    blockers = ((n, l, held(l, names)) for n, l in adapter_layers(model))
    blocked = [(n, l, why) for n, l, mine in blockers
               if mine and (why := l.merge_blocker(mine)) is not None]
    if blocked:
        bad = [f"{n} ({type(l).__name__})" for n, l, _ in blocked]
        why = "; ".join(f"{n}: {reason}" for n, _, reason in blocked[:3])
        raise TypeError(f"these adapter layers cannot be merged into the base weights: "
                        f"{bad[:5]} ({why}); use unload() to remove them instead")
