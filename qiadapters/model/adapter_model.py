"""``AdapterModel``: a model with named adapters injected, PEFT style.

    >>> cfg = qiadapters.HammingConfig(target_modules=["query", "value"], blocks=3,
    ...                                modules_to_save=["classifier"])
    >>> am = qiadapters.get_adapter_model(model, cfg)
    >>> am.print_trainable_parameters()
    >>> loss = am(**batch).loss + am.aux_loss()
    >>> am.save_pretrained("out")
    >>> am2 = qiadapters.AdapterModel.from_pretrained(fresh_model, "out")
    >>> plain = am2.merge_and_unload()

The per-thread context layers read while it works is :mod:`qiadapters.context`.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from typing import Iterator, Sequence

import torch
from torch import nn

from .. import checks
from ..adapters import tied
from ..adapters.config import AdapterConfig, naming_file
from ..adapters.layer import AdapterLayer
from ..adapters.mixed_batch import rows_context
from . import injection, io, mixed
from ..context import (attention_mask_context, current_attention_mask,  # noqa: F401 (re-exported)
                       current_cache_length, current_model, model_context, publish_call,
                       restore_call)
from .modules_to_save import ModulesToSave
# _rebuild stays importable here: pickles written by earlier versions name it in this module
from .wrapped_class import _for_wrapped, _rebuild, _unspecialised  # noqa: F401


class AdapterModel(nn.Module):
    """Wraps ``model`` (modified in place: targets are replaced by adapter layers).

    Forwards exactly like ``model``; unknown attributes are looked up on ``model``.
    Adapters are named; ``peft_config[name]`` is each one's config.

    The instance's class is ``AdapterModel[<class of model>]``, a subclass made once per
    wrapped class whose ``forward`` shows the wrapped ``forward``'s signature, so that
    Hugging Face ``Trainer`` (which reads it from the class) keeps the right dataset columns
    and finds the labels (``docs/trainer.md``).  ``isinstance(m, AdapterModel)`` holds;
    pickling and ``copy.deepcopy`` rebuild the subclass.
    """

    def __new__(cls, model: nn.Module | None = None, *args, **kwargs):
        """An instance of the subclass of ``cls`` for ``type(model)`` (:func:`_for_wrapped`),
        whose class-level ``forward`` shows the wrapped model's signature."""
        if isinstance(model, nn.Module) and not isinstance(model, AdapterModel):
            cls = _for_wrapped(_unspecialised(cls), type(model))
        return super().__new__(cls)

    def __reduce_ex__(self, protocol: int):
        """Pickle (``torch.save(model)``, ``copy.deepcopy``) the per-wrapped-class subclass as
        "rebuild it from its parts": it is made at run time, so it has no importable name."""
        cls = type(self)
        if "_wrapped_class" not in cls.__dict__:
            return super().__reduce_ex__(protocol)
        return _rebuild, (_unspecialised(cls), cls._wrapped_class), self.__getstate__()

    def __init__(self, model: nn.Module, config: AdapterConfig | None = None,
                 adapter_name: str = "default"):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(model, AdapterModel):
            raise TypeError("model is already an AdapterModel; use add_adapter() on it")
        self.base_model = model
        self.training = model.training  # the wrapper reports the model's mode
        self._hooks = (model.register_forward_pre_hook(publish_call, with_kwargs=True),
                       model.register_forward_hook(restore_call, with_kwargs=True,
                                                   always_call=True))
        self.peft_config: dict[str, AdapterConfig] = {}
        self._active: list[str] = []
        self._switched_off: set[str] = set()  # adapters set_adapter froze (it unfreezes them)
        if config is not None:
            try:
                self.add_adapter(adapter_name, config)
            except BaseException:  # a refused config leaves the model as it was: no hooks
                for hook in self._hooks:
                    hook.remove()
                raise
            self.set_adapter(adapter_name)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def forward(self, *args, adapter_names: Sequence[str] | None = None, **kwargs):
        """``model(*args, **kwargs)``; hooks on the model publish its ``attention_mask`` and KV
        cache length to the adapter layers (module docstring).

        ``adapter_names``: a mixed-adapter batch, one adapter name per row (``"__base__"``:
        the base model), in eval mode, unmerged (:mod:`qiadapters.adapters.mixed_batch`)."""
        if adapter_names is None:
            return self.base_model(*args, **kwargs)
        with rows_context(mixed.check_adapter_names(self, adapter_names, args, kwargs)):
            return self.base_model(*args, **kwargs)

    @property
    def generate(self):
        """The wrapped model's ``generate`` (absent when it has none), taking
        ``adapter_names=[...]`` too: one adapter per prompt, its beams and sampled sequences
        included (:meth:`forward`)."""
        base = self.base_model.generate
        return functools.update_wrapper(functools.partial(mixed.generate, self, base), base)

    def get_base_model(self) -> nn.Module:
        """The wrapped model (with its adapter layers in place)."""
        return self.base_model

    # ------------------------------------------------------------ adapters
    def adapter_layers(self) -> Iterator[tuple[str, AdapterLayer]]:
        """``(name, layer)`` for every adapter layer (including modules_to_save wrappers)."""
        return injection.adapter_layers(self.base_model)

    @property
    def active_adapters(self) -> list[str]:
        """Active adapter names, in the order they were added."""
        return [a for a in self.peft_config if a in self._active]

    @property
    def active_adapter(self) -> str | None:
        active = self.active_adapters
        return active[0] if active else None

    def _check_new(self, adapter_name: str) -> None:
        injection.check_adapter_name(adapter_name)
        if adapter_name in self.peft_config:
            raise ValueError(f"adapter_name={adapter_name!r} already exists; existing: "
                             f"{list(self.peft_config)}")

    def add_adapter(self, adapter_name: str, config: AdapterConfig,
                    trainable: bool = True) -> None:
        """Inject another adapter, inactive until :meth:`set_adapter`.

        As in peft, an inactive adapter is frozen; with ``trainable=True`` :meth:`set_adapter`
        makes it trainable when it activates it (``trainable=False``: it stays frozen).
        """
        checks.flag("trainable", trainable, TypeError)
        self._check_new(adapter_name)
        with model_context(self.base_model):
            plan = injection.plan(self.base_model, config, adapter_name)
        injection.apply(self.base_model, plan, self.active_adapters, trainable)
        self.peft_config[adapter_name] = config
        if trainable and adapter_name not in self._active:
            self._switch_off(adapter_name)

    def _adapter_modules(self, adapter_name: str) -> Iterator[nn.Module]:
        """Every module holding ``adapter_name``'s state (modules_to_save copies included)."""
        for _, layer in self.adapter_layers():
            for attr in layer.adapter_layer_names:
                modules = getattr(layer, attr)
                if adapter_name in modules:
                    yield modules[adapter_name]

    def _switch_off(self, adapter_name: str) -> None:
        if any(p.requires_grad for m in self._adapter_modules(adapter_name)
               for p in m.parameters()):
            for module in self._adapter_modules(adapter_name):
                module.requires_grad_(False)
            self._switched_off.add(adapter_name)

    def set_adapter(self, adapter_names: str | Sequence[str], inference_mode: bool = False) -> None:
        """Activate one adapter, or several (applied as a stack in the order added).

        As in peft, only active adapters train: the others (their modules_to_save copies
        included) are frozen, and an adapter this method froze becomes trainable again when it
        is activated.  ``inference_mode=True`` freezes the activated ones too.  An adapter that
        was frozen otherwise (loaded with ``is_trainable=False``, added with
        ``trainable=False``) stays frozen.
        """
        checks.flag("inference_mode", inference_mode, TypeError)
        names = self._known(adapter_names)
        for _, layer in self.adapter_layers():
            layer.set_adapter(names)
        self._active = names
        for name in self.peft_config:
            if name not in names or inference_mode:
                self._switch_off(name)
            elif name in self._switched_off:
                for module in self._adapter_modules(name):
                    module.requires_grad_(True)
                self._switched_off.discard(name)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter everywhere; layers left without adapters are unwrapped.

        As in peft, deleting an active adapter leaves the other active ones active; when it
        was the only active one, the first remaining adapter in sorted name order becomes
        active (:meth:`set_adapter`), with a warning naming it.
        """
        if adapter_name not in self.peft_config:
            raise ValueError(f"adapter_name={adapter_name!r} does not exist; existing: "
                             f"{list(self.peft_config)}")
        for name, layer in list(self.adapter_layers()):
            if adapter_name in layer.adapter_names:
                layer.delete_adapter(adapter_name)
                if not layer.adapter_names:
                    injection._replace(self.base_model, name, layer.unload())
            else:  # the name is forgotten everywhere: an adapter added later under it is new
                layer.forget(adapter_name)
        was_active = adapter_name in self._active
        del self.peft_config[adapter_name]
        self._active = [a for a in self._active if a != adapter_name]
        self._switched_off.discard(adapter_name)
        if was_active and not self._active and self.peft_config:
            new = sorted(self.peft_config)[0]
            warnings.warn(f"adapter {adapter_name!r} was active and is deleted; the active "
                          f"adapter is now {new!r}", UserWarning, stacklevel=2)
            self.set_adapter(new)

    @contextlib.contextmanager
    def disable_adapter(self):
        """Context manager: run the base model alone (merged layers are unmerged first)."""
        layers = [layer for _, layer in self.adapter_layers()]
        previous = [layer.disable_adapters for layer in layers]
        try:
            for layer in layers:
                layer.disable_adapters = True
            yield
        finally:
            for layer, flag in zip(layers, previous):
                layer.disable_adapters = flag

    def add_weighted_adapter(self, adapters: Sequence[str], weights: Sequence[float],
                             adapter_name: str, combination_type: str = "generator") -> None:
        """Add ``adapter_name``, an orthogonal combination of Hamming adapters of one layout:
        ``"generator"`` (weighted sum of their skew generators) or ``"product"`` (product of
        their maps); not activated (:func:`qiadapters.model.compose.add_weighted_adapter`)."""
        from . import compose  # it imports the Hamming family, which imports this package

        compose.add_weighted_adapter(self, adapters, weights, adapter_name, combination_type)

    # ------------------------------------------------------------ losses and counts
    def aux_loss(self) -> torch.Tensor:
        """Sum of every adapter layer's auxiliary loss (0 for Hamming adapters)."""
        losses = [layer.aux_loss() for _, layer in self.adapter_layers()]
        if not losses:
            ref = next(self.base_model.parameters(), None)
            return torch.zeros((), device=None if ref is None else ref.device)
        return torch.stack([l.to(losses[0].device) for l in losses]).sum()

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` parameter counts."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return trainable, total

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || "
              f"trainable%: {100 * trainable / max(total, 1):.4f}")

    def get_layer_status(self) -> list:
        """Per adapter layer: active, merged, trainable, devices (peft's ``TunerLayerStatus``
        fields; :func:`qiadapters.model.status.get_layer_status`)."""
        from .status import get_layer_status
        return get_layer_status(self)

    def get_model_status(self):
        """The model's adapters at a glance (peft's ``TunerModelStatus`` fields;
        :func:`qiadapters.model.status.get_model_status`)."""
        from .status import get_model_status
        return get_model_status(self)

    # ------------------------------------------------------------ merging
    def _known(self, adapter_names: str | Sequence[str], arg: str = "adapter_names") -> list[str]:
        """``adapter_names`` (one name or several) as a list, each an existing adapter;
        ValueError naming ``arg`` otherwise."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        unknown = [a for a in names if a not in self.peft_config]
        if unknown or not names:
            raise ValueError(f"{arg}={adapter_names!r} is not valid; existing adapters: "
                             f"{list(self.peft_config)}")
        return names

    def _merge_names(self, adapter_names: Sequence[str] | None) -> list[str]:
        """The adapters a merge folds: ``adapter_names`` (checked) or the active ones."""
        if adapter_names is None:
            return self.active_adapters
        names = self._known(adapter_names)
        return [a for a in self.peft_config if a in names]

    def merge_adapter(self, adapter_names: Sequence[str] | None = None,
                      safe_merge: bool = False) -> None:
        """Fold adapters into the base weights (undo with :meth:`unmerge_adapter`).

        ``adapter_names``: which (default: the active ones); checked, like mergeability,
        before any layer changes.  A layer already merged is left as it is (warning).
        """
        if isinstance(adapter_names, bool):  # the old signature was merge_adapter(safe_merge)
            warnings.warn("merge_adapter(safe_merge) by position is deprecated; pass "
                          "safe_merge=... by keyword", DeprecationWarning, stacklevel=2)
            adapter_names, safe_merge = None, adapter_names
        checks.flag("safe_merge", safe_merge, TypeError)
        names = self._merge_names(adapter_names)
        injection.check_mergeable(self.base_model, names)
        injection.record_ties(self.base_model)  # a merge gives tied weights a copy
        for _, layer in self.adapter_layers():
            if held := injection.held(layer, names):
                layer.merge(held, safe_merge=safe_merge)

    def unmerge_adapter(self) -> None:
        """Undo :meth:`merge_adapter` on every merged layer.  With no layer merged it is a
        no-op with one warning, as :meth:`AdapterLayer.unmerge` warns on a layer (and as
        peft's model-level ``unmerge_adapter`` warns)."""
        merged = [layer for _, layer in self.adapter_layers() if layer.merged]
        if not merged:
            warnings.warn("no adapter layer is merged; unmerge_adapter() is a no-op",
                          UserWarning, stacklevel=2)
        for layer in merged:
            layer.unmerge()

    def _unload(self, merge: bool, names: list[str] | None = None) -> nn.Module:
        names = self.active_adapters if names is None else names
        if merge:
            injection.check_mergeable(self.base_model, names)
            injection.record_ties(self.base_model)
        untied = []
        for name, layer in list(self.adapter_layers()):
            held = injection.held(layer, names)
            if merge and held and isinstance(layer, ModulesToSave):
                layer.set_adapter(held)  # unload(merge=True) returns the first one's copy
            elif merge and held and layer.merged_adapters != held:
                if layer.merged:
                    layer.unmerge()
                layer.merge(held)
            base = layer.unload(merge=merge and bool(held))
            untied += [f"{name}.{n}" for n in tied.untied(layer)]  # merged copies of ties
            injection._replace(self.base_model, name, base)
        if untied:
            tied.untie_config(self.base_model, untied)
        self.peft_config.clear()
        self._active = []
        self._switched_off.clear()
        for hook in self._hooks:  # the plain model carries nothing of ours
            hook.remove()
        return self.base_model

    def merge_and_unload(self, safe_merge: bool = False,
                         adapter_names: Sequence[str] | None = None) -> nn.Module:
        """Merge adapters and return the plain base model (no adapter modules).

        ``adapter_names``: the adapters merged (default: the active ones); every other
        adapter is removed.  ``modules_to_save`` modules become the trained copy of the first
        merged adapter that has one (else the original).  Refuses, before changing anything,
        if a layer cannot merge them.
        """
        checks.flag("safe_merge", safe_merge, TypeError)
        names = self._merge_names(adapter_names)
        injection.check_mergeable(self.base_model, names)
        injection.record_ties(self.base_model)
        if safe_merge:
            for _, layer in self.adapter_layers():
                held = injection.held(layer, names)
                if held and layer.merged_adapters != held and not isinstance(layer, ModulesToSave):
                    if layer.merged:
                        layer.unmerge()
                    layer.merge(held, safe_merge=True)
        return self._unload(merge=True, names=names)

    def unload(self) -> nn.Module:
        """Remove every adapter without merging; returns the original base model."""
        return self._unload(merge=False)

    # ------------------------------------------------------------ saving and loading
    def save_pretrained(self, save_directory: str | os.PathLike,
                        selected_adapters: str | Sequence[str] | None = None,
                        overwrite: bool = False) -> None:
        """Save adapters: ``"default"`` into ``save_directory``, any other adapter into
        ``save_directory/<name>``.  Only adapter tensors (and modules_to_save copies).

        ``selected_adapters``: one name or a list (default: every adapter).  A folder that
        already holds a DIFFERENT adapter (other config, other tensor names or shapes) is
        refused unless ``overwrite=True``; saving the same adapter again (e.g. after more
        training) updates it.  Everything is checked before any file is written, and each
        file is replaced atomically (see :func:`~qiadapters.model.io.save_adapter`).
        Adapters sharded by FSDP are gathered whole: then every rank must call this, and
        rank 0 writes; otherwise (DDP, one process) whoever calls it writes.
        """
        checks.flag("overwrite", overwrite, TypeError)
        names = list(self.peft_config) if selected_adapters is None else self._known(
            selected_adapters, "selected_adapters")
        for name in names:  # each names a folder inside save_directory: checked first
            injection.check_adapter_name(name)
        io.check_save_directory(save_directory)
        merged = [n for n, l in self.adapter_layers()
                  if l.merged and not isinstance(l, ModulesToSave)]
        if merged:
            raise RuntimeError(f"layers {merged[:3]} are merged; call unmerge_adapter() "
                               f"before save_pretrained() so the saved weights are the adapters'")
        jobs = []
        for name in names:
            where = save_directory if name == "default" else os.path.join(save_directory, name)
            collective = io.is_sharded(self.base_model, name)  # FSDP: every rank is here
            state = io.adapter_state_dict(self.base_model, name)
            layers = io.layer_shapes(self.base_model, name)
            io.check_replaceable(where)
            if not overwrite:
                io.check_overwrite(where, self.peft_config[name], state, layers)
            jobs.append((where, self.peft_config[name], state, collective, layers))
        if any(job[3] for job in jobs) and io._distributed():
            torch.distributed.barrier()  # every rank has checked the folders before rank 0 writes
        for where, config, state, collective, layers in jobs:
            io.save_adapter(where, config, state, collective=collective, layers=layers)

    def load_adapter(self, directory: str | os.PathLike, adapter_name: str | None = None,
                     is_trainable: bool = False, allow_nonfinite: bool = False) -> None:
        """Inject and load a saved adapter under ``adapter_name`` (not activated).

        ``adapter_name=None`` means ``"default"`` while no adapter has that name; once one
        does, a name is required (as in PEFT, where ``load_adapter`` takes it explicitly):
        loading never replaces an existing adapter.  Everything (folder, version, config,
        tensor names and shapes) is checked before the model is modified.
        ``is_trainable=False`` freezes the loaded adapter (inference).  The folder is
        untrusted input (``docs/security.md``): tensors that are not floating point are
        refused, and so are NaN or infinite values unless ``allow_nonfinite=True``.
        """
        checks.flag("is_trainable", is_trainable, TypeError)
        checks.flag("allow_nonfinite", allow_nonfinite, TypeError)
        if adapter_name is None:
            if "default" in self.peft_config:
                base = os.path.basename(os.path.normpath(os.fspath(directory))) or "adapter"
                raise ValueError(f"adapter_name=None: the name 'default' is taken (existing: "
                                 f"{list(self.peft_config)}); pass a new name, e.g. "
                                 f"load_adapter({os.fspath(directory)!r}, adapter_name={base!r})")
            adapter_name = "default"
        self._check_new(adapter_name)
        config, state, layers = io.read_saved(directory, allow_nonfinite)
        io.check_layers(self.base_model, layers, directory)  # before anything is built
        # the file's config is checked against this model: its errors name the file too
        with naming_file(os.path.join(os.fspath(directory), io.CONFIG_NAME)), \
                model_context(self.base_model):
            plan = injection.plan(self.base_model, config, adapter_name, layers)
        io.check_state(plan.expected_state(), state, directory)
        injection.apply(self.base_model, plan, self.active_adapters, trainable=is_trainable)
        # Copy after apply: it places the new modules in the base's dtype and device, so a
        # float64 adapter is not rounded through float32 on the way (shapes are checked).
        with torch.no_grad():
            for prefix, module in plan.modules():
                for key, value in module.state_dict().items():
                    value.copy_(state[f"{prefix}.{key}"])
        self.peft_config[adapter_name] = config

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory: str | os.PathLike | None = None,
                        adapter_name: str = "default", is_trainable: bool = False,
                        allow_nonfinite: bool = False) -> "AdapterModel":
        """Load a saved adapter onto ``model`` and activate it.

        As in PEFT, ``is_trainable=False`` (the default) freezes the adapter and puts the
        model in eval mode; ``is_trainable=True`` puts it in training mode.  ``directory`` is a local folder (for a Hub repository, download
        it first: ``huggingface_hub.snapshot_download(repo_id)``).  On any error ``model`` is
        left as it was (no adapters, no hooks).  ``allow_nonfinite``: see :meth:`load_adapter`.
        """
        if not isinstance(model, nn.Module):  # e.g. the folder alone, as for a peft config
            raise TypeError(f"model={model!r} is a {type(model).__name__}, not an nn.Module: "
                            f"from_pretrained(model, directory) takes the base model first, "
                            f"then the adapter folder")
        checks.flag("is_trainable", is_trainable, TypeError)
        injection.check_adapter_name(adapter_name)
        io.check_directory(directory)
        am = cls(model)
        try:
            am.load_adapter(directory, adapter_name, is_trainable=is_trainable,
                            allow_nonfinite=allow_nonfinite)
        except BaseException:
            for hook in am._hooks:  # give the model back untouched
                hook.remove()
            raise
        am.set_adapter(adapter_name)
        return am.train(is_trainable)


def get_adapter_model(model: nn.Module, config: AdapterConfig,
                      adapter_name: str = "default") -> AdapterModel:
    """Freeze ``model``, wrap the modules selected by ``config`` and return an
    :class:`AdapterModel` with ``adapter_name`` active.  Validates before modifying."""
    return AdapterModel(model, config, adapter_name)
