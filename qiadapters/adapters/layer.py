r"""``AdapterLayer``: the contract every adapter family's layer implements.

A layer wraps one frozen base module (``base_layer``) and holds any number of named
adapters.  Each adapter's state lives in the ``nn.ModuleDict`` attributes listed in
``adapter_layer_names`` (trainable, saved) and the plain dicts listed in
``other_param_names`` (settings rebuilt from the config, not saved), keyed by adapter name,
so adding, activating, deleting, casting and saving are generic and live here.

A family implements these hooks, nothing else:

=====================  ==================================================================
``build`` (classmethod)  validate the options against the base module and construct one
                         adapter's :class:`AdapterParts`; never touches the base module
``adapter_forward``      the adapted output of the active, unmerged adapters
``adapter_output``       the same, given the base output already computed (optional: by
                         default a second call of ``adapter_forward``)
``fold``                 a pure map of the base parameters to the merged ones (optional:
                         a family without it is not mergeable)
``mixed_forward``        the output of a mixed-adapter batch, one adapter per row
                         (optional: a family without it refuses ``adapter_names=[...]``)
=====================  ==================================================================

and may refine :meth:`~AdapterLayer.merge_blocker` (the one place mergeability is declared)
and :meth:`~AdapterLayer.aux_loss`.

**Construction.**  ``Layer(base, adapter_name, **options)`` builds the first adapter's parts
(validating every option before anything changes), freezes ``base``, attaches the parts and
activates them.  ``Layer(base, adapter_name, parts=parts)`` attaches parts built earlier
(the model machinery builds every layer's parts first, so a bad config fails before the
model changes); ``Layer(base, None)`` is a layer holding no adapter yet.

**Devices and dtypes** (stated once, here).  Attached adapter modules are moved to the base
module's device and cast to :func:`compute_dtype` of its floating dtype: float32 for
float16 / bfloat16 / float32 bases, float64 for float64 bases.  Adapter math runs in that
dtype and results are cast back to the dtype of the tensors the base module returns.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar, NamedTuple, Optional, Sequence

import torch
from torch import nn

from .. import checks
from . import merge_state
from .base_modules import (  # noqa: F401  (re-exported: they were first defined here)
    INPUT_KEYWORDS, TRANSFORMERS_CONV1D, SharedBase, class_path, compute_dtype, inherits,
    is_linear, linear_widths, reference_tensor, split_input, unwrap)
from .mixed_batch import batch_rows, current_rows
from . import tied

__all__ = ["AdapterLayer", "AdapterParts", "SharedBase", "compute_dtype", "reference_tensor",
           "check_adapter_name", "unwrap", "class_path", "inherits", "is_linear",
           "TRANSFORMERS_CONV1D", "linear_widths"]

#: Longest adapter name, in bytes of UTF-8: a file name on every common file system (ext4,
#: NTFS, APFS: 255), since ``save_pretrained`` makes a folder of each name.
MAX_NAME_BYTES = 255


def check_adapter_name(adapter_name: Any) -> str:
    """An adapter name is a non-empty string without ``.`` (it becomes a state-dict key), path
    separators or control characters, at most :data:`MAX_NAME_BYTES` bytes long: it names a
    folder inside ``save_pretrained``'s directory, so it can never lead out of it."""
    bad = (not isinstance(adapter_name, str) or not adapter_name or "." in adapter_name
           or "/" in adapter_name or "\\" in adapter_name
           or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in adapter_name)
           or len(adapter_name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES)
    if bad:
        shown = adapter_name if not isinstance(adapter_name, str) or len(adapter_name) < 80 \
            else adapter_name[:60] + f"... ({len(adapter_name)} characters)"
        raise ValueError(f"adapter_name={shown!r} must be a non-empty string without '.', "
                         f"path separators ('/', '\\') or control characters, at most "
                         f"{MAX_NAME_BYTES} bytes of UTF-8 (it names a folder of "
                         f"save_pretrained's directory)")
    return adapter_name


class AdapterParts(NamedTuple):
    """One adapter's state for one layer, built before anything is attached.

    ``modules``: attribute in ``adapter_layer_names`` -> module; ``settings``: attribute in
    ``other_param_names`` -> value.
    """

    modules: dict[str, nn.Module]
    settings: dict[str, Any]


