"""Why a recovery loses ground first: the first steps of recovering a Kronecker-swapped
all-MiniLM-L6-v2, one loss term at a time.

    python scripts/compress_first_steps.py [--steps 30] [--lr 1e-5] [--pairs 400]

From the least-squares Kronecker start (`petra compress`'s swap), the new embedding alone
trains for `--steps` AdamW steps on each loss of `TERMS` (the losses of `petra compress
--distil` and their parts; plain AdamW at a constant lr `--lr`, no warmup, decay or gradient
clipping, batches of 32 drawn with replacement from the first `TRAIN_SENTENCES` distillation
sentences, seed 0); then each student's STS-B **train** Spearman (x100, first `--pairs`
pairs: the reported split, dev, is never read) and each loss term measured on those pairs'
own sentences (against the teacher, in chunks of 100). Written to `--out` (default
`benchmarks/results/compress-minilm/pilot/first-steps.json`).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from petra.atomic import atomic_write_json
from petra.compress import (
    CompressSettings,
    all_layers,
    pairwise_cosine_error,
    relative_state_error,
    stsb_spearman,
    swap_start,
)
from petra.data import load_stsb
from petra.hf.swap import hf_model, unwrap_embedding

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "compress-minilm" / "pilot" / "first-steps.json"
TRAIN_SENTENCES = 2500  # the batches' sentences, of the 3,000 the job holds


def terms(student, teacher, texts: list[str]) -> dict:
    """Each loss term of the student on `texts`, means over chunks of 100 sentences."""
    student.eval()
    sums = dict.fromkeys(("cosine", "pairwise", "hidden", "layer0", "last"), 0.0)
    chunks = [texts[i : i + 100] for i in range(0, len(texts), 100)]
    with torch.no_grad():
        for chunk in chunks:
            features = student.preprocess(chunk)
            mask = features["attention_mask"]
            with all_layers(teacher):
                taught = teacher(dict(features))
            with all_layers(student):
                output = student(dict(features))
            s, t = output["sentence_embedding"], taught["sentence_embedding"]
            hs, ht = output["all_layer_embeddings"], taught["all_layer_embeddings"]
            sums["cosine"] += float((1 - F.cosine_similarity(s, t, dim=-1)).mean())
            sums["pairwise"] += float(pairwise_cosine_error(s, t))
            sums["hidden"] += float(relative_state_error(hs, ht, mask))
            sums["layer0"] += float(relative_state_error(hs[:1], ht[:1], mask))
            sums["last"] += float(relative_state_error(hs[-1:], ht[-1:], mask))
    return {name: total / len(chunks) for name, total in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings = CompressSettings(model="all-minilm-l6-v2", kind="kronecker", max_sentences=3000)
    swapped = swap_start(settings)
    teacher, job, start = swapped.teacher, swapped.job, swapped.student
    texts = [s for p in load_stsb("train")[: args.pairs] for s in (p.sentence1, p.sentence2)]

    def measured(student) -> dict:
        student.eval()
        return {"stsb_train_spearman": stsb_spearman(student, args.pairs, "train"),
                "on_the_stsb_sentences": terms(student, teacher, texts)}  # fmt: skip

    def loss(student, which: str, indices: torch.Tensor) -> torch.Tensor:
        features = student.preprocess([job.examples[i] for i in indices.tolist()])
        mask = features["attention_mask"]
        with torch.no_grad(), all_layers(teacher):
            taught = teacher(dict(features))["all_layer_embeddings"]
        with all_layers(student):
            output = student(features)
        vectors, targets = output["sentence_embedding"], job.targets[indices]
        states = output["all_layer_embeddings"]
        return {
            "pairs (petra compress --distil pairs)": lambda: (
                (1 - F.cosine_similarity(vectors, targets, dim=-1)).mean()
                + pairwise_cosine_error(vectors, targets)
                + relative_state_error(states, taught, mask)
            ),
            "hidden (--distil hidden)": lambda: (
                (1 - F.cosine_similarity(vectors, targets, dim=-1)).mean()
                + relative_state_error(states, taught, mask)
            ),
            "per-vector cosine alone (--distil output)": lambda: (
                1 - F.cosine_similarity(vectors, targets, dim=-1)
            ).mean(),
            "every layer's states alone": lambda: relative_state_error(states, taught, mask),
            "the embedding output's states alone": lambda: relative_state_error(
                states[:1], taught[:1], mask
            ),
            "pairwise cosines alone (--distil cosines)": lambda: pairwise_cosine_error(
                vectors, targets
            ),
        }[which]()

    settings = {"steps": args.steps, "lr": args.lr, "pairs": args.pairs}
    result = {"settings": settings, "start": measured(start), "after": {}}
    print(json.dumps({"start": result["start"]}), flush=True)
    for which in TERMS:
        student = copy.deepcopy(start).requires_grad_(False)
        embedding = list(unwrap_embedding(hf_model(student).get_input_embeddings()).parameters())
        for parameter in embedding:
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(embedding, lr=args.lr, weight_decay=0.0)
        draw = torch.Generator().manual_seed(0)
        student.train()
        for _ in range(args.steps):
            indices = torch.randint(0, TRAIN_SENTENCES, (32,), generator=draw)
            optimizer.zero_grad()
            loss(student, which, indices).backward()
            optimizer.step()
        result["after"][which] = measured(student)
        print(json.dumps({which: result["after"][which]}), flush=True)
    atomic_write_json(args.out, result)
    return 0


TERMS = (
    "pairs (petra compress --distil pairs)",
    "hidden (--distil hidden)",
    "per-vector cosine alone (--distil output)",
    "every layer's states alone",
    "the embedding output's states alone",
    "pairwise cosines alone (--distil cosines)",
)

if __name__ == "__main__":
    raise SystemExit(main())
