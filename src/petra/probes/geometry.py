"""The geometry of an input-embedding table: neighbours, orthographic structure, collisions.

For probe words that are single tokens: their nearest neighbours by cosine; the rate at
which their orthographic variants (plural, capitalized, one-letter typo: the two middle
letters swapped), where these are single tokens too, are among the k nearest neighbours,
against the same rate for unrelated probe words; collisions (rows with another row closer
than 1e-6 times the median row norm: the same vector up to rounding) and the smallest
distance between rows that do not collide (over all rows below `exact_limit`, else from a
seeded sample of rows to all rows, as reported); and the norms of the rows.

The Kronecker paper's own probe (is a word's nearest neighbour a typographic variant of it?)
is `petra.probes.retrieval`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    """Neighbours, orthographic structure, collisions and norms of `embedding.table()` (the
    measures are defined in `petra.probes.geometry`).

    Args:
        embedding: a `TokenEmbedding`.
        tokenizer: the tokenizer whose ids it embeds.
        k: the nearest neighbours of each probe word, 1 <= k < V.
        exact_limit: collisions are checked over all rows up to this V, else on a sample.
        sample: the seeded sample of rows checked above `exact_limit`.

    Returns:
        Per probe word its neighbours and which variants are among them; the variant and
        unrelated neighbour rates; colliding rows, the smallest distance between the others;
        row-norm statistics.

    Raises:
        ValueError: if `k` lies outside [1, V).
    """
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