class AdapterLayer(nn.Module):
    """A frozen base module with named adapters (the contract: see the module docstring).

    ``forward`` runs the base module alone when adapters are disabled or none is active,
    the merged base module when every active adapter is merged, and otherwise the family's
    :meth:`adapter_forward` on the active, unmerged adapters in the order they were added.
    """

    #: ``nn.ModuleDict`` attributes holding per-adapter modules (the saved, trainable state).
    adapter_layer_names: ClassVar[tuple[str, ...]] = ()
    #: plain dict attributes holding per-adapter settings.
    other_param_names: ClassVar[tuple[str, ...]] = ()
    #: whether ``fold(..., inverse=True)`` undoes a merge; if not, :meth:`merge` keeps the
    #: original parameters (non-persistent buffers) and :meth:`unmerge` copies them back.
    fold_invertible: ClassVar[bool] = True

    def __init__(self, base_layer: nn.Module, adapter_name: Optional[str] = "default", *,
                 parts: Optional[AdapterParts] = None, **options):
        if not isinstance(base_layer, nn.Module):
            raise TypeError(f"base_layer must be an nn.Module, got {type(base_layer).__name__}")
        if not self.adapter_layer_names:
            raise TypeError(f"{type(self).__name__}.adapter_layer_names must name at least "
                            f"one nn.ModuleDict attribute")
        if adapter_name is None:
            if parts is not None:
                raise ValueError("parts were given without an adapter_name to attach them as")
        else:
            check_adapter_name(adapter_name)
            if parts is None:
                parts = self.build(base_layer, **options)  # validates before any change
        super().__init__()
        # the layer's own attributes first: from then on they are not the base module's
        for attr in self.adapter_layer_names:
            setattr(self, attr, nn.ModuleDict())
        for attr in self.other_param_names:
            setattr(self, attr, {})
        self._active: list[str] = []
        self.merged_adapters: list[str] = []
        self.disable_adapters = False
        #: base parameter name -> its other names in the model (tied weights, found by the
        #: model machinery: :mod:`qiadapters.adapters.tied`); a merge gives it a copy
        self.tied_parameters: dict[str, tuple[str, ...]] = {}
        self._untied: dict[str, nn.Parameter] = {}  # the originals while merged
        self.base_layer = base_layer
        base_layer.requires_grad_(False)
        # a wrapper takes the mode of the module it replaces (a model in eval mode stays so)
        self.training = base_layer.training
        for attr in self.adapter_layer_names:
            getattr(self, attr).training = base_layer.training
        if adapter_name is not None:
            self.attach(adapter_name, parts)
            self.set_adapter(adapter_name)

    @classmethod
    def wrap(cls, base_layer: nn.Module) -> "AdapterLayer":
        """Deprecated: ``cls(base_layer, adapter_name=None)``, a layer holding no adapter."""
        warnings.warn(f"{cls.__name__}.wrap(base) is deprecated; construct the layer with "
                      f"{cls.__name__}(base, adapter_name=None)", DeprecationWarning, stacklevel=2)
        return cls(base_layer, adapter_name=None)

    # ------------------------------------------------------------ the base's attributes
    def __getattr__(self, name: str):
        """A name the layer does not have is the base module's (``weight``, ``bias``,
        ``in_features``, a convolution's ``kernel_size`` ...), as code written for the plain
        module reads them (transformers' ViT reads ``projection.weight.dtype``).  Private
        names (``_x``) are never forwarded."""
        try:
            return super().__getattr__(name)
        except AttributeError as missing:
            base = _forwards_to(self, name)
            if base is None or not hasattr(base, name):
                raise missing from None
            return getattr(base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Writing a name that reads from the base module writes it there (weight tying
        assigns ``lm_head.weight = embeddings.weight``); it never lands on the layer, where
        it would hide the base's and change nothing the forward uses."""
        base = _forwards_to(self, name)
        if base is not None and hasattr(base, name):
            setattr(base, name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        base = _forwards_to(self, name)
        if base is not None and hasattr(base, name):
            delattr(base, name)
        else:
            super().__delattr__(name)

    # ------------------------------------------------------------ family hooks
    @classmethod
    def build(cls, base_layer: nn.Module, **options) -> AdapterParts:
        """Validate ``options`` against ``base_layer`` and construct one adapter's state.

        Must not modify ``base_layer``; raises ValueError/TypeError naming the bad value.
        """
        raise NotImplementedError(f"{cls.__name__} must implement build()")

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        """Forward through ``base_layer`` with the named (active, unmerged) adapters."""
        raise NotImplementedError(f"{type(self).__name__} must implement adapter_forward()")

    def adapter_output(self, x: torch.Tensor, base_output: torch.Tensor,
                       adapter_names: list[str], *args, **kwargs):
        """The adapted output, given ``base_output = base_layer(x, *args, **kwargs)`` already
        computed (the mixture layer computes it once for all its experts).

        Default: :meth:`adapter_forward`, which ignores ``base_output`` (a second base call).
        A family overrides this when its output is cheap given the base output.
        """
        return self.adapter_forward(x, adapter_names, *args, **kwargs)

    def mixed_forward(self, x, rows: Sequence[str], *args, **kwargs):
        """The output for a mixed-adapter batch: row ``i`` served by adapter ``rows[i]``
        (:mod:`.mixed_batch`; a name this layer does not hold, or ``"__base__"``: the base
        module).  A family that can serve one overrides this; by default it is refused."""
        raise TypeError(f"{type(self).__name__} adapters cannot serve mixed-adapter batches "
                        f"(adapter_names=[...]); run one adapter at a time (set_adapter)")

    @property
    def supports_mixed_batches(self) -> bool:
        """Whether :meth:`mixed_forward` is implemented (mixed-adapter batches)."""
        return type(self).mixed_forward is not AdapterLayer.mixed_forward

    def fold(self, weights: dict[str, torch.Tensor], adapter_names: list[str],
             inverse: bool = False) -> dict[str, torch.Tensor]:
        """The base parameters with the named adapters folded in (``inverse``: taken out).

        A pure function: ``weights`` maps the base module's parameter names to tensors in
        :attr:`adapter_dtype`; the result maps the same names (entries it does not change
        may be the same objects).  Nothing is written; :meth:`merge` does the writing.
        """
        raise NotImplementedError(f"{type(self).__name__} adapters are not mergeable")

    def merge_blocker(self, adapter_names: Optional[Sequence[str]] = None) -> Optional[str]:
        """Why :meth:`merge` cannot fold these adapters (default: the active ones) into the
        base weights, or None when it can.  The one place mergeability is declared.

        Default: mergeable exactly when the family implements :meth:`fold`.
        """
        if type(self).fold is AdapterLayer.fold:
            return f"{type(self).__name__} adapters do not change the base weights"
        return None

    @property
    def mergeable(self) -> bool:
        """Whether :meth:`merge` can fold the active adapters (see :meth:`merge_blocker`)."""
        return self.merge_blocker() is None

    def aux_loss(self) -> torch.Tensor:
        """Auxiliary loss of the active adapters (regularisers, router losses); default 0."""
        ref = reference_tensor(self.base_layer)
        return torch.zeros((), device=None if ref is None else ref.device)

    # ------------------------------------------------------------ devices and dtypes
    @property
    def adapter_dtype(self) -> torch.dtype:
        """The dtype of this layer's adapter parameters and math (module docstring)."""
        ref = reference_tensor(self.base_layer)
        return compute_dtype(None if ref is None else ref.dtype)

    def place(self, module: nn.Module) -> nn.Module:
        """Move an adapter module next to the base module: its device, :attr:`adapter_dtype`."""
        ref = reference_tensor(self.base_layer)
        if ref is None:
            return module
        return module.to(device=ref.device, dtype=self.adapter_dtype)

    # ------------------------------------------------------------ bookkeeping
    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters held by this layer, in the order they were added."""
        return list(getattr(self, self.adapter_layer_names[0]).keys())

    @property
    def active_adapters(self) -> list[str]:
        """Active adapters held by this layer, in the order they were added."""
        return [a for a in self.adapter_names if a in self._active]

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    def attach(self, adapter_name: str, parts: AdapterParts) -> None:
        """Store an adapter built by :meth:`build` under ``adapter_name`` (not activated),
        its modules placed next to the base module (:meth:`place`), in the layer's mode."""
        check_adapter_name(adapter_name)
        if adapter_name in self.adapter_names:
            raise ValueError(f"adapter_name={adapter_name!r} already exists on this "
                             f"{type(self).__name__}; existing: {self.adapter_names}")
        missing = [a for a in self.adapter_layer_names if a not in parts.modules] + \
                  [a for a in self.other_param_names if a not in parts.settings]
        if missing:
            raise ValueError(f"parts for {type(self).__name__} lack {missing}")
        for attr in self.adapter_layer_names:
            getattr(self, attr)[adapter_name] = self.place(parts.modules[attr]).train(self.training)
        for attr in self.other_param_names:
            getattr(self, attr)[adapter_name] = parts.settings[attr]

    def add_adapter(self, adapter_name: str, **options) -> None:
        """Build and attach another adapter (use :meth:`set_adapter` to activate it)."""
        check_adapter_name(adapter_name)
        self.attach(adapter_name, self.build(self.base_layer, **options))

    def set_adapter(self, adapter_names: str | Sequence[str]) -> None:
        """Make these adapters active (they apply in the order they were added).

        Names this layer does not hold are ignored (a model's adapters may target different
        layers).  A merged layer is unmerged first, with a warning.
        """
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        if self.merged and set(names) != set(self.merged_adapters):
            warnings.warn("set_adapter on a merged layer: unmerging first", stacklevel=2)
            self.unmerge()
        self._active = names

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter (unmerging the layer first if it is merged)."""
        if adapter_name not in self.adapter_names:
            raise ValueError(f"adapter_name={adapter_name!r} is not on this layer; "
                             f"existing: {self.adapter_names}")
        if adapter_name in self.merged_adapters:
            self.unmerge()
        for attr in self.adapter_layer_names:
            del getattr(self, attr)[adapter_name]
        for attr in self.other_param_names:
            getattr(self, attr).pop(adapter_name, None)
        self.forget(adapter_name)

    def forget(self, adapter_name: str) -> None:
        """Drop ``adapter_name`` from the names :meth:`set_adapter` made active here (a model
        activates its adapters on every layer, held or not): once the model deletes it, an
        adapter added later under that name is not active on this layer."""
        self._active = [a for a in self._active if a != adapter_name]

    # ------------------------------------------------------------ merge
    def _weights(self) -> tuple[dict[str, nn.Parameter], dict[str, torch.Tensor]]:
        """The base module's floating parameters, and detached copies in :attr:`adapter_dtype`."""
        params = {n: p for n, p in self.base_layer.named_parameters() if p.is_floating_point()}
        dtype = self.adapter_dtype
        return params, {n: p.detach().to(dtype) for n, p in params.items()}

    @torch.no_grad()
    def merge(self, adapter_names: Sequence[str] | None = None, safe_merge: bool = False) -> None:
        """Fold the adapters (default: the active ones) into the base weights with
        :meth:`fold`.  A second merge while merged is a no-op with a warning.
        ``safe_merge`` checks the merged weights are finite before writing them.  A base
        parameter the model also holds elsewhere (:attr:`tied_parameters`, e.g. an output
        head tied to the input embedding) gets a private copy first, so the other holders
        keep the original (:mod:`~qiadapters.adapters.tied`); :meth:`unmerge` ties it again."""
        checks.flag("safe_merge", safe_merge, TypeError)
        names = self.active_adapters if adapter_names is None else [
            a for a in self.adapter_names if a in set(adapter_names)]
        reason = self.merge_blocker(names)
        if reason is not None:
            raise TypeError(f"{type(self).__name__} adapters are not mergeable ({reason}); "
                            f"use unload() instead")
        if self.merged:
            warnings.warn(f"{type(self).__name__} is already merged "
                          f"({self.merged_adapters}); merge() is a no-op", stacklevel=2)
            return
        if not names:
            return
        params, weights = self._weights()
        merged = self.fold(weights, names)
        if safe_merge and not all(torch.isfinite(merged[n]).all() for n in params):
            raise ValueError(f"merging adapters {names} gives non-finite weights; the layer "
                             f"was left unmerged")
        params.update(tied.untie(self, [n for n in params if merged[n] is not weights[n]]))
        if not self.fold_invertible:
            for n, p in params.items():
                self.register_buffer(_backup_name(n), p.detach().clone(), persistent=False)
        for n, p in params.items():
            if merged[n] is not weights[n]:
                p.copy_(merged[n].to(p.dtype))
        self.merged_adapters = names

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge`; a no-op with a warning when nothing is merged."""
        if not self.merged:
            warnings.warn(f"{type(self).__name__} is not merged; unmerge() is a no-op",
                          stacklevel=2)
            return
        params, weights = self._weights()
        if self.fold_invertible:
            restored = self.fold(weights, self.merged_adapters, inverse=True)
            for n, p in params.items():
                if restored[n] is not weights[n]:
                    p.copy_(restored[n].to(p.dtype))
        else:
            for n, p in params.items():
                p.copy_(getattr(self, _backup_name(n)))
                delattr(self, _backup_name(n))
        tied.retie(self)
        self.merged_adapters = []

    def unload(self, merge: bool = False) -> nn.Module:
        """The base module with the adapters merged in (``merge=True``) or removed."""
        if merge:
            if not self.merged:
                self.merge()
        elif self.merged:
            self.unmerge()
        return self.base_layer

    # ------------------------------------------------------------ merge state in state_dict
    def records_merge(self) -> bool:
        """Whether ``state_dict`` carries this layer's merge state (:mod:`.merge_state`): it
        can merge (its family implements :meth:`fold`) and is not a mixture's expert."""
        return (type(self).fold is not AdapterLayer.fold
                and not isinstance(self.base_layer, SharedBase))

    def drop_kept_weights(self) -> None:
        """Forget the original weights a non-invertible merge kept (:attr:`fold_invertible`)."""
        for name in [b for b in self._buffers if b.startswith(_BACKUP_PREFIX)]:
            delattr(self, name)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.records_merge():
            destination[prefix + merge_state.KEY] = merge_state.encode(self.merged_adapters)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        super()._load_from_state_dict(state_dict, prefix, *args)
        merge_state.load(self, state_dict, prefix, *args)

    # ------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        """The module's first input may come by position or by keyword (Llama calls
        ``self_attn(hidden_states=...)``); it is passed on by position."""
        x, args = split_input(args, kwargs)
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if current_rows() is not None:  # a mixed-adapter batch (adapter_names=[...])
            if self.merged:
                raise ValueError(f"adapter_names=[...] was given but this "
                                 f"{type(self).__name__} is merged ({self.merged_adapters}); "
                                 f"call unmerge_adapter() first")
            rows = batch_rows(self, x)
            if set(rows).isdisjoint(self.adapter_names):  # no row uses an adapter here
                return self.base_layer(x, *args, **kwargs)
            return self.mixed_forward(x, rows, *args, **kwargs)
        pending = [a for a in self.active_adapters if a not in self.merged_adapters]
        if not pending:
            out = self.base_layer(x, *args, **kwargs)
            if self.merged_adapters and self.training and torch.is_grad_enabled():
                out = self._guard_merged(out)
            return out
        return self.adapter_forward(x, pending, *args, **kwargs)

    def _guard_merged(self, out):
        """``out`` unchanged, joined in the autograd graph to the merged adapters' trainable
        parameters so that a backward pass through it raises a clear error: their weights are
        folded into the frozen base weights, so training would give them no gradient (torch
        would say 'does not require grad', or, beside another trainable module, the adapter
        would silently not learn).  The forward values, inference included, are unchanged."""
        trainable = [p for attr in self.adapter_layer_names for a in self.merged_adapters
                     if a in getattr(self, attr) for p in getattr(self, attr)[a].parameters()
                     if p.requires_grad]
        if not trainable or not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        message = (f"{type(self).__name__} (adapters {self.merged_adapters}) is merged: the "
                   f"adapter's weights are folded into the frozen base weights, so a backward "
                   f"pass gives them no gradient; call unmerge_adapter() before training (or "
                   f"freeze the adapter's parameters to train other modules on merged weights)")
        return _MergedBackward.apply(out, trainable[0], message)

    def extra_repr(self) -> str:
        return (f"active={self.active_adapters}, merged={self.merged_adapters}, "
                f"disabled={self.disable_adapters}")


def _forwards_to(layer: AdapterLayer, name: str) -> Optional[nn.Module]:
    """The base module that ``layer.name`` stands for, or None: a public name that is
    not the layer's own (an instance, parameter, buffer, submodule or class attribute)."""
    if name.startswith("_"):
        return None
    d = layer.__dict__
    base = d.get("_modules", {}).get("base_layer")
    if base is None or name in d or name in d["_parameters"] or name in d["_buffers"] \
            or name in d["_modules"] or hasattr(type(layer), name):
        return None
    return base


_BACKUP_PREFIX = "_unmerged_"


def _backup_name(param: str) -> str:
    return _BACKUP_PREFIX + param.replace(".", "_")


class _MergedBackward(torch.autograd.Function):
    """Identity on ``out`` whose backward raises ``message`` (see
    :meth:`AdapterLayer._guard_merged`); ``anchor``, a trainable parameter, puts it in the
    graph even when nothing else upstream requires a gradient."""

    @staticmethod
    def forward(ctx, out, anchor, message):
        ctx.message = message
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(ctx.message)
