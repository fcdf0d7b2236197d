"""The geometry of an input-embedding table: neighbours, orthographic structure, collisions.

For probe words that are single tokens: their nearest neighbours by cosine; the rate at
which their orthographic variants (plural, capitalized, one-letter typo: the two middle
letters swapped), where these are single tokens too, are among the k nearest neighbours,
against the same rate for unrelated probe words; collisions (rows with another row closer
than 1e-6 times the median row norm: the same vector up to rounding) and the smallest
distance between rows that do not collide (over all rows below `exact_limit`, else from a
seeded sample of rows to all rows, as reported); and the norms of the rows.

`typographic_similarity` takes any (V, d) table (a petra embedding's, or a pretrained
model's word embeddings): the mean centred cosine of typographic variants of a word, of its
morphological relatives and of random word pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PROBE_WORDS = (
    "house", "water", "people", "government", "little", "school", "market", "system",
    "night", "number", "between", "money", "music", "family", "company", "country", "river",
    "letter", "power", "change", "friend", "church", "garden", "mother", "window", "summer",
)  # fmt: skip


def _variants(word: str) -> list[str]:
    middle = len(word) // 2
    typo = word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :]
    return [word + "s", word.capitalize(), typo]


def _single_token(tokenizer, word: str) -> int | None:
    """The id of `word` as one token, trying it as a word start with a leading space first."""
    for text in (" " + word, word):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if len(ids) == 1:
            return ids[0]
    return None


@torch.no_grad()
def probe_geometry(
    embedding, tokenizer, k: int = 10, exact_limit: int = 20000, sample: int = 4096
) -> dict:
    """Neighbours, orthographic structure, collisions and norms of `embedding.table()` (see
    the module docstring): `k` nearest neighbours of each probe word, 1 <= k < V."""
    vocab_size = embedding.num_embeddings
    if not 1 <= k < vocab_size:
        raise ValueError(
            f"k must be between 1 and {vocab_size - 1} (the other rows of a {vocab_size}-row "
            f"table), got {k}"
        )
    table = embedding.table().float()  # (V, d)
    unit = F.normalize(table, dim=-1)

    def neighbours(token_id: int) -> list[int]:
        similarity = unit @ unit[token_id]
        similarity[token_id] = -2.0
        return similarity.topk(k).indices.tolist()

    words, variant_hits, variant_total, unrelated_hits, unrelated_total = {}, 0, 0, 0, 0
    ids = {w: _single_token(tokenizer, w) for w in PROBE_WORDS}
    ids = {w: i for w, i in ids.items() if i is not None}
    for word, token_id in ids.items():
        near = neighbours(token_id)
        variants = {v: _single_token(tokenizer, v) for v in _variants(word)}
        variants = {v: i for v, i in variants.items() if i is not None and i != token_id}
        others = [i for w, i in ids.items() if w != word]
        variant_hits += sum(i in near for i in variants.values())
        variant_total += len(variants)
        unrelated_hits += sum(i in near for i in others)
        unrelated_total += len(others)
        words[word] = {
            "neighbours": [tokenizer.decode([i]) for i in near],
            "variants_in_neighbours": {v: i in near for v, i in variants.items()},
        }
    norms = table.norm(dim=-1)
    tolerance = 1e-6 * norms.median().item()  # closer than this, two rows are the same vector
    rows = torch.arange(vocab_size)
    exact = vocab_size <= exact_limit
    if not exact:
        rows = torch.randperm(vocab_size, generator=torch.Generator().manual_seed(0))[:sample]
    colliding, smallest = 0, float("inf")
    for start in range(0, len(rows), 1024):
        chunk = rows[start : start + 1024]
        distance = torch.cdist(table[chunk], table)  # (c, V), fast but rounded near 0
        distance[torch.arange(len(chunk)), chunk] = float("inf")
        nearest = distance.argmin(dim=1)
        exact_distance = (table[chunk] - table[nearest]).norm(dim=-1)  # recomputed directly
        colliding += int((exact_distance <= tolerance).sum())
        apart = exact_distance[exact_distance > tolerance]
        if len(apart):
            smallest = min(smallest, apart.min().item())
    return {
        "vocab_size": vocab_size,
        "k": k,
        "words": words,
        "variant_neighbour_rate": variant_hits / max(variant_total, 1),
        "unrelated_neighbour_rate": unrelated_hits / max(unrelated_total, 1),
        "variants_tested": variant_total,
        "colliding_rows": colliding,  # rows with another row within `tolerance`
        "collision_tolerance": tolerance,
        "min_distance": smallest,  # between rows that do not collide
        "rows_examined": len(rows),
        "exact": exact,
        "row_norms": {
            "mean": norms.mean().item(),
            "std": norms.std().item(),
            "min": norms.min().item(),
            "max": norms.max().item(),
        },
    }


# -- typographic clustering -------------------------------------------------------------------

COMMON_WORDS = (
    "about", "after", "again", "air", "animal", "answer", "apple", "area", "army", "back",
    "ball", "bank", "beautiful", "bird", "black", "blood", "board", "boat", "body", "book",
    "bread", "bright", "brother", "build", "call", "car", "care", "carry", "cause", "chair",
    "child", "city", "class", "clean", "clear", "close", "cold", "color", "come", "cook",
    "corner", "count", "cover", "cross", "dance", "dark", "daughter", "dream", "dress",
    "drink", "drive", "early", "earth", "east", "father", "field", "fight", "fill", "find",
    "fire", "fish", "floor", "flower", "follow", "force", "forest", "form", "free", "fresh",
    "front", "game", "girl", "glass", "gold", "great", "green", "ground", "group", "grow",
    "happy", "hard", "head", "hear", "heart", "help", "high", "horse", "hot", "hour", "idea",
    "island", "jump", "keep", "kind", "king", "kill", "land", "large", "laugh", "learn",
    "light", "line", "listen", "long", "look", "love", "mark", "matter", "mean", "meet",
    "milk", "mind", "month", "moon", "move", "name", "nature", "need", "north", "office",
    "open", "order", "paint", "paper", "part", "party", "pass", "pay", "picture", "place",
    "plant", "play", "point", "quick", "rain", "reach", "read", "real", "rest", "road",
    "rock", "room", "round", "rule", "safe", "sail", "sea", "season", "seed", "sell", "send",
    "ship", "short", "show", "sing", "sister", "small", "smile", "snow", "soft", "sound",
    "south", "speak", "spring", "stand", "star", "start", "station", "stone", "stop", "story",
    "street", "strong", "student", "sun", "table", "talk", "teach", "thank", "thing", "think",
    "town", "travel", "tree", "turn", "walk", "wall", "want", "warm", "watch", "west", "wind",
    "winter", "wish", "woman", "wood", "word", "work", "world", "write", "year", "young",
)  # fmt: skip
MORPHOLOGICAL_SUFFIXES = ("s", "es", "ed", "ing", "er", "ly")
PAIR_KINDS = ("variants", "morphological", "random")


def _typos(word: str) -> list[str]:
    """Three one-letter typos at the middle letter: adjacent letters swapped, a letter
    dropped, a letter doubled (a swap of two equal letters is no typo and is left out)."""
    m = len(word) // 2
    swap = word[: m - 1] + word[m] + word[m - 1] + word[m + 1 :]
    typos = [word[:m] + word[m + 1 :], word[:m] + word[m] + word[m:]]
    return ([swap] if swap != word else []) + typos


def _relatives(word: str) -> dict[str, str]:
    """{suffix: the stem with it} for each of `MORPHOLOGICAL_SUFFIXES` (a final e is dropped
    before a suffix that starts with a vowel: change -> changed, changing)."""
    forms = {}
    for suffix in MORPHOLOGICAL_SUFFIXES:
        stem = word[:-1] if word.endswith("e") and suffix[0] in "aeiou" else word
        forms[suffix] = stem + suffix
    return forms


def _single_token_as(tokenizer, text: str) -> int | None:
    """The id of `text` if it encodes to exactly one token, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return ids[0] if len(ids) == 1 else None


