"""Every embedding kind honours the contract of `petra.embeddings.base`: every kind of the
registry, each at the variants below and any kind without one at its defaults (the kind of
examples/own_kind.py among them: the conftest registers it)."""

import numpy as np
import pytest
import torch
from torch import nn

from petra import build_embedding
from petra.embeddings import (
    REGISTRY,
    LearnedEmbedding,
    TokenEmbedding,
    contract,
    embedding_class,
    kinds,
    size_for_budget,
)
from petra.embeddings.base import TOKEN_INPUTS, check_count, checked_counts
from petra.embeddings.budget import BudgetUnreachable
from petra.models import ModelConfig

V, D = 97, 16
TOKENS = contract.distinct_token_bytes(V)

VARIANTS = {
    "learned": dict(kind="learned"),
    "learned-factorized": dict(kind="learned", factor_dim=4),
    "fourier-linear": dict(kind="fourier"),
    "fourier-linear-bias": dict(kind="fourier", refine_bias=True),
    "fourier-geglu": dict(kind="fourier", refine="geglu", expansion=0.25, final_norm=True),
    "fourier-none-cached": dict(kind="fourier", refine="none", cache_features=True),
    "fourier-chebyshev-permuted": dict(kind="fourier", basis="chebyshev", id_order="permuted"),
    "fourier-random-permuted-cached": dict(
        kind="fourier", basis="random", id_order="permuted", cache_features=True
    ),
    "kronecker-sparse": dict(kind="kronecker", token_bytes=TOKENS, pos_dim=4),
    "kronecker-dense": dict(kind="kronecker", token_bytes=TOKENS, pos_dim=4, mode="dense"),
    "kronecker-cached": dict(kind="kronecker", token_bytes=TOKENS, pos_dim=4, mode="cached"),
    "kronecker-factorized": dict(kind="kronecker", token_bytes=TOKENS, pos_dim=4, rank=3),
    "qr-mult": dict(kind="qr", collisions=7),
    "qr-add": dict(kind="qr", collisions=10, operation="add"),
    "qr-concat": dict(kind="qr", operation="concat"),
    "hash": dict(kind="hash", buckets=11, num_hashes=3),
    "dhe-uniform": dict(kind="dhe", hidden=8, code_dim=12),
    "dhe-gaussian": dict(kind="dhe", hidden=8, layers=1, code_dim=12, distribution="gaussian"),
    "tt": dict(kind="tt", rank=3),
    "tt-4-cores": dict(kind="tt", rank=2, cores=4),
    "quantized-8": dict(kind="quantized"),
    "quantized-4": dict(kind="quantized", bits=4),
    "trimmed-counts": dict(
        kind="trimmed", rows=40, unk_id=3, token_counts=[(i * 7) % 5 for i in range(V)]
    ),
}


# a registered kind that no variant above names is tested at its defaults
VARIANTS |= {
    kind: dict(kind=kind) for kind in kinds() if kind not in {v["kind"] for v in VARIANTS.values()}
}


def make(name: str, **extra) -> TokenEmbedding:
    options = {**VARIANTS[name], **extra}
    kind = options.pop("kind")
    if embedding_class(kind).needs_tokenizer and "tokenizer" not in options:
        options.setdefault("token_bytes", TOKENS)
    return build_embedding(kind, V, D, **options)


def saved_options(name: str) -> dict:
    """The variant's options as a model's config records them: no token bytes, no
    construction inputs."""
    kind_class = embedding_class(VARIANTS[name]["kind"])
    dropped = ("kind", *TOKEN_INPUTS, *kind_class.construction_inputs)
    return {k: v for k, v in VARIANTS[name].items() if k not in dropped}


def trainable(emb: nn.Module) -> int:
    return sum(p.numel() for p in emb.parameters() if p.requires_grad)


@pytest.fixture(params=sorted(VARIANTS))
def name(request):
    return request.param


# the contract as `petra.embeddings.contract` checks it, on every variant


def test_every_variant_keeps_the_contract(name):
    options = {k: v for k, v in VARIANTS[name].items() if k != "kind"}
    contract.check_kind(VARIANTS[name]["kind"], vocab_size=V, dim=D, **options)


