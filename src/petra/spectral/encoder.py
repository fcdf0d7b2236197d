"""The L-Transformer encoder: El Ichi, Jbilou, El Guide & Dufrenois, *Structured
Multidimensional Representation Learning for Large Language Models*, arXiv 2603.05727 (2026).

A hidden state (B, n, d) is a third-order tensor (B n) x m x p, m = d / p. It is moved to the
transform domain once, X_hat = X x_3 M (M the orthonormal DCT-II by default), processed by
blocks whose every operation acts per slice k (linear maps (p, m_in, m_out), attention with
per-slice scores and softmax, normalization over each slice's m features, the GeGLU
feed-forward), and moved back once, X = X_hat x_3 M^-1.

Spectral equivalence: the encoder equals M^-1 applied to p independent standard encoders of
width m, one per slice (tested). Each block has p (4 m^2 + 3 m h) = (4 d^2 + 3 d H) / p
matrix parameters (h = ffn_mult m, H = ffn_mult d) instead of 4 d^2 + 3 d H: about 1/p.

Frequency scaling multiplies slice k of X_hat by s_k before the blocks: `none` (s = 1),
`learned` (s initialized to 1) or `decay` (fixed s_k = (k + 1)^-gamma).

Slice weights are stored in the transform domain (`weight_domain="transform"`), or in the
spatial domain as W with W_hat = W x_1 M (`"spatial"`). A spatial-domain model is initialized
as W = W_hat x_1 M^-1 of the transform-domain initial values W_hat (norm gains of ones, the
usual random matrices): with the same seed, both domains start as the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petra.nn.attention import LayerCache, additive_bias, cached_attention_inputs
from petra.spectral.layers import SliceBlock, SliceLinear, SliceRMSNorm
from petra.spectral.transforms import from_slice_major, to_slice_major, transform_matrices

FREQ_SCALINGS = ("none", "learned", "decay")
WEIGHT_DOMAINS = ("transform", "spatial")


class SpectralEncoder(nn.Module):
    """The L-Transformer encoder: p spectral sub-transformers of width m = d / p, one per
    slice of the transform domain (the math is in `petra.spectral.encoder`).

    Args:
        dim: d, the model width.
        n_layers: blocks.
        n_heads: attention heads per slice (m must split into heads of even width).
        ffn_mult: the feed-forward hidden width as a multiple of m.
        slices: p.
        transform: the transform M along the slices (one of `TRANSFORMS`; the DCT-II by
            default).
        transform_seed: seeds the `random` transform.
        freq_scaling: `none`, `learned` or `decay` (s_k = (k + 1)^-freq_decay).
        freq_decay: the exponent of `decay`.
        weight_domain: the slice weights are stored in the `transform` or `spatial` domain.
        dropout: inside the blocks.
        rope_base: the rotary embeddings' base.

    Raises:
        ValueError: if d does not divide by p, a slice does not split into heads of even
            width, or `freq_scaling` or `weight_domain` is unknown.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        ffn_mult: float,
        slices: int,
        *,
        transform: str = "dct",
        transform_seed: int = 0,
        freq_scaling: str = "none",
        freq_decay: float = 1.0,
        weight_domain: str = "transform",
        dropout: float = 0.0,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        if dim % slices:
            raise ValueError(f"dim {dim} is not divisible by slices={slices}")
        m = dim // slices
        if m % n_heads or (m // n_heads) % 2:
            raise ValueError(
                f"each slice has {m} features: they must split into n_heads={n_heads} heads "
                "of even width"
            )
        if freq_scaling not in FREQ_SCALINGS:
            raise ValueError(
                f"unknown freq_scaling={freq_scaling!r}; choose one of {FREQ_SCALINGS}"
            )
        if weight_domain not in WEIGHT_DOMAINS:
            raise ValueError(
                f"unknown weight_domain={weight_domain!r}; choose one of {WEIGHT_DOMAINS}"
            )
        self.dim, self.slices, self.m = dim, slices, m
        self.n_layers, self.ffn_mult = n_layers, ffn_mult
        self.weight_domain = weight_domain
        # float64 masters, outside the buffers: `.to(bfloat16)` must not round the transform
        self.matrix, self.inverse = transform_matrices(transform, slices, transform_seed)
        hidden = max(1, round(ffn_mult * m))
        self.blocks = nn.ModuleList(
            SliceBlock(slices, m, n_heads, hidden, dropout, rope_base) for _ in range(n_layers)
        )
        self.norm = SliceRMSNorm(slices, m)
        if freq_scaling == "learned":
            self.scale = nn.Parameter(torch.ones(slices))
        elif freq_scaling == "decay":
            decay = torch.arange(1, slices + 1, dtype=torch.float32) ** -freq_decay
            self.register_buffer("scale", decay, persistent=False)
        else:
            self.scale = None
        if weight_domain == "spatial":
            self._weights_to_spatial()

    def slice_weights(self) -> list[nn.Parameter]:
        """The weights with a leading slice axis (p, ...) that `mix` reads in the spatial
        domain: every SliceLinear and SliceRMSNorm weight (not `scale`, which is always a
        transform-domain, per-slice factor)."""
        return [
            module.weight
            for module in self.modules()
            if isinstance(module, (SliceLinear, SliceRMSNorm))
        ]

    @torch.no_grad()
    def _weights_to_spatial(self) -> None:
        """W = W_hat x_1 M^-1, i.e. W[j] = sum_k M^-1[j, k] W_hat[k], in float64: then
        W x_1 M = W_hat and the model is the one the transform-domain weights define."""
        for weight in self.slice_weights():
            spatial = torch.tensordot(self.inverse, weight.double(), dims=([1], [0]))
            weight.copy_(spatial)

    def to_slices(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """(B, n, d) -> transform domain, slice-major (p, B, n, m), contiguous: the residual
        stream of the blocks. With `scale` (p,), slice k is also multiplied by s_k, folded into
        the transform as diag(s) M (a p x p product instead of a pass over the activations)."""
        b, n, _ = x.shape
        matrix = self.matrix.to(x.device)
        if scale is not None:
            matrix = scale.to(matrix.dtype).unsqueeze(-1) * matrix
        return to_slice_major(x.view(b, n, self.m, self.slices), matrix)

    def from_slices(self, x_hat: Tensor) -> Tensor:
        """(p, B, n, m) in the transform domain -> (B, n, d)."""
        _, b, n, _ = x_hat.shape
        return from_slice_major(x_hat, self.inverse).view(b, n, self.dim)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        positions: Tensor | None = None,
        cache: list[LayerCache] | None = None,
    ) -> Tensor:
        """x: (B, n, d) -> (B, n, d); mask: boolean (B, 1, n, S) or None. `positions`: rotary
        positions (n,) or (B, n), the same in every slice; `cache` (from `new_cache`): one
        `LayerCache` per block, holding every slice's keys and values of the S - n earlier
        positions, which receives these n (incremental decoding)."""
        mix = self.matrix.to(x.device) if self.weight_domain == "spatial" else None
        caches = [None] * len(self.blocks) if cache is None else cache
        mask, positions = self.attention_inputs(x, mask, causal, positions, caches[0])
        h = self.to_slices(x, self.scale)  # (p, B, n, m)
        for block, layer_cache in zip(self.blocks, caches, strict=True):
            h = block(h, mask, causal, mix, positions, layer_cache)
        return self.from_slices(self.norm(h, mix))

    def attention_inputs(
        self,
        x: Tensor,
        mask: Tensor | None,
        causal: bool,
        positions: Tensor | None,
        cache: LayerCache | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """What every block's attention shares, once per forward (every layer's cache holds
        as many positions): the mask as an additive bias in x's dtype, (p B, 1, n, S) with
        slice k of sequence b at row k B + b, and the rotary positions, (n,) or (p B, n)."""
        n = x.shape[1]
        mask, positions = cached_attention_inputs(mask, causal, n, x.device, cache, positions)
        if positions is not None and positions.dim() == 2:
            positions = positions.repeat(self.slices, 1)  # the same positions in each slice
        return additive_bias(mask, self.slices, x.dtype), positions

    def new_cache(self) -> list[LayerCache]:
        """An empty key-value cache: one `LayerCache` per block, for all p slices."""
        return [LayerCache() for _ in self.blocks]

    def dense_equivalent_params(self) -> int:
        """Parameters of the standard encoder of width d with the same depth and ffn_mult."""
        d, hidden = self.dim, max(1, round(self.ffn_mult * self.dim))
        return self.n_layers * (4 * d * d + 3 * d * hidden + 2 * d) + d
