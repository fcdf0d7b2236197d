"""Causal language model: logits (B, T, V) from a causal encoder, and generation.

The output head is tied to the input embedding through `table()` (logits = h E^T, so
gradients reach the Fourier refinement or the Kronecker projection as well as a learned
table), or is a separate `Linear(d, V, bias=False)`. `ModelConfig.tie_embeddings=None` takes
each kind's paper setup (learned tied; Kronecker and Fourier untied: each class's
`head_tied_by_default`); the resolved choice is stored in `model.config`.

Generation runs on a key-value cache by default: the prompt is encoded once, then each new
token is one position's work, its keys and values appended to one `LayerCache` per block
(for the spectral backbone, every slice's). Left-padded prompts of different lengths are
batched with an `attention_mask`: rotary positions count from each row's first real token,
so each row generates what it would alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from petra.models.base import PetraModel
from petra.models.config import ModelConfig
from petra.nn import attention_bias
from petra.nn.attention import LayerCache


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


def rotary_positions(attention_mask: Tensor) -> Tensor:
    """Positions counted from each row's first real token: (B, T) 0/1 -> (B, T), 0 on the
    left padding."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)


def check_prompt_mask(attention_mask: Tensor, input_ids: Tensor) -> Tensor:
    """A left-padding mask (B, T), 1 = token, 0 = padding before the row's first token, as a
    bool tensor; anything else is refused."""
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids "
            f"{tuple(input_ids.shape)}: they must match"
        )
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask must hold 0 (padding) and 1 (token) only")
    mask = attention_mask.to(input_ids.device).bool()
    token_then_padding = mask[:, :-1] & ~mask[:, 1:]  # a 1 followed by a 0
    if bool(token_then_padding.any()):
        rows = token_then_padding.any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"generation needs left-padded prompts, but rows {rows} of attention_mask have "
            "padding (0) after a token (1): pad on the left"
        )
    if not bool(mask[:, -1].all()):
        rows = (~mask[:, -1]).nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} of attention_mask have no token: nothing to continue")
    return mask