def test_the_report_counts_buffers_and_savings(name):
    emb = make(name)
    report = emb.param_report()
    cache = V * D * 4 if getattr(emb, "cache_features", False) else 0  # Fourier's feature cache
    assert report.buffer_bytes == sum(b.numel() * b.element_size() for b in emb.buffers()) + cache
    assert report.saving_pct == pytest.approx(100 * (1 - report.trainable_params / (V * D)))
    assert report.as_dict()["saving_pct"] == report.saving_pct
    assert report.bytes_saving_pct == pytest.approx(100 * (1 - report.stored_bytes / (4 * V * D)))


def test_only_a_fourier_map_with_nothing_trained_refuses_to_scale(name):
    refuses = name == "fourier-none-cached"  # nothing trained to carry the factor
    try:
        make(name).scale_(2.0)
    except ValueError:
        assert refuses
    else:
        assert not refuses


@pytest.mark.parametrize("kind", kinds())
def test_a_budget_is_refused_without_a_knob_or_with_the_knob_given(kind):
    """A kind without a knob is refused a budget, with the reason; one with a knob refuses
    the knob given as well (that a budget of its size is met is the contract's check)."""
    kind_class = REGISTRY[kind]
    budget = kind_class.params_for(V, D)
    if not kind_class.budget_knob:  # stored, not trained, entries: refused with the reason
        with pytest.raises(BudgetUnreachable, match=f"{kind} cannot reach a budget.*bytes"):
            size_for_budget(kind, V, D, budget)
        return
    sizing = size_for_budget(kind, V, D, budget)  # met exactly: the contract's "budget" check
    for knob in kind_class.budget_knob:
        with pytest.raises(ValueError, match=f"the budget sets {kind}'s {knob}"):
            size_for_budget(kind, V, D, budget, **{knob: sizing.options.get(knob, 1)})


def test_check_kind_names_its_checks_and_keeps_the_callers_state():
    """(Every kind passing is the per-variant test's; here, what the caller gets back.)"""
    state = torch.get_rng_state()
    with torch.no_grad():
        assert contract.check_kind("learned") == [
            "description", "shapes", "ids", "table", "padding", "gradients", "counts", "saving",
            "dtypes", "scale", "budget",
        ]  # fmt: skip
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.get_rng_state(), state)


class MiscountedEmbedding(LearnedEmbedding):
    """A learned table whose closed-form count is one too many and whose forward is not its
    `table()`: two parts of the contract broken, never registered."""

    kind = "miscounted"

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        return super().params_for(vocab_size, dim, **options) + 1

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight_table.weight[ids] + 1.0


def test_check_kind_names_each_failed_check_with_its_reason():
    with pytest.raises(contract.ContractError) as raised:
        contract.check_kind(MiscountedEmbedding)
    message = str(raised.value)
    assert message.startswith("MiscountedEmbedding ('miscounted') fails ")
    assert f"- counts: AssertionError: params_for gives {V * D + 1}, built {V * D}" in message
    assert "- table: AssertionError: Tensor-likes are not close!" in message
    assert "- shapes:" not in message and "- ids:" not in message  # the rest pass


@pytest.mark.parametrize("what", [LearnedEmbedding(V, D), nn.Embedding, "lookup"])
def test_check_kind_takes_a_kind_class_or_name_only(what):
    with pytest.raises((TypeError, ValueError), match="TokenEmbedding subclass|unknown embedding"):
        contract.check_kind(what)


# the details of petra's own kinds


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_non_integer_ids_are_refused(name, dtype):
    with pytest.raises(TypeError, match=rf"token ids must be an integer tensor.*got dtype {dtype}"):
        make(name)(torch.zeros(3, dtype=dtype))


@pytest.mark.parametrize("dtype", contract.INTEGER_DTYPES)
def test_out_of_range_ids_of_any_integer_dtype_name_the_value(dtype):
    big = torch.iinfo(dtype).max
    emb = build_embedding("learned", 50, D)
    with pytest.raises(ValueError, match=rf"token id {big} is outside the vocabulary range"):
        emb(torch.tensor([big], dtype=dtype) if big < 2**63 else torch.full((1,), big, dtype=dtype))


