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
