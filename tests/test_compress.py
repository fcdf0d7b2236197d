"""`petra compress`: swap, measure, recover by distillation, resume, on real models and data."""

import json
import math
import re
import types
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy.stats import spearmanr
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from petra.cli import main
from petra.compress import (
    CompressSettings,
    comparison_table,
    compress,
    format_result,
    plot_tradeoff,
)
from petra.data import load_tokenizer
from petra.embeddings import kinds
from petra.hf import from_pretrained
from petra.hf.swap import model_bytes


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A small GPT-2-shaped causal LM with GPT-2's real tokenizer, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny-lm")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=50257)
    GPT2LMHeadModel(config).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2")).save_pretrained(folder)
    return folder


CHECKPOINT = "checkpoints/step-00000002"  # where a run of checkpoint_every=2 leaves its first


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
    assert params["embedding_bytes_before"] == 50257 * 32 * 4  # float32
    table = comparison_table([tmp_path / "run"])
    mib = f"{params['embedding_bytes_after'] / 2**20:.2f}"
    assert table.startswith("val_loss") and f"| kronecker, fit start | 131,072 | {mib} |" in table
    # the model's bytes as the table counts them are what its saved weights hold
    with safe_open(tmp_path / "run" / "model" / "petra.safetensors", "pt") as saved_model:
        tensors = [saved_model.get_tensor(name) for name in saved_model.keys()]
    assert model_bytes(params, "after") == sum(t.numel() * t.element_size() for t in tensors)
    assert model_bytes(params, "before") == sum(
        t.numel() * t.element_size() for t in GPT2LMHeadModel.from_pretrained(tiny_lm).parameters()
    )


