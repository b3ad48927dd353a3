"""Tiny base models for tests and examples: each factory ``f(seed) -> (model, inputs)`` builds
the same model for the same seed, and ``model(**inputs)`` runs it (a tensor, or a Hugging
Face output with ``logits``).  :mod:`qiadapters.testing` re-exports them next to the
contract checks that take such factories.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["TinyMLP", "tiny_mlp", "tiny_bert", "tiny_gpt2", "tiny_llama", "TinyCNN",
           "tiny_cnn", "tiny_vit"]


class TinyMLP(nn.Module):
    """``fc1 (16 -> 48) -> GELU -> fc2 (48 -> 48) -> GELU -> head (48 -> 4)``."""

    def __init__(self, d_in: int = 16, hidden: int = 48, d_out: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.gelu(self.fc2(torch.nn.functional.gelu(self.fc1(x)))))


def tiny_mlp(seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """A :class:`TinyMLP` and a batch ``{"x": (3, 5, 16)}``, both determined by ``seed``."""
    torch.manual_seed(seed)
    model = TinyMLP().eval()
    g = torch.Generator().manual_seed(1000)
    return model, {"x": torch.randn(3, 5, 16, generator=g)}


def tiny_bert(seed: int = 0, hidden: int = 32, layers: int = 2) -> tuple[nn.Module, dict[str, Any]]:
    """A random-init ``BertForSequenceClassification`` (no dropout) and a token batch."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.1)
    return BertForSequenceClassification(config).eval(), _token_batch()


def _token_batch(vocab: int = 64, batch: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    """A fixed token batch whose second row ends in two padding positions."""
    g = torch.Generator().manual_seed(1000)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length - 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def tiny_gpt2(seed: int = 0, hidden: int = 32, layers: int = 2) -> tuple[nn.Module, dict[str, Any]]:
    """A random-init ``GPT2LMHeadModel`` (transformers' ``Conv1D`` projections, causal; no
    dropout) and a token batch."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=hidden, n_layer=layers, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.1,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(config).eval(), _token_batch()


def tiny_llama(seed: int = 0, hidden: int = 32, layers: int = 2) -> tuple[nn.Module, dict[str, Any]]:
    """A random-init ``LlamaForCausalLM`` (``nn.Linear`` projections, rotary, causal) and a
    token batch."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=32, initializer_range=0.1,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return LlamaForCausalLM(config).eval(), _token_batch()


class TinyCNN(nn.Module):
    """``conv1 (3 -> 16, 3x3) -> GELU -> conv2 (16 -> 24, 3x3, stride 2) -> GELU -> mean ->
    head (24 -> 4)``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.head = nn.Linear(24, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gelu = torch.nn.functional.gelu
        return self.head(gelu(self.conv2(gelu(self.conv1(x)))).mean(dim=(-2, -1)))


def tiny_cnn(seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """A :class:`TinyCNN` and a batch ``{"x": (2, 3, 8, 8)}``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1000)
    return TinyCNN().eval(), {"x": torch.randn(2, 3, 8, 8, generator=g)}


def tiny_vit(seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """A random-init ``ViTForImageClassification`` (no dropout): 32x32 images, 8x8 patches
    from the ``Conv2d`` patch ``projection`` (a 4x4 grid + CLS, 17 tokens), width 32, 5
    labels; and a batch ``{"pixel_values": (2, 3, 32, 32)}``."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    g = torch.Generator().manual_seed(1000)
    return (ViTForImageClassification(config).eval(),
            {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)})
