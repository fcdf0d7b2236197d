"""Kronecker embeddings: codec closed form, mode equivalence, parity with the paper's own
package, token bytes from real tokenizers, byte overrides and checkpoint safety."""

import math

import kronecker_embeddings as reference
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from petra import KroneckerEmbedding
from petra.embeddings.kronecker import (
    byte_collisions,
    codec_moments,
    codec_scales,
    codec_table,
    encode_bytes,
    kronecker_codec,
    utf8_truncate,
)
from petra.embeddings.token_bytes import piece_bytes, token_bytes, tokenizer_fingerprint

MODES = ("sparse", "dense", "cached")


def twins(tokens, dim=8, pos_dim=4):
    """One embedding per mode, sharing the same projection weight."""
    embs = {
        m: KroneckerEmbedding.from_token_bytes(tokens, dim, pos_dim=pos_dim, mode=m) for m in MODES
    }
    for emb in embs.values():
        emb.projection.load_state_dict(embs["sparse"].projection.state_dict())
    return embs


# -- the codec -------------------------------------------------------------------------
def test_codec_of_one_token_by_hand():
    """b"ab" at pos_dim 2: x has 1/sqrt(2) at 97*2+0 and 98*2+1, zeros elsewhere (D = 512)."""
    table, lengths, _ = encode_bytes([b"ab"], 2)
    D = 512
    x = torch.zeros(D, dtype=torch.float64)
    x[97 * 2 + 0] = x[98 * 2 + 1] = 1 / math.sqrt(2)
    expected = (x - x.mean()) / (x.std(unbiased=True) + 1e-6)
    torch.testing.assert_close(kronecker_codec(table, lengths, torch.float64)[0], expected)
    mu, sigma = codec_moments(lengths, D)
    torch.testing.assert_close(mu.double(), x.mean().reshape(1), rtol=1e-6, atol=0)
    torch.testing.assert_close(sigma.double(), x.std().reshape(1) + 1e-6, rtol=1e-6, atol=0)


def test_codec_equals_reference_codec():
    tokens = [b"hello", b"\xe4\xb8\xad", b"", b"x" * 16, b"\x00\xff"]
    table, lengths, _ = encode_bytes(tokens, 16)
    ours = kronecker_codec(table, lengths)
    theirs = reference.kronecker_codec(table, lengths, pos_dim=16)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_empty_token_embeds_to_zero():
    for emb in twins([b"", b"a"]).values():
        assert torch.equal(emb(torch.tensor([0])), torch.zeros(1, 8))


def test_scales_looked_up_by_length_equal_the_per_token_scales():
    """The sparse mode reads each token's a / sigma and mu / sigma from a table over the
    lengths 0..P, one per dtype (a float64 forward meeting the dense codec at 1e-10 is
    `test_modes_have_equal_outputs_and_gradients`); a module unpickled from before the table
    existed builds it on first use."""
    tokens = [b"", b"a", b"ab", b"abc", b"abcd", b"ab"]
    emb = KroneckerEmbedding.from_token_bytes(tokens, 8, pos_dim=4)
    for dtype in (torch.float32, torch.float64):
        emb.to(dtype)
        by_length = [table.index_select(0, emb.byte_lengths) for table in emb._length_scales(dtype)]
        per_token = codec_scales(emb.byte_lengths, emb.codec_dim, dtype)
        for looked_up, direct in zip(by_length, per_token, strict=True):
            assert looked_up.dtype == dtype
            assert torch.equal(looked_up, direct)
    del emb._scales_by_length  # as in a module pickled before this attribute existed
    dense = KroneckerEmbedding.from_token_bytes(tokens, 8, pos_dim=4, mode="dense").double()
    dense.load_state_dict(emb.state_dict())
    ids = torch.arange(len(tokens))
    torch.testing.assert_close(emb(ids), dense(ids), rtol=1e-10, atol=1e-10)


