"""Format versions of a saved ``adapter_config.json``, and what older formats' fields meant.

Every config file qiadapters writes (:meth:`AdapterConfig.save
<qiadapters.adapters.config.AdapterConfig.save>` and ``save_pretrained``) records
``"format_version"`` (:data:`FORMAT_VERSION`) and ``"qiadapters_version"``; readers take the
version out with :func:`format_of` and give older fields their meaning in today's spelling
with :func:`upgrade_config`, so a config means what it meant when it was saved.  The table of
versions is in :mod:`qiadapters.model.io` (which also upgrades the saved tensors).
"""
from __future__ import annotations

import json
import os
import stat

from .._version import __version__
from .selection import LAYOUT_KEYS, check_record

__all__ = ["FORMAT_KEY", "VERSION_KEY", "PEFT_KEY", "PEFT_NOTE", "FILE_KEYS", "FORMAT_VERSION",
           "format_of", "upgrade_config", "MAX_CONFIG_BYTES", "check_regular", "read_json"]

FORMAT_KEY, VERSION_KEY = "format_version", "qiadapters_version"
#: The key peft's loaders read first (``PeftConfig._get_peft_type``); a qiadapters file holds
#: :data:`PEFT_NOTE` there, no peft type, so ``peft.PeftModel.from_pretrained`` on the folder
#: fails with ``KeyError`` whose message is the note.  Ignored on reading.
PEFT_KEY = "peft_type"
PEFT_NOTE = ("a qiadapters adapter, not a peft one: load it with "
             "qiadapters.AdapterModel.from_pretrained(model, folder)")
#: Keys a saved config file holds besides the config's fields.
FILE_KEYS = (FORMAT_KEY, VERSION_KEY, PEFT_KEY)
#: The format this library writes; it reads every format from 1 up to this one.
FORMAT_VERSION = 6
#: The key of the per-layer record (format 5 on): module path -> the shape the adapter was
#: saved for, e.g. ``{"fc1": {"in": 16, "out": 32}}`` (:mod:`qiadapters.model.io`), and a
#: Hamming layer's resolved layout (``"layout"``; a mixture's ``"experts"``: see
#: :data:`~qiadapters.adapters.selection.RECORD_FIELDS`).
LAYERS_KEY = "layers"
#: Blocks per layer of a Hamming config with neither ``blocks`` nor ``block_size`` in
#: formats 1-3 (formats 4-5: ``max(3, d // 128)``, the ``"paper"`` rule).
FORMAT_3_DEFAULT_BLOCKS = 3
#: The ``default_layout`` of a Hamming config saved in formats 4-5, which had no such field
#: (from format 6 on it is written: ``"compact"`` by default).
FORMAT_5_DEFAULT_LAYOUT = "paper"


def format_of(data: dict, where: str, unmarked: int | None = None) -> int:
    """The format version of a parsed config file ``data`` (its file keys are popped);
    ``where`` names the file in errors.  A file with neither key was written by qiadapters
    0.1.x (format 1) when it came with saved tensors; ``unmarked`` is the version to assume
    otherwise (a config written by hand, or by ``AdapterConfig.save`` before 0.3.0), None to
    refuse such a file."""
    data.pop(PEFT_KEY, None)
    data.pop(LAYERS_KEY, None)  # about the model it was saved from: see check_layers
    version = data.pop(VERSION_KEY, None)
    fmt = data.pop(FORMAT_KEY, None)
    if fmt is None:
        if version is None:
            if unmarked is not None:
                return unmarked
            raise ValueError(f"{where!r} has neither {FORMAT_KEY!r} nor {VERSION_KEY!r}: it "
                             f"was not saved by qiadapters")
        return 1  # qiadapters 0.1.x wrote no format version
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise ValueError(f"{where!r} has {FORMAT_KEY}={fmt!r}; valid: an integer from 1 "
                         f"to {FORMAT_VERSION}")
    if fmt > FORMAT_VERSION:
        raise ValueError(f"{where!r} is in adapter format {fmt} (written by qiadapters "
                         f"{version}), newer than this qiadapters {__version__} reads (formats "
                         f"1 to {FORMAT_VERSION}); upgrade qiadapters to load it")
    return fmt