def test_small_integer_dtypes_compare_against_a_vocabulary_they_cannot_hold():
    """int8 ids 0..100 are valid for V = 50257 (a range check in int8 would wrap V)."""
    emb = build_embedding("learned", 50257, D)
    ids = torch.arange(0, 101, dtype=torch.int8)
    torch.testing.assert_close(emb(ids), emb(ids.long()))


def test_unknown_kind_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown embedding kind 'lookup'.*learned.*fourier"):
        build_embedding("lookup", V, D)


def test_kronecker_needs_its_bytes_and_a_matching_vocab():
    with pytest.raises(ValueError, match="tokenizer= or token_bytes="):
        build_embedding("kronecker", V, D)
    with pytest.raises(ValueError, match=f"has {V} tokens but vocab_size={V + 1}"):
        build_embedding("kronecker", V + 1, D, token_bytes=TOKENS)


def test_learned_matches_nn_embedding():
    table = torch.randn(V, D)
    ids = torch.randint(0, V, (3, 5))
    emb = build_embedding("learned", V, D)
    with torch.no_grad():
        emb.weight_table.weight.copy_(table)
    torch.testing.assert_close(emb(ids), nn.Embedding.from_pretrained(table)(ids))


def test_learned_from_pretrained_wraps_a_table():
    table = torch.randn(V, D)
    frozen = LearnedEmbedding.from_pretrained(table, padding_idx=2, freeze=True)
    ids = torch.tensor([0, 5, 2])
    expected = table[ids].clone()
    expected[2] = 0
    torch.testing.assert_close(frozen(ids), expected)
    assert frozen.param_report().trainable_params == 0


def test_factorized_learned_is_table_times_projection():
    emb = build_embedding("learned", V, D, factor_dim=4)
    expected = emb.weight_table.weight @ emb.factor.weight.T  # (V, e) @ (e, d)
    torch.testing.assert_close(emb.table(), expected)
    assert emb.param_report().trainable_params == V * 4 + 4 * D


def test_bfloat16_changes_the_computation_not_the_result_beyond_its_precision(name):
    dtype, tolerance = torch.bfloat16, 5e-2
    emb = make(name)
    ids = torch.randint(0, V, (3, 4))
    expected = emb(ids)
    out = emb.to(dtype)(ids)
    assert out.dtype == dtype
    scale = expected.abs().max()
    torch.testing.assert_close(out.float() / scale, expected / scale, rtol=0, atol=tolerance)


def test_weight_norms_report_the_mean_row_norm_of_the_trained_matrix(name):
    emb = make(name)
    norms = emb.weight_norms()
    has_matrix = emb.trained_matrix() is not None
    assert ("matrix_row_norm_mean" in norms) == has_matrix
    if has_matrix:
        assert norms["matrix_row_norm_mean"] > 0


def test_learned_and_fourier_mean_row_norms_by_hand():
    """The learned table's rows are the V embeddings; a Fourier linear refinement's rows are
    the d rows of its d x d weight (outputs), read here through the map: column k of
    refine(I) is row k of the weight."""
    learned = make("learned")
    with torch.no_grad():
        learned.weight_table.weight.mul_(torch.rand(V, 1) * 10)  # rows of unequal norms
        by_hand = learned.table().norm(dim=-1).mean().item()
    assert learned.weight_norms()["matrix_row_norm_mean"] == pytest.approx(by_hand, rel=1e-6)
    fourier = make("fourier-linear")
    with torch.no_grad():
        fourier.refine.weight.mul_(torch.arange(1.0, D + 1)[:, None])  # row i scaled by i + 1
        rows = fourier.refine(torch.eye(D)).norm(dim=0)  # (d, d) -> the d output rows
    assert fourier.weight_norms()["matrix_row_norm_mean"] == pytest.approx(rows.mean().item())


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_scale_refuses_a_factor_that_is_not_positive_and_finite(factor):
    with pytest.raises(ValueError, match="positive finite"):
        make("learned").scale_(factor)


def test_fourier_geglu_without_a_norm_cannot_scale_exactly():
    emb = build_embedding("fourier", V, D, refine="geglu")
    with pytest.raises(ValueError, match="refine='linear' or final_norm=True"):
        emb.scale_(2.0)


