"""The parameter and memory report behind `petra params`: every embedding kind, built for
real at each (tokenizer, width), next to the learned table it replaces."""

from __future__ import annotations

from collections.abc import Iterable

from petra.data import load_tokenizer
from petra.embeddings import build_embedding
from petra.embeddings.token_bytes import token_bytes, tokenizer_fingerprint

# (label, kind, options): the layouts the papers report, ALBERT's factorization, and the
# standard baselines at their defaults
ARMS: tuple[tuple[str, str, dict], ...] = (
    ("learned", "learned", {}),
    ("learned, factorized e=128", "learned", {"factor_dim": 128}),
    ("fourier, linear", "fourier", {"refine": "linear"}),
    ("fourier, geglu x4", "fourier", {"refine": "geglu", "expansion": 4}),
    ("fourier, geglu x1/4", "fourier", {"refine": "geglu", "expansion": 0.25}),
    ("kronecker, pos_dim 16", "kronecker", {"pos_dim": 16}),
    ("kronecker, pos_dim 32", "kronecker", {"pos_dim": 32}),
    ("kronecker, pos_dim 16, rank 64", "kronecker", {"pos_dim": 16, "rank": 64}),
    ("qr, mult, c = ceil(sqrt V)", "qr", {}),
    ("hash, k=2, B = V/10", "hash", {}),
    ("dhe, k=1024, 2 x 512", "dhe", {}),
    ("tt, 3 cores, rank 16", "tt", {"rank": 16}),
)


def param_rows(tokenizers: Iterable[str], dims: Iterable[int], data_dir=None) -> list[dict]:
    """One row per (tokenizer, dim, arm): the embedding's `ParamReport` plus labels."""
    rows = []
    for name in tokenizers:
        tokenizer = load_tokenizer(name, data_dir)
        pieces, fingerprint = token_bytes(tokenizer), tokenizer_fingerprint(tokenizer)
        vocab_size = len(pieces)
        for dim in dims:
            for label, kind, options in ARMS:
                if kind == "kronecker":
                    options = {**options, "token_bytes": pieces, "fingerprint": fingerprint}
                report = build_embedding(kind, vocab_size, dim, **options).param_report()
                rows.append({"tokenizer": name, "embedding": label, **report.as_dict()})
    return rows


def _mebibytes(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.2f}"


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `param_rows`."""
    header = (
        "| tokenizer | V | d | embedding | trainable params | buffer bytes "
        "| fp32 MiB (params + buffers) | learned V x d | saving |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    )
    lines = [
        f"| {r['tokenizer']} | {r['num_embeddings']:,} | {r['embedding_dim']} | {r['embedding']} "
        f"| {r['trainable_params']:,} | {r['buffer_bytes']:,} "
        f"| {_mebibytes(4 * r['trainable_params'] + r['buffer_bytes'])} "
        f"| {r['learned_equivalent']:,} | {r['saving_pct']:.1f}% |"
        for r in rows
    ]
    return "\n".join((*header, *lines))
