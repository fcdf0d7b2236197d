"""`--set` values take their field's type; mistyped keys, kinds and values are refused by
name; `petra compare` applies each embedding option to the kinds that have it."""

import json
import re

import pytest

from petra.cli import main
from petra.compare import arm_name, arm_settings, kind_points, parse_grid
from petra.tasks.run import apply_overrides, load_preset, run_config
from petra.tasks.settings import parse_value


def spec(task, *overrides, preset="tiny"):
    return apply_overrides(task, load_preset(task, preset), list(overrides))


@pytest.mark.parametrize("text", ["false", "False", "FALSE"])
def test_false_in_any_case_is_false(text):
    assert spec("nli-sts", f"data.hard_negatives={text}")["data"]["hard_negatives"] is False
    assert spec("lm", f"model.tie_embeddings={text}")["model"]["tie_embeddings"] is False


def test_values_take_their_fields_types():
    values = spec(
        "nli-sts",
        "data.hard_negatives=True",
        "train.steps=30",
        "train.lr=2e-5",
        "data.max_train_pairs=none",
        "model.tie_embeddings=null",
        "data.nli_files=/data/multinli.jsonl",
    )
    assert values["data"]["hard_negatives"] is True
    assert values["train"]["steps"] == 30 and isinstance(values["train"]["steps"], int)
    assert values["train"]["lr"] == 2e-5
    assert values["data"]["max_train_pairs"] is None
    assert values["model"]["tie_embeddings"] is None
    assert values["data"]["nli_files"] == ["/data/multinli.jsonl"]  # one path, not characters
    assert spec("nli-sts", "data.nli_files=dev, test")["data"]["nli_files"] == ["dev", "test"]
    assert spec("nli-sts", 'data.nli_files=["a.jsonl"]')["data"]["nli_files"] == ["a.jsonl"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=abc", "train.steps=abc: expected an integer"),
        ("train.steps=1.5", "train.steps=1.5: expected an integer"),
        ("train.lr=fast", "train.lr=fast: expected a number"),
        ("data.hard_negatives=yes", "data.hard_negatives=yes: expected true or false"),
        ("data.max_train_pairs=many", "expected an integer or none"),
        ("model.embeddings=kronecker", "unknown key 'embeddings'"),
        ("model.embedding=kronekcer", "unknown embedding kind"),
        ("model.embedding.kind=leaned", "unknown embedding kind"),
        ("model.vocab_size=10", "unknown key 'vocab_size'"),  # set by the task
        ("optim.lr=1", "unknown section 'optim'"),
        ("train.steps", "section.key=value"),
        ("model.embedding.pos_dim=32", "the learned embedding has no option 'pos_dim'"),
        ("model.embedding.refine=geglu", "its options are"),
    ],
)
def test_what_does_not_convert_is_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message):
        spec("nli-sts", override)


def test_embedding_options_are_typed_by_the_final_kind_in_any_order():
    a = spec("lm", "model.embedding.pos_dim=32", "model.embedding.kind=kronecker")
    b = spec("lm", "model.embedding=kronecker", "model.embedding.pos_dim=32")
    assert (
        a["model"]["embedding"] == b["model"]["embedding"] == {"kind": "kronecker", "pos_dim": 32}
    )
    fourier = spec("lm", "model.embedding=fourier", "model.embedding.final_norm=FALSE",
                   "model.embedding.expansion=0.25", "model.embedding.refine=geglu")  # fmt: skip
    assert fourier["model"]["embedding"] == {
        "kind": "fourier",
        "final_norm": False,
        "expansion": 0.25,
        "refine": "geglu",
    }
    with pytest.raises(ValueError, match="model.embedding.pos_dim=wide: expected an integer"):
        spec("lm", "model.embedding=kronecker", "model.embedding.pos_dim=wide")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"kind": "kronecker", "bogus": 1}', "has no option 'bogus'"),
        ('{"kind": "kronecker", "pos_dim": "abc"}', "pos_dim=abc: expected an integer"),
        ('{"pos_dim": 8}', 'needs a "kind"'),
    ],
)
def test_an_embedding_object_is_checked_like_single_options(value, message):
    with pytest.raises(ValueError, match=message):
        spec("lm", f"model.embedding={value}")


