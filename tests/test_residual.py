"""The byte code plus a low-rank residual: its start from a table against the closed form
(the base's own least-squares fit, then the Eckart-Young rank-r SVD of what it leaves), its
rebuild from a saved state, its resize and its refusals."""

import pytest
import torch

from petra.embeddings import size_for_budget
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.ngram import NgramHashEmbedding
from petra.embeddings.residual import ResidualEmbedding
from petra.hf.swap import fit_to_table

WORDS = (
    "the quick brown fox jumps over the lazy dog while a man is playing a guitar and "
    "the children run running runs ran into town to buy bread butter milk and eggs"
).split()
PIECES = sorted({w.encode() for w in WORDS} | {b" " + w.encode() for w in WORDS} | {b"[UNK]"})
V, D = len(PIECES), 12
BASE_OF = {"kronecker": KroneckerEmbedding, "ngram": NgramHashEmbedding}


def _table_and_counts(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(V, D, generator=generator)
    counts = torch.randint(0, 6, (V,), generator=generator)
    counts[0] = 1  # some ids unseen, never all
    return table, counts


@pytest.mark.parametrize("base", ["kronecker", "ngram"])
@pytest.mark.parametrize("rank", [1, 3, 7])
def test_the_start_is_the_base_fit_plus_the_best_rank_r_residual(base, rank):
    table, counts = _table_and_counts()
    embedding = ResidualEmbedding.from_token_bytes(PIECES, D, base=base, rank=rank)
    fit_to_table(embedding, table, counts)
    alone = BASE_OF[base].build(V, D, token_bytes=PIECES)  # the base, fitted on its own
    fit_to_table(alone, table, counts)
    fitted = alone.table().detach().double()
    left, values, right = torch.linalg.svd(table.double() - fitted, full_matrices=False)
    expected = fitted + (left[:, :rank] * values[:rank]) @ right[:rank]
    got = embedding.table().detach().double()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    # Eckart-Young: the error left is the energy of the singular values beyond r
    error = (table.double() - got).pow(2).sum()
    torch.testing.assert_close(error, values[rank:].pow(2).sum(), rtol=1e-4, atol=1e-6)


def test_at_full_rank_the_start_is_the_table_and_the_fit_error_says_so():
    table, counts = _table_and_counts(1)
    embedding = ResidualEmbedding.from_token_bytes(PIECES, D, rank=D)
    assert fit_to_table(embedding, table, counts) < 1e-5
    torch.testing.assert_close(embedding.table().detach(), table, rtol=0, atol=1e-4)


def test_a_rank_above_the_table_rank_keeps_its_extra_components_at_zero():
    table, counts = _table_and_counts(2)
    embedding = ResidualEmbedding.from_token_bytes(PIECES, D, rank=D + 3)
    fit_to_table(embedding, table, counts)
    assert embedding.left[:, D:].abs().max() == 0
    torch.testing.assert_close(embedding.table().detach(), table, rtol=0, atol=1e-4)


@pytest.mark.parametrize("base", ["kronecker", "ngram"])
def test_a_saved_state_rebuilds_without_the_tokenizer_bit_identical(base):
    embedding = ResidualEmbedding.from_token_bytes(PIECES, D, base=base, rank=4, seed=3)
    with torch.no_grad():
        embedding.left.normal_()  # a trained residual, not the initial one
    state = {k: v.clone() for k, v in embedding.state_dict().items()}
    loaded = ResidualEmbedding.from_saved(V, D, state, base=base, rank=4)
    loaded.load_state_dict(state)
    assert torch.equal(loaded.table(), embedding.table())
    with pytest.raises(ValueError, match="left holds 4 columns, its settings say rank=5"):
        ResidualEmbedding.from_saved(V, D, state, base=base, rank=5)
    with pytest.raises(ValueError, match="no left"):
        ResidualEmbedding.from_saved(V, D, {}, base=base)


def test_a_resize_keeps_every_row_and_starts_a_new_token_at_its_byte_code():
    embedding = ResidualEmbedding.from_token_bytes(PIECES, D, rank=4)
    with torch.no_grad():
        embedding.left.normal_()
    grown = embedding.resized([*PIECES, b" zebra"])
    assert grown.num_embeddings == V + 1
    torch.testing.assert_close(grown.table()[:V], embedding.table(), rtol=0, atol=1e-6)
    torch.testing.assert_close(grown(torch.tensor([V])), grown.base(torch.tensor([V])))


def test_parameters_are_the_base_plus_the_two_factors():
    for base in ("kronecker", "ngram"):
        embedding = ResidualEmbedding.from_token_bytes(PIECES, D, base=base, rank=5)
        count = sum(p.numel() for p in embedding.parameters())
        alone = sum(p.numel() for p in BASE_OF[base].build(V, D, token_bytes=PIECES).parameters())
        assert count == alone + 5 * (V + D)
        assert ResidualEmbedding.params_for(V, D, base=base, rank=5) == count


def test_an_unknown_base_is_refused_by_name_wherever_it_is_read():
    """Every reader of `base` (the closed-form count, the budget, the fit check, the build
    and the rebuild from a checkpoint) refuses an unknown one in one message, not KeyError."""
    message = r"^unknown base 'foo'; choose one of \('kronecker', 'ngram'\)$"
    state = ResidualEmbedding.from_token_bytes(PIECES, D, rank=2).state_dict()
    for read in (
        lambda: ResidualEmbedding.params_for(V, D, base="foo", rank=2),
        lambda: size_for_budget("residual", V, D, 10_000, base="foo"),
        lambda: ResidualEmbedding.has_least_squares_map({"base": "foo"}),
        lambda: ResidualEmbedding.from_token_bytes(PIECES, D, base="foo"),
        lambda: ResidualEmbedding.from_saved(V, D, state, base="foo"),
        lambda: ResidualEmbedding.check_options(D, base="foo"),
    ):
        with pytest.raises(ValueError, match=message):
            read()


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown base 'fourier'"):
        ResidualEmbedding.from_token_bytes(PIECES, D, base="fourier")
    with pytest.raises(ValueError, match="rank must be a whole number of at least 1"):
        ResidualEmbedding.from_token_bytes(PIECES, D, rank=0)
    padded = KroneckerEmbedding.from_token_bytes(PIECES, D, padding_idx=0)
    with pytest.raises(ValueError, match="without padding"):
        ResidualEmbedding(padded)
