"""The hashed character n-gram kind against its closed form, written here independently."""

import hashlib

import pytest
import torch

from petra import build_embedding
from petra.embeddings.ngram import NgramHashEmbedding, ngram_row, token_ngrams


def _grams(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(max(len(text) - n + 1, 1))] if text else []


def _row(gram: str, j: int, rows: int, seed: int = 0) -> int:
    salt = j.to_bytes(8, "little") + seed.to_bytes(8, "little")
    data = gram.encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(data, digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "little") % rows


def test_ngrams_mark_a_word_start_and_fold_case():
    mark = "\ue000"  # the word-start mark
    folded = [f"{mark}ru", "run", "unn", "nni", "nin", "ing"]
    assert token_ngrams(b" Running", 3, case_fold=True) == folded
    assert token_ngrams(b" Running")[0] == f"{mark}Ru"
    assert token_ngrams(b" ") != token_ngrams(b"<")  # the mark is no character of a token
    assert token_ngrams(b"ing") == ["ing"] and token_ngrams(b"at") == ["at"]
    assert token_ngrams(b"") == [] and token_ngrams(b"abcd", n=2) == ["ab", "bc", "cd"]
    # the rows are the same on every machine and Python: pinned values, salted per hash and
    # by the seed, a lone byte hashed as itself (surrogateescape)
    assert ngram_row("run", 0, 2**62) == 1550300706216168443
    assert ngram_row("run", 1, 2**62) == 3715199485512487635
    assert ngram_row("run", 0, 2**62, seed=7) == 1114800748202999872
    assert ngram_row("\udc80", 0, 2**62) == 629324761325257509


@pytest.mark.parametrize("num_hashes, n", [(1, 3), (2, 3), (3, 2)])
def test_every_row_is_the_mean_of_its_hashed_rows(num_hashes, n):
    pieces = [b" running", b"running", b"ab", b"", b" x", "é€".encode()]
    emb = NgramHashEmbedding(pieces, 8, rows=13, n=n, num_hashes=num_hashes, seed=5)
    table = emb.table().detach()
    for v, piece in enumerate(pieces):
        text = piece.decode()
        text = "\ue000" + text[1:] if text.startswith(" ") else text
        picked = [_row(g, j, 13, seed=5) for g in _grams(text, n) for j in range(num_hashes)]
        expected = emb.rows[picked].mean(0) if picked else torch.zeros(8)
        torch.testing.assert_close(table[v], expected.detach())


def test_tokens_spelled_alike_share_rows(gpt2):
    folded = build_embedding("ngram", 50257, 16, tokenizer=gpt2, case_fold=True, seed=1)
    cased = build_embedding("ngram", 50257, 16, tokenizer=gpt2, seed=1)
    ids = torch.tensor([gpt2.token_to_id("ĠRunning"), gpt2.token_to_id("Ġrunning")])
    same, apart = folded(ids), cased(ids)
    torch.testing.assert_close(same[0], same[1])
    assert not torch.allclose(apart[0], apart[1])
    # 4 of their 6 trigrams are shared ("unn", "nni", "nin", "ing")
    assert torch.nn.functional.cosine_similarity(apart[0], apart[1], dim=0) > 0.4


def test_a_seed_draws_the_same_rows_and_the_budget_sets_them(gpt2):
    a = build_embedding("ngram", 50257, 16, tokenizer=gpt2, seed=4)
    b = build_embedding("ngram", 50257, 16, tokenizer=gpt2, seed=4)
    assert torch.equal(a.rows, b.rows) and a.rows.shape == (6283, 16)  # ceil(V / 8) rows
    assert sum(p.numel() for p in a.parameters()) == 6283 * 16
    sized = build_embedding("ngram", 50257, 16, tokenizer=gpt2, rows=1000)
    assert sized.param_report().trainable_params == 16000