def is_uncased(tokenizer) -> bool:
    """Whether the tokenizer lowercases its input (BERT uncased), so that case variants of a
    word are the same token."""
    normalizer = getattr(tokenizer, "normalizer", None)
    return normalizer is not None and normalizer.normalize_str("Ab") == "ab"


def typographic_pairs(
    tokenizer, seed: int = 0, *, misspellings: bool = True, data_dir=None, random_pairs: int = 1000
) -> dict[str, list[dict]]:
    """The token pairs that `typographic_similarity` compares, by kind: each pair is
    `{"ids": (i, j), "texts": (a, b), "edit": ...}` with i != j, every pair listed once.

    Words are `PROBE_WORDS + COMMON_WORDS`. A pair is taken in one spacing at a time, as a word
    start (" house" / " House") and bare ("house" / "House"), wherever both members are single
    tokens in that spacing; the spacing pair (" house", "house") is a variant too.
    - variants: `edit` "case" (capitalized, upper case), "typo" (`_typos`), "space", and
      "misspelling" (Wikipedia's common misspellings of a one-word lower-case correction,
      when `misspellings`);
    - morphological: `edit` the suffix (`_relatives`);
    - random: up to `random_pairs` seeded pairs of distinct words (each in its first spacing
      that is a single token, " word" before "word"), `edit` "random".
    """
    words = list(dict.fromkeys(PROBE_WORDS + COMMON_WORDS))
    spacings = (" ", "")
    pairs = {kind: {} for kind in PAIR_KINDS}

    def add(kind: str, a: str, b: str, edit: str) -> None:
        for space in spacings:
            i, j = _single_token_as(tokenizer, space + a), _single_token_as(tokenizer, space + b)
            if i is not None and j is not None and i != j:
                key = (min(i, j), max(i, j))
                pairs[kind].setdefault(
                    key, {"ids": (i, j), "texts": (space + a, space + b), "edit": edit}
                )

    for word in words:
        for form in dict.fromkeys((word.capitalize(), word.upper())):
            if form != word:
                add("variants", word, form, "case")
        for typo in _typos(word):
            add("variants", word, typo, "typo")
        space, bare = _single_token_as(tokenizer, " " + word), _single_token_as(tokenizer, word)
        if space is not None and bare is not None and space != bare:
            key = (min(space, bare), max(space, bare))
            pairs["variants"].setdefault(
                key, {"ids": (space, bare), "texts": (" " + word, word), "edit": "space"}
            )
        for suffix, relative in _relatives(word).items():
            add("morphological", word, relative, "-" + suffix)
    if misspellings:
        from petra.data import load_misspellings

        for wrong, right in sorted(load_misspellings(data_dir=data_dir).items()):
            if right.isalpha() and right.islower() and wrong.isalpha():
                add("variants", right, wrong, "misspelling")
    tokens = {}  # word -> (text, id) in its first spacing that is one token
    for word in words:
        for text in (" " + word, word):
            token_id = _single_token_as(tokenizer, text)
            if token_id is not None:
                tokens[word] = (text, token_id)
                break
    found = list(tokens.values())
    candidates = [
        (a, b)
        for a in range(len(found))
        for b in range(a + 1, len(found))
        if found[a][1] != found[b][1]
    ]
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    for index in order[:random_pairs].tolist():
        (text_a, i), (text_b, j) = found[candidates[index][0]], found[candidates[index][1]]
        pairs["random"].setdefault(
            (min(i, j), max(i, j)), {"ids": (i, j), "texts": (text_a, text_b), "edit": "random"}
        )
    return {kind: list(found.values()) for kind, found in pairs.items()}


