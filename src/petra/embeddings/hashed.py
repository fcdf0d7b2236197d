"""Hash embeddings: Svenstrup, Hansen & Winther, *Hash Embeddings for Efficient Word
Representations*, NeurIPS 2017 (arXiv 1709.03933).

k seeded hash functions h_1..h_k (`petra.embeddings.hashing`) pick k of B shared component
rows, and each token mixes them with its own k learned importance weights:

    E(id) = sum_i p_{id,i} C[h_i(id)]       C: B x d shared rows, p: V x k

Trainable parameters: B d + V k (the importance weights are one row per token, the paper's
setup for vocabularies that fit in memory; its option of hashing them too, and of
appending p to the output, are not implemented). C starts N(0, init_std^2) and every p at
1 / sqrt(k), so that a token whose k rows differ starts with entries of std `init_std`, a
learned table's scale.
"""

from __future__ import annotations

import math
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenEmbedding,
    check_init_std,
    draw_,
    fixed_seed,
    init_generator,
)
from petra.embeddings.hashing import UniversalHash


def hash_params(vocab_size: int, dim: int, buckets: int, num_hashes: int = 2) -> int:
    """Trainable parameters of `HashEmbedding(vocab_size, dim, buckets=..., num_hashes=...)`."""
    return buckets * dim + vocab_size * num_hashes


class HashEmbedding(TokenEmbedding):
    """k hashed rows of a shared B x d table, weighted per token.

    E(id) = sum_i p_{id,i} C[h_i(id)] (the math is in `petra.embeddings.hashed`).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        buckets: B, the shared rows; ceil(V / 10) by default.
        num_hashes: k, the hash functions (and importance weights per token).
        seed: when given, draws the hash functions and the initial shared rows (two builds
            with one seed are equal); None (the default) draws the rows from the global RNG,
            as a torch module's, and the hash functions from seed 0.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of the shared rows' normal initialization.

    Raises:
        ValueError: if `buckets` or `num_hashes` is not a whole number of at least 1, or
            `init_std` is negative or not finite.
    """

    kind = "hash"
    budget_knob = ("buckets",)
    report_layouts = (("hash, k=2, B = V/10", {}),)

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """`hash_params` at the given or default (ceil(V / 10)) buckets."""
        buckets = cls.option(options, "buckets")
        buckets = math.ceil(vocab_size / 10) if buckets is None else buckets
        return hash_params(vocab_size, dim, buckets, cls.option(options, "num_hashes"))

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any number of buckets B (B d + k V)."""
        k = cls.option(options, "num_hashes")
        return [
            Knob(
                range(1, max(budget - vocab_size * k, 0) // dim + 2),
                lambda b: hash_params(vocab_size, dim, b, k),
                lambda b: {"buckets": b},
            )
        ]

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        buckets: int | None = None,
        num_hashes: int = 2,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        buckets = math.ceil(vocab_size / 10) if buckets is None else buckets
        check_init_std(init_std)
        self.hashes = UniversalHash(num_hashes, buckets, fixed_seed(seed))
        self.components = nn.Embedding(buckets, dim)
        self.importance = nn.Embedding(vocab_size, num_hashes)
        self.seed, self.init_std = seed, init_std
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """C ~ N(0, init_std^2), from `seed` when it is given (else from the global RNG), and
        every importance weight 1 / sqrt(k)."""
        draw_(
            self.components.weight,
            partial(nn.init.normal_, std=self.init_std),
            init_generator(self.seed),
        )
        nn.init.constant_(self.importance.weight, 1.0 / math.sqrt(self.hashes.num_hashes))

    def _embed(self, ids: Tensor) -> Tensor:
        weight = self.components.weight
        return F.embedding_bag(
            self.hashes(ids), weight, per_sample_weights=self.importance(ids).to(weight.dtype),
            mode="sum",
        )  # fmt: skip

    def _scale(self, factor: float) -> None:
        self.components.weight.mul_(factor)

    def trained_matrix(self) -> Tensor:
        return self.components.weight

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, buckets={self.hashes.buckets}, "
            f"num_hashes={self.hashes.num_hashes}"
        )
