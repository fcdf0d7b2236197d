"""Models: configs, the four model types with every embedding kind, generation, checkpoints."""

import json
import math
import re

import pytest
import torch

from petra.data import load_tokenizer
from petra.embeddings import KroneckerEmbedding
from petra.embeddings.token_bytes import token_bytes
from petra.models import (
    ModelConfig,
    build_model,
    load_pretrained,
    top_p_filter,
)

EMBEDDINGS = {
    "learned": {"kind": "learned"},
    "fourier": {"kind": "fourier", "refine": "geglu", "expansion": 0.25},
    "kronecker": {"kind": "kronecker", "pos_dim": 8},
    "ngram": {"kind": "ngram", "rows": 256},
}
MODEL_TYPES = ("encoder", "sentence", "classifier", "causal_lm")


def tiny(tokenizer, model="encoder", embedding="learned", **changes) -> torch.nn.Module:
    config = ModelConfig(
        model=model,
        vocab_size=tokenizer.get_vocab_size(),
        dim=32,
        n_layers=2,
        n_heads=2,
        max_len=64,
        num_labels=3,
        embedding=dict(EMBEDDINGS[embedding]),
        **changes,
    )
    return build_model(config, tokenizer=tokenizer).eval()


def batch(tokenizer, texts=("to be or not to be", "the king")):
    encoded = [tokenizer.encode(t).ids for t in texts]
    length = max(map(len, encoded))
    ids = torch.tensor([e + [0] * (length - len(e)) for e in encoded])
    mask = torch.tensor([[1] * len(e) + [0] * (length - len(e)) for e in encoded])
    return ids, mask


# -- configs ---------------------------------------------------------------------------
def test_config_round_trips_through_json(tmp_path):
    config = ModelConfig(
        model="causal_lm", dim=64, embedding={"kind": "fourier", "basis": "legendre"}
    )
    assert ModelConfig.from_json(config.to_json()) == config
    (tmp_path / "config.json").write_text(config.to_json())
    assert ModelConfig.load(tmp_path / "config.json") == config


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "seq2seq"}, r"unknown model='seq2seq'; choose one of \('encoder'"),
        ({"backbone": "lstm"}, "unknown backbone='lstm'"),
        ({"dim": 30, "n_heads": 4}, "must split into n_heads=4 heads of even width"),
        ({"embedding": {"refine": "linear"}}, 'embedding must be a dict with a "kind"'),
        ({"n_layers": 0}, "n_layers must be positive"),
        ({"embedding_dropout": 1.0}, r"embedding_dropout must be in \[0, 1\)"),
    ],
)
def test_bad_configs_say_what_is_valid(values, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**values)


def test_unknown_config_keys_are_listed():
    with pytest.raises(ValueError, match=r"unknown config keys \['width'\]; valid keys are"):
        ModelConfig.from_dict({"width": 3})


def test_spectral_widths_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="dim 96 is not divisible by slices=5"):
        ModelConfig(dim=96, n_heads=2, backbone="spectral", slices=5)
    with pytest.raises(ValueError, match="each slice's 24 features must split into n_heads=5"):
        ModelConfig(dim=96, n_heads=5, backbone="spectral", slices=4)
    with pytest.raises(ValueError, match="unknown transform='fft'"):
        ModelConfig(backbone="spectral", transform="fft")


# -- every model type with every embedding kind ------------------------------------------
@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_output_shapes(tiny_tokenizer, model_type, embedding):
    model = tiny(tiny_tokenizer, model_type, embedding)
    ids, mask = batch(tiny_tokenizer)
    out = model(ids, attention_mask=mask)
    b, t = ids.shape
    expected = {
        "encoder": (b, t, 32),
        "sentence": (b, 32),
        "classifier": (b, 3),
        "causal_lm": (b, t, tiny_tokenizer.get_vocab_size()),
    }[model_type]
    assert out.shape == expected and torch.isfinite(out).all()
    if model_type == "sentence":
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(b))


