"""petra: parameter-efficient transformers (Fourier, Kronecker and L-Transformer)."""

from petra.embeddings import (
    FourierEmbedding,
    KroneckerEmbedding,
    LearnedEmbedding,
    TokenEmbedding,
    build_embedding,
)

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = [
    "FourierEmbedding",
    "KroneckerEmbedding",
    "LearnedEmbedding",
    "TokenEmbedding",
    "build_embedding",
]
