"""Sentence-embedding tasks on a `SentenceEncoder`, evaluated on STS-B.

- `nli-sts` (the PETE paper's protocol): contrastive training on NLI entailment pairs,
  InfoNCE with in-batch negatives, both directions averaged,

      L = (CE(A B^T / tau, I) + CE(B A^T / tau, I)) / 2,

  with the model's learnable temperature tau; `hard_negatives=True` appends each premise's
  contradiction hypothesis to the candidates of the premise-to-hypothesis direction.
- `sts`: fine-tuning on STS-B train with CoSENT (Su, 2022, `sts_loss="cosent"`),

      L = log(1 + sum_{s_i > s_j} exp(lambda (cos_j - cos_i))),  lambda = 20,

  or with the PETE paper's loss (`sts_loss="pearson"`), one minus the Pearson correlation
  of the cosines c and the gold scores s over the batch,

      L = 1 - sum_i (c_i - c̄)(s_i - s̄) / sqrt(sum_i (c_i - c̄)^2 sum_i (s_i - s̄)^2).

Evaluation: Spearman and Pearson correlation (x100) between the cosine similarity and the
gold score over every pair of an STS-B file (dev by default: all 1,500, in order, float
scores), never a shuffled or truncated subset.

Held-out data for choosing settings (`sts_heldout` = f > 0): about a fraction f of STS-B
train is set aside, the same pairs for every run (`split_heldout`), and no sentence of it
occurs in the rest. `sts` never trains on it, and every evaluation of either task also
scores it, logged as `heldout/spearman` and `heldout/pearson`, so that a learning rate or a
number of epochs can be chosen without looking at the reported split.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
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


def spearman_change(
    before: Sequence[float],
    after: Sequence[float],
    scores: Sequence[float],
    level: float = 0.95,
    repeats: int = 10_000,
    seed: int = 0,
) -> dict:
    """How far Spearman (x100) against the gold `scores` moves from the cosines `before` to
    the cosines `after` of the same pairs, rho(after) - rho(before), with its paired
    percentile bootstrap interval: the pairs are drawn with replacement `repeats` times, the
    same draw for both, and the interval runs between the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the change over the draws (Efron & Tibshirani, *An
    Introduction to the Bootstrap*, 1993, ch. 13). It measures the sampling of the test pairs
    only: the same two models on other pairs of the same kind; a model trained again with
    another seed varies besides."""
    data = [np.asarray(values, dtype=np.float64) for values in (before, after, scores)]
    if not data[0].shape == data[1].shape == data[2].shape or data[0].ndim != 1:
        raise ValueError(
            f"before, after and scores must be one value per pair; got shapes "
            f"{[tuple(d.shape) for d in data]}"
        )

    def change(x, y, gold, axis=-1):
        return 100 * (_spearman(y, gold, axis) - _spearman(x, gold, axis))

    interval = stats.bootstrap(
        data, change, paired=True, vectorized=True, n_resamples=repeats, batch=500,
        confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return {
        "change": float(change(*data)),
        "low": float(interval.low),
        "high": float(interval.high),
        "level": level,
        "pairs": len(data[2]),
    }


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho of x and y along `axis`: Pearson's r of their ranks (ties averaged)."""
    ranks = (stats.rankdata(v, axis=axis) for v in (x, y))
    return stats.pearsonr(*ranks, axis=axis).statistic


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
    # sts: the STS-B training file and the loss ("cosent" or "pearson": 1 - Pearson)
    sts_train: str = "train"
    sts_loss: str = "cosent"
    # the fraction of sts_train set aside and scored at every evaluation (0: none)
    sts_heldout: float = 0.0

    def __post_init__(self):
        if self.sts_loss not in STS_LOSSES:
            raise ValueError(f"unknown sts_loss={self.sts_loss!r}; choose one of {STS_LOSSES}")
        if not 0.0 <= self.sts_heldout < 1.0:
            raise ValueError(
                f"sts_heldout is the fraction of sts_train set aside, in [0, 1); got "
                f"{self.sts_heldout}"
            )
        check_limits(self, {"max_train_pairs": "train on"})
        check_sizes(self, {"max_length": 1, "eval_batch_size": 1})


def check_limits(data, purposes: dict[str, str]) -> None:
    """Refuse a count limit of `data` (a field such as `max_train_pairs`) that is not a count
    of at least 1: none means no limit; 0 would leave nothing to do (`purposes[name]` says
    what: "train on", "evaluate"), and a negative count would cut a Python slice to all but
    that many."""
    for name, purpose in purposes.items():
        value = getattr(data, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"data.{name}={value!r}: a limit is a whole count, or none")
        if value is not None and value < 1:
            raise ValueError(
                f"data.{name}={value}: give a count of at least 1, or none for no limit "
                f"(0 would leave nothing to {purpose}; a negative count is not 'all but N')"
            )


