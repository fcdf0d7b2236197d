"""Resumable training checkpoints: `checkpoints/step-NNNNNNNN/` holding the model (a petra
model's `config.json` + `model.safetensors`, readable by `load_pretrained`; another model's
folder as its `ModelFiles` writes it) and `trainer.pt` (the optimizer, the schedule, the data
position, the RNG states, the elapsed time).

A checkpoint is written with `petra.atomic.atomic_folder` (into a temporary folder, fsynced,
renamed into place), so an interrupted write never leaves a half checkpoint, and the next
write of that step removes what it left; the last `keep` checkpoints are kept. A checkpoint
damaged later (a truncated or corrupt file) raises `DamagedCheckpoint` when read, and can be
set aside as `step-NNNNNNNN.damaged` (never deleted) so that the previous one is resumed.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from petra.atomic import atomic_folder
from petra.checks import first_line
from petra.models.checkpoint import WEIGHTS_FILE, write_checkpoint

TRAINER_FILE = "trainer.pt"


class ModelFiles(Protocol):
    """How the trainer writes a model into a folder, reads its weights back and counts it:
    its one hook for what kind of model it trains (the trainer loads what `read` gives with
    `load_state`, so every key of the model's `state_dict()` must be in it).
    `PetraModelFiles` serves petra's models, `petra.hf.HFModelFiles` a transformers or
    sentence-transformers model with a petra embedding."""

    def write(self, model: nn.Module, folder: Path, tokenizer=None) -> None:
        """Write the model (and the tokenizer) into `folder`, new and empty; the trainer
        makes the write atomic."""

    def read(self, folder: Path) -> dict[str, Tensor]:
        """The model's whole `state_dict()` as written into `folder`, on the CPU, without
        moving the global RNG; an `OSError`, `ValueError`, `KeyError`, `RuntimeError` or
        `SafetensorError` when a file is missing or damaged."""

    def report(self, model: nn.Module) -> dict:
        """The model's parameter counts, for `results.json`."""


class PetraModelFiles:
    """A petra model (`petra.models`): its checkpoint files (`write_checkpoint`), its
    `param_report()`."""

    def write(self, model: nn.Module, folder: Path, tokenizer=None) -> None:
        write_checkpoint(model, folder, tokenizer)

    def read(self, folder: Path) -> dict[str, Tensor]:
        return load_file(folder / WEIGHTS_FILE, device="cpu")

    def report(self, model: nn.Module) -> dict:
        return model.param_report()


class DamagedCheckpoint(ValueError):
    """A file of a training checkpoint is missing, truncated or corrupt."""


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first (not the hidden temporary folders of a write, nor
    those set aside as `.damaged`)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob("step-*")
        if p.is_dir() and p.name.removeprefix("step-").isdigit() and (p / TRAINER_FILE).is_file()
    )


def save_training_checkpoint(
    run_dir: Path, model, files: ModelFiles, trainer_state: dict, keep: int, tokenizer=None
) -> Path:
    final = run_dir / "checkpoints" / f"step-{trainer_state['step']:08d}"
    with atomic_folder(final) as folder:
        files.write(model, folder, tokenizer)
        torch.save(trainer_state, folder / TRAINER_FILE)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def read_training_checkpoint(path: Path, files: ModelFiles) -> tuple[dict, dict]:
    """(model state, trainer state) of checkpoint `path` (the model's as `files` reads it),
    read onto the CPU (loading them
    into the model and optimizer moves them to its device), so that a failure of the device
    (out of memory) is never taken for damage; `DamagedCheckpoint` if either file is missing
    or does not read. A file that cannot be opened for lack of permission is not damage."""
    try:
        model_state = files.read(path)
        trainer_state = torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=True)
    except PermissionError:
        raise
    except (
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
        KeyError,
        SafetensorError,
        pickle.UnpicklingError,
    ) as error:
        reason = first_line(error, 120)
        raise DamagedCheckpoint(f"{path} is truncated or corrupt ({reason})") from error
    return model_state, trainer_state


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to `<name>.damaged` (`.damaged-2`, ... if taken)."""
    target, n = path.with_name(path.name + ".damaged"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{n}")
    path.rename(target)
    return target


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
