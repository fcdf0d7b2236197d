"""The contract every petra token embedding honours.

A `TokenEmbedding` is a drop-in replacement for `nn.Embedding`:

- `forward(ids)` maps a LongTensor of any shape `(...)` to `(..., d)`;
- `num_embeddings` (V), `embedding_dim` (d) and an optional `padding_idx`, whose output is
  the zero vector (as `nn.Embedding`'s zero-initialised, gradient-free padding row);
- `table()` returns all V embeddings as a `(V, d)` tensor that keeps its autograd graph, so a
  tied output head `logits = h @ table().T` trains the parameters that produce it;
- `to_embedding()` freezes the current outputs into a plain `nn.Embedding` for inference;
- `param_report()` counts trainable parameters, buffer bytes and the bytes of its saved state
  against the learned table;
- ids may have any integer dtype (int8 to int64, uint8 to uint64), checked in int64; ids
  outside `[0, V)` raise `ValueError` naming the value and the valid range, ids of a bool,
  floating or complex dtype a `TypeError`.

Subclasses implement `_embed(flat_ids) -> (N, d)` on already validated 1-D ids.

Kinds whose rows are computed rather than looked up (those whose class sets
`computes_rows = True`) do the work once per distinct id: forward(ids) =
E(unique(ids))[inverse], exact, with gradients summed over repeats by the gather's backward
(an `index_select`: on CPU several times faster than advanced indexing, both ways; its
backward is an `index_add_`, which on CUDA adds with atomics, so gradients there are
bit-reproducible only under `torch.use_deterministic_algorithms(True)`).
In `eval()` mode under `torch.no_grad()` they keep the whole `V x d` table (`eval_table`,
held until a parameter or buffer changes: any in-place update, optimizer step or load bumps
its version, a dtype or device move replaces it), and forward is a lookup. Changes made
through `.data` bypass the version counter: call `clear_eval_table()` after them.

Two attributes (set on the instance, not constructor arguments), True by default, serve
compiled and CUDA-graph use: `emb.validate = False` skips the id range check, whose min/max
read is a host sync on every forward (bad ids are then the caller's to rule out), and
`emb.dedupe = False` skips `torch.unique`, whose output size is another (under
`torch.compile` it is skipped anyway).

Dropped into another model:

- tie an output head through the table, `logits = h @ emb.table().T`; nanoGPT's tying line
  `wte.weight = lm_head.weight` is refused (`TypeError`) by every kind but the unfactored
  learned table, whose `weight` is its `V x d` table as in `nn.Embedding`;
- a host's `self.apply(_init_weights)` also re-initializes the `nn.Linear` and `nn.Embedding`
  modules inside an embedding (a Kronecker projection, a Fourier refinement): call
  `emb.reset_parameters()` after it, or skip petra modules in `_init_weights`;
- kinds with a `seed` option (Fourier, DHE, hash) draw everything from it when it is given,
  so two builds with one seed are equal; with `seed=None` (the default) their initial
  trainable parameters come from the global RNG, as a torch module's do.

A kind also describes itself to the rest of petra, on its class, so that the registry
(`petra.embeddings.registry`) is all that budgets, `petra params`, the Hugging Face swap and
load, model building and the command line need to know of it. Every kind states

- `kind`: its name in the registry and in settings;
- `budget_knob` and `budget_layouts(V, d, budget, **options)`: the options a budget sets and
  the sizes (`Knob`s) they give, the other options at their given or default values
  (`petra.embeddings.budget`);
- `params_for(V, d, **options)`: its trainable parameters, by closed form;
- `report_layouts`: its rows of `petra params`, (label, options) pairs;

(the contract tests check that it does), and may change what the base class assumes, a kind
built by `cls(V, d, **options)` from its options alone:

- `builder()`: the constructor whose keyword-only arguments are its options (the class);
  `option_types()` and `option(options, name)` read their types and defaults from it;
- `build(V, d, **options)`: the embedding, as `build_embedding` makes it;
- `needs_tokenizer` (False): it is built from each token's bytes, and `build` takes
  `tokenizer=` or `token_bytes=` (with `fingerprint=`); a `TokenBytesEmbedding` gets that
  `build` from its two constructors `from_tokenizer` (its `builder`) and `from_token_bytes`;
- `embeds_bytes` (False) and `embed_bytes(pieces)` (refused): rows for byte strings no token
  need have, so that `forward(ids, byte_overrides=...)` embeds raw bytes in place of tokens
  (forced out-of-vocabulary input);
- `stand_in_options(options, V)`: its options for a build on a stand-in vocabulary of V
  tokens, by which `check_options(d, **options)` refuses bad options before data is read;
- `smaller_layout_hint(options)`: what to say when even its smallest size exceeds a budget;
- `head_tied_by_default` (True): a petra causal LM ties its head to `table()` unless told;
- `construction_inputs` (none): V-sized options used to build it, never saved in a config;
- `starts_from_table` (False) and `from_table(table, **options)`: a start from a pretrained
  table by decomposing it (the Hugging Face swap; the other kinds are built, then scaled to
  the table's row norms or fitted to it), taking the options `table_options` (see
  `swap_options`, `check_table_options`);
- `needs_token_counts(options)` (False): the swap passes the corpus counts to `build`;
- `check_vocabulary_options(V, d, options)` (nothing): refuse options that do not fit a
  pretrained V x d table, before anything is built;
- `kept_mask()` (None; on an instance): the ids with a row of their own, for a kind that
  sends the others to a shared row;
- `least_squares_map()` (None; on an instance): for E(v) = M f(v) with fixed features f and
  one trained matrix M, (f, a setter of M): the least-squares start from a table;
- `fit_residual_(table)` (nothing): after that start, fit trained parts outside M to what
  it leaves (a low-rank residual table);
- `resized(pieces, fingerprint)` (refused): a kind built from token bytes, over a vocabulary
  that grew, its trained weights kept;
- `from_saved(V, d, state, prefix, **options)`: the embedding a saved state loads into,
  rebuilt from its saved options and what the state holds (`build` by default): a kind built
  from token bytes keeps them in its state and reads them back here (Kronecker's byte table),
  since a saved model is loaded without its tokenizer.
"""

