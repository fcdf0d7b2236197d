"""Sentence-embedding tasks on a `SentenceEncoder`, evaluated on STS-B.

- `nli-sts` (the PETE paper's protocol): contrastive training on NLI entailment pairs,
  InfoNCE with in-batch negatives, both directions averaged,

      L = (CE(A B^T / tau, I) + CE(B A^T / tau, I)) / 2,

  with the model's learnable temperature tau; `hard_negatives=True` appends each premise's
  contradiction hypothesis to the candidates of the premise-to-hypothesis direction.
- `sts`: fine-tuning on STS-B train with CoSENT (Su, 2022),

      L = log(1 + sum_{s_i > s_j} exp(lambda (cos_j - cos_i))),  lambda = 20.

Evaluation: Spearman and Pearson correlation (x100) between the cosine similarity and the
gold score over every pair of an STS-B file (dev by default: all 1,500, in order, float
scores), never a shuffled or truncated subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn

from petra.data import load_nli, load_stsb, load_tokenizer, padding_id
from petra.data.batching import (
    LengthBucketBatchSampler,
    RandomBatchSampler,
    encode_texts,
    pad_sequences,
)
from petra.training.distributed import gather_with_grad


@torch.no_grad()
def embed_ids(
    model: nn.Module, ids: Sequence[list[int]], pad_id: int, batch_size: int = 128
) -> Tensor:
    """Sentence vectors (N, d) of token-id sequences, in the order given; batches are grouped
    by length inside."""
    vectors = [None] * len(ids)
    for batch in LengthBucketBatchSampler([len(x) for x in ids], batch_size, shuffle=False):
        input_ids, mask = pad_sequences([ids[i] for i in batch], pad_id)
        out = model(input_ids.to(model.device), attention_mask=mask.to(model.device)).float().cpu()
        for row, index in enumerate(batch):
            vectors[index] = out[row]
    return torch.stack(vectors)


def sts_correlation(
    model: nn.Module, a_ids, b_ids, scores: Sequence[float], pad_id: int, batch_size: int = 128
) -> dict:
    """Spearman and Pearson (x100) of cos(sentence1, sentence2) against the gold scores, over
    every pair given (already tokenized), in order."""
    a, b = embed_ids(model, a_ids, pad_id, batch_size), embed_ids(model, b_ids, pad_id, batch_size)
    return cosine_correlations(a, b, scores)


def cosine_correlations(a: Tensor, b: Tensor, scores: Sequence[float]) -> dict:
    """Spearman and Pearson (x100) of cos(a_i, b_i) against the gold scores, (N, d) each."""
    cosine = F.cosine_similarity(a.float(), b.float(), dim=-1).cpu().numpy()
    return {
        "spearman": float(100 * stats.spearmanr(cosine, scores).statistic),
        "pearson": float(100 * stats.pearsonr(cosine, scores).statistic),
        "pairs": len(scores),
    }


@dataclass
class SentenceData:
    tokenizer: str = "bert-base-uncased"
    max_length: int = 64
    sts_eval: str = "dev"  # an STS-B split name or the path of an STS-B-format file
    eval_batch_size: int = 128
    data_dir: str | None = None
    # nli-sts: NLI split names or paths (only SNLI dev and test exist offline)
    nli_files: list[str] = field(default_factory=lambda: ["dev", "test"])
    hard_negatives: bool = False
    max_train_pairs: int | None = None
    # sts: the STS-B training file
    sts_train: str = "train"


class _SentenceTask:
    """What the sentence tasks share: tokenizer, STS-B evaluation, pair collation. Each
    task's `training=False` builds the evaluation data only (for `petra eval`)."""

    model_type = "sentence"
    uses_temperature = False

    def __init__(self, data: SentenceData):
        self.data = data
        self.tokenizer = load_tokenizer(data.tokenizer, data.data_dir)
        self.pad_id = padding_id(self.tokenizer)
        pairs = load_stsb(data.sts_eval, data_dir=data.data_dir)  # tokenized once, here
        self.eval_a = self._encode([p.sentence1 for p in pairs])
        self.eval_b = self._encode([p.sentence2 for p in pairs])
        self.eval_scores = [p.score for p in pairs]

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_texts(self.tokenizer, texts, self.data.max_length)

    def collate(self, items: list[tuple]) -> dict[str, Tensor]:
        """Items are (a ids, b ids[, n ids][, float target]): each side padded on its own."""
        sides = sum(isinstance(x, list) for x in items[0])
        batch = {}
        for position, name in zip(range(sides), "abn", strict=False):
            column = [item[position] for item in items]
            batch[f"{name}_ids"], batch[f"{name}_mask"] = pad_sequences(column, self.pad_id)
        if len(items[0]) > sides:
            batch["targets"] = torch.tensor([item[-1] for item in items], dtype=torch.float)
        return batch

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return sts_correlation(
            model,
            self.eval_a,
            self.eval_b,
            self.eval_scores,
            self.pad_id,
            self.data.eval_batch_size,
        )

    def model_fields(self) -> dict:
        return {"model": self.model_type, "vocab_size": self.tokenizer.get_vocab_size()}

    def prepare_model(self, model: nn.Module) -> None:
        """Only the contrastive loss uses the temperature: elsewhere it is frozen, so that no
        parameter goes without a gradient (DistributedDataParallel requires it)."""
        model.log_temperature.requires_grad_(self.uses_temperature)

    def summarize(self, history) -> dict:
        return {"train_pairs": len(self.train_dataset)}


