"""`petra reproduce --report RESULTS_DIR [MORE_DIRS] --to FILE`: the Markdown reproduction
report, built from the per-claim results JSON files alone (one `<claim>.json` per claim,
written by the runner), so that it can be rebuilt at any time without running anything.

The report opens with what it is and the verdict rule (`stats.VERDICT_RULE`), then a summary
table with one row per comparison of every claim (its test in a few words, the paper's own
a - b, petra's paired difference a - b with its 95% Student-t interval over seeds, whether
petra's sign is the paper's and the paper's a - b inside petra's interval, and the
verdict), then one section
per claim: the paper's figure quoted, what ran as the runner recorded it (settings,
departures from the registry's protocol, machine: see `asrun`), the registry's protocol,
the arms (parameters, each compared or shown metric as mean ± std over seeds with the
per-seed values, steps/s), the settings chosen on held-out
data (each grid point's held-out value), the comparisons, the exact checks, the plots, the
notes, what differs from the paper, and the command that produced it. Each further results
folder is the same claims run at another scale: a part of its own after the main one, with
its own summary, its anchors and titles prefixed by the scale's name (`scale_name`).

A file written under an earlier registry entry keeps the comparisons it recorded; today's
entry's comparisons that its stored per-seed values can answer are evaluated on them too
(`earlier_entry.todays`), in its section and in the summary, marked as today's on stored
values. A recorded comparison that one of today's is but for its name and the paper's figures
quoted beside it is shown once, as today's, its section saying what it was recorded as.

Plots are PNG files drawn with matplotlib (Agg) into a plots folder and linked from the
report by paths relative to the report's folder.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

from petra.atomic import atomic_write_json
from petra.checks import field_problem, fits, is_finite_number
from petra.plotting import pyplot, save
from petra.reproduce.asrun import as_run_lines, check_provenance, run_changes
from petra.reproduce.asrun import row as _row
from petra.reproduce.claims import CLAIMS
from petra.reproduce.earlier_entry import (
    replaced,
    stale_fields,
    todays,
    todays_texts,
)
from petra.reproduce.outcomes import compared_arms, evaluate, joint_verdicts, seed_order
from petra.reproduce.outcomes import decimals as _decimals
from petra.reproduce.outcomes import is_finite as _is_finite
from petra.reproduce.outcomes import metric_value as _value
from petra.reproduce.stats import (
    BETTER,
    MARGIN_TESTS,
    OPPOSITE,
    SAME,
    TESTS,
    UNRESOLVED,
    VERDICT_RULE,
    contrast_problem,
)

# keys every results file must have; `checks`, `plots` and `notes` may be left out
REQUIRED = (
    "claim",
    "order",
    "title",
    "paper",
    "where",
    "paper_figure",
    "protocol",
    "differences",
    "command",
    "quick",
    "seeds",
    "arms",
    "comparisons",
)
OPTIONAL_LISTS = ("checks", "plots", "notes", "metrics", "joint")
# every key the runner writes; a section names any other key as not vouched for
WRITTEN = {*REQUIRED, *OPTIONAL_LISTS, "paper_scale", "selection", "environment", "registry_notes"}
COMPARISON_KEYS = ("name", "metric", "a", "b", "relative", "better", "test")
CHECK_KEYS = ("name", "value", "expected", "holds")
# the JSON type of each key that has one: a hand-edited "quick": "no" is not false
TYPES = {
    "results": {
        "claim": str,
        "order": int,
        "title": str,
        "paper": str,
        "where": str,
        "paper_figure": str,
        "protocol": str,
        "command": str,
        "quick": bool,
        "registry_notes": int,
    },
    "comparison": {"name": str, "metric": str, "a": str, "b": str,
                   "relative": bool},
    "check": {"name": str, "holds": bool},
    "arm": {"description": str},
}  # fmt: skip
# a versus plot takes its x from `x` (arm label -> x) or from each of its `arms`' params
# (`x_param`, e.g. "total")
PLOT_KEYS = {"curve": ("series", "arms"), "versus": ("metric",)}
HEADER = [
    "claim",
    "comparison",
    "test",
    "paper a − b",
    "petra a − b [95% interval]",
    "seeds",
    "petra vs the paper",
    "verdict",
]


# ---------------------------------------------------------------- loading


def load_results(results_dir: str | Path) -> list[dict]:
    """Every `*.json` in `results_dir`, checked against the results schema and sorted by the
    claim's `order`, then its id. A file that is not valid JSON or lacks a key raises
    ValueError naming the file and the key."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"no results directory {results_dir}; run `petra reproduce CLAIM --out DIR` first "
            "and pass the folder holding its per-claim results JSON files"
        )
    paths = sorted(results_dir.glob("*.json"))
    if not paths:
        raise FileNotFoundError(
            f"no results (*.json) in {results_dir}; run `petra reproduce CLAIM --out DIR` "
            "first, or pass the folder that holds its per-claim results files"
        )
    results, seen = [], {}
    for path in paths:
        result = _load_one(path)
        if result["claim"] in seen:
            raise ValueError(
                f"{path}: claim {result['claim']!r} is also in {seen[result['claim']]}; "
                "keep one results file per claim"
            )
        seen[result["claim"]] = path
        results.append(result)
    return sorted(results, key=lambda r: (r["order"], r["claim"]))


class _RepeatedKey(ValueError):
    """A JSON object that gives a key twice (JSON keeps the last without a word)."""


