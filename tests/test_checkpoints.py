"""Model checkpoints: what the saved config holds, the saved dtype, and a save that fails
half-way (nothing half-written, a previous checkpoint kept)."""

import json

import numpy as np
import pytest
import torch

from petra.embeddings import FourierEmbedding
from petra.models import CausalLM, ModelConfig, build_model, load_pretrained


def config(tokenizer, embedding: dict) -> ModelConfig:
    return ModelConfig(
        model="causal_lm",
        vocab_size=tokenizer.get_vocab_size(),
        dim=32,
        n_layers=2,
        n_heads=2,
        max_len=64,
        embedding=embedding,
    )


def perturbed(model):
    """The model with its weights moved off the initialization, in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def ids(tokenizer):
    return torch.tensor([tokenizer.encode("to be or not to be, that is the question").ids])


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- the Fourier frequency order -------------------------------------------------------
def test_frequency_order_model_round_trips_without_its_counts(tiny_tokenizer, tmp_path):
    """The counts build the order; the order (`embedding.id_rank`) is what is saved. The
    config stays small, JSON and count-free, and loading needs no counts."""
    vocab = tiny_tokenizer.get_vocab_size()
    counts = np.random.default_rng(0).integers(0, 1000, vocab)  # numpy, as token_counts gives
    embedding = {"kind": "fourier", "id_order": "frequency", "token_counts": counts}
    model = perturbed(build_model(config(tiny_tokenizer, embedding), tokenizer=tiny_tokenizer))
    assert model.config.embedding == {"kind": "fourier", "id_order": "frequency"}

    model.save_pretrained(tmp_path / "lm", tokenizer=tiny_tokenizer)
    text = (tmp_path / "lm" / "config.json").read_text()
    assert json.loads(text)["embedding"] == {"kind": "fourier", "id_order": "frequency"}
    assert len(text) < 1000  # 512 bytes; the 384 counts would add ~2.6 kB (GPT-2's: ~500 kB)

    loaded = load_pretrained(tmp_path / "lm", tokenizer=tiny_tokenizer)
    assert torch.equal(loaded.embedding.id_rank, model.embedding.id_rank)
    assert loaded.config == model.config
    x = ids(tiny_tokenizer)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="id_order='frequency' needs token_counts"):
        build_model(loaded.config)  # neither counts nor a loaded rank: refused, not random


# -- atomic saving ---------------------------------------------------------------------
class UnwritableTokenizer:
    """A tokenizer whose `save` fails, as on a full disk."""

    def save(self, path):
        raise OSError("No space left on device")


def unserializable_model(tokenizer):
    """A model built without `build_model`, whose config keeps numpy counts (not JSON)."""
    counts = np.arange(tokenizer.get_vocab_size())
    embedding = {"kind": "fourier", "id_order": "frequency", "token_counts": counts}
    fourier = FourierEmbedding(counts.size, 32, id_order="frequency", token_counts=counts)
    return CausalLM(config(tokenizer, embedding), fourier)


FAILURES = {
    "config": (lambda tok: (unserializable_model(tok), None), TypeError, "cannot be saved as JSON"),
    "tokenizer": (
        lambda tok: (build_model(config(tok, {"kind": "learned"})), UnwritableTokenizer()),
        OSError,
        "No space left",
    ),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_save_leaves_no_folder_behind(tiny_tokenizer, tmp_path, failure):
    make, error, message = FAILURES[failure]
    model, tokenizer = make(tiny_tokenizer)
    with pytest.raises(error, match=message):
        model.save_pretrained(tmp_path / "lm", tokenizer=tokenizer)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_save_keeps_the_previous_checkpoint(tiny_tokenizer, tmp_path, failure):
    previous = perturbed(build_model(config(tiny_tokenizer, {"kind": "learned"})))
    previous.save_pretrained(tmp_path / "lm", tokenizer=tiny_tokenizer)
    before = files(tmp_path / "lm")
    make, error, message = FAILURES[failure]
    model, tokenizer = make(tiny_tokenizer)
    with pytest.raises(error, match=message):
        model.save_pretrained(tmp_path / "lm", tokenizer=tokenizer)
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]
    assert files(tmp_path / "lm") == before
    x = ids(tiny_tokenizer)
    torch.testing.assert_close(load_pretrained(tmp_path / "lm")(x), previous(x), rtol=0, atol=0)


def test_saving_over_a_checkpoint_replaces_the_whole_folder(tiny_tokenizer, tmp_path):
    """The new checkpoint has no tokenizer: the old tokenizer.json must not linger in it."""
    build_model(config(tiny_tokenizer, {"kind": "learned"})).save_pretrained(
        tmp_path / "lm", tokenizer=tiny_tokenizer
    )
    model = perturbed(build_model(config(tiny_tokenizer, {"kind": "fourier"})))
    model.save_pretrained(tmp_path / "lm")
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]
    assert sorted(files(tmp_path / "lm")) == ["config.json", "model.safetensors"]
    x = ids(tiny_tokenizer)
    torch.testing.assert_close(load_pretrained(tmp_path / "lm")(x), model(x), rtol=0, atol=0)


def test_saving_through_a_symbolic_link_replaces_the_folder_it_points_to(tiny_tokenizer, tmp_path):
    build_model(config(tiny_tokenizer, {"kind": "learned"})).save_pretrained(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    model = perturbed(build_model(config(tiny_tokenizer, {"kind": "fourier"})))
    model.save_pretrained(tmp_path / "link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert (tmp_path / "link").is_symlink()
    x = ids(tiny_tokenizer)
    torch.testing.assert_close(load_pretrained(tmp_path / "link")(x), model(x), rtol=0, atol=0)


def test_saving_into_a_folder_with_other_files_is_refused(tiny_tokenizer, tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    model = build_model(config(tiny_tokenizer, {"kind": "learned"}))
    with pytest.raises(ValueError, match=r"not part of a checkpoint \(notes\.txt\).*new or empty"):
        model.save_pretrained(tmp_path)
    assert files(tmp_path) == {"notes.txt": b"my notes"}


# -- the saved dtype -------------------------------------------------------------------
BF16_EMBEDDINGS = {
    "learned": {"kind": "learned"},
    "fourier": {"kind": "fourier", "id_order": "permuted", "cache_features": True},
    "kronecker": {"kind": "kronecker", "pos_dim": 8},
    "kronecker-factorized": {"kind": "kronecker", "pos_dim": 8, "rank": 5},
    "qr": {"kind": "qr", "operation": "add"},
    "hash": {"kind": "hash", "buckets": 40, "seed": 3},
    "dhe": {"kind": "dhe", "hidden": 16, "code_dim": 32, "distribution": "gaussian"},
    "tt": {"kind": "tt", "rank": 4},
}


@pytest.mark.parametrize("embedding", sorted(BF16_EMBEDDINGS))
def test_bfloat16_checkpoint_reloads_in_bfloat16(tiny_tokenizer, tmp_path, embedding):
    """Floating parameters come back in bfloat16 (not float32), integer buffers in their own
    dtypes, and the outputs are bit-identical."""
    built = build_model(
        config(tiny_tokenizer, BF16_EMBEDDINGS[embedding]), tokenizer=tiny_tokenizer
    )
    model = perturbed(built.to(torch.bfloat16))
    model.save_pretrained(tmp_path / "lm")
    loaded = load_pretrained(tmp_path / "lm")
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    saved, rebuilt = model.state_dict(), loaded.state_dict()
    assert {k: v.dtype for k, v in rebuilt.items()} == {k: v.dtype for k, v in saved.items()}
    x = ids(tiny_tokenizer)
    out = loaded(x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, model(x))
