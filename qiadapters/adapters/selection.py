"""The config-level checks of peft's layer selection fields and of ``layout_pattern``.

``exclude_modules``, ``layers_to_transform`` and ``layers_pattern`` mean what they mean in
peft 0.21 (``peft.tuners.tuners_utils.check_target_module_exists``); the model-level part
(which modules they select, an index the model lacks) is
:mod:`qiadapters.model.selection`.  ``layout_pattern`` (Hamming configs) maps module-name
regexes to the layout of the layers they match, as peft's ``rank_pattern`` maps them to ranks.
"""
from __future__ import annotations

from typing import Any

from .patterns import ModulePattern, compile_pattern

#: The layout fields a ``layout_pattern`` entry may set (the others are the config's).
LAYOUT_FIELDS = ("blocks", "block_size", "n_qubits", "orders")
#: The fields of a Hamming layer's layout in a saved file's per-layer record, under
#: ``"layout"`` (a mixture's: ``"experts"``, one such dict per expert, None for an expert of
#: another family).
RECORD_FIELDS = ("blocks", "n", "block_size", "orders", "side", "parametrization")
#: The keys of a layer's record that hold layouts (the others are shapes).
LAYOUT_KEYS = ("layout", "experts")


def compiled(pattern: str, shown: str) -> ModulePattern:
    """``pattern`` compiled for matching in time linear in the name
    (:mod:`~qiadapters.adapters.patterns`: a pattern from a downloaded config cannot hang
    injection); its errors name it as ``shown`` (e.g. ``"exclude_modules='fc('"``)."""
    try:
        return compile_pattern(pattern)
    except ValueError as e:
        raise ValueError(str(e).replace(f"target_modules={pattern!r}", shown)) from None


def _regex(arg: str, value: str) -> None:
    compiled(value, f"{arg}={value!r}")


def _strings(arg: str, value: Any) -> Any:
    """A regex string (checked) or a non-empty list of non-empty strings."""
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{arg}='' is empty; give a list of name suffixes or a regex")
        _regex(arg, value)
        return value
    if not isinstance(value, (list, tuple, set)) or not value or not all(
            isinstance(v, str) and v for v in value):
        raise ValueError(f"{arg}={value!r} must be a regex string or a non-empty list of "
                         f"non-empty module-name strings")
    return list(value)


def _indices(value: Any) -> list[int]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple, set, range)) or not items or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise ValueError(f"layers_to_transform={value!r} must be a layer index or a non-empty "
                         f"list of layer indices, integers >= 0")
    return sorted(set(items))


def check_selection(config) -> None:
    """Check and normalise a config's selection fields (peft's rules: ``layers_to_transform``
    and ``layers_pattern`` need ``target_modules`` as a list; ``layers_pattern`` needs
    ``layers_to_transform``); ``layout_pattern`` where the config has one."""
    if config.exclude_modules is not None:
        config.exclude_modules = _strings("exclude_modules", config.exclude_modules)
    layers, pattern = config.layers_to_transform, config.layers_pattern
    if layers is not None:
        config.layers_to_transform = _indices(layers)
    if pattern is not None:
        config.layers_pattern = _strings("layers_pattern", pattern)
        for entry in [pattern] if isinstance(pattern, str) else pattern:
            _regex("layers_pattern", entry)
        if layers is None:
            raise ValueError(f"layers_pattern={pattern!r} is given without layers_to_transform; "
                             f"it only says where layers_to_transform's indices are (as in "
                             f"peft): give both, or neither")
    if (layers is not None or pattern is not None) and isinstance(config.target_modules, str):
        arg = "layers_to_transform" if layers is not None else "layers_pattern"
        raise ValueError(f"{arg}={layers if layers is not None else pattern!r} needs "
                         f"target_modules as a list of name suffixes, not the string "
                         f"{config.target_modules!r} (as in peft); list the names, or put the "
                         f"layer numbers in the regex, or use exclude_modules")
    if getattr(config, "layout_pattern", None) is not None:
        config.layout_pattern = check_layout_pattern(config.layout_pattern)