def _object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object from its (key, value) pairs; `_RepeatedKey` if a key comes twice (a
    hand-edited seed given twice would otherwise drop one of them)."""
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedKey(key)
        result[key] = value
    return result


def _check_types(item: dict, kinds: dict[str, type], wrong, where: str = "the results") -> None:
    """Refuse a value of `item` whose JSON type is not the one `kinds` gives its key
    (`field_problem`; a key left out is checked elsewhere, if it must be there); `where`
    names the item in the message, e.g. "arm 'p2'"."""
    fields = {(None, key): kind for key, kind in kinds.items()}
    problem = field_problem(item, fields, required=False)
    if problem:
        raise wrong(f"{where}:", problem)


def _load_one(path: Path) -> dict:
    try:
        result = json.loads(path.read_text(), object_pairs_hook=_object)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path}: not valid JSON ({error}); rerun the claim to rewrite it"
        ) from None
    except _RepeatedKey as error:
        raise ValueError(
            f"{path}: a JSON object gives the key {error} twice; keep one (rerun the claim to "
            "rewrite it)"
        ) from None
    if not isinstance(result, dict):
        raise ValueError(
            f"{path}: a results file holds one JSON object, got {type(result).__name__}"
        )

    def missing(where: str, key: str) -> ValueError:
        return ValueError(
            f"{path}: {where} has no key {key!r}; it is not a petra reproduce results file "
            "of this version (rerun the claim to rewrite it)"
        )

    def wrong(where: str, why: str) -> ValueError:
        return ValueError(f"{path}: {where} {why}; rerun the claim to rewrite it")

    for key in REQUIRED:
        if key not in result:
            raise missing("the results", key)
    _check_types(result, TYPES["results"], wrong)
    result = {**result, **{k: result.get(k) or [] for k in OPTIONAL_LISTS}}
    if not isinstance(result["arms"], dict):
        raise wrong("key 'arms'", "must map arm labels to arms")
    for key in ("seeds", "differences", "comparisons", *OPTIONAL_LISTS):
        if not isinstance(result[key], list):
            raise wrong(f"key {key!r}", "must be a list")
    seeds = result["seeds"]
    if not all(fits(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise wrong("key 'seeds'", f"must list each seed once, as an integer, got {seeds}")
    for key in ("differences", "notes"):
        if not all(isinstance(text, str) for text in result[key]):
            raise wrong(f"key {key!r}", "must be a list of strings")
    if not 0 <= result.get("registry_notes", 0) <= len(result["notes"]):
        raise wrong("key 'registry_notes'", f"must count some of its {len(result['notes'])} notes")
    arms = {}
    for label, arm in result["arms"].items():
        if not isinstance(arm, dict) or "per_seed" not in arm:
            raise missing(f"arm {label!r}", "per_seed")
        arm = {"params": {}, "steps_per_s": {}, "curves": {}, "description": "", **arm}
        _check_types(arm, TYPES["arm"], wrong, f"arm {label!r}")
        for key in ("per_seed", "params", "steps_per_s", "curves"):
            if not isinstance(arm[key], dict):
                raise wrong(f"arm {label!r}: key {key!r}", "must be a JSON object")
        for seed, speed in arm["steps_per_s"].items():
            if not (speed is None or is_finite_number(speed)):
                raise wrong(f"arm {label!r}, steps_per_s of seed {seed}", "must be a number")
        unknown = sorted(set(arm["per_seed"]) - {str(seed) for seed in seeds})
        if unknown:  # "00" or "+2" would count seed 0 or 2 twice
            raise wrong(
                f"arm {label!r}: key 'per_seed'",
                f"has seeds {unknown} that are not the claim's seeds {seeds} written as they are",
            )
        for seed, row in arm["per_seed"].items():
            if not isinstance(row, dict):
                raise wrong(f"arm {label!r}, seed {seed}", "must map metric names to values")
            for metric, value in row.items():
                if value is not None and not isinstance(value, (int, float)):
                    raise wrong(f"arm {label!r}, seed {seed}, {metric!r}", "must be a number")
        if arm.get("selection") is not None:
            _check_selection(
                arm["selection"],
                lambda why, label=label: wrong(f"arm {label!r}: key 'selection'", why),
            )
        arms[label] = arm
    result["arms"] = arms
    check_provenance(result, wrong)
    if not all(isinstance(metric, str) for metric in result["metrics"]):
        raise wrong("key 'metrics'", "must be a list of metric names")
    if not isinstance(result.get("selection") or {}, dict):
        raise wrong("key 'selection'", "must be a JSON object")
    for key in ("comparisons", "checks", "plots"):
        if not all(isinstance(item, dict) for item in result[key]):
            raise wrong(f"key {key!r}", "must be a list of JSON objects")
    for i, comparison in enumerate(result["comparisons"]):
        where = f"comparison {i} ({comparison.get('name', 'unnamed')!r})"
        for key in COMPARISON_KEYS:
            if key not in comparison:
                raise missing(where, key)
        _check_types(comparison, TYPES["comparison"], wrong, where)
        problem = contrast_problem(comparison)
        if problem:
            raise wrong(where, problem)
        for label in compared_arms(comparison):
            if label not in arms:
                raise wrong(where, f"names arm {label!r}, not one of {sorted(arms)}")
        if comparison["better"] not in BETTER:
            raise wrong(where, f"key 'better' must be one of {BETTER}")
        if comparison["test"] not in TESTS:
            raise wrong(where, f"key 'test' must be one of {TESTS}")
        margin = comparison.get("margin")
        if comparison["test"] in MARGIN_TESTS and not (is_finite_number(margin) and margin > 0):
            raise wrong(where, f"key 'margin' must be > 0 for a {comparison['test']} test")
        if comparison["test"] not in MARGIN_TESTS and margin is not None:
            raise wrong(where, f"key 'margin' must be null for a {comparison['test']} test")
        paper_difference = comparison.get("paper_difference")
        if paper_difference is not None and not is_finite_number(paper_difference):
            raise wrong(where, "key 'paper_difference' must be a number or null, and finite")
    _check_shown_metrics(result, wrong)
    for i, check in enumerate(result["checks"]):
        for key in CHECK_KEYS:
            if key not in check:
                raise missing(f"check {i}", key)
        _check_types(check, TYPES["check"], wrong, f"check {i}")
    for i, plot in enumerate(result["plots"]):
        if plot.get("kind") not in PLOT_KEYS:
            raise wrong(f"plot {i}", f"key 'kind' must be one of {sorted(PLOT_KEYS)}")
        for key in PLOT_KEYS[plot["kind"]]:
            if key not in plot:
                raise missing(f"plot {i}", key)
        if plot["kind"] == "versus" and "x" not in plot:
            for key in ("x_param", "arms"):
                if key not in plot:
                    raise missing(f"plot {i} (a versus plot without 'x')", key)
        named = list(plot["x"] if "x" in plot else plot["arms"])
        named += [plot["reference_final_of"]] if plot.get("reference_final_of") else []
        for label in named:
            if label not in arms:
                raise wrong(f"plot {i}", f"names arm {label!r}, not one of {sorted(arms)}")
    return result


def _check_shown_metrics(result: dict, wrong) -> None:
    """The metrics the report compares or shows must be numbers (or null) in every arm and
    seed: a boolean (a flag such as `target_reached` may be one) would count as 0 or 1. A
    non-finite number (NaN, infinity) is let through: the report treats it as missing and
    says so."""
    shown = {comparison["metric"] for comparison in result["comparisons"]}
    shown |= set(result["metrics"])
    for label, arm in result["arms"].items():
        for seed, row in arm["per_seed"].items():
            for metric in shown & set(row):
                if isinstance(row[metric], bool):
                    raise wrong(
                        f"arm {label!r}, seed {seed}, {metric!r}",
                        f"is {json.dumps(row[metric])}: a compared or shown metric must be a "
                        "number or null",
                    )


def _check_selection(selection, wrong) -> None:
    """An arm's sweep: points of settings (lists of strings) with a number or null value,
    and the chosen settings, which are one point's."""
    if not isinstance(selection, dict) or not isinstance(selection.get("points"), list):
        raise wrong("must hold a list 'points' and 'chosen'")
    settings = []
    for entry in selection["points"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("settings"), list):
            raise wrong("has a point without a list 'settings'")
        if not all(isinstance(item, str) for item in entry["settings"]):
            raise wrong("has a point whose settings are not strings")
        value = entry.get("value", "missing")
        if not (value is None or is_finite_number(value)):
            raise wrong("has a point without a number 'value'")
        settings.append(entry["settings"])
    if selection.get("chosen") not in settings:
        raise wrong("'chosen' is none of its points' settings")


