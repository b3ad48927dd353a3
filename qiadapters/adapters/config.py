"""``AdapterConfig``: the documented dataclass every family's config extends.

Every field except the shared ones (:data:`SHARED_FIELDS`: ``target_modules``,
``modules_to_save``, peft's layer selection, a Hamming config's ``layout_pattern``) is a
per-layer option: :meth:`AdapterConfig.layer_options` hands them to the family layer's
``build``.  A family
checks its options in ONE function that both its config (:meth:`AdapterConfig.validate`) and
its layer's ``build`` call, so a config that constructs is a config that builds (up to the
shapes of the modules it meets).
"""
from __future__ import annotations

import contextlib
import difflib
import json
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence, Union

from .._version import __version__
from .formats import (FILE_KEYS, FORMAT_KEY, FORMAT_VERSION, PEFT_KEY, PEFT_NOTE, VERSION_KEY,
                      check_regular, format_of, read_json, upgrade_config)
from .patterns import compile_pattern
from .registry import config_class

CONFIG_NAME = "adapter_config.json"
#: peft's layer selection fields (:mod:`qiadapters.model.selection`): written into a saved
#: config only when set, so a config that leaves them out saves exactly as before.
SELECTION_FIELDS = ("exclude_modules", "layers_to_transform", "layers_pattern")
#: Fields of every config that are not per-layer options (``layout_pattern``: a Hamming
#: config's per-module layouts, resolved per layer by :mod:`qiadapters.model.selection`).
SHARED_FIELDS = ("target_modules", "modules_to_save", *SELECTION_FIELDS, "layout_pattern")
#: The ``target_modules`` value that selects every linear layer but the output head (any
#: case: peft compares ``target_modules.lower()``).
ALL_LINEAR = "all-linear"


