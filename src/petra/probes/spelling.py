"""Spelling robustness of a causal LM: how much does a typo in the prompt move the next token?

For each pair of prompts (clean, typo) the probe compares the model's predictions after the
last token:

- `top1_agreement`: whether the most likely next token is the same;
- `kl`: KL(p_clean || p_typo) over the whole vocabulary, in nats;
- `hidden_cosine`: the cosine of the final hidden states at the last position;
- `logprob_drop`: log p_clean(t) - log p_typo(t) for the clean prompt's top-1 token t.

The default pairs are made reproducibly from Wikipedia's list of common misspellings and the
Brown corpus: for each (misspelling, correction) with a single-word alphabetic correction, in
sorted order, the first Brown sentence (in an order shuffled with `seed`) that holds the
correction as a word after at least three others gives the clean prompt, cut right after
the word; the typo prompt swaps in the misspelling. The category is the edit that turns the
correction into the misspelling: transposition, deletion, insertion, substitution or other.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from petra.data import load_corpus, load_misspellings
from petra.probes.checks import require_at_least_one, require_causal_lm

CATEGORIES = ("transposition", "deletion", "insertion", "substitution", "other")


@dataclass(frozen=True)
class PromptPair:
    clean: str
    typo: str
    category: str


def edit_category(correct: str, typo: str) -> str:
    """The single edit that turns `correct` into `typo`, or "other"."""
    if len(typo) == len(correct):
        differ = [i for i, (a, b) in enumerate(zip(correct, typo, strict=True)) if a != b]
        if len(differ) == 1:
            return "substitution"
        if (
            len(differ) == 2
            and differ[1] == differ[0] + 1
            and correct[differ[0]] == typo[differ[1]]
            and correct[differ[1]] == typo[differ[0]]
        ):
            return "transposition"
    elif len(typo) == len(correct) - 1:
        if any(correct[:i] + correct[i + 1 :] == typo for i in range(len(correct))):
            return "deletion"
    elif len(typo) == len(correct) + 1:
        if any(typo[:i] + typo[i + 1 :] == correct for i in range(len(typo))):
            return "insertion"
    return "other"


def default_pairs(limit: int = 200, seed: int = 0, data_dir=None) -> list[PromptPair]:
    """The reproducible default pair set (see the module docstring): at most `limit` pairs."""
    require_at_least_one(limit, "limit")
    sentences = [
        line.split() for doc in load_corpus("brown", data_dir=data_dir) for line in doc.splitlines()
    ]
    random.Random(seed).shuffle(sentences)
    where: dict[str, tuple[int, int]] = {}  # word -> (sentence, position) of its first use
    for number, words in enumerate(sentences):
        for position, word in enumerate(words[3:], start=3):
            where.setdefault(word, (number, position))
    pairs = []
    for typo, correct in sorted(load_misspellings(data_dir=data_dir).items()):
        if not (correct.isalpha() and correct.islower() and typo.isalpha()) or correct not in where:
            continue
        number, position = where[correct]
        prefix = sentences[number][:position]
        pairs.append(
            PromptPair(
                " ".join([*prefix, correct]),
                " ".join([*prefix, typo]),
                edit_category(correct, typo),
            )
        )
        if len(pairs) == limit:
            break
    return pairs


def load_pairs(path: str | Path) -> list[PromptPair]:
    """A JSON list of {"clean": ..., "typo": ..., "category": ...} (category optional,
    "other" by default): at least one pair, each prompt a non-empty string."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path} must hold a JSON list of {{clean, typo, category}} objects")
    if not rows:
        raise ValueError(
            f"{path} holds no pairs: give a JSON list of at least one {{clean, typo, category}} "
            "object"
        )
    return [_prompt_pair(row, f"{path}: pair {number}") for number, row in enumerate(rows)]


def _prompt_pair(row, where: str) -> PromptPair:
    """One {clean, typo, category} object as a `PromptPair`; `ValueError` saying `where` if it
    does not fit."""
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be an object {{clean, typo, category}}, got {row!r}")
    if "clean" not in row or "typo" not in row:
        raise ValueError(f"{where} needs a 'clean' and a 'typo' prompt, got keys {sorted(row)}")
    for key in ("clean", "typo"):
        if not isinstance(row[key], str) or not row[key]:
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row[key]!r}")
    category = row.get("category", "other")
    if not isinstance(category, str):
        raise ValueError(f"{where}: 'category' must be a string, got {category!r}")
    return PromptPair(row["clean"], row["typo"], category)


@torch.no_grad()
def _last_position(model, tokenizer, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([tokenizer.encode(text).ids], device=next(model.parameters()).device)
    if ids.shape[1] == 0:
        raise ValueError("an empty prompt has no next token to compare")
    ids = ids[:, -model.config.max_len :]
    hidden = model.hidden_states(ids)[0, -1]  # (d,)
    logits = model(ids)[0, -1].float()  # (V,)
    return logits.log_softmax(-1), hidden


def probe_spelling(model, tokenizer, pairs: list[PromptPair]) -> dict:
    """Per-pair measurements and their means, overall and per category. `model` is a
    petra causal LM; at least one pair."""
    require_causal_lm(model, "spelling", "next-token predictions")
    if not pairs:
        raise ValueError("no prompt pairs to probe: give at least one")
    model.eval()
    rows = []
    for pair in pairs:
        clean, clean_hidden = _last_position(model, tokenizer, pair.clean)
        typo, typo_hidden = _last_position(model, tokenizer, pair.typo)
        top = int(clean.argmax())
        rows.append(
            {
                "clean": pair.clean,
                "typo": pair.typo,
                "category": pair.category,
                "top1_agreement": float(top == int(typo.argmax())),
                "kl": float((clean.exp() * (clean - typo)).sum().clamp_min(0)),
                "hidden_cosine": float(F.cosine_similarity(clean_hidden, typo_hidden, dim=0)),
                "logprob_drop": float(clean[top] - typo[top]),
            }
        )
    return {"summary": {**_means(rows), "per_category": _per_category(rows)}, "pairs": rows}


def _means(rows: list[dict]) -> dict:
    names = ("top1_agreement", "kl", "hidden_cosine", "logprob_drop")
    return {
        "pairs": len(rows),
        **{
            f"{n}_mean" if n != "top1_agreement" else n: statistics.mean(r[n] for r in rows)
            for n in names
        },
    }


def _per_category(rows: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    return {category: _means(group) for category, group in sorted(groups.items())}


def format_summary(summary: dict) -> str:
    """A Markdown table: overall, then per category."""
    lines = [
        "| category | pairs | top-1 agreement | KL mean | hidden cosine | log-prob drop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in [("all", summary), *summary["per_category"].items()]:
        lines.append(
            f"| {name} | {s['pairs']} | {s['top1_agreement']:.3f} | {s['kl_mean']:.4f} "
            f"| {s['hidden_cosine_mean']:.4f} | {s['logprob_drop_mean']:.4f} |"
        )
    return "\n".join(lines)