# ---------------------------------------------------------------- numbers


def _int_or(text: str) -> int:
    return int(text) if text.lstrip("-").isdigit() else 0


def _number(value, decimals: int, sign: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+,}" if sign else f"{value:,}"
    if isinstance(value, float):
        return f"{value:{'+' if sign else ''},.{decimals}f}"
    return str(value)


def _spread(values: list) -> str:
    """Mean ± std over seeds, then the per-seed values in seed order: `4.612 ± 0.021 (4.600,
    4.630, 4.590)`; a missing seed shows as –, a NaN or infinite one as itself, left out of
    the mean and std (which say so)."""
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    finite = [v for v in present if _is_finite(v)]
    decimals = _decimals(finite)
    each = ", ".join(_number(v, decimals) for v in values)
    if len(values) == 1:
        return each
    if not finite:
        return f"no finite value ({each})"
    mean = _number(statistics.fmean(finite), decimals)
    spread = _number(statistics.stdev(finite), decimals) if len(finite) > 1 else "–"
    left_out = len(present) - len(finite)
    note = f"; {left_out} not finite, left out" if left_out else ""
    return f"{mean} ± {spread} ({each}{note})"


def _difference(comparison: dict, outcome: dict) -> str:
    """`-2.33 % [-3.77, -0.90]` or `+0.025 loss [-0.039, +0.089]`."""
    if outcome["mean"] is None:
        return "no seed has both arms"
    decimals = 2 if comparison["relative"] else outcome["decimals"]
    unit = "%" if comparison["relative"] else comparison["metric"]
    text = f"{_number(outcome['mean'], decimals, sign=True)} {unit}"
    if outcome["low"] is None:
        return f"{text} (one seed, no interval)"
    low, high = (_number(outcome[k], decimals, sign=True) for k in ("low", "high"))
    return f"{text} [{low}, {high}]"


def _margin(comparison: dict, outcome: dict) -> str:
    """The comparison's test in full: `non-inferior, margin 2.50 spearman (higher ...)`."""
    better = f"{comparison['better']} {comparison['metric']} is better"
    if comparison["test"] == "superior":
        return f"superior ({better})"
    if comparison["test"] == "inferior":
        return f"a trails b ({better})"
    margin = _margin_size(comparison, outcome)
    if comparison["test"] == "small_drop":
        return f"small drop: a trails b by less than {margin} ({better})"
    return f"non-inferior, margin {margin} ({better})"


def _short_test(comparison: dict, outcome: dict) -> str:
    """The comparison's test in the summary's few words: `non-inferior, margin 2.50 spearman`."""
    if comparison["test"] == "superior":
        return "a better"
    if comparison["test"] == "inferior":
        return "a worse"
    if comparison["test"] == "small_drop":
        return f"a worse by under {_margin_size(comparison, outcome)}"
    return f"non-inferior, margin {_margin_size(comparison, outcome)}"


def _margin_size(comparison: dict, outcome: dict) -> str:
    """`2.50 spearman`, `1.00 %`: the margin as the difference column writes it."""
    decimals = 2 if comparison["relative"] else outcome["decimals"]
    unit = "%" if comparison["relative"] else comparison["metric"]
    return f"{_number(float(comparison['margin']), decimals)} {unit}"


def _quick_label(result: dict) -> str:
    n = len(result["seeds"])
    return f"quick first look ({n} seed{'s' if n != 1 else ''}, short budget)"


def _dropped_lines(comparison: dict, outcome: dict) -> list[str]:
    """One line per seed dropped from the pairing, saying which arms lack the metric there
    and which have a value that is not finite (NaN or infinite)."""
    metric, lines = comparison["metric"], []
    for seed, lacking in outcome["dropped"]:
        missing = [f"`{label}`" for label, value in lacking if value is None]
        reasons = [f"no {metric} for {' and '.join(missing)}"] if missing else []
        reasons += [f"{metric} = {v} for `{label}`" for label, v in lacking if v is not None]
        lines.append(
            f"- {comparison['name']}: seed {seed} has {' and '.join(reasons)}; dropped from "
            "the pairing."
        )
    return lines