from __future__ import annotations

import inspect
import math
import numbers
import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParamReport:
    """What an embedding costs, next to the learned `V x d` table it replaces."""

    kind: str
    num_embeddings: int
    embedding_dim: int
    trainable_params: int
    buffer_bytes: int  # every registered buffer, caches included: memory it occupies
    learned_equivalent: int  # V * d, the trainable parameters of nn.Embedding(V, d)
    stored_bytes: int  # its saved state (parameters and kept buffers) at their dtypes

    @property
    def saving_pct(self) -> float:
        """Trainable parameters saved against the learned table, in percent."""
        return 100.0 * (1.0 - self.trainable_params / self.learned_equivalent)

    @property
    def bytes_saving_pct(self) -> float:
        """Stored bytes saved against the learned table in float32 (4 V d bytes), in
        percent: a quantized table saves bytes, not entries."""
        return 100.0 * (1.0 - self.stored_bytes / (4 * self.learned_equivalent))

    def as_dict(self) -> dict:
        return {**asdict(self), "saving_pct": self.saving_pct,
                "bytes_saving_pct": self.bytes_saving_pct}  # fmt: skip


@dataclass(frozen=True)
class Knob:
    """One layout of a kind under a budget: `setting(value)` are the options for each value,
    `count(value)` the trainable parameters they give, in growing order when `monotone` (then
    the budget's search bisects, and stops at the first value over the budget)."""

    values: Sequence[int]
    count: Callable[[int], int]
    setting: Callable[[int], dict]
    monotone: bool = True


STAND_IN_VOCAB = 4  # the tokens of the vocabulary `check_options` builds a kind on
TOKEN_SOURCES = ("tokenizer", "token_bytes")  # where a kind built from token bytes reads them
FINGERPRINT = "fingerprint"  # given with token_bytes: the sha256 of the tokenizer they came from
TOKEN_INPUTS = (*TOKEN_SOURCES, FINGERPRINT)  # what such a build takes besides its options


def check_init_std(init_std: float, positive: bool = False) -> None:
    """Refuse an initialization's standard deviation that is not a finite number >= 0 (> 0
    where `positive`: a kind that divides by it)."""
    low_ok = init_std > 0 if positive else init_std >= 0
    if not (low_ok and init_std < float("inf")):
        what = "a positive finite number" if positive else "a finite number, not negative"
        raise ValueError(f"init_std must be {what}, got {init_std}")


def check_count(name: str, value, minimum: int = 1) -> None:
    """Refuse an option `name` that is not a whole number (an integer, not a bool) of at
    least `minimum`: a size, a rank, a number of rows, layers or hashes."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")


def checked_counts(token_counts, vocab_size: int, some: bool = False) -> Tensor:
    """`token_counts`, how often each of V = `vocab_size` token ids occurs in a corpus, as a
    float64 tensor of shape (V,) (any shape of V entries is flattened); `ValueError` unless
    they are V numbers >= 0 and, where `some` (a fit weighted by them), not all 0."""
    counts = torch.as_tensor(token_counts, dtype=torch.float64).flatten()
    if counts.shape != (vocab_size,):
        problem = f"got {counts.numel()}"
    elif not torch.all(counts >= 0):
        problem = "got a negative or NaN count"
    elif some and not counts.sum() > 0:
        problem = "got all 0"
    else:
        return counts
    needed = ", not all 0" if some else ""
    raise ValueError(
        f"token_counts must be {vocab_size} counts >= 0{needed} (one per token id): {problem}"
    )


def long_ids(ids: Tensor) -> Tensor:
    """`ids` widened to int64 (itself if already long): any integer dtype, signed or not, is
    accepted as `nn.Embedding` accepts int and long. Raise `TypeError` for anything else."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"token ids must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(
            f"token ids must be an integer tensor (torch.long or any other integer dtype), "
            f"got dtype {ids.dtype}; convert them with .long() if they hold whole numbers"
        )
    return ids.long()


