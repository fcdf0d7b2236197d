"""Provenance of `petra reproduce` results: the runner records each arm's settings (from its
runs' config.json), their departures from the registry's protocol and the environment of
every run and of the results file; the report's As-run part renders them before the
registry's texts, and a file of an earlier petra renders what it lacks as not recorded."""

import json
import platform
import shutil
from pathlib import Path

import pytest
import torch

from petra import provenance
from petra.reproduce import CLAIMS, reproduce, runner
from petra.reproduce.claims import Arm, Claim
from petra.reproduce.report import WRITTEN, format_report, load_results, write_report
from petra.tasks.run import effective_settings, run_config
from petra.tasks.settings import SET_BY_TASK

FIXTURES = Path(__file__).parent / "fixtures" / "reproduce"
ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.steps=2", "train.eval_every=2", "train.checkpoint_every=2", "train.log_every=1"]


@pytest.fixture
def results_dir(tmp_path):
    return Path(shutil.copytree(FIXTURES, tmp_path / "results"))


def _section(text: str, claim: str) -> str:
    start = text.index(f'<a id="{claim}"></a>')
    end = text.find("<a id=", start + 1)
    return text[start : end if end > 0 else None]


def _edit(path: Path, change) -> None:
    result = json.loads(path.read_text())
    change(result)
    path.write_text(json.dumps(result))


# ---------------------------------------------------------------- environment


def test_cpu_model_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654\n\n"
                   "processor\t: 1\nmodel name\t: AMD EPYC 9654\n")  # fmt: skip
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\n")
    assert provenance.cpu_model(x86) == "AMD EPYC 9654"
    assert provenance.cpu_model(arm) == "BCM2835"
    fallback = platform.processor() or platform.machine() or "unknown"
    assert provenance.cpu_model(tmp_path / "absent") == fallback


def test_environment_fields_and_their_check():
    env = provenance.environment("cpu", torch.float64, processes=2)
    assert env["device"] == "cpu" and env["dtype"] == "float64" and env["processes"] == 2
    assert env["torch"] == torch.__version__ and env["python"] == platform.python_version()
    assert env["threads"] == torch.get_num_threads()
    assert env["machine"]["cpu"] == provenance.cpu_model()
    assert 1 <= env["machine"]["cores_usable"] <= env["machine"]["cores"]
    assert provenance.environment_problem(env) is None
    assert json.loads(json.dumps(env)) == env  # plain JSON
    assert provenance.environment_problem("H100") == "must be a JSON object"
    assert provenance.environment_problem({**env, "torch": 2.1}) == (
        "is not as petra writes it (torch is 2.1, not a string)"
    )
    assert provenance.environment_problem({**env, "threads": True}) == (
        "is not as petra writes it (threads is True, not an integer)"
    )
    machine = {k: v for k, v in env["machine"].items() if k != "cpu"}
    assert provenance.environment_problem({**env, "machine": machine}) == (
        "is not as petra writes it (no machine.cpu)"
    )
    assert provenance.environment_problem({**env, "machine": "x86"}) == (
        "is not as petra writes it (machine is 'x86', not a JSON object)"
    )


def test_describe_an_environment():
    env = {
        "machine": {"cpu": "Intel Xeon", "cores": 16, "cores_usable": 2, "platform": "Linux-6"},
        "python": "3.12.3",
        "torch": "2.11.0+cu130",
        "device": "cuda (NVIDIA H100 80GB HBM3)",
        "dtype": "float32",
        "threads": 2,
        "processes": 1,
    }
    assert provenance.describe(env) == (
        "cuda (NVIDIA H100 80GB HBM3), float32, 1 process; torch 2.11.0+cu130, Python 3.12.3; "
        "CPU Intel Xeon, 16 cores (2 usable), 2 torch threads; Linux-6"
    )
    env["machine"]["cores_usable"], env["processes"] = 16, 4
    env["threads"] = 1
    assert "4 processes" in provenance.describe(env) and "16 cores, 1 torch thread;" in (
        provenance.describe(env)
    )


# ---------------------------------------------------------------- the runner's records