# -- modes -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_modes_have_equal_outputs_and_gradients(gpt2, dtype, tol):
    """float32 agrees to 1e-5 in outputs and (relative to the gradient's scale) gradients;
    float64 shows the sparse identity is exact, not approximate (the cache, built in float32,
    is left out there)."""
    tokens = token_bytes(gpt2)[:3000]
    embs = {mode: emb.to(dtype) for mode, emb in twins(tokens, dim=32, pos_dim=16).items()}
    if dtype == torch.float64:
        del embs["cached"]
    ids = torch.randint(0, 3000, (4, 50))
    target = torch.randn(4, 50, 32, dtype=dtype)
    grads = {}
    for mode, emb in embs.items():
        out = emb(ids)
        torch.testing.assert_close(out, embs["sparse"](ids), rtol=tol, atol=tol)
        (out * target).sum().backward()
        grads[mode] = emb.projection.weight.grad
    scale = grads["sparse"].abs().max()
    for mode in embs:
        torch.testing.assert_close(grads[mode] / scale, grads["sparse"] / scale, rtol=tol, atol=tol)


def test_sparse_mode_forms_no_codec_tensor(monkeypatch):
    """The sparse path never calls the dense codec."""
    import petra.embeddings.kronecker as module

    def fail(*args, **kwargs):
        raise AssertionError("dense codec used")

    emb = KroneckerEmbedding.from_token_bytes([b"ab", b"cd"], 8, pos_dim=4)
    monkeypatch.setattr(module, "kronecker_codec", fail)
    emb(torch.tensor([0, 1])).sum().backward()


# -- parity with the paper's package ---------------------------------------------------
def test_parity_with_reference_package_on_gpt2_vocabulary(gpt2):
    """Same bytes, same projection: every one of the 50,257 rows equals the reference's."""
    ours = KroneckerEmbedding.from_tokenizer(gpt2, 64, pos_dim=16)
    theirs = reference.KroneckerEmbedding(
        vocab_size=50257,
        d_model=64,
        pos_dim=16,
        byte_buffer=ours.byte_table,
        length_buffer=ours.byte_lengths,
    )
    with torch.no_grad():
        theirs.projection.weight.copy_(ours.projection.weight)
        ids = torch.arange(50257)
        torch.testing.assert_close(ours(ids), theirs(ids), rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=12))
def test_any_bytes_agree_across_modes_and_with_the_reference(tokens):
    embs = twins(tokens, dim=8, pos_dim=8)
    ids = torch.arange(len(tokens))
    expected = embs["dense"](ids)
    for emb in embs.values():
        torch.testing.assert_close(emb(ids), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(emb.embed_bytes(tokens), expected, rtol=1e-5, atol=1e-5)
    table, lengths, _ = encode_bytes(tokens, 8)
    theirs = (
        reference.kronecker_codec(table, lengths, pos_dim=8) @ embs["dense"].projection.weight.T
    )
    torch.testing.assert_close(expected, theirs, rtol=1e-5, atol=1e-5)


# -- truncation ------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 20))
def test_truncation_is_a_short_prefix(data, limit):
    cut = utf8_truncate(data, limit)
    assert data.startswith(cut) and len(cut) <= limit
    assert len(cut) >= min(len(data), limit) - 3  # only a split character is dropped


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.integers(1, 20))
def test_truncation_of_utf8_is_the_longest_valid_prefix(text, limit):
    data = text.encode("utf-8")
    cut = utf8_truncate(data, limit)
    cut.decode("utf-8")  # never splits a character
    assert cut == reference.utf8_safe_truncate(data, limit)


def test_truncated_tokens_are_counted():
    emb = KroneckerEmbedding.from_token_bytes([b"abcdef", b"ab", "abcñ".encode()], 8, pos_dim=4)
    assert emb.num_truncated == 2
    assert emb.byte_lengths.tolist() == [4, 2, 3]  # "abcñ" is 5 bytes; cutting at 4 splits ñ


# -- token bytes from real tokenizers ----------------------------------------------------
def test_gpt2_bytes_invert_the_byte_level_map(gpt2):
    tokens = token_bytes(gpt2)
    vocab = gpt2.get_vocab()
    assert len(tokens) == 50257
    assert tokens[vocab["Ġthe"]] == b" the"
    assert tokens[vocab["Ċ"]] == b"\n"
    assert tokens[50256] == b"<|endoftext|>"
    assert sorted(tokens[:256]) == [bytes([b]) for b in range(256)]  # the 256 byte tokens
    # every token's bytes re-encode to exactly that token
    for token_id in (vocab["Ġthe"], vocab["ing"], 12345, 40000):
        assert gpt2.encode(tokens[token_id].decode("utf-8")).ids == [token_id]


