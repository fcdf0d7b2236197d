"""A comparison of a results file evaluated on its stored per-seed values, and the verdicts of
joint claims: the outcomes the report formats (`report`) and the ones it reads for today's
registry entry from a file of an earlier one (`earlier_entry`), evaluated one way for both.

A comparison of arm a against arm b on a metric is paired by seed (`stats`): the seeds where
both arms hold a finite value give the differences d_i = a_i - b_i (or 100 (a_i / b_i - 1) %
when relative; of a contrast, (a_i - b_i) - (c_i - d_i), where all four arms hold one),
their mean m with its 95% Student-t interval m +- t_{0.975, n-1} s / sqrt(n), and the
verdict of that interval under the comparison's test; a joint claim holds only where
each of its comparisons holds (`stats.joint_verdict`). The results file is a dict as
`report.load_results` returns it (each arm's `per_seed`: seed -> metric -> value).
"""

from __future__ import annotations

import math

from petra.reproduce.stats import (
    INCONCLUSIVE,
    NO_SPREAD,
    NOT_TESTABLE,
    direction,
    interval,
    joint_verdict,
    paired_differences,
    verdict,
)

LEVEL = 0.95


def seed_order(result: dict) -> list[str]:
    """The claim's seeds, as the str keys of `per_seed` (the loader refuses any other key)."""
    return [str(s) for s in result["seeds"]]


def is_finite(value) -> bool:
    """Whether `value` is a number, neither NaN nor infinite (None, a missing value, is not)."""
    return value is not None and math.isfinite(value)


def metric_value(arm: dict, seed: str, metric: str) -> float | None:
    """An arm's stored value of `metric` at `seed`; None where it stored none."""
    return (arm["per_seed"].get(seed) or {}).get(metric)


def decimals(values: list) -> int:
    """Decimals for numbers of this size: 3 below 10, 2 below 100, 1 below 1000, else 0
    (sized by the finite values)."""
    size = max((abs(float(v)) for v in values if is_finite(v)), default=0.0)
    return 3 if size < 10 else 2 if size < 100 else 1 if size < 1000 else 0


def compared_arms(comparison: dict) -> list[str]:
    """The arms a comparison reads: a and b, then c and d of a contrast (`minus`)."""
    return [comparison["a"], comparison["b"], *(comparison.get("minus") or ())]


# from this many paired seeds, each is left out in turn to see whether the verdict rests on it
LEAVE_ONE_OUT_FROM = 5


def evaluate(result: dict, comparison: dict, leave_one_out: bool = True) -> dict:
    """One comparison, paired by seed: the seeds used, the seeds dropped (with the arms that
    lack a value there, or whose value is not finite: NaN or infinite, e.g. a run that
    diverged), the mean difference a - b (of a contrast, (a - b) - (c - d)) with its 95%
    interval, and the verdict (`NOT_TESTABLE`, with no sign, where the comparison names a
    `floor` and b sits at it in every seed). `rests_on`: from `LEAVE_ONE_OUT_FROM` paired
    seeds, (seed, verdict) of each seed without which the verdict is another."""
    labels, metric = compared_arms(comparison), comparison["metric"]
    seeds, columns, dropped = [], [[] for _ in labels], []
    for seed in seed_order(result):
        values = [metric_value(result["arms"][label], seed, metric) for label in labels]
        if all(is_finite(v) for v in values):
            seeds.append(seed)
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        else:
            by_label = dict(zip(labels, values, strict=True))  # d = b names b once
            lacking = [(label, v) for label, v in by_label.items() if not is_finite(v)]
            dropped.append((seed, lacking))
    a, b, *minus = columns
    outcome = {
        "seeds": seeds,
        "n": len(seeds),
        "dropped": dropped,
        "mean": None,
        "low": None,
        "high": None,
        "verdict": INCONCLUSIVE,
        "decimals": decimals([value for column in columns for value in column]),
    }
    if seeds:
        if minus:  # a contrast: the gap a - b less the gap c - d, seed by seed
            gaps = (paired_differences(a, b, False), paired_differences(*minus, False))
            differences = paired_differences(*gaps, relative=False)
        else:
            differences = paired_differences(a, b, comparison["relative"])
        mean, low, high = interval(differences, LEVEL)
        outcome.update(mean=mean, low=low, high=high, differences=differences)
        outcome["verdict"] = verdict(
            low, high, comparison["better"], comparison["test"], comparison.get("margin")
        )
        first = differences[0]
        if len(differences) > 1 and all(
            math.isclose(d, first, rel_tol=1e-9, abs_tol=1e-12) for d in differences
        ):  # the same up to rounding: a - b of equal shifts need not be bit-equal
            outcome["verdict"] += NO_SPREAD
        floor = comparison.get("floor")
        if floor is not None and all(math.isclose(y, floor, abs_tol=1e-12) for y in b):
            outcome["verdict"] = NOT_TESTABLE
    outcome["direction"] = direction(
        comparison.get("paper_difference"), outcome["mean"], outcome["low"], outcome["high"]
    )
    if outcome["verdict"] == NOT_TESTABLE:  # b at its floor: a's side of it is no sign either
        outcome["direction"] = "–"
    outcome["rests_on"] = []
    if leave_one_out and len(seeds) >= LEAVE_ONE_OUT_FROM:
        for seed in seeds:
            rest = {**result, "seeds": [s for s in result["seeds"] if str(s) != seed]}
            without = evaluate(rest, comparison, leave_one_out=False)["verdict"]
            if without.removesuffix(NO_SPREAD) != outcome["verdict"].removesuffix(NO_SPREAD):
                outcome["rests_on"].append((seed, without))
    return outcome


def joint_verdicts(
    claim: str, entries: list[dict], verdicts: dict[str, str]
) -> list[tuple[str, str, list[str]]]:
    """(name, verdict, its comparisons) of each joint claim of `entries` (`name`,
    `comparisons`), from its comparisons' `verdicts` by name: it holds only where each of
    them holds (`stats.joint_verdict`)."""
    joint = []
    for entry in entries:
        missing = [name for name in entry["comparisons"] if name not in verdicts]
        if missing:
            raise ValueError(f"{claim}: the joint claim {entry['name']!r} names no "
                             f"comparison {missing[0]!r}")  # fmt: skip
        of = list(entry["comparisons"])
        joint.append((entry["name"], joint_verdict([verdicts[name] for name in of]), of))
    return joint
