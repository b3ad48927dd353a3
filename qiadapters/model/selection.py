"""Which of the targeted modules an adapter takes, and the layout each layer gets.

Selection follows peft 0.21 (``check_target_module_exists``): ``exclude_modules`` removes
modules (name suffixes, or a regex matching the full name), ``layers_to_transform`` keeps the
modules whose layer index -- the first number after ``<layers_pattern>.`` in the name, or
after any name component when no pattern is given -- is listed.  Unlike peft, a selection
that selects nothing it names is an error before the model is touched: an ``exclude_modules``
that excludes none of the targets, a layer index no target has.

Layouts: a Hamming layer's options are its config's, then its ``layout_pattern`` entry, then
(when loading a file of format 5) the layout recorded for that layer in the file
(:func:`layout_record`), so a saved adapter keeps its layout if the library's default changes.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from torch import nn

from ..adapters.config import AdapterConfig
from ..adapters.layer import AdapterLayer
from ..adapters.selection import key_matches, name_matches, pattern_key

#: Recorded fields a layer's config decides; the others follow from them and the width.
_CONFIG_DECIDES = ("orders", "side", "parametrization")


def layer_index(name: str, layers_pattern) -> int | None:
    """peft's layer index of module ``name`` (None when it has none): the first all-digit
    name component followed by another, after a component matching ``layers_pattern`` (a
    regex, or a list of them tried in order), or with no pattern the first such component
    after two others -- what peft's ``re.match(rf"(?:^|.*?\\.){pattern}\\.(?P<idx>\\d+)\\.",
    name)`` and ``re.match(r".*?\\.[^.]*\\.(?P<idx>\\d+)\\.", name)`` find, with the pattern
    run in linear time (the earliest start, then the nearest index, where a pattern could
    match several spans; a pattern is one unit, "h|layers" as "(h|layers)", which peft's
    regex does not parenthesise)."""
    parts = name.split(".")
    numbers = [k for k in range(len(parts) - 1) if parts[k].isdecimal()]
    if not layers_pattern:
        return next((int(parts[k]) for k in numbers if k >= 2), None)
    for pattern in [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern:
        for j in range(len(parts)):
            for k in numbers:
                if k > j and name_matches(pattern, ".".join(parts[j:k]),
                                          f"layers_pattern={pattern!r}"):
                    return int(parts[k])
    return None


def _excluded(name: str, exclude) -> bool:
    if isinstance(exclude, str):
        return name_matches(exclude, name)
    return name in exclude or any(name.endswith("." + e) for e in exclude)


def select(model: nn.Module, config: AdapterConfig, names: list[str]) -> list[str]:
    """``names`` (the modules ``target_modules`` matches) less those ``exclude_modules`` and
    ``layers_to_transform`` leave out; ValueError for a selection field that selects nothing
    it names (nothing to exclude, a layer index no target has) or leaves no module."""
    what = type(model).__name__
    exclude = config.exclude_modules
    if exclude is not None:
        kept = [n for n in names if not _excluded(n, exclude)]
        if len(kept) == len(names):
            raise ValueError(f"exclude_modules={exclude!r} excludes none of the {len(names)} "
                             f"modules target_modules={config.target_modules!r} selects in "
                             f"{what} (e.g. {names[:4]}); give name suffixes or a regex "
                             f"matching the full name of modules to leave out")
        if not kept:
            raise ValueError(f"exclude_modules={exclude!r} excludes every module "
                             f"target_modules={config.target_modules!r} selects in {what} "
                             f"({names[:4]}...); nothing would be adapted")
        if not isinstance(exclude, str):  # as target_modules: warn of an entry of no use
            for entry in exclude:
                if not any(_excluded(n, [entry]) for n in names):
                    warnings.warn(f"exclude_modules entry {entry!r} excludes none of the "
                                  f"modules target_modules selects in {what} (the other "
                                  f"entries do)", UserWarning, stacklevel=4)
        names = kept
    wanted = config.layers_to_transform
    if wanted is None:
        return names
    # as peft: a module named in full in target_modules is taken whatever its layer
    named = set(config.target_modules) if isinstance(config.target_modules, list) else set()
    index = {n: layer_index(n, config.layers_pattern) for n in names if n not in named}
    have = sorted({i for i in index.values() if i is not None})
    if not have:
        where = (f"after layers_pattern={config.layers_pattern!r}" if config.layers_pattern
                 else "after a name component")
        raise ValueError(f"layers_to_transform={wanted!r}: no module target_modules selects in "
                         f"{what} has a layer index {where} (e.g. {names[:3]}); give the name "
                         f"of the module list holding the layers as layers_pattern (e.g. "
                         f"'layer', 'h', 'layers')")
    missing = [i for i in wanted if i not in have]
    if missing:
        raise ValueError(f"layers_to_transform={wanted!r}: {what} has no layer "
                         f"{missing[0]} among the targeted modules; valid layer indices: "
                         f"{have}")
    return [n for n in names if n in named or index[n] in wanted]


# --------------------------------------------------------------------------- layouts
def _layout(layer: AdapterLayer, adapter_name: str) -> dict[str, Any]:
    rot = layer.hamming[adapter_name]
    lay = rot.block_layout
    return {"blocks": lay.blocks, "n": lay.n, "block_size": lay.block_size,
            "orders": list(lay.orders), "side": layer.side[adapter_name],
            "parametrization": rot.name}


def layout_record(layer: AdapterLayer, adapter_name: str) -> dict[str, Any]:
    """What the saved record holds about adapter ``adapter_name``'s layout on ``layer``:
    ``{"layout": {...}}`` for a Hamming layer (:data:`~qiadapters.adapters.selection.RECORD_FIELDS`), ``{"experts": [...]}``
    for a mixture (None for an expert that is not a Hamming layer), ``{}`` otherwise."""
    if hasattr(layer, "hamming"):
        return {"layout": _layout(layer, adapter_name)}
    experts = getattr(layer, "experts", None)
    if experts is not None and adapter_name in experts:
        return {"experts": [_layout(e, "expert") if hasattr(e, "hamming") else None
                            for e in experts[adapter_name]]}
    return {}


def _hamming(config: AdapterConfig) -> bool:
    return config.adapter_type == "hamming"


def _resolved(config: AdapterConfig, name: str, recorded: dict | None,
              what: str) -> AdapterConfig:
    """A Hamming ``config`` for layer ``name``: its ``layout_pattern`` entry applied, then
    the ``recorded`` layout (refused, naming the field, where the config decides otherwise)."""
    changes: dict[str, Any] = {}
    key = pattern_key(config.layout_pattern, name)
    if key is not None:
        entry = config.layout_pattern[key]
        changes.update(entry)
        if "blocks" in entry:
            changes.setdefault("block_size", None)
        if "block_size" in entry:
            changes.setdefault("blocks", None)
        if "orders" in entry:
            changes["orders"] = tuple(entry["orders"])
    if recorded is not None:
        ours = {"orders": list(changes.get("orders", config.orders)), "side": config.side,
                "parametrization": config.parametrization}
        for field in _CONFIG_DECIDES:
            if recorded[field] != ours[field]:
                raise ValueError(f"'layers' record of {what} says {field}={recorded[field]!r}, "
                                 f"the config gives {field}={ours[field]!r}: the record does "
                                 f"not belong to this config (was the file edited?)")
        r, b = recorded["blocks"], recorded["block_size"]
        changes.update(n_qubits=recorded["n"], blocks=r, block_size=None)
        dim = recorded.get("_dim")
        if dim is not None and dim // r != b:  # the layer was built from its block size
            changes.update(blocks=None, block_size=b)
    if not changes:
        return config
    return dataclasses.replace(config, layout_pattern=None, **changes)


def _width(module: nn.Module, side: str) -> int | None:
    from ..adapters.hamming.kinds import base_kind
    from ..adapters.layer import unwrap
    base = unwrap(module.base_layer if isinstance(module, AdapterLayer) else module)
    try:
        d_in, d_out = base_kind(base).widths(base)
    except (TypeError, ValueError):
        return None
    return d_out if side == "output" else d_in


def layer_options(config: AdapterConfig, name: str, module: nn.Module,
                  entry: dict | None) -> dict[str, Any]:
    """The options ``build`` gets for module ``name``: ``config``'s, with its layout pattern
    and the saved record ``entry`` of this layer (None: no record) applied."""
    entry = entry or {}
    if _hamming(config):
        recorded = entry.get("layout")
        if recorded is not None:
            recorded = {**recorded, "_dim": _width(module, recorded["side"])}
        return _resolved(config, name, recorded, f"layer {name!r}").layer_options()
    options = config.layer_options()
    if config.adapter_type == "mixture":
        experts = entry.get("experts")
        if experts is not None and len(experts) != len(config.experts):
            raise ValueError(f"'layers' record of layer {name!r} lists {len(experts)} experts, "
                             f"the config {len(config.experts)}: the record does not belong to "
                             f"this config")
        options["experts"] = [
            _resolved(e, name, None if experts is None or experts[i] is None else
                      {**experts[i], "_dim": _width(module, experts[i]["side"])},
                      f"layer {name!r} expert {i}") if _hamming(e) else e
            for i, e in enumerate(config.experts)]
    return options


def check_built(name: str, parts, entry: dict | None) -> None:
    """The layout built for layer ``name`` is the one recorded (ValueError naming the layer
    and the field otherwise: a record that does not fit the layer's width)."""
    if not entry:
        return
    pairs = []
    if "layout" in entry and "hamming" in parts.modules:
        pairs.append((f"layer {name!r}", entry["layout"], parts.modules["hamming"]))
    for i, recorded in enumerate(entry.get("experts") or []):
        expert = parts.modules["experts"][i]
        if recorded is not None and hasattr(expert, "hamming"):
            pairs.append((f"layer {name!r} expert {i}", recorded, expert.hamming["expert"]))
    for what, recorded, rot in pairs:
        lay = rot.block_layout
        built = {"blocks": lay.blocks, "n": lay.n, "block_size": lay.block_size}
        for field, value in built.items():
            if recorded[field] != value:
                raise ValueError(f"'layers' record of {what} says {field}={recorded[field]}, "
                                 f"but that layout on this layer gives {field}={value}: the "
                                 f"record does not fit the layer (was the file edited?)")


def check_patterns(config: AdapterConfig, names: list[str]) -> None:
    """Every ``layout_pattern`` key (the config's, its experts') matches an adapted layer."""
    configs = [config] + list(getattr(config, "experts", []))
    for cfg in configs:
        for key in getattr(cfg, "layout_pattern", None) or ():
            if not any(key_matches(key, n) for n in names):
                raise ValueError(f"layout_pattern key {key!r} matches no adapted module; "
                                 f"adapted modules: {names[:6]}{'...' if len(names) > 6 else ''}"
                                 f" (a key matches the end of a module name, as peft's "
                                 f"rank_pattern)")

