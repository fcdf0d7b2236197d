"""The encoder stack between the embedding and the head: `n_layers` pre-norm transformer
blocks and a final RMSNorm, or the spectral L-Transformer (`petra.spectral`)."""

from __future__ import annotations

from torch import Tensor, nn

from petra.models.config import ModelConfig
from petra.nn import RMSNorm, TransformerBlock, additive_bias
from petra.nn.attention import LayerCache
from petra.spectral import SpectralEncoder


class StandardEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.dim, config.n_heads, config.ffn_hidden, config.dropout, config.rope_base
            )
            for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.dim)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        positions: Tensor | None = None,
        cache: list[LayerCache] | None = None,
    ) -> Tensor:
        """x: (B, T, d) -> (B, T, d); mask: boolean (B, 1, T, S) or None. `positions`: rotary
        positions (T,) or (B, T); `cache` (from `new_cache`): one `LayerCache` per block, which
        holds the S - T earlier positions and receives these T (incremental decoding)."""
        caches = [None] * len(self.blocks) if cache is None else cache
        mask = additive_bias(mask, dtype=x.dtype)  # once, not in every layer's attention
        for block, layer_cache in zip(self.blocks, caches, strict=True):
            x = block(x, mask, causal, positions, layer_cache)
        return self.norm(x)

    def new_cache(self) -> list[LayerCache]:
        """An empty key-value cache: one `LayerCache` per block."""
        return [LayerCache() for _ in self.blocks]

    def dense_equivalent_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_backbone(config: ModelConfig) -> nn.Module:
    if config.backbone == "standard":
        return StandardEncoder(config)
    if config.backbone == "spectral":
        return SpectralEncoder(
            config.dim,
            config.n_layers,
            config.n_heads,
            config.ffn_mult,
            config.slices,
            transform=config.transform,
            transform_seed=config.transform_seed,
            freq_scaling=config.freq_scaling,
            freq_decay=config.freq_decay,
            weight_domain=config.spectral_weights,
            dropout=config.dropout,
            rope_base=config.rope_base,
        )
    raise ValueError(f"unknown backbone {config.backbone!r}")
