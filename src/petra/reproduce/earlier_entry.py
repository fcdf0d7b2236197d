"""A results file written under an earlier entry of the claims registry, read against today's
entry: which of its texts and comparisons are not today's (`stale_fields`), today's
comparisons answered from the per-seed values it stored (`todays`), and the file with today's
texts where only the texts that describe its claim changed (`todays_texts`).

Why: a results file is the only record of its runs (they are not kept with it), and bringing
it to today's entry means training its arms again. Until then it keeps the comparisons it
recorded, and those of today's comparisons that its stored values can answer are evaluated
on them (`outcomes.evaluate`, paired by seed as any comparison), so that a comparison added
to the registry after the runs is not silent where the runs measured it. Their values are the
earlier petra's, measured under the earlier entry's protocol; the report (`report`) marks them
so. A metric the earlier entry stored under another name is read under it where the claim
says so (`claims.Claim.stored_as`); a comparison the runs cannot answer (an arm or a metric
they lack) is named with why. A recorded comparison that one of today's is but for its name
and the paper's figures quoted beside it (the same arms, test and stored values) is shown
once, as today's, in its place (`replaced`): the figures it quoted were the earlier entry's.
"""

from __future__ import annotations

from petra.reproduce.claims import CLAIMS
from petra.reproduce.outcomes import compared_arms, evaluate, joint_verdicts, metric_value

# what a comparison is, beside the paper's figures quoted with it
COMPARISON_IDENTITY = (
    "name", "metric", "a", "b", "better", "test", "margin", "relative", "paper", "paper_difference",
    "floor", "minus",
)  # fmt: skip


def todays_comparisons(claim) -> list[dict]:
    """The comparisons of today's registry entry `claim` (a `claims.Claim`), as dicts of
    the `COMPARISON_IDENTITY` keys, as a results file holds them (a pair of arms as a list)."""
    return [
        {key: _as_stored(getattr(c, key)) for key in COMPARISON_IDENTITY} for c in claim.comparisons
    ]


def _as_stored(value):
    """A registry value as a results file holds it: a tuple as the JSON list it is written as."""
    return list(value) if isinstance(value, tuple) else value


def _identity(comparison: dict) -> tuple:
    """A comparison's `COMPARISON_IDENTITY` values but its name: two comparisons of equal
    identities measure, test and quote the paper alike (hashable: a pair of arms a tuple)."""
    return tuple(_hashable(comparison.get(key)) for key in COMPARISON_IDENTITY if key != "name")


def _hashable(value):
    """A comparison's value as a key: the list of a contrast's arms (`minus`) as a tuple."""
    return tuple(value) if isinstance(value, list) else value


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
        "notes": result["notes"][: _registry_notes(result, claim)] == list(claim.notes),
    }
    return [name for name, same in checks.items() if not same]


def _registry_notes(result: dict, claim) -> int:
    """How many of `result`'s notes were its registry entry's: as the file records it
    (`registry_notes`), or, in a file that predates the count, as many as today's entry has."""
    return result.get("registry_notes", len(claim.notes))


# the texts that describe a claim, not its runs: stale_fields' names -> the result's keys
DESCRIPTIVE_TEXTS = {
    "title": "title",
    "paper's figure": "paper_figure",
    "place in the paper": "where",
    "differences": "differences",
}


def todays_texts(result: dict) -> dict:
    """Today's registry texts that describe the claim of `result` (`DESCRIPTIVE_TEXTS`, what
    the paper's scale would be, and the registry's notes where the file counts them), by the
    result's keys, where those texts are all that is stale: the runs, comparisons and
    verdicts are the same, so bringing the texts up to date needs no run. A file whose
    protocol, comparisons or joint claims are not today's is refused, and so is one whose
    notes changed but which does not record how many of them were the registry's
    (`registry_notes`; files written before the count): rerun the claim. Such a file whose
    notes are today's gets the count: while they match, it is known."""
    claim = CLAIMS.get(result["claim"])
    if claim is None:
        raise ValueError(f"{result['claim']}: no such claim in today's registry")
    describing = {*DESCRIPTIVE_TEXTS, *(["notes"] if "registry_notes" in result else [])}
    other = [name for name in stale_fields(result) if name not in describing]
    if other:
        raise ValueError(
            f"{result['claim']}: its {', '.join(other)} differ from today's registry entry; "
            "only the texts that describe a claim can be brought up to date without its "
            f"runs: rerun it (petra reproduce {result['claim']})"
        )
    texts = {key: _as_stored(getattr(claim, key)) for key in DESCRIPTIVE_TEXTS.values()}
    measured = result["notes"][_registry_notes(result, claim) :]  # the analysis's own
    return texts | {
        "paper_scale": claim.paper_scale,
        "notes": [*claim.notes, *measured],
        "registry_notes": len(claim.notes),
    }


