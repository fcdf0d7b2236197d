"""The Kronecker paper's cross-model retrieval probe (its Sections 6.1-6.4): does a word's
nearest neighbour in an input-embedding table spell the same word (a typographic variant:
case, a leading space) or another word? The script that wrote the reference repository's
output (`probes/data/raw/cross_model/results/trained_probe_*.txt`) is not published (its
`probes/cross_model_probe.py` computes other figures); these definitions are read from that
output, and petra's probe of the byte code of SmolLM2's vocabulary gives its published
centred in-family cosines to 4 decimals.

Each word of `FAMILIES` (the probe words of the reference output) is probed in three spaces
of one vocabulary:

- `trained`: the model's (V, d) table; a word's vector is its token's row when the tokenizer
  gives it one token, else the mean of its tokens' rows (no special tokens; an empty encoding
  falls back to " " + word), as the reference;
- `random`: a N(0, 0.02^2) table of the same shape (seeded; GPT-2's initialization, whose
  mean-row norm matches the reference's published 0.0022), the floor of every measure;
- `byte code`: the Kronecker codec z of every token's bytes (`petra.embeddings.kronecker`,
  pos_dim 32, D = 8192, as the reference probe's); a word of one token is its token's code, a
  word of several tokens the codec of its own bytes (still one code).

Neighbours are the k rows of highest cosine, leaving out the word's own token when it is one
token ("non-self"). Cosines tie often in the byte code (they are ratios of small integers):
a tie at the k-th place is counted as its expectation under a uniformly random tie-break
(`_typographic_count`), where the reference takes whichever tokens its sort returns first.
A token's canonical form is its bytes as the codec reads them (GPT-2's
byte map inverted, SentencePiece's "▁" as a space, a WordPiece word start with a space and a
"##" piece without) decoded as UTF-8, stripped of white space and lower-cased:

    typographic@k(w)   = |{n in N_k(w) : canon(n) = canon(w)}| / k
    morphological@k(w) = 1 - typographic@k(w)

(the reference's labels: "morphological" is every neighbour spelled as another word,
relative or not). A family's fraction is the mean over its words. Cosines are also reported
centred (every row minus the space's mean row c = (1/V) sum_v E_v), as the reference's
ratio table:

    in-family   = mean over pairs {w, w'} of one family of cos(e_w - c, e_w' - c)
    random-pair = mean over `random_pairs` seeded pairs of distinct ids {i, j} of
                  cos(E_i - c, E_j - c)
    ratio       = in-family / random-pair

(and the same uncentred, "raw"). The ratio is published by the reference; its denominator is
near 0 once centred, so petra also reports the difference in-family - random-pair, which is
not ill-conditioned. Where petra departs from the reference: its random pairs are its own
seeded draw (the reference's sampler is not published), so random-pair means agree with the
published ones only to sampling error; and ties at the k-th place count by their expectation,
so a fraction can differ from the published one by a tied token (the listed neighbours break
ties by id).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from petra.embeddings.kronecker import (
    BYTE_VALUES,
    codec_indices,
    codec_scales,
    encode_bytes,
    kronecker_codec,
)
from petra.embeddings.token_bytes import backend_tokenizer, token_bytes

FAMILIES: dict[str, tuple[str, ...]] = {
    "run": ("run", "runs", "running", "runner", "ran"),
    "compute": ("compute", "computer", "computing", "computation", "computes"),
    "magnet": ("magnet", "magnets", "magnetic", "magnetize", "magnetized"),
    "tion": ("nation", "station", "action", "rotation", "creation"),
    "code": ("def", "return", "import", "class", "while"),
    "ident": ("self", "None", "True", "False", "lambda"),
}
TABULATED = ("run", "compute", "magnet", "tion")  # the families of the reference's tables
CODE_POS_DIM = 32  # the reference probe's codec: 256 x 32 = 8192 dimensions
CHUNK = 4096


def canonical(text: str) -> str:
    """A token's or word's spelling with case and surrounding white space removed."""
    return text.strip().lower()


class Space:
    """A vocabulary's vectors: `rows(ids)` gives rows of the V x dim matrix, and `word(text)`
    a word's vector in the same space (float64)."""

    def __init__(self, size: int, rows: Callable[[Tensor], Tensor], word: Callable[[str], Tensor]):
        self.size, self.rows, self.word = size, rows, word

    def chunks(self):
        """The rows, CHUNK at a time, in id order."""
        for start in range(0, self.size, CHUNK):
            yield self.rows(torch.arange(start, min(start + CHUNK, self.size)))


