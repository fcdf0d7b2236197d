"""scripts/compress_tradeoff.py: which recovery the arms get once the candidates have run."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compress_tradeoff.py"


@pytest.fixture
def tradeoff(tmp_path, monkeypatch):
    """The script as a module, its results folder in tmp_path."""
    spec = importlib.util.spec_from_file_location("compress_tradeoff", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def _candidate(tmp_path, key, arm, name, recovered):
    folder = tmp_path / f"compress-{key}" / "choose" / arm
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"quality": {"recovered": recovered}}))


def test_a_recipe_trains_the_embedding_alone_for_all_its_steps_or_none(tradeoff):
    assert tradeoff.Recipe(["--distil", "output"], 300).command() == [
        "--distil", "output", "--steps", "300", "--embedding-steps", "0"]  # fmt: skip
    assert tradeoff.Recipe([], 40, alone=True).command()[-2:] == ["--embedding-steps", "40"]


def test_the_lowest_loss_is_chosen_and_every_arm_takes_the_first_choosing_arms(tradeoff, tmp_path):
    model = tradeoff.SMOLLM2
    assert tradeoff.chosen_candidate("smollm2", model, "kronecker") is None  # none has run
    assert tradeoff.arm_recipe("smollm2", model, "svd-63") == (None, model.recipe)
    losses = {"hidden": 7.745, "output": 7.741, "hidden-embedding-1e-3": 8.785}
    for name, loss in losses.items():
        _candidate(tmp_path, "smollm2", "kronecker", name, {"select_loss": loss})
    assert tradeoff.chosen_candidate("smollm2", model, "kronecker") is None  # one is missing
    _candidate(tmp_path, "smollm2", "kronecker", "hidden-embedding-1e-3-alone",
               {"select_loss": 9.466})  # fmt: skip
    assert tradeoff.chosen_candidate("smollm2", model, "kronecker") == "output"
    name, recipe = tradeoff.arm_recipe("smollm2", model, "svd-63")  # not a choosing arm
    assert name == "output" and recipe.steps == model.recipe.steps == 300
    assert recipe.arguments == model.candidates["output"].arguments and not recipe.alone


def test_a_correlation_is_chosen_highest_and_each_arm_takes_its_own_choice(tradeoff, tmp_path):
    model = tradeoff.MINILM
    scores = {"fourier": (81.0, 80.0), "svd-50": (67.7, 69.6), "int8": (1.0, 2.0)}
    for arm, (cosines, every) in scores.items():  # (cosines, every layer)
        _candidate(tmp_path, "minilm", arm, "cosines-embedding", {"stsb_train_spearman": cosines})
        _candidate(tmp_path, "minilm", arm, "output-every-layer", {"stsb_train_spearman": every})
    assert tradeoff.arm_recipe("minilm", model, "fourier") == (
        "cosines-embedding", model.candidates["cosines-embedding"])  # fmt: skip
    # an arm that starts at the original chooses nothing: it keeps the default recovery
    assert "int8" not in model.choosing_arms and "tt" in model.choosing_arms
    assert tradeoff.arm_recipe("minilm", model, "int8") == (None, model.recipe)
    name, recipe = tradeoff.arm_recipe("minilm", model, "svd-50")
    assert name == "output-every-layer" and not recipe.alone and recipe.steps == 400
    assert tradeoff.arm_recipe("minilm", model, "kronecker") == (None, model.recipe)  # not run


def test_a_finished_arm_s_committed_result_seeds_its_missing_run_folder(
    tradeoff, tmp_path, monkeypatch
):
    """On a fresh checkout the run folders are gone: the committed result is put where
    `petra compress` looks for a finished run (whose settings it checks); a folder's own
    record is left alone; a committed result it refuses (another recipe) is set aside and
    the arm runs."""
    seen, refuse = [], []

    def run(command, check):
        path = out / "compress.json"
        seen.append(path.read_text() if path.exists() else None)
        if refuse and path.exists() and path.read_text() == refuse[0]:
            raise tradeoff.subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(tradeoff.subprocess, "run", run)
    committed, out = tmp_path / "int8.json", tmp_path / "runs" / "int8"
    committed.write_text('{"settings": {}}')
    recipe, arm = tradeoff.SMOLLM2.recipe, ["--kind", "quantized"]
    tradeoff.compress(tradeoff.SMOLLM2, arm, recipe, out, 100, committed=committed)
    assert seen == ['{"settings": {}}']
    (out / "compress.json").write_text('{"an interrupted run": 1}')  # a folder's own record stays
    tradeoff.compress(tradeoff.SMOLLM2, arm, recipe, out, 100, committed=committed)
    assert seen[-1] == '{"an interrupted run": 1}'
    (out / "compress.json").unlink()
    refuse.append('{"settings": {}}')  # another recipe's result: refused, then the arm runs
    tradeoff.compress(tradeoff.SMOLLM2, arm, recipe, out, 100, committed=committed)
    assert seen[-2:] == ['{"settings": {}}', None]


def test_a_finished_run_s_result_and_training_log_are_kept(tradeoff, tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    out.mkdir()
    results.mkdir()
    (out / "compress.json").write_text("{}")
    tradeoff.keep_result(out, results, "svd-47")  # reused from its committed result: no log
    assert sorted(p.name for p in results.iterdir()) == ["svd-47.json"]
    (out / "metrics.jsonl").write_text('{"step": 10, "train/loss": 0.5}\n')
    tradeoff.keep_result(out, results, "svd-47")
    assert (results / "svd-47.metrics.jsonl").read_text() == (out / "metrics.jsonl").read_text()
