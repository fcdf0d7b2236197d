"""The embedding kinds by name, and the constructor `build_embedding` calls for each."""

from __future__ import annotations

from petra.embeddings.dhe import DeepHashEmbedding
from petra.embeddings.fourier import FourierEmbedding
from petra.embeddings.hashed import HashEmbedding
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.learned import LearnedEmbedding
from petra.embeddings.qr import QREmbedding
from petra.embeddings.tensor_train import TensorTrainEmbedding

CONSTRUCTORS = {
    "learned": LearnedEmbedding,
    "fourier": FourierEmbedding,
    "kronecker": KroneckerEmbedding.from_tokenizer,
    "qr": QREmbedding,
    "hash": HashEmbedding,
    "dhe": DeepHashEmbedding,
    "tt": TensorTrainEmbedding,
}
KINDS = tuple(CONSTRUCTORS)


def constructor(kind: str):
    """What `build_embedding` calls for `kind`."""
    if kind not in CONSTRUCTORS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {KINDS}")
    return CONSTRUCTORS[kind]
