"""A saved adapter's per-layer record checked against the live layers it is loaded into.

Tensors copied into a live adapter (``hotswap_adapter``, resuming a checkpoint) must mean the
same map there: each layer's recorded layout (:func:`~qiadapters.model.selection.layout_record`)
must be the live layer's.  Apart from :mod:`.selection` because it reads the model's adapter
layers (:func:`~qiadapters.model.injection.adapter_layers`), and injection imports selection.
"""
from __future__ import annotations

import os

from torch import nn

from ..adapters.config import CONFIG_NAME
from .injection import adapter_layers
from .selection import layout_record


def check_live(model: nn.Module, adapter_name: str, record: dict | None,
               directory: str) -> None:
    """The layouts in the ``record`` saved in ``directory`` are those of adapter
    ``adapter_name``'s live layers (tensors copied into a live adapter must mean the same map
    there); ValueError naming the config file, the layer and the field otherwise."""
    where = os.path.join(os.fspath(directory), CONFIG_NAME)
    live = dict(adapter_layers(model))
    for path, entry in (record or {}).items():
        layer = live.get(path)
        if layer is None or adapter_name not in layer.adapter_names:
            continue  # the tensor names tell
        have = layout_record(layer, adapter_name)
        saved = [("", entry["layout"], have.get("layout"))] if "layout" in entry else []
        saved += [(f" expert {i}", e, h) for i, (e, h) in enumerate(zip(
            entry.get("experts") or [], have.get("experts") or [])) if e is not None]
        for what, recorded, ours in saved:
            for field in recorded:
                if ours is None or recorded[field] != ours.get(field):
                    value = None if ours is None else ours.get(field)
                    raise ValueError(f"{where!r}: 'layers' record of layer {path!r}{what} says "
                                     f"{field}={recorded[field]!r}, adapter {adapter_name!r} "
                                     f"here has {field}={value!r}: its tensors would mean "
                                     f"another map; load it with from_pretrained / "
                                     f"load_adapter instead")
