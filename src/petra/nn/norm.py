"""Root-mean-square layer normalization (Zhang & Sennrich, 2019).

    y = x / sqrt(mean(x^2) + eps) * g

computed in float32 whatever the input dtype, then cast back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * g over the last dimension, computed in float32.

    Args:
        dim: the width of x, and of the learned gain g (which starts at 1).
        eps: added to the mean square.

    Shapes:
        - x: `(..., dim)`; output: the same
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"
