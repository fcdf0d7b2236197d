"""Spelling robustness of a causal LM: how much does a typo in the prompt move the next token?

For each pair of prompts (clean, typo) the probe compares the model's predictions after the
last token (as the Kronecker paper's Section 6.11 and its reference probe
`probes/robustness_probe.py` define them; p = softmax of the clean prompt's logits, q of
the typo prompt's, t = argmax p):

- `top1_agreement`: 1 if argmax q = t, else 0 (the reference's `top1_matches`);
- `kl`: KL(p || q) = sum_v p_v (log p_v - log q_v) over the whole vocabulary, in nats;
- `hidden_cosine`: the cosine of the final hidden states at the last position;
- `logprob_drop`: log p_t - log q_t.

Top-1 agreement is also high for a model that predicts few distinct tokens whatever the
prompt (a small model often predicts a function word after every prompt, and a typo can push
it to its default token). The summary corrects for that in the manner of Cohen's kappa,
with a leave-one-out chance (petra's own control; the reference probe has none). Cohen's
chance, from the marginals, is S / n^2 with S = sum_{i, j} [t_i = u_j], each pair's own match
included; petra's leaves it out, (S - kept) / (n (n - 1)), so that a model that keeps every
answer does not raise its own chance:

- `top1_chance`: the agreement of a clean prompt's top-1 with the typo prediction of a
  *different* pair, sum_{i != j} [t_i = u_j] / (n (n - 1)) over the n pairs (t_i the clean,
  u_i the typo prompt's top-1): 1 for a model with one prediction everywhere, 0 when no
  prompt's clean top-1 is another's typo top-1;
- `top1_kappa`: (agreement - chance) / (1 - chance), 0 for agreement at chance, 1 for every
  top-1 kept where chance is below 1. Where chance is 1 kappa is undefined and given as 0
  (for 3 or more pairs that is one token predicted everywhere; for 2, each typo took the
  other's clean answer).

Prompts that share an answer (two sums with the same result) count towards chance too, so
chance can be above what degeneracy alone gives, and kappa below.

The result has the four per pair and their means overall and per category;
`compare_categories` counts the categories in which one model's means beat, tie or trail
another's, as the paper counts them.

Two pair sets (`pair_set`):

- `paper` (the default): the paper's 110 pairs, 10 in each of 11 categories (geography,
  math, time, colors, idiom, body, animals, counting, syntax, misc, people), a 1-2 character
  typo in one content word, inside the prompt (in its last word in only 4), read from
  `kronecker-probes/spelling_pairs.json` in the data folder (`paper_pairs`). One of them
  ("The sun rises in the") has the same text on both sides, as published; it is kept, and
  counts as full agreement for every model.
- `brown`: pairs made reproducibly from Wikipedia's list of common misspellings and the
  Brown corpus (`brown_pairs`): for each (misspelling, correction) with a single-word
  alphabetic correction, in sorted order, the first Brown sentence (in an order shuffled
  with `seed`) that holds the correction as a word after at least three others gives the
  clean prompt, cut right after the word; the typo prompt swaps in the misspelling, so the
  typo is always the prompt's last word. The category is the edit that turns the correction
  into the misspelling: transposition, deletion, insertion, substitution or other.
- `brown-inside`: the same construction with the typo inside the prompt, as in the paper's
  pairs (97 of whose 110 place it one to three words before the end): the sentence must go
  on for at least four items (words or punctuation) after the correction, and the prompt is
  cut one, two or three items after it, in turn over the pairs (`INSIDE_WORDS_AFTER`), so
  both prompts end on the same token and the prompt never ends its sentence. Its sentences
  must have room after the word, so most of its pairs (154 of the default 200) are the
  typo-last set's prompts cut later and the rest the same misspellings in other sentences.
  It counts items (words and punctuation), the paper's pairs words.

`last_token_cosine` (a diagnostic, not compared): the cosine of the clean prompt's final
hidden state (after the final norm) with the vector the model reads for its last token (its
token vector, after the embedding norm where the model has one): how far the last state
points along the token being read. With a tied head it is also the normalised logit of
repeating that token.

Where petra departs from the reference probe: KL is clamped at 0 (rounding can make it
-1e-9); a prompt longer than the model's block keeps its last `max_len` tokens (none of
the paper's is that long); the summary has means only (the reference also gives the median
KL and the typo prompts' token inflation).
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from petra.data import load_corpus, load_misspellings
from petra.probes.checks import require_at_least_one, require_causal_lm

CATEGORIES = ("transposition", "deletion", "insertion", "substitution", "other")
BROWN_PAIRS = 200  # a Brown-made set's default size
INSIDE_WORDS_AFTER = (1, 2, 3)  # brown-inside: the items kept after the typo, in turn
PAPER_PAIRS_FILE = Path("kronecker-probes") / "spelling_pairs.json"


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt and the same prompt with a typo, and the typo's category."""

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


