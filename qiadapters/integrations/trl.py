"""Training an :class:`~qiadapters.AdapterModel` with TRL's ``SFTTrainer`` and ``DPOTrainer``.

TRL computes its losses with a *fused LM head*: ``trl.trainer.utils.add_fused_lm_head(m)``
replaces ``m.forward`` so that ``m(..., fused_lm_head=True)`` runs the backbone,
``m.base_model`` (a ``PreTrainedModel``'s backbone, e.g. ``GPT2Model``), and projects its
``last_hidden_state`` through ``m.get_output_embeddings().weight`` in chunks.  The trainers
patch ``model.get_base_model()`` when ``accelerate.utils.is_peft_model(model)`` (an
``isinstance`` check against ``peft.PeftModel``) and ``model`` itself otherwise.  An
``AdapterModel`` is not a ``PeftModel``, so the patch lands on it, and its ``base_model`` is
the whole wrapped ``...ForCausalLM``, whose output has logits and no ``last_hidden_state``.
Checkpoints are the other gap: ``Trainer`` saves a model that is neither a
``PreTrainedModel`` nor a ``PeftModel`` as one full state dict (refused for tied
embeddings, as in GPT-2).

:class:`AdapterSFTTrainer` and :class:`AdapterDPOTrainer` are TRL's trainers with
:class:`~qiadapters.integrations.transformers.AdapterCheckpoints` (adapter-only checkpoints
and resumption) and one more step at the end of ``__init__``
(:func:`fused_head_on_wrapped_model`): TRL's patch is taken off the ``AdapterModel`` and the
same ``add_fused_lm_head`` call, with the same options, is made on the wrapped model, as TRL
does for a ``PeftModel``.  The ``AdapterModel`` forwards ``fused_lm_head=True`` to it
unchanged.  See ``docs/trainer.md``.
"""
from __future__ import annotations

import inspect

from trl import DPOTrainer, SFTTrainer
from trl.trainer.utils import add_fused_lm_head

from ..adapters.layer import AdapterLayer
from ..model.adapter_model import AdapterModel
from .transformers import AdapterCheckpoints

__all__ = ["AdapterDPOTrainer", "AdapterSFTTrainer", "fused_head_on_wrapped_model"]

#: The code of the forward ``add_fused_lm_head`` defines (how its patch is recognised).
_FUSED_FORWARDS = {c for c in add_fused_lm_head.__code__.co_consts if inspect.iscode(c)}


def fused_head_on_wrapped_model(am: AdapterModel) -> None:
    """Move a fused LM head that TRL added to ``am`` onto the model ``am`` wraps.

    ``add_fused_lm_head(am, **options)`` left its forward in ``am.__dict__``; this puts back
    the forward it replaced and calls ``add_fused_lm_head(am.base_model, **options)`` with the
    options it was given (read from the patched forward's closure).  Nothing happens when
    ``am``'s forward is not that patch (none, or another library's, such as accelerate's
    autocast wrapper, which stays).
    """
    patched = am.__dict__.get("forward")
    if getattr(getattr(patched, "__func__", None), "__code__", None) not in _FUSED_FORWARDS:
        return  # not patched, or by someone else (accelerate's autocast, ...)
    captured = inspect.getclosurevars(patched).nonlocals
    replaced = captured.get("original_forward")
    if replaced is None:
        raise RuntimeError(f"the forward patched onto {type(am).__name__} is not TRL's fused LM "
                           f"head as this qiadapters version knows it (add_fused_lm_head)")
    parameters = inspect.signature(add_fused_lm_head).parameters
    options = {k: v for k, v in captured.items() if k in parameters and k != "model"}
    if getattr(replaced, "__func__", None) is type(am).forward:
        del am.__dict__["forward"]  # the class's own forward again
    else:
        am.forward = replaced  # someone else's patch (accelerate's autocast, ...) stays
    add_fused_lm_head(am.base_model, **options)


def _refuse(model, peft_config) -> None:
    """What TRL would take and then train wrongly: a ``peft_config`` (TRL would wrap the
    ``AdapterModel`` in a ``PeftModel``), an adapter on the output embeddings (TRL's fused head
    multiplies by their ``weight`` directly: the adapter would be skipped, never trained)."""
    if peft_config is not None:
        raise ValueError(f"peft_config={type(peft_config).__name__}(...) is not taken: the "
                         f"adapters trained are the AdapterModel's (model.peft_config: "
                         f"{list(model.peft_config) if isinstance(model, AdapterModel) else None})"
                         f"; leave peft_config out")
    output_embeddings = getattr(model, "get_output_embeddings", None)
    if not isinstance(model, AdapterModel) or output_embeddings is None:
        return  # AdapterCheckpoints refuses a plain model; TRL, a model without a head
    head = output_embeddings()
    if isinstance(head, AdapterLayer):
        name = next((n for n, m in model.base_model.named_modules() if m is head), "?")
        raise ValueError(f"model's output embeddings {name!r} hold an adapter "
                         f"({type(head).__name__}), which TRL's fused LM head would skip (it "
                         f"multiplies by the layer's weight directly); remove {name!r} from "
                         f"target_modules / modules_to_save")


class _AdapterTRLTrainer(AdapterCheckpoints):
    """What both trainers add to TRL's: the refusals, adapter-only checkpoints, and the fused
    LM head moved onto the wrapped model once TRL's ``__init__`` has put it on ``model``."""

    def __init__(self, model: AdapterModel | None = None, *args, **kwargs):
        _refuse(model, kwargs.get("peft_config"))
        super().__init__(model, *args, **kwargs)
        fused_head_on_wrapped_model(model)


class AdapterSFTTrainer(_AdapterTRLTrainer, SFTTrainer):
    """``trl.SFTTrainer`` for an :class:`~qiadapters.AdapterModel` of a causal LM.

    Takes ``SFTTrainer``'s arguments.  Differences from ``SFTTrainer``: the fused LM head
    goes on the wrapped model (:func:`fused_head_on_wrapped_model`), checkpoints and
    ``save_model`` hold the adapters only and resume from them
    (:class:`~qiadapters.integrations.transformers.AdapterCheckpoints`), and it refuses a
    ``peft_config`` (the adapters are the ``AdapterModel``'s) and an adapter on the output
    embeddings (TRL's fused head would skip it).
    """


class AdapterDPOTrainer(_AdapterTRLTrainer, DPOTrainer):
    """``trl.DPOTrainer`` for an :class:`~qiadapters.AdapterModel` of a causal LM; the
    differences from ``DPOTrainer`` are :class:`AdapterSFTTrainer`'s, plus the reference.

    The reference model: ``ref_model`` if given (a frozen copy of the base model); with
    ``precompute_ref_log_probs=True`` and no ``ref_model``, this model with its adapters
    disabled (``AdapterModel.disable_adapter``), as TRL does for a ``PeftModel``; otherwise
    TRL loads one from ``model.config.name_or_path``.

    The preference loss is left as TRL computes it: no ``aux_loss()`` is added (the policy
    and reference forwards interleave, so the last routing is not the policy's alone).
    """

    adds_aux_loss = False

    def compute_ref_log_probs(self, model, inputs):
        """TRL's, with the adapters disabled when the reference is this model itself.  TRL
        precomputes inside ``__init__``, after its fused head went on: move it first."""
        if self.ref_model is not None:
            return super().compute_ref_log_probs(model, inputs)
        am = self._adapter_model()
        fused_head_on_wrapped_model(am)
        with am.disable_adapter():
            return super().compute_ref_log_probs(model, inputs)
