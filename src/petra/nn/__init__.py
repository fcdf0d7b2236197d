"""Building blocks shared by every petra model and embedding."""

from petra.nn.attention import MultiHeadAttention, additive_bias, attention_bias
from petra.nn.block import TransformerBlock
from petra.nn.feedforward import GeGLU
from petra.nn.norm import RMSNorm
from petra.nn.rope import RotaryEmbedding

__all__ = [
    "GeGLU",
    "MultiHeadAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "TransformerBlock",
    "additive_bias",
    "attention_bias",
]
