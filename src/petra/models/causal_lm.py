"""Causal language model: logits (B, T, V) from a causal encoder, and generation.

The output head is tied to the input embedding through `table()` (logits = h E^T, so
gradients reach the Fourier refinement or the Kronecker projection as well as a learned
table), or is a separate `Linear(d, V, bias=False)`. `ModelConfig.tie_embeddings=None` takes
each kind's paper setup (learned tied; Kronecker and Fourier untied, see
`petra.models.config.UNTIED_BY_DEFAULT`); the resolved choice is stored in `model.config`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from petra.models.base import PetraModel
from petra.models.config import ModelConfig


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of tokens whose probability reaches `top_p` (nucleus sampling,
    Holtzman et al., 2020); the others get -inf. (B, V) -> (B, V)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # mass before the token
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class CausalLM(PetraModel):
    causal = True

    def __init__(self, config: ModelConfig, embedding):
        super().__init__(config.replace(tie_embeddings=config.head_tied), embedding)
        self.head = None
        if not self.config.tie_embeddings:
            self.head = nn.Linear(config.dim, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        byte_overrides: Mapping | None = None,
        output_table: Tensor | None = None,
    ) -> Tensor:
        """(B, T) -> logits (B, T, V). `output_table` reuses a precomputed tied table."""
        hidden = self.hidden_states(input_ids, attention_mask, byte_overrides)  # (B, T, d)
        if self.head is not None:
            return self.head(hidden)
        table = self.embedding.table() if output_table is None else output_table  # (V, d)
        return hidden @ table.T

    def head_parameters(self) -> int:
        return 0 if self.head is None else self.head.weight.numel()

    def param_report(self) -> dict:
        """The report of every model, and whether the head is tied (0 head parameters) or
        its own V x d matrix (counted in `head` and `total`)."""
        return {**super().param_report(), "head_tied": self.head is None}

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_token_id: int | None = None,
        byte_overrides: Mapping | None = None,
    ) -> Tensor:
        """Extend (B, T) prompts by up to `max_new_tokens` tokens: greedy, or sampled with
        `temperature` and nucleus `top_p` from a generator seeded with `seed`. A row that
        emits `stop_token_id` is finished and padded with it. `byte_overrides` (Kronecker
        only) replaces prompt positions by arbitrary bytes, as in the embedding's forward.
        Prompts are taken as unpadded. Returns (B, T + n) ids, n <= max_new_tokens."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_len={self.config.max_len}"
            )
        if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        was_training = self.training
        self.eval()
        generator = None
        if do_sample:
            generator = torch.Generator(device=input_ids.device)  # never the global RNG
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        table = None if self.head is not None else self.embedding.table()
        ids = input_ids
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            logits = self(ids, byte_overrides=byte_overrides, output_table=table)[:, -1].float()
            if do_sample:
                logits = top_p_filter(logits / temperature, top_p)
                next_ids = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            else:
                next_ids = logits.argmax(dim=-1)
            if stop_token_id is not None:
                next_ids = next_ids.masked_fill(finished, stop_token_id)
                finished |= next_ids == stop_token_id
            ids = torch.cat((ids, next_ids.unsqueeze(-1)), dim=1)
            if stop_token_id is not None and bool(finished.all()):
                break
        self.train(was_training)
        return ids