def test_gpt2_partial_characters_keep_their_bytes_where_decode_merges_them(gpt2):
    tokens = token_bytes(gpt2)
    invalid = [t for t in tokens if not _is_utf8(t)]
    assert len(invalid) > 100
    assert len(set(invalid)) == len(invalid)
    assert gpt2.decode([tokens.index(invalid[0])]) == gpt2.decode([tokens.index(invalid[1])])


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_wordpiece_starts_and_continuations_never_collide(bert):
    tokens = token_bytes(bert)
    vocab = bert.get_vocab()
    assert tokens[vocab["play"]] == b" play"
    assert tokens[vocab["##ing"]] == b"ing"
    assert tokens[vocab["[CLS]"]] == b"[CLS]"
    assert len(set(tokens)) == len(tokens) == 30522
    emb = KroneckerEmbedding.from_tokenizer(bert, 16, pos_dim=32)
    assert emb.collisions() == []


def test_sentencepiece_pieces():
    assert piece_bytes("▁hello", "sentencepiece") == b" hello"
    assert piece_bytes("<0x0A>", "sentencepiece") == b"\n"
    assert piece_bytes("<0xE4>", "sentencepiece") == b"\xe4"
    assert piece_bytes("lo", "sentencepiece") == b"lo"
    with pytest.raises(ValueError, match="unknown token-bytes scheme"):
        piece_bytes("x", "morse")


def test_gpt2_collisions_come_from_truncation_only(gpt2):
    """Distinct pieces have distinct bytes, so a group of equal rows holds at most one token
    that was not cut; with no cut at all there is no collision."""
    tokens = token_bytes(gpt2)
    for pos_dim in (16, 32):
        groups = KroneckerEmbedding.from_tokenizer(gpt2, 8, pos_dim=pos_dim).collisions()
        assert groups
        for group in groups:
            assert sum(len(tokens[i]) <= pos_dim for i in group) <= 1
    assert KroneckerEmbedding.from_tokenizer(gpt2, 8, pos_dim=128).collisions() == []


def test_byte_collisions_groups_identical_rows():
    table, lengths, _ = encode_bytes([b"ab", b"abc", b"ab", b"x", b"abcz"], 3)
    assert byte_collisions(table, lengths) == [[0, 2], [1, 4]]


# -- forced out-of-vocabulary input ---------------------------------------------------
def test_embed_bytes_equals_the_token_with_those_bytes(gpt2):
    emb = KroneckerEmbedding.from_tokenizer(gpt2, 16)
    the = gpt2.get_vocab()["Ġthe"]
    torch.testing.assert_close(emb.embed_bytes([b" the"])[0], emb(torch.tensor(the)))


@pytest.mark.parametrize("mode", MODES)
def test_byte_overrides_replace_chosen_positions_of_a_batch(mode):
    tokens = [b"a", b"bb", b"ccc", b"dddd"]
    emb = twins(tokens, pos_dim=8)[mode]
    ids = torch.tensor([[0, 1, 2], [3, 2, 1]])
    out = emb(ids, byte_overrides={(0, 1): b"flibbert", (1, 2): "ñ".encode()})
    plain = emb(ids)
    new = emb.embed_bytes([b"flibbert", "ñ".encode()])
    torch.testing.assert_close(out[0, 1], new[0])
    torch.testing.assert_close(out[1, 2], new[1])
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[0, 1] = mask[1, 2] = False
    torch.testing.assert_close(out[mask], plain[mask])
    one_row = emb(ids[0], byte_overrides={1: b"flibbert"})
    torch.testing.assert_close(one_row, out[0])
    with pytest.raises(ValueError, match=r"position \(2, 0\) is outside ids of shape \(2, 3\)"):
        emb(ids, byte_overrides={(2, 0): b"x"})
    numpy_key = (np.int64(0), torch.tensor(1))
    torch.testing.assert_close(emb(ids, byte_overrides={numpy_key: b"flibbert"})[0, 1], new[0])
    with pytest.raises(TypeError, match="must be an int or a tuple of ints"):
        emb(ids[0], byte_overrides={True: b"x"})


