"""What a saved adapter folder holds: its family and config, the file format and the writer,
per adapted module the tensors with their shapes and parameter counts, and (format 5 and
newer) each layer's recorded shape and resolved layout.

    qiadapters info out/
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict

from ..adapters.config import CONFIG_NAME
from ..adapters.formats import FORMAT_KEY, VERSION_KEY, read_json
from ..adapters.registry import layer_class
from ..model import io
from .content import folder_content, printable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="a folder written by save_pretrained")


def module_table(config, state) -> dict[str, list[tuple[str, tuple[int, ...], int]]]:
    """``{module path: [(tensor name, shape, numel)]}``: each saved tensor under the module
    it adapts (``<module>.<attr>.<param>``, attr a ModuleDict of the family's layer or
    ``modules_to_save``)."""
    attrs = (*layer_class(config).adapter_layer_names, "modules_to_save")
    split = re.compile(r"^(.*)\.(" + "|".join(map(re.escape, attrs)) + r")\.(.+)$")
    table = defaultdict(list)
    for key in sorted(state):
        match = split.match(key)  # greedy: the last attr in the key is the adapter's
        module, name = (match.group(1), f"{match.group(2)}.{match.group(3)}") if match \
            else ("?", key)
        t = state[key]
        table[module].append((name, tuple(t.shape), t.numel()))
    return dict(table)


def main(args: argparse.Namespace) -> int:
    with folder_content():
        config, state, record = io.read_saved(args.directory)
        raw = read_json(os.path.join(args.directory, CONFIG_NAME))
    fmt, writer = (printable(raw.get(key)) for key in (FORMAT_KEY, VERSION_KEY))
    print(f"adapter folder {args.directory}")
    print(f"family: {config.adapter_type} ({type(config).__name__}); format "
          f"{fmt if fmt != 'None' else 1} (written by qiadapters {writer})")
    print("config:")
    for key, value in config.to_dict().items():
        if key != "adapter_type":
            print(f"  {key}: {printable(json.dumps(value))}")
    table = module_table(config, state)
    total = sum(n for rows in table.values() for _, _, n in rows)
    print(f"{len(table)} modules, {len(state)} tensors, {total:,} parameters:")
    table = {printable(m): [(printable(name), shape, n) for name, shape, n in rows]
             for m, rows in table.items()}  # names from the file: no control characters
    width = max(len(m) for m in table) if table else 6
    for module, rows in table.items():
        for i, (name, shape, n) in enumerate(rows):
            print(f"  {module if i == 0 else '':<{width}}  {name:<40} {str(shape):<16} {n:>10,}")
    if record:
        print("layers (as recorded: the shape each was saved for, the layout it is built with):")
        for path, entry in record.items():
            keys = [k for k in io.SHAPE_KEYS if k in entry] + \
                   [k for k in entry if k not in io.SHAPE_KEYS]
            print(f"  {printable(path)}: " + ", ".join(
                f"{key}={printable(json.dumps(entry[key]))}" for key in keys))
    return 0
