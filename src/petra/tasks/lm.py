"""Causal language modelling on a corpus, with GPT-2's tokenizer or a BPE trained on the
training documents (`tokenizer="bpe:4096"`).

Documents are split into train and validation by document, each tokenized, followed by an
end-of-text separator and packed into blocks of `block_size` tokens (no padding). Reported:
validation loss (mean next-token cross-entropy, nats) and perplexity, and the first
evaluated step whose validation loss reached `target_loss` (the trainer adds the norms of
the embedding, `embedding/...`, to every evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.data import load_corpus, load_tokenizer, special_token_ids, train_bpe
from petra.data.batching import RandomBatchSampler, pack_blocks
from petra.tasks.sentence import check_limits, check_sizes


@torch.no_grad()
def mean_next_token_loss(logits, blocks: Tensor, batch_size: int) -> float:
    """The mean next-token cross-entropy (nats) over every predicted token of the (N, T)
    `blocks`, read `batch_size` blocks at a time; `logits(ids)` gives the (B, T-1, V) logits
    that predict ids[:, 1:] (a petra model's, or a Hugging Face model's `.logits[:, :-1]`)."""
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        ids = blocks[start : start + batch_size]
        predicted = logits(ids).flatten(0, 1).float()
        target = ids[:, 1:].flatten().to(predicted.device)
        total += F.cross_entropy(predicted, target, reduction="sum").item()
        count += target.numel()
    return total / count


def perplexity(loss: float) -> float:
    """exp(loss), infinite where it overflows a float (a loss above 700 nats)."""
    return math.exp(loss) if loss < 700 else math.inf


@dataclass
class LMData:
    corpus: str = "shakespeare"
    tokenizer: str = "gpt2"  # a name or path, or "bpe:<vocab size>" trained on the train split
    block_size: int = 128
    valid_fraction: float = 0.05
    max_train_blocks: int | None = None
    max_eval_blocks: int | None = 64
    eval_batch_size: int = 16
    target_loss: float | None = None
    data_dir: str | None = None

    def __post_init__(self):
        check_limits(self, {"max_train_blocks": "train on", "max_eval_blocks": "evaluate"})
        check_sizes(self, {"block_size": 2, "eval_batch_size": 1})  # a block predicts >= 1


def steps_to_target(losses: list[tuple[int, float]], target: float) -> int | None:
    """The first step of `(step, loss)` evaluations whose loss is at or below `target`."""
    return next((step for step, loss in losses if loss <= target), None)


class LMTask:
    name = "lm"
    model_type = "causal_lm"

    def __init__(self, data: LMData, seed: int = 0, *, training: bool = True):
        """`training=False` reads the validation documents only (and the training documents
        only to train a `bpe:` tokenizer), for `petra eval`."""
        self.data = data
        split = {"valid_fraction": data.valid_fraction, "seed": seed, "data_dir": data.data_dir}
        bpe = data.tokenizer.startswith("bpe:")
        train_docs = load_corpus(data.corpus, "train", **split) if training or bpe else []
        valid_docs = load_corpus(data.corpus, "validation", **split)
        if bpe:
            self.tokenizer = train_bpe(train_docs, int(data.tokenizer.removeprefix("bpe:")))
        else:
            self.tokenizer = load_tokenizer(data.tokenizer, data.data_dir)
        separator = special_token_ids(self.tokenizer).get("eos")
        if separator is None:
            raise ValueError(
                f"tokenizer {data.tokenizer!r} has no end-of-text token to separate documents"
            )
        self.train_dataset = torch.zeros(0, data.block_size, dtype=torch.long)
        if training:
            self.train_dataset = self._blocks(train_docs, separator, data.max_train_blocks, seed)
        self.eval_blocks = self._blocks(valid_docs, separator, data.max_eval_blocks, seed + 1)

    def _blocks(self, documents: list[str], separator: int, limit: int | None, seed: int) -> Tensor:
        ids = [e.ids for e in self.tokenizer.encode_batch(documents, add_special_tokens=False)]
        blocks = pack_blocks(ids, self.data.block_size, separator)
        if limit is not None and limit < len(blocks):
            keep = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))[
                :limit
            ]
            blocks = blocks[keep.sort().values]
        return blocks

    def batch_sampler(self, batch_size: int, seed: int) -> RandomBatchSampler:
        return RandomBatchSampler(len(self.train_dataset), batch_size, seed=seed)

    def collate(self, blocks: list[Tensor]) -> dict[str, Tensor]:
        return {"input_ids": torch.stack(blocks)}

    @staticmethod
    def next_token_loss(model: nn.Module, ids: Tensor, reduction: str = "mean") -> Tensor:
        logits = model(ids[:, :-1])  # (B, T-1, V)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), ids[:, 1:].flatten(), reduction=reduction
        )

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        ids = batch["input_ids"]
        return self.next_token_loss(model, ids), ids[:, 1:].numel()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = model.device
        logits = lambda ids: model(ids[:, :-1].to(device))  # noqa: E731
        loss = mean_next_token_loss(logits, self.eval_blocks, self.data.eval_batch_size)
        return {"loss": loss, "perplexity": perplexity(loss)}

    def summarize(self, history: list[tuple[int, dict[str, float]]]) -> dict:
        """`steps_to_target`: the first evaluated step with loss <= target_loss (or None)."""
        if self.data.target_loss is None:
            return {}
        losses = [(step, metrics["loss"]) for step, metrics in history]
        return {
            "target_loss": self.data.target_loss,
            "steps_to_target": steps_to_target(losses, self.data.target_loss),
        }

    def model_fields(self) -> dict:
        return {"model": self.model_type, "vocab_size": self.tokenizer.get_vocab_size()}
