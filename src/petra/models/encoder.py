"""Bidirectional models: hidden states, sentence vectors, sequence labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.models.base import PetraModel, masked_mean
from petra.models.config import ModelConfig


class Encoder(PetraModel):
    """A bidirectional encoder: its forward is `hidden_states`.

    Shapes:
        - input_ids, attention_mask: `(B, T)`
        - output: `(B, T, d)`
    """

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        return self.hidden_states(input_ids, attention_mask, **kwargs)


class SentenceEncoder(PetraModel):
    """Masked mean of the hidden states over real tokens, L2-normalized: (B, d).

    It also holds the learnable temperature tau of contrastive training, kept as log tau
    and clamped to [0.01, 1] (`temperature()`); it starts at 0.05.

    Shapes:
        - input_ids, attention_mask: `(B, T)`
        - output: `(B, d)`, unit vectors
    """

    MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 1.0

    def __init__(self, config: ModelConfig, embedding):
        super().__init__(config, embedding)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.05)))

    def temperature(self) -> Tensor:
        low, high = math.log(self.MIN_TEMPERATURE), math.log(self.MAX_TEMPERATURE)
        return self.log_temperature.clamp(low, high).exp()

    def head_parameters(self) -> int:
        return int(self.log_temperature.requires_grad)  # the temperature, where it is trained

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        hidden = self.hidden_states(input_ids, attention_mask, **kwargs)
        return F.normalize(masked_mean(hidden, attention_mask), dim=-1)


class SequenceClassifier(PetraModel):
    """Pooled hidden states (masked mean, or the first token) and a linear head.

    Shapes:
        - input_ids, attention_mask: `(B, T)`
        - output: `(B, num_labels)` logits
    """

    def __init__(self, config: ModelConfig, embedding):
        super().__init__(config, embedding)
        self.head = nn.Linear(config.dim, config.num_labels)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        hidden = self.hidden_states(input_ids, attention_mask, **kwargs)
        pooled = (
            hidden[:, 0] if self.config.pooling == "first" else masked_mean(hidden, attention_mask)
        )
        return self.head(pooled)

    def head_parameters(self) -> int:
        return sum(p.numel() for p in self.head.parameters())
