"""Rotary position embedding (Su et al., *RoFormer*, 2021), "rotate-half" layout.

Channel pairs (i, i + h/2) of each head (width h) are rotated by the angle t * theta_i at
position t, theta_i = base^(-2i/h):

    rope(x, t) = x * cos(t theta) + rotate_half(x) * sin(t theta),
    rotate_half([x1, x2]) = [-x2, x1]

A rotation preserves norms, and <rope(q, s), rope(k, t)> depends on s - t only: attention
scores see relative positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head width, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin of t * theta for each position, (T, h), in float32."""
        inv_freq = self.base ** (
            -torch.arange(0, self.head_dim, 2, device=positions.device, dtype=torch.float32)
            / self.head_dim
        )
        angle = positions.float().unsqueeze(-1) * inv_freq  # (T, h/2)
        angle = torch.cat((angle, angle), dim=-1)  # (T, h)
        return angle.cos(), angle.sin()

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x: (B, heads, T, h) -> same shape, rotated by position (default 0..T-1)."""
        if positions is None:
            positions = torch.arange(x.shape[-2], device=x.device)
        cos, sin = self.angles(positions)
        x1, x2 = x.float().chunk(2, dim=-1)
        rotated = torch.cat((-x2, x1), dim=-1)
        return (x.float() * cos + rotated * sin).to(x.dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"