@pytest.mark.parametrize("rank", [1, 5, D])
def test_factorized_from_pretrained_is_the_truncated_svd(rank):
    table = torch.randn(V, D, dtype=torch.float64)
    emb = LearnedEmbedding.from_pretrained(table.float(), factor_dim=rank)
    u, s, vh = torch.linalg.svd(table, full_matrices=False)
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]
    torch.testing.assert_close(emb.table().double(), best, rtol=1e-4, atol=1e-5)
    error = (emb.table().double() - table).norm() ** 2  # Eckart-Young: the tail's energy
    torch.testing.assert_close(error, s[rank:].pow(2).sum(), rtol=1e-4, atol=1e-6)
    # the even split: table and projection carry the same singular values
    torch.testing.assert_close(
        torch.linalg.svdvals(emb.weight_table.weight.double()), s[:rank].sqrt(), rtol=1e-4,
        atol=1e-6,
    )  # fmt: skip


def test_factorized_from_pretrained_refuses_a_rank_beyond_the_table():
    with pytest.raises(ValueError, match=r"factor_dim must lie in \[1, min\(V, d\) = 16\]"):
        LearnedEmbedding.from_pretrained(torch.randn(V, D), factor_dim=D + 1)


@pytest.mark.parametrize(("shape", "good", "bad"), [((V, D), D, D + 1), ((5, D), 5, 6)])
def test_a_learned_rank_must_fit_the_table_before_anything_is_built(shape, good, bad):
    """`check_vocabulary_options(V, d, ...)`: a factorized table's rank e lies in
    [1, min(V, d)], the ranks of the table's SVD (what `petra compress` and the swap check)."""
    LearnedEmbedding.check_vocabulary_options(*shape, {"factor_dim": good})
    LearnedEmbedding.check_vocabulary_options(*shape, {})  # the full table
    with pytest.raises(ValueError) as error:
        LearnedEmbedding.check_vocabulary_options(*shape, {"factor_dim": bad})
    assert str(error.value) == (
        f"factor_dim must lie in [1, min(V, d) = {good}] (the ranks of the {shape[0]} x "
        f"{shape[1]} table), got {bad}"
    )  # below 1: `check_count`'s message (test_a_count_option_is_refused_in_the_one_wording)


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_check_count_accepts_a_whole_number_of_at_least_the_minimum(value):
    check_count("rows", value)
    with pytest.raises(ValueError, match=r"^rows must be a whole number of at least 8, got "):
        check_count("rows", value, minimum=8)


@pytest.mark.parametrize("value", [0, -3, 2.5, 3.0, True, "3", None])
def test_check_count_refuses_anything_else_in_one_message(value):
    with pytest.raises(ValueError) as error:
        check_count("rank", value)
    assert str(error.value) == f"rank must be a whole number of at least 1, got {value!r}"


def check_before_data(kind: str, options: dict) -> None:
    """The checks `petra compress` makes before it reads data: the options on a stand-in
    vocabulary (`check_options`), then against the real V x d table."""
    kind_class = embedding_class(kind)
    kind_class.check_options(D, **options)
    kind_class.check_vocabulary_options(V, D, options)


@pytest.mark.parametrize(
    ("kind", "option", "minimum"),
    [
        ("learned", "factor_dim", 1),
        ("kronecker", "pos_dim", 1),
        ("kronecker", "rank", 1),
        ("ngram", "rows", 1),
        ("ngram", "n", 1),
        ("ngram", "num_hashes", 1),
        ("residual", "rank", 1),
        ("dhe", "hidden", 1),
        ("dhe", "layers", 1),
        ("dhe", "code_dim", 1),
        ("dhe", "code_buckets", 2),
        ("tt", "rank", 1),
        ("tt", "cores", 2),
        ("hash", "buckets", 1),
        ("hash", "num_hashes", 1),
        ("qr", "collisions", 1),
        ("trimmed", "rows", 1),
    ],
)
@pytest.mark.parametrize("bad", ["below the minimum", 2.5, True, "8"])
def test_a_count_option_is_refused_in_the_one_wording(kind, option, minimum, bad):
    """At the build and before any data is read: a count below its minimum, a fraction, a
    bool or a string are all refused with the same `check_count` message."""
    bad = minimum - 1 if bad == "below the minimum" else bad
    message = f"{option} must be a whole number of at least {minimum}, got {bad!r}"
    extra = {"token_bytes": TOKENS} if REGISTRY[kind].needs_tokenizer else {}
    with pytest.raises(ValueError) as error:
        build_embedding(kind, V, D, **{option: bad}, **extra)
    assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        check_before_data(kind, {option: bad})
    assert str(error.value) == message


