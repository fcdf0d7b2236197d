"""The training engine: config, optimizer and schedule, resumable checkpoints, the loop,
multi-process helpers."""

from petra.training.config import TrainConfig
from petra.training.trainer import Task, Trainer, TrainingDiverged, read_metrics

__all__ = ["Task", "TrainConfig", "Trainer", "TrainingDiverged", "read_metrics"]