# ---------------------------------------------------------------- the report


def format_report(
    results: list[dict],
    plot_links: dict[str, list[str | None]],
    scales: list[tuple[str, list[dict], dict[str, list[str | None]]]] = (),
) -> str:
    """The Markdown report of `results` (as `load_results` returns them). `plot_links[claim]`
    holds one entry per plot of that claim, in order: its path relative to the report, or
    None when there was nothing to draw; a claim absent from `plot_links` shows no plots.
    Each of `scales` is (name, results, plot_links) of the same claims run at another scale:
    a part of its own after the main one, with its own summary, its anchors and titles
    prefixed by its name."""
    outcomes = _outcomes(results)
    lines = [
        "# petra: reproduction report",
        "",
        "Generated by `petra reproduce --report` from the per-claim results JSON files alone "
        "(one per claim, written by `petra reproduce CLAIM`). Every claim of the main part "
        "was run by petra at a small scale (small models, small data and short budgets, sized "
        "for a CPU); a part named for another scale follows it where one was run. Each "
        "section lists what differs from the paper, and the figures are petra's, not the "
        "paper's. Each section opens with what ran, as the runner recorded it (never by "
        "hand): the settings of every arm's runs (from their config.json), each setting that "
        "is not the registry's protocol (a `--set`, `--preset` or `--quick` at run time), and "
        "the machine, software and device of the runs. The registry's texts follow (the "
        "protocol, the notes, what differs from the paper): they describe its default "
        "protocol, so where a run changed a setting they state, the section says so and the "
        "recorded value is the one that ran. A file written by an earlier petra says what it "
        "did not record. " + VERDICT_RULE + ' The summary\'s column "test" names the test in a '
        'few words: "a better" (superiority), "non-inferior, margin m" (a no worse than b by m '
        'or more), "a worse" (a trails b), "a worse by under m" (a small drop); better and '
        "worse follow the metric's direction (a lower loss is better). The column \"petra vs "
        'the paper" says whether '
        "petra's a − b has the sign of the paper's own (its interval wholly on that side of 0: "
        f'"{SAME}"), the other sign ("{OPPOSITE}"), or neither ("{UNRESOLVED}": the '
        "interval spans 0), and whether the paper's own a − b lies inside petra's interval "
        "(a margin test can be inconclusive while petra's interval admits the paper's a − b, "
        'or hold while it does not; a wide interval admits much), and is "–" where the '
        "paper gives no a − b to hold it against "
        "(a control of petra's own, or a file of an earlier petra that quotes the paper's "
        "figure but did not record its a − b as a number) or where the comparison is not "
        "testable; a verdict "
        "and a sign are read together: a parity claim can hold while petra's sign is the "
        "paper's opposite.",
        "",
        "## Summary",
        "",
        *_summary(results, outcomes),
    ]
    reported = {result["claim"] for result in results}
    missing = [c.id for c in sorted(CLAIMS.values(), key=lambda c: c.order) if c.id not in reported]
    if missing:
        lines += [
            "",
            "Not in this report (no results yet): "
            + ", ".join(f"`{claim}`" for claim in missing)
            + ". Run them with `petra reproduce CLAIM...`.",
        ]
    for result in results:
        lines += ["", *_section(result, outcomes[result["claim"]], plot_links)]
    for name, scaled, links in scales:
        scaled_outcomes = _outcomes(scaled)
        lines += [
            "",
            f'<a id="{_slug(name)}"></a>',
            "",
            f"## At the {name} scale: summary",
            "",
            f'The claims below were run again at the {name} scale; each section\'s "As run" '
            "gives what its file recorded of the settings, the machine and the seeds. Their "
            "verdicts are read beside the main part's, not pooled with them. Like the main "
            "part, this one is built from its results JSON alone (the runs are not kept with "
            "them): a file written under an earlier registry entry keeps the comparisons it "
            "recorded (with today's comparisons its stored values can answer beside them), "
            "its registry texts (protocol, what differs) describe that entry's "
            "default protocol rather than this scale's runs, and bringing it to today's "
            "entry means training its arms again.",
            "",
            *_summary(scaled, scaled_outcomes, f"{_slug(name)}-"),
        ]
        for result in scaled:
            lines += ["", *_section(result, scaled_outcomes[result["claim"]], links, name)]
    return "\n".join(lines) + "\n"


def _outcomes(results: list[dict]) -> dict[str, dict]:
    """Each result's comparisons evaluated (`evaluate`), once, by claim: `today`, today's
    comparisons answered from the file's stored values where it was written under an earlier
    registry entry (`earlier_entry.todays`); `recorded`, (comparison, outcome) of each of the
    file's comparisons but those one of today's shows in their stead
    (`earlier_entry.replaced`); `joint`, (name, verdict, its comparisons) of each joint claim
    the file recorded but those one of today's shows in their stead, its verdict of its
    comparisons' (`outcomes.joint_verdicts`), a replaced one's from today's in its stead;
    `verdicts`, by name, the verdicts those joint claims read, and `todays_verdicts` those
    today's joint claims read (today's rows too, which may share a recorded one's name)."""
    found = {}
    for result in results:
        instead = replaced(result)
        recorded = [(c, evaluate(result, c)) for c in result["comparisons"]
                    if c["name"] not in instead]  # fmt: skip
        verdicts = {c["name"]: o["verdict"] for c, o in recorded}
        today = todays(result, {c["name"]: o for c, o in recorded})
        entries = result.get("joint", [])
        if today:
            verdicts |= today["verdicts"]
            entries = [e for e in entries if e["name"] not in today["joint_replaced"]]
        joint = joint_verdicts(result["claim"], entries, verdicts)
        # today's joint claims read today's rows, which may share a name with a recorded one
        todays_verdicts = (
            verdicts | {c["name"]: o["verdict"] for c, o in today["rows"]} if today else verdicts
        )
        found[result["claim"]] = {
            "recorded": recorded, "joint": joint, "today": today, "verdicts": verdicts,
            "todays_verdicts": todays_verdicts,
        }  # fmt: skip
    return found


