"""The encoder stack between the embedding and the head: `n_layers` pre-norm transformer
blocks and a final RMSNorm. `build_backbone` is the seam where other stacks (the spectral
L-Transformer) plug in."""

from __future__ import annotations

from torch import Tensor, nn

from petra.models.config import ModelConfig
from petra.nn import RMSNorm, TransformerBlock


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

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """x: (B, T, d) -> (B, T, d); mask: boolean (B, 1, T, T) or None."""
        for block in self.blocks:
            x = block(x, mask, causal)
        return self.norm(x)


def build_backbone(config: ModelConfig) -> nn.Module:
    if config.backbone == "standard":
        return StandardEncoder(config)
    raise ValueError(
        f"backbone={config.backbone!r} is not available in this version of petra; "
        "use backbone='standard'"
    )
