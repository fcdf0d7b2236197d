"""AdamW with weight decay on weight matrices only, and a warmup-then-decay learning rate.

Weight decay goes to what is a matrix of the model (a `weight` of 2+ dimensions outside norm
layers): the weights of linear maps (`nn.Linear`, the spectral `SliceLinear` (p, m_in,
m_out)) and of embedding tables (`nn.Embedding`, the Kronecker projection, the Fourier
refinement). Norm gains (petra's
`RMSNorm` (d,), the spectral `SliceRMSNorm` (p, m), torch's norm layers), biases, scales (the
spectral `scale`) and temperatures (the sentence model's `log_temperature`) are never
decayed, on every backbone.

The learning rate at step t (0-based), with W = int(warmup * steps) warmup steps:

lr(t) = lr * (t + 1) / W                             for t < W   (reaches lr at t = W - 1)
lr(t) = lr * (1 + cos(pi u)) / 2   (cosine),  lr * (1 - u)   (linear)   or  lr   (constant),
        u = (t - W) / max(1, steps - W)              for t >= W  (u is clipped to 1 for cosine
                                                                  and 1 - u to 0 for linear)

`optimizer_step` is the one training step (backward, clipping, update, schedule) that the
trainer and the reproduction's step-time measurements take.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from petra.nn import RMSNorm
from petra.spectral.layers import SliceRMSNorm
from petra.training.config import TrainConfig

NORM_LAYERS = (
    RMSNorm,
    SliceRMSNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.GroupNorm,
    nn.modules.batchnorm._NormBase,  # batch and instance norms
)


def decays(module: nn.Module, name: str, parameter: nn.Parameter) -> bool:
    """Whether `module`'s own parameter `name` is weight-decayed: it is when it is the `weight`
    of a module that is not a normalization layer (a linear map, an embedding table) and a
    matrix (2+ dimensions); never for norm gains, biases, or any other parameter (scales,
    temperatures). The dimension test keeps the 1-D gains of norm classes petra does not know
    (a user's, Hugging Face's `LlamaRMSNorm`) undecayed too."""
    return name == "weight" and parameter.dim() >= 2 and not isinstance(module, NORM_LAYERS)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed weight matrices, everything else at weight decay 0], trainable parameters only,
    each listed once (a tied parameter under its first owner). Decayed: what `decays` picks,
    and what a module names through `decayed_parameters()` (weight matrices under another
    name: the tensor-train embedding's cores)."""
    decay, no_decay, seen = [], [], set()
    declared = {
        id(parameter)
        for module in model.modules()
        if hasattr(module, "decayed_parameters")
        for parameter in module.decayed_parameters()
    }
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.requires_grad and id(parameter) not in seen:
                seen.add(id(parameter))
                decayed = id(parameter) in declared or decays(module, name, parameter)
                (decay if decayed else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, config: TrainConfig, groups: list[dict] | None = None
) -> torch.optim.Optimizer:
    """AdamW at `config.lr` over `groups` (each may set its own `lr` and `weight_decay`), by
    default `parameter_groups(model, config.weight_decay)`."""
    groups = groups if groups is not None else parameter_groups(model, config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at `step` (0-based): lr(step) / lr above."""
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


def optimizer_step(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float,
    check_norm: Callable[[torch.Tensor], None] | None = None,
) -> float:
    """One training step from `loss`, the trainer's (and the step-time measurements'): the
    gradients (`loss.backward()`); when `grad_clip` > 0, their global norm over `model`'s
    parameters, ||g|| = sqrt(sum over parameters of ||g_p||^2), clipped to `grad_clip` (every
    g_p scaled by min(1, grad_clip / (||g|| + 1e-6)), `clip_grad_norm_`) and handed, before
    any weight changes, to `check_norm` (the trainer stops a diverged run there); then the
    optimizer's update, the schedule's step and the gradients cleared. Returns the learning
    rate the update used (the first group's)."""
    loss.backward()
    if grad_clip > 0:
        norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if check_norm is not None:
            check_norm(norm)
    lr = schedule.get_last_lr()[0]
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return lr