def test_recorded_settings_drop_the_seed_and_name_the_starting_run():
    config = run_config("lm", "kronecker-lm", ["model.embedding=learned", "train.seed=3"])
    recorded = runner.recorded_settings(config, 3)
    assert set(recorded) == {"model", "train", "data"}
    assert "seed" not in recorded["train"] and recorded["train"]["steps"] == 400
    assert recorded["train"]["schedule"] == "cosine"  # a default the preset leaves out
    assert not {"vocab_size", "num_labels", "model"} & set(recorded["model"])  # the task's
    assert recorded == runner.recorded_settings(
        {**config, "train": {**config["train"], "seed": 4}}, 4
    )
    start = "/somewhere/runs/claim/fourier-58k-nli@lr=0.001-seed3/model"
    config["train"]["init"] = start
    assert runner.recorded_settings(config, 3)["train"]["init"] == "fourier-58k-nli@lr=0.001"
    assert runner.recorded_settings(config, 2)["train"]["init"] == start  # not the same seed


def test_departures_from_the_protocol():
    protocol = runner.recorded_settings(run_config("lm", "kronecker-lm", []), 0)
    ran = runner.recorded_settings(
        run_config("lm", "kronecker-lm", ["model.dim=256", "train.lr=0.01"]), 0
    )
    assert runner.departures(protocol, protocol, {}) == []
    assert runner.departures(ran, protocol, {}) == [
        {"setting": "model.dim", "run": 256, "protocol": 128},
        {"setting": "train.lr", "run": 0.01, "protocol": 0.002},
    ]
    grid = {"train.lr": "chosen on held-out data from 0.001, 0.003"}
    assert runner.departures(ran, protocol, grid)[1]["protocol"] == grid["train.lr"]


@pytest.fixture
def corpus(tmp_path_factory) -> str:
    """200 Shakespeare paragraphs, so that the runs tokenize a few kB instead of the whole
    corpus."""
    from petra.data import resolve_data_dir

    paragraphs = (resolve_data_dir() / "corpus" / "shakespeare.txt").read_text().split("\n\n")
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(paragraphs[200:400]))
    return str(path)


def test_the_runner_records_settings_departures_and_environments(tmp_path, corpus, monkeypatch):
    """Two arms of a made-up LM claim (the `kronecker-lm` preset as its protocol), run on the
    tiny preset with two seeds and a --set: each arm records one copy of its runs'
    settings for both seeds, what is not the protocol (the --set, the preset's sizes), the
    environment of each run; the results file its own; the report renders them."""
    claim = Claim(
        id="provenance-lm",
        order=99,
        title="A made-up LM claim",
        paper="none",
        where="nowhere",
        paper_figure="none",
        protocol="lm, d=128 (the registry's text)",
        differences=("size: d=128",),
        paper_scale="none",
        comparisons=(),
        arms=(
            Arm("narrow", "learned", "lm", "kronecker-lm", {"model.embedding": "learned"}),
            Arm("wide", "learned, d=48", "lm", "kronecker-lm", {"model.dim": 48}),
        ),
    )
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    extra = [*TINY, f"data.corpus={corpus}", "model.n_layers=1", "train.device=cpu"]
    (path,) = reproduce([claim.id], tmp_path, seeds=2, preset="tiny", extra=extra, progress=False)
    result = json.loads(path.read_text())
    assert set(result) <= WRITTEN and "hardware" not in result
    env = result["environment"]
    assert provenance.environment_problem(env) is None
    assert (env["device"], env["torch"]) == ("cpu", torch.__version__)
    for label, dim in (("narrow", 32), ("wide", 48)):
        arm = result["arms"][label]
        assert set(arm["trained_on"]) == {"0", "1"}
        for seed, trained_on in arm["trained_on"].items():
            assert provenance.environment_problem(trained_on) is None
            assert (trained_on["device"], trained_on["dtype"]) == ("cpu", "float32")
            folder = tmp_path / "runs" / claim.id / f"{label}-seed{seed}"
            run = json.loads((folder / "results.json").read_text())
            assert run["environment"] == trained_on  # the run's own record
            config = json.loads((folder / "config.json").read_text())
            model = json.loads((folder / "model" / "config.json").read_text())
            # at run time, defaults in, and what the data set as the trained model has it
            expected = effective_settings(config)
            expected["model"].update({k: model[k] for k in SET_BY_TASK if k in model})
            assert run["settings"] == expected
            assert run["settings"]["model"]["vocab_size"] > 2  # not effective_settings' placeholder
        (group,) = arm["settings"]  # the seeds differ only by seed: one copy
        assert group["seeds"] == [0, 1] and "seed" not in group["train"]
        assert group["recorded_at_run_time"] is True
        config = json.loads(
            (tmp_path / "runs" / claim.id / f"{label}-seed1" / "config.json").read_text()
        )
        assert group["model"]["dim"] == config["model"]["dim"] == dim
        assert (group["model"]["n_layers"], group["train"]["steps"]) == (1, 2)
        departures = {d["setting"]: (d["run"], d["protocol"]) for d in group["departures"]}
        assert departures["model.n_layers"] == (1, 2)  # --set
        assert departures["train.steps"] == (2, 400) and departures["train.device"] == (
            "cpu",
            "auto",
        )
        assert departures["data.corpus"] == (corpus, "shakespeare")
        assert ("model.dim" in departures) == (label == "narrow")  # the arm sets d=48
    report = write_report(path.parent, tmp_path / "REPORT.md")
    section = _section(report.read_text(), claim.id)
    assert section.index("### As run") < section.index("### Protocol (the registry's default)")
    assert "All arms: n_layers=1, n_heads=2, block_size=32, batch_size=8, steps=2," in section
    assert (
        "| arm | dim |" in section
        and "| `narrow` | 32 |" in section
        and "| `wide` | 48 |" in section
    )
    (line,) = [x for x in section.splitlines() if x.startswith("**Not the registry's protocol")]
    narrow, every = line.split("; in every arm: ")
    assert narrow.endswith("in `narrow`: `model.dim=32` (the protocol: 128)")
    assert "`model.n_layers=1` (the protocol: 2)" in every
    assert "`train.device=cpu` (the protocol: auto)" in every
    # the runs, and this process that wrote the results, on one machine: one line
    assert result["arms"]["wide"]["trained_on"]["0"] == env
    ran_on = "Ran on (its runs, its analyses and this results file)"
    assert f"{ran_on}: {provenance.describe(env)}." in section
    assert "not vouched for" not in section
    assert "did not record its defaults" not in section


