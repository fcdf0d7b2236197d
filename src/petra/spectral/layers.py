"""Per-slice layers of the L-Transformer. Activations are slice-major, (p, B, n, m): slice k
of every token, m = d / p features each. Every weight has a leading slice axis and acts on
its slice alone; slices are batched (`bmm`, attention with slices folded into the batch),
never looped over.

Weights live in the transform domain by default. With `mix` (the p x p transform M) passed
to `forward`, they are read as spatial-domain weights W and used as W_hat = W x_1 M: the same
function, stored the other way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.nn import RotaryEmbedding
from petra.nn.attention import LayerCache, attend


def in_transform_domain(weight: Tensor, mix: Tensor | None) -> Tensor:
    """weight (p, ...) -> sum_j mix[k, j] weight[j] (or weight itself when mix is None)."""
    if mix is None:
        return weight
    return torch.tensordot(mix.to(weight.dtype), weight, dims=([1], [0]))


class SliceLinear(nn.Module):
    """y_k = x_k W_k for each slice k; W: (p, m_in, m_out), no bias. With the gain g (p, m_in)
    of an RMSNorm before it: y_k = (x_k * g_k) W_k = x_k (diag(g_k) W_k)."""

    def __init__(self, slices: int, m_in: int, m_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(slices, m_in, m_out))
        bound = 1 / math.sqrt(m_in)  # nn.Linear's default range, per slice
        nn.init.uniform_(self.weight, -bound, bound)

    def effective_weight(self, mix: Tensor | None, gain: Tensor | None) -> Tensor:
        """(p, m_in, m_out): W in the transform domain, times diag(g_k) with a gain."""
        weight = in_transform_domain(self.weight, mix)
        if gain is None:
            return weight
        return gain.to(weight.dtype).unsqueeze(-1) * weight

    def forward(self, x: Tensor, mix: Tensor | None = None, gain: Tensor | None = None) -> Tensor:
        return slice_matmul(x, self.effective_weight(mix, gain))

    def split(
        self, x: Tensor, parts: int, mix: Tensor | None = None, gain: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """`forward`'s output features in `parts` equal groups, one bmm each: in backward the
        groups' gradients meet in x's as a sum of products, instead of first being copied
        into one (p, ..., m_out) gradient (the backward of a split output)."""
        weights = self.effective_weight(mix, gain).chunk(parts, dim=-1)
        return tuple(slice_matmul(x, weight) for weight in weights)


def slice_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """x (p, ..., m_in) @ weight (p, m_in, m_out) -> (p, ..., m_out), as one bmm."""
    p, *batch, m_in = x.shape
    return torch.bmm(x.reshape(p, -1, m_in), weight).view(p, *batch, weight.shape[-1])


class SliceRMSNorm(nn.Module):
    """RMSNorm over the m features of each slice (float32 inside), gain (p, m).

    `normalize` and `gain` apart let a block fold the gain into the slice linear that
    follows, (x_k * g_k) W_k = x_k (diag(g_k) W_k): a product over the (p, m, m_out) weights
    instead of a pass over the activations. The function and its gradients are the same
    (up to rounding), in training too: g stays the parameter, only the product is
    associated the other way."""

    def __init__(self, slices: int, m: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(slices, m))

    def gain(self, mix: Tensor | None = None) -> Tensor:
        """The (p, m) gain in the transform domain."""
        return in_transform_domain(self.weight, mix)

    def rms(self, x: Tensor) -> Tensor:
        """x / sqrt(mean over the slice's features of x^2 + eps), in float32."""
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)

    def normalize(self, x: Tensor) -> Tensor:
        """The norm without its gain, in x's dtype."""
        return self.rms(x).to(x.dtype)

    def forward(self, x: Tensor, mix: Tensor | None = None) -> Tensor:
        gain = self.gain(mix).float()  # (p, m)
        return (self.rms(x) * gain.view(gain.shape[0], *([1] * (x.dim() - 2)), -1)).to(x.dtype)


class SliceAttention(nn.Module):
    """Self-attention inside each slice: its own scores and softmax, `n_heads` heads of width
    m / n_heads, rotary positions. Slices are folded into the batch of SDPA, slice-major
    (row k B + b is slice k of sequence b), and so are the keys and values of a `LayerCache`:
    (p B, H, S, h), each slice's own."""

    def __init__(self, slices: int, m: int, n_heads: int, dropout: float = 0.0, rope_base=1e4):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, m // n_heads
        self.qkv = SliceLinear(slices, m, 3 * m)
        self.out = SliceLinear(slices, m, m)
        self.rope = RotaryEmbedding(self.head_dim, rope_base)
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        causal: bool,
        mix: Tensor | None = None,
        positions: Tensor | None = None,
        cache: LayerCache | None = None,
        gain: Tensor | None = None,
    ) -> Tensor:
        """x: (p, B, n, m), normalized, with `gain` the gain of its norm (p, m), folded into
        the query, key and value maps; mask: (p B, 1, n, S), boolean or additive, or one that
        broadcasts to it, or None; `positions` (n,) or (p B, n); `mask` and `positions` count
        the earlier S - n positions of every slice in `cache`, which receives these n (the
        encoder's `attention_inputs`, once for all layers)."""
        p, b, n, m = x.shape
        qkv = self.qkv(x, mix, gain).view(p * b, n, 3, self.n_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (p B, H, n, h)
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, self.rope, mask, causal, positions, cache, dropout_p)  # (p B, H, n, h)
        return self.out(y.transpose(1, 2).reshape(p, b, n, m), mix)


class SliceGeGLU(nn.Module):
    """GeGLU feed-forward per slice: W_out,k (gelu(x_k W_gate,k) * x_k W_up,k)."""

    def __init__(self, slices: int, m: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.gate_up = SliceLinear(slices, m, 2 * hidden)
        self.out = SliceLinear(slices, hidden, m)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mix: Tensor | None = None, gain: Tensor | None = None) -> Tensor:
        """x: (p, B, n, m), normalized, with `gain` the gain of its norm folded into W_gate
        and W_up."""
        gate, up = self.gate_up.split(x, 2, mix, gain)
        return self.out(self.dropout(F.gelu(gate) * up), mix)


class SliceBlock(nn.Module):
    """The pre-norm transformer block, slice by slice. Each RMSNorm's gain is folded into the
    slice linear after it (see `SliceRMSNorm`)."""

    def __init__(self, slices, m, n_heads, ffn_hidden, dropout=0.0, rope_base=1e4):
        super().__init__()
        self.attn_norm = SliceRMSNorm(slices, m)
        self.attn = SliceAttention(slices, m, n_heads, dropout, rope_base)
        self.ffn_norm = SliceRMSNorm(slices, m)
        self.ffn = SliceGeGLU(slices, m, ffn_hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask,
        causal: bool,
        mix: Tensor | None = None,
        positions: Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> Tensor:
        normed, gain = self.attn_norm.normalize(x), self.attn_norm.gain(mix)
        x = x + self.dropout(self.attn(normed, mask, causal, mix, positions, cache, gain))
        normed, gain = self.ffn_norm.normalize(x), self.ffn_norm.gain(mix)
        return x + self.dropout(self.ffn(normed, mix, gain))
