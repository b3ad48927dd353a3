"""Helpers of the test suite that are not part of the adapter contract.

Tests import them as ``from testing_utils import ...`` (with this folder on ``sys.path``, as
for the error catalogue); a ``torchrun`` worker script in this folder finds them there too.
Until qiadapters 0.4 they lived in :mod:`qiadapters.testing`, which still serves their old
names for one version, with a ``DeprecationWarning``.
"""
from __future__ import annotations

import os
import sys

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from qiadapters.adapters.layer import AdapterLayer

__all__ = ["HOST_SYNC_OPS", "HostSyncs", "exit_worker", "minilm_shaped_bert",
           "random_orthogonal", "saved_only_when_on"]


def minilm_shaped_bert(layers: int):
    """A ``BertForSequenceClassification`` with MiniLM's widths (384, 12 heads, FFN 1536, 26
    labels), ``layers`` layers and a 64-token vocabulary, seeded: what the registry's counts
    are checked on without loading the real checkpoint."""
    import transformers

    config = transformers.BertConfig(vocab_size=64, hidden_size=384, num_hidden_layers=layers,
                                     num_attention_heads=12, intermediate_size=1536,
                                     max_position_embeddings=32, num_labels=26)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def exit_worker() -> None:
    """End a ``torchrun`` worker script whose work is done, without the interpreter's
    teardown: there a gloo or autograd thread still joinable at exit is sometimes destroyed
    first (SIGABRT, "terminate called without an active exception"; seen under load with
    torch 2.13), failing a run that succeeded.  Call it last, after every file is written."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def random_orthogonal(r: int, n: int, seed: int = 0,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``r`` random orthogonal ``n x n`` matrices (QR of Gaussian ones), reproducible by
    ``seed``: ``(r, n, n)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(r, n, n, dtype=dtype, generator=g))[0]


#: ops that read a value back on the host (a device sync) or copy a host tensor made in the
#: forward (``torch.tensor(...)``), and data-dependent shapes (``nonzero``: a sync on CUDA)
HOST_SYNC_OPS = ("aten::_local_scalar_dense", "aten::lift_fresh", "aten::nonzero",
                 "aten::masked_select", "aten::unique", "aten::_unique2")


class HostSyncs(TorchDispatchMode):
    """Records :data:`HOST_SYNC_OPS` run inside the forward of any adapter layer of
    ``model`` (the base model's own code, e.g. a Hugging Face mask check, is not counted)::

        with HostSyncs(am) as found:
            am(**inputs)
        assert not found.ops

    ``.tolist()`` does not dispatch: ``torch.compile(..., fullgraph=True)`` catches it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.ops: list[str] = []
        self._depth = 0
        self._layers = [m for m in model.modules() if isinstance(m, AdapterLayer)]
        self._handles = []

    def __enter__(self):
        for layer in self._layers:
            self._handles.append(layer.register_forward_pre_hook(self._enter_layer))
            self._handles.append(layer.register_forward_hook(self._leave_layer))
        return super().__enter__()

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return super().__exit__(*exc)

    def _enter_layer(self, module, args):
        self._depth += 1

    def _leave_layer(self, module, args, out):
        self._depth -= 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self._depth and func._schema.name in HOST_SYNC_OPS:
            self.ops.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def triton_kernels_interpretable() -> bool:
    """Whether the Triton kernels (``qiadapters.circuits.kernels``) can run in Triton's
    interpreter in this process: not imported yet (Triton reads ``TRITON_INTERPRET`` when a
    kernel is defined; set it first), or imported under it."""
    module = sys.modules.get("qiadapters.circuits.kernels.pair_minors_triton")
    return module is None or type(module._forward_kernel).__name__ == "InterpretedFunction"


def saved_only_when_on(folder, field: str):
    """A Hamming option that is written to ``adapter_config.json`` only when on: a tiny BERT
    adapted with ``HammingConfig(**{field: True})`` (blocks of 8, query/value) saves
    ``field: true`` and reloads onto a fresh model with the same logits (1e-6); one without
    it saves no such key.  Returns the reloaded model (for the caller's own checks)."""
    import json

    from qiadapters import AdapterModel, HammingConfig, get_adapter_model
    from qiadapters.testing import perturb
    from qiadapters.tiny_models import tiny_bert

    model, inputs = tiny_bert()
    config = HammingConfig(target_modules=["query", "value"], block_size=8, **{field: True})
    am = perturb(get_adapter_model(model, config)).eval()
    with torch.no_grad():
        ref = am(**inputs).logits
    am.save_pretrained(folder / "on")
    assert json.loads((folder / "on" / "adapter_config.json").read_text())[field] is True
    loaded = AdapterModel.from_pretrained(tiny_bert()[0], folder / "on").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, ref, atol=1e-6, rtol=0)
    plain = get_adapter_model(tiny_bert()[0], HammingConfig(target_modules=["query"],
                                                            block_size=8))
    plain.save_pretrained(folder / "off")
    assert field not in json.loads((folder / "off" / "adapter_config.json").read_text())
    return loaded
