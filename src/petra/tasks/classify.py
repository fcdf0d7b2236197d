"""Text classification: IMDB (2 classes) or AG News (4 classes) with a `SequenceClassifier`.

Accuracy and macro-F1 on the held-out split. AG News' official train split is not shipped
offline: without `train.csv`, training uses the seeded stratified `test-split:train` part of
the official test file and evaluation its disjoint `test-split:heldout` part (the run's
config and results say which).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.data import agnews_splits, load_agnews, load_imdb, load_tokenizer, padding_id
from petra.data.batching import LengthBucketBatchSampler, collate_labeled, encode_texts
from petra.tasks.sentence import check_limits, check_sizes

DATASETS = ("agnews", "imdb")


@dataclass
class ClassifyData:
    dataset: str = "agnews"
    tokenizer: str = "bert-base-uncased"
    max_length: int = 128
    max_train_examples: int | None = None  # a seeded subset, for quick runs
    max_eval_examples: int | None = None
    eval_batch_size: int = 64
    data_dir: str | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset={self.dataset!r}; choose one of {DATASETS}")
        check_limits(self, {"max_train_examples": "train on", "max_eval_examples": "evaluate"})
        check_sizes(self, {"max_length": 1, "eval_batch_size": 1})


def _subset(records: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(records):
        return list(records)
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return [records[i] for i in sorted(order[:limit].tolist())]


def accuracy_and_macro_f1(predictions: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy and the unweighted mean of F1 = 2 TP / (2 TP + FP + FN) over the classes that
    occur in the labels or the predictions (as scikit-learn's macro average), x100."""
    f1s = []
    present = set(labels.tolist()) | set(predictions.tolist())
    for c in sorted(present):
        tp = ((predictions == c) & (labels == c)).sum().item()
        fp = ((predictions == c) & (labels != c)).sum().item()
        fn = ((predictions != c) & (labels == c)).sum().item()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    accuracy = (predictions == labels).float().mean().item()
    return {"accuracy": 100 * accuracy, "macro_f1": 100 * sum(f1s) / len(f1s)}


class ClassifyTask:
    name = "classify"
    model_type = "classifier"

    def __init__(self, data: ClassifyData, seed: int = 0, *, training: bool = True):
        """`training=False` reads the held-out split only (for `petra eval`)."""
        self.data = data
        self.tokenizer = load_tokenizer(data.tokenizer, data.data_dir)
        self.pad_id = padding_id(self.tokenizer)
        if data.dataset == "imdb":
            self.splits, self.num_labels = ("train", "test"), 2

            def load(split: str) -> list:
                return load_imdb(split, data_dir=data.data_dir)
        else:
            self.splits = agnews_splits(data.data_dir)
            self.num_labels = 4

            def load(split: str) -> list:
                return load_agnews(split, seed=seed, data_dir=data.data_dir)

        train = _subset(load(self.splits[0]), data.max_train_examples, seed) if training else []
        held_out = _subset(load(self.splits[1]), data.max_eval_examples, seed + 1)
        self.train_dataset = self._encode(train)
        self.eval_dataset = self._encode(held_out)
        self.collate = collate_labeled(self.pad_id)

    def _encode(self, records) -> list[tuple[list[int], int]]:
        ids = encode_texts(self.tokenizer, [r.text for r in records], self.data.max_length)
        return [(token_ids, r.label) for token_ids, r in zip(ids, records, strict=True)]

    def batch_sampler(self, batch_size: int, seed: int) -> LengthBucketBatchSampler:
        lengths = [len(ids) for ids, _ in self.train_dataset]
        return LengthBucketBatchSampler(lengths, batch_size, seed=seed, drop_last=True)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"]), int(batch["attention_mask"].sum())

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        sampler = LengthBucketBatchSampler(
            [len(ids) for ids, _ in self.eval_dataset], self.data.eval_batch_size, shuffle=False
        )
        predictions, labels = [], []
        device = model.device
        for indices in sampler:
            batch = self.collate([self.eval_dataset[i] for i in indices])
            logits = model(
                batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            )
            predictions.append(logits.argmax(-1).cpu())
            labels.append(batch["labels"])
        return accuracy_and_macro_f1(torch.cat(predictions), torch.cat(labels))

    def model_fields(self) -> dict:
        return {
            "model": self.model_type,
            "vocab_size": self.tokenizer.get_vocab_size(),
            "num_labels": self.num_labels,
        }
