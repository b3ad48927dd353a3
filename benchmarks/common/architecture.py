"""Models built from a published architecture with random weights: what a benchmark uses
when a cost, not an accuracy, is measured (the weights do not change the cost)."""
from __future__ import annotations

import torch


def minilm_architecture(seed: int = 0, num_labels: int = 4, layers: int = 6,
                        dropout: float = 0.1):
    """all-MiniLM-L6-v2's architecture with random weights, ``num_labels`` labels, eval mode
    (``layers`` < 6: the same layers, fewer of them; ``dropout``: its hidden and attention
    dropout, 0.1 as the checkpoint's)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=layers,
                        num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=512, num_labels=num_labels,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config).eval()
