"""Modules trained in full next to an adapter (``modules_to_save``), PEFT style.

The original module stays frozen; each adapter gets its own trainable deep copy.  The copy of
the first active adapter that has one is used in the forward pass; with adapters disabled (or
none active) the original is used, so ``disable_adapter()`` gives back the base model exactly.
"""
from __future__ import annotations

import copy

from torch import nn

from ..adapters.layer import AdapterLayer, AdapterParts, reference_tensor


class ModulesToSave(AdapterLayer):
    """Wraps ``base_layer`` (frozen) with a trainable copy per adapter in ``modules_to_save``."""

    adapter_layer_names = ("modules_to_save",)

    def merge_blocker(self, adapter_names=None):
        """Always mergeable: "merging" keeps the trained copy (merge_and_unload returns it)."""
        return None

    @classmethod
    def build(cls, base_layer: nn.Module) -> AdapterParts:
        if isinstance(base_layer, AdapterLayer):
            raise TypeError(f"modules_to_save cannot name an adapter layer "
                            f"({type(base_layer).__name__}); name a plain module")
        trained = copy.deepcopy(base_layer)
        trained.requires_grad_(True)
        return AdapterParts(modules={"modules_to_save": trained}, settings={})

    def place(self, module: nn.Module) -> nn.Module:
        """Copies keep the base module's dtype; they only follow its device."""
        ref = reference_tensor(self.base_layer)
        return module if ref is None else module.to(device=ref.device)

    def current(self) -> nn.Module:
        """The module the forward pass uses now."""
        if not self.disable_adapters:
            for name in self.active_adapters:
                return self.modules_to_save[name]
        return self.base_layer

    def forward(self, *args, **kwargs):
        return self.current()(*args, **kwargs)

    def merge(self, adapter_names=None, safe_merge: bool = False) -> None:
        """Nothing to fold: the active copy already is the trained module."""

    def unmerge(self) -> None:
        """Nothing was folded."""

    def unload(self, merge: bool = False) -> nn.Module:
        """The active trained copy (``merge=True``) or the original module."""
        if merge:
            for name in self.active_adapters:
                return self.modules_to_save[name]
        return self.base_layer
