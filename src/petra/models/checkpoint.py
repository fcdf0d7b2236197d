"""Checkpoints: `config.json` + `model.safetensors`, written atomically.

The state holds every persistent tensor of the model, so the Kronecker byte table and
tokenizer fingerprint (and a Fourier id permutation) travel with the weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import petra
from petra.models.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def _atomic_write(path: Path, write) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(model: nn.Module, path: str | Path, tokenizer=None) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {"format": "pt", "petra_version": petra.__version__}
    _atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata=metadata))
    _atomic_write(directory / CONFIG_FILE, lambda tmp: model.config.save(tmp))
    if tokenizer is not None:
        _atomic_write(directory / TOKENIZER_FILE, lambda tmp: tokenizer.save(tmp))
    return directory


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