def _metric_names(result: dict, metric: str) -> list[str]:
    """The names a file may store today's `metric` under: its own, then, in a file of the
    earlier entry the claim's `stored_as` names (its protocol), its earlier one."""
    claim = CLAIMS.get(result["claim"])
    renamed = claim and claim.stored_as
    if renamed and result["protocol"] == renamed.protocol and metric.startswith(renamed.today):
        return [metric, renamed.stored + metric.removeprefix(renamed.today)]
    return [metric]


def _holds(arm: dict, name: str) -> bool:
    """Whether `arm` has a value of the metric `name` in at least one seed."""
    return any(metric_value(arm, seed, name) is not None for seed in arm["per_seed"])


def _stored_name(result: dict, comparison: dict) -> str | None:
    """The first of `_metric_names` that every arm of `comparison` holds (`_holds`); None
    if none does, or an arm is not in the file."""
    arms = result["arms"]
    if any(label not in arms for label in compared_arms(comparison)):
        return None
    compared = [arms[label] for label in compared_arms(comparison)]
    names = _metric_names(result, comparison["metric"])
    return next((name for name in names if all(_holds(arm, name) for arm in compared)), None)


def _unmeasured(result: dict, comparison: dict) -> str:
    """Why the file cannot answer `comparison` (`_stored_name` found nothing): the arms it
    lacks, else the arms that hold no value of its metric."""
    labels, metric = compared_arms(comparison), comparison["metric"]
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
        listed = " and ".join(f"`{label}`" for label in labels)
        return f"{listed} stored `{metric}` under different names"
    if len(lacking) == 1:
        return f"{lacking[0]} stored no `{metric}`"
    return f"these runs stored no `{metric}`"


# what a comparison may change and stay the same comparison: its name and the paper's
# figures quoted beside it
QUOTED = ("name", "paper", "paper_difference")


def _measured(comparison: dict, metric: str) -> tuple:
    """A comparison's `COMPARISON_IDENTITY` values but `QUOTED`, with `metric` for its own:
    two comparisons of equal ones compare the same stored values alike."""
    keys = [key for key in COMPARISON_IDENTITY if key not in QUOTED]
    return tuple(metric if key == "metric" else _hashable(comparison.get(key)) for key in keys)


def _pairs(result: dict, claim) -> tuple[list[str], dict[str, tuple[dict, dict]]]:
    """How today's comparisons of `claim` meet those `result` recorded: `same`, the names of
    the ones it recorded as they are (all of `COMPARISON_IDENTITY`, the name too); and
    `replaced`, recorded name -> (today's comparison, the recorded one) of each other of
    today's that the file recorded but for `QUOTED`, its metric read as today's reads it
    (`_stored_name`: under the claim's `stored_as`). Each recorded one meets one at most."""
    recorded = {c["name"]: c for c in result["comparisons"]}
    exact = {(c["name"], _identity(c)) for c in recorded.values()}
    comparisons = todays_comparisons(claim)
    same = [c["name"] for c in comparisons if (c["name"], _identity(c)) in exact]
    pairs: dict[str, tuple[dict, dict]] = {}
    for comparison in comparisons:
        stored = None if comparison["name"] in same else _stored_name(result, comparison)
        if stored is None:
            continue
        measured = _measured(comparison, stored)
        earlier = next(
            (c for name, c in recorded.items()
             if name not in same and name not in pairs
             and _measured(c, c["metric"]) == measured),
            None,
        )  # fmt: skip
        if earlier is not None:
            pairs[earlier["name"]] = (comparison, earlier)
    return same, pairs


def replaced(result: dict) -> set[str]:
    """The names of the comparisons a file written under an earlier registry entry recorded
    that one of today's shows in their stead (`_pairs`; none for any other file): the report
    evaluates only the others."""
    claim = CLAIMS.get(result["claim"])
    if claim is None or not stale_fields(result):
        return set()
    return set(_pairs(result, claim)[1])


