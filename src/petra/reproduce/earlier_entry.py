"""A results file written under an earlier entry of the claims registry, read against today's
entry: which of its texts and comparisons are not today's (`stale_fields`), and today's
comparisons answered from the per-seed values it stored (`todays`).

Why: a results file is the only record of its runs (they are not kept with it), and bringing
it to today's entry means training its arms again. Until then it keeps the comparisons it
recorded, and those of today's comparisons that its stored values can answer are evaluated
on them (`outcomes.evaluate`, paired by seed as any comparison), so that a comparison added
to the registry after the runs is not silent where the runs measured it. Their values are the
earlier petra's, measured under the earlier entry's protocol; the report (`report`) marks them
so. A metric the earlier entry stored under another name is read under it where the claim
says so (`claims.Claim.stored_as`); a comparison the runs cannot answer (an arm or a metric
they lack) is named with why.
"""

from __future__ import annotations

from petra.reproduce.claims import CLAIMS
from petra.reproduce.outcomes import evaluate, joint_verdicts, metric_value

# what a comparison is, beside the paper's figures quoted with it
COMPARISON_IDENTITY = (
    "name", "metric", "a", "b", "better", "test", "margin", "relative", "paper", "paper_difference",
    "floor",
)  # fmt: skip


def todays_comparisons(claim) -> list[dict]:
    """The comparisons of today's registry entry `claim` (a `claims.Claim`), as dicts of
    the `COMPARISON_IDENTITY` keys, as a results file holds them."""
    return [{key: getattr(c, key) for key in COMPARISON_IDENTITY} for c in claim.comparisons]


def _identity(comparison: dict) -> tuple:
    """A comparison's `COMPARISON_IDENTITY` values but its name: two comparisons of equal
    identities measure, test and quote the paper alike."""
    return tuple(comparison.get(key) for key in COMPARISON_IDENTITY if key != "name")


def stale_fields(result: dict) -> list[str]:
    """Which of the texts (title, the paper's figure and place, protocol, what differs, the
    registry's notes) and the comparisons (with the paper's figures quoted in them) of a
    results file are not those of today's registry entry of its claim (none for a claim the
    registry lacks)."""
    claim = CLAIMS.get(result["claim"])
    if claim is None:
        return []
    comparisons = todays_comparisons(claim)
    recorded = [{key: c.get(key) for key in COMPARISON_IDENTITY} for c in result["comparisons"]]
    checks = {
        "title": result["title"] == claim.title,
        "paper's figure": result["paper_figure"] == claim.paper_figure,
        "place in the paper": result["where"] == claim.where,
        "protocol": result["protocol"] == claim.protocol,
        "differences": result["differences"] == list(claim.differences),
        "comparisons": recorded == comparisons,
        "joint claims": result.get("joint", [])
        == [{"name": j.name, "comparisons": list(j.comparisons)} for j in claim.joint],
        # the registry's notes come first; an analysis appends its own after them
        "notes": result["notes"][: len(claim.notes)] == list(claim.notes),
    }
    return [name for name, same in checks.items() if not same]


def _metric_names(result: dict, metric: str) -> list[str]:
    """The names a file may store today's `metric` under: its own, then its earlier one
    (the claim's `stored_as`)."""
    claim = CLAIMS.get(result["claim"])
    if claim is None or claim.stored_as is None:
        return [metric]
    today, stored, _ = claim.stored_as
    if metric.startswith(today):
        return [metric, stored + metric.removeprefix(today)]
    return [metric]


def _holds(arm: dict, name: str) -> bool:
    """Whether `arm` has a value of the metric `name` in at least one seed."""
    return any(metric_value(arm, seed, name) is not None for seed in arm["per_seed"])


def _stored_name(result: dict, comparison: dict) -> str | None:
    """The first of `_metric_names` that both arms of `comparison` hold (`_holds`); None
    if none does, or an arm is not in the file."""
    arms = result["arms"]
    if comparison["a"] not in arms or comparison["b"] not in arms:
        return None
    pair = (arms[comparison["a"]], arms[comparison["b"]])
    names = _metric_names(result, comparison["metric"])
    return next((name for name in names if all(_holds(arm, name) for arm in pair)), None)


