"""Transforms along the slice axis and the L-product of third-order tensors.

Kernfeld, Kilmer & Aeron, *Tensor-tensor products with invertible linear transforms*, Linear
Algebra Appl. 485 (2015). For an invertible p x p matrix M, a tensor A of shape (n1, n2, p)
has the transform A_hat = A x_3 M, i.e. A_hat[:, :, k] = sum_j M[k, j] A[:, :, j], and

    A *_L B = L^-1( A_hat B_hat )    facewise: (A_hat B_hat)_k = A_hat_k B_hat_k
    I_L     = L^-1( identity in every face )
    A^T     = the facewise transpose (M acts on the third axis only, so it commutes)

Transforms:
- `dct`: the orthonormal DCT-II, M[k, j] = c_k cos(pi (2j + 1) k / (2p)), c_0 = sqrt(1/p),
  c_k = sqrt(2/p) otherwise; M^-1 = M^T.
- `identity`: M = I.
- `random`: a seeded random orthogonal matrix (QR of a Gaussian, signs fixed).
- `cosine`: the original, non-orthogonal transform of Kernfeld et al.,
  M = W^-1 C (I + Z), with C the orthonormal DCT-II, W = diag(C[:, 0]) and Z the upshift
  matrix (ones on the first superdiagonal); M^-1 = (I + Z)^-1 C^T W, exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TRANSFORMS = ("dct", "identity", "random", "cosine")


def dct_matrix(p: int) -> Tensor:
    """Orthonormal DCT-II, (p, p), float64."""
    k = torch.arange(p, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(p, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * j + 1) * k / (2 * p)) * math.sqrt(2 / p)
    matrix[0] /= math.sqrt(2)
    return matrix


def transform_matrices(kind: str, p: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(M, M^-1), both (p, p) float64."""
    if p < 1:
        raise ValueError(f"the number of slices must be positive, got {p}")
    if kind == "dct":
        matrix = dct_matrix(p)
        return matrix, matrix.T.clone()
    if kind == "identity":
        eye = torch.eye(p, dtype=torch.float64)
        return eye, eye.clone()
    if kind == "random":
        generator = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(p, p, generator=generator, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))  # a unique, Haar-distributed orthogonal matrix
        return q, q.T.clone()
    if kind == "cosine":
        c = dct_matrix(p)
        upshift = torch.eye(p, dtype=torch.float64) + torch.diag(
            torch.ones(p - 1, dtype=torch.float64), 1
        )
        w = torch.diag(c[:, 0])
        matrix = torch.diag(1 / c[:, 0]) @ c @ upshift
        inverse = torch.linalg.solve_triangular(upshift, c.T @ w, upper=True)
        return matrix, inverse
    raise ValueError(f"unknown transform {kind!r}; choose one of {TRANSFORMS}")


def along_slices(x: Tensor, matrix: Tensor) -> Tensor:
    """x[..., j] -> sum_j matrix[k, j] x[..., j]: a p x p matrix along the last axis, computed
    in float32 at least (float64 for float64 input), returned in x's dtype."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    return (x.to(dtype) @ matrix.T.to(device=x.device, dtype=dtype)).to(x.dtype)


def to_slice_major(x: Tensor, matrix: Tensor) -> Tensor:
    """x (..., p) -> x_hat (p, ...), x_hat[k, ...] = sum_j matrix[k, j] x[..., j]: `along_slices`
    with the slice axis moved first, as one (p x p) @ (p x N) product whose output is already
    contiguous (no permuted copy later). Float32 at least inside, returned in x's dtype."""
    p = x.shape[-1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    rows = x.to(dtype).reshape(-1, p)  # (N, p)
    x_hat = matrix.to(device=x.device, dtype=dtype) @ rows.T  # (p, N)
    return x_hat.view(p, *x.shape[:-1]).to(x.dtype)


def from_slice_major(x_hat: Tensor, matrix: Tensor) -> Tensor:
    """x_hat (p, ...) -> x (..., p), x[..., j] = sum_k matrix[j, k] x_hat[k, ...]: the inverse of
    `to_slice_major` given M^-1, as one (N x p) @ (p x p) product with a contiguous output."""
    p = x_hat.shape[0]
    dtype = torch.promote_types(x_hat.dtype, torch.float32)
    columns = x_hat.to(dtype).reshape(p, -1)  # (p, N)
    x = columns.T @ matrix.T.to(device=x_hat.device, dtype=dtype)  # (N, p)
    return x.view(*x_hat.shape[1:], p).to(x_hat.dtype)


def lproduct(a: Tensor, b: Tensor, matrix: Tensor, inverse: Tensor) -> Tensor:
    """A *_L B for A (n1, n2, p) and B (n2, n3, p) -> (n1, n3, p)."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[1] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"cannot L-multiply shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a_hat, b_hat = along_slices(a, matrix), along_slices(b, matrix)
    c_hat = torch.einsum("ijk,jlk->ilk", a_hat, b_hat)  # facewise products
    return along_slices(c_hat, inverse)


def ltranspose(a: Tensor) -> Tensor:
    """A^T: (n1, n2, p) -> (n2, n1, p), facewise."""
    return a.transpose(0, 1)


def lidentity(n: int, inverse: Tensor) -> Tensor:
    """I_L (n, n, p): the identity matrix in every face of the transform domain."""
    p = inverse.shape[0]
    faces = torch.eye(n, dtype=inverse.dtype).unsqueeze(-1).expand(n, n, p)
    return along_slices(faces, inverse)
