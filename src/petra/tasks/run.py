"""From a task name, a preset and overrides to a trained model in a run directory."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch

from petra.models import ModelConfig, build_model
from petra.tasks.classify import ClassifyData, ClassifyTask
from petra.tasks.distill import DistillData, DistillTask
from petra.tasks.lm import LMData, LMTask
from petra.tasks.sentence import NLISTSTask, SentenceData, STSTask
from petra.training import TrainConfig, Trainer

TASKS = {
    "nli-sts": (NLISTSTask, SentenceData),
    "sts": (STSTask, SentenceData),
    "distill": (DistillTask, DistillData),
    "classify": (ClassifyTask, ClassifyData),
    "lm": (LMTask, LMData),
}
PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs"
SECTIONS = ("model", "train", "data")
SET_BY_TASK = ("model", "vocab_size", "num_labels", "tokenizer_fingerprint")


def _choose(name: str, valid, what: str) -> None:
    if name not in valid:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(valid)}")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(task: str, preset: str) -> dict:
    """The `model`, `train` and `data` sections of `preset` for `task`."""
    _choose(task, TASKS, "task")
    _choose(preset, presets(), "preset")
    sections = json.loads((PRESETS_DIR / f"{preset}.json").read_text())
    if task not in sections:
        raise ValueError(f"preset {preset!r} has no settings for task {task!r}")
    return {name: dict(sections[task].get(name, {})) for name in SECTIONS}


def _valid_keys(task: str, section: str) -> set[str]:
    if section == "model":
        return {f.name for f in dataclasses.fields(ModelConfig)} - set(SET_BY_TASK)
    if section == "train":
        return {f.name for f in dataclasses.fields(TrainConfig)}
    return {f.name for f in dataclasses.fields(TASKS[task][1])}


def apply_overrides(task: str, spec: dict, overrides: list[str]) -> dict:
    """`section.key=value` (value read as JSON when it parses, else as a string);
    `model.embedding.<option>=...` sets an embedding option, `model.embedding=<kind>` the kind."""
    spec = copy.deepcopy(spec)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes section.key=value, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section, _, name = key.partition(".")
        _choose(section, SECTIONS, "--set section")
        if section == "model" and name.startswith("embedding"):
            embedding = spec["model"].setdefault("embedding", {"kind": "learned"})
            option = name.removeprefix("embedding").lstrip(".")
            if not option:
                spec["model"]["embedding"] = {"kind": value} if isinstance(value, str) else value
            else:
                embedding[option] = value
            continue
        _choose(name, _valid_keys(task, section), f"--set key for section {section!r}:")
        spec[section][name] = value
    return spec


def build_run(task_name: str, spec: dict):
    """(task, model, train config) for a spec with `model`, `train` and `data` sections."""
    task_cls, data_cls = TASKS[task_name]
    train_config = TrainConfig(**spec["train"])
    torch.manual_seed(train_config.seed)
    task = task_cls(data_cls(**spec["data"]), seed=train_config.seed)
    model_config = ModelConfig.from_dict({**spec["model"], **task.model_fields()})
    model = build_model(model_config, tokenizer=task.tokenizer)
    if hasattr(task, "prepare_model"):
        task.prepare_model(model)
    return task, model, train_config


def run_config(task_name: str, preset: str, overrides: list[str] | None = None) -> dict:
    """What a run directory's config.json records: task, preset, overrides and the sections."""
    spec = apply_overrides(task_name, load_preset(task_name, preset), overrides or [])
    return {"task": task_name, "preset": preset, "overrides": overrides or [], **spec}


def find_run_config(checkpoint: str | Path) -> dict | None:
    """The config.json of the run a checkpoint belongs to (`run/model`, or
    `run/checkpoints/step-N`), if any."""
    for parent in list(Path(checkpoint).resolve().parents)[:2]:
        path = parent / "config.json"
        if path.is_file():
            config = json.loads(path.read_text())
            if isinstance(config, dict) and "task" in config and "data" in config:
                return config
    return None


def run_task(
    task_name: str,
    preset: str,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train `task_name` with `preset` (+ overrides) into `out`; return the results."""
    config = run_config(task_name, preset, overrides)
    spec = {name: config[name] for name in SECTIONS}
    out = Path(out or f"runs/{task_name}-{preset}")
    saved = out / "config.json"
    if resume and saved.is_file():
        previous = json.loads(saved.read_text())
        if {k: previous.get(k) for k in config} != config:
            raise ValueError(
                f"{saved} describes another run than this command: resume with the same task, "
                "preset and --set values"
            )
    task, model, train_config = build_run(task_name, spec)
    trainer = Trainer(
        model, task, train_config, out, run_config=config, resume=resume, progress=progress
    )
    return trainer.fit()