@pytest.mark.parametrize("model_type", ["sentence", "classifier", "encoder"])
def test_padding_does_not_change_a_sentence(tiny_tokenizer, model_type):
    """A sentence alone and in a batch padded to a longer sentence gives the same output."""
    model = tiny(tiny_tokenizer, model_type, "fourier")
    alone_ids, alone_mask = batch(tiny_tokenizer, ["the king"])
    ids, mask = batch(tiny_tokenizer, ["the king", "to be or not to be, that is the question"])
    alone = model(alone_ids, attention_mask=alone_mask)[0]
    padded = model(ids, attention_mask=mask)[0]
    if model_type == "encoder":
        padded = padded[: alone_ids.shape[1]]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
def test_causal_lm_never_looks_ahead(tiny_tokenizer, embedding):
    model = tiny(tiny_tokenizer, "causal_lm", embedding)
    ids = torch.randint(0, tiny_tokenizer.get_vocab_size(), (2, 12))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(0, tiny_tokenizer.get_vocab_size(), (2, 5))
    torch.testing.assert_close(model(changed)[:, :7], model(ids)[:, :7], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model(changed)[:, 7:], model(ids)[:, 7:])


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
def test_tied_head_is_the_embedding_table_and_trains_it(tiny_tokenizer, embedding):
    model = tiny(tiny_tokenizer, "causal_lm", embedding, tie_embeddings=True)
    ids = torch.randint(0, tiny_tokenizer.get_vocab_size(), (2, 9))
    hidden = model.hidden_states(ids)
    torch.testing.assert_close(model(ids), hidden @ model.embedding.table().T)
    # with the input embedding taken out of the path, the head alone still trains it
    logits = model.hidden_states(ids).detach() @ model.embedding.table().T
    logits.logsumexp(-1).sum().backward()
    for name, p in model.embedding.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.param_report()["head"] == 0 and model.param_report()["head_tied"]


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
def test_untied_head_is_its_own_matrix(tiny_tokenizer, embedding):
    model = tiny(tiny_tokenizer, "causal_lm", embedding, tie_embeddings=False)
    vocab = tiny_tokenizer.get_vocab_size()
    assert model.head.weight.shape == (vocab, 32)
    report = model.param_report()
    assert report["head"] == vocab * 32 and not report["head_tied"]
    assert report["total"] == sum(p.numel() for p in model.parameters())
    assert report["embedding"] + report["encoder"] + report["head"] == report["total"]
    ids = torch.randint(0, vocab, (2, 9))
    torch.testing.assert_close(model(ids), model.hidden_states(ids) @ model.head.weight.T)


@pytest.mark.parametrize(("embedding", "tied"), [("learned", True), ("fourier", False),
                                                 ("kronecker", False)])  # fmt: skip
def test_each_kind_gets_its_papers_head_by_default(tiny_tokenizer, tmp_path, embedding, tied):
    """Learned: tied (the Kronecker paper's baseline); Kronecker: its own Linear(d, V) (the
    paper's LM arm); Fourier: untied (a tied head's logits are a low-degree trigonometric
    polynomial of the id). The resolved choice is what config.json records."""
    model = tiny(tiny_tokenizer, "causal_lm", embedding)
    assert (model.head is None) == tied
    assert model.config.tie_embeddings is tied
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["tie_embeddings"] is tied
    assert (load_pretrained(tmp_path / "m").head is None) == tied


def test_kronecker_lm_starts_near_uniform_logits(gpt2):
    """A tied Kronecker head made the first loss ~112 nats at the demo size (ln V = 10.8 for
    GPT-2): logits were a linear function of byte codes. Its own head starts near ln V."""
    config = ModelConfig(model="causal_lm", vocab_size=gpt2.get_vocab_size(), dim=128,
                         n_layers=2, n_heads=2, max_len=64,
                         embedding={"kind": "kronecker"})  # fmt: skip
    model = build_model(config, tokenizer=gpt2)
    ids = torch.tensor([gpt2.encode("To be, or not to be, that is the question:").ids])
    loss = torch.nn.functional.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:])
    assert abs(loss.item() - math.log(gpt2.get_vocab_size())) < 1.0


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_param_report_parts_add_up(tiny_tokenizer, model_type):
    model = tiny(tiny_tokenizer, model_type, "kronecker")
    report = model.param_report()
    assert report["total"] == sum(p.numel() for p in model.parameters())
    assert report["embedding"] + report["encoder"] + report["head"] == report["total"]
    assert report["embedding_norm"] == 0
    normed = tiny(tiny_tokenizer, model_type, "kronecker", embedding_norm=True).param_report()
    assert normed["embedding_norm"] == 32 and normed["total"] == report["total"] + 32
    parts = ("embedding", "embedding_norm", "encoder", "head")
    assert sum(normed[part] for part in parts) == normed["total"]
    assert report["embedding"] == 256 * 8 * 32
    # 2 blocks: attention 4 d^2, GeGLU 3 d (4 d), two norms; plus the final norm
    assert report["encoder"] == 2 * (4 * 32 * 32 + 3 * 32 * 128 + 2 * 32) + 32
    if model_type == "classifier":
        assert report["head"] == 32 * 3 + 3
    vocab = tiny_tokenizer.get_vocab_size()
    assert report["total_with_learned_embedding"] == report["total"] - 256 * 8 * 32 + vocab * 32


