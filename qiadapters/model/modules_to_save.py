"""Modules trained in full next to an adapter (``modules_to_save``), PEFT style.

The original module stays frozen; each adapter gets its own trainable deep copy.  The copy of
the first active adapter that has one is used in the forward pass; with adapters disabled (or
none active) the original is used, so ``disable_adapter()`` gives back the base model exactly.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..adapters.layer import AdapterLayer, AdapterParts, reference_tensor, split_input
from ..adapters.mixed_batch import batch_rows, current_rows, row_groups


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
        if current_rows() is not None and not self.disable_adapters:
            x, args = split_input(args, kwargs)
            return self.mixed_forward(x, batch_rows(self, x), *args, **kwargs)
        return self.current()(*args, **kwargs)

    def mixed_forward(self, x, rows, *args, **kwargs):
        """A mixed-adapter batch: each adapter's copy on its rows, the original module on the
        others (:mod:`~qiadapters.adapters.mixed_batch`)."""
        if args or kwargs:
            raise TypeError(f"modules_to_save module {type(self.base_layer).__name__} called "
                            f"with more arguments than its input cannot serve mixed-adapter "
                            f"batches (each row group runs its own copy)")
        groups = row_groups(rows, self.adapter_names, x.device)
        held = {i for _, idx in groups for i in idx.tolist()}
        rest = [i for i in range(len(rows)) if i not in held]
        if rest:
            groups.append((None, torch.tensor(rest, device=x.device)))
        out = None
        for name, idx in groups:
            module = self.base_layer if name is None else self.modules_to_save[name]
            y = module(x[idx])
            if out is None:
                out = y.new_zeros((len(rows), *y.shape[1:]))
            out = out.index_copy(0, idx, y)
        return out

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
