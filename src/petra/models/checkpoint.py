"""Checkpoints: a folder holding `config.json` + `model.safetensors` (+ `tokenizer.json`),
written atomically as a whole.

The state holds every persistent tensor of the model, so the Kronecker byte table and
tokenizer fingerprint (and a Fourier id order) travel with the weights, in the dtype they
had (`load_pretrained` restores it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import petra
from petra.atomic import atomic_folder
from petra.models.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)


def save_checkpoint(model: nn.Module, path: str | Path, tokenizer=None) -> Path:
    """Write the model (and the `tokenizer`, when given) into the folder `path`, atomically
    (`petra.atomic.atomic_folder`): the files go into a temporary sibling folder, which is
    renamed into place only once complete (an existing checkpoint at `path` is replaced then).
    A failure at any point leaves no folder behind and a previous checkpoint at `path` intact.

    `path` must be new, empty or a checkpoint folder: other files there would be lost with
    the folder they are in, so they are refused (`ValueError`)."""
    directory = Path(path).resolve()  # through symbolic links: the real folder is replaced
    if directory.exists():
        if not directory.is_dir():
            raise ValueError(f"{directory} is a file: save the checkpoint into a folder")
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in CHECKPOINT_FILES)
        if foreign:
            raise ValueError(
                f"{directory} holds files that are not part of a checkpoint "
                f"({', '.join(foreign[:5])}); saving replaces the whole folder: save into a "
                "new or empty folder"
            )
    _config_text(model)  # a config JSON cannot hold is refused before any folder is made
    with atomic_folder(directory) as folder:
        write_checkpoint(model, folder, tokenizer)
    return directory


def write_checkpoint(model: nn.Module, folder: Path, tokenizer=None) -> None:
    """The files of a checkpoint, written into `folder` (new or empty) as they are: the
    caller makes the write atomic (`save_checkpoint`, a training checkpoint's folder)."""
    (folder / CONFIG_FILE).write_text(_config_text(model))
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {"format": "pt", "petra_version": petra.__version__}
    save_file(state, folder / WEIGHTS_FILE, metadata=metadata)
    if tokenizer is not None:
        tokenizer.save(str(folder / TOKENIZER_FILE))


def _config_text(model: nn.Module) -> str:
    try:
        return model.config.to_json()
    except TypeError as error:  # json: "Object of type ndarray is not JSON serializable"
        raise TypeError(
            f"the model's config cannot be saved as JSON ({error}): keep only JSON values in "
            "config.embedding; arrays such as token_counts are construction inputs, which "
            "build_model leaves out of the config"
        ) from None


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """(config, state) from a checkpoint directory, with clear errors for what is missing or
    damaged."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    config = ModelConfig.load(directory / CONFIG_FILE)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {directory}")
    try:
        state = load_file(weights, device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights} is truncated or corrupt ({error}); save it again") from None
    return config, state


def load_state(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """`model.load_state_dict(state)`, with mismatches reported as one `ValueError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{name}: checkpoint {tuple(state[name].shape)} vs model {tuple(own[name].shape)}"
        for name in sorted(set(own) & set(state))
        if state[name].shape != own[name].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            *(f"missing {name}" for name in missing[:5]),
            *(f"unexpected {name}" for name in unexpected[:5]),
            *mismatched[:5],
        ]
        raise ValueError(
            f"the weights in {source} do not fit this model's config: " + "; ".join(problems)
        )
    model.load_state_dict(state)
