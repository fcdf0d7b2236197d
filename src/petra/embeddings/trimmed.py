"""A table trimmed to the ids a corpus uses: vocabulary trimming, as users of sentence-
transformers and transformers shrink a pretrained table for their own text.

The tokenizer is untouched, so the model still reads any text: an id that was dropped reads
the row of the unknown token. With K the kept ids and r(v) the row of id v,

    E(v) = T[r(v)],   r(v) = the row of v if v is in K, else the row of `unk_id`,

T a learned R x d table (R = |K| rows, R d parameters; the budget knob). K is the ids that
occur in a corpus (`token_counts` > 0), or the `rows` most frequent ids when `rows` is given
(ties by id; ids the corpus lacks fill up a `rows` it does not reach), `unk_id` always among
them; without counts it is the first R ids. The map r is
a V-sized int32 buffer saved with the weights, so a saved model loads without the counts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petra.embeddings.base import (
    Knob,
    TokenEmbedding,
    check_count,
    check_init_std,
    checked_counts,
)


def kept_ids(vocab_size: int, rows: int | None, unk_id: int, token_counts=None) -> Tensor:
    """K in row order: the ids with a count (most frequent first, ties by id), or exactly
    `rows` ids (ids the corpus lacks fill up, by id), with `unk_id` always kept (in the last
    place when it would fall out); without counts the first `rows` ids (all V by default),
    `unk_id` among them."""
    if token_counts is None:
        order = torch.arange(vocab_size)
        kept = order[: vocab_size if rows is None else rows]
    else:
        counts = checked_counts(token_counts, vocab_size)
        order = torch.sort(-counts, stable=True).indices  # most frequent first, ties by id
        kept = order[: int((counts > 0).sum()) if rows is None else rows]
    if not torch.any(kept == unk_id):
        full = rows is not None and len(kept) >= rows
        kept = torch.cat([kept[:-1] if full else kept, torch.tensor([unk_id])])
    return kept


class TrimmedEmbedding(TokenEmbedding):
    """A learned table of the kept ids' rows; every other id reads the row of `unk_id`
    (the math is in `petra.embeddings.trimmed`).

    Args:
        vocab_size: V, the number of token ids (the tokenizer's, untouched).
        dim: d, the width of each embedding.
        rows: R, the rows kept (at most V); by default every id with a count (all V without
            counts).
        unk_id: the id whose row a dropped id reads: the tokenizer's unknown token (a Hugging
            Face swap reads it off the tokenizer when it is not given; 0 by default here).
        token_counts: how often each id occurs in the corpus, shape (V,) (a construction
            input: the kept set is saved as the `row_of` buffer, not as counts).
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of the table's normal initialization.

    Raises:
        ValueError: if `rows` is not a whole number in [1, V], `unk_id` not an id, or the
            counts are not V counts >= 0.
    """

    kind = "trimmed"
    budget_knob = ("rows",)
    report_layouts = (("trimmed, every id kept (a corpus's counts set R)", {}),)
    construction_inputs = ("token_counts",)
    starts_from_table = True
    table_options = ("rows", "unk_id")

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """R d (R = V without `rows`)."""
        rows = cls.option(options, "rows")
        return (vocab_size if rows is None else rows) * dim

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any number of kept rows R in [1, V] (R d)."""
        return [Knob(range(1, vocab_size + 1), lambda r: r * dim, lambda r: {"rows": r})]

    @classmethod
    def needs_token_counts(cls, options: dict) -> bool:
        """A swap keeps the ids of the corpus, so it needs their counts."""
        return True

    @classmethod
    def tokenizer_options(cls, tokenizer) -> dict:
        """`unk_id`: the tokenizer's unknown token (a `transformers` tokenizer's
        `unk_token_id`, or its tokenizer model's `unk_token`), if it has one."""
        unk = getattr(tokenizer, "unk_token_id", None)
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)  # a transformers wrapper's
        token = getattr(getattr(backend, "model", None), "unk_token", None)
        if unk is None and token is not None and hasattr(backend, "token_to_id"):
            unk = backend.token_to_id(token)
        return {} if unk is None else {"unk_id": unk}

    @classmethod
    def check_vocabulary_options(cls, vocab_size: int, dim: int, options: dict) -> None:
        """`rows` a whole number in [1, V], `unk_id` an id."""
        rows, unk_id = options.get("rows"), options.get("unk_id", 0)
        if rows is not None:
            check_count("rows", rows)
            if rows > vocab_size:
                raise ValueError(
                    f"rows must be a whole number in [1, V = {vocab_size}], got {rows}"
                )
        if not (isinstance(unk_id, int) and 0 <= unk_id < vocab_size):
            raise ValueError(f"unk_id must be a token id in [0, {vocab_size}), got {unk_id!r}")

    @classmethod
    def stand_in_options(cls, options: dict, vocab_size: int) -> dict:
        """Sizes of the real vocabulary (rows, unk_id, counts) are checked at the real build."""
        return {k: v for k, v in options.items() if k not in ("rows", "unk_id", "token_counts")}

    @classmethod
    def _from_table(
        cls, table: Tensor, *, padding_idx: int | None = None, token_counts=None, **options
    ) -> TrimmedEmbedding:
        """The rows of the kept ids, copied from `table`."""
        module = cls(*table.shape, padding_idx=padding_idx, token_counts=token_counts, **options)
        with torch.no_grad():
            module.rows.copy_(table[module.kept_ids()])
        return module

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> TrimmedEmbedding:
        """R from the saved table (the kept set itself is the `row_of` buffer the caller
        loads)."""
        (table,) = cls.saved(state, prefix, "rows")
        rows = table.shape[0]
        cls.check_saved_size(f"{prefix}rows", rows, "rows", "rows", options.get("rows"))
        return cls(vocab_size, dim, **{**options, "rows": rows})

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        rows: int | None = None,
        unk_id: int = 0,
        token_counts=None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        self.check_vocabulary_options(vocab_size, dim, {"rows": rows, "unk_id": unk_id})
        check_init_std(init_std)
        self.unk_id, self.init_std = unk_id, init_std
        kept = kept_ids(vocab_size, rows, unk_id, token_counts)
        row_of = torch.full((vocab_size,), -1, dtype=torch.int32)
        row_of[kept] = torch.arange(len(kept), dtype=torch.int32)
        row_of[row_of < 0] = row_of[unk_id]
        self.register_buffer("row_of", row_of)
        self.rows = nn.Parameter(torch.empty(len(kept), dim))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """T ~ N(0, init_std^2) (the global RNG)."""
        nn.init.normal_(self.rows, std=self.init_std)

    def kept_ids(self) -> Tensor:
        """K in row order: the ids that read a row of their own (`unk_id` among them)."""
        owners = torch.full((self.rows.shape[0],), -1, dtype=torch.long)
        ids = torch.arange(self.num_embeddings)
        own = self.kept_mask().cpu()
        owners[self.row_of.cpu()[own].long()] = ids[own]
        return owners

    def kept_mask(self) -> Tensor:
        """(V,) True for an id that reads its own row, False for one that reads `unk_id`'s."""
        unk_row = self.row_of[self.unk_id]
        mask = self.row_of != unk_row
        mask[self.unk_id] = True
        return mask

    def _embed(self, ids: Tensor) -> Tensor:
        return self.rows.index_select(0, self.row_of.index_select(0, ids).long())

    def _scale(self, factor: float) -> None:
        self.rows.mul_(factor)

    def trained_matrix(self) -> Tensor:
        return self.rows

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rows={self.rows.shape[0]}, unk_id={self.unk_id}"