def _why_replaced(today: dict, earlier: dict, comparisons: list[dict]) -> list[str]:
    """What the recorded comparison `earlier` quoted of the paper that today's `today`, the
    same comparison (`_pairs`), does not: its figure (and which of today's `comparisons`
    quote it now), its paper difference."""
    why = []
    figure = earlier.get("paper")
    if figure != today["paper"]:
        quoting = "; ".join(c["name"] for c in comparisons if c["paper"] == figure)
        if figure is None:
            why.append(f'quoted no figure of the paper (today\'s entry quotes "{today["paper"]}")')
        elif quoting:
            why.append(f"quoted the paper's \"{figure}\", which today's entry quotes for {quoting}")
        else:
            why.append(f"quoted the paper's \"{figure}\", which today's entry no longer quotes")
    if earlier.get("paper_difference") != today["paper_difference"]:
        if earlier.get("paper_difference") is None:
            why.append("had no paper difference, so no sign of petra's to set against the paper's")
        else:
            why.append(f"had the paper difference {earlier['paper_difference']:g}")
    return why


def todays(result: dict, recorded: dict[str, dict]) -> dict | None:
    """Today's comparisons of a file written under an earlier registry entry of a claim the
    registry still has (None for any other file), answered from the file's stored per-seed
    values by `evaluate`, each once; `recorded` holds the outcomes of the file's own
    comparisons by name, but for the `replaced` ones:

    - `same`: the names of those the file recorded as they are (`COMPARISON_IDENTITY`, the
      name too), whose outcome is the recorded one (not evaluated, nor shown, twice);
    - `rows`: (comparison, outcome) of the others whose arms are both in the file and hold
      the metric (under its name or its earlier one, the claim's `stored_as`) in at least one
      seed each; `read`: the stored names their metrics were read from; `renamed`: today's
      metric -> that name, where they differ, and `why_renamed`: why (`stored_as`);
    - `replaced`: (today's name, the recorded name, what the recorded one quoted of the paper
      that today's does not) of the rows that the file recorded but for their name and the
      paper's figures (`_pairs`), shown once, as today's, in place of the recorded one;
    - `unmeasured`: (name, why) of the others;
    - `joint`: (name, verdict, its comparisons) of today's joint claims whose comparisons
      are all answered, except one the file recorded as it is, of comparisons recorded as
      they are (its verdict is shown there); `joint_replaced`: recorded name -> today's of
      the file's joint claims that one of them shows in their stead (of the same
      comparisons, some or all of them or its name shown as today's); `unjoined`: the names
      of the joint claims left unanswered;
    - `verdicts`: each replaced comparison's recorded name -> its verdict here (the recorded
      one's: they compare the same values alike), for the file's own joint claims."""
    claim = CLAIMS.get(result["claim"])
    if claim is None or not stale_fields(result):
        return None
    same, pairs = _pairs(result, claim)
    instead = {today["name"]: earlier for today, earlier in pairs.values()}
    comparisons = todays_comparisons(claim)
    found: dict = {"same": same, "rows": [], "read": [], "renamed": {}, "unmeasured": []}
    found["why_renamed"] = claim.stored_as.why if claim.stored_as else ""
    found["replaced"], found["verdicts"] = [], {}
    verdicts = {name: recorded[name]["verdict"] for name in same}
    for comparison in comparisons:
        name = comparison["name"]
        if name in same:
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
        if name in instead:
            earlier = instead[name]
            why = _why_replaced(comparison, earlier, comparisons)
            found["replaced"].append((name, earlier["name"], why))
            found["verdicts"][earlier["name"]] = outcome["verdict"]
    entries = [{"name": j.name, "comparisons": list(j.comparisons)} for j in claim.joint]
    answered = [e for e in entries if set(e["comparisons"]) <= set(verdicts)]
    # a recorded joint claim, of its comparisons named as today's names them
    as_today = {n: n for n in same} | {n: pair[0]["name"] for n, pair in pairs.items()}
    found["joint_replaced"], shown = {}, []
    for entry in answered:
        earlier = next(
            (j for j in result["joint"]
             if {as_today.get(n) for n in j["comparisons"]} == set(entry["comparisons"])),
            None,
        )  # fmt: skip
        if (
            earlier is not None
            and earlier["name"] == entry["name"]
            and set(entry["comparisons"]) <= set(same)
        ):
            continue  # recorded as it is, of comparisons recorded as they are: shown there
        if earlier is not None:
            found["joint_replaced"][earlier["name"]] = entry["name"]
        shown.append(entry)
    found["joint"] = joint_verdicts(claim.id, shown, verdicts)
    found["unjoined"] = [e["name"] for e in entries if e not in answered]
    return found
