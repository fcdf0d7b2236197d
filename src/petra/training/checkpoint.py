"""Resumable training checkpoints: `checkpoints/step-NNNNNNNN/` holding the model
(`config.json` + `model.safetensors`, readable by `load_pretrained`) and `trainer.pt` (the
optimizer, the schedule, the data position, the RNG states, the elapsed time).

A checkpoint is written to a temporary folder and renamed into place, so an interrupted
write never leaves a half checkpoint; the last `keep` checkpoints are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from petra.models.checkpoint import load_state, read_checkpoint

TRAINER_FILE = "trainer.pt"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob("step-*")
        if p.is_dir() and not p.name.endswith(".tmp") and (p / TRAINER_FILE).is_file()
    )


def save_training_checkpoint(
    run_dir: Path, model, trainer_state: dict, keep: int, tokenizer=None
) -> Path:
    final = run_dir / "checkpoints" / f"step-{trainer_state['step']:08d}"
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary, tokenizer)
    torch.save(trainer_state, temporary / TRAINER_FILE)
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def load_training_checkpoint(path: Path, model, device: torch.device) -> dict:
    """Load the model weights of checkpoint `path` into `model`; return its trainer state."""
    _, state = read_checkpoint(path, device)
    load_state(model, state, str(path))
    return torch.load(path / TRAINER_FILE, map_location=device, weights_only=True)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