# ---------------------------------------------------------------- the report


def _larger(results_dir: Path) -> dict:
    """The fixture claim as if run with d=256 and 800 steps: its arms' settings as the
    runner records them, against the kronecker-lm preset's protocol."""
    protocol = runner.recorded_settings(run_config("lm", "kronecker-lm", []), 0)
    ran = runner.recorded_settings(
        run_config("lm", "kronecker-lm", ["model.dim=256", "train.steps=800"]), 0
    )
    group = {
        "seeds": [0, 1, 2],
        **ran,
        "departures": runner.departures(ran, protocol, {}),
        "recorded_at_run_time": False,  # as for runs of an earlier petra
    }
    env = provenance.environment("cpu", torch.float32)

    def change(result):
        for arm in result["arms"].values():
            arm["settings"] = [group]
            arm["trained_on"] = {seed: env for seed in arm["per_seed"]}
        result["environment"] = env

    _edit(results_dir / "kronecker-lm-loss.json", change)
    return env


def test_the_as_run_part_follows_the_recorded_settings(results_dir):
    """Settings recorded at d=256 and 800 steps render as such, flagged as not the
    registry's protocol, before the registry's text (which says d=128)."""
    env = _larger(results_dir)
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    as_run = section[section.index("### As run") : section.index("### Protocol")]
    assert "All arms: dim=256, n_layers=2, n_heads=2, block_size=128, batch_size=16, " in as_run
    assert "steps=800, lr=0.002, tokenizer=gpt2, corpus=shakespeare." in as_run
    assert "dim=128" not in as_run  # the registry's d=128
    assert (
        "**Not the registry's protocol**: in every arm: `model.dim=256` (the protocol: 128), "
        "`train.steps=800` (the protocol: 400). The registry's texts below"
    ) in as_run
    ran_on = "Ran on (its runs, its analyses and this results file)"
    assert f"{ran_on}: {provenance.describe(env)}." in as_run
    assert "d=128, 3 seeds (fixture" in section[section.index("### Protocol") :]
    assert "were made by a petra that did not record its defaults" in as_run


def test_reference_arms_are_not_runs_and_no_departure_is_said(results_dir):
    """An arm an analysis adds (a pretrained table: no task, no runs) has no settings or
    machine to record; settings that are all the protocol's are said to be."""
    env = _larger(results_dir)

    def change(result):
        result["arms"]["pretrained"] = {"description": "a table", "per_seed": {"0": {}}}
        for arm in result["arms"].values():
            for group in arm.get("settings", []):
                group["departures"] = []
        del result["arms"]["learned-untied"]["settings"]

    _edit(results_dir / "kronecker-lm-loss.json", change)
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    as_run = section[section.index("### As run") : section.index("### Protocol")]
    assert "pretrained" not in as_run and "Not recorded for `learned-untied`." in as_run
    assert "Every recorded setting is the registry's protocol" in as_run
    assert "Not the registry's protocol" not in as_run
    assert f"(its runs, its analyses and this results file): {provenance.describe(env)}." in as_run


