"""The "As run" part of a claim's section in the reproduction report, from the results JSON
alone: what the runner recorded of the runs, placed before the registry's texts.

- the settings a reader needs (`SHOWN`, per task) from each arm's recorded `settings` (its
  runs' config.json): one line for those every arm shares, a table of the others;
- each setting that is not the registry's protocol (an arm's `departures`: a `--set`,
  `--preset` or the quick budget at run time), and then a warning that the registry's texts
  (protocol, notes, what differs) describe its default protocol, not these runs;
- the machine: where each run trained (`trained_on`) and where the results file was written
  (`environment`), each rendered by `petra.provenance.describe`.

A results file written by an earlier petra lacks these records: its section says they were
not recorded and, when its command gave `--set` or `--preset`, names those values (the only
record of them), so that the registry's texts are never shown as if they described the runs.
Keys that this petra's runner does not write (an earlier petra's field, or one added by
hand) are named with their values and marked as not vouched for.
"""

from __future__ import annotations

import json
import shlex

from petra.provenance import describe, environment_problem

# the settings that say what ran, per task, as `section.key`; other tasks show `_COMMON`
_COMMON = ("model.dim", "model.n_layers", "model.n_heads")
_BUDGET = ("train.batch_size", "train.steps", "train.lr", "data.tokenizer")
SHOWN = {
    "lm": (*_COMMON, "data.block_size", *_BUDGET, "data.corpus"),
    "classify": (
        "data.dataset",
        *_COMMON,
        "model.slices",
        "data.max_length",
        *_BUDGET,
        "data.max_train_examples",
        "data.max_eval_examples",
    ),
    "nli-sts": (*_COMMON, "data.max_length", *_BUDGET, "data.nli_files", "data.max_train_pairs"),
    "sts": (*_COMMON, "data.max_length", *_BUDGET, "data.sts_loss", "train.init"),
    "distill": (*_COMMON, "data.max_length", *_BUDGET, "data.sources", "data.max_sentences"),
}
SECTIONS = ("model", "train", "data")


# ---------------------------------------------------------------- checking


