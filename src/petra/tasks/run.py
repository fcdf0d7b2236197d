"""From a task name, a preset and changes of its settings to a trained model in a run
directory.

A run's settings are the preset's sections changed by typed changes (`changes`, as `petra
compare` and `petra reproduce` give them) and by command-line `--set` strings (`overrides`,
read by `petra.tasks.settings` and applied before them)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from petra.atomic import read_json
from petra.embeddings import check_embedding_options
from petra.models import ModelConfig, build_model, load_pretrained
from petra.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from petra.tasks import settings
from petra.tasks.classify import ClassifyData, ClassifyTask
from petra.tasks.distill import DistillData, DistillTask
from petra.tasks.lm import LMData, LMTask
from petra.tasks.sentence import NLISTSTask, SentenceData, STSTask
from petra.tasks.settings import Change
from petra.training import TrainConfig, Trainer

TASKS = {
    "nli-sts": (NLISTSTask, SentenceData),
    "sts": (STSTask, SentenceData),
    "distill": (DistillTask, DistillData),
    "classify": (ClassifyTask, ClassifyData),
    "lm": (LMTask, LMData),
}
PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs"
SECTIONS = settings.SECTIONS


def _choose(name: str, valid, what: str) -> None:
    if name not in valid:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(valid)}")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


SHARED = "all"  # a preset's block of settings that every task of it shares
EXTENDS = "extends"  # a block's key naming the block it starts from (else SHARED)


def load_preset(task: str, preset: str) -> dict:
    """The `model`, `train` and `data` sections of `preset` for `task`: the task's own block
    over the block it `extends` (by default the preset's shared block, `"all"`), section by
    section (a key a block gives replaces the one under it, `model.embedding` included)."""
    _choose(task, TASKS, "task")
    _choose(preset, presets(), "preset")
    blocks = json.loads((PRESETS_DIR / f"{preset}.json").read_text())
    if task not in blocks:
        raise ValueError(f"preset {preset!r} has no settings for task {task!r}")
    return _block(blocks, task, preset)


def _block(blocks: dict, name: str, preset: str, below: tuple[str, ...] = ()) -> dict:
    """The sections of block `name`, each over those of the block it extends."""
    own = blocks[name]
    base = own.get(EXTENDS, SHARED if name != SHARED else None)
    if base in (name, *below):
        raise ValueError(f"preset {preset!r}: block {name!r} extends itself through {base!r}")
    if base is not None and base not in blocks:
        if own.get(EXTENDS) is not None:
            raise ValueError(f"preset {preset!r}: block {name!r} extends {base!r}, which it lacks")
        base = None  # a preset without a shared block
    under = {} if base is None else _block(blocks, base, preset, (*below, name))
    return {section: {**under.get(section, {}), **own.get(section, {})} for section in SECTIONS}


def apply_overrides(task: str, spec: dict, overrides: list[str]) -> dict:
    """`spec` with each command-line `section.key=value` of `overrides` applied, typed by its
    field (see `petra.tasks.settings`)."""
    _choose(task, TASKS, "task")
    data_class = TASKS[task][1]
    return settings.apply_changes(spec, settings.parse_overrides(spec, overrides, data_class),
                                  data_class)  # fmt: skip


def parse_overrides(
    task: str, preset: str, overrides: list[str], changes: Sequence[Change] = ()
) -> list[Change]:
    """Command-line `--set` strings as typed changes of the task's settings under `preset`,
    each typed in the context of the typed `changes` (so an embedding option takes the type
    of the kind they choose)."""
    _choose(task, TASKS, "task")
    data_class = TASKS[task][1]
    context = settings.apply_changes(load_preset(task, preset), changes, data_class)
    return settings.parse_overrides(context, list(overrides), data_class)


def task_vocab_size(task_name: str, data: dict) -> int:
    """V of the tokenizer a task uses under these data settings (the task built for
    evaluation only: no training data is read, except to train a `bpe:` tokenizer)."""
    task_cls, data_cls = TASKS[task_name]
    return task_cls(data_cls(**data), training=False).model_fields()["vocab_size"]


def build_run(task_name: str, spec: dict):
    """(task, model, train config) for a spec with `model`, `train` and `data` sections."""
    task_cls, data_cls = TASKS[task_name]
    train_config = TrainConfig(**spec["train"])
    torch.manual_seed(train_config.seed)
    task = task_cls(data_cls(**spec["data"]), seed=train_config.seed)
    if train_config.init is None:
        model_config = ModelConfig.from_dict({**spec["model"], **task.model_fields()})
        model = build_model(model_config, tokenizer=task.tokenizer)
    else:  # the saved model (the spec's model section is its config, see run_config)
        init = Path(train_config.init)
        model = load_fitting_model(init, ModelConfig.load(init / CONFIG_FILE), task)
    if hasattr(task, "prepare_model"):
        task.prepare_model(model)
    return task, model, train_config


# What a run's settings mean: raised whenever a change makes the same settings train another
# model (2: each kind's paper head by default, weight decay by what a parameter is, spatial
# spectral weights initialized as the transform-domain model), so that a run or a compare arm
# recorded before it is never resumed or reused as if it were one of today's.
RUN_FORMAT = 2


def model_config_before_data(task_name: str, model: dict) -> ModelConfig:
    """The model section as a `ModelConfig`, the fields a task sets from its data (the model
    type, V, the number of labels) at placeholders."""
    placeholders = {"model": TASKS[task_name][0].model_type, "vocab_size": 2, "num_labels": 2}
    return ModelConfig.from_dict({**model, **placeholders})


def check_spec(task_name: str, spec: dict) -> None:
    """Refuse settings that cannot build a model, its embedding, a schedule or a data set,
    before any data is read (the fields a task sets from its data get placeholders here)."""
    data_cls = TASKS[task_name][1]
    config = model_config_before_data(task_name, spec["model"])
    if spec["train"].get("init") is None:  # a saved model's embedding is checked as it loads
        check_embedding_options(config.embedding_kind, config.dim, **config.embedding_options)
    TrainConfig(**spec["train"])
    data_cls(**spec["data"])


def _with_initial_model(task_name: str, spec: dict, changes: list[Change]) -> dict:
    """`train.init=DIR`: the run starts from the model saved in DIR, so its model section is
    that model's config (what config.json then records); model settings given beside it
    are refused, since they would not describe the model trained."""
    given = [settings.format_change(k, v) for k, v in changes if k.startswith("model.")]
    if given:
        raise ValueError(
            f"the model comes from train.init={spec['train']['init']}: drop {given[0]!r} "
            "(a run started from a saved model keeps that model's settings)"
        )
    config = saved_model_config(task_name, Path(spec["train"]["init"]), "trains")
    model = {k: v for k, v in config.to_dict().items() if k not in settings.SET_BY_TASK}
    return {**spec, "model": model}


def run_config(
    task_name: str,
    preset: str,
    overrides: list[str] | None = None,
    *,
    changes: Sequence[Change] = (),
) -> dict:
    """What a run directory's config.json records: task, preset, the changes of the preset's
    settings (`overrides`, read in the preset's context, then `changes`; recorded as typed
    [key, value] pairs), the format of the settings and the sections; the settings are
    checked."""
    typed = [*parse_overrides(task_name, preset, overrides or []), *changes]
    spec = settings.apply_changes(load_preset(task_name, preset), typed, TASKS[task_name][1])
    if spec["train"].get("init") is not None:
        spec = _with_initial_model(task_name, spec, typed)
    check_spec(task_name, spec)
    return {
        "task": task_name,
        "preset": preset,
        "overrides": [[key, value] for key, value in typed],
        "run_format": RUN_FORMAT,
        **spec,
    }


def effective_settings(config: dict) -> dict:
    """What a run config trains: its task and each section with every default filled in, so
    that settings spelled differently (a preset's value given again with --set, another
    preset with the same values) are the same run."""
    data_cls = TASKS[config["task"]][1]
    return {
        "task": config["task"],
        "model": model_config_before_data(config["task"], config["model"]).to_dict(),
        "train": dataclasses.asdict(TrainConfig(**config["train"])),
        "data": dataclasses.asdict(data_cls(**config["data"])),
    }


def check_same_run(run_dir: Path, config: dict, advice: str) -> None:
    """Refuse a run directory whose config.json records other effective settings than
    `config` (`check_same_settings`), or settings of an earlier run format (they meant
    another model then)."""
    record = run_dir / "config.json"
    previous = read_json(record, "the run's settings")
    if previous.get("run_format") != config["run_format"]:
        raise ValueError(
            f"{run_dir} was run by an earlier petra (run format {previous.get('run_format', 1)}, "
            f"now {config['run_format']}) whose settings trained another model: start it "
            "again in another --out, or delete it"
        )
    try:
        recorded = effective_settings(previous)
    except (KeyError, TypeError, ValueError) as error:  # settings this petra cannot read
        raise ValueError(
            f"{record} describes another run than this one (settings this petra cannot read: "
            f"{error}): {advice}"
        ) from None
    check_same_settings(record, recorded, effective_settings(config), advice)


def check_same_settings(record: str | Path, recorded: dict, settings: dict, advice: str) -> None:
    """Refuse the settings `recorded` in `record` unless they equal `settings` (the run's
    settings as dicts, nested by section), naming each setting that differs as a dotted path
    (`train.seed`); `petra train --resume`, compare, reproduce and `petra compress` all check
    a run they resume or reuse with it."""
    if recorded != settings:
        differ = ", ".join(_differing(recorded, settings))
        raise ValueError(
            f"{record} describes another run than this one, with other settings ({differ}): "
            f"{advice}"
        )


def _differing(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted paths at which the nested dicts `a` and `b` differ (a key held by one only
    differs); empty exactly when `a == b`."""
    names = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key, _MISSING), b.get(key, _MISSING)
        if isinstance(x, dict) and isinstance(y, dict):
            names += _differing(x, y, f"{prefix}{key}.")
        elif x is not y and x != y:  # as `==` of two dicts compares their values
            names.append(f"{prefix}{key}")
    return names