def _encode(tokenizer, text: str) -> list[int]:
    """The word's ids without special tokens or padding (a tokenizer.json may switch fixed
    padding on); " " + word when the bare word gives none."""
    backend = backend_tokenizer(tokenizer)
    for candidate in (text, " " + text):
        encoding = backend.encode(candidate, add_special_tokens=False)
        ids = [i for i, real in zip(encoding.ids, encoding.attention_mask, strict=True) if real]
        if ids:
            return ids
    raise ValueError(f"the tokenizer gives no ids for {text!r}")


def table_space(table: Tensor, tokenizer) -> Space:
    """A (V, d) table; a word is the mean of its tokens' rows."""
    if table.dim() != 2:
        raise ValueError(f"the table must be (V, d), got shape {tuple(table.shape)}")
    table = table.detach()

    def word(text: str) -> Tensor:
        return table[_encode(tokenizer, text)].double().mean(0)

    return Space(table.shape[0], lambda ids: table[ids], word)


def code_space(tokenizer, size: int, pos_dim: int = CODE_POS_DIM) -> Space:
    """The Kronecker byte code of every token (rows past the tokenizer's are empty tokens,
    code 0). A word of one token is that token's code (a WordPiece word start reads " run",
    whose code is not that of the bare bytes "run": those are the piece "##run"); a word of
    several tokens, the code of its own bytes."""
    pieces = token_bytes(tokenizer)
    pieces += [b""] * (size - len(pieces))
    byte_rows, lengths, _ = encode_bytes(pieces[:size], pos_dim)
    codec_dim = BYTE_VALUES * pos_dim

    def rows(ids: Tensor) -> Tensor:
        """z = x a / (sigma + eps) - mu / (sigma + eps) with x's L nonzeros set to 1: the
        codec through its closed-form moments, without a mean and std over D per row."""
        index, valid = codec_indices(byte_rows[ids], lengths[ids])
        scale, shift = codec_scales(lengths[ids], codec_dim)
        x = torch.zeros(len(ids), codec_dim).scatter_(1, index, valid.float())
        return x.mul_(scale.unsqueeze(1)).sub_(shift.unsqueeze(1))

    def word(text: str) -> Tensor:
        ids = _encode(tokenizer, text)
        if len(ids) == 1 and ids[0] < size:
            row, length = byte_rows[ids], lengths[ids]
        else:
            row, length, _ = encode_bytes([text.encode("utf-8")], pos_dim)
        return kronecker_codec(row, length, torch.float64)[0]

    return Space(size, rows, word)


def _scan(space: Space, queries: Tensor, exclude: list[int | None]) -> tuple[Tensor, Tensor]:
    """One pass over the space: every query's cosine with every row, (Q, V) float64 rounded
    to 1e-9 (so that equal cosines summed in another order tie exactly), its excluded id at
    -inf; and the mean row (dim,)."""
    unit = F.normalize(queries, dim=-1)
    sims, total = [], 0.0
    for rows in space.chunks():
        rows = rows.double()
        total = total + rows.sum(0)
        sims.append(unit @ F.normalize(rows, dim=-1).T)
    sims = torch.cat(sims, dim=1).round(decimals=9)
    for q, own in enumerate(exclude):
        if own is not None:
            sims[q, own] = -math.inf
    return sims, total / space.size


