"""`ModelConfig`: everything needed to rebuild a model, as a JSON-round-tripping dataclass."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from petra.embeddings.registry import embedding_class
from petra.spectral import FREQ_SCALINGS, TRANSFORMS, WEIGHT_DOMAINS

MODEL_TYPES = ("encoder", "sentence", "classifier", "causal_lm")
BACKBONES = ("standard", "spectral")
POOLINGS = ("mean", "first")


DEFAULT_EMBEDDING = {"kind": "learned"}  # a model's embedding when its settings name none


@dataclass
class ModelConfig:
    """A petra model. `embedding` is `{"kind": ..., **options of that kind}`.

    `backbone="spectral"` makes the encoder an L-Transformer with `slices` = p slices of
    width dim / p, each with `n_heads` heads; `transform` (dct, identity, random, cosine),
    `freq_scaling` (none, learned, decay with s_k = (k + 1)^-freq_decay) and
    `spectral_weights` (stored in the "transform" or the "spatial" domain) configure it.

    `embedding_norm` puts an RMSNorm on the token vectors before the first block, and
    `embedding_dropout` drops their features, in that order (the PETE official code's learned
    arm: dropout(RMSNorm(E[id]))); `dropout` acts inside the blocks. All off by default.

    `tie_embeddings` (causal LM): True computes logits from the embedding's `table()`, False
    gives the model its own `Linear(d, V)` head, None takes the embedding kind's default (each
    paper's setup: the learned table tied, Kronecker and Fourier untied; the class's
    `head_tied_by_default`).
    A `CausalLM` records the resolved choice in its own config (hence in config.json).

    Attributes:
        model: `encoder`, `sentence` (pooled sentence vectors), `classifier` or `causal_lm`.
        vocab_size: V, the number of token ids.
        dim: d, the model width.
        n_layers: transformer blocks.
        n_heads: attention heads (per slice with the spectral backbone).
        ffn_mult: the feed-forward hidden width as a multiple of d.
        max_len: the longest sequence.
        embedding: `{"kind": ..., **options}`, passed to `build_embedding`.
        backbone: `standard` or `spectral` (the L-Transformer).
        num_labels: classes of a `classifier`.
        tie_embeddings: a causal LM's head: tied (True), its own (False), the kind's default
            (None).
        dropout: inside the blocks.
        embedding_norm: an RMSNorm on the token vectors before the first block.
        embedding_dropout: dropout on the token vectors, after `embedding_norm`.
        pooling: `mean` or `first`, for `sentence` and `classifier`.
        rope_base: the rotary embeddings' base.
        slices: p, the spectral backbone's slices of width d / p.
        transform: the transform along the slices: `dct`, `identity`, `random`, `cosine`.
        transform_seed: seeds the `random` transform.
        freq_scaling: `none`, `learned` or `decay` (s_k = (k + 1)^-freq_decay).
        freq_decay: the exponent of `decay`.
        spectral_weights: the spectral weights' domain, `transform` or `spatial`.
        tokenizer_fingerprint: sha256 of the tokenizer's vocabulary (set by `build_model`).

    Raises:
        ValueError: on construction, for an unknown choice, a size that is not positive, a
            width that does not split into slices and heads of even width, a dropout outside
            [0, 1), or an `embedding` without a "kind".
    """

    model: str = "encoder"
    vocab_size: int = 30522
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: float = 4.0
    max_len: int = 512
    embedding: dict = field(default_factory=lambda: dict(DEFAULT_EMBEDDING))
    backbone: str = "standard"
    num_labels: int = 2
    tie_embeddings: bool | None = None  # None: the kind's default, see `head_tied`
    dropout: float = 0.0
    embedding_norm: bool = False
    embedding_dropout: float = 0.0
    pooling: str = "mean"
    rope_base: float = 10000.0
    slices: int = 1
    transform: str = "dct"
    transform_seed: int = 0
    freq_scaling: str = "none"
    freq_decay: float = 1.0
    spectral_weights: str = "transform"
    tokenizer_fingerprint: str | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        choices = {
            "model": MODEL_TYPES,
            "backbone": BACKBONES,
            "pooling": POOLINGS,
            "transform": TRANSFORMS,
            "freq_scaling": FREQ_SCALINGS,
            "spectral_weights": WEIGHT_DOMAINS,
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name}={getattr(self, name)!r}; choose one of {valid}")
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "max_len", "num_labels", "slices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        slices = self.slices if self.backbone == "spectral" else 1
        if self.dim % slices:
            raise ValueError(f"dim {self.dim} is not divisible by slices={slices}")
        width = self.dim // slices
        if width % self.n_heads or (width // self.n_heads) % 2:
            where = f"each slice's {width} features" if slices > 1 else f"dim {self.dim}"
            raise ValueError(
                f"{where} must split into n_heads={self.n_heads} heads of even width "
                "(rotary embeddings rotate channel pairs)"
            )
        for name in ("dropout", "embedding_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not isinstance(self.embedding, dict) or "kind" not in self.embedding:
            raise ValueError(f'embedding must be a dict with a "kind", got {self.embedding!r}')
        if self.tie_embeddings not in (None, True, False):
            raise ValueError(
                f"tie_embeddings must be true, false or null, got {self.tie_embeddings!r}"
            )

    @property
    def head_tied(self) -> bool:
        """Whether a causal LM's output head is tied to the embedding (None resolved)."""
        if self.tie_embeddings is not None:
            return self.tie_embeddings
        # each kind's class says why it is tied or not
        return embedding_class(self.embedding["kind"]).head_tied_by_default

    @property
    def ffn_hidden(self) -> int:
        return max(1, round(self.ffn_mult * self.dim))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys are {sorted(known)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no model config at {path}")
        try:
            return cls.from_json(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @property
    def embedding_kind(self) -> str:
        """The embedding's kind (`embedding["kind"]`)."""
        return self.embedding["kind"]

    @property
    def embedding_options(self) -> dict:
        """The embedding's options: its settings without the kind."""
        return {k: v for k, v in self.embedding.items() if k != "kind"}
