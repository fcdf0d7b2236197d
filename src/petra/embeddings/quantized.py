"""A table stored in 8 or 4 bits per entry, dequantized at lookup: PyTorch's row-wise
affine quantization, the one its quantized embedding bags use.

For a table T (V x d) and k = `bits`, row v is stored as d codes and an affine map:

    q_vi = round((T_vi - b_v) / s_v)  in {0, ..., 2^k - 1},
    s_v = (max_i T_vi - min_i T_vi) / (2^k - 1),    b_v = min_i T_vi,
    E(v) = s_v q_v + b_v,               so |E(v)_i - T_vi| <= s_v / 2

(for 4 bits up to the float16 rounding of s_v and b_v, which PyTorch's packer stores).

The codes come from PyTorch's own packers (`torch.ops.quantized.embedding_bag_byte_prepack`
for 8 bits, `embedding_bag_4bit_prepack` for 4, whose scale and offset are float16), so a
petra table holds exactly the codes PyTorch would. The lookup is petra's, in plain tensor
operations, rather than PyTorch's quantized embedding modules (`torch.ao.nn.quantized.
Embedding`, `embedding_bag_byte_rowwise_offsets`): those read the packed rows and give no
gradient to the scale and offset, which here are trained (by a tied head, by the recovery of
`petra compress`), and are CPU kernels. The codes are a buffer (frozen), the scales s and
offsets b the 2V trainable parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petra.embeddings.base import TokenEmbedding, check_init_std

BITS = (8, 4)


def quantize_rows(table: Tensor, bits: int) -> tuple[Tensor, Tensor, Tensor]:
    """(codes, scales, offsets) of `table` (V x d) by PyTorch's row-wise packer of `bits`:
    codes (V, d) uint8 in [0, 2^bits), scales and offsets (V,) float32."""
    weight = table.detach().float().cpu().contiguous()
    dim = weight.shape[1]
    if bits == 8:
        packed = torch.ops.quantized.embedding_bag_byte_prepack(weight)  # (V, d + 8)
        affine = packed[:, dim:].contiguous().view(torch.float32)  # (V, 2): scale, offset
        codes = packed[:, :dim]
    else:
        packed = torch.ops.quantized.embedding_bag_4bit_prepack(weight)  # (V, d/2 + 4)
        affine = packed[:, dim // 2 :].contiguous().view(torch.float16).float()
        codes = unpack_nibbles(packed[:, : dim // 2])
    return codes.contiguous(), affine[:, 0].contiguous(), affine[:, 1].contiguous()


def pack_nibbles(codes: Tensor) -> Tensor:
    """(..., d) codes in [0, 16) -> (..., d/2) bytes, the even column in the low nibble (the
    order of PyTorch's 4-bit rows)."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_nibbles(packed: Tensor) -> Tensor:
    """The inverse of `pack_nibbles`: (..., d/2) bytes -> (..., d) codes."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)


class QuantizedEmbedding(TokenEmbedding):
    """A `V x d` table in `bits` (8 or 4) per entry with a per-row scale and offset,
    E(v) = s_v q_v + b_v (see `petra.embeddings.quantized`).

    It is meant to start from a pretrained table (`from_table`, the `petra compress` swap);
    built fresh, it quantizes a table drawn from N(0, init_std^2).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding (even for 4 bits: two codes share a byte).
        bits: bits per entry, 8 or 4.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of the table a fresh build quantizes.

    Raises:
        ValueError: for `bits` other than 8 or 4, an odd d with 4 bits, or a negative
            `init_std`.
    """

    kind = "quantized"
    budget_knob = ()  # stored in bits, not sized by trainable parameters
    report_layouts = (("quantized, 8 bits", {}), ("quantized, 4 bits", {"bits": 4}))
    starts_from_table = True
    table_options = ("bits",)

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """2 V: a scale and an offset per row (the codes are not trained)."""
        return 2 * vocab_size

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options):
        """None: a quantized table keeps every entry; its size is set by `bits`, in bytes."""
        return []

    @classmethod
    def smaller_layout_hint(cls, options: dict) -> str:
        return (
            ": it trains 2 V scales and offsets and stores V x d codes, in `bits` each; compare "
            "it by bytes (`petra compress`)"
        )

    @classmethod
    def _from_table(
        cls, table: Tensor, *, padding_idx: int | None = None, **options
    ) -> QuantizedEmbedding:
        """The table quantized row by row (its padding row is zero at lookup)."""
        module = cls(*table.shape, padding_idx=padding_idx, **options)
        module.load_table_(table)
        return module

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        bits: int = 8,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        if bits not in BITS:
            raise ValueError(f"bits must be one of {BITS}, got {bits}")
        if bits == 4 and dim % 2:
            raise ValueError(f"4-bit codes pack two to a byte: the width must be even, got {dim}")
        check_init_std(init_std)
        self.bits, self.init_std = bits, init_std
        width = dim if bits == 8 else dim // 2
        self.register_buffer("codes", torch.zeros(vocab_size, width, dtype=torch.uint8))
        self.scales = nn.Parameter(torch.zeros(vocab_size))
        self.offsets = nn.Parameter(torch.zeros(vocab_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Quantize a table drawn from N(0, init_std^2) (the global RNG)."""
        table = torch.empty(self.num_embeddings, self.embedding_dim)
        self.load_table_(nn.init.normal_(table, std=self.init_std))

    @torch.no_grad()
    def load_table_(self, table: Tensor) -> QuantizedEmbedding:
        """Store `table` (V x d) quantized, in place: codes, scales and offsets."""
        if tuple(table.shape) != (self.num_embeddings, self.embedding_dim):
            raise ValueError(
                f"the table must be {(self.num_embeddings, self.embedding_dim)}, got "
                f"{tuple(table.shape)}"
            )
        codes, scales, offsets = quantize_rows(table, self.bits)
        self.codes.copy_(codes if self.bits == 8 else pack_nibbles(codes))
        self.scales.copy_(scales)
        self.offsets.copy_(offsets)
        return self

    def _codes(self, ids: Tensor) -> Tensor:
        rows = self.codes.index_select(0, ids)
        return rows if self.bits == 8 else unpack_nibbles(rows)

    def _embed(self, ids: Tensor) -> Tensor:
        scales, offsets = self.scales.index_select(0, ids), self.offsets.index_select(0, ids)
        return self._codes(ids).to(scales.dtype) * scales[:, None] + offsets[:, None]

    def _scale(self, factor: float) -> None:
        self.scales.mul_(factor)
        self.offsets.mul_(factor)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"
