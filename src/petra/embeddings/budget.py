"""Equal parameter budgets: each kind sized by its own knob to land closest to a budget of
trainable embedding parameters without exceeding it.

| kind      | knob (options it sets)           | trainable parameters                        |
|-----------|----------------------------------|---------------------------------------------|
| learned   | factor_dim e, or the full table  | e (V + d); V d                              |
| fourier   | refine linear, or geglu width h  | d^2 (+ d: bias); 3 d h (+ d: final_norm)    |
| kronecker | rank r, or the full projection   | r (256 P + d); 256 P d                      |
| qr        | collisions c                     | (ceil(V / c) + c) d (concat: half widths)   |
| hash      | buckets B                        | B d + k V                                   |
| dhe       | hidden h                         | k h + h + (L - 1)(h^2 + h) + h d + d        |
| tt        | rank r                           | sum_k r_{k-1} v_k d_k r_k                   |

A kind "reaches" a budget when its best size lies in [(1 - tolerance) budget, budget]; the
options the knob does not set (Kronecker's pos_dim, QR's operation, DHE's layers...) keep
their given or default values and enter the count.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from petra.embeddings.dhe import dhe_params
from petra.embeddings.hashed import hash_params
from petra.embeddings.kronecker import kronecker_params
from petra.embeddings.qr import qr_params
from petra.embeddings.registry import constructor
from petra.embeddings.tensor_train import tt_params, tt_ranks

# the options each kind's knob sets: given beside a budget they would be overwritten
KNOBS = {
    "learned": ("factor_dim",),
    "fourier": ("refine", "expansion"),
    "kronecker": ("rank",),
    "qr": ("collisions",),
    "hash": ("buckets",),
    "dhe": ("hidden",),
    "tt": ("rank",),
}


MAX_BUDGET = 10**12  # far beyond any embedding table, and a bound on the solver's search


@dataclass(frozen=True)
class Knob:
    """One layout of a kind: `setting(value)` for each value, in order of growing `count`
    when `monotone` (then the search stops at the first value over the budget)."""

    values: Sequence[int]
    count: Callable[[int], int]
    setting: Callable[[int], dict]
    monotone: bool = True


@dataclass(frozen=True)
class Sizing:
    """The options that size `kind` for `budget`, and the parameters they give."""

    kind: str
    options: dict
    params: int
    budget: int

    def describe(self) -> str:
        share = 100 * self.params / self.budget
        return (
            f"{self.kind}: {format_sizing(self.options)} -> {self.params:,} parameters "
            f"({share:.1f}% of budget)"
        )


def format_sizing(options: dict) -> str:
    """`factor_dim=2`, `refine=geglu, expansion=5.33203`, or `full size` (no knob set)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in options.items()) or "full size"  # fmt: skip


def _option(kind: str, options: dict, name: str):
    """The value of option `name`: given, or the kind's constructor default."""
    if name in options:
        return options[name]
    return inspect.signature(constructor(kind)).parameters[name].default


