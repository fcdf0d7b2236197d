"""Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(h) + mask) V,  per head of width h = d / heads

Q and K carry rotary position embeddings. `attention_mask` (B, T) is True (or 1) for real
tokens: padded keys get no weight. `causal=True` also hides later keys. A query whose keys
are all hidden (a padded position under left padding) attends to itself only, so no row
of the softmax is empty; such positions are padding and their outputs are not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.nn.rope import RotaryEmbedding


def attention_bias(
    attention_mask: Tensor | None, length: int, causal: bool, device: torch.device
) -> Tensor | None:
    """Boolean mask, True where a query may attend to a key: (B, 1, T, T), or None."""
    if attention_mask is None and not causal:
        return None
    allowed = torch.ones(length, length, dtype=torch.bool, device=device)
    if causal:
        allowed = allowed.tril()
    allowed = allowed.expand(1, 1, length, length)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]  # (B, 1, T, T)
    return allowed | torch.eye(length, dtype=torch.bool, device=device)


class MultiHeadAttention(nn.Module):
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

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """x: (B, T, d); mask: a boolean (B, 1, T, T) from `attention_bias`, or None."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, h)
        q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and mask is None,
        )  # (B, H, T, h)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))