_MISSING = object()


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


def saved_model_config(task_name: str, checkpoint: Path, use: str) -> ModelConfig:
    """The config of the model saved in `checkpoint`, refused unless it is of the model type
    `task_name` trains and evaluates (read before any data)."""
    if not (checkpoint / CONFIG_FILE).is_file() or not (checkpoint / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"no saved model at {checkpoint} (it needs {CONFIG_FILE} and {WEIGHTS_FILE}): give "
            "a run's model/ folder or one of its checkpoints/step-N folders"
        )
    config = ModelConfig.load(checkpoint / CONFIG_FILE)
    task_cls = TASKS[task_name][0]
    if config.model != task_cls.model_type:
        fitting = sorted(name for name, (cls, _) in TASKS.items() if cls.model_type == config.model)
        raise ValueError(
            f"{checkpoint} holds a {config.model} model, but task {task_name!r} {use} "
            f"{task_cls.model_type} models; tasks that fit it: {fitting}"
        )
    return config


def load_fitting_model(checkpoint: Path, config: ModelConfig, task):
    """The model saved in `checkpoint`, once its vocabulary and labels are found to be the
    task's (and its tokenizer, by fingerprint, the task's tokenizer)."""
    for key, value in task.model_fields().items():
        if getattr(config, key) != value:
            raise ValueError(
                f"{checkpoint} was built with {key}={getattr(config, key)}, but task "
                f"{task.name!r} with these data settings needs {key}={value}"
            )
    return load_pretrained(checkpoint, tokenizer=task.tokenizer)


