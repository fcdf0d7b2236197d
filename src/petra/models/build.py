"""Build a model from a `ModelConfig`, and load one from a checkpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from petra.embeddings import TokenEmbedding, build_embedding, embedding_class
from petra.embeddings.token_bytes import other_fingerprint, tokenizer_fingerprint
from petra.models.base import PetraModel
from petra.models.causal_lm import CausalLM
from petra.models.checkpoint import load_state, read_checkpoint
from petra.models.config import ModelConfig
from petra.models.encoder import Encoder, SentenceEncoder, SequenceClassifier

MODEL_CLASSES: dict[str, type[PetraModel]] = {
    "encoder": Encoder,
    "sentence": SentenceEncoder,
    "classifier": SequenceClassifier,
    "causal_lm": CausalLM,
}


def build_model(
    config: ModelConfig, *, tokenizer=None, token_bytes: Sequence[bytes] | None = None
) -> PetraModel:
    """A freshly initialized model.

    The model's config records the embedding options minus the kind's construction inputs
    (`construction_inputs`, V-sized arrays such as Fourier's `token_counts` and `id_rank`: the
    id order they give is saved with the weights as `embedding.id_rank`), so that it stays
    small and JSON-serializable.

    Args:
        config: the model to build.
        tokenizer: a `tokenizers.Tokenizer`; required by the Kronecker embedding (or its
            `token_bytes`). When given, its fingerprint is recorded in the config so that
            checkpoints can be matched to their tokenizer.
        token_bytes: one byte string per id, for a Kronecker embedding without a tokenizer.

    Returns:
        The model: `MODEL_CLASSES[config.model]` (an `Encoder`, `SentenceEncoder`,
        `SequenceClassifier` or `CausalLM`).

    Raises:
        ValueError: for an invalid config, or a tokenizer whose size is not `vocab_size`.
    """
    config.validate()
    options, kind = config.embedding_options, config.embedding_kind
    kind_class = embedding_class(kind)
    recorded = {
        k: v for k, v in config.embedding.items() if k not in kind_class.construction_inputs
    }
    config = config.replace(embedding=recorded)
    if tokenizer is not None:
        kind_class.check_vocab_size(tokenizer.get_vocab_size(with_added_tokens=True),
                                    config.vocab_size)  # fmt: skip
        config = config.replace(tokenizer_fingerprint=tokenizer_fingerprint(tokenizer))
    inputs = kind_class.token_inputs(tokenizer, token_bytes)
    embedding = build_embedding(kind, config.vocab_size, config.dim, **options, **inputs)
    return MODEL_CLASSES[config.model](config, embedding)


def load_pretrained(
    path: str | Path, *, tokenizer=None, device: str | torch.device = "cpu"
) -> PetraModel:
    """Rebuild the model saved by `save_pretrained(path)`, with identical outputs and the
    saved floating dtype (a bfloat16 model comes back in bfloat16; integer buffers such as
    the Kronecker byte table keep their own).

    Args:
        path: the folder `PetraModel.save_pretrained` wrote (config.json and the weights).
        tokenizer: if given, checked against the fingerprint the model was trained with.
        device: where to put the model.

    Returns:
        The model, of the class its config names.

    Raises:
        FileNotFoundError: if the folder holds no checkpoint.
        ValueError: if the tokenizer is not the one the model was trained with, or the saved
            state does not fit its config.
    """
    config, state = read_checkpoint(path, device)
    fingerprint = other_fingerprint(tokenizer, config.tokenizer_fingerprint)
    if fingerprint is not None:
        raise ValueError(
            f"the checkpoint at {path} was trained with another tokenizer (fingerprint "
            f"{config.tokenizer_fingerprint[:12]}, given {fingerprint[:12]})"
        )
    embedding = _embedding_from_state(config, state)
    model = MODEL_CLASSES[config.model](config, embedding)
    dtype = _saved_dtype(model, state)
    if dtype is not None:
        model.to(dtype)  # floating parameters and buffers only
    load_state(model, state, str(path))
    return model.to(device)


def _saved_dtype(model: PetraModel, state: dict) -> torch.dtype | None:
    """The floating dtype in which most of the model's saved parameters (by count of
    values) are stored: the dtype of all of them when the model was saved in one."""
    sizes: Counter[torch.dtype] = Counter()
    for name, _ in model.named_parameters():
        if name in state and state[name].is_floating_point():
            sizes[state[name].dtype] += state[name].numel()
    return max(sizes, key=sizes.get) if sizes else None


def _embedding_from_state(config: ModelConfig, state: dict) -> TokenEmbedding:
    """The embedding the saved state loads into (`TokenEmbedding.from_saved`)."""
    kind_class = embedding_class(config.embedding_kind)
    return kind_class.from_saved(
        config.vocab_size, config.dim, state, "embedding.", **config.embedding_options
    )