def brown_pairs(
    limit: int = BROWN_PAIRS, seed: int = 0, data_dir=None, words_after: tuple[int, ...] = (0,)
) -> list[PromptPair]:
    """The pairs made from Wikipedia's misspellings and Brown sentences (see the module
    docstring): at most `limit` pairs, the k-th prompt ending `words_after[k % len]` items
    after the typo ((0,): the typo is the last word, the `brown` set; `INSIDE_WORDS_AFTER`:
    `brown-inside`)."""
    require_at_least_one(limit, "limit")
    if not words_after or min(words_after) < 0:
        raise ValueError(f"words_after must be counts of at least 0, got {words_after}")
    most = max(words_after)
    sentences = [
        line.split() for doc in load_corpus("brown", data_dir=data_dir) for line in doc.splitlines()
    ]
    random.Random(seed).shuffle(sentences)
    where: dict[str, tuple[int, int]] = {}  # word -> (sentence, position) of its first use
    for number, words in enumerate(sentences):
        # at least three words before; with words after, at least one more beyond the cut
        last = len(words) - (most + 1 if most else 0)
        for position in range(3, last):
            where.setdefault(words[position], (number, position))
    pairs = []
    for typo, correct in sorted(load_misspellings(data_dir=data_dir).items()):
        if not (correct.isalpha() and correct.islower() and typo.isalpha()) or correct not in where:
            continue
        number, position = where[correct]
        prefix = sentences[number][:position]
        after = words_after[len(pairs) % len(words_after)]
        suffix = sentences[number][position + 1 : position + 1 + after]
        pairs.append(
            PromptPair(
                " ".join([*prefix, correct, *suffix]),
                " ".join([*prefix, typo, *suffix]),
                edit_category(correct, typo),
            )
        )
        if len(pairs) == limit:
            break
    return pairs


def paper_pairs(data_dir=None) -> list[PromptPair]:
    """The Kronecker paper's 110 pairs in their published order, from
    `kronecker-probes/spelling_pairs.json` in the data folder (`resolve_data_dir`): a JSON
    list of {"category", "clean", "typo"}, every key required."""
    from petra.data.paths import DATA_GUIDE, POINT_AT_DATA, resolve_data_dir

    path = resolve_data_dir(data_dir) / PAPER_PAIRS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no Kronecker spelling pairs at {path}: the paper's pairs are read from "
            f"{PAPER_PAIRS_FILE} in the data folder (see {DATA_GUIDE}): point petra at a folder "
            f"that has it ({POINT_AT_DATA}), or use --pairs brown"
        )
    return load_pairs(path, category_required=True)


BROWN_SETS = {"brown": (0,), "brown-inside": INSIDE_WORDS_AFTER}  # name -> items after the typo


def pair_set(name_or_path: str | Path, limit: int | None = None, data_dir=None) -> list[PromptPair]:
    """The pairs of `name_or_path`: "paper" (the paper's 110, the first `limit` in their
    published order), "brown" or "brown-inside" (`brown_pairs(limit)`, 200 by default, the
    typo last or inside) or a JSON file (`load_pairs`, its first `limit`); a file named like
    a set is given as ./paper."""
    if limit is not None:
        require_at_least_one(limit, "limit")
    if name_or_path == "paper":
        return paper_pairs(data_dir)[:limit]
    if name_or_path in BROWN_SETS:
        return brown_pairs(
            BROWN_PAIRS if limit is None else limit,
            data_dir=data_dir,
            words_after=BROWN_SETS[name_or_path],
        )
    return load_pairs(name_or_path)[:limit]