def test_runs_on_several_machines_are_named(results_dir):
    env = _larger(results_dir)
    gpu = {**env, "device": "cuda (NVIDIA H100 80GB HBM3)"}

    def change(result):
        result["arms"]["learned-tied"]["trained_on"]["2"] = gpu
        del result["arms"]["learned-untied"]["trained_on"]["1"]

    _edit(results_dir / "kronecker-lm-loss.json", change)
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    line = next(x for x in section.splitlines() if x.startswith("Trained on:"))
    assert f"{provenance.describe(gpu)} (`learned-tied` seed 2)" in line
    assert "not recorded (runs of an earlier petra) (`learned-untied` seed 1)" in line
    assert "`kronecker-untied` seed 2, `learned-untied` seed 0)" in line


def test_a_file_of_an_earlier_petra_renders_what_it_lacks(results_dir):
    """No settings, no environment: said; the command's --set values named; a key the
    runner does not write (a hand-added `hardware`) shown as not vouched for."""

    def change(result):
        result["command"] += " --preset tiny --set 'model.dim=256' --set train.steps=800"
        result["hardware"] = "NVIDIA H100 (added by hand)"

    _edit(results_dir / "kronecker-lm-loss.json", change)
    text = format_report(load_results(results_dir), {})
    section = _section(text, "kronecker-lm-loss")
    assert "Settings: not recorded (this results file was written by an earlier petra" in section
    assert (
        "**Given at run time** (the command below): `--preset tiny`, `--set model.dim=256`, "
        "`--set train.steps=800`. The registry's texts below"
    ) in section
    assert "Machine: not recorded (an earlier petra wrote this file and its runs)." in section
    assert (
        "not vouched for (a field of an earlier petra, or added by hand): `hardware`: NVIDIA "
        "H100 (added by hand)."
    ) in section
    # a measurement's file (no trained arms) of an earlier petra
    assert "Measured on: not recorded (an earlier petra wrote this file)." in _section(
        text, "slices-accuracy"
    )
    assert "Given at run time" not in _section(text, "slices-accuracy")


def test_the_larger_run_of_the_committed_results_names_its_settings(tmp_path):
    """reproduction/larger ran at d=256, 4 layers, 800 steps with a results file of an
    earlier petra: its report names those --set values beside the registry's d=128."""
    larger = ROOT / "reproduction" / "larger" / "results"
    text = format_report(load_results(larger), {})
    section = _section(text, "kronecker-lm-loss")
    for item in ("model.dim=256", "model.n_layers=4", "train.steps=800"):
        assert f"`--set {item}`" in section


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (lambda r: r.__setitem__("environment", "a GPU"), "key 'environment' must be a JSON"),
        (
            lambda r: r["environment"].pop("torch"),
            "key 'environment' is not as petra writes it (no torch)",
        ),
        (
            lambda r: r["arms"]["learned-tied"]["trained_on"].__setitem__("7", None),
            "arm 'learned-tied': key 'trained_on' must map the claim's seeds",
        ),
        (
            lambda r: r["arms"]["learned-tied"]["trained_on"]["0"].__setitem__("dtype", 32),
            "key 'trained_on', seed 0, is not as petra writes it (dtype is 32, not a string)",
        ),
        (
            lambda r: r["arms"]["learned-tied"].__setitem__("settings", {"model": {}}),
            "key 'settings' must be a list",
        ),
        (
            lambda r: r["arms"]["learned-tied"]["settings"][0].__setitem__("seeds", [0, 5]),
            "'seeds' are not the claim's seeds",
        ),
        (
            lambda r: r["arms"]["learned-tied"]["settings"][0].pop("data"),
            "without the sections model, train, data",
        ),
        (
            lambda r: r["arms"]["learned-tied"]["settings"][0]["departures"][0].pop("run"),
            "'departures' that are not objects",
        ),
    ],
)
def test_hand_edited_provenance_is_refused(results_dir, break_it, where):
    _larger(results_dir)
    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    break_it(result)
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="kronecker-lm-loss.json") as refused:
        load_results(results_dir)
    assert where in str(refused.value)