def evaluation_spec(
    task_name: str, checkpoint: Path, preset: str, overrides: list[str], changes=()
) -> dict:
    """The settings to evaluate `checkpoint` on `task_name`: those of the run it came from
    when that run was of the same task (so a held-out split is the one it was held out from),
    else the preset's with the data settings the two tasks share taken from that run."""
    base = load_preset(task_name, preset)
    saved = find_run_config(checkpoint)
    if saved is not None and saved.get("task") == task_name:
        base = {name: saved[name] for name in SECTIONS}
    elif saved is not None:
        shared = settings.section_types("data", TASKS[task_name][1])
        base["data"] |= {k: v for k, v in saved.get("data", {}).items() if k in shared}
    data_class = TASKS[task_name][1]
    typed = [*settings.parse_overrides(base, list(overrides), data_class), *changes]
    if (checkpoint / "tokenizer.json").is_file():  # the tokenizer it was trained with
        typed.append(("data.tokenizer", str(checkpoint)))
    return settings.apply_changes(base, typed, data_class)


def evaluate_checkpoint(
    task_name: str,
    checkpoint: str | Path,
    preset: str,
    overrides: list[str] | None = None,
    *,
    changes: Sequence[Change] = (),
) -> dict:
    """The metrics of the model saved in `checkpoint` on the held-out data of `task_name`.
    A checkpoint fits a task when its model type is the task's (any sentence task scores a
    sentence model) and its vocabulary and labels are the task's; only the evaluation data
    is read, after the checkpoint's config has been checked."""
    _choose(task_name, TASKS, "task")
    checkpoint = Path(checkpoint)
    config = saved_model_config(task_name, checkpoint, "evaluates")
    task_cls, data_cls = TASKS[task_name]
    spec = evaluation_spec(task_name, checkpoint, preset, overrides or [], changes)
    task = task_cls(data_cls(**spec["data"]), seed=spec["train"].get("seed", 0), training=False)
    model = load_fitting_model(checkpoint, config, task).eval()
    with torch.no_grad():
        return task.evaluate(model)