def _typographic_count(sims: Tensor, variants: Tensor, k: int) -> float:
    """Expected number of `variants` (a bool mask over ids) among the k nearest ids, ties
    broken uniformly at random: those above the k-th cosine s_k count 1, those tied with it
    r / m each (r places left for the m ids at s_k)."""
    kth = sims.topk(k).values[-1]
    above, tied = sims > kth, sims == kth
    places = k - int(above.sum())
    return int((above & variants).sum()) + places * int((tied & variants).sum()) / int(tied.sum())


def _random_pair_cosines(space: Space, pairs: Tensor, centre: Tensor) -> tuple[float, float]:
    """Mean raw and centred cosine of the rows of each pair of ids, `pairs` (n, 2)."""
    raw = centred = 0.0
    for start in range(0, len(pairs), CHUNK // 2):
        chunk = pairs[start : start + CHUNK // 2]
        first, second = space.rows(chunk[:, 0]).double(), space.rows(chunk[:, 1]).double()
        raw += F.cosine_similarity(first, second, dim=-1).sum().item()
        centred += F.cosine_similarity(first - centre, second - centre, dim=-1).sum().item()
    return raw / len(pairs), centred / len(pairs)


def _pair_cosines(vectors: Tensor, pairs: Tensor) -> Tensor:
    unit = F.normalize(vectors, dim=-1)
    return (unit[pairs[:, 0]] * unit[pairs[:, 1]]).sum(-1)


def _cosine_summary(in_family: float, random_pair: float) -> dict:
    ratio = in_family / random_pair if random_pair != 0 else None
    return {
        "in_family": in_family,
        "random_pair": random_pair,
        "ratio": ratio,
        "difference": in_family - random_pair,
    }


def random_pairs(size: int, count: int, seed: int) -> Tensor:
    """`count` seeded pairs (i, j) of distinct ids in [0, size), (count, 2)."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(size, (count,), generator=generator)
    offset = torch.randint(1, size, (count,), generator=generator)  # j != i
    return torch.stack([first, (first + offset) % size], dim=1)


@torch.no_grad()
def probe_space(
    space: Space,
    tokenizer,
    *,
    k: int = 5,
    seed: int = 1337,
    pairs: int = 10000,
    families: dict[str, tuple[str, ...]] = FAMILIES,
) -> dict:
    """The retrieval probe (module docstring) of one space: per word its tokens, neighbours
    and typographic count; per family the fractions and in-family cosines; the random-pair
    cosines and the norm of the mean row; `typographic_at_k` over the words of the
    reference's tabulated families (`TABULATED`, those present) and over all."""
    if not 1 <= k < space.size:
        raise ValueError(f"k must be between 1 and {space.size - 1}, got {k}")
    pieces = [piece.decode("utf-8", errors="replace") for piece in token_bytes(tokenizer)]
    pieces += [""] * (space.size - len(pieces))
    canonical_pieces = [canonical(piece) for piece in pieces[: space.size]]
    words = list(dict.fromkeys(itertools.chain.from_iterable(families.values())))
    tokens = {word: _encode(tokenizer, word) for word in words}
    queries = torch.stack([space.word(word) for word in words])  # (W, dim)
    own = [ids[0] if len(ids) == 1 and ids[0] < space.size else None for ids in tokens.values()]
    sims, centre = _scan(space, queries, own)
    raw_random, centred_random = _random_pair_cosines(
        space, random_pairs(space.size, pairs, seed), centre
    )

    probes = {}
    for n, word in enumerate(words):
        spelled = canonical(word)
        variants = torch.tensor([piece == spelled for piece in canonical_pieces])
        # the k nearest, ties in id order: a stable sort on the negated cosines
        nearest = torch.sort(-sims[n], stable=True).indices[:k].tolist()
        probes[word] = {
            "tokens": [pieces[i] for i in tokens[word]],
            "neighbours": [[pieces[i], round(sims[n, i].item(), 4)] for i in nearest],
            "typographic": _typographic_count(sims[n], variants, k),
            # tokens spelled as the word, its own left out: how many it could retrieve
            "variants_in_vocab": int(variants.sum()) - (own[n] is not None),
        }
    index = {word: n for n, word in enumerate(words)}
    result_families = {}
    for family, members in families.items():
        fraction = sum(probes[w]["typographic"] for w in members) / (k * len(members))
        chosen = torch.tensor([index[w] for w in members])
        within = torch.tensor(list(itertools.combinations(range(len(members)), 2)))
        vectors = queries[chosen]
        result_families[family] = {
            "typographic_at_k": fraction,
            "morphological_at_k": 1 - fraction,
            "centred": _cosine_summary(
                _pair_cosines(vectors - centre, within).mean().item(), centred_random
            ),
            "raw": _cosine_summary(_pair_cosines(vectors, within).mean().item(), raw_random),
        }

    def mean_fraction(names) -> float | None:
        names = [name for name in names if name in result_families]
        if not names:
            return None
        return sum(result_families[n]["typographic_at_k"] for n in names) / len(names)

    return {
        "k": k,
        "seed": seed,
        "random_pairs": pairs,
        "vocab_size": space.size,
        "mean_row_norm": centre.norm().item(),
        "random_pair_cosine": {"raw": raw_random, "centred": centred_random},
        "typographic_at_k": mean_fraction(TABULATED),
        "typographic_at_k_all": mean_fraction(families),
        "variants_in_vocab_mean": sum(p["variants_in_vocab"] for p in probes.values())
        / len(probes),
        "families": result_families,
        "probes": probes,
    }


def retrieval_probe(table: Tensor, tokenizer, *, k: int = 5, seed: int = 1337) -> dict:
    """The Kronecker paper's typographic retrieval probe (defined in
    `petra.probes.retrieval`) of a model's input table, beside a random table of its shape
    and the byte code of its vocabulary.

    Args:
        table: the model's input embeddings, at least one row per token of the tokenizer.
        tokenizer: the tokenizer whose ids the table embeds.
        k: the nearest neighbours examined per word.
        seed: seeds the random table and the random pairs.

    Returns:
        `{"trained": ..., "random": ..., "byte code": ...}`, each `probe_space`'s result.

    Raises:
        ValueError: if the table has fewer rows than the tokenizer has tokens, or `k` lies
            outside [1, V).

    Shapes:
        - table: `(V, d)`
    """
    size = table.shape[0]
    vocab = backend_tokenizer(tokenizer).get_vocab_size(with_added_tokens=True)
    if size < vocab:
        raise ValueError(
            f"the table has {size} rows but the tokenizer {vocab} tokens: give the table that "
            "belongs to this tokenizer"
        )
    noise = 0.02 * torch.randn(table.shape, generator=torch.Generator().manual_seed(seed))
    spaces = {
        "trained": table_space(table.float(), tokenizer),
        "random": table_space(noise, tokenizer),
        "byte code": code_space(tokenizer, size),
    }
    return {name: probe_space(space, tokenizer, k=k, seed=seed) for name, space in spaces.items()}


def format_retrieval(result: dict) -> str:
    """The per-family fractions and centred cosines of `retrieval_probe`, as text tables
    (the in-family minus random-pair difference, not the reference's ratio, whose
    denominator is about 0 once centred)."""
    names = list(result)
    families = list(result[names[0]]["families"])
    k = result[names[0]]["k"]
    lines = [
        f"{'family':<10}{'space':<12}{f'typographic@{k}':>16}{'in-family':>11}"
        f"{'random-pair':>13}{'difference':>12}"
    ]
    for family in families:
        for name in names:
            row = result[name]["families"][family]
            centred = row["centred"]
            lines.append(
                f"{family:<10}{name:<12}{row['typographic_at_k']:>16.2f}"
                f"{centred['in_family']:>11.4f}{centred['random_pair']:>13.4f}"
                f"{centred['difference']:>12.4f}"
            )
    summary = ", ".join(f"{name} {result[name]['typographic_at_k']:.2f}" for name in names)
    lines.append(f"(centred cosines; typographic@{k} over {', '.join(TABULATED)}: {summary})")
    return "\n".join(lines)
