"""Fourier token embeddings (PETE): Ndubuaku & Talhi, *Parameter-Efficient Transformer
Embeddings*, arXiv 2505.02266 (2025).

The `V x d` table is replaced by a fixed function of the token's normalized position plus a
small learned refinement with a residual connection:

    r  = rank(id)                      natural: r = id; or a seeded permutation; or the
                                       token's rank by corpus frequency (given as the counts,
                                       or as the rank itself, e.g. a saved `id_rank`)
    x  = 2 r / V - 1                   petra's default ("half-open"), x in [-1, 1 - 2/V]
    x  = 2 r / (V - 1) - 1             the paper's ("paper"), x in [-1, 1]
    T  = basis(x) in R^d               Fourier: sin/cos of k pi x, k = 1..d/2, interleaved
    E  = T + refine(T)                 refine: one d x d linear map ("linear", the layout of
                                       the paper's Table 1 counts; with `refine_bias` it is
                                       R T + b, as the official code's), a GeGLU feed-forward of
                                       width expansion * d ("geglu", the paper's text; 4 by
                                       default, 1/4 for its smallest models), or nothing
    E  = RMSNorm(E)                    optional, off by default (the official code has it:
                                       E = RMSNorm(R T + b + T))

Every Fourier feature has period 2 in x, so under the paper's normalization ids 0 and V - 1
(x = -1 and x = +1) get identical features; the half-open default keeps all V distinct.
No dropout (the paper trains without it). Trainable parameters: d^2 (linear, + d with
`refine_bias`), 3 d h (geglu, h = expansion * d), 0 (none), plus d with the final norm.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenEmbedding,
    checked_counts,
    fixed_seed,
    init_generator,
    reset_linear_,
    uninitialized,
)
from petra.embeddings.bases import build_basis
from petra.nn import GeGLU, RMSNorm

NORMALIZATIONS = ("half-open", "paper")
ID_ORDERS = ("natural", "permuted", "frequency")
REFINEMENTS = ("linear", "geglu", "none")


def frequency_rank(token_counts, vocab_size: int) -> Tensor:
    """rank[id] = place of `id` among ids sorted by descending count (ties: lower id first),
    for the V = `vocab_size` counts `token_counts` (`checked_counts`)."""
    counts = checked_counts(token_counts, vocab_size).numpy()
    order = np.argsort(-counts, kind="stable")  # most frequent first
    rank = np.empty(counts.size, dtype=np.int32)
    rank[order] = np.arange(counts.size, dtype=np.int32)
    return torch.from_numpy(rank)


def checked_rank(id_rank, vocab_size: int) -> Tensor:
    """`id_rank` as an int32 tensor, if it is a permutation of 0..V-1 (else `ValueError`)."""
    rank = torch.as_tensor(id_rank)
    if rank.shape != (vocab_size,) or rank.is_floating_point() or rank.dtype == torch.bool:
        raise ValueError(
            f"id_rank must hold one integer rank per id, shape ({vocab_size},), got "
            f"{tuple(rank.shape)} of {rank.dtype}"
        )
    if not torch.equal(rank.long().sort().values.cpu(), torch.arange(vocab_size)):
        raise ValueError("id_rank must be a permutation of 0..V-1 (each rank exactly once)")
    return rank.to(torch.int32).clone()


class FourierEmbedding(TokenEmbedding):
    """Fixed basis features of the normalized token id, refined by a small residual network.

    The math (the id's position x, the basis T, the refinement and the parameter count) is
    in `petra.embeddings.fourier`.

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding (even for the Fourier basis).
        basis: the features T(x): `fourier`, `chebyshev`, `legendre`, `hermite` or `random`.
        refine: `linear` (one d x d map, the paper's Table 1 counts), `geglu` (a GeGLU
            feed-forward, the paper's text) or `none`.
        expansion: the GeGLU's hidden width as a multiple of d (4 by default); `geglu` only.
        normalize: `half-open` (x = 2 r / V - 1, all V ids distinct; the default) or
            `paper` (x = 2 r / (V - 1) - 1, whose ids 0 and V - 1 share their features).
        id_order: the rank r of each id: `natural` (r = id), `permuted` (a seeded
            permutation) or `frequency` (by corpus frequency; needs `token_counts` or
            `id_rank`).
        token_counts: one count per id, for `id_order="frequency"`.
        id_rank: the rank of each id (a permutation of 0..V-1, e.g. a saved `id_rank`
            buffer), for `id_order="frequency"`.
        seed: when given, every random draw: the `permuted` id order, the `random` basis
            and the refinement's initial weights (two builds with one seed are equal).
            None (the default): the refinement from the global RNG, as a torch module's,
            the id order and basis from seed 0.
        refine_bias: add a bias to the `linear` refinement (R T + b, as the official code).
        final_norm: an RMSNorm on the output (off by default; the official code has it).
        cache_features: keep the fixed `(V, d)` feature table in memory instead of computing
            the features of each batch.
        padding_idx: an id whose output is the zero vector, or None.

    Raises:
        ValueError: for an unknown `basis`, `refine`, `normalize` or `id_order`; for an
            option that does not apply to the chosen one (`expansion` without `geglu`,
            `refine_bias` without `linear`, counts or ranks without `frequency`); for
            `token_counts` or `id_rank` that do not match V.
    """

    kind = "fourier"
    computes_rows = True
    budget_knob = ("refine", "expansion")
    report_layouts = (
        ("fourier, linear", {"refine": "linear"}),
        ("fourier, geglu x4", {"refine": "geglu", "expansion": 4}),
        ("fourier, geglu x1/4", {"refine": "geglu", "expansion": 0.25}),
    )
    # A causal LM's head is its own by default: a tied head's logit of token t is h . E(t)
    # with E(t) = (I + R) T(t), a trigonometric polynomial of degree d / 2 in t's normalized
    # id, so it cannot single out one token of V >> d, and neighbouring ids get nearly equal
    # logits; its own head gives it the learned baseline's output capacity.
    head_tied_by_default = False
    construction_inputs = ("token_counts", "id_rank")  # V-sized: the order is saved as id_rank

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """d^2 (+ d: `refine_bias`) for the linear refinement, 3 d round(expansion d) for the
        GeGLU, 0 for none; + d with the final norm."""
        o = lambda name: cls.option(options, name)  # noqa: E731
        norm = dim if o("final_norm") else 0
        if o("refine") == "linear":
            return dim * dim + (dim if o("refine_bias") else 0) + norm
        if o("refine") == "geglu":
            expansion = 4.0 if o("expansion") is None else o("expansion")
            return 3 * dim * round(expansion * dim) + norm
        return norm

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """The linear refinement (d^2), or a GeGLU of any hidden width h (3 d h); with
        `refine_bias` only the linear one, whose bias it is."""
        norm = dim if cls.option(options, "final_norm") else 0
        bias = dim if cls.option(options, "refine_bias") else 0
        linear = Knob([0], lambda _: dim * dim + bias + norm, lambda _: {"refine": "linear"})
        geglu = Knob(
            range(1, max(budget, 0) // (3 * dim) + 2),
            lambda h: 3 * dim * h + norm,
            lambda h: {"refine": "geglu", "expansion": h / dim},
        )
        return [linear] if bias else [linear, geglu]

    @classmethod
    def needs_token_counts(cls, options: dict) -> bool:
        """The frequency id order ranks ids by their counts."""
        return options.get("id_order") == "frequency"

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> FourierEmbedding:
        """A frequency id order is the saved `id_rank` (not the counts it was ranked by)."""
        if options.get("id_order") == "frequency":
            options.pop("token_counts", None)  # the saved order, not the counts, decides
            (options["id_rank"],) = cls.saved(state, prefix, "id_rank")
        return super().from_saved(vocab_size, dim, state, prefix, **options)

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
        id_rank=None,
        seed: int | None = None,
        refine_bias: bool = False,
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
        if refine_bias and refine != "linear":
            raise ValueError(f"refine_bias applies to refine='linear' only, not refine={refine!r}")
        if expansion is not None and not (math.isfinite(expansion) and round(expansion * dim) >= 1):
            raise ValueError(
                f"expansion={expansion} gives the GeGLU no hidden unit at dim={dim}: the width "
                "round(expansion * dim) must be at least 1"
            )
        self.basis_name, self.refine_name, self.normalize = basis, refine, normalize
        if id_order not in ID_ORDERS:
            raise ValueError(f"unknown id_order={id_order!r}; choose one of {ID_ORDERS}")
        if id_order != "frequency" and (token_counts is not None or id_rank is not None):
            raise ValueError(
                f"token_counts and id_rank give the frequency order: pass them with "
                f"id_order='frequency', not id_order={id_order!r}"
            )
        self.id_order = id_order
        self.basis = build_basis(basis, dim, fixed_seed(seed))

        if id_order == "natural":
            self.id_rank = None
        elif id_order == "permuted":
            generator = torch.Generator().manual_seed(fixed_seed(seed))
            self.register_buffer("id_rank", torch.randperm(vocab_size, generator=generator).int())
        elif (token_counts is None) == (id_rank is None):
            raise ValueError(
                "id_order='frequency' needs token_counts (one count per id) or the id_rank they "
                "give (e.g. a saved embedding.id_rank; load_pretrained passes it), not both"
            )
        elif id_rank is not None:
            self.register_buffer("id_rank", checked_rank(id_rank, vocab_size))
        else:
            self.register_buffer("id_rank", frequency_rank(token_counts, vocab_size))

        if refine == "linear":
            self.refine = uninitialized(lambda: nn.Linear(dim, dim, bias=refine_bias))
        elif refine == "geglu":
            self.expansion = 4.0 if expansion is None else float(expansion)
            self.refine = uninitialized(lambda: GeGLU(dim, round(self.expansion * dim)))
        else:
            self.refine = None
        self.norm = RMSNorm(dim) if final_norm else None
        self.seed = seed
        self.reset_parameters()

        # an empty float buffer that follows .to(dtype/device): the dtype and device of features
        self.register_buffer("_dtype_carrier", torch.empty(0), persistent=False)
        self.cache_features = cache_features
        self._cache: Tensor | None = None
        if cache_features:
            self.feature_table()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every `nn.Linear` of the refinement as `nn.Linear`'s own initialization, in module
        order, from `seed` when it is given (else from the global RNG); the final norm's gain
        to 1."""
        generator = init_generator(self.seed)
        for module in () if self.refine is None else self.refine.modules():
            if isinstance(module, nn.Linear):
                reset_linear_(module, generator)
        if self.norm is not None:
            nn.init.ones_(self.norm.weight)

    def positions(self, ranks: Tensor) -> Tensor:
        """x in [-1, 1] (float64) of each rank."""
        span = self.num_embeddings - 1 if self.normalize == "paper" else self.num_embeddings
        return 2.0 * ranks.double() / span - 1.0

    def ranks(self, ids: Tensor) -> Tensor:
        """Position of each id in the id order."""
        return ids if self.id_rank is None else self.id_rank.index_select(0, ids).long()

    def features(self, ids: Tensor) -> Tensor:
        """The fixed part T(id), (N, d), computed on the fly in float64, then cast."""
        features = self.basis(self.positions(self.ranks(ids)))
        return features.to(self._dtype_carrier.dtype)

    def feature_table(self) -> Tensor:
        """T of every rank, (V, d), built once per dtype and device (the `cache_features`
        mode). Indexed by rank, not id, so a loaded id order needs no rebuild."""
        carrier = self._dtype_carrier
        cache = self._cache
        if cache is None or cache.dtype != carrier.dtype or cache.device != carrier.device:
            ranks = torch.arange(self.num_embeddings, device=carrier.device)
            cache = self.basis(self.positions(ranks)).to(carrier.dtype)
            self._cache = cache
        return cache

    def _embed(self, ids: Tensor) -> Tensor:
        if self.cache_features:
            t = self.feature_table().index_select(0, self.ranks(ids))  # (N, d)
        else:
            t = self.features(ids)
        if self.refine is None:
            e = t
        elif self._fused_residual(t):
            e = torch.addmm(t, t, self.refine.weight.t())  # t + t R^T in one fused call
        else:
            e = t + self.refine(t)
        return e if self.norm is None else self.norm(e)

    def _fused_residual(self, t: Tensor) -> bool:
        """Whether t + t R^T can be one `addmm`: a bias-free linear refinement, outside
        autocast (which would cast the residual t to its low dtype too)."""
        linear = isinstance(self.refine, nn.Linear) and self.refine.bias is None
        return linear and not torch.is_autocast_enabled(t.device.type)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._cache = None  # the loaded state may hold another basis (a random basis' seed)

    def param_report(self):
        report = super().param_report()
        if not self.cache_features:
            return report
        cache = self.feature_table()
        return replace(
            report, buffer_bytes=report.buffer_bytes + cache.numel() * cache.element_size()
        )

    def _scale(self, factor: float) -> None:
        """With a final norm, its gain; with the linear refinement e = (I + R) t + b, the new
        R' = factor R + (factor - 1) I and b' = factor b, so that I + R' = factor (I + R)."""
        if self.norm is not None:
            self.norm.weight.mul_(factor)
        elif isinstance(self.refine, nn.Linear):
            weight = self.refine.weight
            eye = torch.eye(self.embedding_dim, dtype=weight.dtype, device=weight.device)
            weight.mul_(factor).add_(eye, alpha=factor - 1.0)
            if self.refine.bias is not None:
                self.refine.bias.mul_(factor)
        else:
            raise ValueError(
                f"a Fourier embedding with refine={self.refine_name!r} and no final norm cannot "
                "scale its outputs exactly: use refine='linear' or final_norm=True"
            )

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        return cls.option(options, "refine") == "linear" and not cls.option(options, "final_norm")

    def least_squares_map(self):
        """With the linear refinement and no final norm, E = T + R T (+ b) = M T (+ b) with
        M = I + R: the features are the basis T, and M sets R = M - I."""
        if not isinstance(self.refine, nn.Linear) or self.norm is not None:
            return None

        def set_map(matrix: Tensor) -> None:
            identity = torch.eye(self.embedding_dim, dtype=matrix.dtype)
            self.refine.weight.copy_(matrix - identity)

        return self.features, set_map

    def trained_matrix(self) -> Tensor | None:
        if isinstance(self.refine, nn.Linear):
            return self.refine.weight
        return None if self.refine is None else self.refine.gate_up.weight

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, basis={self.basis_name!r}, refine={self.refine_name!r}, "
            f"normalize={self.normalize!r}, id_order={self.id_order!r}, "
            f"cached={self.cache_features}"
        )
