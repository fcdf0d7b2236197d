"""Run claims: every arm of a claim once per seed, then its results JSON.

Layout under `--out` (default `reproduction/`): `runs/<claim>/<arm>-seed<s>/` holds each
arm's ordinary run directory (config.json, metrics.jsonl, results.json, model/) (an arm with
a grid: `<arm>@<point>-seed<s>/`, one per grid point swept, see `select_point`), and
`results/<claim>.json` the claim's results, written from those runs (`--quick` uses
`quick/runs` and `quick/results`, so a first look never mixes with the full runs). A run
whose results.json exists is reused once its config.json is found to be the same run; an
interrupted one resumes from its last checkpoint. `progress/<claim>/<run>/` holds each
finished run's record, to commit: on a fresh checkout a run that stands alone (no model
started from, none starting from it) is restored from it (`petra.reproduce.records`). A
measurement is kept in `runs/<claim>/measurement.json` and reused while it records the same
repeats and budget.
The results JSON is always written anew from the registry and what the runs hold.

Settings chosen on held-out data: an arm with a `grid` runs every point of it on the first
seed, keeps the point best by the claim's `selection` metric (a held-out metric, never the
reported one), and runs the other seeds at that point; the sweep (each point's held-out
value and its training-loss curve) goes into the results JSON beside the arm. A setting
given with --set, or by the quick budget, is not chosen: the grid loses that setting.

What defines the arms is not for --set: a model setting that an arm (or the claim's
`settings`) sets, such as the embedding kind, the head tying, the backbone, p or the sizes,
is refused, since the report would name arms that did not run. Every --set given is named
in each arm's description in the results JSON, and so in the report.

Provenance, written here and never by hand: each arm records the effective settings its runs'
config.json hold (`settings`: the model, train and data sections with every default filled
in, one copy for the seeds that share them) and each setting that is not the registry's
protocol (`departures`: what a --set, --preset or the quick budget changed); each arm
records per seed the environment its run recorded when it finished (`trained_on`: machine,
torch, device, dtype; null for a run of an earlier petra), and the results JSON the
environment of the process that wrote it, which made its measurements and analyses
(`environment`, see `petra.provenance`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import shlex
import time
from pathlib import Path

import torch

from petra.atomic import atomic_write_json, read_json
from petra.provenance import environment
from petra.reproduce import records, stats
from petra.reproduce.analyses import cached, source_digest
from petra.reproduce.claims import CLAIMS, Arm, Claim, claim_arms, get_claim
from petra.tasks.run import (
    check_same_run,
    effective_settings,
    load_preset,
    parse_overrides,
    run_config,
    run_or_reuse,
)
from petra.tasks.settings import (
    SECTIONS,
    SET_BY_TASK,
    Change,
    Point,
    change_keys,
    format_change,
    grid_points,
    item_keys,
    point_names,
    setting_key,
    text,
)
from petra.training.trainer import TrainingDiverged, read_metrics

DEFAULT_SEEDS = 3
QUICK_SEEDS = 1
QUICK_REPEATS = 2


def layout(out: str | Path, quick: bool) -> tuple[Path, Path]:
    """(runs root, results folder) under `out`."""
    base = Path(out) / "quick" if quick else Path(out)
    return base / "runs", base / "results"


def records_root(out: str | Path, quick: bool) -> Path:
    """Where the finished runs' records are kept under `out` (`petra.reproduce.records`)."""
    return layout(out, quick)[0].parent / "progress"


def arm_points(arm: Arm, fixed: set[str] = frozenset()) -> list[Point]:
    """Every point of the arm's grid (one value per setting, as typed changes), without the
    settings in `fixed`; [()] without a grid."""
    return grid_points({key: values for key, values in arm.grid.items() if key not in fixed})


def fixed_settings(claim: Claim, quick: bool, extra: list[str]) -> set[str]:
    """The settings that no grid may choose in this run: those given with --set (e.g.
    `--set train.lr=2e-05` with `--preset pete-paper` runs the paper's lr) and those of the
    quick budget."""
    return {*(setting_key(item) for item in extra), *(claim.quick if quick else {})}


