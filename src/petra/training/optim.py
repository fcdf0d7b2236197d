"""AdamW with weight decay on matrices only, and a warmup-then-decay learning-rate schedule.

lr(t) = lr * t / W                                   for t < W = warmup * steps
lr(t) = lr * (1 + cos(pi u)) / 2   (cosine)   or  lr * (1 - u)   (linear),
        u = (t - W) / (steps - W)                    afterwards
"""

from __future__ import annotations

import math

import torch
from torch import nn

from petra.training.config import TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay every trainable tensor of two or more dimensions (weight matrices, tables);
    leave norms, biases, scales, temperatures and other 1-D or scalar parameters alone."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at `step` (0-based)."""
    warmup = int(config.warmup * config.steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, config.steps - warmup)
    if config.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
