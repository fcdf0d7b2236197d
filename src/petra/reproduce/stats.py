"""The statistics behind a reproduction verdict: seeds paired between two arms, a Student-t
interval on the mean difference, and the rule that turns that interval into a verdict.

For arm a (the paper's method) and arm b (its baseline), run with the same seeds, the paired
difference of seed i is d_i = a_i - b_i, or 100 * (a_i / b_i - 1) (percent) for a relative
comparison. Over n seeds, with mean m and sample standard deviation s (n - 1 in the
denominator), the level-L interval is

    m +- t_{(1 + L) / 2, n - 1} * s / sqrt(n)

(Student, 1908). One seed gives a mean and no interval, and so never a verdict other than
inconclusive.
"""

from __future__ import annotations

import math
import statistics

from scipy.stats import t as student_t

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable: b at its floor"

BETTER = ("higher", "lower")
TESTS = ("superior", "non_inferior", "inferior", "small_drop")
MARGIN_TESTS = ("non_inferior", "small_drop")  # the tests that take a margin m > 0

SAME = "same as the paper"
OPPOSITE = "opposite to the paper"
UNRESOLVED = "not resolved"
PAPER_INSIDE = "the paper's a − b inside the interval"
PAPER_OUTSIDE = "the paper's a − b outside the interval"

VERDICT_RULE = (
    "Each comparison is paired by seed: the difference is a − b, where arm a is the paper's "
    "method and arm b its baseline (in percent of b for relative comparisons), and its 95% "
    "interval is the Student-t interval on the mean of the per-seed differences. For a "
    "superiority claim the claim holds if the whole interval lies on a's better side of 0 "
    "(above 0 when higher is better, below 0 when lower is better), does not hold if the "
    "whole interval lies on the worse side of 0, and is inconclusive otherwise. For a parity "
    '(non-inferiority) claim with margin m, "a is no worse than b by more than m", it holds '
    "if the whole interval is better than −m (lower bound above −m when higher is better, "
    "upper bound below +m when lower is better), does not hold if the whole interval is worse "
    "than that (upper bound below −m, or lower bound above +m), and is inconclusive otherwise. "
    "For a claim that a trails b (the paper's own result puts a behind b), it holds if the "
    "whole interval lies on a's worse side of 0, does not hold if it lies on the better side, "
    "and is inconclusive otherwise. "
    'For a "small drop" claim with margin m, "a trails b, by less than m", it holds if '
    "the whole interval lies strictly inside the band between 0 and m on a's worse side "
    "(between −m and 0 when higher is better, between 0 and +m when lower is better), "
    "does not hold if the whole interval lies beyond one end of that band (a ahead of b: "
    "no drop; or a behind b by more than m: a drop that is not small), and is "
    "inconclusive otherwise (an interval that reaches into the band and out of it). "
    "A single seed gives no interval, so its verdict is always inconclusive. When every "
    "seed gives the same difference the interval has width 0, and the verdict is marked "
    '"(every seed the same)": such an interval measures no spread over seeds (a metric at '
    "its floor in both arms, or a quantity the seed does not change), not certainty. A "
    "comparison whose metric has a floor (a value arm b cannot go below, such as 0 % of "
    'neighbours) is "not testable: b at its floor" when b sits there in every seed: which side '
    "of b arm a lies on then says nothing about b's behaviour, and no verdict is given. A "
    "contrast, (a − b) − (c − d), is tested as a comparison on those per-seed values. From 5 "
    "paired seeds, each seed is left out in turn: a verdict that another would replace "
    'without one seed says so beside it ("without seed 3: inconclusive"): it rests on that '
    "seed (a joint verdict is not marked so: its parts' verdicts are shown beside it)."
)
NO_SPREAD = " (every seed the same)"


def contrast_problem(comparison: dict) -> str | None:
    """What is wrong with a comparison's contrast (`minus`: the arms c, d of the c - d
    subtracted from a - b), or None: two arm names, other than each other and than (a, b)
    (either would test a - b itself, or nothing), of a comparison neither relative nor with
    a floor."""
    minus = comparison.get("minus")
    if minus is None:
        return None
    if not (isinstance(minus, (list, tuple)) and len(minus) == 2
            and all(isinstance(label, str) for label in minus)):  # fmt: skip
        return "its minus must name two arms (c, d)"
    if minus[0] == minus[1] or tuple(minus) == (comparison["a"], comparison["b"]):
        return f"its minus {list(minus)} must name two arms, other than a and b in that order"
    if comparison.get("relative") or comparison.get("floor") is not None:
        return "a contrast of differences is neither relative nor has a floor"
    return None