def point_name(point: Point) -> str:
    """`lr=0.001,steps=142` for (("train.lr", 0.001), ("train.steps", 142))."""
    return ",".join(point_names(point))


def _texts(changes) -> list[str]:
    """Changes as the `--set` values they are (for the results JSON and the report)."""
    return [format_change(key, value) for key, value in changes]


def run_directory(runs: Path, label: str, seed: int, point: Point = ()) -> Path:
    name = f"{label}@{point_name(point)}" if point else label
    return runs / f"{name}-seed{seed}"


def arm_overrides(
    arm: Arm,
    seed: int,
    runs: Path,
    claim: Claim,
    quick: bool,
    extra: list[str],
    point: Point = (),
    chosen: dict[str, Point] | None = None,
    preset: str | None = None,
) -> list[Change]:
    """The typed changes of one arm's run: the claim's own settings, the arm's, its grid
    `point`, the claim's quick budget, the user's --set values (read for the arm's task and
    `preset`, by default its own), the seed, and the model to start from (the run of
    `init_from` at its `chosen` point, as an absolute path, so that `--out` may be spelled
    any way)."""
    quick_budget = claim.quick.items() if quick else ()
    items = [*claim.settings.items(), *arm.overrides.items(), *point, *quick_budget]
    items += parse_overrides(arm.task, preset or arm.preset, extra, items)
    items.append(("train.seed", seed))
    if arm.init_from is not None:
        start_point = (chosen or {}).get(arm.init_from, ())
        start = run_directory(runs, arm.init_from, seed, start_point) / "model"
        items.append(("train.init", str(start.resolve())))
    return items


def _command(claim: Claim, seeds: int, quick: bool, preset, extra: list[str], out) -> str:
    parts = ["petra reproduce", claim.id, f"--seeds {seeds}"]
    parts += ["--quick"] * quick + ([f"--preset {preset}"] if preset else [])
    parts += [f"--set {shlex.quote(item)}" for item in extra] + [f"--out {shlex.quote(str(out))}"]
    return " ".join(parts)


def _curves(run: Path, keep=None) -> dict[str, list[list[float]]]:
    """Every logged evaluation series of a run and its training loss: {"eval/loss": [[step,
    value], ...], "train/loss": [...], ...}; only the series named in `keep`, if given."""
    curves: dict[str, list[list[float]]] = {}
    for record in read_metrics(run):
        for key, value in record.items():
            wanted = key.startswith("eval/") or key == "train/loss"
            if wanted and (keep is None or key in keep) and isinstance(value, (int, float)):
                curves.setdefault(key, []).append([record["step"], value])
    return curves


@dataclasses.dataclass
class _Plan:
    """What every run of one claim shares: the claim reporting, the claim whose arms run
    (`owner`), where they run, the user's options, and the grid point chosen per arm."""

    claim: Claim
    owner: Claim
    runs: Path
    records: Path
    quick: bool
    preset: str | None
    extra: list[str]
    progress: bool
    chosen: dict[str, Point] = dataclasses.field(default_factory=dict)

    def points(self, arm: Arm) -> list[Point]:
        """The arm's grid points to choose among in this run ([()]: nothing to choose)."""
        return arm_points(arm, fixed_settings(self.owner, self.quick, self.extra))

    def run(self, arm: Arm, seed: int, point: Point, what: str) -> tuple[dict, Path]:
        """Run (or reuse) the arm at `point` on `seed`: (its results, its directory)."""
        directory = run_directory(self.runs, arm.label, seed, point)
        record = self.records / directory.name
        items = self.overrides(arm, seed, point)
        started = time.monotonic()
        print(f"[{self.claim.id}] {what}", flush=True)
        restorable = self.restorable(arm)
        error = records.diverged(record, directory) if restorable else None
        if restorable and (error is not None or records.pending(record, directory)):
            # a record of other settings is refused, named, before anything is copied
            config = run_config(arm.task, self.preset or arm.preset, changes=items)
            check_same_run(record, config, f"delete the record {record} to train this run again")
            if error is not None:
                print(f"[{self.claim.id}]   diverged, as its record {record} says", flush=True)
                raise TrainingDiverged(error)  # as it was raised, so results read the same
            records.restore(record, directory)
            print(f"[{self.claim.id}]   restored from its record {record}", flush=True)
        try:
            results = run_or_reuse(
                arm.task, self.preset or arm.preset, items, directory, self.progress
            )
        except TrainingDiverged as diverged:
            if restorable:
                records.keep_diverged(directory, record, str(diverged))
            raise
        if restorable:  # a record the arm can never be restored from is not kept
            records.keep(directory, record)
        print(f"[{self.claim.id}]   done in {time.monotonic() - started:.0f} s", flush=True)
        return results, directory

    def restorable(self, arm: Arm) -> bool:
        """Whether the arm's runs may be restored from their records: not where a run starts
        from another's model, nor the runs others start from (a record has no model)."""
        return arm.init_from is None and all(o.init_from != arm.label for o in self.owner.arms)

    def overrides(self, arm: Arm, seed: int, point: Point) -> list[Change]:
        return arm_overrides(
            arm, seed, self.runs, self.owner, self.quick, self.extra, point, self.chosen,
            self.preset,
        )  # fmt: skip


