"""The training engine: optimizer groups, schedule, end-to-end tasks, resume, divergence,
multi-process training with torchrun, and the `petra train` / `petra eval` commands."""

import json
import math
import re
import shutil

import pytest
import torch
from conftest import run_two_processes

from petra.cli import main
from petra.models import load_pretrained
from petra.tasks.run import apply_overrides, build_run, load_preset
from petra.training import TrainConfig, Trainer, TrainingDiverged, read_metrics
from petra.training.optim import lr_factor


# -- optimizer and schedule --------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_warmup_then_decay(schedule):
    config = TrainConfig(steps=100, warmup=0.1, schedule=schedule)
    assert [lr_factor(s, config) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    middle = {
        "cosine": 0.5 * (1 + math.cos(math.pi * 45 / 90)),
        "linear": 1 - 45 / 90,
        "constant": 1.0,
    }
    assert lr_factor(55, config) == pytest.approx(middle[schedule])
    assert lr_factor(99, config) == pytest.approx(
        {"cosine": 0.0003046, "linear": 1 / 90, "constant": 1.0}[schedule], abs=1e-6
    )


# -- end to end ----------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["classify", "lm"])
def test_tiny_run_writes_its_run_directory(task, tmp_path, capsys):
    out = tmp_path / task
    assert main(["train", task, "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {"metrics", "params", "wall_time_s", "steps", "steps_per_s"} <= results.keys()
    assert results["steps"] == 12 and results["steps_per_s"] > 0
    metrics = results["metrics"]
    if task == "classify":
        assert 0 <= metrics["accuracy"] <= 100 and 0 <= metrics["macro_f1"] <= 100
    else:
        assert math.isfinite(metrics["loss"]) and metrics["perplexity"] == pytest.approx(
            math.exp(metrics["loss"])
        )
    # every task logs the embedding's norms at every evaluation, from step 0
    assert metrics["embedding/row_norm_mean"] > 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = lines[0]
    assert first["step"] == 0 and first["eval/embedding/matrix_row_norm_mean"] > 0
    train_lines = [line for line in lines if "train/loss" in line]
    assert [line["step"] for line in train_lines] == [2, 4, 6, 8, 10, 12]
    assert all(
        math.isfinite(line["train/loss"]) and line["tokens_per_s"] > 0 for line in train_lines
    )
    evaluated = [line["step"] for line in lines if any(k.startswith("eval/") for k in line)]
    assert evaluated == [0, 6, 12]  # 0: before the first step
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == task and config["preset"] == "tiny"
    model = load_pretrained(out / "model")
    assert model.param_report() == results["params"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"] == metrics
    assert main(["eval", task, "--preset", "tiny", "--checkpoint", str(out / "model")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for key in evaluated:
        assert evaluated[key] == pytest.approx(metrics[key], rel=1e-5)


def test_kronecker_and_spectral_classify(tmp_path):
    overrides = [
        "model.embedding=kronecker",
        "model.backbone=spectral",
        "model.slices=2",
        "model.n_heads=1",
    ]
    assert (
        main(
            [
                "train",
                "classify",
                "--preset",
                "tiny",
                "--out",
                str(tmp_path),
                "--quiet",
                *[f"--set={o}" for o in overrides],
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["params"]["encoder_dense_equivalent"] > results["params"]["encoder"]


def test_lm_reports_steps_to_a_target_loss(tmp_path):
    spec = apply_overrides("lm", load_preset("lm", "tiny"), ["data.target_loss=100.0"])
    task, model, config = build_run("lm", spec)
    results = Trainer(model, task, config, tmp_path, progress=False).fit()
    assert results["metrics"]["steps_to_target"] == 0  # the step-0 evaluation already reaches it


# -- resume ----------------------------------------------------------------------------------
def _trainer(spec, out, resume=False, task_name="classify", progress=False):
    task, model, config = build_run(task_name, spec)
    return Trainer(model, task, config, out, resume=resume, progress=progress)


def _assert_same_weights(model, reference):
    for (name, a), b in zip(
        reference.state_dict().items(), model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6, msg=name)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    """Dropout on (so the RNG state matters); the run dies at step 10, after its step-8
    checkpoint, and resumes mid-epoch from step 8, logging steps 9-10 again."""
    spec = apply_overrides(
        "classify",
        load_preset("classify", "tiny"),
        ["model.dropout=0.1", "train.checkpoint_every=4", "train.steps=20", "train.log_every=1"],
    )
    whole = _trainer(spec, tmp_path / "whole")
    whole.fit()
    interrupted = _trainer(spec, tmp_path / "parts")
    assert interrupted.fit(stop_after=10) == {"stopped_at": 10}
    shutil.rmtree(tmp_path / "parts" / "checkpoints" / "step-00000010")  # killed before it
    resumed = _trainer(spec, tmp_path / "parts", resume=True)
    assert resumed.state["step"] == 8 and resumed.state["batch_in_epoch"] == 8
    resumed.fit()
    _assert_same_weights(resumed.model, whole.model)

    def losses(run):
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(line["step"], line["train/loss"]) for line in lines if "train/loss" in line]

    parts, reference = losses(tmp_path / "parts"), losses(tmp_path / "whole")
    assert [step for step, _ in parts] == list(range(1, 21))  # no step logged twice
    torch.testing.assert_close(torch.tensor(parts), torch.tensor(reference), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="already holds a run .* pass --resume"):
        _trainer(spec, tmp_path / "parts")


KILLED_IN_A_CHECKPOINT = """
import os, signal, sys
from petra.models import checkpoint as model_files
from petra.tasks.run import apply_overrides, build_run, load_preset
from petra.training import Trainer

spec = apply_overrides("classify", load_preset("classify", "tiny"), ["train.checkpoint_every=4"])
task, model, config = build_run("classify", spec)
write, calls = model_files.save_file, [0]

def save_file(*args, **kwargs):  # SIGKILL while the weights of the second checkpoint are written
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    write(*args, **kwargs)

model_files.save_file = save_file
Trainer(model, task, config, sys.argv[1], progress=False).fit()
"""


def test_a_run_killed_while_writing_a_checkpoint_resumes_and_leaves_nothing_stray(tmp_path):
    """SIGKILL (no cleanup runs) inside the model's write of the step-8 checkpoint: the run
    resumes from step 4, and once step 8 is written again no temporary folder is left."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_A_CHECKPOINT, str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = out / "checkpoints"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == ["step-00000004"]
    every_4 = ["train.checkpoint_every=4"]
    resumed = _trainer(apply_overrides("classify", load_preset("classify", "tiny"), every_4), out,
                       resume=True)  # fmt: skip
    assert resumed.state["step"] == 4
    resumed.fit()
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000004", "step-00000008"]


def test_resume_refuses_another_command(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "classify", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    assert (
        main(
            [
                "train",
                "classify",
                "--preset",
                "tiny",
                "--out",
                str(out),
                "--quiet",
                "--resume",
                "--set",
                "train.lr=0.1",
            ]
        )
        == 2
    )


def test_divergence_stops_without_overwriting_the_last_good_checkpoint(tmp_path):
    spec = load_preset("classify", "tiny")
    trainer = _trainer(spec, tmp_path)
    good_loss = trainer.task.loss
    calls = {"n": 0}

    def poisoned(model, batch):
        calls["n"] += 1
        loss, tokens = good_loss(model, batch)
        return (loss * float("nan") if calls["n"] == 8 else loss), tokens

    trainer.task.loss = poisoned
    with pytest.raises(
        TrainingDiverged, match=r"the loss is nan at step 8: .*checkpoints/step-00000006"
    ):
        trainer.fit()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000006"]
    assert not (tmp_path / "results.json").exists()


def test_a_non_finite_gradient_norm_stops_before_the_update(tmp_path):
    """A finite loss with an infinite gradient: the step is refused before any weight moves."""
    trainer = _trainer(load_preset("classify", "tiny"), tmp_path)
    parameter = next(trainer.model.parameters())
    parameter.register_hook(lambda grad: grad * float("inf"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(TrainingDiverged, match=r"the gradient norm is (inf|nan) at step 1: "):
        trainer.fit()
    assert all(torch.equal(b, p) for b, p in zip(before, trainer.model.parameters(), strict=True))


# -- several processes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "task, extra",
    [("nli-sts", []), ("sts", []),
     ("lm", ["--set", "model.embedding.kind=kronecker"])],  # DDP broadcasts its byte buffers
)  # fmt: skip
def test_torchrun_two_processes_follow_the_single_process_loss_curve(task, extra, tmp_path):
    """A per-token loss (lm), and in-batch losses: InfoNCE negatives and CoSENT pairs span the
    global batch. (`classify`'s per-example loss is the lm case's kind: not run again.)"""
    settings = [
        *extra,
        "--set",
        "train.log_every=1",
        "--set",
        "train.steps=8",
        "--set",
        "train.batch_size=16",
    ]
    single, double = tmp_path / "one", tmp_path / "two"
    assert (
        main(["train", task, "--preset", "tiny", "--out", str(single), "--quiet", *settings]) == 0
    )
    run_two_processes(
        "-m", "petra.cli", "train", task, "--preset", "tiny", "--out", str(double), "--quiet",
        *settings,
    )  # fmt: skip

    def curve(run):
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [line["train/loss"] for line in lines if "train/loss" in line]

    assert len(curve(double)) == 8
    torch.testing.assert_close(
        torch.tensor(curve(double)), torch.tensor(curve(single)), rtol=1e-4, atol=1e-4
    )
    assert json.loads((double / "results.json").read_text())["world_size"] == 2


def test_too_little_data_for_one_batch_is_refused(tmp_path):
    spec = apply_overrides("lm", load_preset("lm", "tiny"), ["data.max_train_blocks=4"])
    with pytest.raises(ValueError, match="4 training examples do not fill one batch of 8"):
        _trainer(spec, tmp_path, task_name="lm")


def test_resume_survives_a_half_written_checkpoint_and_log_line(tmp_path):
    spec = load_preset("classify", "tiny")
    trainer = _trainer(spec, tmp_path)
    trainer.fit(stop_after=6)
    stale = tmp_path / "checkpoints" / ".step-00000008.0123abcd.tmp"  # killed writing step 8
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "train/lo')  # and while logging
    with pytest.warns(UserWarning, match="dropped a damaged line"):
        resumed = _trainer(spec, tmp_path, resume=True)
    assert resumed.state["step"] == 6
    resumed.fit()
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 12


def test_a_failed_rewrite_of_the_metrics_on_resume_leaves_them_whole(tmp_path):
    """Resuming cuts metrics.jsonl back to the checkpoint's step by writing it again; a write
    that fails part way (here the file-size limit, as a full disk would) leaves every line."""
    resource = pytest.importorskip("resource")
    import signal

    spec = load_preset("classify", "tiny")
    trainer = _trainer(spec, tmp_path)
    trainer.fit(stop_after=6)
    logged = (tmp_path / "metrics.jsonl").read_text()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, limits[1]))
    try:
        with pytest.raises(OSError):
            trainer._truncate_metrics(4)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert len(logged) > 100 and (tmp_path / "metrics.jsonl").read_text() == logged
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_resuming_a_finished_run_returns_its_results(tmp_path):
    spec = load_preset("classify", "tiny")
    results = _trainer(spec, tmp_path).fit()
    logged = (tmp_path / "metrics.jsonl").read_text()
    again = _trainer(spec, tmp_path, resume=True).fit()
    assert again["metrics"] == results["metrics"] and again["steps"] == 12
    assert (tmp_path / "metrics.jsonl").read_text() == logged  # not cut back to the checkpoint


def test_a_damaged_metrics_line_is_named_or_dropped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "train/loss": 1.5}\n[3]\n{"step": 4, "t')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2, is not a logged step \('\[3\]'"):
        read_metrics(tmp_path)
    with pytest.warns(UserWarning, match="dropped a damaged line") as caught:
        assert read_metrics(tmp_path, drop_damaged=True) == [{"step": 2, "train/loss": 1.5}]
    assert len(caught) == 2


def test_resuming_a_finished_run_names_a_damaged_results_file(tmp_path):
    spec = load_preset("classify", "tiny")
    (tmp_path / "results.json").write_text('{"metrics": ')
    with pytest.raises(ValueError, match=r"results.json \(the run's results\) is damaged"):
        _trainer(spec, tmp_path, resume=True).fit()


def test_a_finished_run_without_checkpoints_is_not_overwritten(tmp_path):
    spec = apply_overrides("classify", load_preset("classify", "tiny"), ["train.steps=4"])
    _trainer(spec, tmp_path).fit()  # 4 steps: no checkpoint was ever written
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ValueError, match=r"already holds a run \(results.json\): pass --resume"):
        _trainer(spec, tmp_path)


def test_eval_uses_the_runs_own_split(tmp_path, capsys):
    """A run trained with seed 1 is evaluated on the held-out part of its own seeded split."""
    out = tmp_path / "run"
    args = ["train", "classify", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main([*args, "--set", "train.seed=1"]) == 0
    trained = json.loads(capsys.readouterr().out)["metrics"]
    assert main(["eval", "classify", "--checkpoint", str(out / "model")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(trained["accuracy"])
    assert main(["eval", "lm", "--checkpoint", str(out / "model")]) == 2  # another task


def test_resume_falls_back_past_a_damaged_checkpoint(tmp_path):
    """Interrupted at step 6 and again at 10 (checkpoints 8 and 10 kept); step 10's trainer.pt
    is then truncated. The resume warns, sets step 10 aside and continues from step 8."""
    spec = apply_overrides(
        "classify",
        load_preset("classify", "tiny"),
        ["model.dropout=0.1", "train.checkpoint_every=4", "train.steps=16"],
    )
    whole = _trainer(spec, tmp_path / "whole")
    whole.fit()
    run = tmp_path / "parts"
    _trainer(spec, run).fit(stop_after=6)
    _trainer(spec, run, resume=True).fit(stop_after=10)
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000008", "step-00000010"]
    trainer_file = checkpoints / "step-00000010" / "trainer.pt"
    truncated = trainer_file.read_bytes()[: trainer_file.stat().st_size // 2]
    trainer_file.write_bytes(truncated)
    with pytest.warns(UserWarning, match=r"step-00000010 is truncated or corrupt .*resumed from "):
        resumed = _trainer(spec, run, resume=True)
    assert resumed.state["step"] == 8
    aside = checkpoints / "step-00000010.damaged" / "trainer.pt"
    assert aside.read_bytes() == truncated  # kept, not deleted
    resumed.fit()
    _assert_same_weights(resumed.model, whole.model)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "eval/accuracy" in line] == [0, 6, 12, 16]
    assert [line["step"] for line in lines if "train/loss" in line] == [2, 4, 6, 8, 10, 12, 14, 16]


def test_resume_refuses_clearly_when_no_checkpoint_reads(tmp_path):
    spec = apply_overrides(
        "classify", load_preset("classify", "tiny"), ["train.checkpoint_every=3"]
    )
    _trainer(spec, tmp_path).fit(stop_after=6)
    weights = tmp_path / "checkpoints" / "step-00000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (tmp_path / "checkpoints" / "step-00000003" / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"no checkpoint of .* can be read: .*step-00000006 is "):
        _trainer(spec, tmp_path, resume=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000003",
        "step-00000006",
    ]  # nothing renamed or deleted


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    """Under pytest stderr is captured, as in a log file or CI: no bar, one line per log."""
    spec = load_preset("classify", "tiny")
    _trainer(spec, tmp_path / "shown", progress=True).fit()
    lines = capsys.readouterr().err.splitlines()
    pattern = (
        r"classify step (\d+)/12  loss \d+\.\d{4}  lr \S+  tokens/s \d+  "
        r"elapsed \d\d:\d\d  eta \d\d:\d\d"
    )
    steps = [int(match[1]) for line in lines if (match := re.fullmatch(pattern, line))]
    assert steps == [2, 4, 6, 8, 10, 12]
    _trainer(spec, tmp_path / "quiet", progress=False).fit()
    assert "step" not in capsys.readouterr().err


def test_evaluation_at_step_0_does_not_change_training(tmp_path):
    """An evaluation that draws from the global RNG (a sampled metric, a shuffled subset)
    must not move training: dropout on, so that a shifted RNG would show in the weights."""
    spec = apply_overrides("classify", load_preset("classify", "tiny"), ["model.dropout=0.1"])
    runs = {}
    for name, start in (("with", "true"), ("without", "false")):
        trainer = _trainer(apply_overrides("classify", spec, [f"train.eval_at_start={start}"]),
                           tmp_path / name)  # fmt: skip
        evaluate = trainer.task.evaluate
        trainer.task.evaluate = lambda model, evaluate=evaluate: {
            **evaluate(model),
            "draw": torch.rand(()).item(),
        }
        trainer.fit()
        runs[name] = trainer
    for name, tensor in runs["with"].model.state_dict().items():
        assert torch.equal(tensor, runs["without"].model.state_dict()[name]), name
    first = json.loads((tmp_path / "with" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0 and "eval/accuracy" in first
    assert runs["with"].history[0][0] == 0 and runs["without"].history[0][0] == 6


def test_sparse_embedding_gradients_are_refused(tmp_path):
    spec = apply_overrides(
        "classify", load_preset("classify", "tiny"), ["model.embedding.sparse=true"]
    )
    with pytest.raises(ValueError, match="sparse gradients .*SparseAdam.*drop the option"):
        _trainer(spec, tmp_path)


def test_mistaken_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown device='gpu'"):
        TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="grad_clip must be a finite number, not negative"):
        TrainConfig(grad_clip=-1.0)  # was silently "no clipping"
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr must be a finite number"):
            TrainConfig(lr=value)
    (tmp_path / "file").write_text("")
    for run_dir in (tmp_path / "file", tmp_path / "file" / "run"):  # a file, or under one
        with pytest.raises(ValueError, match=f"cannot be a run directory: {tmp_path / 'file'}"):
            _trainer(load_preset("classify", "tiny"), run_dir)