def test_a_quantized_table_is_counted_in_bytes_and_named_by_its_bits(tiny_lm, tmp_path):
    settings = lm_settings(tiny_lm, kind="quantized", options={"bits": 4})
    result = compress(settings, tmp_path / "run", progress=False)
    params = result["parameters"]
    assert params["embedding_after"] == 2 * 50257  # a scale and an offset per row
    assert params["embedding_bytes_after"] == 50257 * (32 // 2 + 8)  # codes, scale, offset
    table = comparison_table([tmp_path / "run"])
    assert f"| quantized (bits=4) | 100,514 | {50257 * 24 / 2**20:.2f} |" in table


def test_the_plot_places_each_arm_by_its_bytes_and_by_its_parameters(
    tiny_lm, tmp_path, monkeypatch
):
    import petra.compress as module

    settings = lm_settings(tiny_lm, kind="quantized", options={"bits": 4})
    result = compress(settings, tmp_path / "run", progress=False)
    params, quality = result["parameters"], result["quality"]
    drawn = {}
    real_save = module.save
    monkeypatch.setattr(module, "save", lambda figure, axes, path, **kw: drawn.update(
        panels=[[tuple(map(tuple, c.get_offsets())) for c in a.collections] for a in figure.axes]
    ) or real_save(figure, axes, path, **kw))  # fmt: skip
    path = plot_tradeoff([tmp_path / "run"], tmp_path / "plot.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    by_bytes, by_params = drawn["panels"]
    original, start, end = (
        quality[stage]["val_loss"] for stage in ("original", "swapped", "recovered")
    )

    def points(before, after):  # the original, the arm's start, its end
        return [((before, original),), ((after, start),), ((after, end),)]

    mib = {stage: params[f"embedding_bytes_{stage}"] / 2**20 for stage in ("before", "after")}
    assert by_bytes == points(mib["before"], mib["after"])
    assert by_params == points(params["embedding_before"], params["embedding_after"])
    lines = {}
    monkeypatch.setattr(module, "save", lambda figure, axes, path, **kw: lines.update(
        floor=[[tuple(line.get_ydata()) for line in a.lines if line.get_linestyle() == "--"]
               for a in figure.axes]) or real_save(figure, axes, path, **kw))  # fmt: skip
    plot_tradeoff([tmp_path / "run"], tmp_path / "plot.png", ("unigrams", 9.5))
    assert lines["floor"] == [[(9.5, 9.5)], [(9.5, 9.5)]]  # a dashed line on each panel
    table = comparison_table([tmp_path / "run"], ("context-free floor: unigrams", 9.5))
    assert table.endswith("| context-free floor: unigrams | | | | | 9.50 | | (no model) |")


def test_the_unigram_baseline_is_the_smoothed_training_distribution_on_the_scored_tokens():
    """Training ids 0, 0, 1 over 3 ids at add-0.5: p = (2.5, 1.5, 0.5) / 4.5; the chunk
    (2, 0, 1) scores its ids after the first, 0 and 1."""
    from petra.compress import unigram_loss, validation_loss

    loss = unigram_loss(torch.tensor([0, 0, 1]), torch.tensor([[2, 0, 1]]), vocab_size=3)
    assert loss == pytest.approx(-(math.log(2.5 / 4.5) + math.log(1.5 / 4.5)) / 2, rel=1e-12)
    # it scores what validation_loss scores: a model whose logits are log p everywhere
    train, chunks = torch.tensor([0, 0, 1, 3, 3, 3]), torch.tensor([[2, 0, 1], [3, 3, 0]])
    counts = torch.bincount(train, minlength=4).double() + 0.5
    log_p = (counts / counts.sum()).log().float()

    def model(ids):
        return types.SimpleNamespace(logits=log_p.expand(*ids.shape, 4))

    expected = validation_loss(model, chunks)["val_loss"]
    assert unigram_loss(train, chunks, vocab_size=4) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="id 3 is not one of the model's 3 ids"):
        unigram_loss(train, chunks, vocab_size=3)


def test_an_arm_is_named_by_its_kind_base_options_and_start():
    from petra.compress import _arm_name

    def name(kind, options=None, factor_dim=None):
        return _arm_name({"kind": kind, "options": options, "factor_dim": factor_dim,
                          "start": "fit"})  # fmt: skip

    assert name("residual", {"rank": 16}) == "residual on kronecker (rank=16), fit start"
    assert name("residual", {"base": "ngram", "rank": 8}) == "residual on ngram (rank=8), fit start"
    assert name("learned", factor_dim=50) == "learned, SVD rank 50"
    assert name("quantized", {"bits": 4}) == "quantized (bits=4)"


def test_a_trimmed_table_keeps_the_training_texts_ids_and_says_what_it_drops(tiny_lm, tmp_path):
    settings = lm_settings(tiny_lm, kind="trimmed", options={"unk_id": 0})
    result = compress(settings, tmp_path / "run", progress=False)
    rows = result["parameters"]["embedding_after"] // 32  # the kept ids: those of the text
    assert 0 < rows < 50257
    dropped = result["dropped_ids"]
    assert dropped["tokens"] == 4 * 32 and 0 <= dropped["dropped"] <= dropped["tokens"]
    assert dropped["dropped_pct"] == pytest.approx(100 * dropped["dropped"] / dropped["tokens"])
    assert "| trimmed (unk_id=0) |" in comparison_table([tmp_path / "run"])


def test_the_saved_student_is_the_recovered_model(tiny_lm, tmp_path):
    from petra.compress import load_teacher, make_job

    settings = lm_settings(tiny_lm)
    result = compress(settings, tmp_path / "run", progress=False)
    student = from_pretrained(tmp_path / "run" / "model")
    teacher, tokenizer, kind = load_teacher(str(tiny_lm))
    quality = make_job(kind, teacher, tokenizer, settings).quality(student)
    assert quality == pytest.approx(result["quality"]["recovered"], rel=1e-6)


def test_a_causal_lm_chooses_settings_on_held_out_chunks_the_report_never_reads(tiny_lm):
    from petra.compress import load_teacher, make_job, text_chunks

    teacher, tokenizer, kind = load_teacher(str(tiny_lm))
    held_out = text_chunks(tokenizer, "validation", 32)
    reported = make_job(kind, teacher, tokenizer, lm_settings(tiny_lm))
    chosen = make_job(kind, teacher, tokenizer, lm_settings(tiny_lm, eval_split="train"))
    assert torch.equal(reported.eval_chunks, held_out[:4])
    assert torch.equal(chosen.eval_chunks, held_out[4:8])  # the next four: disjoint
    quality = chosen.quality(teacher)
    assert set(quality) == {"select_loss", "select_perplexity"}
    assert quality["select_loss"] != pytest.approx(reported.quality(teacher)["val_loss"])
    too_many = lm_settings(tiny_lm, eval_split="train", eval_chunks=len(held_out))
    with pytest.raises(ValueError, match=f"need {2 * len(held_out)}; measure fewer"):
        make_job(kind, teacher, tokenizer, too_many)


def test_an_interrupted_run_resumes_to_the_same_model(tiny_lm, tmp_path, monkeypatch):
    from petra import compress as module

    whole = compress(lm_settings(tiny_lm), tmp_path / "whole", progress=False)
    calls = {"n": 0}
    original = module.CausalLMJob.loss

    def interrupted(self, student, batch):  # the process dies during the 4th step
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, student, batch)

    monkeypatch.setattr(module.CausalLMJob, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress(lm_settings(tiny_lm), tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / CHECKPOINT / "trainer.pt").is_file()
    monkeypatch.setattr(module.CausalLMJob, "loss", original)
    resumed = compress(lm_settings(tiny_lm), tmp_path / "resumed", progress=False)
    assert resumed["quality"] == whole["quality"]
    a = from_pretrained(tmp_path / "whole" / "model").state_dict()
    b = from_pretrained(tmp_path / "resumed" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "resumed" / "checkpoints").exists()  # deleted once the model is in
    lines = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").open()]
    assert [line["step"] for line in lines] == [4, 4]  # the loss (at the last step), the quality
    assert lines[-1]["eval/val_loss"] == resumed["quality"]["recovered"]["val_loss"]


def test_a_finished_run_is_reused_and_other_settings_are_refused(tiny_lm, tmp_path):
    first = compress(lm_settings(tiny_lm), tmp_path / "run", progress=False)
    assert compress(lm_settings(tiny_lm), tmp_path / "run", progress=False) == first
    with pytest.raises(ValueError, match=r"compress.json describes another run .* \(steps\)"):
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


def test_genre_spearman_change_is_each_genres_own_change():
    """The change per genre is `spearman_change` of that genre's pairs alone, "all" of
    every pair, and the scores before and after are `genre_spearman`'s."""
    from petra.compress import genre_spearman, genre_spearman_change
    from petra.data import load_stsb
    from petra.tasks.sentence import spearman_change

    pairs = load_stsb("dev")
    pairs = [*pairs[:40], *pairs[-40:]]  # two genres, captions first and news last
    gold = np.array([p.score for p in pairs])
    rng = np.random.default_rng(0)
    before, after = gold + rng.normal(0, 2, 80), gold + rng.normal(0, 1, 80)
    found = genre_spearman_change(before, after, pairs)
    assert set(found) == {"all", pairs[0].genre, pairs[-1].genre}
    assert found["all"] == spearman_change(before, after, gold)
    keep = slice(40, 80)
    assert found[pairs[-1].genre] == spearman_change(before[keep], after[keep], gold[keep])
    scores = [genre_spearman(cosines, pairs) for cosines in (before, after)]
    for genre, change in found.items():
        assert change["change"] == pytest.approx(scores[1][genre] - scores[0][genre])


def test_pair_spearman_scores_all_pairs_and_each_genre_alone():
    """Each genre's score is the score of that genre's pairs alone, and "all" is
    `stsb_spearman`'s: encoding all pairs together changes no vector."""
    from petra.compress import load_teacher, pair_spearman, stsb_spearman
    from petra.data import load_stsb

    model, _, _ = load_teacher("all-minilm-l6-v2")
    pairs = load_stsb("dev")
    pairs = [*pairs[:30], *pairs[-30:]]  # two genres, captions first and news last
    found = pair_spearman(model, pairs)
    assert set(found) == {"all", pairs[0].genre, pairs[-1].genre} and len(found) == 3
    for genre in (pairs[0].genre, pairs[-1].genre):
        alone = pair_spearman(model, [p for p in pairs if p.genre == genre])
        assert alone == {"all": pytest.approx(found[genre]), genre: pytest.approx(found[genre])}
    # against an independent Spearman of the cosines (scipy's ranks), on the first genre
    first = [p for p in pairs if p.genre == pairs[0].genre]
    a, b = (model.encode([getattr(p, s) for p in first]) for s in ("sentence1", "sentence2"))
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    rho = 100 * spearmanr(cosines, [p.score for p in first]).statistic
    assert found[pairs[0].genre] == pytest.approx(rho, abs=1e-4)
    assert stsb_spearman(model, limit=30) == pytest.approx(found[pairs[0].genre])


def test_the_cosines_recovery_matches_only_the_pairwise_cosines(tmp_path, monkeypatch):
    """--distil cosines: the loss is `pairwise_cosine_error` of the batch's sentence vectors
    against the teacher's, nothing else (`pairs`, with its per-vector and per-layer terms,
    is larger on the same batch)."""
    from petra.compress import make_job, pairwise_cosine_error, swap_start

    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    settings = {"model": "all-minilm-l6-v2", "kind": "learned", "factor_dim": 8,
                "batch_size": 4, "max_sentences": 16}  # fmt: skip
    start = swap_start(CompressSettings(**settings, distil="cosines"))
    cosines, student = start.job, start.student
    student.eval()
    batch = cosines.collate([0, 1, 2, 3])
    loss, tokens = cosines.loss(student, batch)
    loss = loss.detach()
    vectors = student.encode([cosines.examples[i] for i in range(4)], convert_to_tensor=True)
    assert float(loss) == pytest.approx(
        float(pairwise_cosine_error(vectors, cosines.targets[:4])), rel=1e-4, abs=1e-6
    )
    assert tokens > 4
    pairs = make_job(cosines.model_type, start.teacher, cosines.tokenizer,
                     CompressSettings(**settings, distil="pairs"))  # fmt: skip
    assert float(pairs.loss(student, batch)[0].detach()) > float(loss)  # its per-vector terms add
    with pytest.raises(ValueError, match="--distil cosines compares the sentences of a batch"):
        CompressSettings(**{**settings, "batch_size": 1}, distil="cosines")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no/such/folder", "--kind", "kronecker"], "neither a model folder"),
        (["--model", "all-minilm-l6-v2", "--kind", "kronecker", "--steps", "0"], "steps must"),
        (["--model", "all-minilm-l6-v2", "--kind", "fourier", "--option", "refine"], "KEY=VALUE"),
        (["--kind", "fourier"], "needs --model"),
        (["--table", "no/such/run"], "not found"),
        (["--model", "all-minilm-l6-v2", "--kind", "learned", "--max-length", "1"], "at least 2"),
        (
            [
                "--model",
                "all-minilm-l6-v2",
                "--kind",
                "fourier",
                "--start",
                "norms",
                "--option",
                "id_order=frequency",
            ],
            "reads the corpus counts that --start fit computes: add --start fit",
        ),
    ],
)
def test_cli_refuses_bad_input_without_a_traceback(argv, message, tmp_path, capsys):
    assert main(["compress", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


# -- issue 24: no silent wrong result, no lost run, no traceback ------------------------------
def error_line(err: str) -> str:
    """The one line of a refusal on stderr (after any progress bar of a model's loading)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("petra compress: error: ")
    assert all("error" not in line for line in lines[:-1])
    return lines[-1]


def strict_json(path):
    """The file's JSON, refusing NaN and Infinity (which are not JSON)."""

    def refuse(constant):
        raise ValueError(f"{path} holds {constant}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_the_teacher_cache_is_keyed_on_the_models_contents(tmp_path, monkeypatch):
    """Two models given by one path (a model saved again into its folder) never share the
    teacher's cached vectors; one model at two paths does."""
    import shutil

    from sentence_transformers import SentenceTransformer

    from petra.compress import load_teacher, make_job, model_digest
    from petra.tasks.distill import teacher_path

    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(teacher_path(), "model")
    settings = CompressSettings(model="model", kind="learned", factor_dim=8, max_sentences=16)

    def targets():
        teacher, tokenizer, kind = load_teacher("model")
        job = make_job(kind, teacher, tokenizer, settings)
        return job.targets, teacher.encode(job.examples, convert_to_tensor=True)

    first, _ = targets()
    shutil.copytree("model", "copy")
    assert model_digest("copy") == model_digest("model")  # the same contents, another path
    other = SentenceTransformer("model", device="cpu")
    with torch.no_grad():
        table = other[0].auto_model.embeddings.word_embeddings.weight
        table.copy_(table.roll(1, dims=0))  # another model
    other.save("model")  # saved again into its folder
    assert model_digest("copy") != model_digest("model")
    second, own = targets()
    assert torch.allclose(second, own, atol=1e-5)  # the new model's vectors
    assert not torch.allclose(second, first, atol=1e-2)
    assert len(list((tmp_path / "cache").glob("compress-teacher-*.npy"))) == 2


@pytest.mark.parametrize("lr", [math.inf, math.nan, 1e30, 2.0, 0.0, -1e-4])
def test_a_non_finite_or_absurd_learning_rate_is_refused_up_front(tiny_lm, lr):
    with pytest.raises(ValueError, match="lr must be a finite number in"):
        lm_settings(tiny_lm, lr=lr)
    with pytest.raises(ValueError, match="embedding_lr must be a finite number in"):
        lm_settings(tiny_lm, embedding_lr=lr)


def test_cli_refuses_lr_inf_before_any_work(tiny_lm, tmp_path, capsys):
    argv = ["compress", "--model", str(tiny_lm), "--kind", "kronecker", "--lr", "inf"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert "lr must be a finite number in (0, 1], got inf" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_diverging_recovery_stops_with_an_error_and_leaves_strict_json(
    tiny_lm, tmp_path, monkeypatch
):
    from petra import compress as module

    calls = {"n": 0}
    original = module.CausalLMJob.loss

    def diverging(self, student, batch):  # the loss stops being finite at the 3rd step
        calls["n"] += 1
        loss, tokens = original(self, student, batch)
        return (loss * math.nan if calls["n"] == 3 else loss), tokens

    monkeypatch.setattr(module.CausalLMJob, "loss", diverging)
    stopped = r"loss is nan at step 3: training stopped and nothing was saved; the last good "
    with pytest.raises(FloatingPointError, match=stopped + r"checkpoint is .*step-00000002"):
        compress(lm_settings(tiny_lm), tmp_path / "run", progress=False)
    result = strict_json(tmp_path / "run" / "compress.json")
    assert set(result["quality"]) == {"original", "swapped"}
    assert not (tmp_path / "run" / "model").exists()


def test_a_non_finite_quality_is_an_error_never_written(tiny_lm, tmp_path, monkeypatch):
    from petra import compress as module

    calls = {"n": 0}
    original = module.validation_loss

    def measured(model, chunks, **named):  # original, swapped, then NaN when recovered
        calls["n"] += 1
        return (
            {"val_loss": math.nan, "perplexity": math.nan}
            if calls["n"] == 3
            else original(model, chunks, **named)
        )

    monkeypatch.setattr(module, "validation_loss", measured)
    with pytest.raises(FloatingPointError, match="recovered model's val_loss=nan, perplexity=nan"):
        compress(lm_settings(tiny_lm), tmp_path / "run", progress=False)
    assert "recovered" not in strict_json(tmp_path / "run" / "compress.json")["quality"]


def _finished(model="all-minilm-l6-v2", digest="a" * 64, kind="kronecker", **changes) -> dict:
    """A finished compress.json of the shape petra compress writes (nothing is run)."""
    settings = CompressSettings(model=model, kind=kind, start="norms", eval_pairs=40)
    result = {
        "settings": asdict(settings),
        "model_type": "sentence",
        "quality": {
            "original": {"stsb_dev_spearman": 86.7},
            "swapped": {"stsb_dev_spearman": 55.4},
            "recovered": {"stsb_dev_spearman": 65.6},
        },  # fmt: skip
        "parameters": {
            "kind": kind,
            "vocab_size": 30522,
            "dim": 384,
            "params_before": 22713216,
            "params_after": 12565632,
            "embedding_before": 11720448,
            "embedding_after": 1572864,
        },  # fmt: skip
        "model_digest": digest,
        "recovery_seconds": 855.0,
        "steps": 500,
    }
    for key, value in changes.items():  # "section.key" or "key"
        *section, name = key.split(".")
        holder = result
        for part in section:
            holder = holder[part]
        if value is KeyError:
            del holder[name]
        else:
            holder[name] = value
    return result


def _runs(tmp_path, *results) -> list[str]:
    folders = []
    for n, result in enumerate(results):
        folder = tmp_path / f"run{n}"
        folder.mkdir()
        text = result if isinstance(result, str) else json.dumps(result)
        (folder / "compress.json").write_text(text)
        folders.append(str(folder))
    return folders


def test_the_table_names_its_model_and_takes_one_model_at_two_paths(tmp_path):
    table = comparison_table(_runs(tmp_path, _finished(), _finished(model="/elsewhere/minilm")))
    assert table.startswith("stsb_dev_spearman of all-minilm-l6-v2\n")
    assert table.count("| kronecker, norms start |") == 2


def test_the_table_reads_kept_results_and_states_each_budget(tmp_path):
    """A result kept as a file under another name (a committed `ARM.json`) is read as its
    run's folder is; the budget is in examples and minutes, with the embedding-alone steps
    (every layer trains from the start where there are none)."""
    kept = tmp_path / "kronecker.json"
    kept.write_text(json.dumps(_finished(**{"settings.embedding_steps": 100})))
    table = comparison_table([*_runs(tmp_path, _finished()), kept])
    alone = "(16,000; the first 100 the embedding alone)"
    recipe = "distil hidden, lr 5e-05 / 0.0001, 14 min of steps"
    assert f"| 500 steps x 32 sentences (16,000; every layer), {recipe} |" in table
    assert f"| 500 steps x 32 sentences {alone}, {recipe} |" in table
    throughout = tmp_path / "alone.json"  # the pretrained layers never trained: no lr of theirs
    throughout.write_text(json.dumps(_finished(**{"settings.embedding_steps": 500})))
    assert ("| 500 steps x 32 sentences (16,000; the embedding alone), distil hidden, lr 0.0001, "
            "14 min of steps |") in comparison_table([throughout])  # fmt: skip
    lm = _finished(model_type="causal-lm", **{"settings.max_length": 128})
    lm["quality"] = {stage: {"val_loss": 3.0} for stage in ("original", "swapped", "recovered")}
    (tmp_path / "lm").mkdir()
    table = comparison_table(_runs(tmp_path / "lm", lm))
    assert "500 steps x 32 chunks of 128 tokens (16,000; every layer), distil hidden" in table


@pytest.mark.parametrize(
    "second, message",
    [
        (_finished(model="other-model", digest="b" * 64),
         "are runs of different models (all-minilm-l6-v2 and other-model)"),
        (_finished(digest="b" * 64), "(both given as all-minilm-l6-v2, with different files)"),
        (_finished(**{"settings.eval_pairs": None}), "measure the model differently (eval_pairs)"),
        (_finished(**{"quality.original": {"stsb_dev_spearman": 80.0}}),
         "measure the model differently (the original model's quality"),
        (_finished(model_type="causal-lm", digest="b" * 64), "are runs of different models"),
        (_finished(**{"quality.recovered": {"stsb_dev_spearman": math.nan}}),
         "its recovered stsb_dev_spearman is nan (the run diverged)"),
        (_finished(**{"quality.swapped": {"stsb_dev_spearman": math.inf}}),
         "its swapped stsb_dev_spearman is inf"),
        (_finished(**{"parameters.dim": KeyError}), "(no parameters.dim): was it edited?"),
        (_finished(**{"settings.factor_dim": "4"}), "settings.factor_dim is '4', not an integer"),
        (_finished(**{"steps": True}), "steps is True, not an integer"),
        (_finished(**{"quality.recovered": [65.6]}), "quality must hold original, swapped"),
        (_finished(**{"quality.recovered": {"val_loss": 3.0}}), "quality.recovered measures"),
        (_finished(**{"quality.recovered": {"stsb_dev_spearman": "65"}}), "is '65', not a number"),
        (_finished(settings=KeyError), "(no settings.model)"),
        (_finished(model_type="encoder"), "model_type is 'encoder', not one of"),
        ("[1, 2]", "(a compress result) is not a JSON object"),
        ('{"settings": {', "run1/compress.json (a compress result) is damaged"),
    ],
)  # fmt: skip
def test_the_table_refuses_a_mix_of_models_a_nan_run_or_an_edited_result(
    second, message, tmp_path, capsys
):
    runs = _runs(tmp_path, _finished(), second)
    with pytest.raises(ValueError, match=re.escape(message)):
        comparison_table(runs)
    assert main(["compress", "--table", *runs]) == 2
    assert message in error_line(capsys.readouterr().err)


def test_a_damaged_compress_json_is_named_and_a_changed_model_refused(tiny_lm, tmp_path, capsys):
    settings = lm_settings(tiny_lm)
    run = tmp_path / "run"
    run.mkdir()
    (run / "compress.json").write_text('{"settings": {"mod')
    with pytest.raises(
        ValueError, match=re.escape(f"{run / 'compress.json'} (a compress result) is damaged")
    ):
        compress(settings, run, progress=False)
    argv = ["compress", "--model", str(tiny_lm), "--kind", "kronecker", "--out", str(run)]
    assert main(argv) == 2
    assert f"{run / 'compress.json'} (a compress result) is damaged" in error_line(
        capsys.readouterr().err
    )
    (run / "compress.json").write_text(json.dumps({"settings": {}, "quality": [1]}))
    with pytest.raises(ValueError, match="is damaged .its settings or quality"):
        compress(settings, run, progress=False)
    result = {"settings": asdict(settings), "model_digest": "0" * 64, "quality": {}}
    (run / "compress.json").write_text(json.dumps(result))  # begun on a model since replaced
    with pytest.raises(ValueError, match="holds a compress run of another model"):
        compress(settings, run, progress=False)
    del result["model_digest"]  # written before this fix: a finished run that diverged
    result["quality"] = {"original": {"val_loss": 10.8}, "recovered": {"val_loss": math.nan}}
    (run / "compress.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match="holds a run whose recovered val_loss=nan .it diverged"):
        compress(settings, run, progress=False)


def _interrupted(tiny_lm, out, monkeypatch, at_call: int = 4, **settings):
    """A run of `lm_settings` that dies during step `at_call` (after the checkpoint at 2)."""
    from petra import compress as module

    calls, original = {"n": 0}, module.CausalLMJob.loss

    def interrupted(self, student, batch):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return original(self, student, batch)

    monkeypatch.setattr(module.CausalLMJob, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress(lm_settings(tiny_lm, **settings), out, progress=False)
    monkeypatch.setattr(module.CausalLMJob, "loss", original)
    assert (out / CHECKPOINT / "trainer.pt").is_file()


@pytest.mark.parametrize("damaged", ["trainer.pt", "petra.safetensors"])
def test_a_damaged_checkpoint_is_set_aside_and_the_one_before_resumed(damaged, tiny_lm, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    """Checkpoints at steps 2 and 4 of 6, the one at 4 truncated: it is set aside (kept) with
    a warning, the one at 2 resumed, and the run ends as an uninterrupted one."""
    whole = compress(lm_settings(tiny_lm, steps=6), tmp_path / "whole", progress=False)
    out = tmp_path / "run"
    _interrupted(tiny_lm, out, monkeypatch, at_call=6, steps=6)
    latest = out / "checkpoints" / "step-00000004"
    path = latest / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match=re.escape(f"{latest} is truncated or corrupt")) as seen:
        resumed = compress(lm_settings(tiny_lm, steps=6), out, progress=False)
    assert "resumed from step-00000002 instead" in str(seen[0].message)
    assert resumed["quality"] == whole["quality"]
    a = from_pretrained(tmp_path / "whole" / "model").state_dict()
    b = from_pretrained(out / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_whose_only_checkpoint_is_damaged_says_so(tiny_lm, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupted(tiny_lm, out, monkeypatch)
    path = out / CHECKPOINT / "trainer.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"no checkpoint of {re.escape(str(out))} can be read"):
        compress(lm_settings(tiny_lm), out, progress=False)
    assert path.is_file()  # nothing deleted


def test_a_checkpoint_of_other_settings_is_never_resumed(tiny_lm, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupted(tiny_lm, out, monkeypatch)
    (out / "compress.json").unlink()  # the run's record gone: its settings can't be compared
    with pytest.raises(ValueError, match=r"config.json describes another run .* \(seed\)"):
        compress(lm_settings(tiny_lm, seed=1), out, progress=False)


def test_a_folder_of_another_kind_of_run_is_refused_before_any_work(tiny_lm, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    record = {"run_format": 2, "task": "lm", "model": {}, "train": {}, "data": {}}
    (out / "config.json").write_text(json.dumps(record))  # a petra train run's record
    with pytest.raises(ValueError, match="config.json is not the record of a petra compress run"):
        compress(lm_settings(tiny_lm), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def _model_folder(tmp_path, source, name, edit=None, drop=()):
    import shutil

    folder = tmp_path / name
    shutil.copytree(source, folder)
    for pattern in drop:
        for path in folder.glob(pattern):
            path.unlink()
    if edit is not None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(edit(config)))
    return folder


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--kind", "fourier", "--option", "pos_dim=8"],
         "--option pos_dim: a fourier embedding has no option 'pos_dim'; its options: basis,"),
        (["--kind", "kronecker", "--option", "pos_dim=abc"], "--option pos_dim=abc: expected an "
                                                             "integer"),
        (["--kind", "kronecker", "--option", "pos_dim=8.5"], "--option pos_dim=8.5: expected an "
                                                             "integer"),
        (["--kind", "kronecker", "--option", "pos_dim=true"], "expected an integer"),
        (["--kind", "kronecker", "--option", "pos_dim=0"],
         "pos_dim must be a whole number of at least 1, got 0"),
        (["--kind", "kronecker", "--option", "padding_idx=0"], "is a setting of its own"),
        (["--kind", "learned", "--factor-dim", "4", "--option", "sparse=true"],
         "a learned embedding has no option 'sparse'; its options: none"),
        (["--kind", "kronecker", "--option", "rank=4"], "has no least-squares start (--start "
                                                        "fit, the default): use --start norms"),
        (["--kind", "fourier", "--option", "final_norm=true"], "use --start norms"),
        (["--kind", "learned", "--factor-dim", "33"],
         "factor_dim must lie in [1, min(V, d) = 32] (the ranks of the 50257 x 32 table), got 33"),
        (["--kind", "kronecker", "--seed", "-1"], "seed must be in [0, 2**63)"),
        (["--kind", "kronecker", "--max-length", "4096"], "give --max-length 64 or less"),
    ],
)  # fmt: skip
def test_cli_says_what_is_wrong_with_an_option_in_one_line(argv, message, tiny_lm, tmp_path,
                                                           capsys):  # fmt: skip
    assert main(["compress", "--model", str(tiny_lm), *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pos_dim": 8.5}, "option pos_dim=8.5: expected an integer"),
        ({"pos_dim": True}, "option pos_dim=True: expected an integer"),
        ({"bogus": 1}, "option bogus: a kronecker embedding has no option 'bogus'"),
        ({"padding_idx": 0}, "option padding_idx: padding_idx is a setting of its own"),
        ({"kind": "quantized", "init_std": 0.1},  # a start from the table: bits only
         "option init_std: a quantized embedding has no option 'init_std'; its options: bits"),
        ({"kind": "tt", "init_std": 0.1}, "its options: cores, rank"),
    ],
)  # fmt: skip
def test_typed_options_are_refused_as_the_command_lines_are(options, message):
    kind = options.pop("kind", "kronecker")
    with pytest.raises(ValueError, match=re.escape(message)):
        CompressSettings(model="all-minilm-l6-v2", kind=kind, start="norms", options=options)


def test_options_that_read_the_corpus_counts_pass_the_model_check_with_a_fit_start(tiny_lm):
    from petra.compress import check_model, load_teacher

    teacher, _, kind = load_teacher(str(tiny_lm))
    options = {"id_order": "frequency"}  # Fourier ranks ids by the counts the fit computes
    check_model(lm_settings(tiny_lm, kind="fourier", start="fit", options=options), teacher, kind)
    with pytest.raises(ValueError, match="reads the corpus counts that --start fit computes"):
        check_model(lm_settings(tiny_lm, kind="fourier", start="norms", options=options),
                    teacher, kind)  # fmt: skip
    trimmed = lm_settings(tiny_lm, kind="trimmed", start="norms")  # counts set what it keeps
    check_model(trimmed, teacher, kind)
    for options, message in (({"rows": 10**6}, "rows must be a whole number in"),
                             ({"unk_id": 50257}, "unk_id must be a token id")):  # fmt: skip
        with pytest.raises(ValueError, match=message):  # at the model's V, before any data
            check_model(lm_settings(tiny_lm, kind="trimmed", options=options), teacher, kind)


def test_typed_options_keep_the_type_the_kind_declares():
    settings = CompressSettings(model="m", kind="kronecker", start="norms", options={"pos_dim": 8})
    assert settings.options == {"pos_dim": 8} and type(settings.options["pos_dim"]) is int


@pytest.mark.parametrize(
    "folder, message",
    [
        (lambda tmp, lm: _model_folder(tmp, lm, "no-weights", drop=["*.safetensors"]),
         "cannot load the model in {folder}: Error no file named model.safetensors"),
        (lambda tmp, lm: _model_folder(
            tmp, lm, "custom", edit=lambda c: {**c, "model_type": "mine",
                                              "auto_map": {"AutoConfig": "mine.MyConfig"}}),
         "{folder} needs Python code of its own to load (transformers' trust_remote_code)"),
        (lambda tmp, lm: (_model_folder(tmp, lm, "saved-by-petra") / "petra.json").touch()
         or tmp / "saved-by-petra", "{folder} holds a model saved by petra (petra.json)"),
        (lambda tmp, lm: tmp, "{folder} holds no model: no config.json"),
    ],
)  # fmt: skip
def test_cli_refuses_a_model_folder_it_cannot_use_in_one_line(folder, message, tiny_lm,
                                                              tmp_path, capsys):  # fmt: skip
    folder = folder(tmp_path, tiny_lm)
    out = tmp_path / "run"
    assert main(["compress", "--model", str(folder), "--kind", "kronecker", "--out", str(out)]) == 2
    line = error_line(capsys.readouterr().err)
    assert message.format(folder=folder) in line and "=True" not in line


def test_cli_refuses_an_out_that_is_a_file(tiny_lm, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        argv = ["compress", "--model", str(tiny_lm), "--kind", "kronecker", "--out", str(out)]
        assert main(argv) == 2
        assert f"{tmp_path / 'file'} is a file" in error_line(capsys.readouterr().err)


def test_cli_refuses_an_out_inside_the_model_folder(tiny_lm, capsys):
    """Its files would change the model's digest: the run could never be reused or resumed."""
    argv = ["compress", "--model", str(tiny_lm), "--kind", "kronecker", "--out"]
    assert main([*argv, str(tiny_lm / "run")]) == 2
    assert "lies inside the model's folder" in error_line(capsys.readouterr().err)
    assert not (tiny_lm / "run").exists()


KILLED_RUN = """
import os, signal, sys
from petra import compress as module
from petra.compress import CompressSettings, compress

settings, out = CompressSettings(**__import__("json").loads(sys.argv[1])), sys.argv[2]
calls, original = [0], module.SentenceJob.loss

def loss(self, student, batch):  # SIGKILL during the 3rd step, after the checkpoint at 2
    calls[0] += 1
    if calls[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, student, batch)

module.SentenceJob.loss = loss
compress(settings, out, progress=False)
"""


def test_a_sigkilled_sentence_encoder_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    """all-MiniLM-L6-v2 with a Kronecker embedding, killed (SIGKILL: no cleanup at all) after
    its first checkpoint, then run again: the same quality and bit for bit the same weights
    as a run never interrupted."""
    import os
    import signal
    import subprocess
    import sys

    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    settings = CompressSettings(model="all-minilm-l6-v2", kind="kronecker", start="norms",
                                steps=3, batch_size=2, max_sentences=16, eval_pairs=20,
                                checkpoint_every=2)  # fmt: skip
    whole = compress(settings, tmp_path / "whole", progress=False)
    out = tmp_path / "killed"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(asdict(settings)), str(out)],
        # this process's threads (one under `make test`): the same float sums, the same weights
        env={**os.environ, "PETRA_CACHE": str(tmp_path / "cache"),
             "OMP_NUM_THREADS": str(torch.get_num_threads())},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / CHECKPOINT / "trainer.pt").is_file() and not (out / "model").exists()
    resumed = compress(settings, out, progress=False)
    assert resumed["quality"] == whole["quality"]
    a = from_pretrained(tmp_path / "whole" / "model").state_dict()
    b = from_pretrained(out / "model").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / "checkpoints").exists()


def test_the_command_lines_defaults_are_the_settings_defaults():
    """The parser does not import petra.compress (it would slow every command), so it spells
    the defaults again: they must be CompressSettings' own."""
    import dataclasses

    from petra.cli import build_parser

    args = build_parser().parse_args(["compress", "--model", "m", "--kind", "kronecker"])
    defaults = {f.name: f.default for f in dataclasses.fields(CompressSettings)}
    for name in ("factor_dim", "head", "start", "steps", "batch_size", "lr", "embedding_lr",
                 "seed", "max_length", "distil", "embedding_steps", "eval_every", "eval_split",
                 "eval_pairs"):  # fmt: skip
        assert getattr(args, name) == defaults[name], name
    import argparse

    from petra.compress import DISTIL, EVAL_SPLITS, STARTS
    from petra.hf.swap import HEADS

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    choices = {a.dest: a.choices for a in commands.choices["compress"]._actions if a.choices}
    assert tuple(choices["head"]) == HEADS and tuple(choices["start"]) == STARTS
    assert tuple(choices["distil"]) == DISTIL and tuple(choices["eval_split"]) == EVAL_SPLITS


def test_the_trade_off_plot_draws_the_runs_that_count_bytes(tiny_lm, tmp_path, capsys):
    quantized = tmp_path / "quantized"
    compress(lm_settings(tiny_lm, kind="quantized", options={"bits": 4}), quantized,
             progress=False)  # fmt: skip
    plot = tmp_path / "plots" / "tradeoff.png"
    assert main(["compress", "--table", str(quantized), "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG") and f"wrote {plot}" in capsys.readouterr().out
    assert main(["compress", "--plot", str(plot), "--model", "m", "--kind", "kronecker"]) == 2
    assert "--plot draws the runs of --table" in error_line(capsys.readouterr().err)


# -- the recovery: every layer's states, the embedding alone first, the quality during --------
def test_the_relative_state_error_is_its_closed_form_over_the_unmasked_tokens():
    from petra.compress import relative_state_error

    torch.manual_seed(0)
    student = (torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    teacher = (torch.randn(2, 3, 4), 5 * torch.randn(2, 3, 4))
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = 0.0
    for h, t in zip(student, teacher, strict=True):
        kept = [(b, i) for b in range(2) for i in range(3) if mask[b, i]]
        error = sum(float((h[b, i] - t[b, i]).pow(2).sum()) for b, i in kept)
        expected += error / sum(float(t[b, i].pow(2).sum()) for b, i in kept) / 2
    assert float(relative_state_error(student, teacher, mask)) == pytest.approx(expected, rel=1e-6)
    assert float(relative_state_error(teacher, teacher, mask)) == 0.0
    with pytest.raises(ValueError, match="1 student layers against 2"):
        relative_state_error(student[:1], teacher)


def test_the_hidden_loss_is_zero_for_the_teachers_own_table_and_positive_after_a_swap(tiny_lm):
    from petra.compress import _swap, load_teacher, make_job

    teacher, tokenizer, kind = load_teacher(str(tiny_lm))
    settings = lm_settings(tiny_lm, kind="learned", factor_dim=32, start="fit")  # full rank
    job = make_job(kind, teacher, tokenizer, settings)
    student, _ = _swap(teacher, tokenizer, job)
    student.eval()  # no dropout: the student is the teacher, to float rounding
    batch = job.collate([0, 1])
    assert float(job.loss(student, batch)[0].detach()) < 1e-6
    output_only = make_job(kind, teacher, tokenizer, lm_settings(tiny_lm, distil="output"))
    swapped, _ = _swap(teacher, tokenizer, output_only)
    swapped.eval()
    kl = float(output_only.loss(swapped, batch)[0].detach())
    job_hidden = make_job(kind, teacher, tokenizer, lm_settings(tiny_lm))
    assert float(job_hidden.loss(swapped, batch)[0].detach()) > kl > 0  # the states add their error


def test_the_first_embedding_steps_train_the_new_embedding_alone(tiny_lm, tmp_path):
    from petra.compress import load_teacher

    teacher = load_teacher(str(tiny_lm))[0]
    frozen = compress(lm_settings(tiny_lm, embedding_steps=4), tmp_path / "alone", progress=False)
    both = compress(lm_settings(tiny_lm, embedding_steps=2), tmp_path / "both", progress=False)
    assert frozen["steps"] == both["steps"] == 4
    table = ("transformer.wte.weight", "lm_head.weight")  # the old table, tied: swapped out
    pretrained = {k: v for k, v in teacher.state_dict().items() if k not in table}

    def changed(folder):
        student = from_pretrained(folder / "model").state_dict()
        return {k for k, v in pretrained.items() if not torch.equal(student[k], v)}

    assert changed(tmp_path / "alone") == set()  # every pretrained layer as it was
    assert changed(tmp_path / "both")  # after the first stage, every layer trains
    assert frozen["quality"]["recovered"] != frozen["quality"]["swapped"]  # the embedding did


def test_the_quality_is_measured_during_the_recovery(tiny_lm, tmp_path):
    result = compress(lm_settings(tiny_lm, eval_every=1), tmp_path / "run", progress=False)
    assert [point["step"] for point in result["during"]] == [1, 2, 3]
    assert set(result["during"][0]) == {"step", "val_loss", "perplexity"}
    assert compress(lm_settings(tiny_lm), tmp_path / "end", progress=False)["during"] == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"distil": "layers"}, "unknown distil 'layers'"),
        ({"distil": "pairs", "batch_size": 1}, "--batch-size must be at least 2"),
        ({"embedding_steps": 5}, "--embedding-steps must lie in \\[0, --steps = 4\\]"),
        ({"embedding_steps": -1}, "--embedding-steps must lie"),
        ({"eval_every": 0}, "--eval-every must be a whole number of steps >= 1"),
        ({"eval_split": "test"}, "unknown eval_split 'test'"),
    ],
)
def test_recovery_settings_out_of_range_are_refused(tiny_lm, changes, message):
    with pytest.raises(ValueError, match=message):
        lm_settings(tiny_lm, **changes)


@pytest.mark.parametrize("kind", kinds())
def test_every_kind_runs_through_compress(kind, tiny_lm, tmp_path):
    """Every registered kind swaps in, recovers and is measured: a kind that starts from the
    table from it, the others from their least-squares fit where they have one, else from
    their row norms; the saved model loads back to the recovered quality's weights."""
    from petra.compress import _has_fit

    extra = {"factor_dim": 8} if kind == "learned" else {}
    start = "fit" if _has_fit(kind, {}) else "norms"
    settings = lm_settings(tiny_lm, kind=kind, start=start, steps=2, checkpoint_every=100, **extra)
    result = compress(settings, tmp_path / kind, progress=False)
    assert set(result["quality"]) == {"original", "swapped", "recovered"}
    assert result["parameters"]["kind"] == kind
    assert from_pretrained(tmp_path / kind / "model") is not None


def test_the_pairwise_cosine_error_is_its_closed_form_and_lms_refuse_it(tiny_lm, tmp_path):
    from petra.compress import pairwise_cosine_error

    torch.manual_seed(0)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    expected = (
        sum((cos(s[i], s[j]) - cos(t[i], t[j])) ** 2 for i in range(4) for j in range(4) if i != j)
        / 12
    )
    assert float(pairwise_cosine_error(s, t)) == pytest.approx(expected, rel=1e-5)
    assert float(pairwise_cosine_error(3 * s, s)) == pytest.approx(0.0, abs=1e-6)  # scale-free
    for distil in ("pairs", "cosines"):
        with pytest.raises(ValueError, match=f"--distil {distil} matches sentence vectors"):
            compress(lm_settings(tiny_lm, distil=distil), tmp_path / "run", progress=False)
