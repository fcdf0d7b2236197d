"""Building blocks shared by every petra model and embedding."""

from petra.nn.feedforward import GeGLU
from petra.nn.norm import RMSNorm

__all__ = ["GeGLU", "RMSNorm"]