def check_ids(ids: Tensor, num_embeddings: int) -> None:
    """Raise `TypeError` unless `ids` is an integer tensor, `ValueError` unless its values lie
    in [0, V). The range is checked after widening to int64, so that ids of a narrow dtype
    (int8, uint8) are compared with a V they cannot represent without wrapping it."""
    check_id_range(long_ids(ids), num_embeddings, ids.dtype)


def check_id_range(ids: Tensor, num_embeddings: int, dtype: torch.dtype = torch.long) -> None:
    """`ValueError` unless the int64 `ids` (widened from `dtype`) lie in [0, V)."""
    if ids.numel() == 0:
        return
    low, high = torch.aminmax(ids)
    if low < 0 or high >= num_embeddings:
        bad = int(low if low < 0 else high)
        if dtype == torch.uint64 and bad < 0:
            bad += 2**64  # uint64 ids at or above 2**63 wrap to negative values when widened
        raise ValueError(
            f"token id {bad} is outside the vocabulary range [0, {num_embeddings}); "
            "check that the tokenizer and the embedding's vocab_size match"
        )


def flat_position(key, shape: torch.Size) -> int:
    """The flat index (row-major) of position `key` of a tensor of `shape`: an int for a 1-D
    tensor, else a tuple of ints (a byte override's position); `TypeError` for another key,
    `ValueError` for one outside the shape."""
    try:
        index = tuple(key) if isinstance(key, (tuple, list)) else (key,)
        if any(isinstance(i, bool) for i in index):
            raise TypeError
        index = tuple(operator.index(i) for i in index)
    except TypeError:
        raise TypeError(f"byte override position {key!r} must be an int or a tuple of "
                        "ints") from None  # fmt: skip
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape, strict=False)):
        raise ValueError(f"byte override position {key!r} is outside ids of shape {tuple(shape)}")
    flat = 0
    for i, n in zip(index, shape, strict=True):
        flat = flat * n + i
    return flat


@torch.no_grad()
def spectral_norm(matrix: Tensor, iterations: int = 30) -> float:
    """Largest singular value by power iteration on M^T M (a seeded start, float32)."""
    m = matrix.detach().float()
    v = torch.randn(m.shape[1], generator=torch.Generator().manual_seed(0)).to(m.device)
    for _ in range(iterations):
        v = m.T @ (m @ v)
        v = v / v.norm().clamp_min(1e-30)
    return (m @ v).norm().item()


# Added to a kind's `seed` for the generator of its initial trainable parameters: the CPU
# generator (MT19937) reads only the low 32 bits of a seed, so the offset must change them.
INIT_STREAM = 0x9E3779B9


def fixed_seed(seed: int | None) -> int:
    """The seed of a kind's fixed random parts (hash functions, a permutation, random
    frequencies): `seed`, or 0 for seed=None."""
    return 0 if seed is None else seed


def init_generator(seed: int | None) -> torch.Generator | None:
    """Where a kind with a `seed` option draws its initial trainable parameters: the global
    RNG (None) for seed=None, as a torch module does, else a CPU generator seeded with
    (seed + INIT_STREAM) mod 2^64, a stream apart from the one its fixed parts draw from."""
    return None if seed is None else torch.Generator().manual_seed((seed + INIT_STREAM) % 2**64)


@torch.no_grad()
def draw_(tensor: Tensor, init: Callable[..., Tensor], generator: torch.Generator | None) -> None:
    """Fill `tensor` by `init(t, generator=...)`, an in-place `torch.nn.init` function: in
    place from the global RNG for generator=None (the very draws a torch module makes), else
    on a float32 CPU tensor drawn from `generator` and copied in, so that a seed gives the
    same values on every device and in every dtype."""
    if generator is None:
        init(tensor, generator=None)
    else:
        tensor.copy_(init(torch.empty(tensor.shape), generator=generator))


def reset_linear_(linear: nn.Linear, generator: torch.Generator | None) -> None:
    """`nn.Linear`'s own initialization, from `generator` (None: the global RNG, exactly
    `linear.reset_parameters()`): W ~ U(-b, b) by `kaiming_uniform_(a=sqrt(5))`, whose
    bound is b = sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in), and the bias ~ U(-b, b)."""
    if generator is None:
        linear.reset_parameters()
        return
    draw_(linear.weight, partial(nn.init.kaiming_uniform_, a=math.sqrt(5)), generator)
    if linear.bias is not None:
        bound = 1.0 / math.sqrt(linear.in_features)
        draw_(linear.bias, partial(nn.init.uniform_, a=-bound, b=bound), generator)


