"""Pre-norm transformer block (Xiong et al., 2020):

```
x = x + Dropout(Attention(RMSNorm(x)))
x = x + Dropout(GeGLU(RMSNorm(x)))
```
"""

from __future__ import annotations

from torch import Tensor, nn

from petra.nn.attention import LayerCache, MultiHeadAttention
from petra.nn.feedforward import GeGLU
from petra.nn.norm import RMSNorm


class TransformerBlock(nn.Module):
    """x = x + Dropout(Attention(RMSNorm(x))); x = x + Dropout(GeGLU(RMSNorm(x))).

    Args:
        dim: d, the model width.
        n_heads: attention heads (d must divide by it).
        ffn_hidden: the GeGLU's hidden width.
        dropout: after attention and the feed-forward, and inside both.
        rope_base: the rotary embeddings' base.

    Shapes:
        - x: `(B, T, d)`; output: the same
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        ffn_hidden: int,
        dropout: float = 0.0,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, dropout, rope_base)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = GeGLU(dim, ffn_hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        positions: Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        """x: (B, T, d) -> (B, T, d); `positions` and `cache` as in `MultiHeadAttention`."""
        x = x + self.dropout(self.attn(self.attn_norm(x), mask, causal, positions, cache))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))
