"""Training an :class:`~qiadapters.AdapterModel` with Hugging Face ``Trainer``.

``Trainer`` learns three things from the model it is given and special-cases peft's
``PeftModel`` (an ``isinstance`` check) for the rest:

* which dataset columns to keep (``remove_unused_columns``) and which are labels
  (``label_names``, hence ``eval_loss``): read from the *class* of the model's ``forward``
  -- for an ``AdapterModel`` that is ``forward(*args, **kwargs)``, so every column was
  dropped ("The batch received was empty") and no label was found;
* whether the loss takes ``num_items_in_batch`` (``model_accepts_loss_kwargs``);
* how to save and reload weights (``_save`` / ``_load_from_checkpoint``): anything that is
  not a ``PreTrainedModel`` or ``PeftModel`` was saved as a full ``model.safetensors``.

:class:`AdapterTrainer` is ``Trainer`` with exactly these four points answered from the
wrapped model and the adapter's own files; everything else (optimizer, scheduler, RNG
state, logging, evaluation, ``compute_metrics``) is ``Trainer``'s.  See ``docs/trainer.md``.
"""
from __future__ import annotations

import inspect
import os

import torch
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils.generic import can_return_loss, find_labels

from ..model import io
from ..model.adapter_model import AdapterModel

__all__ = ["AdapterTrainer", "load_adapter_weights"]


def _adapter_directory(directory: str | os.PathLike, adapter_name: str) -> str:
    """Where :meth:`AdapterModel.save_pretrained` writes ``adapter_name`` under ``directory``."""
    return os.fspath(directory) if adapter_name == "default" else os.path.join(directory, adapter_name)


def load_adapter_weights(model: AdapterModel, directory: str | os.PathLike) -> list[str]:
    """Copy saved adapter tensors into ``model``'s existing adapters, in place.

    For every adapter of ``model`` that has files in ``directory`` (the layout of
    :meth:`AdapterModel.save_pretrained`: ``"default"`` at the top, others in sub-folders),
    the tensors are checked (names and shapes) and copied into the live parameters, so an
    optimizer holding them keeps working and ``requires_grad`` is unchanged.  Every file is
    read and checked before any tensor is written.  Returns the names loaded; raises
    ValueError naming ``directory`` if none of ``model``'s adapters is there.
    """
    if not isinstance(model, AdapterModel):
        raise TypeError(f"model must be an AdapterModel, got {type(model).__name__}")
    found = {}
    for name in model.peft_config:
        where = _adapter_directory(directory, name)
        if not os.path.isfile(os.path.join(where, io.WEIGHTS_NAME)):
            continue
        _, state = io.read_adapter(where)
        live = io.adapter_state_dict(model.base_model, name)
        io.check_state({k: v.shape for k, v in live.items()}, state, where)
        found[name] = (live, state)
    if not found:
        raise ValueError(f"directory={os.fspath(directory)!r} holds no saved adapter of this "
                         f"model; its adapters: {list(model.peft_config)}")
    with torch.no_grad():
        for live, state in found.values():
            for key, tensor in live.items():
                tensor.copy_(state[key])
    return list(found)


class AdapterTrainer(Trainer):
    """``transformers.Trainer`` for an :class:`~qiadapters.AdapterModel`.

    Differences from ``Trainer``, and only these:

    * dataset columns are kept, and ``label_names`` (when ``args.label_names`` is None) and
      ``can_return_loss`` are found, from the *wrapped* model's ``forward``; so are
      ``model_accepts_loss_kwargs`` (unless the wrapped model declares
      ``accepts_loss_kwargs``);
    * ``save_model`` and every checkpoint write the adapters only
      (:meth:`AdapterModel.save_pretrained`: ``adapter_model.safetensors`` +
      ``adapter_config.json``, other adapters in sub-folders) and ``training_args.bin``;
      checkpoints add Trainer's optimizer, scheduler, RNG and ``trainer_state.json``;
    * ``resume_from_checkpoint`` and ``load_best_model_at_end`` copy the saved adapter
      tensors into the live ones (:func:`load_adapter_weights`).

    A checkpoint folder loads with ``AdapterModel.from_pretrained(base_model, folder)``.
    Single process (CPU or one accelerator); multi-process / FSDP / DeepSpeed checkpoints
    are not handled here.
    """

    def __init__(self, model: AdapterModel | None = None, *args, **kwargs):
        if not isinstance(model, AdapterModel):
            raise TypeError(f"model must be an AdapterModel (qiadapters.get_adapter_model), got "
                            f"{type(model).__name__}; use transformers.Trainer for other models")
        super().__init__(model, *args, **kwargs)
        wrapped = model.get_base_model()
        if self.args.label_names is None:
            self.label_names = find_labels(type(wrapped))
        self.can_return_loss = can_return_loss(type(wrapped))
        if hasattr(wrapped, "accepts_loss_kwargs"):
            self.model_accepts_loss_kwargs = wrapped.accepts_loss_kwargs
        else:
            params = inspect.signature(wrapped.forward).parameters.values()
            self.model_accepts_loss_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)

    def _adapter_model(self) -> AdapterModel:
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            wrapped = self._adapter_model().get_base_model()
            columns = list(inspect.signature(wrapped.forward).parameters)
            self._signature_columns = columns + list({"label", "label_ids", *self.label_names})

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The adapters (not the base model) and the training arguments."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._adapter_model().save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_adapter_weights(model if model is not None else self._adapter_model(),
                             resume_from_checkpoint)

    def _load_best_model(self) -> None:
        load_adapter_weights(self._adapter_model(), self.state.best_model_checkpoint)