def _embed(model: nn.Module, batch: dict[str, Tensor], side: str) -> Tensor:
    return model(batch[f"{side}_ids"], attention_mask=batch[f"{side}_mask"])


class NLISTSTask(_SentenceTask):
    name = "nli-sts"
    uses_temperature = True

    def __init__(self, data: SentenceData, seed: int = 0, *, training: bool = True):
        super().__init__(data)
        self.train_dataset, self.triples = [], []
        if training:
            self._load_pairs(data, seed)

    def _load_pairs(self, data: SentenceData, seed: int) -> None:
        labels = ("entailment", "contradiction") if data.hard_negatives else ("entailment",)
        records = [r for f in data.nli_files for r in load_nli(f, labels, data_dir=data.data_dir)]
        contradiction = {r.premise: r.hypothesis for r in records if r.label == "contradiction"}
        triples = [
            (r.premise, r.hypothesis, contradiction.get(r.premise))
            for r in records
            if r.label == "entailment" and (not data.hard_negatives or r.premise in contradiction)
        ]
        if data.max_train_pairs is not None:
            keep = torch.randperm(len(triples), generator=torch.Generator().manual_seed(seed))
            triples = [triples[i] for i in sorted(keep[: data.max_train_pairs].tolist())]
        self.triples = triples  # (premise, entailed hypothesis, contradiction or None), as text
        columns = [self._encode([t[0] for t in triples]), self._encode([t[1] for t in triples])]
        if data.hard_negatives:
            columns.append(self._encode([t[2] for t in triples]))
        self.train_dataset = list(zip(*columns, strict=True))

    def batch_sampler(self, batch_size: int, seed: int) -> RandomBatchSampler:
        return RandomBatchSampler(len(self.train_dataset), batch_size, seed=seed)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        # (B, d) unit vectors, gathered over processes: the negatives are the global batch
        a, b = (
            gather_with_grad(_embed(model, batch, "a")),
            gather_with_grad(_embed(model, batch, "b")),
        )
        candidates = (
            torch.cat((b, gather_with_grad(_embed(model, batch, "n")))) if "n_ids" in batch else b
        )
        tau = getattr(model, "module", model).temperature()
        labels = torch.arange(a.shape[0], device=a.device)
        loss = (
            F.cross_entropy(a @ candidates.T / tau, labels) + F.cross_entropy(b @ a.T / tau, labels)
        ) / 2
        tokens = sum(int(batch[k].sum()) for k in batch if k.endswith("_mask"))
        return loss, tokens


def cosent_loss(cosine: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """log(1 + sum over pairs (i, j) with s_i > s_j of exp(scale (cos_j - cos_i)))."""
    difference = scale * (cosine[None, :] - cosine[:, None])  # [i, j] = scale (cos_j - cos_i)
    ordered = scores[:, None] > scores[None, :]
    terms = difference[ordered]
    return torch.logsumexp(torch.cat((terms.new_zeros(1), terms)), dim=0)


class STSTask(_SentenceTask):
    name = "sts"

    def __init__(self, data: SentenceData, seed: int = 0, *, training: bool = True):
        super().__init__(data)
        self.train_dataset = []
        if not training:
            return
        pairs = load_stsb(data.sts_train, data_dir=data.data_dir)
        a, b = (
            self._encode([p.sentence1 for p in pairs]),
            self._encode([p.sentence2 for p in pairs]),
        )
        self.train_dataset = [(x, y, p.score) for x, y, p in zip(a, b, pairs, strict=True)]

    def batch_sampler(self, batch_size: int, seed: int) -> RandomBatchSampler:
        return RandomBatchSampler(len(self.train_dataset), batch_size, seed=seed)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        cosine = (_embed(model, batch, "a") * _embed(model, batch, "b")).sum(-1)
        tokens = int(batch["a_mask"].sum() + batch["b_mask"].sum())
        # every pair of the global batch is ranked against every other
        return cosent_loss(gather_with_grad(cosine), gather_with_grad(batch["targets"])), tokens
