"""Checks the probes share: what they refuse before any work, with a message that says why."""

from __future__ import annotations

from petra.models import CausalLM


def require_causal_lm(model, probe: str, compares: str) -> None:
    """`ValueError` unless `model` is a petra causal LM: the `probe` compares `compares` (such
    as its next-token predictions), which no encoder, sentence or classifier model makes."""
    if not isinstance(model, CausalLM):
        config = getattr(model, "config", None)
        model_type = getattr(config, "model", None) or type(model).__name__
        raise ValueError(
            f"the {probe} probe compares {compares} of a causal language model (a causal_lm "
            f"checkpoint); this model is a {model_type} model"
        )


def require_at_least_one(value: int, name: str) -> None:
    """`ValueError` unless the count `value` is at least 1."""
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