def check_sizes(data, least: dict[str, int]) -> None:
    """Refuse a size of `data` (a length, a batch) that is not a whole number of at least
    `least[name]`."""
    for name, minimum in least.items():
        value = getattr(data, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"data.{name}={value!r}: give a whole number of at least {minimum}")


STS_LOSSES = ("cosent", "pearson")
HELDOUT_SEED = 0  # the held-out pairs are the same for every run seed


def split_heldout(pairs: Sequence, fraction: float) -> tuple[list, list]:
    """(kept, held out), both in file order. Pairs that share a sentence (directly or through
    other pairs) form a group, and whole groups are held out, so that no held-out sentence
    is trained on: the groups in an order shuffled by Python's `random.Random(HELDOUT_SEED)`
    (stable across versions and machines), each taken while the held-out pairs stay within
    round(fraction N)."""
    parent: dict[str, str] = {}

    def root(sentence: str) -> str:
        while parent.setdefault(sentence, sentence) != sentence:
            parent[sentence] = parent[parent[sentence]]
            sentence = parent[sentence]
        return sentence

    for pair in pairs:
        a, b = root(pair.sentence1), root(pair.sentence2)
        if a != b:
            parent[a] = b
    groups: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        groups.setdefault(root(pair.sentence1), []).append(index)
    order = list(groups.values())
    random.Random(HELDOUT_SEED).shuffle(order)
    target, held = round(fraction * len(pairs)), set()
    for group in order:
        if len(held) + len(group) <= target:
            held.update(group)
    kept = [p for i, p in enumerate(pairs) if i not in held]
    return kept, [p for i, p in enumerate(pairs) if i in held]


class _SentenceTask:
    """What the sentence tasks share: tokenizer, STS-B evaluation, pair collation. Each
    task's `training=False` builds the evaluation data only (for `petra eval`)."""

    model_type = "sentence"
    uses_temperature = False

    def __init__(self, data: SentenceData):
        self.data = data
        self.tokenizer = load_tokenizer(data.tokenizer, data.data_dir)
        self.pad_id = padding_id(self.tokenizer)
        self.eval_sets = {"": self._encoded_pairs(load_stsb(data.sts_eval, data_dir=data.data_dir))}
        self.sts_train_pairs = []
        if data.sts_heldout:
            train = load_stsb(data.sts_train, data_dir=data.data_dir)
            self.sts_train_pairs, heldout = split_heldout(train, data.sts_heldout)
            if len(heldout) < 2:
                raise ValueError(
                    f"sts_heldout={data.sts_heldout} sets aside {len(heldout)} of the "
                    f"{len(train)} pairs of {data.sts_train}: a correlation needs at least 2"
                )
            self.eval_sets["heldout/"] = self._encoded_pairs(heldout)

    def _encoded_pairs(self, pairs) -> tuple[list, list, list[float]]:
        """(sentence1 ids, sentence2 ids, scores), tokenized once."""
        a = self._encode([p.sentence1 for p in pairs])
        return a, self._encode([p.sentence2 for p in pairs]), [p.score for p in pairs]

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
        """Spearman, Pearson (x100) and pairs on the evaluation file; with `sts_heldout`, the
        same on the held-out pairs under `heldout/`."""
        metrics = {}
        for prefix, (a, b, scores) in self.eval_sets.items():
            found = sts_correlation(model, a, b, scores, self.pad_id, self.data.eval_batch_size)
            metrics |= {prefix + key: value for key, value in found.items()}
        return metrics

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


def pearson_loss(cosine: Tensor, scores: Tensor, eps: float = 1e-8) -> Tensor:
    """1 - Pearson correlation of `cosine` and `scores` over the batch (N,) (the PETE paper's
    fine-tuning loss); `eps` keeps a batch of equal scores finite (its loss is then 1)."""
    c, s = cosine - cosine.mean(), scores.to(cosine.dtype) - scores.to(cosine.dtype).mean()
    return 1 - (c * s).sum() / ((c.square().sum() * s.square().sum()).sqrt() + eps)


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
        pairs = self.sts_train_pairs or load_stsb(data.sts_train, data_dir=data.data_dir)
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
        # every pair of the global batch against every other
        loss = pearson_loss if self.data.sts_loss == "pearson" else cosent_loss
        return loss(gather_with_grad(cosine), gather_with_grad(batch["targets"])), tokens