def _unmeasured(result: dict, comparison: dict) -> str:
    """Why the file cannot answer `comparison` (`_stored_name` found nothing): the arms it
    lacks, else the arms that hold no value of its metric."""
    labels, metric = (comparison["a"], comparison["b"]), comparison["metric"]
    absent = [f"`{label}`" for label in labels if label not in result["arms"]]
    if absent:
        return f"no arm {' or '.join(absent)} in these runs"
    names = _metric_names(result, metric)
    lacking = [
        f"`{label}`"
        for label in labels
        if not any(_holds(result["arms"][label], name) for name in names)
    ]
    if not lacking:  # each holds it, under another of its names
        return f"`{labels[0]}` and `{labels[1]}` stored `{metric}` under different names"
    if len(lacking) == 1:
        return f"{lacking[0]} stored no `{metric}`"
    return f"these runs stored no `{metric}`"


def todays(result: dict, recorded: list[dict]) -> dict | None:
    """Today's comparisons of a file written under an earlier registry entry of a claim the
    registry still has (None for any other file), answered from the file's stored per-seed
    values by `evaluate`, each once; `recorded` holds the outcomes of the file's own
    comparisons, in order:

    - `same`: (name, the recorded one's) of those identical (`COMPARISON_IDENTITY`) to one
      the file recorded but perhaps for the name, whose outcome is the recorded one (not
      evaluated, nor shown, twice);
    - `rows`: (comparison, outcome) of those whose arms are both in the file and hold the
      metric (under its name or its earlier one, the claim's `stored_as`) in at least one
      seed each; `read`: the stored names their metrics were read from; `renamed`: today's
      metric -> that name, where they differ, and `why_renamed`: why (`stored_as`);
    - `unmeasured`: (name, why) of the others;
    - `joint`: (name, verdict, its comparisons) of today's joint claims whose comparisons
      are all answered, except one the file recorded as it is (its verdict is shown there);
      `unjoined`: the names of the joint claims left unanswered."""
    claim = CLAIMS.get(result["claim"])
    if claim is None or not stale_fields(result):
        return None
    recorded_as = {  # a comparison but for its name -> the recorded name and verdict
        _identity(c): (c["name"], o["verdict"])
        for c, o in zip(result["comparisons"], recorded, strict=True)
    }
    found: dict = {"same": [], "rows": [], "read": [], "renamed": {}, "unmeasured": []}
    found["why_renamed"] = claim.stored_as[2] if claim.stored_as else ""
    verdicts = {}
    for comparison in todays_comparisons(claim):
        name = comparison["name"]
        if _identity(comparison) in recorded_as:
            recorded_name, verdicts[name] = recorded_as[_identity(comparison)]
            found["same"].append((name, recorded_name))
            continue
        stored = _stored_name(result, comparison)
        if stored is None:
            found["unmeasured"].append((name, _unmeasured(result, comparison)))
            continue
        found["read"].append(stored)
        if stored != comparison["metric"]:
            found["renamed"][comparison["metric"]] = stored
        outcome = evaluate(result, {**comparison, "metric": stored})
        found["rows"].append((comparison, outcome))
        verdicts[name] = outcome["verdict"]
    entries = [{"name": j.name, "comparisons": list(j.comparisons)} for j in claim.joint]
    answered = [e for e in entries if set(e["comparisons"]) <= set(verdicts)]
    # recorded as it is, of comparisons recorded as they are: its verdict is shown there
    as_recorded = [
        e
        for e in answered
        if e in result["joint"] and set(e["comparisons"]) <= {n for n, r in found["same"] if n == r}
    ]
    shown = [e for e in answered if e not in as_recorded]
    found["joint"] = joint_verdicts(claim.id, shown, verdicts)
    found["unjoined"] = [e["name"] for e in entries if e not in answered]
    return found