def uninitialized(build: Callable[[], nn.Module]) -> nn.Module:
    """`build()` with its parameters allocated but not drawn (built on the meta device, then
    given empty storage on the default device), for `reset_parameters` to draw them: with
    the global RNG, the same draws in the same order as `build()` itself would make."""
    with torch.device("meta"):
        module = build()
    return module.to_empty(device=torch.get_default_device())


class TokenEmbedding(nn.Module):
    """Base class: validation, any batch shape, padding, `table()`, export and report.

    The contract every kind honours is set out in `petra.embeddings.base`; a subclass
    implements `_embed(flat_ids) -> (N, d)` on already validated 1-D ids.

    Args:
        num_embeddings: V, the number of token ids.
        embedding_dim: d, the width of each embedding.
        padding_idx: an id whose output is the zero vector (as `nn.Embedding`'s), or None.

    Attributes:
        validate: check on every forward that ids lie in `[0, V)` (True). Not a constructor
            argument: set `emb.validate = False` on the built embedding to skip the check's
            host sync (for `torch.compile` and CUDA graphs; bad ids are then yours to rule out).
        dedupe: embed each distinct id once, through `torch.unique` (True; computed kinds
            only). Set `emb.dedupe = False` to skip its data-dependent output size.

    Raises:
        ValueError: if V or d is not positive, or `padding_idx` lies outside `[0, V)`.
    """

    kind: str = "abstract"
    computes_rows: bool = False  # per distinct id in training, a cached table in evaluation
    embeds_bytes: bool = False  # `embed_bytes` gives a row for any byte string
    validate: bool = True
    dedupe: bool = True

    # -- what the kind tells the rest of petra (the lists in `petra.embeddings.base`) -----
    needs_tokenizer: bool = False
    budget_knob: tuple[str, ...]  # every kind states it: the options its budget sizing sets
    report_layouts: tuple[tuple[str, dict], ...]  # every kind states it: `petra params` rows
    # True for the learned table and for the baselines that shrink one (qr, hash, dhe, tt),
    # which stand in for it (a tied head computes their whole table() each step, for DHE
    # its MLP over all V ids: the per-distinct-id saving does not apply)
    head_tied_by_default: bool = True
    construction_inputs: tuple[str, ...] = ()
    starts_from_table: bool = False
    table_options: tuple[str, ...] = ()  # the options `from_table` takes

    @classmethod
    def builder(cls) -> Callable[..., TokenEmbedding]:
        """The constructor whose keyword-only arguments are the kind's options: the class."""
        return cls

    @classmethod
    def option_types(cls) -> dict[str, object]:
        """The keyword options of the kind that a setting can hold, with their annotated types
        (options without an annotation, such as Fourier's `token_counts` array, are left out)."""
        build = cls.builder()
        hints = typing.get_type_hints(build.__init__ if inspect.isclass(build) else build)
        parameters = inspect.signature(build).parameters.values()
        return {
            p.name: hints[p.name]
            for p in parameters
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name in hints
        }

    @classmethod
    def option(cls, options: dict, name: str):
        """The value of option `name`: given in `options`, or the builder's default."""
        if name in options:
            return options[name]
        return inspect.signature(cls.builder()).parameters[name].default

    @classmethod
    def build(cls, vocab_size: int, dim: int, **options) -> TokenEmbedding:
        """The embedding of this kind for `vocab_size` ids of width `dim` (`build_embedding`)."""
        return cls(vocab_size, dim, **options)

    @classmethod
    def stand_in_options(cls, options: dict, vocab_size: int) -> dict:
        """`options` for a build on a stand-in vocabulary of `vocab_size` tokens: what depends
        on the real vocabulary or tokenizer is replaced or left out (`check_options`); a kind
        that `needs_tokenizer` gets stand-in tokens of one byte, its `scheme` left for the
        real tokenizer."""
        if not cls.needs_tokenizer:
            return options
        kept = {k: v for k, v in options.items() if k != "scheme"}
        return {**kept, "token_bytes": [b"x"] * vocab_size}

    @classmethod
    def token_inputs(cls, tokenizer=None, token_bytes=None, fingerprint=None) -> dict:
        """What `build` reads besides the options: for a kind that `needs_tokenizer`, the
        `tokenizer`, or else the `token_bytes` (with their tokenizer's `fingerprint`); {} for
        the others, and when neither is given (the build then says what it needs)."""
        if not cls.needs_tokenizer:
            return {}
        if tokenizer is not None:
            return {"tokenizer": tokenizer}
        if token_bytes is None:
            return {}
        return {"token_bytes": token_bytes, FINGERPRINT: fingerprint}

    @classmethod
    def token_source(cls, options: dict) -> tuple[object, object]:
        """(tokenizer, token_bytes) popped from `options` for a kind built from each token's
        bytes: exactly one of the two must be given."""
        tokenizer, pieces = (options.pop(name, None) for name in TOKEN_SOURCES)
        if (tokenizer is None) == (pieces is None):
            raise ValueError(f"kind={cls.kind!r} needs exactly one of tokenizer= or token_bytes=")
        return tokenizer, pieces

    @staticmethod
    def check_vocab_size(found: int, vocab_size: int) -> None:
        """Refuse a tokenizer (or byte list) of another size than the embedding's V."""
        if found != vocab_size:
            raise ValueError(f"the tokenizer has {found} tokens but vocab_size={vocab_size}")

    @classmethod
    def check_options(cls, dim: int, **options) -> None:
        """Refuse what `build(V, dim, **options)` would refuse (a choice such as Kronecker's
        `mode` or Fourier's `basis`, a range such as `pos_dim`) without a tokenizer or data, by
        building the kind on a stand-in vocabulary of a few tokens (`stand_in_options`). What
        depends on the real vocabulary (`padding_idx < V`) is checked when the embedding is
        built for real; a negative `padding_idx` is refused here."""
        padding = options.get("padding_idx")
        if isinstance(padding, int) and padding < 0:
            raise ValueError(f"padding_idx must be a token id (0 or more), got {padding}")
        options = {k: v for k, v in options.items() if k != "padding_idx"}
        cls.build(STAND_IN_VOCAB, dim, **cls.stand_in_options(options, STAND_IN_VOCAB))

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """Trainable parameters of `build(vocab_size, dim, **options)` by closed form (the
        options not given at their defaults), without building anything."""
        raise NotImplementedError

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """The layouts the budget's knob (`budget_knob`) can give at these sizes, the other
        `options` at their given or default values (`petra.embeddings.budget`)."""
        raise NotImplementedError

    @classmethod
    def smaller_layout_hint(cls, options: dict) -> str:
        """What to add when even the kind's smallest size exceeds a budget (a layout with a
        smaller count), or nothing."""
        return ""

    @classmethod
    def from_table(
        cls, table: Tensor, *, padding_idx: int | None = None, **options
    ) -> TokenEmbedding:
        """Start from a pretrained `(V, d)` table by decomposing it (kinds with
        `starts_from_table` only): the table's shape and the options (`table_options`; a
        construction input such as corpus counts passes) are checked here, the start itself
        is the kind's `_from_table`."""
        if not cls.starts_from_table:
            raise NotImplementedError(f"a {cls.kind} embedding does not start from a table")
        if table.dim() != 2:
            raise ValueError(f"the table must be (V, d), got shape {tuple(table.shape)}")
        cls.check_table_options(
            {k: v for k, v in options.items() if k not in cls.construction_inputs}
        )
        return cls._from_table(table, padding_idx=padding_idx, **options)

    @classmethod
    def _from_table(cls, table: Tensor, *, padding_idx: int | None, **options):
        raise NotImplementedError

    @classmethod
    def swap_options(cls) -> dict[str, object]:
        """The options a start from a pretrained table can give the kind, with their types:
        `table_options` for a kind that `starts_from_table`, else all of them (the kind is
        built, then fitted or scaled to the table)."""
        types = cls.option_types()
        return {k: types[k] for k in cls.table_options} if cls.starts_from_table else types

    @classmethod
    def check_table_options(cls, options: dict) -> None:
        """Refuse options that `from_table` does not take (`table_options`)."""
        unknown = sorted(set(options) - set(cls.table_options))
        if unknown:
            takes = ", ".join(cls.table_options) or "no option"
            raise ValueError(f"a {cls.kind} swap takes {takes} only, not {unknown}")

    @classmethod
    def tokenizer_options(cls, tokenizer) -> dict:
        """Options a swap reads off the model's tokenizer when they are not given (none by
        default; a trimmed table's `unk_id`)."""
        return {}

    @classmethod
    def check_vocabulary_options(cls, vocab_size: int, dim: int, options: dict) -> None:
        """Refuse options that do not fit a `vocab_size` x `dim` table (a pretrained one, for
        a swap), before anything is built (what `check_options` on its stand-in vocabulary
        cannot see)."""

    @classmethod
    def needs_token_counts(cls, options: dict) -> bool:
        """Whether `build(..., **options)` needs `token_counts=` (corpus counts of each id)."""
        return False

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        """Whether an embedding built with `options` has a `least_squares_map()` (so a
        least-squares start), known before it is built (`petra compress` checks its settings
        with it)."""
        return False

    def least_squares_map(
        self,
    ) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], None]] | None:
        """For an embedding E(v) = M f(v) of fixed features f (ids `(N,)` -> `(N, k)`) and one
        trained `(d, k)` matrix M: the pair (f, a setter of M), for the least-squares start
        from a table (`petra.hf.swap.fit_to_table`); None for a kind, or a layout, that is not
        of that form."""
        return None

    def kept_mask(self) -> Tensor | None:
        """(V,) bool: True for an id that reads a row of its own, False for one sent to a
        shared row (a trimmed table's dropped ids); None for a kind that drops no id."""
        return None

    def fit_residual_(self, table: Tensor) -> None:
        """After the least-squares start has set M (`least_squares_map`), fit the trained
        parts outside M to what it leaves, table - E (a low-rank residual table,
        `petra.embeddings.residual`); nothing for a kind without such parts."""

    def resized(self, pieces: list[bytes], fingerprint: str | None = None) -> TokenEmbedding:
        """The embedding over a vocabulary of `pieces` (one byte string per id, its first ids
        those this one was built on), its trained weights kept: a new id's row comes from its
        bytes (`resize_token_embeddings` after a Hugging Face swap). Only a kind built from
        token bytes can: the others raise `ValueError`."""
        raise ValueError(
            f"a {self.kind} embedding cannot be resized: it is not built from token bytes, so "
            "it has no rows for new tokens. Resize the model before replace_embeddings, or "
            "materialize() it first"
        )

    @staticmethod
    def check_resized_prefix(same: bool) -> None:
        """Refuse a resize whose first tokens are not those the embedding was built on."""
        if not same:
            raise ValueError(
                "the tokenizer's first tokens are not those this embedding was built on"
            )

    @classmethod
    def saved(cls, state: dict, prefix: str, *names: str) -> list[Tensor]:
        """The tensors `names` of a saved state (keys under `prefix`), for `from_saved`;
        `ValueError` naming the first one the checkpoint lacks."""
        for name in names:
            if prefix + name not in state:
                raise ValueError(f"the checkpoint has no {prefix}{name} for its {cls.kind} "
                                 "embedding")  # fmt: skip
        return [state[prefix + name] for name in names]

    @staticmethod
    def check_saved_size(tensor: str, found: int, unit: str, name: str, given: object) -> None:
        """Refuse a saved option `name` = `given` (None: not saved) other than `found`, the
        size the checkpoint's `tensor` holds (in `unit`s), for `from_saved`."""
        if given not in (None, found):
            raise ValueError(f"the checkpoint's {tensor} holds {found} {unit}, its settings say "
                             f"{name}={given}")  # fmt: skip

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> TokenEmbedding:
        """The embedding that the saved `state` (its keys under `prefix`) loads into, built
        from the saved options: what the options cannot rebuild (a byte table, an id order)
        is read from the state. The caller loads the weights."""
        return cls.build(vocab_size, dim, **options)

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(
                f"vocab size and dim must be positive, got {num_embeddings} and {embedding_dim}"
            )
        if padding_idx is not None and not 0 <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is outside [0, {num_embeddings})")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self._eval_table: tuple[tuple, Tensor] | None = None  # (state key, V x d table)

    # -- to implement -------------------------------------------------------------------
    def _embed(self, ids: Tensor) -> Tensor:
        """(N,) valid ids -> (N, d)."""
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Draw the trainable parameters again from the kind's own initialization, the one
        its constructor made (from the kind's `seed` when one is given: the same values).

        A host model's `self.apply(_init_weights)` reaches the `nn.Linear` and `nn.Embedding`
        modules inside an embedding (a Kronecker projection, a Fourier refinement, a learned
        table) and replaces their initialization by its own: call `reset_parameters()` after
        it, or skip petra modules in `_init_weights`.
        """
        raise NotImplementedError

    # -- tying ----------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if name == "weight":
            self._set_weight(value)
        else:
            super().__setattr__(name, value)

    def _set_weight(self, value) -> None:
        """`emb.weight = p`, nanoGPT's tying line `wte.weight = lm_head.weight`: refused, since
        it would only register a parameter that no output depends on (kinds with a `V x d`
        table of their own override it)."""
        raise TypeError(
            f"a {type(self).__name__}({self.extra_repr()}) has no V x d weight to share with "
            "an output head: assigning .weight would add a parameter that nothing uses. Tie "
            "the head through the embedding's table instead, logits = h @ emb.table().T, and "
            "drop the line that sets .weight"
        )

    # -- the contract -------------------------------------------------------------------
    def forward(self, ids: Tensor, byte_overrides: Mapping | None = None) -> Tensor:
        """Embed token ids, as `nn.Embedding` does; with `byte_overrides`, raw bytes in place
        of some of them (a kind that `embeds_bytes` only).

        Args:
            ids: token ids of any shape and any integer dtype.
            byte_overrides: maps positions of `ids` (an int for 1-D ids, else a tuple of
                indices) to byte strings embedded in place of those tokens (`embed_bytes`:
                forced out-of-vocabulary input), or None.

        Returns:
            One d-vector per id; the padding id's is zero (an overridden position's is the
            row of its bytes).

        Raises:
            TypeError: if `ids` is not a tensor or not of an integer dtype, or an override
                position is not an int or a tuple of ints.
            ValueError: if an id lies outside `[0, V)` (unless `validate` is False), an
                override position outside `ids`, or the kind does not `embeds_bytes`.

        Shapes:
            - ids: `(...)`
            - output: `(..., d)`
        """
        flat = long_ids(ids).reshape(-1)  # the dtype check costs nothing: always made
        if self.validate:
            check_id_range(flat, self.num_embeddings, ids.dtype)
        if not byte_overrides:
            return self._rows(flat).reshape(*ids.shape, self.embedding_dim)
        where = [flat_position(key, ids.shape) for key in byte_overrides]
        positions = torch.tensor(where, dtype=torch.long, device=flat.device)
        rows = self._rows_with_bytes(flat, positions, list(byte_overrides.values()))
        return rows.reshape(*ids.shape, self.embedding_dim)

    def embed_bytes(self, pieces: Sequence[bytes]) -> Tensor:
        """The rows of arbitrary byte strings, (N, d), each the row a token with those bytes
        would have (forced out-of-vocabulary input): a kind that `embeds_bytes` only; the
        others raise `ValueError`."""
        raise ValueError(
            f"a {self.kind} embedding cannot embed raw bytes: its rows are not computed from a "
            "token's bytes (byte overrides need a kind whose class sets embeds_bytes)"
        )

    def _rows_with_bytes(self, flat: Tensor, positions: Tensor, pieces: list[bytes]) -> Tensor:
        """(N,) valid ids -> (N, d) as `_rows`, the rows at `positions` those of `pieces`
        (`embed_bytes`, which refuses for a kind that does not `embeds_bytes`), not zeroed
        at a padding id."""
        new = self.embed_bytes(pieces)
        return self._rows(flat).index_copy(0, positions, new)

    def _rows(self, flat: Tensor) -> Tensor:
        """(N,) valid ids -> (N, d), padding zeroed: from the evaluation table, per distinct
        id, or row by row."""
        if self.computes_rows and self._use_eval_table():
            return self.eval_table().index_select(0, flat)
        if self.computes_rows and self.dedupe and not torch.compiler.is_compiling():
            unique, inverse = torch.unique(flat, return_inverse=True)
            return self._zero_padding(self._embed(unique), unique).index_select(0, inverse)
        return self._zero_padding(self._embed(flat), flat)

    def _use_eval_table(self) -> bool:
        """Evaluation under no_grad, not under autocast (whose dtype a kept table would
        carry out of it) and not while compiling."""
        return (
            not self.training
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled(self._device().type)
            and not torch.compiler.is_compiling()
        )

    def _state_key(self) -> tuple:
        """What identifies the current parameters and buffers: each tensor's storage, dtype,
        device and version counter (bumped by every in-place change; inference tensors have
        none, and cannot change outside inference mode), and the padding id."""
        return (self.padding_idx,) + tuple(
            (t.data_ptr(), t.dtype, t.device, 0 if t.is_inference() else t._version)
            for t in (*self.parameters(), *self.buffers())
        )

    def train(self, mode: bool = True) -> TokenEmbedding:
        """As `nn.Module.train`; entering training drops the evaluation table (`eval()` keeps
        it, so that repeated generation reuses it)."""
        if mode:
            self._eval_table = None
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):
        self._eval_table = None  # a dtype or device move: the old table is not kept alive
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:
        """Pickles and deep copies leave the evaluation table behind: it is rebuilt on use."""
        return {**super().__getstate__(), "_eval_table": None}

    @torch.no_grad()
    def eval_table(self) -> Tensor:
        """`table()` as of the current parameters, computed once and kept until they change
        (an in-place change, `load_state_dict`, a move) or training starts. A write through
        `.data` (as EMA-style updates do) bypasses the version counters: call
        `clear_eval_table()` after it."""
        key = self._state_key()
        if self._eval_table is None or self._eval_table[0] != key:
            self._eval_table = None  # free the stale table before building the new one
            self._eval_table = (key, self.table())
        return self._eval_table[1]

    def head_table(self) -> Tensor:
        """`table()` for a tied output head (logits = h E^T): the kept evaluation table where
        it applies (`eval()` under no_grad, no autocast, not compiling), so that a head
        called once per generated token does not rebuild V x d rows each time; otherwise
        `table()`, with its autograd graph in training."""
        return self.eval_table() if self._use_eval_table() else self.table()

    def clear_eval_table(self) -> None:
        """Drop the kept evaluation table (after changing parameters through `.data`)."""
        self._eval_table = None

    def _zero_padding(self, out: Tensor, flat_ids: Tensor) -> Tensor:
        if self.padding_idx is None:
            return out
        return out.masked_fill((flat_ids == self.padding_idx).unsqueeze(-1), 0.0)

    def table(self, chunk_size: int = 8192) -> Tensor:
        """All V embeddings, computed in chunks; differentiable.

        A tied output head `logits = h @ table().T` trains the parameters that produce it.

        Args:
            chunk_size: ids embedded per chunk (bounds the temporaries of computed kinds).

        Returns:
            Row v is the embedding of id v; the padding row is zero.

        Shapes:
            - output: `(V, d)`
        """
        device = self._device()
        chunks = [
            torch.arange(start, min(start + chunk_size, self.num_embeddings), device=device)
            for start in range(0, self.num_embeddings, chunk_size)
        ]
        return torch.cat([self._zero_padding(self._embed(ids), ids) for ids in chunks], dim=0)

    @torch.no_grad()
    def to_embedding(self) -> nn.Embedding:
        """A frozen `nn.Embedding` whose outputs equal this module's current outputs."""
        weight = self.table().detach().clone()
        return nn.Embedding.from_pretrained(weight, freeze=True, padding_idx=self.padding_idx)

    @torch.no_grad()
    def scale_(self, factor: float) -> TokenEmbedding:
        """Multiply every output by `factor` exactly, through the kind's own trained part (no
        parameter is added): afterwards E'(v) = factor * E(v) for every id. `petra.hf` uses it
        to start a computed embedding at a pretrained table's row norms. Returns self."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"the scale factor must be a positive finite number, got {factor}")
        self._scale(float(factor))
        return self

    def _scale(self, factor: float) -> None:
        raise ValueError(f"a {self.kind} embedding cannot scale its outputs exactly")

    def param_report(self) -> ParamReport:
        """What this embedding costs: trainable parameters and buffer bytes, next to the
        learned `V x d` table (`ParamReport.learned_equivalent`)."""
        return ParamReport(
            kind=self.kind,
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            trainable_params=sum(p.numel() for p in self.parameters() if p.requires_grad),
            buffer_bytes=sum(b.numel() * b.element_size() for b in self.buffers()),
            learned_equivalent=self.num_embeddings * self.embedding_dim,
            stored_bytes=sum(t.numel() * t.element_size() for t in self.state_dict().values()),
        )

    def trained_matrix(self) -> Tensor | None:
        """The kind's main trained matrix, in the logical layout of a map's weight: rows are
        outputs (`Linear` weights are (out, in), the learned table is (V, d)). It is what
        `weight_norms` follows during training; None if the kind has none."""
        return None

    @torch.no_grad()
    def weight_norms(self) -> dict[str, float]:
        """Norms of the embedding, to follow drift during training (float32):

        - `row_norm_mean` = (1/V) sum_v ||E(v)||_2: the mean norm of the rows of `table()`;
        and, for M = `trained_matrix()` with rows m_1..m_r (r x c),
        - `matrix_row_norm_mean` = (1/r) sum_i ||m_i||_2, the mean L2 norm of M's output rows:
          for the Kronecker projection its d rows of length D (the paper's "projection norm
          near 1.0": with W_ij ~ N(0, 1/D), E ||m_i||^2 = D * (1/D) = 1, whatever d is), for
          a Fourier linear refinement the d rows of its d x d weight, for a learned table its
          V rows (then equal to `row_norm_mean`);
        - `matrix_fro` = ||M||_F = sqrt(sum_i ||m_i||^2): about sqrt(r) times the row norm;
        - `matrix_spectral` = sigma_max(M), by power iteration.
        """
        norms = {"row_norm_mean": self.table().float().norm(dim=-1).mean().item()}
        matrix = self.trained_matrix()
        if matrix is not None:
            matrix = matrix.detach().float()
            norms["matrix_row_norm_mean"] = matrix.norm(dim=-1).mean().item()
            norms["matrix_fro"] = matrix.norm().item()
            norms["matrix_spectral"] = spectral_norm(matrix)
        return norms

    def _device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class TokenBytesEmbedding(TokenEmbedding):
    """A kind built from each token's bytes by two constructors of its own:

    - `from_tokenizer(tokenizer, dim, **options)`, whose keyword-only arguments are the
      kind's options (its `builder`);
    - `from_token_bytes(pieces, dim, **options, fingerprint=...)`, from one byte string per
      id and the sha256 of the tokenizer they came from;

    so that `build` takes exactly one of `tokenizer=` or `token_bytes=` and checks the
    tokenizer's size against V.
    """

    needs_tokenizer = True

    @classmethod
    def builder(cls) -> Callable[..., TokenEmbedding]:
        """`from_tokenizer`, whose keyword-only arguments are the options."""
        return cls.from_tokenizer

    @classmethod
    def build(cls, vocab_size: int, dim: int, **options) -> TokenEmbedding:
        """From exactly one of `tokenizer=` (`from_tokenizer`) or `token_bytes=` (one byte
        string per id, `from_token_bytes`, which also takes `fingerprint=`); the tokenizer's
        size must be `vocab_size`."""
        tokenizer, pieces = cls.token_source(options)
        if tokenizer is not None:
            embedding = cls.from_tokenizer(tokenizer, dim, **options)
        else:
            embedding = cls.from_token_bytes(pieces, dim, **options)
        cls.check_vocab_size(embedding.num_embeddings, vocab_size)
        return embedding

    @classmethod
    def from_tokenizer(cls, tokenizer, dim: int, **options) -> TokenEmbedding:
        raise NotImplementedError

    @classmethod
    def from_token_bytes(cls, pieces: Sequence[bytes], dim: int, **options) -> TokenEmbedding:
        raise NotImplementedError