def first_of_each_category(pairs: list[PromptPair], count: int) -> list[PromptPair]:
    """The first `count` pairs of each category, in the pairs' order (a smaller set that
    keeps every category)."""
    require_at_least_one(count, "count")
    taken: dict[str, int] = {}
    kept = []
    for pair in pairs:
        if taken.get(pair.category, 0) < count:
            taken[pair.category] = taken.get(pair.category, 0) + 1
            kept.append(pair)
    return kept


def load_pairs(path: str | Path, *, category_required: bool = False) -> list[PromptPair]:
    """A JSON list of {"clean": ..., "typo": ..., "category": ...} (category optional,
    "other" by default, unless `category_required`): at least one pair, each prompt a
    non-empty string."""
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
    return [
        _prompt_pair(row, f"{path}: pair {number}", category_required)
        for number, row in enumerate(rows)
    ]


def _prompt_pair(row, where: str, category_required: bool = False) -> PromptPair:
    """One {clean, typo, category} object as a `PromptPair`; `ValueError` saying `where` if it
    does not fit."""
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be an object {{clean, typo, category}}, got {row!r}")
    if "clean" not in row or "typo" not in row:
        raise ValueError(f"{where} needs a 'clean' and a 'typo' prompt, got keys {sorted(row)}")
    if category_required and "category" not in row:
        raise ValueError(f"{where} needs a 'category', got keys {sorted(row)}")
    for key in ("clean", "typo"):
        if not isinstance(row[key], str) or not row[key]:
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row[key]!r}")
    category = row.get("category", "other")
    if not isinstance(category, str):
        raise ValueError(f"{where}: 'category' must be a string, got {category!r}")
    return PromptPair(row["clean"], row["typo"], category)


@torch.no_grad()
def _last_position(model, tokenizer, text: str) -> tuple[torch.Tensor, ...]:
    """The next-token log-probabilities after `text`, the final hidden state there and the
    vector the model reads for the last token."""
    ids = torch.tensor([tokenizer.encode(text).ids], device=next(model.parameters()).device)
    if ids.shape[1] == 0:
        raise ValueError("an empty prompt has no next token to compare")
    ids = ids[:, -model.config.max_len :]
    hidden = model.hidden_states(ids)[0, -1]  # (d,): one pass of the backbone
    logits = model.output_logits(hidden).float()  # (V,): the forward's logits at that position
    return logits.log_softmax(-1), hidden, model.embed(ids[:, -1:])[0, -1]


def probe_spelling(model, tokenizer, pairs: list[PromptPair]) -> dict:
    """Per-pair measurements and their means, overall and per category (the measures are
    defined in `petra.probes.spelling`).

    Args:
        model: a petra causal LM.
        tokenizer: its tokenizer.
        pairs: the (clean, typo) prompt pairs, at least one (`pair_set`).

    Returns:
        `{"summary": {"pairs", "top1_agreement", "kl_mean", "hidden_cosine_mean",
        "logprob_drop_mean", "last_token_cosine_mean", "top1_chance", "top1_kappa",
        "per_category"}, "pairs": [one dict per pair]}`.

    Raises:
        ValueError: if `model` is not a causal LM or `pairs` is empty.
    """
    require_causal_lm(model, "spelling", "next-token predictions")
    if not pairs:
        raise ValueError("no prompt pairs to probe: give at least one")
    model.eval()
    rows = []
    for pair in pairs:
        clean, clean_hidden, read = _last_position(model, tokenizer, pair.clean)
        typo, typo_hidden, _ = _last_position(model, tokenizer, pair.typo)
        top = int(clean.argmax())
        rows.append(
            {
                "clean": pair.clean,
                "typo": pair.typo,
                "category": pair.category,
                "clean_top1": top,
                "typo_top1": int(typo.argmax()),
                "top1_agreement": float(top == int(typo.argmax())),
                "kl": float((clean.exp() * (clean - typo)).sum().clamp_min(0)),
                "hidden_cosine": float(F.cosine_similarity(clean_hidden, typo_hidden, dim=0)),
                "logprob_drop": float(clean[top] - typo[top]),
                "last_token_cosine": float(F.cosine_similarity(clean_hidden, read, dim=0)),
            }
        )
    return {"summary": {**_means(rows), "per_category": _per_category(rows)}, "pairs": rows}


