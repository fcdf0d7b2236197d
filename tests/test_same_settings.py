"""`check_same_settings`, the one check of a run's recorded settings (`petra train --resume`,
compare and reproduce through `check_same_run`, and `petra compress`)."""

import json

import pytest

from petra.tasks.run import check_same_run, check_same_settings, run_config

SETTINGS = {"task": "lm", "train": {"seed": 1, "lr": 0.01}, "model": {"embedding": {"kind": "a"}}}


def test_the_same_settings_pass_and_each_difference_is_named_by_its_path(tmp_path):
    check_same_settings(tmp_path, json.loads(json.dumps(SETTINGS)), SETTINGS, "advice")
    other = {
        "task": "lm",
        "train": {"seed": 2, "lr": 0.01, "steps": 5},  # a value changed, a key added
        "model": {"embedding": "a"},  # a section turned into a value
    }
    with pytest.raises(ValueError) as error:
        check_same_settings(tmp_path / "x.json", SETTINGS, other, "use a new --out")
    assert str(error.value) == (
        f"{tmp_path / 'x.json'} describes another run than this one, with other settings "
        "(model.embedding, train.seed, train.steps): use a new --out"
    )


@pytest.mark.parametrize(
    "recorded",
    [
        {"a": 1, "b": {"c": [1, 2]}},
        {"a": 1.0, "b": {"c": [1, 2]}},  # 1 == 1.0, as for a run recorded in JSON
        {"a": 1, "b": {"c": [1, 3]}},
        {"a": 1, "b": {}},
        {"b": {"c": [1, 2]}},
        {"a": 1, "b": {"c": [1, 2]}, "d": None},
    ],
)
def test_a_run_is_refused_exactly_when_its_settings_are_not_equal(recorded):
    settings = {"a": 1, "b": {"c": [1, 2]}}
    if recorded == settings:
        check_same_settings("run", recorded, settings, "")
    else:
        with pytest.raises(ValueError, match=r"with other settings \(\w"):  # at least one named
            check_same_settings("run", recorded, settings, "")


def test_a_run_directory_of_other_settings_names_them(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(run_config("lm", "tiny", ["train.seed=1"])))
    check_same_run(
        tmp_path, run_config("lm", "tiny", ["train.seed=1", "model.embedding=learned"]), ""
    )
    with pytest.raises(
        ValueError, match=r"config.json describes another run .*\(train\.seed\): go"
    ):
        check_same_run(tmp_path, run_config("lm", "tiny", ["train.seed=2"]), "go")
