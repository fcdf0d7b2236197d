"""`petra train --init DIR`: a run that starts from a saved model (e.g. STS-B fine-tuning from
an NLI model, the PETE paper's Table 2 protocol)."""

import json

import pytest

from petra.cli import main
from petra.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nli"
    args = ["train", "nli-sts", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main([*args, "--set", "model.embedding=fourier"]) == 0
    return out / "model"


def first_evaluation(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def test_a_run_starts_from_the_saved_model(nli_model, tmp_path, capsys):
    out = tmp_path / "sts"
    assert main(["train", "sts", "--preset", "tiny", "--init", str(nli_model), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["eval", "sts", "--preset", "tiny", "--checkpoint", str(nli_model)]) == 0
    before = json.loads(capsys.readouterr().out.splitlines()[-1])
    start = first_evaluation(out)
    assert start["step"] == 0  # the step-0 evaluation is the saved model's own score
    assert start["eval/spearman"] == pytest.approx(before["spearman"], abs=1e-4)
    config = json.loads((out / "config.json").read_text())
    saved = json.loads((nli_model / "config.json").read_text())
    assert config["train"]["init"] == str(nli_model)
    assert config["model"]["embedding"] == saved["embedding"] == {"kind": "fourier"}
    assert config["model"]["dim"] == saved["dim"]


def test_init_refuses_what_does_not_fit(nli_model, tmp_path, capsys, bert):
    args = ["train", "sts", "--preset", "tiny", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*args, "--init", str(nli_model), "--set", "model.dim=64"]) == 2
    assert "the model comes from train.init" in capsys.readouterr().err
    assert main([*args, "--init", str(tmp_path / "nothing")]) == 2
    assert "no saved model at" in capsys.readouterr().err
    classifier = ModelConfig(model="classifier", vocab_size=30522, dim=32, n_layers=1, n_heads=2)
    build_model(classifier, tokenizer=bert).save_pretrained(tmp_path / "clf", bert)
    assert main([*args, "--init", str(tmp_path / "clf")]) == 2
    assert "holds a classifier model, but task 'sts' trains sentence models" in (
        capsys.readouterr().err
    )


def test_init_from_a_frequency_ordered_fourier_model(bert, tmp_path):
    """Its saved config has no token counts (the order is the saved id_rank): the run's
    settings check must not ask for them."""
    from petra.tasks.run import run_config

    counts = list(range(30522, 0, -1))
    config = ModelConfig(model="sentence", vocab_size=30522, dim=32, n_layers=1, n_heads=2,
                         embedding={"kind": "fourier", "id_order": "frequency",
                                    "token_counts": counts})  # fmt: skip
    build_model(config, tokenizer=bert).save_pretrained(tmp_path / "freq", bert)
    run = run_config("sts", "tiny", [f"train.init={tmp_path / 'freq'}"])
    assert run["model"]["embedding"] == {"kind": "fourier", "id_order": "frequency"}
