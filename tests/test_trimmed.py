"""The trimmed table: the kept set from corpus counts, dropped ids on the unknown token's row,
and a start from a pretrained table (`petra.embeddings.trimmed`)."""

import pytest
import torch

from petra.embeddings import build_embedding
from petra.embeddings.trimmed import TrimmedEmbedding, kept_ids

V, D = 12, 4
COUNTS = torch.tensor([0, 5, 0, 9, 1, 5, 0, 0, 2, 0, 7, 0])  # ids 1, 3, 4, 5, 8, 10 occur
UNK = 2


def test_the_kept_ids_are_the_most_frequent_with_the_unknown_token():
    assert kept_ids(V, None, UNK, COUNTS).tolist() == [3, 10, 1, 5, 8, 4, UNK]  # ties by id
    assert kept_ids(V, 3, UNK, COUNTS).tolist() == [3, 10, UNK]  # unk takes the last place
    assert kept_ids(V, 3, 3, COUNTS).tolist() == [3, 10, 1]  # unk kept by its count
    assert kept_ids(V, 4, UNK, None).tolist() == [0, 1, 2, 3]  # no counts: the first R ids
    assert kept_ids(V, 8, UNK, COUNTS).tolist() == [3, 10, 1, 5, 8, 4, 0, UNK]  # R rows, exactly


def test_rows_beyond_the_corpus_are_kept_so_a_save_loads_with_its_settings():
    emb = TrimmedEmbedding(V, D, token_counts=COUNTS, rows=9, unk_id=UNK)
    assert emb.rows.shape == (9, D) and emb.param_report().trainable_params == 9 * D
    state = {"embedding." + k: v for k, v in emb.state_dict().items()}
    TrimmedEmbedding.from_saved(V, D, state, "embedding.", rows=9, unk_id=UNK)  # no refusal


def test_a_start_from_a_table_keeps_its_rows_and_drops_the_rest_to_the_unknown_row():
    table = torch.randn(V, D)
    emb = TrimmedEmbedding.from_table(table, token_counts=COUNTS, unk_id=UNK)
    out = emb(torch.arange(V)).detach()
    kept = [1, 3, 4, 5, 8, 10, UNK]
    for v in range(V):
        torch.testing.assert_close(out[v], table[v if v in kept else UNK], rtol=0, atol=0)
    assert emb.kept_mask().tolist() == [v in kept for v in range(V)]
    assert emb.param_report().trainable_params == len(kept) * D
    assert emb.param_report().stored_bytes == len(kept) * D * 4 + V * 4  # rows, int32 map


def test_a_saved_trimmed_table_loads_without_its_counts():
    emb = TrimmedEmbedding.from_table(torch.randn(V, D), token_counts=COUNTS, rows=4, unk_id=UNK)
    state = {"embedding." + k: v for k, v in emb.state_dict().items()}
    loaded = TrimmedEmbedding.from_saved(V, D, state, "embedding.", unk_id=UNK)
    loaded.load_state_dict(emb.state_dict())
    assert torch.equal(loaded.table(), emb.table())
    assert torch.equal(loaded.kept_ids(), torch.tensor([3, 10, 1, UNK]))
    with pytest.raises(ValueError, match="holds 4 rows, its settings say rows=5"):
        TrimmedEmbedding.from_saved(V, D, state, "embedding.", rows=5)


def test_gradients_reach_the_kept_rows_dropped_ids_train_the_unknown_row():
    emb = TrimmedEmbedding(V, D, token_counts=COUNTS, rows=3, unk_id=UNK)
    emb(torch.tensor([0, 6])).sum().backward()  # two dropped ids
    grad = emb.rows.grad
    assert torch.all(grad[:2] == 0) and torch.all(grad[2] == 2)  # row 2 is unk's: 2 uses


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rows": 0}, r"rows must be a whole number of at least 1, got 0"),
        ({"rows": 13}, r"rows must be a whole number in \[1, V = 12\]"),
        ({"unk_id": 12}, r"unk_id must be a token id in \[0, 12\)"),
        ({"token_counts": torch.ones(5)}, "token_counts must be 12 counts >= 0"),
    ],
)
def test_what_cannot_be_kept_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        build_embedding("trimmed", V, D, **options)
