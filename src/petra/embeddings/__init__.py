"""Token embeddings behind one contract (see `petra.embeddings.base`), and their registry.

    from petra import build_embedding
    emb = build_embedding("fourier", vocab_size=30522, dim=256)          # PETE
    emb = build_embedding("kronecker", 50257, 768, tokenizer=tok)        # byte-level
    emb = build_embedding("learned", 30522, 256, factor_dim=64)          # ALBERT-style

and the field's standard baselines for shrinking a table: `qr` (quotient-remainder), `hash`
(hash embeddings), `dhe` (deep hash embeddings), `tt` (tensor train), and `ngram` (hashed
character n-grams of the token's bytes, Kronecker's closest peer); and for a pretrained
table, `quantized` (8 or 4 bits per entry) and `trimmed` (the rows of the ids a corpus uses).
`size_for_budget` sizes any kind but `quantized` to a budget of trainable parameters
(`petra.embeddings.budget`).

`REGISTRY` maps each name to its class (`petra.embeddings.registry`), and each class
describes its kind to the rest of petra (the table in `petra.embeddings.base`). A kind of
your own is one file: its class decorated with `register` (`examples/own_kind.py`), held
to the contract by `check_kind`.
"""

from __future__ import annotations

from petra.embeddings.base import ParamReport, TokenEmbedding, check_ids
from petra.embeddings.budget import (
    BudgetUnreachable,
    Sizing,
    format_sizing,
    parse_budget,
    size_for_budget,
)
from petra.embeddings.contract import ContractError, check_kind
from petra.embeddings.dhe import DeepHashEmbedding
from petra.embeddings.fourier import FourierEmbedding
from petra.embeddings.hashed import HashEmbedding
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.learned import LearnedEmbedding
from petra.embeddings.ngram import NgramHashEmbedding
from petra.embeddings.qr import QREmbedding
from petra.embeddings.quantized import QuantizedEmbedding
from petra.embeddings.registry import KINDS, REGISTRY, embedding_class, kinds, register
from petra.embeddings.residual import ResidualEmbedding
from petra.embeddings.tensor_train import TensorTrainEmbedding
from petra.embeddings.trimmed import TrimmedEmbedding


def embedding_options(kind: str) -> dict[str, object]:
    """The keyword options of `kind` that a setting can hold, with their annotated types
    (options without an annotation, such as Fourier's `token_counts` array, are left out)."""
    return embedding_class(kind).option_types()


def check_embedding_options(kind: str, dim: int, **options) -> None:
    """Refuse what `build_embedding(kind, ..., **options)` would refuse, without a tokenizer
    or data (`TokenEmbedding.check_options`: a build on a stand-in vocabulary of a few
    tokens). What depends on the real vocabulary (`padding_idx < V`) or tokenizer (`scheme`)
    is checked when the embedding is built for real; a negative `padding_idx` is refused
    here, as a QR `collisions` below 1 (its upper bound, V, waits for the real build)."""
    embedding_class(kind).check_options(dim, **options)


def build_embedding(kind: str, vocab_size: int, dim: int, **options) -> TokenEmbedding:
    """Build an embedding of `kind` for ids in `[0, vocab_size)` and width `dim`.

    Args:
        kind: one of `kinds()` (the names in `REGISTRY`).
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        **options: the kind's keyword options (see its class, e.g. `FourierEmbedding`).
            A kind built from each token's bytes (its class sets `needs_tokenizer`) needs
            exactly one of `tokenizer=` (a `tokenizers.Tokenizer`) or `token_bytes=` (one
            byte string per id).

    Returns:
        The embedding, a `TokenEmbedding` (a drop-in `nn.Embedding`).

    Raises:
        ValueError: for an unknown kind or option value; for a kind built from token bytes,
            when neither or both of `tokenizer=` and `token_bytes=` are given, or when the
            tokenizer's size is not `vocab_size`.

    Shapes:
        - forward: ids `(...)` of any integer dtype -> `(..., d)`.
        - `table()`: `(V, d)`.
    """
    return embedding_class(kind).build(vocab_size, dim, **options)


__all__ = [
    "KINDS",
    "REGISTRY",
    "BudgetUnreachable",
    "ContractError",
    "DeepHashEmbedding",
    "FourierEmbedding",
    "HashEmbedding",
    "KroneckerEmbedding",
    "LearnedEmbedding",
    "NgramHashEmbedding",
    "ParamReport",
    "QREmbedding",
    "QuantizedEmbedding",
    "ResidualEmbedding",
    "Sizing",
    "TensorTrainEmbedding",
    "TokenEmbedding",
    "TrimmedEmbedding",
    "build_embedding",
    "check_embedding_options",
    "check_ids",
    "check_kind",
    "embedding_class",
    "embedding_options",
    "format_sizing",
    "kinds",
    "parse_budget",
    "register",
    "size_for_budget",
]