def _summary(results: list[dict], outcomes: dict, prefix: str = "") -> list[str]:
    """The summary table of `results` (one row per comparison, joint claim and set of
    checks), its links to the sections' anchors (each `prefix` + the claim id), and the list
    of the results written under an earlier registry entry."""
    lines = [_row(HEADER), "|---|---|---|---|---|---:|---|---|"]
    for result in results:
        claim = f"[{result['claim']}](#{prefix}{result['claim']})"
        if result["quick"]:
            claim += f", {_quick_label(result)}"
        # a verdict of an earlier registry entry is not today's: said in its own cell
        earlier = " (earlier registry entry: rerun)" if stale_fields(result) else ""
        found = outcomes[result["claim"]]
        for comparison, outcome in found["recorded"]:
            lines.append(_summary_row(claim, comparison["name"], comparison, outcome, earlier))
        for name, verdict_, of in found["joint"]:
            verdict_ += _parts(of, found["verdicts"])
            lines.append(_row([claim, f"{name} (joint)", *["–"] * 5, verdict_ + earlier]))
        today = found["today"]
        for comparison, outcome in today["rows"] if today else []:
            name = f"{comparison['name']} ({TODAYS.format('comparison')})"
            lines.append(_summary_row(claim, name, comparison, outcome, earlier))
        for name, verdict_, of in today["joint"] if today else []:
            name = f"{name} ({TODAYS.format('joint claim')})"
            verdict_ += _parts(of, found["todays_verdicts"])
            lines.append(_row([claim, name, *["–"] * 5, verdict_ + earlier]))
        checks = result["checks"]
        if checks or not result["comparisons"]:  # checks are claims too: never only inside
            held = sum(bool(c["holds"]) for c in checks)
            status = f"{held} of {len(checks)} checks hold" if checks else "–"
            what = "(checks)" if result["comparisons"] else "(measurement, no comparison)"
            lines.append(_row([claim, what, *["–"] * 5, status + earlier]))
    stale = [result["claim"] for result in results if stale_fields(result)]
    if stale:
        lines += [
            "",
            "Written under an earlier entry of the claims registry (their texts or their "
            "comparisons are not today's; each section says which): "
            + ", ".join(f"[`{claim}`](#{prefix}{claim})" for claim in stale)
            + ". Their verdicts are not today's protocol's, nor are those of the rows marked "
            f'"{TODAYS.format("comparison")}" (today\'s comparisons, answered from the values '
            "those runs stored): rerun them with `petra reproduce CLAIM...`.",
        ]
    return lines


# how the summary names a row of today's comparisons (or joint claims) answered from an
# earlier entry's runs
TODAYS = "today's {}, on the stored values"


def _summary_row(claim: str, name: str, comparison: dict, outcome: dict, earlier: str) -> str:
    """A comparison's row of the summary, named `name`; `earlier` marks its verdict."""
    seeds = str(outcome["n"])
    if outcome["dropped"]:
        seeds += f" ({len(outcome['dropped'])} dropped)"
    test = _short_test(comparison, outcome)
    paper = comparison.get("paper") or "–"
    cells = [claim, name, test, paper, _difference(comparison, outcome), seeds]
    return _row([*cells, outcome["direction"], outcome["verdict"] + _rests_on(outcome) + earlier])


def _rests_on(outcome: dict) -> str:
    """` (without seed 3: inconclusive)` where leaving one seed out changes the verdict."""
    if not outcome["rests_on"]:
        return ""
    return " (" + "; ".join(f"without seed {s}: {v}" for s, v in outcome["rests_on"]) + ")"


def _section(result: dict, outcomes: dict, plot_links: dict, scale: str | None = None) -> list[str]:
    """A claim's section, from its `_outcomes` entry; at another `scale` than the main
    part's, its anchor and title say which."""
    claim = result["claim"]
    anchor = claim if scale is None else f"{_slug(scale)}-{claim}"
    title = result["title"] if scale is None else f"At the {scale} scale: {result['title']}"
    lines = [f'<a id="{anchor}"></a>', "", f"## {title}", ""]
    if result["quick"]:
        lines += [
            f"**{_quick_label(result).capitalize()}**: not a reproduction; rerun without "
            "`--quick` for the full protocol.",
            "",
        ]
    changed = stale_fields(result)
    if changed:
        lines += [
            f"**Written under an earlier registry entry**: its {', '.join(changed)} differ from "
            "today's; rerun the claim for today's protocol.",
            "",
        ]
    lines += [
        f"Claim `{claim}`: {result['paper']}, {result['where']}. The paper reports:",
        "",
        f"> {result['paper_figure']}",
    ]
    lines += as_run_lines(result, WRITTEN)
    lines += ["", "### Protocol (the registry's default)", "", result["protocol"]]
    today = outcomes["today"]
    lines += _arms_table(result, today["read"] if today else [])
    lines += _selection_table(result)
    if outcomes["recorded"]:
        lines += ["", "### Comparisons", "", *_comparisons_table(outcomes["recorded"])]
    if outcomes["joint"]:
        lines += [
            "",
            "### Joint verdicts",
            "",
            *_joint_lines(outcomes["joint"], outcomes["verdicts"]),
        ]
    if today:
        lines += _todays_lines(today, outcomes["todays_verdicts"])
    if result["checks"]:
        lines += ["", "### Checks", "", _row(["check", "value", "expected", "holds"])]
        lines.append("|---|---:|---:|---|")
        for check in result["checks"]:
            value, expected = check["value"], check["expected"]
            decimals = _decimals([v for v in (value, expected) if isinstance(v, (int, float))])
            holds = "yes" if check["holds"] else "**no**"
            lines.append(
                _row([check["name"], _number(value, decimals), _number(expected, decimals), holds])
            )
    if result["plots"] and claim in plot_links:
        lines += ["", "### Plots", ""]
        for plot, link in zip(result["plots"], plot_links[claim], strict=True):
            title = plot.get("title") or _plot_name(plot)
            lines.append(f"![{title}]({link})" if link else f"*{title}: nothing to plot.*")
            lines.append("")
        lines.pop()
    if result["notes"]:
        lines += ["", "### Notes", ""]
        if changed:  # an earlier analysis's words: they may describe what today's does not
            lines += ["As the earlier registry entry's analysis wrote them:", ""]
        lines += [f"- {note}" for note in result["notes"]]
    lines += ["", "### What differs from the paper", "", *_whose_differences(result, changed)]
    lines += [f"- {d}" for d in result["differences"]] or ["- nothing recorded"]
    if result.get("paper_scale"):
        lines += ["", "### To test it at the paper's scale", "", result["paper_scale"]]
    lines += ["", "### Command", "", "```bash", result["command"], "```"]
    return lines


