"""Generation with a key-value cache and left-padded prompts: the cache gives the logits of
the full recomputation at every step and the same tokens, for every embedding kind on both
backbones; a left-padded batch generates what each row generates alone."""

import pytest
import torch

from petra.models import ModelConfig, build_model
from petra.models.backbone import StandardEncoder
from petra.models.causal_lm import rotary_positions
from petra.nn import attention_bias
from petra.spectral import SpectralEncoder

VOCAB = 200
TOKEN_BYTES = [f"t{i}".encode() for i in range(VOCAB)]  # distinct byte strings for Kronecker
EMBEDDINGS = {
    "learned": {"kind": "learned"},  # tied head
    "kronecker": {"kind": "kronecker", "pos_dim": 4},  # untied
    "fourier": {"kind": "fourier", "refine": "geglu", "expansion": 0.25},  # untied
}
BACKBONES = {
    "standard": {},
    "spectral": {"backbone": "spectral", "slices": 2, "freq_scaling": "decay", "freq_decay": 0.5},
}
ATOL = 1e-5


def tiny_lm(embedding="learned", backbone="standard", **changes):
    config = ModelConfig(
        model="causal_lm",
        vocab_size=VOCAB,
        dim=32,
        n_layers=2,
        n_heads=2,
        max_len=48,
        embedding=dict(EMBEDDINGS[embedding]),
        **BACKBONES[backbone],
        **changes,
    )
    return build_model(config, token_bytes=TOKEN_BYTES).eval()


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, VOCAB, (n,), generator=g) for n in lengths]


def left_pad(rows, pad_id=0):
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, length - len(r) :] = r
        mask[i, length - len(r) :] = 1
    return ids, mask


both_kinds = pytest.mark.parametrize(
    "embedding,backbone",
    [(e, b) for b in BACKBONES for e in EMBEDDINGS],
    ids=lambda v: v,
)


# -- the cache against the full recomputation --------------------------------------------
@both_kinds
def test_cached_logits_equal_the_full_recomputation_at_every_step(embedding, backbone):
    model = tiny_lm(embedding, backbone)
    ids = torch.stack(prompts([5, 5]))
    cache = model.new_cache()
    with torch.no_grad():
        logits = model(ids, cache=cache)
        torch.testing.assert_close(logits, model(ids), atol=ATOL, rtol=0)
        for _ in range(6):
            next_ids = logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat((ids, next_ids), dim=1)
            logits = model(next_ids, cache=cache)  # (B, 1, V)
            torch.testing.assert_close(logits[:, -1], model(ids)[:, -1], atol=ATOL, rtol=0)
    assert cache[0].length == ids.shape[1]


@both_kinds
@pytest.mark.parametrize("stop", [False, True], ids=["no-stop", "stop"])
def test_cached_generation_gives_the_uncached_tokens(embedding, backbone, stop):
    model = tiny_lm(embedding, backbone)
    ids = torch.stack(prompts([4, 4, 4]))
    uncached = model.generate(ids, 8, use_cache=False)
    assert torch.equal(model.generate(ids, 8), uncached)
    if stop:
        token = int(uncached[0, 5])  # row 0's second new token: rows stop at different steps
        uncached = model.generate(ids, 8, stop_token_id=token, use_cache=False)
        assert torch.all(uncached[0, 5:] == token)
        assert torch.equal(model.generate(ids, 8, stop_token_id=token), uncached)


def test_greedy_generation_is_todays_argmax_loop():
    """The reference: recompute the whole sequence, append the argmax of the last logits."""
    for backbone in BACKBONES:
        model = tiny_lm("fourier", backbone)
        ids = torch.stack(prompts([6]))
        expected = ids
        with torch.no_grad():
            for _ in range(5):
                next_ids = model(expected)[:, -1].argmax(-1, keepdim=True)
                expected = torch.cat((expected, next_ids), dim=1)
        assert torch.equal(model.generate(ids, 5), expected)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_fed_in_chunks_equals_one_pass(backbone):
    config = ModelConfig(dim=32, n_layers=2, n_heads=2, **BACKBONES[backbone])
    encoder = (StandardEncoder(config) if backbone == "standard" else _spectral(config)).eval()
    x = torch.randn(2, 7, 32)
    full = encoder(x, attention_bias(None, 7, True, x.device), True)
    cache = encoder.new_cache()
    parts = [encoder(x[:, a:b], None, True, cache=cache) for a, b in ((0, 3), (3, 5), (5, 7))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=ATOL, rtol=0)