def select_point(plan: _Plan, arm: Arm, seed: int) -> tuple[Point, dict]:
    """Run every point of the arm's grid on `seed` (or reuse it) and return the point whose
    final `selection.metric` is best, with the record of the sweep. A point whose run
    diverges is recorded as such and never chosen."""
    selection = plan.owner.selection
    if selection is None:
        raise ValueError(f"{plan.owner.id}: arm {arm.label} has a grid but the claim no selection")
    points, sweep = plan.points(arm), []
    for index, point in enumerate(points, 1):
        what = f"choosing {arm.label} {index}/{len(points)}: {point_name(point)}, seed {seed}"
        try:
            results, directory = plan.run(arm, seed, point, what)
        except TrainingDiverged as error:
            print(f"[{plan.claim.id}]   diverged: {error}", flush=True)
            sweep.append({"settings": _texts(point), "value": None, "diverged": str(error)})
            continue
        if selection.metric not in results["metrics"]:
            raise ValueError(
                f"{plan.owner.id}: the run {directory} has no {selection.metric!r} to choose "
                "by; is the held-out split set (the claim's settings)?"
            )
        value = results["metrics"][selection.metric]
        curves = _curves(directory, keep={"train/loss", f"eval/{selection.metric}"})
        entry = {"settings": _texts(point), "value": value, "curves": curves}
        if not (isinstance(value, (int, float)) and math.isfinite(value)):  # e.g. a collapse
            entry |= {"value": None, "diverged": f"{selection.metric} is {value}"}
        sweep.append(entry)
    finite = [entry for entry in sweep if entry["value"] is not None]
    if not finite:
        raise ValueError(
            f"{plan.owner.id}: no grid point of arm {arm.label} gave a finite {selection.metric}"
        )
    sign = 1 if selection.better == "higher" else -1
    best = max(finite, key=lambda entry: sign * entry["value"])  # the first of equals
    record = {"metric": selection.metric, "better": selection.better, "seed": seed}
    return points[sweep.index(best)], {**record, "points": sweep, "chosen": best["settings"]}