# -- saving ----------------------------------------------------------------------------
def test_checkpoint_carries_bytes_and_fingerprint(gpt2, tmp_path):
    emb = KroneckerEmbedding.from_tokenizer(gpt2, 16, pos_dim=8)
    save_file(
        {k: v.contiguous() for k, v in emb.state_dict().items()}, tmp_path / "emb.safetensors"
    )
    state = load_file(tmp_path / "emb.safetensors")
    assert bytes(state["tokenizer_fingerprint"].tolist()).hex() == tokenizer_fingerprint(gpt2)
    rebuilt = KroneckerEmbedding.from_saved(50257, 16, state)  # no tokenizer: bytes and all
    rebuilt.load_state_dict(state)
    assert rebuilt.tokenizer_fingerprint.tolist() == emb.tokenizer_fingerprint.tolist()
    ids = torch.randint(0, 50257, (20,))
    torch.testing.assert_close(rebuilt(ids), emb(ids), rtol=0, atol=0)
    same = KroneckerEmbedding.from_tokenizer(gpt2, 16, pos_dim=8)
    same.load_state_dict(state)
    torch.testing.assert_close(same(ids), emb(ids), rtol=0, atol=0)


def test_loading_under_another_tokenizer_is_refused(gpt2, bert):
    state = KroneckerEmbedding.from_tokenizer(gpt2, 16, pos_dim=8).state_dict()
    other = KroneckerEmbedding.from_tokenizer(bert, 16, pos_dim=8)
    with pytest.raises(ValueError, match="built for other token bytes .*fingerprint"):
        other.load_state_dict(state)
    longer = KroneckerEmbedding.from_tokenizer(gpt2, 16, pos_dim=16)
    with pytest.raises(ValueError, match="built for other token bytes"):
        longer.load_state_dict(state)


def test_byte_table_costs_v_times_pos_dim_plus_four_bytes(gpt2):
    emb = KroneckerEmbedding.from_tokenizer(gpt2, 768, pos_dim=16)
    assert emb.byte_table.nbytes + emb.byte_lengths.nbytes == 50257 * (16 + 4)
    assert emb.param_report().trainable_params == 256 * 16 * 768


def test_projection_initialization_scale():
    emb = KroneckerEmbedding.from_token_bytes([b"a"], 512, pos_dim=16)
    assert emb.projection.weight.std().item() == pytest.approx(1 / math.sqrt(4096), rel=0.02)


def test_sentencepiece_style_tokenizer_is_detected_and_read():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "<s>"])
    tokenizer.train_from_iterator(["the cat sat on the mat", "the dog sat"] * 20, trainer)
    tokens = token_bytes(tokenizer)
    vocab = tokenizer.get_vocab()
    assert tokens[vocab["<s>"]] == b"<s>"
    assert tokens[vocab["▁the"]] == b" the"
    assert len(set(tokens)) == len(tokens)


def test_lengths_beyond_pos_dim_are_refused():
    table = torch.zeros(2, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"byte_lengths must lie in \[0, pos_dim=4\]"):
        KroneckerEmbedding(table, torch.tensor([1, 5]), 8)


def test_state_dict_aliases_the_projection_like_nn_linear():
    emb = KroneckerEmbedding.from_token_bytes([b"a", b"b"], 4, pos_dim=2)
    emb.state_dict()["projection.weight"].zero_()  # e.g. an EMA that updates in place
    assert torch.all(emb.projection.weight == 0)


def test_from_saved_keeps_padding_index():
    emb = KroneckerEmbedding.from_token_bytes([b"a", b"b", b"c"], 4, pos_dim=2, padding_idx=1)
    rebuilt = KroneckerEmbedding.from_saved(3, 4, emb.state_dict(), padding_idx=1)
    rebuilt.load_state_dict(emb.state_dict())
    torch.testing.assert_close(rebuilt(torch.arange(3)), emb(torch.arange(3)))