def _spectral(config):
    return SpectralEncoder(
        config.dim,
        config.n_layers,
        config.n_heads,
        config.ffn_mult,
        config.slices,
        freq_scaling=config.freq_scaling,
        freq_decay=config.freq_decay,
        weight_domain="spatial",
    )


def test_attention_bias_after_a_cache_is_the_last_rows_of_the_full_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    for causal in (False, True):
        full = attention_bias(mask, 6, causal, mask.device)
        allowed = torch.ones(6, 6, dtype=torch.bool)
        allowed = allowed.tril() if causal else allowed
        before = allowed & mask.bool()[:, None, None, :] | torch.eye(6, dtype=torch.bool)
        assert torch.equal(full, before)  # the mask of a whole sequence, as it always was
        for past in (0, 2, 5):
            tail = attention_bias(mask, 6 - past, causal, mask.device, past_length=past)
            assert torch.equal(tail, full[:, :, past:])
    assert torch.equal(attention_bias(None, 2, True, "cpu", 3), torch.ones(1, 1, 2, 5).tril(3) > 0)


# -- left padding ----------------------------------------------------------------------
@both_kinds
def test_left_padded_batch_generates_what_each_row_generates_alone(embedding, backbone):
    model = tiny_lm(embedding, backbone)
    rows = prompts([3, 5, 8], seed=1)
    ids, mask = left_pad(rows)
    for use_cache in (True, False):
        out = model.generate(ids, 6, attention_mask=mask, use_cache=use_cache)
        for i, row in enumerate(rows):
            alone = model.generate(row[None], 6, use_cache=use_cache)
            assert torch.equal(out[i, ids.shape[1] :], alone[0, len(row) :]), (use_cache, i)
        assert torch.equal(out[:, : ids.shape[1]], ids)  # the padding is kept


