"""Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(h) + mask) V,  per head of width h = d / heads

Q and K carry rotary position embeddings. `attention_mask` (B, T) is True (or 1) for real
tokens: padded keys get no weight. `causal=True` also hides later keys. A query whose keys
are all hidden (a padded position under left padding) attends to itself only, so no row
of the softmax is empty; such positions are padding and their outputs are not used.

Incremental decoding: a `LayerCache` keeps the rotated keys and the values of the positions
an attention layer has seen. Given one, the layer appends the keys and values of its T new
positions and lets them attend to all past + T, so that generating a token costs one
position's work instead of the whole prefix's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.nn.rope import RotaryEmbedding


def attention_bias(
    attention_mask: Tensor | None,
    length: int,
    causal: bool,
    device: torch.device,
    past_length: int = 0,
) -> Tensor | None:
    """Boolean mask, True where a query may attend to a key: (B, 1, T, S), or None.

    The T = `length` queries are positions past_length..S-1 of S = past_length + T keys (the
    first past_length in a `LayerCache`); `attention_mask`, if given, is (B, S) and covers
    them all. With past_length = 0 this is the (B, 1, T, T) mask of a whole sequence."""
    if attention_mask is None and not causal:
        return None
    total = past_length + length
    if attention_mask is not None and attention_mask.shape[-1] != total:
        raise ValueError(
            f"attention_mask covers {attention_mask.shape[-1]} positions, but there are "
            f"{past_length} cached + {length} new ones"
        )
    queries = torch.arange(past_length, total, device=device).unsqueeze(-1)  # (T, 1)
    keys = torch.arange(total, device=device)  # (S,)
    if causal:
        allowed = keys <= queries  # (T, S)
    else:
        allowed = torch.ones(length, total, dtype=torch.bool, device=device)
    allowed = allowed.expand(1, 1, length, total)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]  # (B, 1, T, S)
    return allowed | (keys == queries)


def additive_bias(
    mask: Tensor | None, copies: int = 1, dtype: torch.dtype = torch.float32
) -> Tensor | None:
    """A boolean mask (N, 1, T, S) from `attention_bias` in the additive form SDPA turns it
    into, 0 where a query may attend and -inf elsewhere, repeated `copies` times along the
    batch (copy c of row b at row c N + b; a mask of batch 1 broadcasts and stays one).
    SDPA would redo this conversion in every layer: an encoder does it once per forward."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    bias.masked_fill_(~mask, float("-inf"))
    return bias if copies == 1 or mask.shape[0] == 1 else bias.repeat(copies, 1, 1, 1)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rope: RotaryEmbedding,
    mask: Tensor | None,
    causal: bool,
    positions: Tensor | None,
    cache: LayerCache | None,
    dropout_p: float,
) -> Tensor:
    """softmax(rope(q) rope(k)^T / sqrt(h) + mask) v, per head: q, k, v (N, H, T, h) ->
    (N, H, T, h), over the keys and values of `cache` (which receives these) and the new ones.
    `mask`: boolean or additive (N, 1, T, S), or one that broadcasts to it, or None (then
    `causal` hides later keys); `mask` and `positions` as `cached_attention_inputs` gives."""
    q, k = rope(q, positions), rope(k, positions)
    if cache is not None:
        k, v = cache.append(k, v)  # (N, H, S, h)
    if mask is not None and mask.is_floating_point():
        mask = mask.to(q.dtype)  # SDPA adds a float mask in the queries' dtype
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal and mask is None
    )


class LayerCache:
    """The rotated keys and the values, (N, H, S, h), of the S positions one attention layer
    has seen so far (N = B, or p B for the slices of the spectral backbone); empty at first."""

    def __init__(self):
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    @property
    def length(self) -> int:
        """S, the number of cached positions."""
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the keys and values (N, H, T, h) of T new positions; return all S + T."""
        if self.k is not None:
            k, v = torch.cat((self.k, k), dim=-2), torch.cat((self.v, v), dim=-2)
        self.k, self.v = k, v
        return k, v


def cached_attention_inputs(
    mask: Tensor | None,
    causal: bool,
    length: int,
    device,
    cache: LayerCache | None,
    positions: Tensor | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """The mask and rotary positions of T = `length` new positions after a cache: `positions`
    if given, else past..past+T-1 after cached ones (None without: the rotation's default).
    Without a mask, a causal layer after a cache builds one: SDPA's `is_causal` aligns to
    the first key, not the last."""
    past = 0 if cache is None else cache.length
    if past == 0:
        return mask, positions
    if mask is None and causal:
        mask = attention_bias(None, length, True, device, past_length=past)
    if positions is None:
        positions = torch.arange(past, past + length, device=device)
    return mask, positions


class MultiHeadAttention(nn.Module):
    """Self-attention with rotary positions, masks and an optional key-value cache (see
    `petra.nn.attention`).

    Args:
        dim: d, the model width.
        n_heads: heads of width d / n_heads (even, for the rotary pairs).
        dropout: on the attention weights, in training.
        rope_base: the rotary embeddings' base.

    Raises:
        ValueError: if `dim` does not divide by `n_heads`.

    Shapes:
        - x: `(B, T, d)`; output: the same
    """

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, rope_base: float = 10000.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, rope_base)
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        positions: Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """x: (B, T, d); mask: a boolean (B, 1, T, S) from `attention_bias`, its additive
        form from `additive_bias` (computed once for all layers), or None.
        `positions`: rotary positions (T,) or (B, T) (default: past..past+T-1, past the
        cache's length or 0). `cache`: keys and values of the earlier positions, to which
        this call appends its own (then S = past + T)."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, h)
        mask, positions = cached_attention_inputs(mask, causal, length, x.device, cache, positions)
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, self.rope, mask, causal, positions, cache, dropout_p)  # (B, H, T, h)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))
