"""Equal parameter budgets: each kind sized by its own knob to land closest to a budget of
trainable embedding parameters without exceeding it. A kind states its knob and the sizes it
gives (`budget_knob`, `budget_layouts`) and its closed-form count (`params_for`) on its class
(e.g. `LearnedEmbedding.params_for`: V d, or e (V + d) factorized). A kind with no knob
(`quantized`, whose codes are stored, not trained) is refused with its reason.

A kind "reaches" a budget when its best size lies in [(1 - tolerance) budget, budget]; the
options the knob does not set (Kronecker's pos_dim, QR's operation, DHE's layers...) keep
their given or default values and enter the count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from petra.checks import key_values
from petra.embeddings.base import Knob, TokenEmbedding
from petra.embeddings.registry import embedding_class

TOLERANCE = 0.1  # by default, a kind's best size may lie this fraction below the budget
MAX_BUDGET = 10**12  # far beyond any embedding table, and a bound on the solver's search


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
    return key_values(options, empty="full size", floats="g")


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
    kind: str | type[TokenEmbedding],
    vocab_size: int,
    dim: int,
    budget: int,
    *,
    tolerance: float = TOLERANCE,
    **options,
) -> Sizing:
    """The size of `kind` closest to `budget` trainable parameters without exceeding it.

    Each kind has one knob (the table in `petra.embeddings.budget`); the other options keep
    their given or default values and enter the count.

    Args:
        kind: one of `kinds()`, or a kind's class.
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
    kind_class = kind if isinstance(kind, type) else embedding_class(kind)
    if not issubclass(kind_class, TokenEmbedding):
        raise TypeError(f"a kind is a TokenEmbedding subclass or its name, got {kind!r}")
    kind = kind_class.kind
    given = [name for name in kind_class.budget_knob if name in options]
    if given:
        raise ValueError(f"the budget sets {kind}'s {', '.join(given)}: do not set it as well")
    best: tuple[int, dict] | None = None
    smallest = largest = None
    for knob in kind_class.budget_layouts(vocab_size, dim, budget, **options):
        fitting, low, high = _search(knob, budget)
        smallest = low if smallest is None else min(smallest, low)
        largest = high if largest is None else max(largest, high)
        if fitting is not None and (best is None or knob.count(fitting) > best[0]):
            best = (knob.count(fitting), knob.setting(fitting))
    if best is None or best[0] < (1 - tolerance) * budget:
        fixed = key_values({k: v for k, v in options.items() if k != "padding_idx"})
        at = f"V={vocab_size:,}, d={dim}" + (f", {fixed}" if fixed else "")
        reason = (
            "no budget of trainable parameters sizes it"
            if smallest is None  # a kind without a knob
            else f"its smallest size is {smallest:,} parameters"
            if best is None
            else f"its sizes jump from {best[0]:,} to more than the budget"
            if largest > budget
            else f"its largest size is {largest:,} parameters"
        )
        if best is None:
            reason += kind_class.smaller_layout_hint(options)
        raise BudgetUnreachable(
            f"{kind} cannot reach a budget of {budget:,} embedding parameters "
            f"(within {tolerance:.0%} below it) at {at}: {reason}"
        )
    return Sizing(kind=kind, options=best[1], params=best[0], budget=budget)


def embedding_params(kind: str, vocab_size: int, dim: int, **options) -> int:
    """Trainable parameters of `build_embedding(kind, vocab_size, dim, **options)`, by the
    kind's closed form (its `params_for`; the options not given at their defaults), without
    building anything: what a size would need, known before it is allocated."""
    return embedding_class(kind).params_for(vocab_size, dim, **options)


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