def test_classifier_trains_on_a_tiny_batch(tiny_tokenizer):
    torch.manual_seed(0)
    model = tiny(tiny_tokenizer, "classifier", "kronecker").train()
    ids, mask = batch(tiny_tokenizer, ["to be", "or not", "the king", "a horse"])
    labels = torch.tensor([0, 1, 2, 0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(ids, attention_mask=mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# -- inputs ----------------------------------------------------------------------------
def test_bad_inputs_are_refused_clearly(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "encoder", "learned")
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, length\)"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match="exceeds max_len=64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token id 100000 is outside the vocabulary range"):
        model(torch.tensor([[1, 100000]]))
    with pytest.raises(ValueError, match="a learned embedding cannot embed raw bytes"):
        model(torch.tensor([[1, 2]]), byte_overrides={(0, 1): b"x"})


@pytest.mark.parametrize("backbone", ["standard", "spectral"])
@pytest.mark.parametrize("model_type", ["encoder", "causal_lm"])
@pytest.mark.parametrize("shape", [(2, 0), (0, 5), (0, 0)])
def test_empty_batches_and_sequences_give_empty_outputs(
    tiny_tokenizer, model_type, backbone, shape
):
    """Like nn.Embedding: (B, T) ids with no element give (B, T, ...) outputs, for a batch of
    no rows as for rows of no token, with or without a mask, and gradients flow (to nothing)."""
    model = tiny(tiny_tokenizer, model_type, "fourier", backbone=backbone, slices=2).train()
    ids = torch.zeros(shape, dtype=torch.long)
    width = 32 if model_type == "encoder" else tiny_tokenizer.get_vocab_size()
    for mask in (None, torch.ones(shape, dtype=torch.long)):
        out = model(ids, attention_mask=mask)
        assert out.shape == (*shape, width) and out.dtype == torch.float32
    out.sum().backward()
    assert model.hidden_states(ids).shape == (*shape, 32)


@pytest.mark.parametrize("model_type", ["sentence", "classifier"])
@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_pooled_models_take_an_empty_batch_but_refuse_empty_sequences(
    tiny_tokenizer, model_type, pooling
):
    model = tiny(tiny_tokenizer, model_type, "learned", pooling=pooling)
    width = 32 if model_type == "sentence" else 3
    assert model(torch.zeros(0, 5, dtype=torch.long)).shape == (0, width)
    message = (
        f"a {model_type} model pools each row's tokens into one vector, but the rows have "
        "length 0: give every row at least one token"
    )
    for shape in [(2, 0), (0, 0)]:
        with pytest.raises(ValueError, match=re.escape(message)):
            model(torch.zeros(shape, dtype=torch.long))


def test_bad_ids_of_an_empty_batch_are_still_checked(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="exceeds max_len=64"):
        model(torch.zeros(0, 65, dtype=torch.long))


def test_an_empty_step_through_the_cache_leaves_it_unchanged(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    ids = torch.tensor([[5, 6, 7]])
    cache = model.new_cache()
    model(ids, cache=cache)
    assert model(ids[:, :0], cache=cache).shape == (1, 0, tiny_tokenizer.get_vocab_size())
    assert cache[0].length == 3
    torch.testing.assert_close(
        model(torch.tensor([[8]]), cache=cache)[:, -1], model(torch.tensor([[5, 6, 7, 8]]))[:, -1]
    )


def test_tokenizer_of_another_size_is_refused(tiny_tokenizer, gpt2):
    config = ModelConfig(vocab_size=384, dim=32, n_heads=2, n_layers=1)
    with pytest.raises(ValueError, match="the tokenizer has 50257 tokens but vocab_size=384"):
        build_model(config, tokenizer=gpt2)


# -- generation ------------------------------------------------------------------------
def test_greedy_generation_follows_the_argmax(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "fourier")
    prompt, _ = batch(tiny_tokenizer, ["to be or not"])
    out = model.generate(prompt, 5)
    ids = prompt
    for _ in range(5):
        ids = torch.cat((ids, model(ids)[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(out, ids)


def test_sampling_is_seeded(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    prompt, _ = batch(tiny_tokenizer, ["to be or not"])
    a = model.generate(prompt, 8, do_sample=True, top_p=0.9, seed=1)
    b = model.generate(prompt, 8, do_sample=True, top_p=0.9, seed=1)
    c = model.generate(prompt, 8, do_sample=True, top_p=0.9, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unseeded_sampling_leaves_the_global_rng_alone(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    prompt, _ = batch(tiny_tokenizer, ["to be or not"])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model.generate(prompt, 4, do_sample=True)
    assert torch.equal(torch.rand(3), expected)


def test_stop_token_finishes_a_row(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])
    free = model.generate(prompt, 6)  # no stop token
    stop = int(free[0, 3])  # row 0's first new token
    out = model.generate(prompt, 6, stop_token_id=stop)
    assert torch.all(out[0, 3:] == stop)  # row 0 stops at once, then is padded with it
    row = free[1, 3:].tolist()
    cut = row.index(stop) + 1 if stop in row else len(row)
    assert out[1, 3 : 3 + cut].tolist() == row[:cut]  # row 1 runs on until its own stop
    assert torch.all(out[1, 3 + cut :] == stop)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.6)).tolist() == [[True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False]]
    assert torch.isfinite(top_p_filter(logits[:, [2, 0, 1]], 0.6)).tolist() == [[False, True, True]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


@pytest.mark.parametrize("embedding", ["kronecker", "ngram"])  # the kinds that embed bytes
def test_byte_override_equals_the_token_with_those_bytes(tiny_tokenizer, embedding):
    model = tiny(tiny_tokenizer, "causal_lm", embedding)
    pieces = token_bytes(tiny_tokenizer)
    ids = torch.tensor([[10, 20, 30, 40]])
    swapped = ids.clone()
    swapped[0, 2] = 77
    overridden = model(ids, byte_overrides={(0, 2): pieces[77]})
    torch.testing.assert_close(overridden, model(swapped))
    generated = model.generate(ids, 3, byte_overrides={(0, 2): pieces[77]})
    assert torch.equal(generated[:, 4:], model.generate(swapped, 3)[:, 4:])


def test_generation_respects_max_len(tiny_tokenizer):
    model = tiny(tiny_tokenizer, "causal_lm", "learned")
    with pytest.raises(ValueError, match="exceeds max_len=64"):
        model.generate(torch.ones(1, 60, dtype=torch.long), 5)


# -- checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_checkpoint_round_trip_is_exact(tiny_tokenizer, tmp_path, model_type, embedding):
    model = tiny(tiny_tokenizer, model_type, embedding)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the initialization
    model.save_pretrained(tmp_path, tokenizer=tiny_tokenizer)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "model.safetensors", "tokenizer.json"]
    assert load_tokenizer(tmp_path).get_vocab() == tiny_tokenizer.get_vocab()
    loaded = load_pretrained(tmp_path, tokenizer=tiny_tokenizer)
    ids, mask = batch(tiny_tokenizer)
    torch.testing.assert_close(
        loaded(ids, attention_mask=mask), model(ids, attention_mask=mask), rtol=0, atol=0
    )
    assert loaded.config == model.config
    if embedding == "kronecker":  # bytes and fingerprint came from the checkpoint alone
        assert torch.equal(loaded.embedding.byte_table, model.embedding.byte_table)
        assert isinstance(loaded.embedding, KroneckerEmbedding)


def test_checkpoint_from_another_tokenizer_is_refused(tiny_tokenizer, gpt2, tmp_path):
    tiny(tiny_tokenizer, "encoder", "learned").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trained with another tokenizer"):
        load_pretrained(tmp_path, tokenizer=gpt2)


def test_checkpoint_that_does_not_fit_its_config_is_refused(tiny_tokenizer, tmp_path):
    tiny(tiny_tokenizer, "encoder", "learned").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match=r"do not fit this model's config: missing backbone\.blocks\.2"
    ):
        load_pretrained(tmp_path)
    config["n_layers"], config["dim"], config["n_heads"] = 2, 64, 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match=r"attn\.out\.weight: checkpoint \(32, 32\) vs model \(64, 64\)"
    ):
        load_pretrained(tmp_path)


def test_truncated_or_missing_checkpoint_files_are_reported(tiny_tokenizer, tmp_path):
    tiny(tiny_tokenizer, "encoder", "kronecker").save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load_pretrained(tmp_path / "nowhere")


def test_kronecker_model_needs_its_token_bytes(tiny_tokenizer):
    config = ModelConfig(
        vocab_size=384, dim=32, n_heads=2, n_layers=1, embedding={"kind": "kronecker"}
    )
    with pytest.raises(ValueError, match="needs exactly one of tokenizer= or token_bytes="):
        build_model(config)
    from_bytes = build_model(config, token_bytes=token_bytes(tiny_tokenizer))
    from_tokenizer = build_model(config, tokenizer=tiny_tokenizer)
    assert torch.equal(from_bytes.embedding.byte_table, from_tokenizer.embedding.byte_table)
    assert from_tokenizer.config.tokenizer_fingerprint is not None


# -- the token vectors' norm and dropout -----------------------------------------------
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_embedding_norm_and_dropout_off_is_the_model_without_them(tiny_tokenizer, model_type):
    """Off (the defaults), they add no module and no parameter: the state dict and the
    outputs are those of a model built before they existed (the same seed)."""
    off = tiny(tiny_tokenizer, model_type, embedding_norm=False, embedding_dropout=0.0)
    assert off.embedding_norm is None and off.embedding_dropout is None
    assert not any(key.startswith("embedding_") for key in off.state_dict())
    ids, _ = batch(tiny_tokenizer)
    off.train()  # no dropout anywhere: the first block reads the embedding's rows as they are
    assert torch.equal(off.embed(ids), off.embedding(ids))
    # the parameter count of this shape before the options existed (learned table, 2 blocks
    # of attention 4 d^2 + GeGLU 3 d (4 d) + two norms, the final norm, the model's head)
    vocab = tiny_tokenizer.get_vocab_size()
    heads = {"encoder": 0, "sentence": 1, "classifier": 32 * 3 + 3, "causal_lm": 0}
    blocks = 2 * (4 * 32 * 32 + 3 * 32 * 128 + 2 * 32) + 32
    assert off.param_report()["total"] == vocab * 32 + blocks + heads[model_type]


@pytest.mark.parametrize("model_type", ["sentence", "causal_lm"])
def test_embedding_norm_and_dropout_act_on_the_token_vectors(tiny_tokenizer, model_type):
    """dropout(RMSNorm(E[id])) enters the first block: the norm's gain trains, the dropout
    acts in training only, and a saved model loads with both."""
    model = tiny(tiny_tokenizer, model_type, embedding_norm=True, embedding_dropout=0.5)
    ids, mask = batch(tiny_tokenizer)
    rows = model.embedding(ids)
    normalized = rows / torch.sqrt(rows.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(model.embed(ids), normalized * model.embedding_norm.weight)
    model.train()
    dropped = model.embed(ids)
    zeros = (dropped == 0).float().mean().item()
    assert 0.3 < zeros < 0.7  # about half the features, scaled by 2 where kept
    kept = dropped != 0
    clean = model.eval().embed(ids)
    torch.testing.assert_close(dropped[kept], 2 * clean[kept])
    assert "embedding_norm.weight" in dict(model.named_parameters())


def test_a_model_with_the_embedding_norm_round_trips(tiny_tokenizer, tmp_path):
    model = tiny(tiny_tokenizer, "sentence", embedding_norm=True, embedding_dropout=0.1)
    with torch.no_grad():
        model.embedding_norm.weight.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "m", tiny_tokenizer)
    loaded = load_pretrained(tmp_path / "m").eval()
    assert loaded.config.embedding_norm and loaded.config.embedding_dropout == 0.1
    ids, mask = batch(tiny_tokenizer)
    assert torch.equal(model(ids, attention_mask=mask), loaded(ids, attention_mask=mask))