def test_parse_value_of_an_optional_list():
    assert parse_value("k", "a,b", list[str] | None) == ["a", "b"]
    assert parse_value("k", "None", list[str] | None) is None


def test_settings_that_build_no_model_are_refused_before_any_data(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PETRA_DATA", str(tmp_path / "no-data-here"))
    args = ["train", "classify", "--preset", "tiny", "--out", str(tmp_path / "run")]
    assert main([*args, "--set", "model.pooling=maen"]) == 2
    assert "unknown pooling='maen'" in capsys.readouterr().err
    assert main([*args, "--set", "train.warmup=1.5"]) == 2
    assert "warmup is a fraction" in capsys.readouterr().err
    for option, message in (
        ("model.embedding=kronecker --set model.embedding.mode=fast", "unknown mode 'fast'"),
        ("model.embedding=kronecker --set model.embedding.pos_dim=0", "pos_dim must be a whole"),
        ("model.embedding=fourier --set model.embedding.basis=fourrier", "fourrier"),
        ("model.embedding=fourier --set model.embedding.id_order=frequency", "token_counts"),
        ("model.embedding.init_std=-1", "init_std must be a finite number"),
        ("model.embedding.padding_idx=-1", "padding_idx must be a token id"),
        (
            "model.embedding=fourier --set model.embedding.refine=geglu "
            "--set model.embedding.expansion=0.001",
            "no hidden unit",
        ),
    ):
        assert main([*args, *f"--set {option}".split()]) == 2
        assert message in capsys.readouterr().err, option


def test_the_stand_in_check_does_not_build_a_vocabulary_of_the_padding_id():
    """The real vocabulary bounds padding_idx, when the model is built: the early check
    must not build a table of padding_idx + 1 rows."""
    config = run_config("sts", "tiny", ["model.embedding.padding_idx=2000000000"])
    assert config["model"]["embedding"]["padding_idx"] == 2_000_000_000


def test_a_run_of_an_earlier_format_is_neither_resumed_nor_reused(tmp_path, capsys):
    """Before run format 2 the same settings meant another model (a tied Kronecker head)."""
    out = tmp_path / "run"
    out.mkdir()
    config = run_config("lm", "tiny", ["model.embedding=kronecker"])
    old = {k: v for k, v in config.items() if k != "run_format"}
    (out / "config.json").write_text(json.dumps(old))
    args = ["train", "lm", "--preset", "tiny", "--out", str(out), "--resume", "--quiet"]
    assert main([*args, "--set", "model.embedding=kronecker"]) == 2
    assert "earlier petra (run format 1, now 2)" in capsys.readouterr().err


def test_a_mistyped_setting_is_one_clear_message(capsys):
    assert main(["train", "lm", "--preset", "tiny", "--set", "train.steps=abc"]) == 2
    err = capsys.readouterr().err
    assert "train.steps=abc: expected an integer" in err and "Traceback" not in err


# -- compare ---------------------------------------------------------------------------
def test_compare_applies_an_embedding_option_only_to_the_kinds_that_have_it():
    overrides = ["model.embedding.pos_dim=32", "train.steps=3"]
    learned, kronecker = (
        run_config("lm", "tiny", changes=arm_settings("lm", "tiny", kind, "standard", 0, overrides))
        for kind in ("learned", "kronecker")
    )
    assert learned["model"]["embedding"] == {"kind": "learned"}
    assert kronecker["model"]["embedding"] == {"kind": "kronecker", "pos_dim": 32}
    assert learned["train"]["steps"] == kronecker["train"]["steps"] == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kinds", "learned,fourier", "--set", "model.embedding.pos_dim=32"], "has an option"),
        (["--set", "model.embedding=kronecker"], "what the arms vary"),
        (["--set", "train.seed=3"], "what the arms vary"),
        (["--kinds", "learned,lookup"], "unknown ['lookup']"),
        (["--budget", "1M", "--set", "model.embedding.factor_dim=4"], "sets learned's factor_dim"),
        (["--budget", "many"], "a budget is a number of parameters"),
        (["--budget-ratio", "1.5"], "must lie in (0, 1]"),
        (["--budget", "1M", "--budget-tolerance", "1.5"], "must lie in [0, 1)"),
        (["--budget-tolerance", "0.2"], "--budget-tolerance applies to a budget"),
        (["--budget", "1e999999999"], "a budget is a number of parameters"),
        (["--budget", "2e12"], "a budget must be a whole number of parameters in"),
        (["--kinds", ","], "--kinds is empty"),
        (["--seeds", "1,1"], "lists a value twice"),
        (["--backbones", "spectral,dense"], "unknown ['dense']"),
        (["--backbones", "standard,spectral", "--set", "model.slices=3"], "not divisible"),
    ],
)
def test_compare_refuses_bad_arms_before_running_any(tmp_path, capsys, extra, message):
    out = tmp_path / "compare"
    assert main(["compare", "lm", "--preset", "tiny", "--out", str(out), "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing ran


@pytest.mark.parametrize("seeds", ["a,b", ",", "1,,2", ""])
def test_compare_seeds_must_be_integers(tmp_path, capsys, seeds):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "lm", "--preset", "tiny", "--seeds", seeds, "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "expected comma-separated integers" in capsys.readouterr().err


# -- compare --grid ----------------------------------------------------------------------
def test_grid_points_span_embedding_options_only_for_their_kinds():
    grid = parse_grid(["model.n_layers=1,2", "model.embedding.pos_dim=8,16"])
    assert kind_points(grid, "learned") == [(("model.n_layers", "1"),), (("model.n_layers", "2"),)]
    assert len(kind_points(grid, "kronecker")) == 4
    assert arm_name("kronecker", "standard", 0, kind_points(grid, "kronecker")[1]) == (
        "kronecker-standard-n_layers=1-pos_dim=16-seed0"
    )
    assert arm_name("learned", "standard", 3) == "learned-standard-seed3"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["model.slices"], "--grid takes section.key=value1,value2"),
        (["model.slices=1,1"], "given twice"),
        (["model.backbone=standard,spectral"], "what the arms vary"),
    ],
)
def test_bad_grids_are_refused(items, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(items)


def test_compare_over_a_grid_keys_arms_and_table_by_the_full_setting(tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["compare", "classify", "--preset", "tiny", "--kinds", "learned,kronecker", "--out",
            str(out), "--quiet", "--set", "train.steps=2", "--grid", "model.embedding.pos_dim=4,8",
            "--grid", "train.lr=0.001"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "results.json").read_text())
    settings = [(a["kind"], a["setting"]) for a in summary["arms"]]
    assert settings == [  # pos_dim spans the Kronecker arms only
        ("learned", {"train.lr": "0.001"}),
        ("kronecker", {"model.embedding.pos_dim": "4", "train.lr": "0.001"}),
        ("kronecker", {"model.embedding.pos_dim": "8", "train.lr": "0.001"}),
    ]
    for arm in summary["arms"]:
        config = json.loads((tmp_path / arm["run"] / "config.json").read_text())
        assert config["train"]["lr"] == 0.001
        if arm["kind"] == "kronecker":
            pos_dim = int(arm["setting"]["model.embedding.pos_dim"])
            assert config["model"]["embedding"]["pos_dim"] == pos_dim
            assert arm["params"]["embedding"] == 256 * pos_dim * 32
    table = (out / "table.md").read_text()
    assert "| embedding | backbone | model.embedding.pos_dim | train.lr |" in table
    assert "| learned | standard | - | 0.001 |" in table
    assert "| kronecker | standard | 8 | 0.001 |" in table
    assert len(table.splitlines()) == 2 + 3
    written = {p: p.stat().st_mtime_ns for p in out.glob("arms/*/*")}
    assert main(args) == 0  # every arm reused, nothing trained again
    assert {p: p.stat().st_mtime_ns for p in out.glob("arms/*/*")} == written
    assert len(list(out.glob("arms/*"))) == 3


def test_an_arm_of_an_earlier_format_is_not_reused(tmp_path, capsys):
    out = tmp_path / "compare"
    args = ["compare", "classify", "--preset", "tiny", "--kinds", "learned", "--out", str(out),
            "--quiet", "--set", "train.steps=2"]  # fmt: skip
    assert main(args) == 0
    saved = out / "arms" / "learned-standard-seed0" / "config.json"
    config = json.loads(saved.read_text())
    del config["run_format"]  # as written before run formats existed
    saved.write_text(json.dumps(config))
    assert main(args) == 2
    assert "earlier petra (run format 1, now 2)" in capsys.readouterr().err


def test_a_grid_key_that_is_also_set_is_refused(tmp_path, capsys):
    args = ["compare", "lm", "--preset", "tiny", "--out", str(tmp_path / "x"), "--quiet"]
    assert main([*args, "--set", f"train.init={tmp_path}"]) == 2
    assert "use petra train --init" in capsys.readouterr().err
    assert main([*args, "--set", "train.lr=0.1", "--grid", "train.lr=0.1,0.2"]) == 2
    assert "both set (--set) and varied (--grid)" in capsys.readouterr().err
    assert main([*args, "--kinds", "learned", "--grid", "model.embedding.pos_dim=4,8"]) == 2
    assert "has an option 'pos_dim'" in capsys.readouterr().err


# -- compare --budget --------------------------------------------------------------------
def test_compare_with_a_budget_sizes_every_kind_by_its_knob(tmp_path, capsys):
    out, budget = tmp_path / "budget", 200_000
    args = ["compare", "classify", "--preset", "tiny", "--kinds", "learned,kronecker,hash,tt",
            "--budget", "200k", "--out", str(out), "--quiet", "--set", "train.steps=2",
            "--set", "model.embedding.pos_dim=32"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "results.json").read_text())
    assert summary["budget"] == {"params": budget, "ratio": None, "tolerance": 0.1}
    knobs = {"learned": "factor_dim", "kronecker": "rank", "hash": "buckets", "tt": "rank"}
    for arm in summary["arms"]:
        ((knob, value),) = arm["sized"].items()
        assert knob == knobs[arm["kind"]] and arm["budget"] == budget
        assert 0.9 * budget <= arm["params"]["embedding"] <= budget  # built for real
        config = json.loads((tmp_path / arm["run"] / "config.json").read_text())
        assert config["model"]["embedding"][knob] == value
        assert f"-{knob}={value}-seed0" in arm["run"]
        assert f"budget 200,000 embedding parameters: {arm['kind']}: {knob}={value} -> " in printed
    table = (out / "table.md").read_text()
    assert "| embedding | backbone | sized to the budget by | total params |" in table
    assert f"| learned | standard | factor_dim={summary['arms'][0]['sized']['factor_dim']} |" in (
        table
    )