def option(default: Any = MISSING, help: str = "", *, default_factory: Any = MISSING,
           omit_default: bool = False):
    """A config field with its documentation: ``field(default=..., metadata={"help": ...})``
    as peft writes them (the help text is what ``--help`` style tools and the docs show).
    ``omit_default``: :meth:`AdapterConfig.to_dict` leaves the field out while it holds its
    default, so a field added in a later version writes the files earlier versions wrote."""
    metadata = {"help": help, "omit_default": omit_default}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class AdapterConfig:
    """Fields shared by every family: which modules to adapt (peft's ``target_modules``,
    ``exclude_modules``, ``layers_to_transform``, ``layers_pattern``) and which to train
    fully."""

    target_modules: Optional[Union[list[str], str]] = option(None, (
        "Modules to wrap: a list of name suffixes (['query', 'value'] matches "
        "'encoder.layer.0.attention.self.query'), a regex string that must match the full "
        "module name, or 'all-linear' (any case; every linear layer -- nn.Linear and subclasses, "
        "transformers' Conv1D -- except the output head: the model's "
        "output embeddings, modules named classifier/score/lm_head/qa_outputs/head/cls, or "
        "else the last nn.Linear).  Required to inject into a model; an expert config inside "
        "a mixture may leave it out (it adapts the mixture's targets)."))
    modules_to_save: Optional[list[str]] = option(None, (
        "Name suffixes of modules trained in full next to the adapter (e.g. the freshly "
        "initialised ['classifier']).  Each gets a trainable copy per adapter; the original "
        "stays frozen and is used when adapters are disabled.  Copies are saved with the "
        "adapter."))
    exclude_modules: Optional[Union[list[str], str]] = option(None, (
        "Modules never adapted, as in peft: a list of name suffixes or a regex string that "
        "must match the full module name.  It must exclude at least one module that "
        "target_modules selects."), omit_default=True)
    layers_to_transform: Optional[Union[list[int], int]] = option(None, (
        "Adapt only the targets in these layer indices (an int or a list of ints >= 0), as in "
        "peft: the index is the first number in the module name after 'layers_pattern.' "
        "(default: after any name), e.g. 1 in 'encoder.layer.1.attention.self.query'.  Needs "
        "target_modules as a list; every index must exist in the model."), omit_default=True)
    layers_pattern: Optional[Union[list[str], str]] = option(None, (
        "Name (or names) of the module list that holds the layers, e.g. 'layer' (BERT), 'h' "
        "(GPT-2), 'layers' (Llama); used with layers_to_transform only, as in peft."),
        omit_default=True)

    adapter_type: ClassVar[str] = ""
    #: The family's one options check, shared with its layer's ``build``: keyword options ->
    #: the same options validated and normalised (set with ``staticmethod(check)``).
    check_options: ClassVar[Optional[Callable[..., dict[str, Any]]]] = None

    def __new__(cls, *args: Any, **kwargs: Any):
        # The dataclass __init__ would refuse an unknown keyword with a TypeError that lists no
        # valid fields; refuse it here first (one mechanism for every family), naming both.
        if kwargs:
            valid = [f.name for f in fields(cls)]
            unknown = [k for k in kwargs if k not in valid]
            if unknown:
                close = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
                hints = "".join(f" (did you mean {c[0]!r} for {k!r}?)"
                                for k, c in close.items() if c)
                raise TypeError(f"{cls.__name__} got unknown field(s) {unknown}{hints}; valid "
                                f"fields: {valid}")
        return super().__new__(cls)

    def __post_init__(self):
        tm = self.target_modules
        if tm is None:
            pass  # checked where it is needed: injecting into a model
        elif isinstance(tm, str):
            if not tm:
                raise ValueError("target_modules='' is empty; give name suffixes, a regex or "
                                 "'all-linear'")
            if tm.lower() == ALL_LINEAR:
                self.target_modules = ALL_LINEAR  # any case, as peft reads it
            else:  # matched in linear time: a hostile pattern cannot hang injection
                compile_pattern(tm)
        else:
            self.target_modules = _names("target_modules", tm)
        if self.modules_to_save is not None:
            self.modules_to_save = _names("modules_to_save", self.modules_to_save)
        from .selection import check_selection  # beside this module: the fields' one check
        check_selection(self)
        self.validate()

    def validate(self) -> None:
        """Check and normalise the per-layer options (called on construction) with
        :attr:`check_options`, the function the family's layer ``build`` uses too."""
        check = type(self).check_options
        if check is not None:
            for key, value in check(**self.layer_options()).items():
                setattr(self, key, value)

    # --------------------------------------------------------------- per-layer options
    def layer_options(self) -> dict[str, Any]:
        """The keyword arguments given to the layer's ``build`` (every non-shared field)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in SHARED_FIELDS}

    # --------------------------------------------------------------- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``adapter_type`` and every field (tuples become lists)."""
        out: dict[str, Any] = {"adapter_type": self.adapter_type}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and value == f.default:
                continue  # a field added later: absent when unused, as before
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdapterConfig":
        """Inverse of :meth:`to_dict`.  On the base class, dispatches on ``adapter_type``."""
        if not isinstance(data, dict):
            raise TypeError(f"config data must be a dict, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("adapter_type", cls.adapter_type or None)
        target = cls
        if cls is AdapterConfig or kind != cls.adapter_type:
            target = config_class(kind, within=cls)
        known = {f.name: f for f in fields(target)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {target.__name__} fields {unknown}; valid fields: "
                             f"{sorted(known)}")
        kwargs = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(value, list) and default is not MISSING and isinstance(default, tuple):
                value = tuple(value)
            kwargs[name] = value
        return target(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> str:
        """Write ``adapter_config.json`` into ``directory``: the fields, the file keys
        (:data:`~qiadapters.adapters.formats.FILE_KEYS`: the format version and this library's
        version) and ``extra`` keys."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CONFIG_NAME)
        data = {**self.to_dict(), FORMAT_KEY: FORMAT_VERSION, VERSION_KEY: __version__,
                PEFT_KEY: PEFT_NOTE, **(extra or {})}
        with open(path, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, ignore: Sequence[str] = ()) -> "AdapterConfig":
        """Read ``adapter_config.json`` from ``directory``: its config fields with the meaning
        they had when saved (:func:`~qiadapters.adapters.formats.upgrade_config` for the file's
        format version; a file without one counts as the current format), keys in ``ignore``
        dropped."""
        path = os.path.join(directory, CONFIG_NAME)
        if not check_regular(path):
            raise FileNotFoundError(f"no {CONFIG_NAME} in {os.fspath(directory)!r}")
        with naming_file(path):
            data = read_json(path)  # bounded: a regular file, its size, its nesting
            data = upgrade_config(format_of(data, path, unmarked=FORMAT_VERSION), data)
            for key in ignore:
                data.pop(key, None)
            return cls.from_dict(data)


@contextlib.contextmanager
def naming_file(path: str) -> Iterator[None]:
    """Make every ValueError / TypeError raised inside name the config file ``path`` (a
    config read from a file, then checked, may fail in many places; each message starts
    with the file's path unless it names it already)."""
    try:
        yield
    except (ValueError, TypeError) as e:
        if repr(path) in str(e):
            raise
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"{path!r}: {e}") from None


def _names(arg: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set)):
        raise ValueError(f"{arg}={value!r} must be a list of module-name strings")
    value = list(value)
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad or not value:
        raise ValueError(f"{arg}={value!r} must be a non-empty list of non-empty strings")
    return value