def _train_arms(
    claim: Claim, seeds: list[int], out, quick: bool, preset, extra: list[str], progress: bool
) -> tuple[dict, dict[str, dict[int, Path]]]:
    """Run (or reuse) every arm x seed of the claim whose runs `claim` reads, an arm with a
    grid after choosing its point on the first seed; return the arms' results and their run
    directories."""
    owner = get_claim(claim.runs_of) if claim.runs_of else claim
    runs = layout(out, quick)[0] / owner.id
    plan = _Plan(claim, owner, runs, records_root(out, quick) / owner.id, quick, preset, extra,
                 progress)  # fmt: skip
    order = [(arm, seed) for seed in seeds for arm in owner.arms]
    arms: dict[str, dict] = {}
    directories: dict[str, dict[int, Path]] = {}
    for index, (arm, seed) in enumerate(order, 1):
        selection = None
        if plan.points(arm) != [()] and seed == seeds[0]:
            plan.chosen[arm.label], selection = select_point(plan, arm, seed)
        point = plan.chosen.get(arm.label, ())
        what = f"run {index}/{len(order)}: {arm.label} seed {seed}"
        results, directory = plan.run(arm, seed, point, what)
        items = plan.overrides(arm, seed, point)
        entry = arms.setdefault(
            arm.label,
            {
                "description": arm_description(arm, extra),
                "task": arm.task,
                "preset": preset or arm.preset,
                "overrides": _texts(c for c in items if c[0] not in ("train.seed", "train.init")),
                "params": results["params"],
                "per_seed": {},
                "steps_per_s": {},
                "curves": {},
                "trained_on": {},
            },
        )
        if selection is not None:
            entry["selection"] = selection
        entry["per_seed"][str(seed)] = {
            k: v for k, v in results["metrics"].items() if v is None or isinstance(v, (int, float))
        }
        entry["steps_per_s"][str(seed)] = results["steps_per_s"]
        entry["curves"][str(seed)] = _curves(directory)
        entry["trained_on"][str(seed)] = results.get("environment")
        directories.setdefault(arm.label, {})[seed] = directory
    for arm in owner.arms:
        arms[arm.label]["settings"] = trained_settings(plan, arm, directories[arm.label])
    return arms, directories


def recorded_settings(config: dict, seed: int, settings: dict | None = None) -> dict:
    """The model, train and data sections a run's `config` trains, every default filled in:
    `settings`, as the run recorded them when it trained (results.json), else
    `effective_settings(config)` with this petra's defaults; without what the task sets from
    its data (vocabulary size, labels), the seed, and with the model it starts from named by
    its run, the same seed's (`fourier-58k-nli@lr=0.001`), not by a path that names the seed
    and the folder."""
    settings = settings or effective_settings(config)
    train = {key: value for key, value in settings["train"].items() if key != "seed"}
    if train["init"] is not None:
        run = Path(train["init"]).parent.name
        same_seed = run.endswith(f"-seed{seed}")
        train["init"] = run.removesuffix(f"-seed{seed}") if same_seed else train["init"]
    model = {key: value for key, value in settings["model"].items() if key not in SET_BY_TASK}
    return {"model": model, "train": train, "data": settings["data"]}


def departures(recorded: dict, protocol: dict, grid: dict[str, str]) -> list[dict]:
    """Each setting of `recorded` that is not the registry's `protocol` (both as
    `recorded_settings` gives them): {"setting": "model.dim", "run": 256, "protocol": 128};
    a setting of the arm's `grid` given at run time has its protocol value from `grid` (the
    registry would choose it on held-out data)."""
    found = []
    for section in SECTIONS:
        ran, default = recorded[section], protocol[section]
        for key in sorted(set(ran) | set(default)):
            name = f"{section}.{key}"
            if ran.get(key) != default.get(key):
                found.append(
                    {
                        "setting": name,
                        "run": ran.get(key),
                        "protocol": grid.get(name, default.get(key)),
                    }
                )
    return found


def trained_settings(plan: _Plan, arm: Arm, directories: dict[int, Path]) -> list[dict]:
    """What the arm's runs trained, read from their config.json (`recorded_settings`), with
    its `departures` from the registry's protocol (the arm's own preset and settings at its
    chosen grid point, without the user's --set, --preset or the quick budget): one entry
    per group of seeds whose runs share both, `{"seeds": [0, 1, 2], "model": ..., "train":
    ..., "data": ..., "departures": [...]}` (one entry unless the runs differ beyond their
    seed)."""
    grid = {
        key: "chosen on held-out data from " + ", ".join(text(value) for value in values)
        for key, values in arm.grid.items()
    }
    groups: dict[str, dict] = {}  # by the settings and departures they share
    for seed, directory in directories.items():
        at_run_time = read_json(directory / "results.json", "the run's results").get("settings")
        recorded = recorded_settings(
            read_json(directory / "config.json", "the run's settings"), seed, at_run_time
        )
        point = plan.chosen.get(arm.label, ())
        items = arm_overrides(arm, seed, plan.runs, plan.owner, False, [], point, plan.chosen)
        protocol = recorded_settings(run_config(arm.task, arm.preset, changes=items), seed)
        entry = {
            **recorded,
            "departures": departures(recorded, protocol, grid),
            # False: an earlier petra's run, its defaults filled in by this one's
            "recorded_at_run_time": at_run_time is not None,
        }
        group = groups.setdefault(json.dumps(entry, sort_keys=True), {"seeds": [], **entry})
        group["seeds"].append(seed)
    return list(groups.values())


