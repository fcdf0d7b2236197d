"""Hashed character n-gram embeddings: a token's vector is the mean of shared rows picked by
hashes of its character n-grams, as fastText's subword vectors (Bojanowski et al., *Enriching
Word Vectors with Subword Information*, TACL 2017) and T-FREE's sparse trigram code
(Deiseroth et al., *T-FREE: Tokenizer-Free Generative LLMs via Sparse Representations for
Memory-Efficient Embeddings*, arXiv 2406.19223) build a word's.

A token's text is its bytes as the Kronecker code reads them (`petra.embeddings.token_bytes`:
GPT-2's byte map inverted, SentencePiece's "▁" and a WordPiece word start as a space),
decoded as UTF-8; a leading space (a word start) becomes a boundary mark, as fastText and
T-FREE mark a word's start (U+E000, a private-use character, where fastText writes "<", which
tokens also hold; a piece does not know where its word ends, so there is no end mark). With
`case_fold`, the text is lower-cased first. Its n-grams G(v) are the n-character
windows of that text (the whole text when it is shorter than n), and each n-gram g picks m
rows h_1(g), ..., h_m(g) of a shared R x d table C (`num_hashes` = m; blake2b with the hash's
index and the kind's seed as salt, so the rows are the same on every machine and Python):

    E(v) = 1 / (m |G(v)|) sum_{g in G(v)} sum_{j=1..m} C[h_j(g) mod R]      (0 if G(v) = {})

Trainable parameters: R d (`rows` = R, the budget knob). C starts N(0, init_std^2). Tokens
spelled alike share n-grams and so rows: "running" and " Running" share "unn", "nni", "nin",
"ing" under `case_fold`. It is Kronecker's closest peer: a code of the token's string, not of
its id, but learned per n-gram instead of projected from a fixed byte-by-position code.

The (token, row) pairs are kept as a flat index with per-token offsets (`bag_rows`,
`bag_offsets`, int64 buffers: about m |G| entries a token), so a saved model loads without its
tokenizer; a batch is one `embedding_bag` (mode "mean") over the distinct ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.embeddings.base import (
    FINGERPRINT,
    Knob,
    TokenEmbedding,
    check_count,
    check_init_std,
    draw_,
    fixed_seed,
    init_generator,
)
from petra.embeddings.token_bytes import token_bytes as tokenizer_bytes

BOUNDARY = "\ue000"  # a private-use character: no token's text holds it, unlike "<"


def token_ngrams(piece: bytes, n: int = 3, case_fold: bool = False) -> list[str]:
    """The character n-grams of one token's bytes (module docstring): a leading space is the
    boundary mark, the whole text is one gram when it is shorter than n, none when empty. A
    byte that is not part of a UTF-8 character (a piece of one, in byte-level BPE) stays a
    character of its own (`surrogateescape`), so no two byte strings share a text."""
    text = piece.decode("utf-8", errors="surrogateescape")
    if text.startswith(" "):
        text = BOUNDARY + text[1:]
    if case_fold:
        text = text.lower()
    if not text:
        return []
    return [text[i : i + n] for i in range(max(len(text) - n + 1, 1))]


def ngram_row(gram: str, j: int, rows: int, seed: int = 0) -> int:
    """h_j(gram) mod R: blake2b of the gram's bytes, salted by the hash's index j and `seed`
    (each as 8 little-endian bytes, the seed mod 2^64)."""
    salt = j.to_bytes(8, "little") + (seed % 2**64).to_bytes(8, "little")
    data = gram.encode("utf-8", errors="surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, salt=salt).digest(), "little") % rows


def ngram_bags(
    pieces: Sequence[bytes],
    rows: int,
    n: int = 3,
    num_hashes: int = 1,
    case_fold: bool = False,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """(flat row index, offsets (V + 1,)): token v's rows are index[offsets[v]:offsets[v+1]]."""
    index, offsets = [], [0]
    for piece in pieces:
        for gram in token_ngrams(piece, n, case_fold):
            index.extend(ngram_row(gram, j, rows, seed) for j in range(num_hashes))
        offsets.append(len(index))
    return torch.tensor(index, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def default_rows(vocab_size: int) -> int:
    """R when `rows` is not given: ceil(V / 8)."""
    return math.ceil(vocab_size / 8)


class NgramHashEmbedding(TokenEmbedding):
    """The mean of shared rows picked by hashes of a token's character n-grams.

    E(v) = 1 / (m |G(v)|) sum_g sum_j C[h_j(g)] (the math is in `petra.embeddings.ngram`).

    Args:
        pieces: one byte string per token id (`petra.embeddings.token_bytes.token_bytes`).
        dim: d, the width of each embedding.
        rows: R, the shared rows; ceil(V / 8) by default.
        n: the n-gram length (3: trigrams, as T-FREE).
        num_hashes: m, the rows each n-gram picks (fastText: 1; T-FREE: several).
        case_fold: lower-case a token's text before taking its n-grams.
        seed: when given, salts the hashes and draws the initial rows (two builds with one
            seed are equal); None hashes with seed 0 and draws the rows from the global RNG,
            as a torch module's.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of the rows' normal initialization.

    Raises:
        ValueError: if `rows`, `n` or `num_hashes` is below 1, or `init_std` negative.
    """

    kind = "ngram"
    computes_rows = True
    embeds_bytes = True
    needs_tokenizer = True
    budget_knob = ("rows",)
    report_layouts = (("ngram, n=3, R = V/8", {}),)

    def __init__(
        self,
        pieces: Sequence[bytes],
        dim: int,
        *,
        rows: int | None = None,
        n: int = 3,
        num_hashes: int = 1,
        case_fold: bool = False,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(len(pieces), dim, padding_idx)
        rows = default_rows(len(pieces)) if rows is None else rows
        for name, value in (("rows", rows), ("n", n), ("num_hashes", num_hashes)):
            check_count(name, value)
        check_init_std(init_std)
        self.n, self.num_hashes, self.case_fold = n, num_hashes, case_fold
        self.seed, self.init_std = seed, init_std
        index, offsets = ngram_bags(pieces, rows, n, num_hashes, case_fold, fixed_seed(seed))
        self.register_buffer("bag_rows", index)
        self.register_buffer("bag_offsets", offsets)
        self.rows = nn.Parameter(torch.empty(rows, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The shared rows drawn N(0, init_std^2), from `seed` when it is given (else from the
        global RNG)."""
        draw_(self.rows, partial(nn.init.normal_, std=self.init_std), init_generator(self.seed))

    @classmethod
    def build(cls, vocab_size: int, dim: int, **options) -> NgramHashEmbedding:
        """From exactly one of `tokenizer=` (with an optional `scheme=`, as `token_bytes`) or
        `token_bytes=` (one byte string per id, with an optional `fingerprint=` of their
        tokenizer, which the model's record keeps); the tokenizer's size must be
        `vocab_size`."""
        tokenizer, pieces = cls.token_source(options)
        scheme = options.pop("scheme", None)
        # the model and the Hugging Face record compare the tokenizer's fingerprint, not this
        options.pop(FINGERPRINT, None)
        pieces = tokenizer_bytes(tokenizer, scheme) if tokenizer is not None else pieces
        cls.check_vocab_size(len(pieces), vocab_size)
        return cls(pieces, dim, **options)

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """R d, R = `rows` (ceil(V / 8) by default)."""
        rows = cls.option(options, "rows")
        return (default_rows(vocab_size) if rows is None else rows) * dim

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any number of shared rows R (R d)."""
        return [Knob(range(1, budget // dim + 2), lambda r: r * dim, lambda r: {"rows": r})]

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> NgramHashEmbedding:
        """The (token, row) index and the number of shared rows are read from the state (no
        tokenizer needed; a resized embedding keeps the R it was built with)."""
        index, offsets, table = cls.saved(state, prefix, "bag_rows", "bag_offsets", "rows")
        rows = table.shape[0]
        cls.check_saved_size(f"{prefix}rows", rows, "rows", "rows", options.get("rows"))
        steps = offsets[1:] - offsets[:-1]
        if (
            offsets.shape != (vocab_size + 1,)
            or offsets[0] != 0
            or offsets[-1] != len(index)
            or (steps < 0).any()
            or (len(index) and not 0 <= int(index.min()) <= int(index.max()) < rows)
        ):
            raise ValueError(
                f"the checkpoint's {prefix}bag_offsets / bag_rows are not an index of "
                f"{vocab_size} tokens into {rows} rows"
            )
        built = {k: v for k, v in options.items() if k not in ("scheme", FINGERPRINT, "rows")}
        embedding = cls([b""] * vocab_size, dim, rows=rows, **built)
        embedding.bag_rows, embedding.bag_offsets = index.clone(), offsets.clone()
        return embedding

    @torch.no_grad()
    def resized(self, pieces: list[bytes], fingerprint: str | None = None) -> NgramHashEmbedding:
        """The same shared rows (R kept) over the n-grams of `pieces`."""
        new = type(self)(
            pieces, self.embedding_dim, rows=self.rows.shape[0], n=self.n,
            num_hashes=self.num_hashes, case_fold=self.case_fold, seed=self.seed,
            padding_idx=self.padding_idx, init_std=self.init_std,
        ).to(device=self.rows.device, dtype=self.rows.dtype)  # fmt: skip
        kept = min(self.num_embeddings, new.num_embeddings)
        end = int(self.bag_offsets[kept])
        self.check_resized_prefix(
            torch.equal(new.bag_offsets[: kept + 1], self.bag_offsets[: kept + 1])
            and torch.equal(new.bag_rows[:end], self.bag_rows[:end])
        )
        new.rows.copy_(self.rows)
        return new

    def _bags(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(flat rows of the ids' bags, their offsets, each bag's length), in id order."""
        starts, ends = self.bag_offsets[ids], self.bag_offsets[ids + 1]
        lengths = ends - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        within = torch.arange(int(lengths.sum()), device=ids.device)
        within = within - offsets.repeat_interleave(lengths)
        return self.bag_rows[starts.repeat_interleave(lengths) + within], offsets, lengths

    def _embed(self, ids: Tensor) -> Tensor:
        flat, offsets, _ = self._bags(ids)
        return F.embedding_bag(flat, self.rows, offsets, mode="mean")

    def embed_bytes(self, pieces: Sequence[bytes]) -> Tensor:
        """The rows of arbitrary byte strings, (N, d): the mean of the shared rows their
        n-grams hash to, as a token with those bytes gets (forced out-of-vocabulary input)."""
        for i, piece in enumerate(pieces):
            if not isinstance(piece, (bytes, bytearray)):
                raise TypeError(f"byte string {i} must be bytes, got {type(piece).__name__}")
        index, offsets = ngram_bags(
            [bytes(piece) for piece in pieces], self.rows.shape[0], self.n, self.num_hashes,
            self.case_fold, fixed_seed(self.seed),
        )  # fmt: skip
        device = self.rows.device
        return F.embedding_bag(index.to(device), self.rows, offsets[:-1].to(device), mode="mean")

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        return True

    def least_squares_map(self):
        """E(v) = C^T f(v): f(v) counts the rows of v's bag over their number (R wide), M = C^T."""

        def features(ids: Tensor) -> Tensor:
            flat, _, lengths = self._bags(ids)
            owner = torch.arange(len(ids), device=ids.device).repeat_interleave(lengths)
            weight = (1.0 / lengths.clamp_min(1).float()).repeat_interleave(lengths)
            counts = torch.zeros(len(ids), self.rows.shape[0], device=ids.device)
            return counts.index_put_((owner, flat), weight, accumulate=True)

        return features, lambda matrix: self.rows.copy_(matrix.T)

    def _scale(self, factor: float) -> None:
        self.rows.mul_(factor)  # every output is a mean of rows

    def trained_matrix(self) -> Tensor:
        return self.rows

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, rows={self.rows.shape[0]}, "
            f"n={self.n}, num_hashes={self.num_hashes}, case_fold={self.case_fold}"
        )
