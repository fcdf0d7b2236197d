"""A code of the token's bytes plus a low-rank learned residual.

A computed kind built from each token's bytes (the Kronecker byte code, or the hashed
character n-grams) gives every token a vector from its spelling; what the spelling cannot
say (a token's meaning beyond its letters) is left to a learned table of low rank r:

    E(v) = B(v) + U[v] V^T,        U: (V_vocab, r),  V^T: (r, d)

Trainable parameters: those of the base B, plus r (V + d) (`rank` = r, the budget knob). A
model built from scratch draws U and V^T ~ N(0, init_std^2), so the residual starts small
(entries of std sqrt(r) init_std^2, 0.0016 at r = 16) with a gradient in both factors.

Started from a pretrained table T (`petra.hf.replace_embeddings` with corpus counts, or
`petra compress`), the base's linear map M is first set to the count-weighted least-squares
fit of T (`petra.hf.swap.fit_to_table`), then the residual to the best rank-r approximation of
what that fit leaves, R = T - B (`fit_residual_`): with R = P S Q^T its singular value
decomposition, U = P_r S_r and V^T = Q_r^T, so by Eckart-Young

    ||T - E||_F^2 = sum_{i > r} s_i^2,

the least error any rank-r residual on top of that base can give; at r = min(V, d), E = T.
The residual is fitted on every row, unweighted: the rare tokens, which the weighted fit of
the base neglects, are those a per-token table corrects.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenBytesEmbedding,
    TokenEmbedding,
    check_count,
    check_init_std,
    draw_,
    init_generator,
)
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.ngram import NgramHashEmbedding
from petra.embeddings.token_bytes import token_bytes, tokenizer_fingerprint

BASES: dict[str, type[TokenEmbedding]] = {  # computed kinds of the token's bytes, at defaults
    "kronecker": KroneckerEmbedding,
    "ngram": NgramHashEmbedding,
}


class ResidualEmbedding(TokenBytesEmbedding):
    """A byte-built kind B plus a rank-r learned table: E(v) = B(v) + U[v] V^T.

    The math, and the start from a pretrained table, are in `petra.embeddings.residual`.
    Build it with `from_token_bytes(pieces, dim, base=..., rank=...)` (or `build` with a
    tokenizer); the constructor takes an already built base.

    Args:
        base: the embedding of the token's bytes, of a kind in `BASES`, without padding.
        rank: r, the width of the residual table (1 or more).
        seed: when given, draws the initial U and V^T (two builds with one seed are equal);
            None draws them from the global RNG, as a torch module's.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of U's and V^T's normal initialization.

    Raises:
        ValueError: if `rank` is below 1, `init_std` negative, or the base is not of a kind
            in `BASES`.
    """

    kind = "residual"
    computes_rows = True
    budget_knob = ("rank",)
    report_layouts = (
        ("residual: kronecker + rank 16", {"rank": 16}),
        ("residual: ngram + rank 16", {"base": "ngram", "rank": 16}),
    )
    # as Kronecker's: a causal LM's head is its own unless told (`KroneckerEmbedding`)
    head_tied_by_default = False

    def __init__(
        self,
        base: TokenEmbedding,
        *,
        rank: int = 16,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        if base.kind not in BASES or base.padding_idx is not None:
            raise ValueError(f"the base must be an embedding of a kind in {tuple(BASES)} "
                             f"without padding, got {base!r}")  # fmt: skip
        check_count("rank", rank)
        check_init_std(init_std)
        super().__init__(base.num_embeddings, base.embedding_dim, padding_idx)
        self.base, self.rank, self.seed, self.init_std = base, rank, seed, init_std
        self.left = nn.Parameter(torch.empty(base.num_embeddings, rank))  # U
        self.right = nn.Parameter(torch.empty(rank, base.embedding_dim))  # V^T
        self.reset_parameters(base=False)

    def reset_parameters(self, base: bool = True) -> None:
        """U and V^T ~ N(0, init_std^2), from `seed` when it is given (else the global RNG);
        the base draws its own again (with `base`)."""
        if base:
            self.base.reset_parameters()
        generator = init_generator(self.seed)
        for factor in (self.left, self.right):
            draw_(factor, partial(nn.init.normal_, std=self.init_std), generator)

    @classmethod
    def _base_class(cls, name: str) -> type[TokenEmbedding]:
        """The kind in `BASES` named `name`; `ValueError` for another."""
        if name not in BASES:
            raise ValueError(f"unknown base {name!r}; choose one of {tuple(BASES)}")
        return BASES[name]

    @classmethod
    def from_token_bytes(
        cls,
        pieces: Sequence[bytes],
        dim: int,
        *,
        base: str = "kronecker",
        rank: int = 16,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
        fingerprint: str | None = None,
    ) -> ResidualEmbedding:
        """The base of kind `base` (at its default options) over one byte string per id,
        plus a rank-`rank` residual; `fingerprint` (the tokenizer's) is kept by a base that
        saves it (Kronecker)."""
        built = cls._base_class(base).build(len(pieces), dim, token_bytes=list(pieces),
                                           fingerprint=fingerprint)  # fmt: skip
        return cls(built, rank=rank, seed=seed, padding_idx=padding_idx, init_std=init_std)

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        dim: int,
        *,
        base: str = "kronecker",
        rank: int = 16,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
        scheme: str | None = None,
    ) -> ResidualEmbedding:
        """`from_token_bytes` over the bytes of every piece of `tokenizer` (`scheme` as
        `petra.embeddings.token_bytes.token_bytes`), with its fingerprint."""
        return cls.from_token_bytes(
            token_bytes(tokenizer, scheme), dim, base=base, rank=rank, seed=seed,
            padding_idx=padding_idx, init_std=init_std,
            fingerprint=tokenizer_fingerprint(tokenizer),
        )  # fmt: skip

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """The base's (at its defaults) plus r (V + d)."""
        base = cls._base_class(cls.option(options, "base"))
        return base.params_for(vocab_size, dim) + cls.option(options, "rank") * (vocab_size + dim)

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any rank r >= 1 on the base: its count plus r (V + d)."""
        base = cls._base_class(cls.option(options, "base")).params_for(vocab_size, dim)
        top = max(budget - base, 0) // (vocab_size + dim) + 1
        return [Knob(range(1, top + 1), lambda r: base + r * (vocab_size + dim),
                     lambda r: {"rank": r})]  # fmt: skip

    @classmethod
    def smaller_layout_hint(cls, options: dict) -> str:
        return "; the base alone is smaller: choose its kind instead"

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> ResidualEmbedding:
        """The base as its kind reads it back from the state (its byte table or n-gram
        index: no tokenizer needed), the residual's rank from the saved U."""
        base = cls._base_class(cls.option(options, "base"))
        (left,) = cls.saved(state, prefix, "left")
        rank = left.shape[-1]
        cls.check_saved_size(f"{prefix}left", rank, "columns", "rank", options.get("rank"))
        built = base.from_saved(vocab_size, dim, state, prefix + "base.")
        kept = {k: options[k] for k in ("seed", "padding_idx", "init_std") if k in options}
        return cls(built, rank=rank, **kept)

    @torch.no_grad()
    def resized(self, pieces: list[bytes], fingerprint: str | None = None) -> ResidualEmbedding:
        """The base resized over `pieces` (its kind's `resized`), the residual rows of the
        kept ids kept and those of new ids 0 (a new token starts at its byte code)."""
        new = type(self)(
            self.base.resized(pieces, fingerprint), rank=self.rank, seed=self.seed,
            padding_idx=self.padding_idx, init_std=self.init_std,
        ).to(device=self.left.device, dtype=self.left.dtype)  # fmt: skip
        kept = min(self.num_embeddings, new.num_embeddings)
        new.left.zero_()
        new.left[:kept].copy_(self.left[:kept])
        new.right.copy_(self.right)
        return new

    def _embed(self, ids: Tensor) -> Tensor:
        return self.base._embed(ids) + self.left.index_select(0, ids) @ self.right

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        return cls._base_class(cls.option(options, "base")).has_least_squares_map({})

    def least_squares_map(self):
        """The base's map: its least-squares fit comes first, the residual after it
        (`fit_residual_`)."""
        return self.base.least_squares_map()

    @torch.no_grad()
    def fit_residual_(self, table: Tensor) -> None:
        """U V^T = the best rank-r approximation of R = table - B (every row, unweighted):
        with R = P S Q^T, U = P_r S_r and V^T = Q_r^T (a rank above min(V, d) keeps its extra
        components at U = 0)."""
        residual = table.double().cpu() - self.base.table().double().cpu()
        if self.padding_idx is not None:
            residual[self.padding_idx] = 0.0
        left, values, right = torch.linalg.svd(residual, full_matrices=False)
        k = min(self.rank, values.shape[0])
        self.left.zero_()
        self.left[:, :k].copy_(left[:, :k] * values[:k])
        self.right[:k].copy_(right[:k])

    def _scale(self, factor: float) -> None:
        self.base._scale(factor)  # B is linear in its map
        self.left.mul_(factor)

    def trained_matrix(self) -> Tensor | None:
        return self.base.trained_matrix()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, base={self.base.kind}, rank={self.rank}"
