"""The quantized table against PyTorch's own row-wise quantized embeddings, and the bound of
its rounding (`petra.embeddings.quantized`)."""

import pytest
import torch

from petra.embeddings import QuantizedEmbedding, build_embedding
from petra.embeddings.quantized import pack_nibbles, unpack_nibbles

V, D = 53, 12
UNPACK = {8: torch.ops.quantized.embedding_bag_byte_unpack,
          4: torch.ops.quantized.embedding_bag_4bit_unpack}  # fmt: skip
PREPACK = {8: torch.ops.quantized.embedding_bag_byte_prepack,
           4: torch.ops.quantized.embedding_bag_4bit_prepack}  # fmt: skip


def pretrained(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=generator) * torch.rand(V, 1, generator=generator) * 3


@pytest.mark.parametrize("bits", [8, 4])
def test_the_table_is_pytorchs_dequantized_table(bits):
    table = pretrained()
    emb = QuantizedEmbedding.from_table(table, bits=bits)
    expected = UNPACK[bits](PREPACK[bits](table))
    torch.testing.assert_close(emb.table().detach(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 4])
def test_a_lookup_is_pytorchs_quantized_embedding_bag_of_one_row(bits):
    table = pretrained(1)
    emb = QuantizedEmbedding.from_table(table, bits=bits)
    ids = torch.tensor([5, 0, 52, 5, 17])
    lookup = (torch.ops.quantized.embedding_bag_byte_rowwise_offsets if bits == 8
              else torch.ops.quantized.embedding_bag_4bit_rowwise_offsets)  # fmt: skip
    bags = lookup(PREPACK[bits](table), ids, torch.arange(len(ids)), False, 0, False, None,
                  None, False)  # fmt: skip
    torch.testing.assert_close(emb(ids).detach(), bags, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 4])
def test_every_entry_lies_within_half_a_step_of_the_table(bits):
    """|E(v)_i - T_vi| <= s_v / 2, s_v = (max_i T_vi - min_i T_vi) / (2^bits - 1) (for 4 bits
    s_v and b_v are rounded to float16, which moves the grid by a little more)."""
    table = pretrained(2)
    emb = QuantizedEmbedding.from_table(table, bits=bits)
    step = (table.amax(1) - table.amin(1)) / (2**bits - 1)
    slack = 1e-5 if bits == 8 else 2e-3 * table.abs().amax(1)
    error = (emb.table().detach() - table).abs().amax(1)
    assert torch.all(error <= step / 2 + slack)
    assert emb.codes.shape == (V, D if bits == 8 else D // 2)  # 4 bits: two codes to a byte


def test_more_bits_give_a_closer_table():
    table = pretrained(3)
    errors = [
        (QuantizedEmbedding.from_table(table, bits=bits).table().detach() - table).norm()
        for bits in (4, 8)
    ]
    assert errors[1] < errors[0] / 8  # each bit halves the step: 16 times finer


def test_nibbles_pack_two_codes_to_a_byte_low_first():
    codes = torch.randint(0, 16, (7, 10), dtype=torch.uint8)
    packed = pack_nibbles(codes)
    assert packed.shape == (7, 5) and torch.equal(packed[:, 0] & 15, codes[:, 0])
    assert torch.equal(unpack_nibbles(packed), codes)


def test_the_scales_and_offsets_train_and_the_codes_stay():
    emb = QuantizedEmbedding.from_table(pretrained(), bits=4)
    codes = emb.codes.clone()
    assert {name for name, _ in emb.named_parameters()} == {"scales", "offsets"}
    optimizer = torch.optim.SGD(emb.parameters(), lr=0.1)
    loss = (emb.table() @ torch.randn(D, 3)).square().mean()  # a tied head's use
    loss.backward()
    optimizer.step()
    assert torch.equal(emb.codes, codes)
    assert emb.param_report().trainable_params == 2 * V


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bits": 3}, "bits must be one of (8, 4), got 3"),
        ({"bits": 4, "dim": 7}, "the width must be even, got 7"),
        ({"init_std": -1.0}, "init_std must be a finite number"),
    ],
)
def test_a_layout_it_cannot_store_is_refused(options, message):
    dim = options.pop("dim", D)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_embedding("quantized", V, dim, **options)


def test_a_swap_takes_bits_only():
    with pytest.raises(ValueError, match=r"takes bits only, not \['rank'\]"):
        QuantizedEmbedding.from_table(pretrained(), rank=2)
