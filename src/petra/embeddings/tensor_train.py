"""Tensor-train embeddings: Hrinchuk, Khrulkov, Mirvakhabova, Orlova & Oseledets,
*Tensorized Embedding Layers*, Findings of EMNLP 2020 (arXiv 1901.10787); Yin et al.,
*TT-Rec*, MLSys 2021.

The V x d table is a tensor train. V is padded to V' = v_1 ... v_n, a product of n
balanced small factors (never a large prime: `vocab_factors`), and d = d_1 ... d_n exactly
(`dim_factors`). With row-major digits id = ((i_1 v_2 + i_2) v_3 + i_3) ... and
j = ((j_1 d_2 + j_2) d_3 + j_3) ...,

    E(id)_j = G_1[i_1, j_1] G_2[i_2, j_2] ... G_n[i_n, j_n]     (a 1 x 1 product of matrices)

where G_k[i, j] is an r_{k-1} x r_k matrix, r_0 = r_n = 1 and r_k = min(rank, the rank of
the k-th unfolding of a V' x d table). Trainable parameters: sum_k r_{k-1} v_k d_k r_k
(`tt_params`). Cores start N(0, s^2) with s = (init_std^2 / (r_1 ... r_{n-1}))^(1 / 2n), so
that the entries of E start with std `init_std`, a learned table's.
`TensorTrainEmbedding.from_embedding(table, rank)` starts from a given table by TT-SVD
(Oseledets, 2011): exact when `rank` reaches the unfoldings' ranks, and within sqrt(n - 1)
of the best rank-r tensor train otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from petra.embeddings.base import Knob, TokenEmbedding, check_count, check_init_std


def vocab_factors(vocab_size: int, cores: int) -> list[int]:
    """n balanced factors whose product is the smallest such product >= V that starts from
    ceil(V^(1/n)) in every factor and lowers them one at a time (e.g. 30,522 -> 31 x 31 x 32
    = 30,752, 50,257 -> 37 x 37 x 37 = 50,653)."""
    base = math.ceil(round(vocab_size ** (1 / cores), 9))
    factors = [base] * cores
    for i in range(cores):
        if math.prod(factors) // factors[i] * (factors[i] - 1) < vocab_size:
            break
        factors[i] -= 1
    return sorted(factors)


def dim_factors(dim: int, cores: int) -> list[int]:
    """n factors of d whose product is d exactly: its prime factors, largest first, each
    given to the factor that is smallest so far (256 -> 8 x 8 x 4, 768 -> 12 x 8 x 8)."""
    factors, rest, prime = [1] * cores, dim, 2
    primes = []
    while prime * prime <= rest:
        while rest % prime == 0:
            primes.append(prime)
            rest //= prime
        prime += 1
    primes += [rest] if rest > 1 else []
    for p in sorted(primes, reverse=True):
        factors[factors.index(min(factors))] *= p
    return sorted(factors, reverse=True)


def tt_ranks(vocab_size: int, dim: int, rank: int, cores: int) -> list[int]:
    """r_0..r_n: `rank` capped by the largest rank each unfolding can have (the smaller of
    its two sides), with r_0 = r_n = 1."""
    factors = zip(vocab_factors(vocab_size, cores), dim_factors(dim, cores), strict=True)
    modes = [v * d for v, d in factors]
    return [
        1,
        *(min(rank, math.prod(modes[:k]), math.prod(modes[k:])) for k in range(1, cores)),
        1,
    ]


def tt_params(vocab_size: int, dim: int, rank: int, cores: int = 3) -> int:
    """Trainable parameters of `TensorTrainEmbedding(vocab_size, dim, rank=..., cores=...)`."""
    ranks = tt_ranks(vocab_size, dim, rank, cores)
    shapes = zip(vocab_factors(vocab_size, cores), dim_factors(dim, cores), strict=True)
    return sum(ranks[k] * v * d * ranks[k + 1] for k, (v, d) in enumerate(shapes))


def _svd(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The thin SVD, through the transpose of a wide matrix (LAPACK is several times
    faster on the tall one): A^T = U S V^T gives A = V S U^T."""
    if matrix.shape[0] >= matrix.shape[1]:
        return torch.linalg.svd(matrix, full_matrices=False)
    u, s, vh = torch.linalg.svd(matrix.T, full_matrices=False)
    return vh.T, s, u.T


