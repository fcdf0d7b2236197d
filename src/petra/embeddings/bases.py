"""Feature bases T(x): a normalized token position x in [-1, 1] -> d fixed features.

Each basis is a module mapping float64 x of shape (N,) to float64 features (N, d), finite for
every x in [-1, 1] and every d up to 4096 (closed forms or stable normalized recurrences,
never raw polynomials). float64 keeps high harmonics of neighbouring ids apart; the caller
casts to the model dtype.

- `fourier` (the PETE paper): feature i is sin(k pi x) for even i and cos(k pi x) for odd i,
  with harmonic k = floor(i / 2) + 1. Every feature has period 2 in x.
- `chebyshev`: T_n(x) = cos(n arccos x), n = 1..d (the constant T_0 is left out, as the
  Fourier basis has no constant harmonic). |T_n| <= 1.
- `legendre`: orthonormal Legendre polynomials sqrt((2n + 1) / 2) P_n(x), n = 1..d, by the
  three-term recurrence (n + 1) P_{n+1} = (2n + 1) x P_n - n P_{n-1}, stable on [-1, 1].
- `hermite`: Hermite functions psi_n(t) = (2^n n! sqrt(pi))^(-1/2) H_n(t) exp(-t^2 / 2),
  n = 0..d-1, at t = x sqrt(2d + 1) so that [-1, 1] spans the oscillating region of all d of
  them. Computed by psi_{n+1} = sqrt(2/(n+1)) t psi_n - sqrt(n/(n+1)) psi_{n-1} with a running
  log-scale, so neither exp(-t^2 / 2) underflow nor H_n overflow can occur.
- `random` (the PETE authors' ablation): cos(pi w_i x + b_i) with seeded frequencies
  w_i ~ N(0, (d/4)^2), covering about the band of the Fourier harmonics 1..d/2, and phases
  b_i ~ U[0, 2 pi), drawn from `seed` on the CPU generator. The seed is an integer buffer, so
  it is saved with the weights and `model.to(torch.bfloat16)` cannot round w and b.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FeatureBasis(nn.Module):
    name: str = "abstract"

    def __init__(self, dim: int):
        super().__init__()
        if dim < 1:
            raise ValueError(f"basis width must be positive, got {dim}")
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """(N,) float64 in [-1, 1] -> (N, dim) float64."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class FourierBasis(FeatureBasis):
    name = "fourier"

    def __init__(self, dim: int):
        if dim % 2:
            raise ValueError(f"the Fourier basis pairs sin and cos: dim must be even, got {dim}")
        super().__init__(dim)

    def forward(self, x: Tensor) -> Tensor:
        harmonics = torch.arange(1, self.dim // 2 + 1, dtype=x.dtype, device=x.device)
        angle = math.pi * x.unsqueeze(-1) * harmonics  # (N, d/2)
        return torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)  # (N, d) interleaved


class ChebyshevBasis(FeatureBasis):
    name = "chebyshev"

    def forward(self, x: Tensor) -> Tensor:
        degrees = torch.arange(1, self.dim + 1, dtype=x.dtype, device=x.device)
        theta = torch.arccos(x.clamp(-1.0, 1.0)).unsqueeze(-1)  # (N, 1)
        return torch.cos(theta * degrees)  # (N, d)


class LegendreBasis(FeatureBasis):
    name = "legendre"

    def forward(self, x: Tensor) -> Tensor:
        out = x.new_empty(self.dim, x.numel())  # rows are degrees 1..d
        previous, current = torch.ones_like(x), x.clone()  # P_0, P_1
        for n in range(1, self.dim + 1):
            out[n - 1] = math.sqrt((2 * n + 1) / 2) * current
            previous, current = current, ((2 * n + 1) * x * current - n * previous) / (n + 1)
        return out.T


class HermiteBasis(FeatureBasis):
    name = "hermite"

    _RESCALE_ABOVE = 1e100

    def forward(self, x: Tensor) -> Tensor:
        t = x * math.sqrt(2 * self.dim + 1)
        out = x.new_empty(self.dim, x.numel())
        # psi_n = value_n * exp(log_scale); start from psi_{-1} = 0, psi_0 = pi^(-1/4) e^(-t^2/2)
        previous = torch.zeros_like(t)
        current = torch.full_like(t, math.pi**-0.25)
        log_scale = -0.5 * t * t
        for n in range(self.dim):
            out[n] = current * torch.exp(log_scale)
            following = math.sqrt(2 / (n + 1)) * t * current - math.sqrt(n / (n + 1)) * previous
            factor = torch.where(following.abs() > self._RESCALE_ABOVE, following.abs(), 1.0)
            previous, current = current / factor, following / factor
            log_scale = log_scale + torch.log(factor)
        return out.T


class RandomFourierBasis(FeatureBasis):
    name = "random"

    def __init__(self, dim: int, seed: int = 0):
        super().__init__(dim)
        self.register_buffer("seed", torch.tensor(seed, dtype=torch.int64))
        self._drawn: tuple[int, torch.device, Tensor, Tensor] | None = None

    def frequencies_and_phases(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(w, b), float64, drawn from the CPU generator seeded with `seed`, kept per device."""
        seed = int(self.seed)
        if self._drawn is None or self._drawn[:2] != (seed, device):
            generator = torch.Generator().manual_seed(seed)
            freqs = torch.randn(self.dim, generator=generator, dtype=torch.float64) * (self.dim / 4)
            phases = torch.rand(self.dim, generator=generator, dtype=torch.float64) * (2 * math.pi)
            self._drawn = (seed, device, freqs.to(device), phases.to(device))
        return self._drawn[2], self._drawn[3]

    def forward(self, x: Tensor) -> Tensor:
        freqs, phases = self.frequencies_and_phases(x.device)
        return torch.cos(math.pi * x.unsqueeze(-1) * freqs + phases)  # (N, d)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seed={int(self.seed)}"


BASES: dict[str, type[FeatureBasis]] = {
    cls.name: cls
    for cls in (FourierBasis, ChebyshevBasis, LegendreBasis, HermiteBasis, RandomFourierBasis)
}


def build_basis(name: str, dim: int, seed: int = 0) -> FeatureBasis:
    if name not in BASES:
        raise ValueError(f"unknown basis {name!r}; choose one of {sorted(BASES)}")
    return RandomFourierBasis(dim, seed) if name == "random" else BASES[name](dim)