class CausalLM(PetraModel):
    """A causal language model: next-token logits, and generation with a key-value cache.

    The head is tied to the embedding's `table()` or is its own `Linear(d, V)`, as
    `config.head_tied` says (see `ModelConfig`).
    """

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
        *,
        positions: Tensor | None = None,
        cache: list[LayerCache] | None = None,
    ) -> Tensor:
        """Next-token logits at every position.

        Incremental decoding: with `cache` (from `new_cache()`, holding S past positions),
        `input_ids` are the T tokens that follow them; their keys and values are added to
        the cache, and `attention_mask`, if given, covers the cached positions too.

        Args:
            input_ids: token ids.
            attention_mask: 1 for real tokens, 0 for padding, or None.
            byte_overrides: raw bytes in place of some tokens (an embedding that reads raw
                bytes: `embeds_bytes`).
            positions: the T tokens' rotary positions (default S..S+T-1).
            cache: the key-value cache to extend, or None.

        Returns:
            The logits.

        Raises:
            ValueError: for ids that are not 2-D, a mask of the wrong shape, or more than
                `max_len` positions.

        Shapes:
            - input_ids: `(B, T)`
            - attention_mask: `(B, T)`, or `(B, S + T)` with a cache
            - positions: `(T,)` or `(B, T)`
            - output: `(B, T, V)`
        """
        if cache is None and positions is None:
            hidden = self.hidden_states(input_ids, attention_mask, byte_overrides)  # (B, T, d)
        else:
            hidden = self._decode(input_ids, attention_mask, byte_overrides, positions, cache)
        return self.output_logits(hidden)

    def output_logits(self, hidden: Tensor, table: Tensor | None = None) -> Tensor:
        """The head: hidden states (..., d) -> logits (..., V). A tied head reads `table`, or
        else the embedding's `head_table()` (kept between calls in evaluation)."""
        if self.head is not None:
            return self.head(hidden)
        return hidden @ (self.embedding.head_table() if table is None else table).T

    def new_cache(self) -> list[LayerCache]:
        """An empty key-value cache for `forward(..., cache=)`: one `LayerCache` per block."""
        return self.backbone.new_cache()

    def _decode(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        byte_overrides: Mapping | None,
        positions: Tensor | None,
        cache: list[LayerCache] | None,
    ) -> Tensor:
        """`hidden_states` after the cache's S positions, at the given rotary positions:
        (B, T) ids, (B, S + T) mask -> (B, T, d); T = 0 (or B = 0) gives an empty output and
        leaves the cache unchanged."""
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}"
            )
        batch, length = input_ids.shape
        past = 0 if cache is None else cache[0].length
        if attention_mask is not None and attention_mask.shape != (batch, past + length):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, but there are "
                f"{past} cached + {length} new positions in {batch} rows"
            )
        if past + length > self.config.max_len:
            raise ValueError(
                f"sequence length {past + length} exceeds max_len={self.config.max_len}"
            )
        x = self.embed(input_ids, byte_overrides)
        if x.numel() == 0:
            return x  # (B, T, d) with B = 0 or T = 0: the cache is left as it is
        mask = attention_bias(attention_mask, length, True, input_ids.device, past_length=past)
        return self.backbone(x, mask, True, positions=positions, cache=cache)

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
        attention_mask: Tensor | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Extend prompts by up to `max_new_tokens` tokens: greedy, or sampled.

        Args:
            input_ids: the prompts, left-padded where their lengths differ.
            max_new_tokens: the most tokens to add.
            do_sample: sample (True) or take the most likely token (False).
            temperature: divides the logits before sampling.
            top_p: nucleus sampling's probability mass (1 keeps every token).
            seed: seeds the sampling generator (never the global RNG).
            stop_token_id: a row that emits it is finished and padded with it.
            byte_overrides: replaces prompt positions (of `input_ids` as given, padding
                included) by arbitrary bytes, as in `TokenEmbedding.forward`.
            attention_mask: 1 = token, 0 = padding; batches prompts of different lengths
                padded on the left (right padding is refused): each row generates what it
                would alone.
            use_cache: keep the keys and values of the positions seen; False recomputes the
                whole sequence at every step (the same logits up to float rounding, slower).

        Returns:
            The prompts and their continuations, the padding kept.

        Raises:
            ValueError: for empty or non-2-D prompts, prompt length + `max_new_tokens` above
                `max_len`, sampling settings out of range, or a right-padded mask.

        Shapes:
            - input_ids, attention_mask: `(B, T)`
            - output: `(B, T + n)`, n <= max_new_tokens
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] == 0:
            raise ValueError("the prompts are empty: generation needs at least one token")
        if input_ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_len={self.config.max_len}"
            )
        if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        mask = None
        if attention_mask is not None:
            mask = check_prompt_mask(attention_mask, input_ids)
            if bool(mask.all()):
                mask = None  # no padding: the plain causal mask and positions
        was_training = self.training
        self.eval()
        generator = None
        if do_sample:
            generator = torch.Generator(device=input_ids.device)  # never the global RNG
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        # a tied head's table, once per call (under autocast no table is kept between calls)
        table = None if self.head is not None else self.embedding.head_table()
        cache = self.new_cache() if use_cache else None
        ids = input_ids
        new_ids = ids  # what the next forward reads: the prompt, then the last token (cached)
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        try:
            for step in range(max_new_tokens):
                overrides = byte_overrides if step == 0 or not use_cache else None
                if mask is None and not use_cache:  # the plain forward, every position's logits
                    hidden = self.hidden_states(new_ids, byte_overrides=overrides)
                    logits = self.output_logits(hidden, table)[:, -1]
                else:  # the head on the last position only
                    positions = None
                    if mask is not None:
                        positions = rotary_positions(mask)[:, -new_ids.shape[1] :]
                    hidden = self._decode(new_ids, mask, overrides, positions, cache)
                    logits = self.output_logits(hidden[:, -1], table)
                logits = logits.float()
                if do_sample:
                    logits = top_p_filter(logits / temperature, top_p)
                    next_ids = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
                else:
                    next_ids = logits.argmax(dim=-1)
                if stop_token_id is not None:
                    next_ids = next_ids.masked_fill(finished, stop_token_id)
                    finished |= next_ids == stop_token_id
                ids = torch.cat((ids, next_ids.unsqueeze(-1)), dim=1)
                new_ids = next_ids.unsqueeze(-1) if use_cache else ids
                if mask is not None:
                    mask = torch.cat((mask, mask.new_ones(mask.shape[0], 1)), dim=1)
                if stop_token_id is not None and bool(finished.all()):
                    break
        finally:
            self.train(was_training)
        return ids