def paired_differences(a: list[float], b: list[float], relative: bool) -> list[float]:
    """Per-seed a_i - b_i, or 100 * (a_i / b_i - 1) (percent of b) when `relative`."""
    if len(a) != len(b):
        raise ValueError(
            f"paired differences need one value of each arm per seed: got {len(a)} values "
            f"for a and {len(b)} for b; pass the values of the seeds both arms have"
        )
    if not relative:
        return [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if any(not float(y) > 0 for y in b):  # a negative baseline would flip the sign
        raise ValueError(
            f"a relative difference is a percentage of the baseline, which must be positive; "
            f"got {list(b)}: compare this metric with relative=False"
        )
    return [100.0 * (float(x) / float(y) - 1.0) for x, y in zip(a, b, strict=True)]


def interval(values: list[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """(mean, low, high): the Student-t interval on the mean of `values` at `level`;
    (mean, None, None) for a single value, which has no interval."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("an interval needs at least one value; got none")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"an interval needs finite values; got {values}: leave out the seeds whose value "
            "is NaN or infinite (e.g. a run that diverged)"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level}")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return mean, None, None
    quantile = float(student_t.ppf((1.0 + level) / 2.0, n - 1))
    half = quantile * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def detectable_difference(sd: float, n: int, level: float = 0.95, power: float = 0.8) -> float:
    """How far a true mean difference must lie from a bound (0, or a margin) for the level-L
    interval on the mean of n values, at sample standard deviation `sd`, to clear that bound
    with probability `power`: (t_{(1 + L) / 2, n - 1} + t_{power, n - 1}) sd / sqrt(n), the
    usual t approximation of a paired design's power. The interval's own half-width is the
    first term alone: its precision, not what it detects."""
    if n < 2:
        raise ValueError(f"need n >= 2 values for an interval; got {n}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie strictly between 0 and 1 (e.g. 0.8); got {power}")
    quantiles = student_t.ppf((1.0 + level) / 2.0, n - 1) + student_t.ppf(power, n - 1)
    return float(quantiles) * sd / math.sqrt(n)


def repeats_for_power(sd: float, distance: float, level: float = 0.95, power: float = 0.8) -> int:
    """The fewest values n >= 2 whose `detectable_difference` at `sd` is at most `distance`:
    how many repeats show, with probability `power`, a bound that the true difference lies
    `distance` from. The search starts at the normal approximation ((z_L + z_power) sd /
    distance)^2, a lower bound since each t quantile exceeds its normal one."""
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite number >= 0; got {sd}")
    if not (math.isfinite(distance) and distance > 0):
        raise ValueError(f"distance must be a finite number > 0; got {distance}")
    z = student_t.ppf((1.0 + level) / 2.0, math.inf) + student_t.ppf(power, math.inf)
    n = max(2, math.floor((float(z) * sd / distance) ** 2))
    while detectable_difference(sd, n, level, power) > distance:
        n += 1
    return n


def verdict(
    low: float | None,
    high: float | None,
    better: str,
    test: str,
    margin: float | None = None,
) -> str:
    """The verdict on the interval [low, high] of a - b by `VERDICT_RULE`: "holds", "does not
    hold" or "inconclusive". `better` says which sign favours a ("higher" or "lower"); `test` is
    "superior" (against 0, no margin), "non_inferior" (against the margin m > 0, in the
    units of the difference), "inferior" (a trails b: against 0, no margin) or "small_drop"
    (a trails b by less than m > 0: against both 0 and the margin).

    "small_drop", written for higher-is-better (for lower-is-better the same rule applies to
    the mirrored interval [-high, -low]): with the band B = (-m, 0) of a small drop,

        holds           if -m < low and high < 0      (the whole interval inside B)
        does not hold   if high < -m or low > 0       (the whole interval beyond one end of B:
                                                       a drop larger than m, or no drop)
        inconclusive    otherwise                     (the interval reaches out of B, or
                                                       touches one of its ends)

    so a holding small drop is also a holding "inferior" and "non_inferior" (margin m) verdict,
    and its "does not hold" says either that a is ahead of b or that it trails by more than m
    (the interval's side of the band says which)."""
    if better not in BETTER:
        raise ValueError(f"better must be one of {BETTER}; got {better!r}")
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}; got {test!r}")
    if test not in MARGIN_TESTS and margin is not None:
        raise ValueError(
            f"the {test} test compares against 0 and takes no margin; got margin={margin} "
            "(use test='non_inferior' for a parity claim with a margin, 'small_drop' for a "
            "drop smaller than a margin)"
        )
    if test in MARGIN_TESTS and (margin is None or not (math.isfinite(margin) and margin > 0)):
        what = {
            "non_inferior": "a non-inferiority test needs a margin m > 0 (a is no worse than b "
            "by more than m)",
            "small_drop": "a small-drop test needs a margin m > 0 (a trails b by less than m)",
        }[test]
        raise ValueError(f"{what}, finite; got margin={margin}")
    if test == "inferior":  # a trails b: the superiority rule, read the other way
        return verdict(low, high, {"higher": "lower", "lower": "higher"}[better], "superior")
    if (low is None) != (high is None):
        raise ValueError(f"an interval has both ends or neither; got low={low}, high={high}")
    if low is None or high is None:
        return INCONCLUSIVE  # one seed: no interval
    if low > high:
        raise ValueError(f"the interval's low end exceeds its high end: [{low}, {high}]")
    if test == "small_drop":
        if better == "lower":  # a's worse side is above 0: mirror it below
            low, high = -high, -low
        if -margin < low and high < 0:
            return HOLDS
        if high < -margin or low > 0:
            return DOES_NOT_HOLD
        return INCONCLUSIVE
    bound = threshold(better, test, margin)
    if better == "higher":
        if low > bound:
            return HOLDS
        if high < bound:
            return DOES_NOT_HOLD
    else:
        if high < bound:
            return HOLDS
        if low > bound:
            return DOES_NOT_HOLD
    return INCONCLUSIVE


def threshold(better: str, test: str, margin: float | None = None) -> float:
    """The one bound whose side the interval of a - b must lie on for `verdict`: 0 for
    "superior" and "inferior" (a ahead of b, or behind it), -m (higher is better) or +m
    (lower is better) for "non_inferior" (a no worse than b by more than m). A "small_drop"
    test has two (0 and the margin): refused."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}; got {test!r}")
    if test == "small_drop":
        raise ValueError("a small-drop test has two bounds (0 and the margin), not one")
    if test != "non_inferior":
        return 0.0
    if margin is None:
        raise ValueError("a non-inferiority test needs a margin m > 0")
    return -float(margin) if better == "higher" else float(margin)


def direction(
    paper_difference: float | None, mean: float | None, low: float | None, high: float | None
) -> str:
    """Whether petra's a - b has the sign of the paper's: `SAME` or `OPPOSITE` when the
    interval (or, with one seed, the mean) lies on one side of 0, `UNRESOLVED` when the
    interval spans 0, "–" when the paper gives no difference or petra has none; with an
    interval, also whether the paper's own a - b lies inside it (`PAPER_INSIDE`) or not
    (`PAPER_OUTSIDE`): a verdict against a margin can be inconclusive while petra's interval
    admits the paper's a - b."""
    if paper_difference is None or mean is None or paper_difference == 0:
        return "–"
    if low is None or high is None:
        if mean == 0:
            return UNRESOLVED
        side = SAME if (mean > 0) == (paper_difference > 0) else OPPOSITE
        return f"{side} (one seed)"
    side = (
        UNRESOLVED
        if low <= 0 <= high
        else SAME
        if (mean > 0) == (paper_difference > 0)
        else OPPOSITE
    )
    return f"{side}; {PAPER_INSIDE if low <= paper_difference <= high else PAPER_OUTSIDE}"


def joint_verdict(verdicts: list[str]) -> str:
    """The verdict on a claim that holds only where each of its comparisons holds (a direction
    that must show on two pair sets): holds if every one holds, does not hold if any does
    not hold, inconclusive otherwise (a verdict's marks, such as `NO_SPREAD`, are read past)."""
    if any(v.startswith(DOES_NOT_HOLD) for v in verdicts):
        return DOES_NOT_HOLD
    if verdicts and all(v.startswith(HOLDS) for v in verdicts):
        return HOLDS
    return INCONCLUSIVE