def _means(rows: list[dict]) -> dict:
    names = ("top1_agreement", "kl", "hidden_cosine", "logprob_drop", "last_token_cosine")
    return {
        "pairs": len(rows),
        **{
            f"{n}_mean" if n != "top1_agreement" else n: statistics.mean(r[n] for r in rows)
            for n in names
        },
        **top1_kappa([r["clean_top1"] for r in rows], [r["typo_top1"] for r in rows]),
    }


def top1_kappa(clean: list[int], typo: list[int]) -> dict[str, float]:
    """`top1_chance` and `top1_kappa` (the module docstring) of the pairs' clean and typo
    top-1 tokens: chance sum_{i != j} [t_i = u_j] / (n (n - 1)) = (sum_v c_v d_v -
    sum_i [t_i = u_i]) / (n (n - 1)), c_v and d_v the counts of token v among the clean
    and the typo predictions; kappa (agreement - chance) / (1 - chance), 0 where chance is
    1. One pair has no other to draw chance from: chance 0 by convention, kappa the
    agreement."""
    n = len(clean)
    kept = sum(t == u for t, u in zip(clean, typo, strict=True))
    agreement = kept / max(n, 1)
    if n < 2:
        return {"top1_chance": 0.0, "top1_kappa": agreement}
    typo_counts = Counter(typo)
    same_token = sum(c * typo_counts[v] for v, c in Counter(clean).items())
    chance = (same_token - kept) / (n * (n - 1))
    kappa = 0.0 if chance >= 1 else (agreement - chance) / (1 - chance)
    return {"top1_chance": chance, "top1_kappa": kappa}


def _per_category(rows: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    return {category: _means(group) for category, group in sorted(groups.items())}


# each summary mean and the direction that counts as more robust
BETTER = {
    "top1_agreement": "higher",
    "kl_mean": "lower",
    "hidden_cosine_mean": "higher",
    "logprob_drop_mean": "lower",
}


def compare_categories(ours: dict, theirs: dict) -> dict:
    """Category by category, the summary `ours` against `theirs` (each `probe_spelling(...)
    ["summary"]`, over the same categories), for each metric of `BETTER`: per category
    "win" (ours strictly better), "tie" (equal means) or "loss", and the counts `win`,
    `tie`, `loss` and `won_or_tied`.

    The paper's "wins or ties 10 of 11 categories" is this count on `top1_agreement` (the
    reference's `top1_match_rate` per category, Kronecker against BPE): recomputed from the
    reference repository's published per-category rates (`probes/data/
    robustness_results.json`) it is 7 wins, 3 ties (time, idiom, counting) and 1 loss
    (geography). With 10 pairs a category those rates are multiples of 0.1, so ties are
    common; on the three continuous means a tie needs exactly equal values (identical
    models), and the same figures give KL 7 wins and 4 losses, hidden cosine 10 and 1,
    log-prob drop 5 and 6."""
    mine, other = ours["per_category"], theirs["per_category"]
    if set(mine) != set(other):
        raise ValueError(
            "the two summaries have different categories: only in the first "
            f"{sorted(set(mine) - set(other))}, only in the second {sorted(set(other) - set(mine))}"
        )
    compared = {}
    for metric, better in BETTER.items():
        outcomes = {}
        for category in sorted(mine):
            a, b = mine[category][metric], other[category][metric]
            ahead = a > b if better == "higher" else a < b
            outcomes[category] = "win" if ahead else "tie" if a == b else "loss"
        counts = {kind: list(outcomes.values()).count(kind) for kind in ("win", "tie", "loss")}
        compared[metric] = {
            **counts,
            "won_or_tied": counts["win"] + counts["tie"],
            "categories": outcomes,
        }
    return compared


def format_summary(summary: dict) -> str:
    """A Markdown table: overall, then per category."""
    lines = [
        "| category | pairs | top-1 agreement | top-1 chance | top-1 kappa | KL mean "
        "| hidden cosine | log-prob drop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in [("all", summary), *summary["per_category"].items()]:
        lines.append(
            f"| {name} | {s['pairs']} | {s['top1_agreement']:.3f} | {s['top1_chance']:.3f} "
            f"| {s['top1_kappa']:.3f} "
            f"| {s['kl_mean']:.4f} "
            f"| {s['hidden_cosine_mean']:.4f} | {s['logprob_drop_mean']:.4f} |"
        )
    return "\n".join(lines)
