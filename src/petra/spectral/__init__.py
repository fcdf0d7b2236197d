"""The L-product algebra and the L-Transformer encoder (a spectral backbone)."""

from petra.spectral.encoder import FREQ_SCALINGS, WEIGHT_DOMAINS, SpectralEncoder
from petra.spectral.transforms import (
    TRANSFORMS,
    along_slices,
    dct_matrix,
    from_slice_major,
    lidentity,
    lproduct,
    ltranspose,
    to_slice_major,
    transform_matrices,
)

__all__ = [
    "FREQ_SCALINGS",
    "TRANSFORMS",
    "WEIGHT_DOMAINS",
    "SpectralEncoder",
    "along_slices",
    "dct_matrix",
    "from_slice_major",
    "lidentity",
    "lproduct",
    "ltranspose",
    "to_slice_major",
    "transform_matrices",
]
