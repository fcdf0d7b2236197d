"""Deep Hash Embeddings (DHE): Kang, Cheng, Yao, Yi, Chen, Hong & Chi, *Learning to Embed
Categorical Features without Embedding Tables for Recommendation*, KDD 2021
(arXiv 2010.10784).

A fixed dense code of the id from k seeded hash functions into m buckets
(`petra.embeddings.hashing`), then a feed-forward network:

    h_i = h_i(id) in [0, m),  i = 1..k
    c_i = 2 h_i / (m - 1) - 1                                   "uniform", in [-1, 1]
    (c_{2j}, c_{2j+1}) = sqrt(-2 ln u_{2j}) (cos, sin)(2 pi u_{2j+1}),
         u_i = (h_i + 1) / m in (0, 1]                           "gaussian" (Box-Muller)
    E(id) = W_L mish(... mish(W_1 c + b_1) ...) + b_L            `layers` hidden layers of
                                                                 width `hidden`, Mish

Defaults from the paper: k = 1024 functions, m = 10^6 buckets, Mish activations. The paper
also puts batch normalization between its layers; petra leaves it out, since it would make
an id's vector depend on the other ids of its batch (and `table()` on how V is chunked).
Like PETE, DHE computes an id's vector from a fixed code of the id; unlike it, the code is a
hash that carries no order of the ids, and the network is a deep MLP rather than PETE's one
refinement. Against PETE at an equal budget it tests the two differences together: the
control for the id order alone is Fourier's own `id_order="permuted"`.

Trainable parameters: k h + h + (L - 1)(h^2 + h) + h d + d, for L hidden layers of width h.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenEmbedding,
    check_count,
    fixed_seed,
    init_generator,
    reset_linear_,
    uninitialized,
)
from petra.embeddings.hashing import UniversalHash

DISTRIBUTIONS = ("uniform", "gaussian")


def dhe_params(dim: int, hidden: int, layers: int = 2, code_dim: int = 1024) -> int:
    """Trainable parameters of `DeepHashEmbedding(V, dim, hidden=..., layers=..., code_dim=...)`
    (independent of V)."""
    first, middle, last = (code_dim + 1) * hidden, (hidden + 1) * hidden, (hidden + 1) * dim
    return first + (layers - 1) * middle + last


class DeepHashEmbedding(TokenEmbedding):
    """k hash codes of the id, normalized, through an MLP (the math is in
    `petra.embeddings.dhe`).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        hidden: h, the width of each hidden layer.
        layers: L, the hidden layers (Mish activations).
        code_dim: k, the hash functions, i.e. the width of the code.
        code_buckets: m, the buckets each hash function maps into.
        distribution: the code's values: `uniform` in [-1, 1], or `gaussian` (Box-Muller;
            needs an even `code_dim`).
        seed: when given, draws the hash functions and the network's initial weights (two
            builds with one seed are equal); None (the default) draws the network from the
            global RNG, as a torch module's, and the hash functions from seed 0.
        padding_idx: an id whose output is the zero vector, or None.

    Raises:
        ValueError: for an unknown distribution, an odd `code_dim` with `gaussian`,
            `hidden`, `layers` or `code_dim` not a whole number of at least 1, or
            `code_buckets` not one of at least 2.
    """

    kind = "dhe"
    computes_rows = True
    budget_knob = ("hidden",)
    report_layouts = (("dhe, k=1024, 2 x 512", {}),)

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """`dhe_params` (independent of V)."""
        o = lambda name: cls.option(options, name)  # noqa: E731
        return dhe_params(dim, o("hidden"), o("layers"), o("code_dim"))

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any hidden width h."""
        layers, code = cls.option(options, "layers"), cls.option(options, "code_dim")
        return [
            Knob(
                range(1, max(budget, 0) // (code + dim + 1) + 2),
                lambda h: dhe_params(dim, h, layers, code),
                lambda h: {"hidden": h},
            )
        ]

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        hidden: int = 512,
        layers: int = 2,
        code_dim: int = 1024,
        code_buckets: int = 1_000_000,
        distribution: str = "uniform",
        seed: int | None = None,
        padding_idx: int | None = None,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}"
            )
        check_count("code_dim", code_dim)
        if distribution == "gaussian" and code_dim % 2:
            raise ValueError(
                f"the Gaussian code pairs its values: code_dim must be even, got {code_dim}"
            )
        check_count("hidden", hidden)
        check_count("layers", layers)
        check_count("code_buckets", code_buckets, minimum=2)
        self.hidden, self.layers, self.distribution = hidden, layers, distribution
        self.hashes = UniversalHash(code_dim, code_buckets, fixed_seed(seed))
        widths = [code_dim, *[hidden] * layers]
        self.network = uninitialized(
            lambda: nn.Sequential(
                *(
                    module
                    for i in range(layers)
                    for module in (nn.Linear(widths[i], widths[i + 1]), nn.Mish())
                ),
                nn.Linear(hidden, dim),
            )
        )
        self.seed = seed
        self.reset_parameters()
        # an empty float buffer that follows .to(dtype/device): the dtype the code is cast to
        self.register_buffer("_dtype_carrier", torch.empty(0), persistent=False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every layer as `nn.Linear`'s own initialization, in order, from `seed` when it is
        given (else from the global RNG)."""
        generator = init_generator(self.seed)
        for module in self.network:
            if isinstance(module, nn.Linear):
                reset_linear_(module, generator)

    def code(self, ids: Tensor) -> Tensor:
        """The fixed code c(id), (N, k), computed in float64, then cast to the model dtype."""
        buckets = self.hashes(ids).double()  # (N, k)
        m = self.hashes.buckets
        if self.distribution == "uniform":
            code = 2.0 * buckets / (m - 1) - 1.0
        else:
            u = (buckets + 1.0) / m
            radius = torch.sqrt(-2.0 * torch.log(u[:, 0::2]))
            angle = 2.0 * math.pi * u[:, 1::2]
            code = torch.stack((radius * angle.cos(), radius * angle.sin()), dim=-1).flatten(1)
        return code.to(self._dtype_carrier.dtype)

    def _embed(self, ids: Tensor) -> Tensor:
        return self.network(self.code(ids))

    def _scale(self, factor: float) -> None:
        last = self.network[-1]
        last.weight.mul_(factor)
        last.bias.mul_(factor)

    def trained_matrix(self) -> Tensor:
        return self.network[-1].weight  # (d, h)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, hidden={self.hidden}, layers={self.layers}, "
            f"code_dim={self.hashes.num_hashes}, distribution={self.distribution!r}"
        )
