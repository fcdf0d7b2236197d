"""`petra compress`: swap, measure, recover by distillation, resume, on real models and data."""

import json
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from petra.cli import main
from petra.compress import CompressSettings, comparison_table, compress, format_result
from petra.data import load_tokenizer
from petra.hf import from_pretrained


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A small GPT-2-shaped causal LM with GPT-2's real tokenizer, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny-lm")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=50257)
    GPT2LMHeadModel(config).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2")).save_pretrained(folder)
    return folder


def lm_settings(folder, **extra) -> CompressSettings:
    base = dict(
        model=str(folder),
        kind="kronecker",
        steps=4,
        batch_size=2,
        max_length=32,
        eval_chunks=4,
        checkpoint_every=2,
        embedding_lr=1e-2,
        lr=1e-3,
        start="norms",
    )  # fmt: skip  (the least-squares start: its own test, below)
    return CompressSettings(**{**base, **extra})


def test_corpus_ids_are_tokenized_once_per_tokenizer_and_split():
    from petra.compress import corpus_ids, load_corpus

    gpt2, bert = (PreTrainedTokenizerFast(tokenizer_object=load_tokenizer(name))
                  for name in ("gpt2", "bert-base-uncased"))  # fmt: skip
    ids = corpus_ids(gpt2, "validation")
    text = "\n".join(load_corpus("brown", "validation"))
    assert ids.tolist() == gpt2(text, add_special_tokens=False)["input_ids"]
    assert (
        corpus_ids(PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2")), "validation")
        is ids
    )  # fmt: skip  (another object, the same tokenizer)
    assert not torch.equal(corpus_ids(bert, "validation")[:50], ids[:50])


def test_causal_lm_is_measured_swapped_and_recovered(tiny_lm, tmp_path):
    result = compress(lm_settings(tiny_lm, start="fit"), tmp_path / "run", progress=False)
    assert result["model_type"] == "causal-lm"
    assert set(result["quality"]) == {"original", "swapped", "recovered"}
    for quality in result["quality"].values():
        assert quality["perplexity"] == pytest.approx(math.exp(quality["val_loss"]))
    params = result["parameters"]
    assert params["head"] == "tied" and params["embedding_before"] == 50257 * 32
    assert params["params_before"] - params["params_after"] == 50257 * 32 - 32 * 256 * 16
    # the distillation moved the student towards the teacher: its KL fell, so the loss moved
    assert result["quality"]["recovered"]["val_loss"] != result["quality"]["swapped"]["val_loss"]
    saved = json.loads((tmp_path / "run" / "compress.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert "recovered" in format_result(result)
    table = comparison_table([tmp_path / "run"])
    assert table.startswith("val_loss") and "| kronecker, fit start | 131,072 |" in table


def test_the_saved_student_is_the_recovered_model(tiny_lm, tmp_path):
    from petra.compress import Job, load_teacher

    settings = lm_settings(tiny_lm)
    result = compress(settings, tmp_path / "run", progress=False)
    student = from_pretrained(tmp_path / "run" / "model")
    teacher, tokenizer, kind = load_teacher(str(tiny_lm))
    quality = Job(kind, teacher, tokenizer, settings).quality(student)
    assert quality == pytest.approx(result["quality"]["recovered"], rel=1e-6)


def test_an_interrupted_run_resumes_to_the_same_model(tiny_lm, tmp_path, monkeypatch):
    from petra import compress as module

    whole = compress(lm_settings(tiny_lm), tmp_path / "whole", progress=False)
    calls = {"n": 0}
    original = module.Job.loss

    def interrupted(self, student, indices):  # the process dies during the 4th step
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, student, indices)

    monkeypatch.setattr(module.Job, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress(lm_settings(tiny_lm), tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "checkpoint" / "trainer.pt").is_file()
    monkeypatch.setattr(module.Job, "loss", original)
    resumed = compress(lm_settings(tiny_lm), tmp_path / "resumed", progress=False)
    assert resumed["quality"] == whole["quality"]
    a = from_pretrained(tmp_path / "whole" / "model").state_dict()
    b = from_pretrained(tmp_path / "resumed" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "resumed" / "checkpoint").exists()


def test_a_finished_run_is_reused_and_other_settings_are_refused(tiny_lm, tmp_path):
    first = compress(lm_settings(tiny_lm), tmp_path / "run", progress=False)
    assert compress(lm_settings(tiny_lm), tmp_path / "run", progress=False) == first
    with pytest.raises(ValueError, match=r"other settings \(steps\)"):
        compress(lm_settings(tiny_lm, steps=6), tmp_path / "run", progress=False)


def test_sentence_encoder_on_minilm(tmp_path, monkeypatch):
    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    settings = CompressSettings(model="all-minilm-l6-v2", kind="learned", factor_dim=8,
                                steps=2, batch_size=4, max_sentences=16, eval_pairs=40)  # fmt: skip
    result = compress(settings, tmp_path / "run", progress=False)
    assert result["model_type"] == "sentence"
    original = result["quality"]["original"]["stsb_dev_spearman"]
    assert 70 < original <= 100  # all-MiniLM-L6-v2 on the first 40 dev pairs
    params = result["parameters"]
    assert params["embedding_after"] == 30522 * 8 + 8 * 384
    assert params["saved"] == 30522 * 384 - params["embedding_after"]
    assert list((tmp_path / "cache").glob("compress-teacher-*.npy"))  # shared by every arm
    student = from_pretrained(tmp_path / "run" / "model")
    assert student.encode(["a sentence"]).shape == (1, 384)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no/such/folder", "--kind", "kronecker"], "neither a model folder"),
        (["--model", "all-minilm-l6-v2", "--kind", "learned", "--steps", "0"], "steps must"),
        (["--model", "all-minilm-l6-v2", "--kind", "fourier", "--option", "refine"], "KEY=VALUE"),
        (["--kind", "fourier"], "needs --model"),
        (["--table", "no/such/run"], "not found"),
    ],
)
def test_cli_refuses_bad_input_without_a_traceback(argv, message, tmp_path, capsys):
    assert main(["compress", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
