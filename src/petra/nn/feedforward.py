"""GeGLU feed-forward (Shazeer, *GLU Variants Improve Transformer*, 2020).

    FFN(x) = W_out (gelu(W_gate x) * (W_up x)),   W_gate, W_up: d -> h,  W_out: h -> d

Bias-free, so its parameter count is exactly 3 * d * h.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class GeGLU(nn.Module):
    """FFN(x) = W_out (gelu(W_gate x) * (W_up x)), bias-free: 3 d h parameters.

    Args:
        dim: d, the input and output width.
        hidden: h, the hidden width (at least 1).
        dropout: on the hidden activations.

    Raises:
        ValueError: if `hidden` is below 1.

    Shapes:
        - x: `(..., d)`; output: the same
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"GeGLU hidden width must be at least 1, got {hidden}")
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)  # W_gate and W_up, fused
        self.out = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # W_gate and W_up as two products: in backward their gradients then meet in x's as a
        # sum, instead of first being copied into one (..., 2h) gradient (a split's backward)
        gate, up = (F.linear(x, weight) for weight in self.gate_up.weight.chunk(2))  # (..., h)
        return self.out(self.dropout(F.gelu(gate) * up))
