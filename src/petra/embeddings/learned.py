"""The learned baseline: a `V x d` lookup table, optionally factorized as in ALBERT.

E(id) = T[id]                      (V * d parameters)
E(id) = P T[id],  T: V x e, P: e x d   (V * e + e * d parameters; Lan et al., 2020)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenEmbedding,
    check_count,
    check_init_std,
    uninitialized,
)


class LearnedEmbedding(TokenEmbedding):
    """`nn.Embedding` behind the petra contract; `factor_dim=e` factorizes it through width e.

    E(id) = T[id] (V d parameters), or E(id) = P T[id] with T: V x e and P: e x d
    (V e + e d parameters, ALBERT's factorization).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        factor_dim: e, the width of a factorized table, or None for the full `V x d` table.
        padding_idx: an id whose output is the zero vector (its row starts at zero), or None.
        sparse: give the table sparse gradients (pair it with `torch.optim.SparseAdam`).
        init_std: the standard deviation of the table's normal initialization.

    Raises:
        ValueError: if `init_std` is negative or not finite, or `factor_dim` is not a whole
            number of at least 1.
    """

    kind = "learned"
    budget_knob = ("factor_dim",)
    report_layouts = (("learned", {}), ("learned, factorized e=128", {"factor_dim": 128}))
    starts_from_table = True
    table_options = ("factor_dim",)

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """V d, or e (V + d) with `factor_dim=e`."""
        factor = cls.option(options, "factor_dim")
        return vocab_size * dim if factor is None else factor * (vocab_size + dim)

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """The full table, or any factorization smaller than it."""
        return [
            Knob([0], lambda _: vocab_size * dim, lambda _: {}),
            Knob(
                range(1, (vocab_size * dim - 1) // (vocab_size + dim) + 1),
                lambda e: e * (vocab_size + dim),
                lambda e: {"factor_dim": e},
            ),
        ]

    @classmethod
    def check_vocabulary_options(cls, vocab_size: int, dim: int, options: dict) -> None:
        """`factor_dim` a whole number in [1, min(V, d)]: the ranks of the truncated SVD of a
        V x d table (`from_pretrained`)."""
        factor_dim = options.get("factor_dim")
        if factor_dim is None:
            return
        check_count("factor_dim", factor_dim)
        if factor_dim > min(vocab_size, dim):
            raise ValueError(
                f"factor_dim must lie in [1, min(V, d) = {min(vocab_size, dim)}] (the ranks of "
                f"the {vocab_size} x {dim} table), got {factor_dim}"
            )

    @classmethod
    def _from_table(
        cls, table: Tensor, *, padding_idx: int | None = None, **options
    ) -> LearnedEmbedding:
        """`from_pretrained(table)`: a copy, or with `factor_dim=e` its truncated SVD."""
        return cls.from_pretrained(table, padding_idx=padding_idx, **options)

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        factor_dim: int | None = None,
        padding_idx: int | None = None,
        sparse: bool = False,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        check_init_std(init_std)
        if factor_dim is not None:
            check_count("factor_dim", factor_dim)
        width = dim if factor_dim is None else factor_dim
        self.weight_table = nn.Embedding(vocab_size, width, padding_idx=padding_idx, sparse=sparse)
        self.factor = (
            None
            if factor_dim is None
            else uninitialized(lambda: nn.Linear(factor_dim, dim, bias=False))
        )
        self.factor_dim, self.init_std = factor_dim, init_std
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """T ~ N(0, init_std^2) with the padding row zero; P as `nn.Linear`'s own
        initialization. Both from the global RNG."""
        nn.init.normal_(self.weight_table.weight, std=self.init_std)
        if self.padding_idx is not None:
            self.weight_table.weight[self.padding_idx].zero_()
        if self.factor is not None:
            self.factor.reset_parameters()

    @property
    def weight(self) -> nn.Parameter:
        """The `V x d` table, as `nn.Embedding.weight` (an unfactored table only)."""
        if self.factor is not None:  # no V x d table: nn.Module's "has no attribute" error
            raise AttributeError("weight")
        return self.weight_table.weight

    def _set_weight(self, value) -> None:
        """`emb.weight = lm_head.weight` ties the table to a head, as with `nn.Embedding`."""
        if self.factor is not None:
            super()._set_weight(value)  # refused: P T has no V x d table to share
        shape = (self.num_embeddings, self.embedding_dim)
        if getattr(value, "shape", None) != shape:
            raise ValueError(
                f"the tied weight must have the table's shape {shape}, got "
                f"{tuple(getattr(value, 'shape', ()))}"
            )
        self.weight_table.weight = value

    @classmethod
    def from_pretrained(
        cls,
        weight: Tensor,
        *,
        factor_dim: int | None = None,
        padding_idx: int | None = None,
        freeze: bool = False,
    ):
        """Wrap an existing `(V, d)` table A; with `factor_dim=e`, start from its best rank-e
        approximation (Eckart-Young): the truncated SVD A_e = U_e S_e V_e^T, split evenly as
        the table T = U_e S_e^(1/2) (V x e) and the projection P = S_e^(1/2) V_e^T (e x d).

        Args:
            weight: the table A, one row per id.
            factor_dim: e, to factorize through width e, or None to copy A.
            padding_idx: an id whose output is the zero vector, or None.
            freeze: make the parameters untrainable.

        Returns:
            The embedding (a copy: A itself is not kept).

        Raises:
            ValueError: if `weight` is not 2-D or `factor_dim` lies outside [1, min(V, d)].

        Shapes:
            - weight: `(V, d)`
        """
        if weight.dim() != 2:
            raise ValueError(f"weight must be (V, d), got shape {tuple(weight.shape)}")
        vocab_size, dim = weight.shape
        cls.check_vocabulary_options(vocab_size, dim, {"factor_dim": factor_dim})
        module = cls(vocab_size, dim, factor_dim=factor_dim, padding_idx=padding_idx)
        with torch.no_grad():
            if factor_dim is None:
                module.weight_table.weight.copy_(weight)
            else:
                u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
                root = s[:factor_dim].sqrt()
                module.weight_table.weight.copy_(u[:, :factor_dim] * root)  # (V, e)
                module.factor.weight.copy_(vh[:factor_dim].T * root)  # (d, e): P^T
        module.requires_grad_(not freeze)
        return module

    def _embed(self, ids: Tensor) -> Tensor:
        rows = self.weight_table(ids)  # (N, e)
        return rows if self.factor is None else self.factor(rows)  # (N, d)

    def table(self, chunk_size: int = 8192) -> Tensor:
        weight = self.weight_table.weight
        table = weight if self.factor is None else self.factor(weight)  # (V, d)
        return self._zero_padding(table, torch.arange(self.num_embeddings, device=weight.device))

    def _scale(self, factor: float) -> None:
        (self.weight_table if self.factor is None else self.factor).weight.mul_(factor)

    def trained_matrix(self) -> Tensor:
        return self.weight_table.weight

    def extra_repr(self) -> str:
        factor = f", factor_dim={self.factor_dim}" if self.factor_dim is not None else ""
        return super().extra_repr() + factor