def _comparisons_table(pairs: list[tuple[dict, dict]]) -> list[str]:
    """The table of (comparison, outcome) `pairs`, then a line per seed dropped."""
    lines = [
        _row(HEADER[1:]),
        "|---|---|---|---|---|---|---|",
    ]
    dropped = []
    for comparison, outcome in pairs:
        name = f"{comparison['name']} (a = `{comparison['a']}`, b = `{comparison['b']}`"
        if comparison.get("minus"):
            c, d = comparison["minus"]
            name += f", c = `{c}`, d = `{d}`: (a − b) − (c − d)"
        name += ")"
        seeds = ", ".join(outcome["seeds"]) or "none"
        cells = [name, _margin(comparison, outcome), comparison.get("paper") or "–"]
        cells += [_difference(comparison, outcome), seeds, outcome["direction"]]
        lines.append(_row([*cells, outcome["verdict"] + _rests_on(outcome)]))
        dropped += _dropped_lines(comparison, outcome)
    return lines + (["", *dropped] if dropped else [])


def _parts(of: list[str], verdicts: dict[str, str]) -> str:
    """A joint claim's comparisons' verdicts, in its order, for its summary row: which one
    decided it shows without the section."""
    return " (its parts: " + "; ".join(verdicts.get(c, "not measured") for c in of) + ")"


def _joint_lines(joint: list[tuple[str, str, list[str]]], verdicts: dict[str, str]) -> list[str]:
    """A line per joint claim: its verdict, then each of its comparisons' (`verdicts`, by
    name), so that a reader sees which one decided it."""
    return [
        f"- {name}: **{verdict_}** (of "
        + "; ".join(f"{c}: {verdicts[c]}" if c in verdicts else c for c in of)
        + ")"
        for name, verdict_, of in joint
    ]


def _todays_lines(today: dict, verdicts: dict[str, str]) -> list[str]:
    """Today's comparisons answered from an earlier entry's runs (`earlier_entry.todays`):
    the evaluated ones, their joint claims, and those the runs cannot answer, by why; nothing
    where each of today's comparisons is one the file recorded as it is and no joint claim is
    new. Of a comparison shown in place of a recorded one, what that one was recorded as."""
    if not (today["rows"] or today["unmeasured"] or today["joint"] or today["unjoined"]):
        return []
    intro = "Today's registry entry makes comparisons these runs did not record as they are; "
    if today["rows"]:
        intro += (
            "those their stored values can answer are below. The values are as the earlier "
            "petra measured and stored them (per seed, in the arms table above), under the "
            "earlier entry's protocol (these runs were not rerun), paired by seed as today's "
            "comparisons pair them."
        )
    elif today["unmeasured"]:
        intro += "their stored values answer none of them."
    else:
        intro = (
            "Today's registry entry makes joint claims of the comparisons above that these "
            "runs did not record."
        )
    if today["replaced"]:
        instead = []
        for name, was, why in today["replaced"]:
            said = f": it {'; it '.join(why)}" if why else ""
            instead.append(f"{name} ({_recorded_as(name, was)}{said})")
        intro += (
            " These runs recorded some of them but for their names or the paper's figures "
            "quoted beside them; each is shown once, here, as today's, in place of the recorded "
            f"one: {'; '.join(instead)}."
        )
    if today["same"]:
        same = "; ".join(today["same"])
        intro += f" Already recorded above (the same comparison), not repeated: {same}."
    if today["renamed"]:
        read = ", ".join(f"`{m}` from the stored `{s}`" for m, s in today["renamed"].items())
        intro += f" Read under an earlier name ({today['why_renamed']}): {read}."
    lines = ["", "### Today's comparisons, from these runs' stored values", "", intro]
    if today["rows"]:
        lines += ["", *_comparisons_table(today["rows"])]
    if today["joint"]:
        lines += ["", "Today's joint verdicts:", ""]
        was = {name: recorded for recorded, name in today["joint_replaced"].items()}
        lines += _joint_lines(
            [(f"{n} ({_recorded_as(n, was[n])})" if n in was else n, verdict_, of)
             for n, verdict_, of in today["joint"]], verdicts
        )  # fmt: skip
    if today["unjoined"]:
        unjoined = "; ".join(today["unjoined"])
        lines += ["", f"Today's joint claims these runs cannot answer (a comparison of each is "
                  f"not measured): {unjoined}."]  # fmt: skip
    if today["unmeasured"]:
        by_reason: dict[str, list[str]] = {}
        for name, reason in today["unmeasured"]:
            by_reason.setdefault(reason, []).append(name)
        lines += ["", "Not measured in these runs:", ""]
        lines += [f"- {reason}: {'; '.join(names)}" for reason, names in by_reason.items()]
    return lines


def _recorded_as(name: str, was: str) -> str:
    """What a file recorded, as `was`, of what today's entry names `name`."""
    return f"recorded as {was}" if was != name else "recorded under this name"


def _whose_differences(result: dict, changed: list[str]) -> list[str]:
    """Where the runs changed the registry's default protocol (`asrun.run_changes`), a line
    saying that the bullets below describe that default, not the runs; whose texts they
    are (an earlier registry entry's, when `changed` names the differences)."""
    changes = run_changes(result)
    if not changes:
        return []
    whose = (
        "the earlier registry entry's texts (written into this file with its runs) and "
        "describe that entry's"
        if "differences" in changed
        else "the registry's texts and describe its"
    )
    shown = ", ".join(f"`{change}`" for change in changes)
    return [
        f"**Not these runs' settings**: the bullets below are {whose} default protocol, not "
        f"the settings these runs ran with ({shown}; see As run, above): where a bullet states "
        "one of these settings, the value here is the one that ran.",
        "",
    ]


