"""What every petra model shares: embedding -> backbone -> model-specific head, input checks,
the parameter report and saving."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from petra.embeddings import TokenEmbedding
from petra.models.backbone import build_backbone
from petra.models.config import ModelConfig
from petra.nn import RMSNorm, attention_bias

POOLED_MODELS = ("sentence", "classifier")  # one vector per row, pooled over its tokens


def masked_mean(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Mean over the real tokens only: (B, T, d), (B, T) -> (B, d)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class PetraModel(nn.Module):
    """The base of every petra model: embedding -> backbone (standard or spectral) -> the
    model type's head. Build one with `build_model(config)`; load one with
    `load_pretrained(path)`.

    Args:
        config: the model.
        embedding: its token embedding, `config.vocab_size` x `config.dim`.

    Raises:
        ValueError: if the embedding's size is not the config's.
    """

    causal = False

    def __init__(self, config: ModelConfig, embedding: TokenEmbedding):
        super().__init__()
        if embedding.num_embeddings != config.vocab_size or embedding.embedding_dim != config.dim:
            raise ValueError(
                f"the embedding is {embedding.num_embeddings} x {embedding.embedding_dim} but the "
                f"config asks for vocab_size={config.vocab_size}, dim={config.dim}"
            )
        self.config = config
        self.embedding = embedding
        # (off: no module at all, so a model without them keeps its state dict)
        self.embedding_norm = RMSNorm(config.dim) if config.embedding_norm else None
        self.embedding_dropout = (
            nn.Dropout(config.embedding_dropout) if config.embedding_dropout else None
        )
        self.backbone = build_backbone(config)

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        byte_overrides: Mapping | None = None,
    ) -> Tensor:
        """The final hidden states of the backbone. Like `nn.Embedding`, ids with no
        element (B = 0 or T = 0) give an empty (B, T, d) output, checked as any other; a
        sentence or classifier model, which pools each row's tokens, refuses T = 0.

        Args:
            input_ids: token ids.
            attention_mask: 1 for real tokens, 0 for padding, or None (all real).
            byte_overrides: raw bytes in place of some tokens (an embedding that
                `embeds_bytes` only; see `TokenEmbedding.forward`).

        Returns:
            One d-vector per position.

        Raises:
            ValueError: if `input_ids` is not 2-D, the mask's shape differs, T exceeds
                `max_len`, or a pooled model gets T = 0.

        Shapes:
            - input_ids, attention_mask: `(B, T)`
            - output: `(B, T, d)`
        """
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}"
            )
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, "
                f"input_ids {tuple(input_ids.shape)}: they must match"
            )
        length = input_ids.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.config.max_len}")
        if length == 0 and self.config.model in POOLED_MODELS:
            raise ValueError(
                f"a {self.config.model} model pools each row's tokens into one vector, but the "
                "rows have length 0: give every row at least one token"
            )
        x = self.embed(input_ids, byte_overrides)
        if x.numel() == 0:
            return x  # (B, T, d) with B = 0 or T = 0: nothing for the blocks to compute
        mask = attention_bias(attention_mask, length, self.causal, input_ids.device)
        return self.backbone(x, mask, self.causal)

    def embed(self, input_ids: Tensor, byte_overrides=None) -> Tensor:
        """(B, T) ids -> (B, T, d) input vectors of the first block: the token vectors, then
        the embedding norm and dropout where the config has them; `byte_overrides` need an
        embedding that `embeds_bytes` (the embedding refuses them otherwise)."""
        x = self.embedding(input_ids, byte_overrides=byte_overrides)
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return x if self.embedding_dropout is None else self.embedding_dropout(x)

    def head_parameters(self) -> int:
        return 0

    def param_report(self) -> dict:
        """Trainable parameters by part (embedding + embedding_norm + encoder + head =
        total), and the embedding against a learned V x d table."""
        embedding = self.embedding.param_report()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        encoder = sum(p.numel() for p in self.backbone.parameters() if p.requires_grad)
        norm = self.embedding_norm
        head = self.head_parameters()
        return {
            "embedding": embedding.trainable_params,
            "embedding_norm": 0 if norm is None else sum(p.numel() for p in norm.parameters()),
            "encoder": encoder,
            "encoder_dense_equivalent": self.backbone.dense_equivalent_params(),
            "head": head,
            "total": trainable,
            "embedding_buffer_bytes": embedding.buffer_bytes,
            "embedding_learned_equivalent": embedding.learned_equivalent,
            "embedding_saving_pct": embedding.saving_pct,
            "total_with_learned_embedding": trainable
            - embedding.trainable_params
            + embedding.learned_equivalent,
        }

    def save_pretrained(self, path: str | Path, tokenizer=None) -> Path:
        """Write the model into the folder `path`, atomically (see `load_pretrained`).

        Args:
            path: a new, empty or checkpoint folder; it receives `config.json` and
                `model.safetensors` (weights and embedding buffers).
            tokenizer: also saved, as `tokenizer.json` (`load_tokenizer(path)` reads it).

        Returns:
            The folder's resolved path.

        Raises:
            ValueError: if `path` is a file or holds files that are not a checkpoint's.
            TypeError: if the config holds values JSON cannot save.
        """
        from petra.models.checkpoint import save_checkpoint

        return save_checkpoint(self, path, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