class TensorTrainEmbedding(TokenEmbedding):
    """The table as a train of n cores, core k of shape (v_k, r_{k-1}, d_k, r_k) (the math
    is in `petra.embeddings.tensor_train`).

    Args:
        vocab_size: V, the number of token ids (padded to V' = v_1 ... v_n).
        dim: d = d_1 ... d_n, the width of each embedding.
        rank: the largest inner rank r_k.
        cores: n, the cores (at least 2).
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the entrywise scale the table starts with, a learned table's.

    Raises:
        ValueError: if `rank` is not positive, `cores` is below 2, or `init_std` is not a
            positive finite number.
    """

    kind = "tt"
    computes_rows = True
    budget_knob = ("rank",)
    report_layouts = (("tt, 3 cores, rank 16", {"rank": 16}),)
    starts_from_table = True
    table_options = ("rank", "cores")

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """`tt_params`."""
        return tt_params(vocab_size, dim, cls.option(options, "rank"), cls.option(options, "cores"))

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any rank up to the largest an unfolding can have."""
        cores = cls.option(options, "cores")
        largest = max(tt_ranks(vocab_size, dim, vocab_size * dim, cores))
        return [
            Knob(
                range(1, largest + 1),
                lambda r: tt_params(vocab_size, dim, r, cores),
                lambda r: {"rank": r},
            )
        ]

    @classmethod
    def _from_table(
        cls, table: Tensor, *, padding_idx: int | None = None, **options
    ) -> TensorTrainEmbedding:
        """`from_embedding(table)`: the TT-SVD at the given rank and cores."""
        return cls.from_embedding(table, padding_idx=padding_idx, **options)

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        rank: int = 8,
        cores: int = 3,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        check_count("rank", rank)
        check_count("cores", cores, minimum=2)
        check_init_std(init_std, positive=True)
        self.rank, self.num_cores = rank, cores
        self.vocab_factors = vocab_factors(vocab_size, cores)
        self.dim_factors = dim_factors(dim, cores)
        self.ranks = tt_ranks(vocab_size, dim, rank, cores)
        self.init_std = init_std
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(v, self.ranks[k], d, self.ranks[k + 1]))
            for k, (v, d) in enumerate(zip(self.vocab_factors, self.dim_factors, strict=True))
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every core ~ N(0, s^2), s = (init_std^2 / (r_1 ... r_{n-1}))^(1 / 2n), from the
        global RNG, core by core."""
        std = (self.init_std**2 / math.prod(self.ranks)) ** (1 / (2 * self.num_cores))
        for core in self.cores:
            core.copy_(torch.randn(core.shape, dtype=core.dtype, device=core.device) * std)

    @classmethod
    @torch.no_grad()
    def from_embedding(
        cls, table: Tensor, rank: int = 8, *, cores: int = 3, padding_idx: int | None = None
    ) -> TensorTrainEmbedding:
        """The TT-SVD of a `(V, d)` table: for k = 1..n-1, the truncated SVD of the remaining
        tensor's unfolding gives core k (its left factor) and what is carried on (S V^T)."""
        if table.dim() != 2:
            raise ValueError(f"table must be (V, d), got shape {tuple(table.shape)}")
        vocab_size, dim = table.shape
        module = cls(vocab_size, dim, rank=rank, cores=cores, padding_idx=padding_idx)
        vs, ds = module.vocab_factors, module.dim_factors
        padded = torch.zeros(math.prod(vs), dim, dtype=torch.float64)
        padded[:vocab_size] = table.detach().double().cpu()
        # (v_1..v_n, d_1..d_n) -> (v_1, d_1, ..., v_n, d_n): core k's mode is (i_k, j_k)
        order = [axis for k in range(cores) for axis in (k, cores + k)]
        rest = padded.reshape(*vs, *ds).permute(order).reshape(1, -1)
        for k, core in enumerate(module.cores):
            left, right = module.ranks[k], module.ranks[k + 1]
            unfolding = rest.reshape(left * vs[k] * ds[k], -1)
            if k == cores - 1:
                factor = unfolding
            else:
                u, s, vh = _svd(unfolding)
                factor, rest = u[:, :right], s[:right, None] * vh[:right]
            # (r_{k-1}, v_k, d_k, r_k) -> stored (v_k, r_{k-1}, d_k, r_k)
            core.copy_(factor.reshape(left, vs[k], ds[k], right).transpose(0, 1))
        return module

    def digits(self, ids: Tensor) -> list[Tensor]:
        """i_1..i_n of each id, row-major."""
        out = []
        for v in reversed(self.vocab_factors):
            out.append(ids.remainder(v))
            ids = torch.div(ids, v, rounding_mode="floor")
        return out[::-1]

    def _embed(self, ids: Tensor) -> Tensor:
        n, width = ids.shape[0], 1
        out = None  # (N, d_1 ... d_k, r_k)
        for k, (core, digit) in enumerate(zip(self.cores, self.digits(ids), strict=True)):
            picked = core[digit]  # (N, r_{k-1}, d_k, r_k)
            left, right = self.ranks[k], self.ranks[k + 1]
            d_k = self.dim_factors[k]
            step = picked if out is None else torch.bmm(out, picked.reshape(n, left, d_k * right))
            width *= d_k
            out = step.reshape(n, width, right)
        return out.reshape(n, self.embedding_dim)

    def table(self, chunk_size: int = 8192) -> Tensor:
        """All V rows by contracting the cores with each other, not row by row (no chunks:
        the largest intermediate is V' / v_n x d / d_n x r): after core k,
        A[(i_1..i_k), (j_1..j_k), r_k] = G_1[i_1, j_1] ... G_k[i_k, j_k]."""
        out = None  # (v_1 ... v_k, d_1 ... d_k, r_k)
        for core in self.cores:  # (v_k, r_{k-1}, d_k, r_k)
            if out is None:
                out = core.reshape(core.shape[0], core.shape[2], core.shape[3])
            else:
                step = torch.einsum("abr,vrds->avbds", out, core)
                out = step.reshape(step.shape[0] * step.shape[1], -1, step.shape[-1])
        table = out[: self.num_embeddings, :, 0]  # (V, d): the padded ids dropped
        ids = torch.arange(self.num_embeddings, device=table.device)
        return self._zero_padding(table, ids)

    def decayed_parameters(self) -> list[nn.Parameter]:
        """The cores are the table's weights: weight-decayed like any embedding table
        (`petra.training.optim.parameter_groups`)."""
        return list(self.cores)

    def _scale(self, factor: float) -> None:
        self.cores[0].mul_(factor)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, rank={self.rank}, vocab_factors={self.vocab_factors}, "
            f"dim_factors={self.dim_factors}, ranks={self.ranks}"
        )
