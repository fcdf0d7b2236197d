"""The embedding kinds by name: each a `TokenEmbedding` class that describes itself (the
contract in `petra.embeddings.base`), so that a new kind is its own module plus its entry
here. The order is the kinds' order everywhere (`petra params` rows, `KINDS`)."""

from __future__ import annotations

from petra.embeddings.base import TokenEmbedding
from petra.embeddings.dhe import DeepHashEmbedding
from petra.embeddings.fourier import FourierEmbedding
from petra.embeddings.hashed import HashEmbedding
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.learned import LearnedEmbedding
from petra.embeddings.ngram import NgramHashEmbedding
from petra.embeddings.qr import QREmbedding
from petra.embeddings.quantized import QuantizedEmbedding
from petra.embeddings.residual import ResidualEmbedding
from petra.embeddings.tensor_train import TensorTrainEmbedding
from petra.embeddings.trimmed import TrimmedEmbedding

REGISTRY: dict[str, type[TokenEmbedding]] = {
    cls.kind: cls
    for cls in (
        LearnedEmbedding,
        FourierEmbedding,
        KroneckerEmbedding,
        QREmbedding,
        HashEmbedding,
        DeepHashEmbedding,
        TensorTrainEmbedding,
        NgramHashEmbedding,
        QuantizedEmbedding,
        TrimmedEmbedding,
        ResidualEmbedding,
    )
}
KINDS = tuple(REGISTRY)


def embedding_class(kind: str) -> type[TokenEmbedding]:
    """The class of the embedding kind named `kind`."""
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {KINDS}")
    return REGISTRY[kind]