def run_task(
    task_name: str,
    preset: str,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    *,
    changes: Sequence[Change] = (),
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train `task_name` with `preset`, changed by the command-line `overrides` and the typed
    `changes`, into `out`; return the results."""
    config = run_config(task_name, preset, overrides, changes=changes)
    spec = {name: config[name] for name in SECTIONS}
    out = Path(out or f"runs/{task_name}-{preset}")
    if resume and (out / "config.json").is_file():
        check_same_run(out, config, "resume with the same task, preset and --set values")
    task, model, train_config = build_run(task_name, spec)
    recorded = effective_settings(config)
    built = model.config.to_dict()  # what the data set (V, the labels) as the model has it
    recorded["model"].update({k: built[k] for k in settings.SET_BY_TASK if k in built})
    trainer = Trainer(
        model,
        task,
        train_config,
        out,
        run_config=config,
        settings=recorded,
        resume=resume,
        progress=progress,
    )
    return trainer.fit()


def run_or_reuse(
    task_name: str, preset: str, changes: Sequence[Change], out: Path, progress: bool = True
) -> dict:
    """The results of the run in `out` of `preset` with the typed `changes`: reused when it
    finished with these settings (refused when it ran others), else trained, resuming from its
    last checkpoint if it was cut off."""
    if (out / "results.json").is_file():
        config = run_config(task_name, preset, changes=changes)
        check_same_run(out, config, "choose another --out, or delete it")
    else:
        run_task(task_name, preset, None, out, changes=changes, resume=True, progress=progress)
    results = read_json(out / "results.json", "the run's results")
    if not {"metrics", "params", "steps_per_s"} <= set(results):
        raise ValueError(f"{out}/results.json lacks the run's results: delete it to run again")
    return results
