"""Training an :class:`~qiadapters.AdapterModel` with Hugging Face ``Trainer``.

An ``AdapterModel``'s class shows the wrapped model's ``forward`` signature
(:meth:`AdapterModel.__new__`), so plain ``Trainer`` with default arguments keeps the right
dataset columns, finds the labels (``eval_loss``) and asks the wrapped model whether its
loss takes ``num_items_in_batch``.  What ``Trainer`` cannot learn from the model is how to
save it: ``Trainer._save`` calls ``save_pretrained`` only on a ``PreTrainedModel`` or
``PeftModel`` (an ``isinstance`` check) and writes the full ``state_dict`` otherwise, and
``_load_from_checkpoint`` / ``_load_best_model`` read adapter files only for a ``PeftModel``.
Hence two pieces:

* :class:`AdapterTrainer` -- ``Trainer`` whose checkpoints and ``save_model`` hold the
  adapters only, and which resumes from them;
* :class:`AdapterCheckpointCallback` -- for plain ``Trainer`` (full checkpoints): also
  writes the adapter files into every checkpoint folder.

The first is :class:`AdapterCheckpoints` (the mixin that gives any ``Trainer`` subclass
those checkpoints) on ``Trainer``; :mod:`qiadapters.integrations.trl` puts it on TRL's trainers.

See ``docs/trainer.md``.
"""
from __future__ import annotations

import os

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..model import io
from ..model.adapter_model import AdapterModel
from ..model.live import check_live

__all__ = ["AdapterCheckpointCallback", "AdapterCheckpoints", "AdapterTrainer",
           "load_adapter_weights"]


def _adapter_directory(directory: str | os.PathLike, adapter_name: str) -> str:
    """Where :meth:`AdapterModel.save_pretrained` writes ``adapter_name`` under ``directory``."""
    return os.fspath(directory) if adapter_name == "default" else os.path.join(directory, adapter_name)


def load_adapter_weights(model: AdapterModel, directory: str | os.PathLike) -> list[str]:
    """Copy saved adapter tensors into ``model``'s existing adapters, in place.

    For every adapter of ``model`` that has files in ``directory`` (the layout of
    :meth:`AdapterModel.save_pretrained`: ``"default"`` at the top, others in sub-folders),
    the layer shapes recorded in the file (format 5 and newer) and the tensors (names and
    shapes) are checked, and the tensors copied into the live parameters, so an
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
        _, state, record = io.read_saved(where)
        io.check_layers(model.base_model, record, where)  # tensors may fit another width
        check_live(model.base_model, name, record, where)  # or another layout
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


class AdapterCheckpoints:
    """Mixin for a ``transformers.Trainer`` subclass training an
    :class:`~qiadapters.AdapterModel`: adapter-only checkpoints, and resumption from them.
    It overrides exactly ``_save``, ``_load_from_checkpoint`` and ``_load_best_model`` (see
    :class:`AdapterTrainer`), and ``compute_loss``, which adds the model's
    :meth:`~qiadapters.AdapterModel.aux_loss` (a mixture's router losses; 0 for Hamming
    adapters) to the training loss when :attr:`adds_aux_loss` (evaluation losses stay the
    task's); it refuses a ``model`` that is not an ``AdapterModel``.  List it first:
    ``class MyTrainer(AdapterCheckpoints, SomeTrainer)``."""

    #: whether the training loss includes ``model.aux_loss()`` of the forward just run
    adds_aux_loss: bool = True

    def __init__(self, model: AdapterModel | None = None, *args, **kwargs):
        if not isinstance(model, AdapterModel):
            plain = next(c for c in type(self).__mro__
                         if issubclass(c, Trainer) and not issubclass(c, AdapterCheckpoints))
            raise TypeError(f"model must be an AdapterModel (qiadapters.get_adapter_model), got "
                            f"{type(model).__name__}; use {plain.__module__.split('.')[0]}."
                            f"{plain.__name__} for other models")
        super().__init__(model, *args, **kwargs)

    def _adapter_model(self) -> AdapterModel:
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def compute_loss(self, model, inputs, return_outputs: bool = False, **kwargs):
        """The trainer's loss, plus ``aux_loss()`` in training (:attr:`adds_aux_loss`)."""
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        if not (self.adds_aux_loss and model.training):
            return result
        aux = self._adapter_model().aux_loss()
        if return_outputs:
            loss, outputs = result
            return loss + aux.to(loss.device), outputs
        return result + aux.to(result.device)

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


class AdapterTrainer(AdapterCheckpoints, Trainer):
    """``transformers.Trainer`` for an :class:`~qiadapters.AdapterModel`, with adapter-only
    checkpoints.  Differences from ``Trainer``, and only these:

    * ``save_model`` and every checkpoint write the adapters only
      (:meth:`AdapterModel.save_pretrained`: ``adapter_model.safetensors`` +
      ``adapter_config.json``, other adapters in sub-folders) and ``training_args.bin``;
      checkpoints add Trainer's optimizer, scheduler, RNG and ``trainer_state.json``;
    * ``resume_from_checkpoint`` and ``load_best_model_at_end`` copy the saved adapter
      tensors into the live ones (:func:`load_adapter_weights`);
    * the training loss includes ``model.aux_loss()`` (a mixture's router losses), as a
      training loop written by hand adds it.

    A checkpoint folder loads with ``AdapterModel.from_pretrained(base_model, folder)``.
    One process, or several under ``torchrun`` / ``accelerate launch`` (DDP: the main process
    writes); FSDP and DeepSpeed checkpoints are not handled here.  The same checkpoints
    for another ``Trainer`` subclass: :class:`AdapterCheckpoints`.
    """


class AdapterCheckpointCallback(TrainerCallback):
    """For plain ``Trainer``: after each checkpoint, also write the model's adapters into it.

    ``Trainer`` saves an ``AdapterModel`` as a full ``model.safetensors`` (and resumes from
    that); with this callback each ``checkpoint-<step>`` folder also holds
    ``adapter_model.safetensors`` + ``adapter_config.json`` (other adapters in sub-folders),
    so ``AdapterModel.from_pretrained(base_model, folder)`` loads it.  The main process
    writes, into ``args.output_dir/checkpoint-<step>`` (not the per-trial folders of
    ``hyperparameter_search``).  For adapter-only checkpoints use :class:`AdapterTrainer`::

        Trainer(model=am, args=args, train_dataset=rows, callbacks=[AdapterCheckpointCallback()])
    """

    def on_save(self, args, state, control, model=None, **kwargs):
        if not isinstance(model, AdapterModel):
            raise TypeError(f"AdapterCheckpointCallback: the Trainer's model must be an "
                            f"AdapterModel, got {type(model).__name__}")
        if args.should_save:
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            model.save_pretrained(folder)
