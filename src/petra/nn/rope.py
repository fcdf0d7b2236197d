"""Rotary position embedding (Su et al., *RoFormer*, 2021), on interleaved channel pairs.

Channel pair (2i, 2i + 1) of each head (width h) is rotated by the angle t theta_i at
position t, theta_i = base^(-2i/h). Written as complex numbers z_i = x_{2i} + j x_{2i+1}:

    rope(x, t)_i = z_i e^(j t theta_i)

(one complex multiply, computed in float32 at least). A rotation preserves norms, and
<rope(q, s), rope(k, t)> = Re sum_i q_i conj(k_i) e^(j (s - t) theta_i) depends on s - t only:
attention scores see relative positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Rotates channel pair (2i, 2i + 1) of each head by t theta_i at position t,
    theta_i = base^(-2i/h) (the math is in `petra.nn.rope`).

    Args:
        head_dim: h, the width of one head (even).
        base: the base of the angles.

    Raises:
        ValueError: if `head_dim` is odd.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head width, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def rotation(self, positions: Tensor) -> Tensor:
        """e^(j t theta_i) for each position t and pair i: complex64 (T, h/2)."""
        exponents = torch.arange(0, self.head_dim, 2, device=positions.device) / self.head_dim
        inv_freq = self.base ** -exponents.float()
        angle = positions.float().unsqueeze(-1) * inv_freq  # (T, h/2)
        return torch.polar(torch.ones_like(angle), angle)

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x: (..., T, h) -> same shape, rotated by position. `positions`: (T,), the same for
        every row (default 0..T-1), or (N, T), one row of positions per row of x (N, H, T, h)
        (left-padded rows, or decoding after a cache of earlier positions)."""
        if positions is None:
            positions = torch.arange(x.shape[-2], device=x.device)
        dtype = torch.promote_types(x.dtype, torch.float32)
        pairs = torch.view_as_complex(x.to(dtype).reshape(*x.shape[:-1], -1, 2))  # (..., T, h/2)
        rotation = self.rotation(positions)  # (T, h/2) or (N, T, h/2)
        if positions.dim() == 2:
            rotation = rotation.unsqueeze(-3)  # (N, 1, T, h/2): the same for every head
        rotated = pairs * rotation.to(pairs.dtype)
        return torch.view_as_real(rotated).flatten(-2).to(x.dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"