def check_layout_pattern(value: Any) -> dict[str, dict[str, Any]]:
    """``{module-name regex: {field: value}}`` with fields from :data:`LAYOUT_FIELDS`, each
    value checked by the Hamming options check (blocks and block_size not both)."""
    from .hamming.config import check_options  # the Hamming family's one check
    if not isinstance(value, dict) or not value:
        raise ValueError(f"layout_pattern={value!r} must be a non-empty dict mapping "
                         f"module-name regexes to layouts, e.g. {{'layer\\\\.0\\\\..*': "
                         f"{{'blocks': 4}}}}")
    out = {}
    for key, layout in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"layout_pattern key {key!r} must be a non-empty regex string")
        compiled(key, f"layout_pattern key {key!r}")
        if not isinstance(layout, dict) or not layout or set(layout) - set(LAYOUT_FIELDS):
            bad = sorted(set(layout) - set(LAYOUT_FIELDS)) if isinstance(layout, dict) else []
            raise ValueError(f"layout_pattern[{key!r}]={layout!r} must be a non-empty dict of "
                             f"layout fields from {list(LAYOUT_FIELDS)}"
                             + (f"; unknown: {bad}" if bad else ""))
        checked = check_options(**layout)
        out[key] = {k: (list(checked[k]) if k == "orders" else checked[k]) for k in layout}
    return out


def name_matches(pattern: str, name: str, shown: str = "") -> bool:
    """Whether regex ``pattern`` matches the whole module name ``name``, as ``re.fullmatch``
    would, in time linear in the name (the one place the selection fields run a regex on a
    name); ``shown`` names the pattern in errors."""
    try:
        return compiled(pattern, shown or repr(pattern)).fullmatch(name)
    except ValueError as e:  # too costly a match
        raise ValueError(str(e).replace(f"target_modules={pattern!r}", shown or repr(pattern))
                         ) from None


def key_matches(key: str, name: str) -> bool:
    """Whether a ``layout_pattern`` key matches module ``name`` as peft's ``rank_pattern``
    keys do: ``re.match(rf"(.*\\.)?({key})$", name)``, i.e. the key matches the whole name
    or a tail of it after a dot (module names hold no newline)."""
    return name_matches(rf"(?:.*\.)?(?:{key})", name, f"layout_pattern key {key!r}")


def pattern_key(patterns, name: str) -> str | None:
    """The first key of ``patterns`` matching module ``name`` (:func:`key_matches`), None if
    none does."""
    return next((key for key in patterns or () if key_matches(key, name)), None)


def check_record(entry: Any, where: str, path: str) -> None:
    """The layout part of record ``entry`` of layer ``path`` is well formed (ValueError
    naming the file ``where`` otherwise)."""
    def bad(value, what):
        return ValueError(f"{where!r}: 'layers' entry {path!r} has {what}={value!r}; it must "
                          f"be a dict of {list(RECORD_FIELDS)} (integers, orders a list of "
                          f"integers, side and parametrization strings)")

    def one(layout, what):
        if not isinstance(layout, dict) or set(layout) != set(RECORD_FIELDS):
            raise bad(layout, what)
        ints = [layout[k] for k in ("blocks", "n", "block_size")] + list(
            layout["orders"] if isinstance(layout["orders"], list) else [None])
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in ints) \
                or not all(isinstance(layout[k], str) for k in ("side", "parametrization")):
            raise bad(layout, what)
    if "layout" in entry:
        one(entry["layout"], "layout")
    if "experts" in entry:
        experts = entry["experts"]
        if not isinstance(experts, list):
            raise bad(experts, "experts")
        for i, layout in enumerate(experts):
            if layout is not None:
                one(layout, f"experts[{i}]")