def _layouts(kind: str, vocab: int, dim: int, budget: int, options: dict) -> list[Knob]:
    o = lambda name: _option(kind, options, name)  # noqa: E731
    if kind == "learned":
        return [
            Knob([0], lambda _: vocab * dim, lambda _: {}),
            Knob(  # only the factorizations smaller than the full table
                range(1, (vocab * dim - 1) // (vocab + dim) + 1),
                lambda e: e * (vocab + dim),
                lambda e: {"factor_dim": e},
            ),
        ]
    if kind == "fourier":
        norm = dim if o("final_norm") else 0
        bias = dim if o("refine_bias") else 0  # a bias exists on the linear refinement only
        linear = Knob([0], lambda _: dim * dim + bias + norm, lambda _: {"refine": "linear"})
        geglu = Knob(
            range(1, max(budget, 0) // (3 * dim) + 2),
            lambda h: 3 * dim * h + norm,
            lambda h: {"refine": "geglu", "expansion": h / dim},
        )
        return [linear] if bias else [linear, geglu]
    if kind == "kronecker":
        pos_dim = o("pos_dim")
        full = kronecker_params(dim, pos_dim)
        return [
            Knob([0], lambda _: full, lambda _: {}),
            Knob(  # only the factorizations smaller than the full projection
                range(1, (full - 1) // (256 * pos_dim + dim) + 1),
                lambda r: kronecker_params(dim, pos_dim, r),
                lambda r: {"rank": r},
            ),
        ]
    if kind == "qr":
        operation = o("operation")
        return [
            Knob(  # every c: ceil(V / c) + c is not symmetric in c and V / c
                range(1, vocab + 1),
                lambda c: qr_params(vocab, dim, c, operation),
                lambda c: {"collisions": c},
                monotone=False,
            )
        ]
    if kind == "hash":
        k = o("num_hashes")
        return [
            Knob(
                range(1, max(budget - vocab * k, 0) // dim + 2),
                lambda b: hash_params(vocab, dim, b, k),
                lambda b: {"buckets": b},
            )
        ]
    if kind == "dhe":
        layers, code = o("layers"), o("code_dim")
        return [
            Knob(
                range(1, max(budget, 0) // (code + dim + 1) + 2),
                lambda h: dhe_params(dim, h, layers, code),
                lambda h: {"hidden": h},
            )
        ]
    if kind == "tt":
        cores = o("cores")
        largest = max(tt_ranks(vocab, dim, vocab * dim, cores))
        return [
            Knob(
                range(1, largest + 1),
                lambda r: tt_params(vocab, dim, r, cores),
                lambda r: {"rank": r},
            )
        ]
    raise ValueError(f"no budget sizing for embedding kind {kind!r}; choose one of {sorted(KNOBS)}")


class BudgetUnreachable(ValueError):
    """No size of the kind lies within the tolerance below the budget."""


def _search(knob: Knob, budget: int) -> tuple[int | None, int, int]:
    """(the knob value whose count is largest without exceeding the budget, or None; the
    smallest and the largest count of the knob). A monotone knob is bisected (its range may
    be long), another scanned."""
    values = knob.values
    if not knob.monotone:
        counts = [knob.count(v) for v in values]
        fitting = [(c, v) for c, v in zip(counts, values, strict=True) if c <= budget]
        return max(fitting)[1] if fitting else None, min(counts), max(counts)
    low, high = 0, len(values)  # the answer's index + 1 lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if knob.count(values[middle - 1]) <= budget:
            low = middle
        else:
            high = middle - 1
    fitting = values[low - 1] if low else None
    return fitting, knob.count(values[0]), knob.count(values[-1])


def size_for_budget(
    kind: str, vocab_size: int, dim: int, budget: int, *, tolerance: float = 0.1, **options
) -> Sizing:
    """The size of `kind` closest to `budget` trainable parameters without exceeding it.

    Each kind has one knob (the table in `petra.embeddings.budget`); the other options keep
    their given or default values and enter the count.

    Args:
        kind: one of `KINDS`.
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        budget: the trainable embedding parameters allowed (see `parse_budget` for "65k").
        tolerance: the size must land in `[(1 - tolerance) budget, budget]`.
        **options: the kind's other options (Kronecker's `pos_dim`, QR's `operation`...),
            not its knob.

    Returns:
        The knob's setting (`Sizing.options`, to pass to `build_embedding`) and the exact
        parameter count it gives.

    Raises:
        ValueError: for a budget outside `[1, MAX_BUDGET]`, a tolerance outside [0, 1), or
            a knob given among `options`.
        BudgetUnreachable: if no size lies within `tolerance` below the budget (the message
            names the smallest and largest sizes the kind can take).
    """
    if not (isinstance(budget, int) and 0 < budget <= MAX_BUDGET):
        raise ValueError(
            f"the budget must be a number of parameters in [1, {MAX_BUDGET:,}], got {budget!r}"
        )
    if not 0 <= tolerance < 1:
        raise ValueError(f"the budget tolerance must lie in [0, 1), got {tolerance}")
    given = [name for name in KNOBS.get(kind, ()) if name in options]
    if given:
        raise ValueError(f"the budget sets {kind}'s {', '.join(given)}: do not set it as well")
    best: tuple[int, dict] | None = None
    smallest = largest = None
    for knob in _layouts(kind, vocab_size, dim, budget, options):
        fitting, low, high = _search(knob, budget)
        smallest = low if smallest is None else min(smallest, low)
        largest = high if largest is None else max(largest, high)
        if fitting is not None and (best is None or knob.count(fitting) > best[0]):
            best = (knob.count(fitting), knob.setting(fitting))
    if best is None or best[0] < (1 - tolerance) * budget:
        fixed = ", ".join(f"{k}={v}" for k, v in options.items() if k != "padding_idx")
        at = f"V={vocab_size:,}, d={dim}" + (f", {fixed}" if fixed else "")
        reason = (
            f"its smallest size is {smallest:,} parameters"
            if best is None
            else f"its sizes jump from {best[0]:,} to more than the budget"
            if largest > budget
            else f"its largest size is {largest:,} parameters"
        )
        if best is None and kind == "qr" and _option(kind, options, "operation") != "concat":
            reason += " (operation='concat', two tables of half the width, needs about half)"
        raise BudgetUnreachable(
            f"{kind} cannot reach a budget of {budget:,} embedding parameters "
            f"(within {tolerance:.0%} below it) at {at}: {reason}"
        )
    return Sizing(kind=kind, options=best[1], params=best[0], budget=budget)


def embedding_params(kind: str, vocab_size: int, dim: int, **options) -> int:
    """Trainable parameters of `build_embedding(kind, vocab_size, dim, **options)`, by the
    closed forms of the table above (the options not given at their constructor defaults),
    without building anything: what a size would need, known before it is allocated."""
    o = lambda name: _option(kind, options, name)  # noqa: E731
    if kind == "learned":
        factor = o("factor_dim")
        return vocab_size * dim if factor is None else factor * (vocab_size + dim)
    if kind == "fourier":
        norm = dim if o("final_norm") else 0
        if o("refine") == "linear":
            return dim * dim + (dim if o("refine_bias") else 0) + norm
        if o("refine") == "geglu":
            expansion = 4.0 if o("expansion") is None else o("expansion")
            return 3 * dim * round(expansion * dim) + norm
        return norm
    if kind == "kronecker":
        return kronecker_params(dim, o("pos_dim"), o("rank"))
    if kind == "qr":
        collisions = o("collisions")
        collisions = math.isqrt(vocab_size - 1) + 1 if collisions is None else collisions
        return qr_params(vocab_size, dim, collisions, o("operation"))
    if kind == "hash":
        buckets = o("buckets")
        buckets = math.ceil(vocab_size / 10) if buckets is None else buckets
        return hash_params(vocab_size, dim, buckets, o("num_hashes"))
    if kind == "dhe":
        return dhe_params(dim, o("hidden"), o("layers"), o("code_dim"))
    if kind == "tt":
        return tt_params(vocab_size, dim, o("rank"), o("cores"))
    raise ValueError(
        f"no parameter count for embedding kind {kind!r}; choose one of {sorted(KNOBS)}"
    )


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(params: int, what: str, fix: str = "give a smaller size") -> None:
    """Refuse `params` float32 parameters that would not fit in this machine's memory, before
    anything is allocated: `what` names them (e.g. "--budget 100,000,000,000"), `fix` says
    what to do."""
    memory = memory_bytes()
    if memory is not None and 4 * params > memory:
        raise ValueError(
            f"{what}: {params:,} parameters would need {4 * params / 2**30:,.1f} GiB as "
            f"float32, more than this machine's memory ({memory / 2**30:,.1f} GiB); {fix}"
        )


def parse_budget(text: str) -> int:
    """`"65536"`, `"65k"`, `"1M"`, `"1.5M"` (k = 10^3, M = 10^6) -> a parameter count."""
    scale = {"k": 10**3, "m": 10**6}.get(text.strip()[-1:].lower(), 1)
    number = text.strip()[:-1] if scale > 1 else text.strip()
    try:  # decimal, not float: 8.19 * 1000 is 8189.999... in floating point
        value = Decimal(number) * scale
    except ArithmeticError:  # not a number (InvalidOperation), or out of Decimal's range
        raise ValueError(
            f"a budget is a number of parameters such as 65536, 65k or 1M, got {text!r}"
        ) from None
    if not (value.is_finite() and 1 <= value <= MAX_BUDGET and value == int(value)):
        raise ValueError(
            f"a budget must be a whole number of parameters in [1, {MAX_BUDGET:,}], got {text!r}"
        )
    return int(value)
