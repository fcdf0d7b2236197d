"""Fourier token embeddings (PETE): Ndubuaku & Talhi, *Parameter-Efficient Transformer
Embeddings*, arXiv 2505.02266 (2025).

The `V x d` table is replaced by a fixed function of the token's normalized position plus a
small learned refinement with a residual connection:

    r  = rank(id)                      natural: r = id; or a seeded permutation; or the
                                       token's rank by corpus frequency
    x  = 2 r / V - 1                   petra's default ("half-open"), x in [-1, 1 - 2/V]
    x  = 2 r / (V - 1) - 1             the paper's ("paper"), x in [-1, 1]
    T  = basis(x) in R^d               Fourier: sin/cos of k pi x, k = 1..d/2, interleaved
    E  = T + refine(T)                 refine: one d x d linear map ("linear", the layout of
                                       the paper's Table 1 counts), a GeGLU feed-forward of
                                       width expansion * d ("geglu", the paper's text; 4 by
                                       default, 1/4 for its smallest models), or nothing
    E  = RMSNorm(E)                    optional, off by default

Every Fourier feature has period 2 in x, so under the paper's normalization ids 0 and V - 1
(x = -1 and x = +1) get identical features; the half-open default keeps all V distinct.
No dropout (the paper trains without it). Trainable parameters: d^2 (linear), 3 d h (geglu,
h = expansion * d), 0 (none), plus d with the final norm.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from petra.embeddings.base import TokenEmbedding
from petra.embeddings.bases import build_basis
from petra.nn import GeGLU, RMSNorm

NORMALIZATIONS = ("half-open", "paper")
ID_ORDERS = ("natural", "permuted", "frequency")
REFINEMENTS = ("linear", "geglu", "none")


def frequency_rank(token_counts) -> Tensor:
    """rank[id] = place of `id` among ids sorted by descending count (ties: lower id first)."""
    counts = np.asarray(token_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"token_counts must be a non-empty 1-D array, got shape {counts.shape}")
    order = np.argsort(-counts.astype(np.float64), kind="stable")  # most frequent first
    rank = np.empty(counts.size, dtype=np.int32)
    rank[order] = np.arange(counts.size, dtype=np.int32)
    return torch.from_numpy(rank)


class FourierEmbedding(TokenEmbedding):
    """Fixed basis features of the normalized token id, refined by a small residual network."""

    kind = "fourier"

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        basis: str = "fourier",
        refine: str = "linear",
        expansion: float | None = None,
        normalize: str = "half-open",
        id_order: str = "natural",
        token_counts=None,
        seed: int = 0,
        final_norm: bool = False,
        cache_features: bool = False,
        padding_idx: int | None = None,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize={normalize!r}; choose one of {NORMALIZATIONS}")
        if normalize == "paper" and vocab_size < 2:
            raise ValueError("normalize='paper' divides by V - 1: it needs a vocabulary of >= 2")
        if refine not in REFINEMENTS:
            raise ValueError(f"unknown refine={refine!r}; choose one of {REFINEMENTS}")
        if expansion is not None and refine != "geglu":
            raise ValueError(f"expansion applies to refine='geglu' only, not refine={refine!r}")
        self.basis_name, self.refine_name, self.normalize = basis, refine, normalize
        self.id_order = id_order
        self.basis = build_basis(basis, dim, seed)

        if id_order == "natural":
            self.id_rank = None
        elif id_order == "permuted":
            generator = torch.Generator().manual_seed(seed)
            self.register_buffer("id_rank", torch.randperm(vocab_size, generator=generator).int())
        elif id_order == "frequency":
            if token_counts is None:
                raise ValueError("id_order='frequency' needs token_counts, one count per id")
            if len(token_counts) != vocab_size:
                raise ValueError(
                    f"token_counts has {len(token_counts)} entries for a vocabulary of {vocab_size}"
                )
            self.register_buffer("id_rank", frequency_rank(token_counts))
        else:
            raise ValueError(f"unknown id_order={id_order!r}; choose one of {ID_ORDERS}")

        if refine == "linear":
            self.refine = nn.Linear(dim, dim, bias=False)
        elif refine == "geglu":
            self.expansion = 4.0 if expansion is None else float(expansion)
            self.refine = GeGLU(dim, max(1, round(self.expansion * dim)))
        else:
            self.refine = None
        self.norm = RMSNorm(dim) if final_norm else None

        if cache_features:
            all_ids = torch.arange(vocab_size)
            self.register_buffer("feature_cache", self.features(all_ids), persistent=False)
        else:
            self.feature_cache = None

    def positions(self, ids: Tensor) -> Tensor:
        """x in [-1, 1] (float64) for each id, after the id order."""
        rank = ids if self.id_rank is None else self.id_rank[ids]
        span = self.num_embeddings - 1 if self.normalize == "paper" else self.num_embeddings
        return 2.0 * rank.double() / span - 1.0

    def features(self, ids: Tensor) -> Tensor:
        """The fixed part T(id), (N, d), computed on the fly."""
        return self.basis(self.positions(ids)).to(self._float_dtype())

    def _embed(self, ids: Tensor) -> Tensor:
        t = self.features(ids) if self.feature_cache is None else self.feature_cache[ids]  # (N, d)
        e = t if self.refine is None else t + self.refine(t)
        return e if self.norm is None else self.norm(e)

    def _float_dtype(self) -> torch.dtype:
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, basis={self.basis_name!r}, refine={self.refine_name!r}, "
            f"normalize={self.normalize!r}, id_order={self.id_order!r}, "
            f"cached={self.feature_cache is not None}"
        )
