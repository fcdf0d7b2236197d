"""Swap the input embedding of a pretrained `transformers` model for a petra embedding.

`replace_embeddings(model, kind, tokenizer=...)` reads V, d and the padding id off
`model.get_input_embeddings()`, builds the petra embedding, starts it where the old table was
(a learned `factor_dim=e` table from the old table's truncated SVD; a computed kind scaled so
that its mean row norm equals the old table's, since a badly scaled start makes recovery by
distillation worse than a random table), installs it with `set_input_embeddings`, and deals
with an output head tied to the old table:

- `head="tied"`: the head computes `logits = h table()^T (+ bias)` from the new embedding: no
  V x d parameter is left, and the gradient of the logits reaches the embedding's parameters;
- `head="untied"`: a learned `Linear(d, V)` initialised from the old table (the Kronecker
  paper's setup, where the head is untied from the byte code).

Either way the model's tying declarations are cleared (`tie_word_embeddings=False`, empty
`all_tied_weights_keys`), so that `transformers` never tries to tie a `.weight` the embedding
does not have, and the choice is recorded in `model.petra_swap` (what `save_pretrained` writes
to its sidecar).
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import asdict, dataclass
from types import MethodType

import torch
from torch import Tensor, nn

from petra.embeddings import (
    TokenEmbedding,
    build_embedding,
    embedding_class,
)
from petra.embeddings.base import checked_counts
from petra.embeddings.token_bytes import token_bytes, tokenizer_fingerprint

HEADS = ("tied", "untied")
MAX_SPARE_ROWS = 1024  # rows a table may have beyond its tokenizer's pieces (and 1/32 of V)


class TableHead(nn.Module):
    """A tied output head on a computed embedding: `logits = h E^T + b`, E = `table()` (in
    evaluation under no_grad the embedding's kept table: `head_table()`).

    The embedding is reached through the model (`get_input_embeddings()`), not held as a
    submodule, so its weights are saved once and a wrapper put around it later (PEFT's
    `modules_to_save`) is the one the head uses."""

    def __init__(self, model: nn.Module, bias: Tensor | None = None):
        super().__init__()
        object.__setattr__(self, "_model", model)  # not a submodule: no second copy in the state
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def __deepcopy__(self, memo):
        """A copy made with its model refers to the model's copy; a copy of the head alone
        (PEFT's `modules_to_save`) still reads the one model, never a copy of it."""
        clone = TableHead(memo.get(id(self._model), self._model))
        memo[id(self)] = clone
        clone.bias = copy.deepcopy(self.bias, memo)
        clone.train(self.training)
        return clone

    def embedding(self) -> TokenEmbedding:
        return unwrap_embedding(self._model.get_input_embeddings())

    def forward(self, hidden: Tensor) -> Tensor:
        table = self.embedding().head_table()  # (V, d), kept between calls in evaluation
        logits = hidden @ table.to(hidden.dtype).T  # (..., V)
        return logits if self.bias is None else logits + self.bias

    def extra_repr(self) -> str:
        return f"tied to the input embedding's table(), bias={self.bias is not None}"


def unwrap_embedding(module: nn.Module) -> nn.Module:
    """The petra embedding inside a wrapper that keeps trainable copies (PEFT's
    `ModulesToSaveWrapper`), or the module itself."""
    active = getattr(module, "active_adapters", None) or getattr(module, "active_adapter", None)
    copies = getattr(module, "modules_to_save", None)
    if isinstance(copies, nn.ModuleDict) and active:
        name = active[0] if isinstance(active, (list, tuple)) else active
        if name in copies and not getattr(module, "disable_adapters", False):
            return copies[name]
        return module.original_module
    return module


RECORD_KEYS = (  # what a swap records on the model (`petra_swap`), and its save keeps
    "kind", "options", "padding_idx", "head", "scale", "fit_error", "class",
    "tokenizer_fingerprint",
)  # fmt: skip


@dataclass(frozen=True)
class SwapReport:
    """What a swap changed: parameters of the whole model and of its token representation."""

    kind: str
    vocab_size: int
    dim: int
    padding_idx: int | None
    head: str | None  # None: no output head was tied to the table
    scale: float | None  # the factor that matched the old table's mean row norm
    fit_error: float | None  # the weighted relative error of a least-squares start
    params_before: int
    params_after: int
    embedding_before: int  # the V x d table
    embedding_after: int  # the petra embedding's trainable parameters
    head_after: int  # parameters of an output head that was tied before (bias included)
    embedding_bytes_before: int  # the V x d table at its dtype
    embedding_bytes_after: int  # the petra embedding's saved state (`stored_bytes`)

    @property
    def saved(self) -> int:
        return self.params_before - self.params_after

    @property
    def saved_pct(self) -> float:
        """The share of the model's parameters saved (a quantized table's codes are stored,
        not trained: `model_bytes` counts them)."""
        return 100.0 * self.saved / self.params_before

    def as_dict(self) -> dict:
        return {**asdict(self), "saved": self.saved, "saved_pct": self.saved_pct}

    def __str__(self) -> str:
        head = "" if self.head is None else f", {self.head} head ({self.head_after:,})"
        report = self.as_dict()
        before, after = (model_bytes(report, stage) for stage in ("before", "after"))
        return (
            f"{self.kind} embedding {self.vocab_size} x {self.dim}: {self.embedding_before:,} -> "
            f"{self.embedding_after:,} parameters ({self.embedding_bytes_before / 2**20:.2f} -> "
            f"{self.embedding_bytes_after / 2**20:.2f} MiB){head}; model {self.params_before:,} -> "
            f"{self.params_after:,} parameters, {before / 2**20:.2f} -> {after / 2**20:.2f} MiB "
            f"({100 * (1 - after / before):.1f} % of the bytes saved)"
        )


def model_bytes(report: dict, stage: str) -> int | None:
    """The model's stored bytes `before` or `after` the swap, from a swap report
    (`SwapReport.as_dict`, or one a result recorded): the weights outside the table (and a new
    untied head's) at the old table's bytes per entry, plus the table's own bytes
    (`embedding_bytes_*`: a quantized table's codes and scales, a byte code's buffer).
    Buffers outside the embedding are not counted. None for a report of a petra before bytes
    were counted."""
    if "embedding_bytes_before" not in report:
        return None
    per_entry = report["embedding_bytes_before"] / report["embedding_before"]
    others = report["params_before"] - report["embedding_before"]
    if stage == "before":
        return round(others * per_entry) + report["embedding_bytes_before"]
    head = report.get("head_after", 0)
    return round((others + head) * per_entry) + report["embedding_bytes_after"]


def hf_model(model) -> nn.Module:
    """The `transformers` model inside `model` (itself, or a sentence-transformers model's
    first module's `auto_model`)."""
    if hasattr(model, "get_input_embeddings"):
        return model
    inner = getattr(next(iter(model), None), "auto_model", None) if isinstance(
        model, nn.Sequential) else None  # fmt: skip
    if inner is None or not hasattr(inner, "get_input_embeddings"):
        raise TypeError(
            f"expected a transformers model (with get_input_embeddings) or a sentence-"
            f"transformers model around one, got {type(model).__name__}"
        )
    return inner


def count_params(module: nn.Module) -> int:
    """Distinct parameters (a tied table counted once), trainable or not."""
    return sum(p.numel() for p in module.parameters())


def check_head(head: str) -> None:
    """Refuse a head setting other than "tied" or "untied" (`HEADS`)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")


def replace_embeddings(
    model,
    kind: str,
    tokenizer=None,
    *,
    head: str = "tied",
    padding_idx: int | None | str = "auto",
    match_norms: bool = True,
    token_counts: Tensor | None = None,
    **options,
) -> SwapReport:
    """Install a petra embedding of `kind` in `model` in place, and return what it changed.

    How the new embedding starts, and what happens to a tied output head, is set out in
    `petra.hf.swap`.

    Args:
        model: a `transformers` model, or a sentence-transformers model around one.
        kind: one of `kinds()`.
        tokenizer: the model's tokenizer (`transformers` or `tokenizers`); needed by a kind
            that `needs_tokenizer` (the bytes of each piece), checked against V for every
            kind. A table a little larger than the tokenizer is fine (the spare rows get empty
            bytes: see `spare_rows_accepted`); a tokenizer with more pieces, or far fewer, is
            refused.
        head: "tied" or "untied", for a model whose output head shares the old table.
        padding_idx: "auto" keeps the embedding's padding id when the pretrained model treats
            it as padding (its row is zero), since petra embeds a padding id to zero and some
            models' padding id is also a real token (SmolLM2's is `<|im_end|>`); or an id, or
            None.
        match_norms: scale a computed kind so that its mean row norm equals the old table's.
        token_counts: how often each id occurs in text like the model's, shape `(V,)`. With
            them, a computed kind starts at the frequency-weighted least-squares fit of the
            old table (`fit_to_table`) rather than at a scaled random map: the frequent
            tokens, which carry most of the text, come close to their old vectors.
        **options: go to the kind (`factor_dim=` for `learned`, `pos_dim=` for
            `kronecker`...).

    Returns:
        What the swap changed: parameters of the model and of its embedding and head.

    Raises:
        ValueError: if the model already has a petra embedding, for an unknown kind, head or
            option, or a tokenizer that does not fit the table.
        TypeError: if the model's input embedding is not an `nn.Embedding`.
    """
    inner = hf_model(model)
    old = inner.get_input_embeddings()
    if isinstance(unwrap_embedding(old), TokenEmbedding):
        raise ValueError("this model already has a petra embedding; swap the original model")
    if not isinstance(old, nn.Embedding):
        raise TypeError(f"the model's input embedding is a {type(old).__name__}, not nn.Embedding")
    kind_class = embedding_class(kind)
    check_head(head)
    weight = old.weight.detach()
    vocab_size, dim = weight.shape
    if tokenizer is not None:  # what the kind reads off the tokenizer, recorded with the rest
        options = {**kind_class.tokenizer_options(tokenizer), **options}
    kind_class.check_vocabulary_options(vocab_size, dim, options)
    pieces = _token_pieces(tokenizer, vocab_size, kind_class)
    padding = _padding(old, padding_idx)
    params_before = count_params(inner)

    counts = {}  # e.g. Fourier's frequency id order, the ids a trimmed table keeps
    if kind_class.needs_token_counts(options):
        if token_counts is None:
            raise ValueError(
                f"a {kind} embedding with options {options} needs token_counts= (how often "
                "each id occurs in the corpus)"
            )
        counts = {"token_counts": token_counts}
    if kind_class.starts_from_table:
        new = kind_class.from_table(weight.float(), padding_idx=padding, **counts, **options)
    else:
        # what the build reads besides the options, not recorded with them
        fingerprint = None if tokenizer is None else tokenizer_fingerprint(tokenizer)
        inputs = kind_class.token_inputs(token_bytes=pieces, fingerprint=fingerprint)
        new = build_embedding(
            kind, vocab_size, dim, padding_idx=padding, **inputs, **counts, **options
        )
    scale = fit_error = None
    if token_counts is not None and not kind_class.starts_from_table:
        fit_error = fit_to_table(new, weight, token_counts)
    elif match_norms and not kind_class.starts_from_table:
        scale = _row_norm(weight, padding) / _row_norm(new.table().detach(), padding)
        new.scale_(scale)
    # in the old table's place and mode: an eval() model's new embedding computes as a loaded
    # one does (its evaluation table), not per distinct id as in training
    new = new.to(device=weight.device, dtype=weight.dtype).train(old.training)

    tied_head = _tied_head(inner, old)
    inner.set_input_embeddings(new)
    if tied_head is not None:
        bias = getattr(tied_head, "bias", None)
        if head == "tied":
            inner.set_output_embeddings(TableHead(inner, bias))
        else:
            untied = nn.Linear(dim, vocab_size, bias=bias is not None)
            untied.to(device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                untied.weight.copy_(weight)
                if bias is not None:
                    untied.bias.copy_(bias)
            inner.set_output_embeddings(untied)
        set_tying(inner, False)
    record = {
        "kind": kind, "options": options, "padding_idx": padding,
        "head": None if tied_head is None else head, "scale": scale, "fit_error": fit_error,
        "class": type(inner).__name__,
        "tokenizer_fingerprint": None if tokenizer is None else tokenizer_fingerprint(tokenizer),
    }  # fmt: skip
    mark_swapped(inner, record, tokenizer)
    head_after = 0 if tied_head is None else count_params(inner.get_output_embeddings())
    return SwapReport(
        kind=kind, vocab_size=vocab_size, dim=dim, padding_idx=padding,
        head=None if tied_head is None else head, scale=scale, fit_error=fit_error,
        params_before=params_before, params_after=count_params(inner),
        embedding_before=vocab_size * dim, embedding_after=new.param_report().trainable_params,
        head_after=head_after, embedding_bytes_before=weight.numel() * weight.element_size(),
        embedding_bytes_after=new.param_report().stored_bytes,
    )  # fmt: skip


SWAP_ARGUMENTS = tuple(  # replace_embeddings' own keywords: never a kind's options
    name
    for name, parameter in inspect.signature(replace_embeddings).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def mark_swapped(model: nn.Module, record: dict, tokenizer=None) -> None:
    """Record the swap on the model (`petra_swap`, read by `save_pretrained`), keep the
    tokenizer for `resize_token_embeddings`, which this replaces on the instance, and flag the
    new modules as initialised, so that `transformers`' `post_init` never re-draws them."""
    model.petra_swap = record
    model.petra_tokenizer = tokenizer  # may be None after a load: the record keeps its fingerprint
    model.resize_token_embeddings = MethodType(resize_token_embeddings, model)
    for part in (model.get_input_embeddings(), model.get_output_embeddings()):
        for module in part.modules() if part is not None else ():
            module._is_hf_initialized = True


def _token_pieces(tokenizer, vocab_size: int, kind_class) -> list[bytes] | None:
    """The bytes of each of the V ids (ids the tokenizer does not name get b""), after
    checking the tokenizer against the table; None without a tokenizer."""
    if tokenizer is None:
        if kind_class.needs_tokenizer:
            raise ValueError(
                f"kind={kind_class.kind!r} needs the model's tokenizer (its pieces' bytes)"
            )
        return None
    pieces = token_bytes(tokenizer)  # every id the tokenizer names, added tokens included
    check_tokenizer_fits(len(pieces), vocab_size)
    return pieces + [b""] * (vocab_size - len(pieces))


def check_tokenizer_fits(pieces: int, vocab_size: int) -> None:
    """Refuse a tokenizer of `pieces` tokens for a table of `vocab_size` rows when it names
    more rows than there are, or leaves more than `spare_rows_accepted` rows unnamed."""
    if pieces > vocab_size:
        raise ValueError(
            f"the tokenizer has {pieces} tokens but the model's embedding only {vocab_size} "
            "rows: this is not the model's tokenizer, or resize the model's embedding first"
        )
    spare, accepted = vocab_size - pieces, spare_rows_accepted(vocab_size)
    if spare > accepted:
        raise ValueError(
            f"the tokenizer has {pieces} tokens but the model's embedding {vocab_size} "
            f"rows: {spare} rows would have no token (at most {accepted} spare rows are "
            "accepted): this is not the model's tokenizer, whose pieces would name the wrong "
            "rows; pass the tokenizer the model was trained with"
        )


def spare_rows_accepted(vocab_size: int) -> int:
    """How many rows a model's table may have beyond its tokenizer's pieces: tables are often
    rounded up (nanoGPT's GPT-2 to 50,304 rows, Phi-2's 50,295 pieces to 51,200) or keep ids
    for special tokens added later; up to `MAX_SPARE_ROWS` rows and 1/32 of the table. A
    larger shortfall means another model's tokenizer (BERT's 30,522 pieces on GPT-2's 50,257
    rows would give "Hello", id 15496, the bytes of "burgh")."""
    return min(MAX_SPARE_ROWS, vocab_size // 32)


def _padding(old: nn.Embedding, padding_idx) -> int | None:
    if padding_idx != "auto":
        return padding_idx
    pad = old.padding_idx
    if pad is None or bool(old.weight[pad].any()):
        return None  # not padding to this model: it has a learned vector
    return pad


def fit_to_table(embedding, table: Tensor, token_counts: Tensor, ridge: float = 1e-3) -> float:
    """Set the embedding's trained linear map M to the weighted least-squares fit of `table`:

        M = argmin sum_v c_v ||M f(v) - table_v||^2 + lambda ||M||_F^2,
        M^T = (F^T C F + lambda I)^(-1) F^T C T,   lambda = ridge * mean diag(F^T C F),

    over the ids with a count c_v > 0, where f(v) are the kind's fixed features (its
    `least_squares_map`): Kronecker's normalized byte code z (M = W), Fourier's basis
    features t with the linear refinement (M = I + R), the n-gram kind's row counts (M = C^T).
    A kind with trained parts outside M then fits them to what M leaves (`fit_residual_`:
    a residual table's best rank-r approximation of table - E).
    Returns the weighted relative error
    sqrt(sum c ||E - T||^2 / sum c ||T||^2)."""
    counts = checked_counts(token_counts, embedding.num_embeddings, some=True)
    linear = embedding.least_squares_map()
    if linear is None:
        raise ValueError(
            f"no least-squares start for this {embedding.kind} embedding (one needs a kind "
            "whose least_squares_map() is not None: Kronecker without rank, Fourier with "
            "refine='linear' and no final norm, n-gram)"
        )
    features, set_map = linear
    seen = counts.nonzero().squeeze(1)
    target = table.detach().double().cpu()  # the fit runs where the new embedding is: the CPU
    gram = rhs = None
    for chunk in seen.split(4096):
        f = features(chunk).double()  # (n, k)
        weighted = f * counts[chunk, None]
        gram = weighted.T @ f if gram is None else gram + weighted.T @ f  # (k, k)
        rhs = weighted.T @ target[chunk] if rhs is None else rhs + weighted.T @ target[chunk]
    if ridge > 0:
        gram.diagonal().add_(ridge * gram.diagonal().mean())
        solution = torch.linalg.solve(gram, rhs).T  # (d, k): M
    else:  # fewer tokens than features: the minimum-norm solution of the singular system
        solution = torch.linalg.lstsq(gram, rhs, driver="gelsd").solution.T
    with torch.no_grad():
        set_map(solution)
        embedding.fit_residual_(target)
        fitted = embedding(seen).double()
    squared = ((fitted - target[seen]).pow(2).sum(1) * counts[seen]).sum()
    return (squared / (target[seen].pow(2).sum(1) * counts[seen]).sum()).sqrt().item()


def _row_norm(table: Tensor, padding: int | None) -> float:
    norms = table.float().norm(dim=-1)
    if padding is not None:
        norms = torch.cat([norms[:padding], norms[padding + 1 :]])
    value = norms.mean().item()
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"cannot match row norms: the mean row norm is {value}")
    return value


def _tied_head(model: nn.Module, old: nn.Embedding) -> nn.Module | None:
    """The output head that shares the old table's weight, if any."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return out if out is not None and getattr(out, "weight", None) is old.weight else None


def set_tying(model: nn.Module, tied: bool) -> None:
    """Declare on the model and every `transformers` submodel whether the output head is tied
    to the input table; untied, nothing is left for `tie_weights` to tie."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is None or not hasattr(module, "all_tied_weights_keys"):
            continue
        for part in {id(config): config, id(text := config.get_text_config()): text}.values():
            part.tie_word_embeddings = tied
        module.all_tied_weights_keys = {}
    if tied:
        model.all_tied_weights_keys = model.get_expanded_tied_weights_keys(all_submodels=True)


def resize_token_embeddings(
    model, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
    mean_resizing: bool = True, *, tokenizer=None,
):  # fmt: skip
    """`model.resize_token_embeddings` after a swap, with `transformers`' arguments. An
    embedding built from token bytes (a kind that `needs_tokenizer`) really resizes
    (`TokenEmbedding.resized`): a new token's row comes from its bytes, read from the tokenizer
    given at the swap (or passed here), so `mean_resizing` has nothing to do; the other kinds
    refuse, saying what to do instead."""
    embedding = unwrap_embedding(model.get_input_embeddings())
    if pad_to_multiple_of is not None:
        if pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        wanted = embedding.num_embeddings if new_num_tokens is None else new_num_tokens
        new_num_tokens = -(-wanted // pad_to_multiple_of) * pad_to_multiple_of
    if new_num_tokens is None or new_num_tokens == embedding.num_embeddings:
        return embedding
    if not embedding.needs_tokenizer:
        embedding.resized([])  # rows of a function of the id: refused, saying what to do
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "petra_tokenizer", None)
    if tokenizer is None:
        raise ValueError(f"resizing a {embedding.kind} embedding needs the tokenizer: pass "
                         "tokenizer=")  # fmt: skip
    pieces = token_bytes(tokenizer)
    if len(pieces) > new_num_tokens:
        raise ValueError(f"the tokenizer has {len(pieces)} tokens, more than {new_num_tokens}")
    pieces += [b""] * (new_num_tokens - len(pieces))
    old_vocab = embedding.num_embeddings
    new = embedding.resized(pieces, tokenizer_fingerprint(tokenizer)).train(embedding.training)
    kept = min(old_vocab, new_num_tokens)
    model.set_input_embeddings(new)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, TableHead) and head.bias is not None:
        with torch.no_grad():
            bias = torch.zeros(new_num_tokens, dtype=head.bias.dtype, device=head.bias.device)
            bias[:kept] = head.bias[:kept]
        head.bias = nn.Parameter(bias)
        model.set_output_embeddings(head)  # a model that also holds the bias elsewhere re-points it
    if isinstance(head, nn.Linear) and head.out_features == old_vocab:
        resized = nn.Linear(head.in_features, new_num_tokens, bias=head.bias is not None)
        resized.to(device=head.weight.device, dtype=head.weight.dtype).train(head.training)
        with torch.no_grad():
            resized.weight[:kept].copy_(head.weight[:kept])
            resized.weight[kept:].copy_(new.table()[kept:])  # new rows start at their byte code
            if head.bias is not None:
                resized.bias[:kept].copy_(head.bias[:kept])
                resized.bias[kept:].zero_()
        model.set_output_embeddings(resized)
    model.config.get_text_config().vocab_size = new_num_tokens
    model.petra_tokenizer = tokenizer
    model.petra_swap["tokenizer_fingerprint"] = tokenizer_fingerprint(tokenizer)
    return new