def check_claim(claim: Claim, quick: bool, preset, extra: list[str]) -> None:
    """Refuse settings that cannot run, before anything runs: an arm that starts from another
    arm's model takes no model settings (its model is the one it starts from), no setting may
    change what defines the arms (see `arm_defining_settings`), and every arm's settings are
    checked, an arm that starts from another's finding its task in the preset."""
    if claim.measure and (preset or extra):
        raise ValueError(
            f"{claim.id} measures models of its own protocol: --preset and --set do not apply"
        )
    owner = get_claim(claim.runs_of) if claim.runs_of else claim
    given = [item for item in extra if item.startswith("model.")]
    started = next((arm for arm in owner.arms if arm.init_from is not None), None)
    if given and started is not None:
        raise ValueError(
            f"{claim.id}: arm {started.label} starts from the model of {started.init_from}, "
            f"so it takes no model settings: drop --set {given[0]}"
        )
    _refuse_arm_defining(claim, owner, extra)
    fixed = fixed_settings(owner, quick, extra)
    for arm in owner.arms:
        if arm.init_from is None:
            for point in arm_points(arm, fixed):
                runs = Path("runs")
                items = arm_overrides(arm, 0, runs, owner, quick, extra, point, None, preset)
                run_config(arm.task, preset or arm.preset, changes=items)
        else:
            load_preset(arm.task, preset or arm.preset)


def arm_defining_settings(claim: Claim) -> dict[str, tuple[str, str]]:
    """The model settings that define the claim's arms: every `model.*` key that the claim's
    `settings` or an arm's own overrides set (the embedding kind and its options, the head
    tying, the backbone, p, the sizes...), mapped to (who sets it, the value it sets): a
    `--set` of one would run other arms than those the report names."""
    defining: dict[str, tuple[str, str]] = {}
    sources = [("the claim's settings", claim.settings)]
    sources += [(f"arm {arm.label} ({arm.description})", arm.overrides) for arm in claim.arms]
    for who, changes in sources:
        for change in changes.items():
            for key in change_keys(*change):
                if key.startswith("model."):
                    defining.setdefault(key, (who, format_change(*change)))
    return defining


def _refuse_arm_defining(claim: Claim, owner: Claim, extra: list[str]) -> None:
    """Refuse a --set of what defines the arms of `owner` (whose runs `claim` reads)."""
    defining = arm_defining_settings(owner)
    for item in extra:
        for key in item_keys(item):
            if key in defining:
                who, theirs = defining[key]
                raise ValueError(
                    f"{claim.id}: --set {item} changes what defines its arms ({who} sets "
                    f"{theirs}), so the report would name arms that did not run: drop it, or "
                    "try other settings with petra train or petra compare"
                )


def arm_description(arm: Arm, extra: list[str]) -> str:
    """The arm's description, with the user's `--set` values when there are any: `Kronecker,
    untied head (paper's arm) (with --set train.steps=30, --set data.tokenizer=gpt2)`."""
    if not extra:
        return arm.description
    return f"{arm.description} (with {', '.join(f'--set {item}' for item in extra)})"


def _function(module: str, name: str):
    return getattr(importlib.import_module(f"petra.reproduce.{module}"), name)


def _measurement(claim: Claim, folder: Path, repeats: int, quick: bool) -> dict:
    """The claim's measurement: the one kept in `folder` when it has these repeats and
    budget and was made by the present source of the measuring module and the statistics it
    writes its notes with (not its function's alone: a changed helper changes the record),
    else measured now and kept."""
    path = folder / "measurement.json"
    function = _function("measures", claim.measure)
    code = source_digest(importlib.import_module(function.__module__), stats)
    key = {"repeats": repeats, "quick": quick, "code": code}

    def measure():
        print(f"[{claim.id}] measuring, {repeats} repeats", flush=True)
        return function(repeats=repeats, quick=quick)

    reused = f"[{claim.id}] measured before: {path} (delete it to measure again)"
    return cached(path, key, measure, "a kept measurement", "measured", reused)