def check_provenance(result: dict, wrong) -> None:
    """Refuse a hand-edited `environment`, an arm's `trained_on` or `settings` that is not as
    the runner writes it (`wrong(where, why)` makes the error)."""
    if "environment" in result:
        problem = environment_problem(result["environment"])
        if problem:
            raise wrong("key 'environment'", problem)
    seeds = {str(seed) for seed in result["seeds"]}
    for label, arm in result["arms"].items():
        where = f"arm {label!r}: key"
        trained_on = arm.get("trained_on", {})
        if not isinstance(trained_on, dict) or not set(trained_on) <= seeds:
            raise wrong(f"{where} 'trained_on'", "must map the claim's seeds to environments")
        for seed, env in trained_on.items():
            problem = None if env is None else environment_problem(env)
            if problem:
                raise wrong(f"{where} 'trained_on', seed {seed},", problem)
        groups = arm.get("settings", [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise wrong(f"{where} 'settings'", "must be a list of JSON objects")
        for group in groups:
            problem = _group_problem(group, seeds)
            if problem:
                raise wrong(f"{where} 'settings'", problem)


def _group_problem(group: dict, seeds: set[str]) -> str | None:
    listed = group.get("seeds")
    if not isinstance(listed, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and str(s) in seeds for s in listed
    ):
        return f"has an entry whose 'seeds' are not the claim's seeds, got {listed!r}"
    if not all(isinstance(group.get(section), dict) for section in SECTIONS):
        return f"has an entry without the sections {', '.join(SECTIONS)} as JSON objects"
    departures = group.get("departures", [])
    if not isinstance(departures, list) or not all(
        isinstance(d, dict) and isinstance(d.get("setting"), str) and {"run", "protocol"} <= set(d)
        for d in departures
    ):
        return "has 'departures' that are not objects with 'setting', 'run' and 'protocol'"
    return None


# ---------------------------------------------------------------- rendering


def _runs(result: dict) -> list[tuple[str, dict]]:
    """The arms that are trained runs (the runner names their task), not a measurement's
    arms or the reference arms an analysis adds (a pretrained table, a published figure)."""
    return [(label, arm) for label, arm in result["arms"].items() if "task" in arm]


def trained(result: dict) -> bool:
    """Whether the claim's arms are trained runs rather than a measurement's."""
    return bool(_runs(result))


def as_run_lines(result: dict, written: set[str]) -> list[str]:
    """The "As run" subsection: the settings, their departures from the registry's protocol,
    the machine, and the keys of the file outside `written` (those the runner writes)."""
    lines = ["", "### As run"]
    if trained(result):
        lines += _settings_lines(result)
    lines += _machine_lines(result)
    unknown = [key for key in result if key not in written]
    if unknown:
        found = "; ".join(f"`{key}`: {_shown(result[key])}" for key in unknown)
        lines += [
            "",
            "Not written by this petra's runner, so not vouched for (a field of an earlier "
            f"petra, or added by hand): {found}.",
        ]
    return lines


def _groups(result: dict):
    """(arm, row name, settings group) for each group of seeds of each arm that records its
    settings: the row is named by the arm, and by the group's seeds when it has several."""
    for label, arm in result["arms"].items():
        groups = arm.get("settings") or []
        for group in groups:
            seeds = f" (seeds {', '.join(str(s) for s in group['seeds'])})"
            yield arm, f"`{label}`" + (seeds if len(groups) > 1 else ""), group


def _settings_lines(result: dict) -> list[str]:
    rows = [
        (name, arm.get("task"), {f"{s}.{k}": v for s in SECTIONS for k, v in group[s].items()})
        for arm, name, group in _groups(result)
    ]
    missing = [label for label, arm in _runs(result) if not arm.get("settings")]
    if not rows:
        return [
            "",
            "Settings: not recorded (this results file was written by an earlier petra, "
            "before the runner recorded each run's settings).",
        ] + _given_by_command(result["command"])
    keys = list(dict.fromkeys(k for _, task, _ in rows for k in SHOWN.get(task, _COMMON)))
    keys = [k for k in keys if any(k in flat for _, _, flat in rows)]
    shared = [k for k in keys if len({_shown(flat.get(k, "–")) for _, _, flat in rows}) == 1]
    varying = [k for k in keys if k not in shared]
    filled = [name for _, name, group in _groups(result) if not group.get("recorded_at_run_time")]
    lines = [
        "",
        "Settings the runs recorded, every default filled in by the petra that trained them "
        "(the full record is in the results JSON).",
    ]
    if filled:
        lines[-1] = (
            "Settings the runs recorded, every default filled in (the full record is in the "
            f"results JSON). Runs of {', '.join(filled)} were made by a petra that did not "
            "record its defaults: their config.json is shown with the defaults of the petra "
            "that wrote this file, which may not be those they ran with."
        )
    if shared:
        every = "All arms" if len(rows) > 1 else "The arm"
        if missing:
            every += " that recorded them"
        shown = ", ".join(f"{_name(k)}={_shown(rows[0][2][k])}" for k in shared)
        lines += ["", f"{every}: {shown}."]
    if varying:
        lines += ["", row(["arm", *map(_name, varying)]), "|---|" + "---:|" * len(varying)]
        for name, _, flat in rows:
            lines.append(row([name, *(_shown(flat.get(k, "–")) for k in varying)]))
    if missing:
        lines += ["", f"Not recorded for {', '.join(f'`{m}`' for m in missing)}."]
    return lines + _departure_lines(result)


def _departure_lines(result: dict) -> list[str]:
    """Each setting not the registry's protocol, with the arms where it is so."""
    where: dict[tuple, list[str]] = {}  # (setting, run, protocol) -> rows
    names = []
    for _, name, group in _groups(result):
        names.append(name)
        for d in group.get("departures", []):
            key = (d["setting"], _shown(d["run"]), _shown(d["protocol"]))
            where.setdefault(key, []).append(name)
    if not where:
        return [
            "",
            "Every recorded setting is the registry's protocol (no `--set`, `--preset` or "
            "`--quick` changed one).",
        ]
    by_rows: dict[tuple, list[str]] = {}  # the same rows -> their departures
    for (setting, run, protocol), rows in where.items():
        item = f"`{setting}={run}` (the protocol: {protocol})"
        by_rows.setdefault(tuple(rows), []).append(item)
    parts = [
        f"in {'every arm' if list(rows) == names else ', '.join(rows)}: {', '.join(items)}"
        for rows, items in by_rows.items()
    ]
    return [
        "",
        "**Not the registry's protocol**: " + "; ".join(parts) + ". The registry's texts below "
        "(protocol, notes, what differs from the paper) describe its default protocol: where "
        "they state one of these settings, the value here is the one that ran.",
    ]


def _command_values(command: str) -> list[str]:
    """The `--preset` and `--set` values of a recorded command, as given (`--set
    model.dim=256`)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [
        f"{word} {value}"
        for word, value in zip(words, words[1:], strict=False)
        if word in ("--set", "--preset")
    ]


def run_changes(result: dict) -> list[str]:
    """What the runs changed of the registry's default protocol, each once: the recorded
    departures (`setting=value`) where an arm recorded its settings, else (a file of an
    earlier petra) its command's `--set` and `--preset` values; none for a measurement."""
    if not trained(result):
        return []
    groups = [group for _, _, group in _groups(result)]
    if not groups:
        return _command_values(result["command"])
    changes = (
        f"{d['setting']}={_shown(d['run'])}" for g in groups for d in g.get("departures", [])
    )
    return list(dict.fromkeys(changes))


def _given_by_command(command: str) -> list[str]:
    """The `--preset` and `--set` values of a recorded command (the only record of them in
    a file of an earlier petra)."""
    given = [f"`{value}`" for value in _command_values(command)]
    if not given:
        return []
    return [
        "",
        f"**Given at run time** (the command below): {', '.join(given)}. The registry's texts "
        "below (protocol, notes, what differs from the paper) describe its default protocol "
        "and do not show these values.",
    ]


def _machine_lines(result: dict) -> list[str]:
    env = result.get("environment")
    if not trained(result):
        where = describe(env) if env else "not recorded (an earlier petra wrote this file)"
        return ["", f"Measured on: {where}."]
    runs: dict[str, list[str]] = {}  # environment (as JSON) -> the runs there
    for label, arm in _runs(result):
        trained_on = arm.get("trained_on", {})
        for seed in (str(s) for s in result["seeds"]):
            if seed in arm["per_seed"]:
                key = json.dumps(trained_on.get(seed), sort_keys=True)
                runs.setdefault(key, []).append(f"`{label}` seed {seed}")
    if env is None and list(runs) == ["null"]:
        return ["", "Machine: not recorded (an earlier petra wrote this file and its runs)."]
    if env is not None and list(runs) == [json.dumps(env, sort_keys=True)]:
        return ["", f"Ran on (its runs, its analyses and this results file): {describe(env)}."]
    parts = []
    for key, names in runs.items():
        found = json.loads(key)
        text = describe(found) if found else "not recorded (runs of an earlier petra)"
        parts.append(text if len(runs) == 1 else f"{text} ({', '.join(names)})")
    written = describe(env) if env else "not recorded (an earlier petra wrote this file)"
    return [
        "",
        f"Trained on: {'; '.join(parts) or 'no runs'}.",
        "",
        f"This results file written, and its analyses run, on: {written}.",
    ]


# ---------------------------------------------------------------- text


def _name(setting: str) -> str:
    """`dim` for `model.dim`: the key a `--set` names after its section."""
    return setting.split(".", 1)[1]


def _shown(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "+".join(value)
    return json.dumps(value)


def row(cells) -> str:
    """A Markdown table row; a `|` inside a cell is escaped, a line break made a space."""
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
