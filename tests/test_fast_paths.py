"""The fast paths of the computed embeddings against the plain ones: work per distinct id,
the evaluation table (and when it must be rebuilt), no id check, and a graph without breaks."""

import copy
import pickle

import pytest
import torch

from petra import build_embedding

V, D = 97, 16
TOKENS = [bytes([i % 256]) * (1 + i % 5) for i in range(V)]

COMPUTED = {
    "fourier-linear": dict(kind="fourier"),
    "fourier-geglu-norm-permuted": dict(
        kind="fourier", refine="geglu", expansion=0.5, final_norm=True, id_order="permuted"
    ),
    "kronecker-sparse": dict(kind="kronecker", token_bytes=TOKENS, pos_dim=4),
    "kronecker-dense-factorized": dict(
        kind="kronecker", token_bytes=TOKENS, pos_dim=4, mode="dense", rank=3
    ),
    "dhe": dict(kind="dhe", hidden=8, code_dim=12),
    "tt": dict(kind="tt", rank=3),
}


def make(name: str, **extra):
    options = {**COMPUTED[name], **extra}
    torch.manual_seed(0)
    return build_embedding(options.pop("kind"), V, D, **options)


def repeated_ids() -> torch.Tensor:
    """A (4, 25) batch of 12 distinct ids, each many times, the padding id 0 among them."""
    return torch.randint(0, 12, (4, 25), generator=torch.Generator().manual_seed(1))


def plain(embedding):
    """The row-by-row path: no deduplication, no evaluation table."""
    embedding.dedupe = False
    return embedding


@pytest.fixture(params=sorted(COMPUTED))
def name(request):
    return request.param


def test_per_distinct_id_outputs_and_gradients_equal_the_row_by_row_ones(name):
    fast, slow = make(name, padding_idx=0), plain(make(name, padding_idx=0))
    ids = repeated_ids()
    weights = torch.randn(*ids.shape, D, generator=torch.Generator().manual_seed(2))
    out_fast, out_slow = fast(ids), slow(ids)
    torch.testing.assert_close(out_fast, out_slow, rtol=1e-5, atol=1e-6)
    assert not out_fast[ids == 0].any()  # padding still embeds to zero
    (out_fast * weights).sum().backward()
    (out_slow * weights).sum().backward()
    for (label, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=label)


def test_the_evaluation_table_is_a_lookup_of_the_current_table(name):
    emb = make(name).eval()
    ids = repeated_ids()
    with torch.no_grad():
        out = emb(ids)
        assert emb._eval_table is not None
        torch.testing.assert_close(out, emb.table()[ids])
        assert emb(ids).data_ptr() != out.data_ptr() and torch.equal(emb(ids), out)


def test_the_evaluation_table_is_never_used_in_training_or_with_gradients(name):
    emb = make(name)
    ids = repeated_ids()
    assert emb(ids).requires_grad and emb._eval_table is None  # training mode
    emb.eval()
    assert emb(ids).requires_grad and emb._eval_table is None  # gradients enabled


def test_a_tied_head_reads_the_kept_table_in_evaluation_and_a_fresh_one_in_training(name):
    emb = make(name)
    trained = emb.head_table()
    assert trained.requires_grad and emb._eval_table is None
    emb.eval()
    with torch.no_grad():
        kept = emb.head_table()
        assert emb.head_table() is kept  # once, not per call (a head runs per new token)
        torch.testing.assert_close(kept, trained.detach())
        next(emb.parameters()).add_(0.25)  # the parameters change: the table follows
        torch.testing.assert_close(emb.head_table(), plain(copy.deepcopy(emb)).train().table())
    assert emb.head_table().requires_grad  # gradients enabled: computed, with its graph


def _eval_out(emb, ids):
    emb.eval()
    with torch.no_grad():
        return emb(ids)


def _reference(name, emb, ids):
    """What the embedding computes now, row by row, with no kept table."""
    copy = plain(make(name))
    copy.load_state_dict(emb.state_dict())
    copy.to(next(emb.parameters()).dtype)
    with torch.no_grad():
        return copy(ids)


