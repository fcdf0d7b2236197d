"""Seeded universal hash functions of token ids, saved with the weights.

Each of k functions is h_i(x) = ((a_i x + b_i) mod p) mod m (Carter & Wegman, 1979), with
the Mersenne prime p = 2^31 - 1, a_i in [1, p) and b_i in [0, p) drawn from `seed` on the
CPU generator. a_i and b_i are int64 buffers, so they travel in the state dict and a model
reloaded anywhere hashes every id into the same bucket; ids < p and a_i < 2^31 keep
a_i x + b_i below 2^62, exact in int64 on every device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petra.embeddings.base import check_count

PRIME = 2**31 - 1


class UniversalHash(nn.Module):
    """k seeded hash functions of ids into [0, buckets): `(N,)` ids -> `(N, k)` buckets."""

    def __init__(self, num_hashes: int, buckets: int, seed: int = 0):
        super().__init__()
        check_count("num_hashes", num_hashes)
        check_count("buckets", buckets)
        self.num_hashes, self.buckets = num_hashes, buckets
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("a", torch.randint(1, PRIME, (num_hashes,), generator=generator))
        self.register_buffer("b", torch.randint(0, PRIME, (num_hashes,), generator=generator))

    def forward(self, ids: Tensor) -> Tensor:
        return (ids.long().unsqueeze(-1) * self.a + self.b).remainder(PRIME).remainder(self.buckets)

    def extra_repr(self) -> str:
        return f"num_hashes={self.num_hashes}, buckets={self.buckets}"