_MEASURED = ", ".join(f"`{claim.id}`" for claim in CLAIMS.values() if claim.measure)


def _arms_table(result: dict, stored: list[str] = ()) -> list[str]:
    """The arms with each compared or shown metric, and the `stored` metrics that today's
    comparisons read (`earlier_entry.todays`)."""
    if not result["arms"]:
        return []
    compared = [c["metric"] for c in result["comparisons"]]
    metrics = list(dict.fromkeys([*compared, *result["metrics"], *stored]))
    arms = result["arms"].items()
    with_speed = any(arm["steps_per_s"] for _, arm in arms)
    seeds = seed_order(result)
    header = ["arm", "description", "total params", *metrics, *(["steps/s"] if with_speed else [])]
    lines = [
        "",
        "### Arms",
        "",
        f"Metrics as mean ± std over seeds, then the per-seed values (seeds {', '.join(seeds)}).",
        *(
            [
                "The steps/s are each run's own, taken with whatever else the machine ran; the "
                f"speed claims ({_MEASURED}) time arms side by side."
            ]
            if with_speed
            else []
        ),
        "",
        _row(header),
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for label, arm in arms:
        total = arm["params"].get("total")
        speeds = [v for v in arm["steps_per_s"].values() if v is not None]
        speed = [_number(statistics.fmean(speeds), 2) if speeds else "–"] if with_speed else []
        cells = [
            f"`{label}`",
            arm["description"],
            _number(total, 0) if total is not None else "–",
            *(_spread([_value(arm, s, m) for s in seeds]) for m in metrics),
            *speed,
        ]
        lines.append(_row(cells))
    return lines


def _selection_table(result: dict) -> list[str]:
    """Each arm's grid points and their held-out values; the chosen one in bold."""
    chosen = [
        (label, arm["selection"]) for label, arm in result["arms"].items() if "selection" in arm
    ]
    if not chosen:
        return []
    rule = (result.get("selection") or {}).get("why") or (
        f"each arm's point with the {chosen[0][1].get('better', 'higher')} final "
        f"{chosen[0][1].get('metric')} on its first seed"
    )
    lines = ["", "### Settings chosen on held-out data", "", f"Rule: {rule}.", ""]
    lines += [_row(["arm", "metric (seed)", "grid point: value"]), "|---|---|---|"]
    for label, selection in chosen:
        points = []
        for entry in selection["points"]:
            name = ", ".join(entry["settings"]) or "(defaults)"
            value = entry["value"]
            shown = "diverged" if value is None else _number(float(value), _decimals([value]))
            text = f"{name}: {shown}"
            points.append(f"**{text}**" if entry["settings"] == selection["chosen"] else text)
        metric = f"{selection.get('metric', '?')} (seed {selection.get('seed', '?')})"
        edges = _at_edge(selection)
        wide = [key for key, _, swept in edges if swept >= 3]
        if wide:
            points.append(f"chosen at the grid's edge in {', '.join(wide)}")
        points += [
            f"{key} swept at two values only ({value} chosen): a better value may lie beyond "
            "or between them"
            for key, value, swept in edges
            if swept == 2
        ]
        lines.append(_row([f"`{label}`", metric, "; ".join(points)]))
    return lines


def _at_edge(selection: dict) -> list[tuple[str, str, int]]:
    """(setting, its chosen value as recorded, how many numeric values were swept) of each
    setting swept at 2 or more numeric values whose chosen value is the smallest or the
    largest swept: a better value may lie outside the grid. At 3 or more values, the best of
    them sits at an edge rather than inside; at 2, every choice is at an edge, which says
    nothing of where the best value lies (the table says each apart)."""
    values: dict[str, set[float]] = {}
    for entry in selection["points"]:
        for key, number in map(_numeric_setting, entry["settings"]):
            if number is not None:
                values.setdefault(key, set()).add(number)
    edges = []
    for item in selection["chosen"]:
        key, number = _numeric_setting(item)
        swept = values.get(key, set())
        if number is not None and len(swept) >= 2 and number in (min(swept), max(swept)):
            edges.append((key, item.partition("=")[2], len(swept)))
    return edges


def _numeric_setting(item: str) -> tuple[str, float | None]:
    """(key, its value as a number, or None) of a recorded `key=value` setting."""
    key, _, text = item.partition("=")
    try:
        return key, float(text)
    except ValueError:
        return key, None


# ---------------------------------------------------------------- plots


def _plot_name(plot: dict) -> str:
    if plot["kind"] == "curve":
        return plot["series"]
    return f"{plot['metric']} against {plot.get('xlabel') or plot.get('x_param') or 'x'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def draw_plot(result: dict, plot: dict, path: Path) -> bool:
    """Draw one plot of a claim to `path` (PNG); False (and no file) when it has no data."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    try:
        if not (_curve if plot["kind"] == "curve" else _versus)(axes, result, plot):
            return False
        axes.set_title(plot.get("title") or _plot_name(plot), fontsize=10)
        save(figure, axes, path)
        return True
    finally:
        plt.close(figure)  # also when nothing was drawn, or drawing failed


def _curve(axes, result: dict, plot: dict) -> bool:
    """Every seed's curve of `plot['series']` for each arm (one colour per arm), and a dashed
    line at the mean final value of `reference_final_of`, if given."""
    series, drew = plot["series"], False
    for k, label in enumerate(plot["arms"]):
        curves = result["arms"][label]["curves"]
        first = True
        for seed in sorted(curves, key=lambda s: (_int_or(s), s)):
            points = curves[seed].get(series)
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            axes.plot(
                steps,
                values,
                color=f"C{k}",
                linewidth=1.2,
                alpha=0.8,
                label=label if first else None,
            )
            first, drew = False, True
    reference = plot.get("reference_final_of")
    if reference:
        curves = result["arms"][reference]["curves"].values()
        finals = [c[series][-1][1] for c in curves if c.get(series)]
        finals = [value for value in finals if _is_finite(value)]
        if finals:
            axes.axhline(
                statistics.fmean(finals),
                color="0.3",
                linestyle="--",
                linewidth=1.0,
                label=f"{reference}: final value (mean of {len(finals)} seeds)",
            )
    axes.set(xlabel=plot.get("xlabel", "step"), ylabel=plot.get("ylabel", series))
    return drew


def _versus(axes, result: dict, plot: dict) -> bool:
    """Mean ± std over seeds of `plot['metric']` for each arm, against the arm's x value:
    `plot['x'][arm]`, or the arm's `params[plot['x_param']]` (log scale when it spans a
    factor of 10 or more)."""
    metric, points = plot["metric"], []
    if "x" in plot:
        positions = plot["x"]
    else:
        positions = {a: result["arms"][a]["params"].get(plot["x_param"]) for a in plot["arms"]}
    for label, x in positions.items():
        if x is None:
            continue
        per_seed = result["arms"][label]["per_seed"].values()
        values = [row[metric] for row in per_seed if row and _is_finite(row.get(metric))]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            points.append((x, statistics.fmean(values), spread, label))
    if not points:
        return False
    points.sort()
    xs, means, spreads, labels = zip(*points, strict=True)
    axes.plot(xs, means, color="C0", linewidth=1.0, alpha=0.6)
    axes.errorbar(xs, means, yerr=spreads, fmt="o", color="C0", capsize=3, label="mean ± std")
    for x, mean, label in zip(xs, means, labels, strict=True):
        axes.annotate(label, (x, mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if "x" in plot:
        axes.set_xticks(xs)
    elif min(xs) > 0 and max(xs) >= 10 * min(xs):
        axes.set_xscale("log")
    axes.set(xlabel=plot.get("xlabel", "x"), ylabel=plot.get("ylabel", metric))
    return True


def write_report(
    results_dir: str | Path,
    to: str | Path,
    plots_dir: str | Path | None = None,
    scales: list[str | Path] = (),
) -> Path:
    """Write the report of every results file in `results_dir` to `to`, its plots as PNG to
    `plots_dir` (default: `plots` beside `results_dir`), linked relative to `to`'s folder.
    Each of `scales` is the results folder of a run at another scale, reported in a part of
    its own named for the folder (`scale_name`), its plots in `plots_dir/NAME/`."""
    to = Path(to)
    if to.is_dir():
        raise ValueError(f"--to {to} is a folder: give the report's file, e.g. {to / 'REPORT.md'}")
    plots_dir = Path(results_dir).parent / "plots" if plots_dir is None else Path(plots_dir)
    names = [scale_name(folder) for folder in scales]
    claimed = [name for name in names if name in CLAIMS]  # its anchor would be a claim's
    if claimed:
        raise ValueError(f"a scale's folder cannot be named for a claim ({claimed[0]}): name "
                         "it for its scale, e.g. reproduction/larger/results")  # fmt: skip
    if len(set(names)) < len(names) or "" in names:
        raise ValueError(
            f"the scales' folders {[str(f) for f in scales]} must have names of their own "
            "(a folder called results is named for the one above it)"
        )
    results = load_results(results_dir)
    parts = [(name, load_results(f)) for name, f in zip(names, scales, strict=True)]
    to.parent.mkdir(parents=True, exist_ok=True)
    links = _draw_plots(results, plots_dir, to)
    scaled = [(name, found, _draw_plots(found, plots_dir / name, to)) for name, found in parts]
    to.write_text(format_report(results, links, scaled))
    return to


def update_texts(results_dirs: list[str | Path]) -> list[str]:
    """Give every results file in `results_dirs` today's registry texts where only the texts
    that describe its claim changed since its runs (`earlier_entry.todays_texts`),
    rewriting it whole; a line per file says what was done, or why not (a file whose
    protocol or comparisons changed needs its claim rerun). A file of today's texts written
    before results files counted their registry notes gets the count (`registry_notes`):
    its notes begin with today's registry notes, so a later change to them needs no rerun."""
    lines = []
    for folder in results_dirs:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no results folder {folder}")
        for path in sorted(Path(folder).glob("*.json")):
            result = _load_one(path)  # checked as the report reads it
            stale = stale_fields(result)
            counted = "registry_notes" in result or result["claim"] not in CLAIMS
            if not stale and counted:
                lines.append(f"{path}: today's texts already")
                continue
            try:
                texts = todays_texts(result)
            except ValueError as error:
                lines.append(f"{path}: left as it is: {error}")
                continue
            atomic_write_json(path, {**json.loads(path.read_text()), **texts}, indent=1)
            done = [f"its {', '.join(stale)} brought up to today's registry" if stale
                    else "today's texts already"]  # fmt: skip
            if not counted:
                done.append("its registry notes counted")
            lines.append(f"{path}: {'; '.join(done)}")
    return lines


def scale_name(results_dir: str | Path) -> str:
    """The name of a scale's part of the report: its results folder's, or the name of the
    folder above it when that is `results` (`reproduction/larger/results`: larger)."""
    folder = Path(results_dir).resolve()
    return _slug(folder.parent.name if folder.name == "results" else folder.name)


def _draw_plots(results: list[dict], plots_dir: Path, to: Path) -> dict[str, list[str | None]]:
    """Draw every plot of `results` into `plots_dir`; their links relative to `to`'s folder
    (None where there was nothing to draw), per claim."""
    links: dict[str, list[str | None]] = {}
    for result in results:
        links[result["claim"]] = []
        for i, plot in enumerate(result["plots"], start=1):
            key = plot["series"] if plot["kind"] == "curve" else plot["metric"]
            path = plots_dir / f"{result['claim']}-{i}-{plot['kind']}-{_slug(key)}.png"
            drawn = draw_plot(result, plot, path)
            link = Path(os.path.relpath(path.resolve(), to.parent.resolve())).as_posix()
            links[result["claim"]].append(link if drawn else None)
    return links