def test_an_optimizer_step_a_load_and_an_in_place_change_rebuild_the_table(name):
    emb = make(name)
    ids = repeated_ids()
    before = _eval_out(emb, ids)

    emb.train()  # an optimizer step
    optimizer = torch.optim.AdamW(emb.parameters(), lr=0.1)
    emb(ids).square().sum().backward()
    optimizer.step()
    after_step = _eval_out(emb, ids)
    assert not torch.allclose(after_step, before)
    torch.testing.assert_close(after_step, _reference(name, emb, ids))

    other = make(name)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    emb.load_state_dict(other.state_dict())  # a load
    torch.testing.assert_close(_eval_out(emb, ids), _reference(name, emb, ids))

    with torch.no_grad():  # an in-place change
        next(emb.parameters()).add_(0.25)
    torch.testing.assert_close(_eval_out(emb, ids), _reference(name, emb, ids))


def test_a_dtype_move_rebuilds_the_table(name):
    emb = make(name)
    ids = repeated_ids()
    assert _eval_out(emb, ids).dtype == torch.float32
    emb.to(torch.float64)
    out = _eval_out(emb, ids)
    assert out.dtype == torch.float64 and emb.eval_table().dtype == torch.float64
    torch.testing.assert_close(out, _reference(name, emb, ids))


def test_a_change_through_data_needs_clear_eval_table():
    name = "fourier-linear"
    emb = make(name)
    ids = repeated_ids()
    before = _eval_out(emb, ids)
    emb.refine.weight.data.add_(1.0)  # bypasses the version counter: documented
    assert torch.equal(_eval_out(emb, ids), before)
    emb.clear_eval_table()
    torch.testing.assert_close(_eval_out(emb, ids), _reference(name, emb, ids))


def test_validate_false_skips_the_id_check():
    emb = make("fourier-linear")
    with pytest.raises(ValueError, match="outside the vocabulary range"):
        emb(torch.tensor([V]))
    emb.validate = False
    assert emb(torch.tensor([V])).shape == (1, D)  # unchecked: the caller's to rule out


@pytest.mark.parametrize(
    "kind, options",
    [
        ("fourier", {}),
        ("kronecker", {"token_bytes": TOKENS, "pos_dim": 4}),
        ("dhe", {"hidden": 8, "code_dim": 12}),
        ("tt", {"rank": 3}),
        ("qr", {}),
        ("hash", {"buckets": 9}),
    ],
)
def test_without_the_id_check_the_forward_compiles_to_one_graph(kind, options):
    emb = build_embedding(kind, V, D, **options)
    emb.validate = False
    ids = repeated_ids()
    compiled = torch.compile(emb, fullgraph=True, backend="eager")  # a graph break raises
    torch.testing.assert_close(compiled(ids), emb(ids))


def test_autocast_neither_builds_nor_uses_the_table(name):
    emb = make(name).eval()
    ids = repeated_ids()
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            emb(ids)
        assert emb._eval_table is None  # a table built here would carry bfloat16 out
        out = emb(ids)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _reference(name, emb, ids))


def test_inference_mode_builds_and_uses_the_table(name):
    with torch.inference_mode():  # inference tensors keep no version counter
        emb = make(name).eval()
        ids = repeated_ids()
        torch.testing.assert_close(emb(ids), emb.table()[ids])
        assert emb._eval_table is not None


def test_training_a_move_a_copy_and_a_pickle_leave_the_table_behind(name):
    emb = make(name)
    ids = repeated_ids()
    _eval_out(emb, ids)
    assert copy.deepcopy(emb)._eval_table is None
    assert pickle.loads(pickle.dumps(emb))._eval_table is None
    assert emb._eval_table is not None
    emb.to(torch.float64)
    assert emb._eval_table is None
    _eval_out(emb, ids)
    emb.train()
    assert emb._eval_table is None


def test_a_new_padding_id_rebuilds_the_table():
    name = "fourier-linear"
    emb = make(name)
    ids = repeated_ids()
    assert _eval_out(emb, ids)[ids == 3].any()
    emb.padding_idx = 3
    assert not _eval_out(emb, ids)[ids == 3].any()