def run_claim(
    claim: Claim,
    out: str | Path = "reproduction",
    seeds: int = DEFAULT_SEEDS,
    quick: bool = False,
    preset: str | None = None,
    extra: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Run one claim (reusing what is finished) and write its results JSON; return its path."""
    extra = list(extra or [])
    results_dir = layout(out, quick)[1]
    path = results_dir / f"{claim.id}.json"
    count = claim.seeds or seeds
    if quick:
        count = QUICK_REPEATS if claim.measure else QUICK_SEEDS
    seed_list = list(range(count))
    result = {
        "claim": claim.id,
        "order": claim.order,
        "title": claim.title,
        "paper": claim.paper,
        "where": claim.where,
        "paper_figure": claim.paper_figure,
        "protocol": claim.protocol,
        "differences": list(claim.differences),
        "paper_scale": claim.paper_scale,
        "command": _command(claim, count, quick, preset, extra, out),
        # this process's: its measurements and analyses build their models on the CPU
        "environment": environment("cpu", torch.get_default_dtype()),
        "quick": quick,
        "seeds": seed_list,
        "comparisons": [dataclasses.asdict(c) for c in claim.comparisons],
        "joint": [dataclasses.asdict(j) for j in claim.joint],
        "checks": [],
        "plots": [dict(p) for p in claim.plots],
        "notes": list(claim.notes),
        # how many of `notes` are the registry's (an analysis appends its own after them)
        "registry_notes": len(claim.notes),
        "metrics": list(claim.metrics),
    }
    if claim.selection is not None:
        result["selection"] = dataclasses.asdict(claim.selection)
    if claim.measure:
        measured = _measurement(claim, layout(out, quick)[0] / claim.id, count, quick)
        result |= {"arms": measured["arms"], "checks": measured.get("checks", [])}
        result["notes"] += measured.get("notes", [])
    else:
        arms, directories = _train_arms(claim, seed_list, out, quick, preset, extra, progress)
        if claim.analysis:
            analysed = _function("analyses", claim.analysis)(arms, directories, seed_list, quick)
            for directory in (d for by_seed in directories.values() for d in by_seed.values()):
                record = records_root(out, quick) / directory.parent.name / directory.name
                if record.is_dir():  # the analyses' kept probe results join the run's record
                    records.keep(directory, record)
            arms = analysed["arms"]
            result["notes"] += analysed.get("notes", [])
            result["checks"] += analysed.get("checks", [])
        result["arms"] = arms
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result, indent=1)
    print(f"[{claim.id}] wrote {path}", flush=True)
    return path


def reproduce(
    claim_ids: list[str],
    out: str | Path = "reproduction",
    seeds: int = DEFAULT_SEEDS,
    quick: bool = False,
    preset: str | None = None,
    extra: list[str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run each claim in turn (unknown ids refused before anything runs)."""
    if not claim_ids:
        raise ValueError("name claims to run (see petra reproduce --list), or give --all")
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    claims = [get_claim(claim_id) for claim_id in claim_ids]
    for claim in claims:
        check_claim(claim, quick, preset, list(extra or []))
    return [run_claim(c, out, seeds, quick, preset, extra, progress) for c in claims]


def list_claims() -> str:
    """One line per claim: id, paper and where, and how it is run."""
    lines = []
    for claim in sorted(CLAIMS.values(), key=lambda c: c.order):
        arms = claim_arms(claim)
        how = (
            f"measures ({claim.measure})"
            if claim.measure
            else f"analyses the runs of {claim.runs_of}"
            if claim.runs_of
            else f"{len(arms)} arms, presets {sorted({a.preset for a in arms})}"
        )
        lines.append(f"{claim.id:32s} {claim.paper}, {claim.where}: {how}")
    return "\n".join(lines)
