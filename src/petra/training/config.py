"""`TrainConfig`: the optimization and bookkeeping of a run, as a JSON-round-tripping
dataclass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SCHEDULES = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """The optimization and bookkeeping of a run (the `train` section of a preset).

    Attributes:
        steps: optimizer steps.
        batch_size: the global batch (split among processes under torchrun).
        lr: AdamW's peak learning rate.
        weight_decay: applied to matrices only.
        warmup: the linear warmup, as a fraction of the steps.
        schedule: after warmup, `cosine` or `linear` down to 0, or `constant`.
        grad_clip: the largest global gradient norm; 0 turns clipping off.
        seed: seeds the batch order and the training RNG (and, in `petra train`, the
            model's initialization).
        eval_every: steps between evaluations.
        eval_at_start: also evaluate at step 0, before training (e.g. for norm drift).
        log_every: steps between logged training metrics.
        checkpoint_every: steps between resumable checkpoints.
        keep_checkpoints: the most recent checkpoints kept.
        device: `cpu`, `cuda` or `auto`.
        init: start from the model saved there (a run's `model/`, a checkpoint), or None.

    Raises:
        ValueError: on construction, for an unknown schedule or device, a count that is
            not positive, a negative or non-finite rate, or a warmup outside [0, 1).
    """

    steps: int = 1000
    batch_size: int = 32  # global: split among processes under torchrun
    lr: float = 1e-3
    weight_decay: float = 0.01  # matrices only
    warmup: float = 0.05  # fraction of the steps
    schedule: str = "cosine"  # after warmup, down to 0
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    seed: int = 0
    eval_every: int = 200
    eval_at_start: bool = True  # also evaluate at step 0 (before training), e.g. for norm drift
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    device: str = "auto"  # "cpu", "cuda" or "auto"
    init: str | None = None  # start from the model saved there (a run's model/, a checkpoint)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule={self.schedule!r}; choose one of {SCHEDULES}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device={self.device!r}; choose one of {DEVICES}")
        for name in ("steps", "batch_size", "eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "grad_clip"):
            if not 0 <= getattr(self, name) < math.inf:  # nan fails too
                raise ValueError(
                    f"{name} must be a finite number, not negative, got {getattr(self, name)}"
                )
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be at least 1, got {self.keep_checkpoints}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