def test_a_budget_ratio_is_a_share_of_the_learned_table(tmp_path, capsys):
    out = tmp_path / "ratio"
    args = ["compare", "classify", "--preset", "tiny", "--kinds", "hash", "--budget-ratio",
            "0.1", "--out", str(out), "--quiet", "--set", "train.steps=1"]  # fmt: skip
    assert main(args) == 0
    (arm,) = json.loads((out / "results.json").read_text())["arms"]
    assert arm["budget"] == int(0.1 * 30522 * 32)  # BERT's vocabulary, tiny's d = 32
    assert arm["params"]["embedding"] == 32 * arm["sized"]["buckets"] + 2 * 30522


def test_kinds_that_cannot_reach_the_budget_are_refused_together(tmp_path, capsys):
    out = tmp_path / "refused"
    args = ["compare", "classify", "--preset", "tiny", "--kinds", "learned,qr,fourier",
            "--budget", "1500", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "leave out the kinds that cannot reach the budget (learned, qr)" in error
    assert "learned cannot reach a budget of 1,500" in error and "smallest size is" in error
    assert "operation='concat'" in error  # what would make QR smaller
    assert not out.exists()


def test_budget_and_budget_ratio_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "lm", "--budget", "1M", "--budget-ratio", "0.1", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# -- data limits -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "item", "nothing"),
    [
        ("nli-sts", "data.max_train_pairs=-6000", "train on"),
        ("sts", "data.max_train_pairs=0", "train on"),
        ("classify", "data.max_eval_examples=-1510", "evaluate"),
        ("classify", "data.max_eval_examples=0", "evaluate"),
        ("classify", "data.max_train_examples=-1", "train on"),
        ("lm", "data.max_train_blocks=-100", "train on"),
        ("lm", "data.max_eval_blocks=0", "evaluate"),
        ("distill", "data.max_sentences=-5", "distil on"),
        ("distill", "data.max_train_pairs=-5", "train on"),
    ],
)
def test_a_data_limit_is_a_count_of_at_least_one(task, item, nothing):
    """A negative limit would cut a Python slice to all but that many, 0 to nothing."""
    message = (
        f"{item}: give a count of at least 1, or none for no limit (0 would leave nothing to "
        f"{nothing}; a negative count is not 'all but N')"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        run_config(task, "tiny", [item])


@pytest.mark.parametrize(
    ("task", "item", "least"),
    [
        ("lm", "data.block_size=-5", 2),
        ("lm", "data.block_size=1", 2),
        ("lm", "data.eval_batch_size=0", 1),
        ("sts", "data.eval_batch_size=-5", 1),
        ("nli-sts", "data.max_length=0", 1),
        ("classify", "data.max_length=-1", 1),
    ],
)
def test_a_data_size_is_a_whole_number_of_at_least_its_minimum(task, item, least):
    """Sizes that left nothing to evaluate (ZeroDivisionError) or a negative tensor size."""
    key, value = item.split("=")
    with pytest.raises(
        ValueError, match=re.escape(f"{key}={value}: give a whole number of at least {least}")
    ):
        run_config(task, "tiny", [item])


def test_no_data_limit_and_a_limit_of_one_are_kept():
    config = run_config("classify", "tiny", ["data.max_eval_examples=none"])
    assert config["data"]["max_eval_examples"] is None
    assert run_config("lm", "tiny", ["data.max_eval_blocks=1"])["data"]["max_eval_blocks"] == 1


def test_a_zero_data_limit_is_one_line_from_the_command(tmp_path, capsys):
    args = ["train", "classify", "--preset", "tiny", "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*args, "--set", "data.max_eval_examples=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petra train: error: data.max_eval_examples=0: give a count of at")
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_budget_beyond_memory_is_refused_before_anything_is_built(tmp_path, capsys, monkeypatch):
    """1e11 parameters (373 GiB as float32) would be allocated while checking the sized
    options; the count is known first."""
    monkeypatch.setattr("petra.embeddings.budget.memory_bytes", lambda: 16 * 2**30)
    out = tmp_path / "compare"
    args = ["compare", "lm", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main([*args, "--budget", "1e11"]) == 2
    assert capsys.readouterr().err == (
        "petra compare: error: --budget 100,000,000,000: 100,000,000,000 parameters would need "
        "372.5 GiB as float32, more than this machine's memory (16.0 GiB); give a smaller "
        "budget\n"
    )
    assert main([*args, "--budget", "1e11", "--kinds", "fourier"]) == 2
    assert "would need 372.5 GiB" in capsys.readouterr().err
    assert not out.exists()


def test_a_budget_ratio_below_one_parameter_names_the_ratio_given(tmp_path, capsys):
    out = tmp_path / "compare"
    args = ["compare", "classify", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main([*args, "--budget-ratio", "1e-9"]) == 2
    assert capsys.readouterr().err == (  # BERT's vocabulary, tiny's d = 32
        "petra compare: error: --budget-ratio 1e-09 of the learned V x d table (30,522 x 32 = "
        "976,704 parameters) is 0.000977 parameters, less than one: give a ratio of at least "
        "1.02e-06\n"
    )
    assert not out.exists()


# -- typed changes (how compare and reproduce build arms) ---------------------------------------
def test_typed_changes_give_the_run_the_same_settings_as_their_command_line_spelling():
    from petra.tasks.settings import format_change

    typed = [
        ("model.embedding", {"kind": "kronecker", "pos_dim": 8}),
        ("model.embedding.rank", 4),
        ("train.lr", 1),  # an integer for a float field is read as the command line reads "1"
        ("data.max_train_blocks", None),
        ("model.tie_embeddings", False),
    ]
    spelled = [format_change(key, value) for key, value in typed]
    assert spelled == ['model.embedding={"kind": "kronecker", "pos_dim": 8}',
                       "model.embedding.rank=4", "train.lr=1", "data.max_train_blocks=none",
                       "model.tie_embeddings=false"]  # fmt: skip
    from_typed = run_config("lm", "tiny", changes=typed)
    from_text = run_config("lm", "tiny", spelled)
    for section in ("model", "train", "data"):
        assert from_typed[section] == from_text[section]
    assert from_typed["train"]["lr"] == 1.0 and isinstance(from_typed["train"]["lr"], float)
    assert from_typed["model"]["embedding"] == {"kind": "kronecker", "pos_dim": 8, "rank": 4}
    assert from_typed["overrides"] == [list(change) for change in typed]  # typed, as given
    assert from_text["overrides"] == [
        ["model.embedding", {"kind": "kronecker", "pos_dim": 8}],
        ["model.embedding.rank", 4],
        ["train.lr", 1.0],  # read from the text as its field's type
        ["data.max_train_blocks", None],
        ["model.tie_embeddings", False],
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (("train.lr", "0.001"), "train.lr='0.001': expected a number"),
        (("train.steps", 2.5), "train.steps=2.5: expected an integer"),
        (("train.steps", True), "train.steps=True: expected an integer"),
        (("model.embedding.rank", "4"), "model.embedding.rank='4': expected an integer or none"),
        (("model.embedding", '{"kind": "qr"}'), "unknown embedding kind"),
        (("model.embedding", {"pos_dim": 8}), 'an embedding object needs a "kind"'),
        (("train.nope", 1), "unknown key 'nope' for section 'train'"),
    ],
)
def test_a_typed_change_of_the_wrong_type_is_refused_without_reading_text(change, message):
    from petra.tasks.run import TASKS
    from petra.tasks.settings import apply_changes

    spec = load_preset("lm", "tiny")
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        apply_changes(spec, [("model.embedding", "kronecker"), change], TASKS["lm"][1])
    assert "--set" not in str(error.value)


def test_a_presets_shared_block_is_under_each_tasks_own(tmp_path, monkeypatch):
    from petra.tasks import run

    preset = {
        "all": {"model": {"dim": 32, "embedding": {"kind": "kronecker", "pos_dim": 8}},
                "train": {"steps": 5, "lr": 0.01}},
        "lm": {"model": {"embedding": {"kind": "learned"}}, "train": {"lr": 0.003},
               "data": {"block_size": 16}},
    }  # fmt: skip
    (tmp_path / "mine.json").write_text(json.dumps(preset))
    monkeypatch.setattr(run, "PRESETS_DIR", tmp_path)
    assert load_preset("lm", "mine") == {
        "model": {"dim": 32, "embedding": {"kind": "learned"}},  # replaced whole, not merged
        "train": {"steps": 5, "lr": 0.003},
        "data": {"block_size": 16},
    }
    with pytest.raises(ValueError, match="preset 'mine' has no settings for task 'classify'"):
        load_preset("classify", "mine")


def test_a_presets_block_extends_another_block_section_by_section(tmp_path, monkeypatch):
    from petra.tasks import run

    preset = {
        "all": {"model": {"dim": 32}, "train": {"steps": 5, "lr": 0.01}},
        "sentence": {"train": {"lr": 0.003}, "data": {"max_length": 16}},
        "sts": {"extends": "sentence", "data": {"max_length": 24}},
        "nli-sts": {"extends": "sts", "train": {"steps": 7}},
        "lm": {"extends": "lm"},
        "classify": {"extends": "agnews"},
    }
    (tmp_path / "mine.json").write_text(json.dumps(preset))
    monkeypatch.setattr(run, "PRESETS_DIR", tmp_path)
    assert load_preset("nli-sts", "mine") == {
        "model": {"dim": 32},  # from "all", under the whole chain
        "train": {"steps": 7, "lr": 0.003},
        "data": {"max_length": 24},
    }
    with pytest.raises(ValueError, match="block 'lm' extends itself through 'lm'"):
        load_preset("lm", "mine")
    with pytest.raises(ValueError, match="block 'classify' extends 'agnews', which it lacks"):
        load_preset("classify", "mine")