@pytest.mark.parametrize("collisions", [V + 1, 10**9])
def test_qr_collisions_beyond_the_vocabulary_are_refused_before_data_is_read(collisions):
    """c in [1, V] is checked against the real vocabulary (`check_vocabulary_options`), not
    only at the build after data is read; the build says the same."""
    message = f"collisions must lie in [1, V = {V}], got {collisions}"
    with pytest.raises(ValueError) as error:
        embedding_class("qr").check_vocabulary_options(V, D, {"collisions": collisions})
    assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        check_before_data("qr", {"collisions": collisions})
    assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        build_embedding("qr", V, D, collisions=collisions)
    assert str(error.value) == message
    check_before_data("qr", {"collisions": V})  # c = V: every id its own remainder row


# -- what each kind tells the rest of petra -------------------------------------------------
def test_check_options_refuses_a_negative_padding_id(name):
    kind_class = embedding_class(VARIANTS[name]["kind"])
    with pytest.raises(ValueError, match="padding_idx must be a token id"):
        kind_class.check_options(D, **saved_options(name), padding_idx=-1)


@pytest.mark.parametrize("kind", kinds())
def test_a_kind_that_needs_a_tokenizer_refuses_to_build_without_one(kind):
    if REGISTRY[kind].needs_tokenizer:
        with pytest.raises(ValueError, match="tokenizer"):
            build_embedding(kind, V, D)
    else:
        assert build_embedding(kind, V, D).num_embeddings == V


@pytest.mark.parametrize("kind", kinds())
def test_from_table_starts_closer_to_the_table_than_zero(kind):
    table = torch.randn(V, D)
    kind_class = REGISTRY[kind]
    if not kind_class.starts_from_table:
        with pytest.raises(NotImplementedError, match="does not start from a table"):
            kind_class.from_table(table)
        return
    emb = kind_class.from_table(table, padding_idx=2)
    assert isinstance(emb, kind_class) and emb.padding_idx == 2
    assert (emb.num_embeddings, emb.embedding_dim) == (V, D)
    rows = emb.table().detach()
    assert torch.all(rows[2] == 0)
    kept = torch.arange(V) != 2
    assert (rows[kept] - table[kept]).norm() < table[kept].norm()