def _hamming_fields(data: dict):
    """The Hamming config dicts in a saved config dict: itself, or a mixture's experts."""
    if data.get("adapter_type") == "hamming":
        yield data
    experts = data.get("experts") if data.get("adapter_type") == "mixture" else None
    for expert in experts if isinstance(experts, list) else ():
        if isinstance(expert, dict) and expert.get("adapter_type") == "hamming":
            yield expert


def upgrade_config(fmt: int, data: dict) -> dict:
    """Config fields of format ``fmt`` with the meaning they had when saved, in the current
    spelling; ``data`` is updated in place and returned.

    A Hamming config with neither ``blocks`` nor ``block_size`` meant 3 blocks on every layer
    in formats 1-3 and ``max(3, d // 128)`` in formats 4-5 (``default_layout="paper"``);
    from format 6 on the file says which rule it means."""
    for hamming in _hamming_fields(data) if fmt <= 5 else ():
        if fmt <= 3 and hamming.get("blocks") is None and hamming.get("block_size") is None:
            hamming["blocks"] = FORMAT_3_DEFAULT_BLOCKS
        hamming.setdefault("default_layout", FORMAT_5_DEFAULT_LAYOUT)
    return data


def check_layers(record, where: str) -> dict[str, dict] | None:
    """The per-layer record of a saved config (:data:`LAYERS_KEY`, None in formats 1-4)
    checked for its structure: ``{module path: {shape name: int or list of ints}}``;
    ValueError naming the file ``where`` otherwise (a saved folder is untrusted input)."""
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError(f"{where!r}: {LAYERS_KEY!r}={record!r} must map module paths to their "
                         f"shapes, e.g. {{'fc1': {{'in': 16, 'out': 32}}}}")

    def size(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    for path, shape in record.items():
        if not (isinstance(shape, dict) and all(
                isinstance(k, str) and (size(v) or isinstance(v, list) and all(map(size, v)))
                for k, v in shape.items() if k not in LAYOUT_KEYS)):
            raise ValueError(f"{where!r}: {LAYERS_KEY!r} entry {path!r}={shape!r} must map "
                             f"shape names to integers or lists of integers, e.g. "
                             f"{{'in': 16, 'out': 32}}")
        check_record(shape, where, path)  # a Hamming layer's layout (qiadapters.adapters.selection)
    return record


#: Largest ``adapter_config.json`` read: a config is a few kilobytes (a mixture's, with the
#: per-layer record of a large model, well under a megabyte).
MAX_CONFIG_BYTES = 16 << 20

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"))


def check_regular(path: str) -> bool:
    """Whether ``path`` exists; ValueError naming it if it is anything but a regular file or
    a symbolic link to one (the Hugging Face cache links its files): a device such as
    ``/dev/zero`` or a pipe would be read forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise ValueError(f"{path!r} is {kind}, not a regular file; an adapter folder holds "
                         f"regular files (or links to regular files) only")
    return True


def read_json(path: str) -> dict:
    """The JSON object in the regular file ``path`` (:func:`check_regular`), read with bounded
    cost: at most :data:`MAX_CONFIG_BYTES`, nesting no deeper than Python's recursion limit;
    ValueError naming the file otherwise (a saved folder is untrusted input)."""
    if not check_regular(path):
        raise FileNotFoundError(f"{path!r} does not exist")
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path!r} is larger than {MAX_CONFIG_BYTES:,} bytes "
                         f"(formats.MAX_CONFIG_BYTES): it is no adapter config")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path!r} is not valid JSON ({e}); was the save interrupted or the "
                         f"file edited?") from None
    except RecursionError:
        raise ValueError(f"{path!r} nests JSON arrays or objects too deeply to be an adapter "
                         f"config") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} holds a {type(data).__name__}, not a JSON object of "
                         f"config fields")
    return data
