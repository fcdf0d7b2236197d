"""The parameter and memory report behind `petra params`: every embedding kind, built for
real at each (tokenizer, width), next to the learned table it replaces."""

from __future__ import annotations

from collections.abc import Iterable

from petra.data import load_tokenizer
from petra.embeddings import build_embedding, embedding_class, kinds
from petra.embeddings.budget import check_fits_in_memory, embedding_params
from petra.embeddings.token_bytes import token_bytes, tokenizer_fingerprint


def report_arms() -> list[tuple[str, str, dict]]:
    """(label, kind, options): each kind's `report_layouts`, in the registry's order (the
    layouts the papers report, ALBERT's factorization, the standard baselines at their
    defaults, then the registered kinds')."""
    return [(label, kind, options) for kind in kinds()
            for label, options in embedding_class(kind).report_layouts]  # fmt: skip


def param_rows(tokenizers: Iterable[str], dims: Iterable[int], data_dir=None) -> list[dict]:
    """One row per (tokenizer, dim, arm): the embedding's `ParamReport` plus labels, or, for
    an arm that refuses the width (Fourier's sin/cos pairs need an even d), its reason under
    `error`. Every size is checked against this machine's memory, by its closed form, before
    anything is built."""
    dims = list(dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(f"--dims takes positive widths such as 256,512,768, got {dims}")
    vocabularies = []
    for name in tokenizers:
        tokenizer = load_tokenizer(name, data_dir)
        vocabularies.append((name, token_bytes(tokenizer), tokenizer_fingerprint(tokenizer)))
    for name, pieces, _ in vocabularies:
        for dim in dims:
            _check_sizes(name, len(pieces), dim)
    rows = []
    for name, pieces, fingerprint in vocabularies:
        for dim in dims:
            for label, kind, options in report_arms():
                kind_class = embedding_class(kind)
                inputs = kind_class.token_inputs(token_bytes=pieces, fingerprint=fingerprint)
                report = _report(kind, len(pieces), dim, {**options, **inputs})
                rows.append({"tokenizer": name, "embedding": label, **report})
    return rows


def _check_sizes(name: str, vocab_size: int, dim: int) -> None:
    """Refuse a width at which the learned V x d table (the one every row is measured
    against) or an arm would not fit in memory, by their closed forms."""
    fix = "give a smaller width in --dims"
    check_fits_in_memory(
        vocab_size * dim, f"--dims {dim}: the learned {vocab_size:,} x {dim:,} table of {name}", fix
    )
    for label, kind, options in report_arms():
        try:
            params = embedding_params(kind, vocab_size, dim, **options)
        except ValueError:  # a width the kind refuses: its row says why
            continue
        check_fits_in_memory(params, f"--dims {dim}: {label} at V={vocab_size:,} ({name})", fix)


def _report(kind: str, vocab_size: int, dim: int, options: dict) -> dict:
    """The built embedding's `ParamReport` as a dict, or the size and the reason it was
    refused (`error`)."""
    try:
        return build_embedding(kind, vocab_size, dim, **options).param_report().as_dict()
    except ValueError as error:
        return {"num_embeddings": vocab_size, "embedding_dim": dim, "error": str(error)}


def mebibytes(num_bytes: int) -> str:
    """A size in MiB, to 2 decimals: `44.71` for 46,881,792 bytes."""
    return f"{num_bytes / 2**20:.2f}"


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `param_rows`."""
    header = (
        "| tokenizer | V | d | embedding | trainable params | buffer bytes "
        "| MiB stored | learned V x d | params saved | bytes saved (vs fp32) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    )
    return "\n".join((*header, *(_table_row(r) for r in rows)))


def _table_row(row: dict) -> str:
    """One row of the table; an arm that was not built says why in its parameters' cell."""
    start = (
        f"| {row['tokenizer']} | {row['num_embeddings']:,} | {row['embedding_dim']} "
        f"| {row['embedding']} "
    )
    if "error" in row:
        learned = row["num_embeddings"] * row["embedding_dim"]
        return start + f"| not built: {row['error']} | – | – | {learned:,} | – | – |"
    return start + (
        f"| {row['trainable_params']:,} | {row['buffer_bytes']:,} "
        f"| {mebibytes(row['stored_bytes'])} "
        f"| {row['learned_equivalent']:,} | {row['saving_pct']:.1f}% "
        f"| {row['bytes_saving_pct']:.1f}% |"
    )
