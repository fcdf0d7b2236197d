"""Quotient-remainder compositional embeddings: Shi, Mudigere, Naumov & Yang,
*Compositional Embeddings Using Complementary Partitions for Memory-Efficient
Recommendation Systems*, KDD 2020 (arXiv 1909.02107).

Two small tables indexed by complementary partitions of the ids, with c = `collisions`:

    q = id // c,  r = id mod c          (q < ceil(V / c), r < c: no two ids share both)
    E(id) = Q[q] * R[r]                 "mult" (the paper's best), elementwise
    E(id) = Q[q] + R[r]                 "add"
    E(id) = [Q[q], R[r]]                "concat": Q is ceil(d / 2) wide, R floor(d / 2)

Trainable parameters: (ceil(V / c) + c) d for mult and add, ceil(V / c) ceil(d/2) +
c floor(d/2) for concat; smallest near c = sqrt(V).

Initialization: the combined rows start with the entrywise scale `init_std` of a learned
table. Two independent N(0, s^2) factors multiply to entries of variance s^4, so a product
of two 0.02-std tables would start at 4e-4 with gradients of the same smallness (the failure
its users report); "mult" draws both tables at s = sqrt(init_std), "add" at
init_std / sqrt(2), "concat" at init_std.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from petra.embeddings.base import Knob, TokenEmbedding, check_count, check_init_std

OPERATIONS = ("mult", "add", "concat")


def qr_params(vocab_size: int, dim: int, collisions: int, operation: str = "mult") -> int:
    """Trainable parameters of `QREmbedding(vocab_size, dim, collisions=...)`."""
    rows = math.ceil(vocab_size / collisions)
    if operation == "concat":
        return rows * (dim - dim // 2) + collisions * (dim // 2)
    return (rows + collisions) * dim


class QREmbedding(TokenEmbedding):
    """Quotient table times (or plus, or beside) remainder table.

    E(id) = Q[id // c] * R[id mod c] (the math is in `petra.embeddings.qr`).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        collisions: c, the remainder table's rows; ceil(sqrt(V)) by default, the smallest
            layout.
        operation: `mult` (the paper's best), `add` or `concat`.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the entrywise scale the combined rows start with, a learned table's.

    Raises:
        ValueError: for an unknown operation, `concat` with d < 2, c not a whole number in
            [1, V], or a negative or non-finite `init_std`.
    """

    kind = "qr"
    budget_knob = ("collisions",)
    report_layouts = (("qr, mult, c = ceil(sqrt V)", {}),)

    @classmethod
    def check_vocabulary_options(cls, vocab_size: int, dim: int, options: dict) -> None:
        """`collisions`, when given, a whole number in [1, V]."""
        collisions = options.get("collisions")
        if collisions is None:
            return
        check_count("collisions", collisions)
        if collisions > vocab_size:
            raise ValueError(f"collisions must lie in [1, V = {vocab_size}], got {collisions}")

    @classmethod
    def stand_in_options(cls, options: dict, vocab_size: int) -> dict:
        """`collisions` at 1 once it is a whole number (refused here otherwise): its upper
        bound V is checked on the real vocabulary (`check_vocabulary_options`)."""
        collisions = options.get("collisions")
        if collisions is None:
            return options
        check_count("collisions", collisions)
        return {**options, "collisions": 1}

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """`qr_params` at the given or default (ceil(sqrt V)) collisions."""
        collisions = cls.option(options, "collisions")
        collisions = math.isqrt(vocab_size - 1) + 1 if collisions is None else collisions
        return qr_params(vocab_size, dim, collisions, cls.option(options, "operation"))

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Every c in [1, V]: ceil(V / c) + c is not symmetric in c and V / c."""
        operation = cls.option(options, "operation")
        return [
            Knob(
                range(1, vocab_size + 1),
                lambda c: qr_params(vocab_size, dim, c, operation),
                lambda c: {"collisions": c},
                monotone=False,
            )
        ]

    @classmethod
    def smaller_layout_hint(cls, options: dict) -> str:
        if cls.option(options, "operation") == "concat":
            return ""
        return " (operation='concat', two tables of half the width, needs about half)"

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        collisions: int | None = None,
        operation: str = "mult",
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; choose one of {OPERATIONS}")
        if operation == "concat" and dim < 2:
            raise ValueError("operation='concat' splits the width in two: dim must be at least 2")
        self.check_vocabulary_options(vocab_size, dim, {"collisions": collisions})
        collisions = math.isqrt(vocab_size - 1) + 1 if collisions is None else collisions
        check_init_std(init_std)
        self.collisions, self.operation = collisions, operation
        widths = (dim - dim // 2, dim // 2) if operation == "concat" else (dim, dim)
        self.quotient = nn.Embedding(math.ceil(vocab_size / collisions), widths[0])
        self.remainder = nn.Embedding(collisions, widths[1])
        self.init_std = init_std
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Both tables ~ N(0, s^2), s as the module docstring says, from the global RNG."""
        std = {"mult": math.sqrt(self.init_std), "add": self.init_std / math.sqrt(2)}.get(
            self.operation, self.init_std
        )
        for table in (self.quotient, self.remainder):
            nn.init.normal_(table.weight, std=std)

    def _embed(self, ids: Tensor) -> Tensor:
        q = self.quotient(torch.div(ids, self.collisions, rounding_mode="floor"))
        r = self.remainder(ids.remainder(self.collisions))
        if self.operation == "mult":
            return q * r
        return q + r if self.operation == "add" else torch.cat((q, r), dim=-1)

    def _scale(self, factor: float) -> None:
        tables = (self.quotient,) if self.operation == "mult" else (self.quotient, self.remainder)
        for table in tables:
            table.weight.mul_(factor)

    def trained_matrix(self) -> Tensor:
        return self.quotient.weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, collisions={self.collisions}, operation={self.operation!r}"