def test_bytes_that_are_not_utf8_stay_apart(gpt2):  # with errors="replace", 255 shared "\ufffd"
    """Byte-level BPE has tokens that are pieces of a character: each keeps its own n-gram."""
    emb = NgramHashEmbedding([b"\x80", b"\x81", b"\xe2\x82", b"ab"], 8, rows=1000, seed=0)
    rows = emb.bag_rows.tolist()
    assert len(set(rows[:3])) == 3  # one gram each, all different
    assert token_ngrams(b"\x80") != token_ngrams(b"\x81")
    from petra.embeddings.token_bytes import token_bytes

    pieces = token_bytes(gpt2)[:256]  # GPT-2's first ids are its 256 single bytes
    assert len({tuple(token_ngrams(p)) for p in pieces}) == 256  # hashing aside, all apart


def test_a_saved_index_is_checked(gpt2):
    emb = NgramHashEmbedding([b"ab", b"cd", b"e"], 4, rows=7)
    state = emb.state_dict()
    loaded = NgramHashEmbedding.from_saved(3, 4, state, rows=7)
    loaded.load_state_dict(state)
    torch.testing.assert_close(loaded.table(), emb.table())
    with pytest.raises(ValueError, match="no bag_offsets"):
        NgramHashEmbedding.from_saved(3, 4, {"bag_rows": state["bag_rows"]}, rows=7)
    with pytest.raises(ValueError, match="not an index of 4 tokens into 7 rows"):
        NgramHashEmbedding.from_saved(4, 4, state, rows=7)
    with pytest.raises(ValueError, match="holds 7 rows, its settings say rows=2"):
        NgramHashEmbedding.from_saved(3, 4, state, rows=2)
    with pytest.raises(ValueError, match="into 2 rows"):  # an index beyond the saved rows
        NgramHashEmbedding.from_saved(3, 4, {**state, "rows": state["rows"][:2]})
    resized = NgramHashEmbedding.from_saved(3, 4, state)  # R read from the weights
    assert resized.rows.shape == (7, 4)


def test_refusals():
    with pytest.raises(ValueError, match="rows must be"):
        NgramHashEmbedding([b"a"], 4, rows=0)
    with pytest.raises(ValueError, match="exactly one of tokenizer= or token_bytes="):
        build_embedding("ngram", 3, 4)
    with pytest.raises(ValueError, match="has 2 tokens but vocab_size=3"):
        build_embedding("ngram", 3, 4, token_bytes=[b"a", b"b"])


def test_a_byte_string_embeds_exactly_as_a_token_with_those_bytes(gpt2):
    """`embed_bytes`: the mean of the rows its n-grams hash to, bit for bit the row of a token
    with those bytes (also once loaded without the tokenizer), and of any other string by the
    closed form; byte overrides put it in place of a token."""
    emb = build_embedding("ngram", 50257, 16, tokenizer=gpt2, num_hashes=2, case_fold=True,
                          seed=3)  # fmt: skip
    ids = torch.tensor([gpt2.token_to_id(t) for t in ("ĠRunning", "ing", "Ġthe", "Ã©")])
    pieces = [b" Running", b"ing", b" the", "é".encode()]
    assert torch.equal(emb.embed_bytes(pieces), emb(ids))
    state = emb.state_dict()
    loaded = NgramHashEmbedding.from_saved(50257, 16, state, num_hashes=2, case_fold=True, seed=3)
    loaded.load_state_dict(state)
    assert torch.equal(loaded.embed_bytes(pieces), emb(ids))
    picked = [_row(g, j, 6283, seed=3) for g in _grams("\ue000flibbert", 3) for j in range(2)]
    expected = emb.rows[picked].mean(0)
    torch.testing.assert_close(emb.embed_bytes([b" FLIBBERT"])[0], expected, rtol=0, atol=1e-7)
    assert torch.equal(emb.embed_bytes([b""]), torch.zeros(1, 16))  # no gram: zero, as a token
    out = emb(ids[None], byte_overrides={(0, 1): b" FLIBBERT"})
    assert torch.equal(out[0, 1], emb.embed_bytes([b" FLIBBERT"])[0])
    assert torch.equal(out[0, [0, 2, 3]], emb(ids[[0, 2, 3]]))
    with pytest.raises(TypeError, match="byte string 0 must be bytes, got str"):
        emb.embed_bytes(["flibbert"])