@pytest.mark.parametrize("backbone", BACKBONES)
def test_left_padded_logits_equal_each_rows_own(backbone):
    model = tiny_lm("learned", backbone)
    rows = prompts([3, 5, 8], seed=2)
    ids, mask = left_pad(rows)
    cache = model.new_cache()
    with torch.no_grad():
        padded = model(ids, mask, positions=rotary_positions(mask), cache=cache)
        step = torch.tensor([[7], [8], [9]])
        mask = torch.cat((mask, torch.ones(3, 1, dtype=mask.dtype)), dim=1)
        after = model(step, mask, positions=rotary_positions(mask)[:, -1:], cache=cache)
        for i, row in enumerate(rows):
            alone = model(row[None])
            real = mask[i, :-1].bool()
            torch.testing.assert_close(padded[i, real], alone[0], atol=ATOL, rtol=0)
            extended = model(torch.cat((row, step[i]))[None])[0, -1]
            torch.testing.assert_close(after[i, -1], extended, atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_rotary_positions_count_from_each_rows_first_token(backbone, use_cache, monkeypatch):
    """(Relative positions are the same either way; the absolute ones fix the rounding.)"""
    model = tiny_lm("learned", backbone)
    ids, mask = left_pad(prompts([2, 4], seed=4))
    assert rotary_positions(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]
    seen = []
    rope = model.backbone.blocks[0].attn.rope
    forward = rope.forward

    def recording(x, positions=None):
        seen.append(positions)
        return forward(x, positions)

    monkeypatch.setattr(rope, "forward", recording)
    model.generate(ids, 3, attention_mask=mask, use_cache=use_cache)
    slices = model.config.slices if backbone == "spectral" else 1
    expected = torch.tensor([[0, 0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]]).repeat(slices, 1)
    queries = seen[::2]  # q, then k, at each step
    assert torch.equal(queries[0], expected[:, :4])
    for step, positions in enumerate(queries[1:], start=5):
        assert torch.equal(
            positions, expected[:, step - 1 : step] if use_cache else expected[:, :step]
        )


def test_unpadded_mask_changes_nothing():
    model = tiny_lm()
    ids = torch.stack(prompts([5, 5]))
    mask = torch.ones_like(ids)
    assert torch.equal(model.generate(ids, 4, attention_mask=mask), model.generate(ids, 4))


@pytest.mark.parametrize(
    "mask,message",
    [
        ([[1, 1, 0], [1, 1, 1]], r"rows \[0\] .* padding \(0\) after a token \(1\)"),
        ([[0, 1, 0], [1, 1, 1]], "pad on the left"),
        ([[0, 0, 0], [1, 1, 1]], r"rows \[0\] of attention_mask have no token"),
        ([[1, 2, 1], [1, 1, 1]], "0 .* and 1 .* only"),
        ([[1, 1], [1, 1]], "must match"),
    ],
)
def test_bad_prompt_masks_are_refused(mask, message):
    model = tiny_lm()
    with pytest.raises(ValueError, match=message):
        model.generate(torch.ones(2, 3, dtype=torch.long), 2, attention_mask=torch.tensor(mask))


# -- sampling and byte overrides -------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
def test_sampling_with_the_cache_is_seeded_and_matches_the_uncached(backbone):
    model = tiny_lm("learned", backbone)
    rows = prompts([2, 4], seed=3)
    ids, mask = left_pad(rows)

    def sample(seed, use_cache=True):
        return model.generate(
            ids, 8, attention_mask=mask, do_sample=True, temperature=0.8, top_p=0.9, seed=seed,
            use_cache=use_cache,
        )  # fmt: skip

    a = sample(1)
    assert torch.equal(a, sample(1)) and not torch.equal(a, sample(2))
    assert torch.equal(a, sample(1, use_cache=False))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_byte_overrides_with_the_cache_and_left_padding(backbone):
    model = tiny_lm("kronecker", backbone)
    ids = torch.tensor([[0, 10, 20, 30], [11, 21, 31, 41]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    overrides = {(0, 2): TOKEN_BYTES[77], (1, 1): TOKEN_BYTES[88]}
    swapped = ids.clone()
    swapped[0, 2], swapped[1, 1] = 77, 88
    expected = model.generate(swapped, 5, attention_mask=mask)
    for use_cache in (True, False):
        out = model.generate(
            ids, 5, attention_mask=mask, byte_overrides=overrides, use_cache=use_cache
        )
        assert torch.equal(out[:, 4:], expected[:, 4:])
    alone = model.generate(ids[:1, 1:], 5, byte_overrides={(0, 1): TOKEN_BYTES[77]})
    assert torch.equal(expected[0, 4:], alone[0, 3:])


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("use_cache", [True, False])
def test_a_tied_computed_head_builds_its_table_once_per_generation(
    autocast, use_cache, monkeypatch
):
    """Not once per new token: in evaluation the kept table (none is kept under autocast,
    so generate reads the table once per call)."""
    model = tiny_lm("fourier", tie_embeddings=True)
    counted = {"tables": 0}
    table = type(model.embedding).table

    def counting_table(self, *args, **kwargs):
        counted["tables"] += 1
        return table(self, *args, **kwargs)

    monkeypatch.setattr(type(model.embedding), "table", counting_table)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model.generate(prompts([6, 6])[0].unsqueeze(0), 5, use_cache=use_cache)
        assert counted["tables"] == 1
        model.generate(prompts([6, 6])[0].unsqueeze(0), 5, use_cache=use_cache)
    assert counted["tables"] == (2 if autocast else 1)  # the kept table serves a second call