def _summary(similarity: Tensor) -> dict:
    n = similarity.numel()
    if n == 0:
        return {"mean": None, "stderr": None, "pairs": 0}
    stderr = (similarity.std() / n**0.5).item() if n > 1 else None
    return {"mean": similarity.mean().item(), "stderr": stderr, "pairs": n}


@torch.no_grad()
def typographic_similarity(
    table: Tensor, tokenizer, seed: int = 0, *, misspellings: bool = True, data_dir=None
) -> dict:
    """Whether a (V, d) embedding table puts typographic variants of a word near the word.

    Rows are centred on the table's mean row before cosines are taken,

        u_i = (E_i - c) / ||E_i - c||,   c = (1/V) sum_v E_v,   s(i, j) = u_i . u_j,

    which removes the direction common to all rows (the reason every cosine of a trained
    table tends to be positive) and makes the result invariant to adding a constant vector
    to every row (and to scaling the table). For each kind K of token pairs
    (`typographic_pairs`: `variants` of a word (case, one-letter typos, with and without
    the leading space, common misspellings), `morphological` relatives (the stem with -s,
    -es, -ed, -ing, -er, -ly), seeded `random` pairs of distinct words):

        mean_K = (1/|K|) sum_{(i, j) in K} s(i, j),   stderr_K = std_K / sqrt(|K|)

    (pairs share words, so the standard error is a guide, not an exact sampling error), and
    `variant_minus_random` = mean_variants - mean_random, `morphological_minus_random`
    likewise, with the same figures for each edit (`by_edit`) and one example pair per edit.

    What the kinds share: a variant shares all its bytes with the word but for one edit (a
    leading space, though, shifts every byte by one position, which a byte-by-position code
    does not forgive); a relative shares the stem's bytes and is related in meaning. So a
    byte-level table scores both above random pairs at initialization, from bytes alone; in a
    trained table, variants above random is typographic clustering, while relatives above
    random can come from meaning alone. A one-letter edit that is itself a token is often
    another word (house -> hose), so the typo figure measures tokens that are spelled alike.

    For an uncased tokenizer (`uncased: true`) case variants are the same token and count 0
    pairs. Means of kinds with no pair are None. `table` may be any (V, d) tensor: a petra
    embedding's `table()`, or a pretrained model's word embeddings with its tokenizer.
    """
    if table.dim() != 2:
        raise ValueError(f"table must be (V, d), got shape {tuple(table.shape)}")
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    if table.shape[0] < vocab_size:
        raise ValueError(
            f"the table has {table.shape[0]} rows but the tokenizer {vocab_size} tokens: give "
            "the table that belongs to this tokenizer"
        )
    table = table.detach()
    centre = table.mean(dim=0, dtype=torch.float64)  # (d,)
    pairs = typographic_pairs(tokenizer, seed, misspellings=misspellings, data_dir=data_dir)
    result = {"vocab_size": table.shape[0], "uncased": is_uncased(tokenizer)}
    for kind, found in pairs.items():
        ids = torch.tensor([p["ids"] for p in found], dtype=torch.long).reshape(-1, 2)
        unit = F.normalize(table[ids.flatten()].double() - centre, dim=-1).view(-1, 2, len(centre))
        similarity = (unit[:, 0] * unit[:, 1]).sum(-1)  # (pairs,)
        by_edit, examples = {}, []
        edits = list(dict.fromkeys(p["edit"] for p in found))
        for edit in edits:
            chosen = [n for n, p in enumerate(found) if p["edit"] == edit]
            by_edit[edit] = _summary(similarity[chosen])
            for n in chosen[: max(1, 3 // len(edits))]:  # a few of each edit
                examples.append([*found[n]["texts"], round(similarity[n].item(), 4)])
        result[kind] = {**_summary(similarity), "by_edit": by_edit, "examples": examples}
    if "case" not in result["variants"]["by_edit"]:
        result["variants"]["by_edit"]["case"] = _summary(torch.zeros(0))

    def minus_random(kind: str) -> float | None:
        mean, random_mean = result[kind]["mean"], result["random"]["mean"]
        return None if mean is None or random_mean is None else mean - random_mean

    result["variant_minus_random"] = minus_random("variants")
    result["morphological_minus_random"] = minus_random("morphological")
    return result