def test_least_squares_map_sets_the_linear_part_of_the_output(name):
    """E(v) = M f(v) + b, b the same for every id (a Fourier refinement's bias, else 0):
    after setting M, and fitting any trained part outside M to what M gives (`fit_residual_`,
    which must then leave nothing), the residual E(v) - M f(v) is one vector for all v."""
    emb = make(name)
    linear = emb.least_squares_map()
    options = {k: v for k, v in VARIANTS[name].items() if k != "kind"}
    assert embedding_class(VARIANTS[name]["kind"]).has_least_squares_map(options) == (
        linear is not None
    )  # known before the embedding is built
    if linear is None:
        return
    features, set_map = linear
    ids = torch.arange(V)
    f = features(ids).double()
    matrix = torch.randn(D, f.shape[1], dtype=torch.float64)
    with torch.no_grad():
        set_map(matrix)
        emb.fit_residual_((f @ matrix.T).float())
        residual = emb(ids).double() - f @ matrix.T  # (V, d)
    torch.testing.assert_close(residual, residual[:1].expand(V, D), rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", kinds())
def test_a_causal_lm_head_is_tied_by_the_kinds_default(kind):
    config = ModelConfig(model="causal_lm", embedding={"kind": kind})
    assert config.head_tied == REGISTRY[kind].head_tied_by_default


@pytest.mark.parametrize("kind", [k for k in kinds() if "init_std" in REGISTRY[k].option_types()])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_an_initialization_scale_that_is_not_a_finite_number_is_refused(kind, bad):
    extra = {"token_bytes": TOKENS} if REGISTRY[kind].needs_tokenizer else {}
    with pytest.raises(ValueError, match="init_std must be a"):
        build_embedding(kind, V, D, init_std=bad, **extra)


def test_embed_bytes_is_the_row_of_a_token_with_those_bytes_or_is_refused(name):
    """A kind that `embeds_bytes` embeds any byte string as it embeds a token with those
    bytes, and byte overrides put those rows in place of tokens (an overridden padding id
    included); the other kinds refuse both, naming themselves."""
    emb = make(name, padding_idx=5)
    ids = torch.tensor([[3, 5, 7], [11, 13, 5]])
    overrides = {(0, 1): TOKENS[40], (1, 2): TOKENS[60]}
    if not emb.embeds_bytes:
        with pytest.raises(ValueError, match=f"^a {emb.kind} embedding cannot embed raw bytes"):
            emb.embed_bytes([b"x"])
        with pytest.raises(ValueError, match=f"^a {emb.kind} embedding cannot embed raw bytes"):
            emb(ids, byte_overrides=overrides)
        return
    assert emb.needs_tokenizer  # bytes make a row only where token bytes do
    table = emb.table().detach()
    kept = torch.arange(V) != 5
    torch.testing.assert_close(emb.embed_bytes(TOKENS)[kept], table[kept], rtol=1e-6, atol=1e-6)
    swapped = ids.clone()
    swapped[0, 1], swapped[1, 2] = 40, 60
    out = emb(ids, byte_overrides=overrides)
    torch.testing.assert_close(out, emb(swapped), rtol=1e-6, atol=1e-6)
    assert out.shape == (2, 3, D) and out[0, 1].abs().sum() > 0  # padding id, overridden


def test_kept_mask_says_which_ids_read_a_row_of_their_own(name):
    """None for a kind that drops no id; a trimmed table's (V,) mask, its dropped ids reading
    the unknown token's row."""
    emb = make(name)
    mask = emb.kept_mask()
    if VARIANTS[name]["kind"] != "trimmed":
        assert mask is None
        return
    assert mask.dtype == torch.bool and mask.shape == (V,)
    assert int(mask.sum()) == emb.rows.shape[0] < V
    table = emb.table().detach()
    assert torch.equal(table[~mask], table[emb.unk_id].expand(int((~mask).sum()), D))


def test_a_saved_state_without_what_the_kind_reads_back_is_named(name):
    """A kind that rebuilds from its saved state (byte tables, an id order, a kept set) names
    the tensor an empty checkpoint lacks; the others build from their options alone."""
    kind_class = embedding_class(VARIANTS[name]["kind"])
    try:
        kind_class.from_saved(V, D, {}, "embedding.", **saved_options(name))
    except ValueError as error:
        assert str(error).startswith("the checkpoint has no embedding.")
        assert f"for its {kind_class.kind} embedding" in str(error)


@pytest.mark.parametrize(
    ("counts", "some", "problem"),
    [
        ([1, 2], False, "got 2"),
        ([1, -1, 2], False, "got a negative or NaN count"),
        ([1, float("nan"), 2], False, "got a negative or NaN count"),
        ([0, 0, 0], True, "got all 0"),
    ],
)
def test_token_counts_are_refused_in_one_message(counts, some, problem):
    needed = ", not all 0" if some else ""
    with pytest.raises(ValueError) as error:
        checked_counts(counts, 3, some=some)
    assert str(error.value) == (
        f"token_counts must be 3 counts >= 0{needed} (one per token id): {problem}"
    )


def test_token_counts_are_read_as_v_floats_of_any_shape():
    counts = checked_counts(torch.tensor([[3], [0], [5]]), 3, some=True)
    assert counts.dtype == torch.float64 and counts.tolist() == [3.0, 0.0, 5.0]
    assert checked_counts([0, 0, 0], 3).tolist() == [0.0, 0.0, 0.0]  # all 0 allowed unless some