def test_from_saved_refuses_settings_the_byte_table_contradicts():
    state = KroneckerEmbedding.from_token_bytes([b"a", b"b", b"c"], 4, pos_dim=2).state_dict()
    with pytest.raises(ValueError, match="byte_table holds 3 tokens, its settings say vocab_si"):
        KroneckerEmbedding.from_saved(4, 4, state)
    with pytest.raises(ValueError, match="byte_table holds 2 positions, its settings say pos_di"):
        KroneckerEmbedding.from_saved(3, 4, state, pos_dim=8)


def test_sentencepiece_detected_from_a_replace_decoder():
    from tokenizers import Tokenizer, decoders, models, normalizers

    vocab = {"<unk>": 0, "▁the": 1, "the": 2, "<0x0A>": 3}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback()])
    assert token_bytes(tokenizer)[1:] == [b" the", b"the", b"\n"]


# -- low precision ---------------------------------------------------------------------
LOW_PRECISION_TOKENS = [
    b"",
    b"a",
    b" the",
    "ñandú".encode(),
    b"x" * 40,
    "中文字符串很长".encode(),
    b"\xff",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "dtype, tolerance", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)]
)  # about twice the dtype's epsilon (2^-10, 2^-7), relative to the largest output
def test_low_precision_matches_float32_with_an_empty_and_long_tokens(gpt2, mode, dtype, tolerance):
    """fp16 / bf16 against float32 on the same (rounded) weights: the codec's moments and
    scales are computed in float32 or wider, so only the result's rounding differs. The empty
    token (whose 1 / sigma = 1e6 overflows float16) embeds to exactly 0 in every dtype."""
    tokens = LOW_PRECISION_TOKENS + token_bytes(gpt2)[:500]
    low = KroneckerEmbedding.from_token_bytes(tokens, 32, pos_dim=16, mode=mode).to(dtype)
    exact = KroneckerEmbedding.from_token_bytes(tokens, 32, pos_dim=16, mode=mode)
    with torch.no_grad():
        exact.projection.weight.copy_(low.projection.weight.float())
    ids = torch.arange(len(tokens))
    out, expected = low(ids), exact(ids)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(32, dtype=dtype))
    scale = expected.abs().max()
    torch.testing.assert_close(out.float() / scale, expected / scale, rtol=0, atol=tolerance)
    assert torch.equal(low.embed_bytes([b""]), torch.zeros(1, 32, dtype=dtype))


# -- the cached table ------------------------------------------------------------------
def test_cached_table_built_in_chunks_equals_the_literal_codec():
    """Chunks of 7 rows (not a divisor of V = 60) fill one buffer with exactly the rows of
    `kronecker_codec` over the whole vocabulary, the empty token and cut tokens included."""
    tokens = [b"", b"x" * 40] + [bytes([i]) * (1 + i % 9) for i in range(58)]
    table, lengths, _ = encode_bytes(tokens, 8)
    literal = kronecker_codec(table, lengths)
    assert torch.equal(codec_table(table, lengths, chunk_size=7), literal)
    cached = KroneckerEmbedding.from_token_bytes(tokens, 8, pos_dim=8, mode="cached")
    assert torch.equal(cached.codec_cache, literal)


# -- norms -----------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [16, 128, 1024])
def test_fresh_projection_has_mean_row_norm_one_while_frobenius_grows(dim):
    """The paper's "projection norm near 1.0": W_ij ~ N(0, 1/D) gives each of the d output
    rows E ||w_i||^2 = D / D = 1, for every d; the Frobenius norm is sqrt(d) times that.
    The rows are read through the map itself, W e_k for every basis vector e_k of R^D, so the
    check does not depend on how the weight is stored."""
    emb = KroneckerEmbedding.from_token_bytes([b"a", b"bc"], dim, pos_dim=16)  # D = 4096
    norms = emb.weight_norms()
    assert norms["matrix_row_norm_mean"] == pytest.approx(1.0, rel=0.03)
    assert norms["matrix_fro"] == pytest.approx(math.sqrt(dim), rel=0.03)
    with torch.no_grad():
        columns = emb.projection(torch.eye(emb.codec_dim))  # (D, d): row k is W e_k
    rows = columns.norm(dim=0)  # the d output rows of W
    assert norms["matrix_row_norm_mean"] == pytest.approx(rows.mean().item(), rel=1e-5)
