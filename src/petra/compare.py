"""`petra compare`: the same task, data, budget and seeds for each embedding kind and
backbone, and each point of a grid of other settings, side by side.

Every arm (kind x backbone x grid point x seed) is an ordinary run in
`OUT/arms/<kind>-<backbone>[-<key>=<value>...]-seed<s>` (an arm whose results.json exists is
reused, so an interrupted comparison continues). A grid axis (`--grid model.slices=1,2,4`)
is any `--set` key with a list of values; an axis over an embedding option spans only the
kinds that have that option. A parameter budget (`--budget 1M`, or `--budget-ratio 0.1` of
the learned V x d table) sizes each kind's embedding by its own knob, closest to the budget
without exceeding it (`petra.embeddings.budget`); the chosen options join the arm's
settings and name. Then `OUT/results.json` lists the arms with their full setting,
`OUT/table.md` has one row per kind, backbone and grid point with parameters, wall time,
steps/s and the task's metrics as mean +- standard deviation over seeds, `OUT/curves.png`
shows every arm's training loss, and `OUT/metric_vs_params.png` the main metric against the
total parameters.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from petra.atomic import atomic_write_json, atomic_write_text
from petra.embeddings import (
    BudgetUnreachable,
    Sizing,
    embedding_options,
    format_sizing,
    size_for_budget,
)
from petra.embeddings import kinds as known_kinds
from petra.embeddings.budget import TOLERANCE, check_fits_in_memory
from petra.models.config import BACKBONES
from petra.plotting import pyplot, save
from petra.tasks.run import (
    TASKS,
    model_config_before_data,
    parse_overrides,
    run_config,
    run_or_reuse,
    task_vocab_size,
)
from petra.tasks.settings import (
    Change,
    Point,
    change_keys,
    embedding_changes,
    embedding_option,
    grid_points,
    item_keys,
    point_names,
    setting_key,
    split_item,
)
from petra.training import read_metrics

MAIN_METRIC = {
    "nli-sts": "spearman",
    "sts": "spearman",
    "distill": "spearman",
    "classify": "accuracy",
    "lm": "loss",
}


# settings that the arms themselves vary: given with --set they would be silently overwritten
ARM_KEYS = ("model.embedding", "model.backbone", "train.seed")  # as `change_keys` spells them


@dataclass(frozen=True)
class Budget:
    """Trainable embedding parameters every arm is sized to: `params`, or `ratio` of the
    learned V x d table; a kind must land within `tolerance` below it."""

    params: int | None = None
    ratio: float | None = None
    tolerance: float = TOLERANCE

    def __post_init__(self):
        if (self.params is None) == (self.ratio is None):
            raise ValueError("give a budget as a number of parameters or as a ratio, not both")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ValueError(f"--budget-ratio must lie in (0, 1], got {self.ratio}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"--budget-tolerance must lie in [0, 1), got {self.tolerance}")

    def of(self, vocab_size: int, dim: int) -> int:
        """The budget in parameters at V = `vocab_size` and d = `dim`; `ValueError` when a ratio
        leaves less than one parameter, or when the budget would not fit in memory (checked
        before any kind is sized or built to it)."""
        if self.params is not None:
            count, what = self.params, f"--budget {self.params:,}"
        else:
            table = vocab_size * dim
            if self.ratio * table < 1:
                raise ValueError(
                    f"--budget-ratio {self.ratio!r} of the learned V x d table ({vocab_size:,} x "
                    f"{dim} = {table:,} parameters) is {self.ratio * table:.3g} parameters, less "
                    f"than one: give a ratio of at least {1 / table:.3g}"
                )
            count = int(self.ratio * table)
            what = (
                f"--budget-ratio {self.ratio!r} ({count:,} parameters at V={vocab_size:,}, d={dim})"
            )
        check_fits_in_memory(count, what, "give a smaller budget")
        return count

    def as_dict(self) -> dict:
        return {"params": self.params, "ratio": self.ratio, "tolerance": self.tolerance}


def arm_name(kind: str, backbone: str, seed: int, point=()) -> str:
    """`kronecker-standard-seed0`, or with a grid point `learned-spectral-slices=2-seed0`."""
    return "-".join([kind, backbone, *point_names(point), f"seed{seed}"])


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["model.slices=1,2,4", ...]` -> {"model.slices": ["1", "2", "4"], ...} (values are
    typed like `--set` values, arm by arm)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        form = "section.key=value1,value2,..."
        key, text = split_item(item, "--grid", form)
        values = [value.strip() for value in text.split(",") if value.strip()]
        if not values:
            raise ValueError(f"--grid takes {form}, got {item!r}")
        if set(change_keys(key, None)) & set(ARM_KEYS):
            raise ValueError(f"--grid {key} is what the arms vary: use --kinds or --backbones")
        if key in grid or len(set(values)) != len(values):
            raise ValueError(f"--grid {key}: a key or a value is given twice")
        grid[key] = values
    return grid


def kind_points(grid: dict[str, list[str]], kind: str) -> list[Point]:
    """Every combination of the grid's values for an arm of `kind` (`grid_points`); an axis
    over an embedding option counts only for the kinds that have it."""
    options = (None, *embedding_options(kind))
    return grid_points({k: values for k, values in grid.items() if embedding_option(k) in options})


def _check_arms(
    kinds: list[str], backbones: list[str], seeds: list[int], overrides, grid: dict
) -> None:
    choices = (("kinds", kinds, known_kinds()), ("backbones", backbones, BACKBONES))
    for name, values, valid in choices:
        if not values:
            raise ValueError(f"--{name} is empty; choose from {valid}")
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise ValueError(f"--{name}: unknown {unknown}; choose from {valid}")
    for name, values in (("kinds", kinds), ("backbones", backbones), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise ValueError(f"--{name} lists a value twice: {values}")
    if not seeds:
        raise ValueError("--seeds is empty: give at least one seed, e.g. --seeds 0,1,2")
    for item in overrides:
        key = setting_key(item)
        if set(item_keys(item)) & set(ARM_KEYS):
            raise ValueError(
                f"--set {key} is what the arms vary: use --kinds, --backbones or --seeds"
            )
        if key in grid:
            raise ValueError(f"{key} is both set (--set) and varied (--grid): choose one")
    if "train.init" in {*grid, *map(setting_key, overrides)}:
        raise ValueError(
            "train.init starts a run from one saved model, while compare builds each arm's "
            "model: use petra train --init for each starting point"
        )
    for key in [*map(setting_key, overrides), *grid]:
        option = embedding_option(key)
        if option is not None and not any(option in embedding_options(k) for k in kinds):
            raise ValueError(f"{key}: none of the kinds {kinds} has an option {option!r}")


def arm_settings(
    task: str,
    preset: str,
    kind: str,
    backbone: str,
    seed: int,
    overrides: list[str],
    point: Point = (),
) -> list[Change]:
    """The typed changes of one arm: the shared `--set` values, each embedding option only
    for the kinds that have it (`model.embedding.pos_dim=32` reaches the Kronecker arms
    alone), then the arm's grid point (both read as the arm's kind types them), its kind,
    backbone and seed."""
    shared = [
        item for item in overrides if embedding_option(item) in (None, *embedding_options(kind))
    ]
    arm = [("model.embedding.kind", kind), ("model.backbone", backbone), ("train.seed", seed)]
    given = parse_overrides(task, preset, [*shared, *point], arm)
    return [*given, *arm]


def size_arm(task: str, config: dict, budget: Budget, vocab_sizes: dict) -> Sizing:
    """The sizing of one arm's embedding for `budget`, at the arm's V (of its data section's
    tokenizer, looked up once per data section in `vocab_sizes`) and d."""
    data_key = json.dumps(config["data"], sort_keys=True)
    if data_key not in vocab_sizes:
        vocab_sizes[data_key] = task_vocab_size(task, config["data"])
    model = model_config_before_data(task, config["model"])
    vocab, dim = vocab_sizes[data_key], model.dim
    return size_for_budget(
        model.embedding_kind, vocab, dim, budget.of(vocab, dim), tolerance=budget.tolerance,
        **model.embedding_options,
    )  # fmt: skip


def _plan(task, preset, kinds, backbones, seeds, overrides, axes, budget) -> list[tuple]:
    """(kind, backbone, point, seed, sizing, typed changes, run config) of every arm, all
    checked (and each
    kind sized to the budget) before any arm runs; the kinds that cannot reach the budget
    are refused together."""
    plan, refused, vocab_sizes = [], {}, {}
    for kind in kinds:
        for backbone in backbones:
            for point in kind_points(axes, kind):
                for seed in seeds:
                    settings = arm_settings(task, preset, kind, backbone, seed, overrides, point)
                    config = run_config(task, preset, changes=settings)
                    sizing = None
                    if budget is not None:
                        try:
                            sizing = size_arm(task, config, budget, vocab_sizes)
                        except BudgetUnreachable as error:
                            refused.setdefault(kind, str(error))
                            continue
                        settings = [*settings, *embedding_changes(sizing.options)]
                        config = run_config(task, preset, changes=settings)
                    plan.append((kind, backbone, point, seed, sizing, settings, config))
    if refused:
        reasons = "\n".join(f"  - {reason}" for reason in refused.values())
        raise ValueError(
            f"leave out the kinds that cannot reach the budget ({', '.join(refused)}):\n{reasons}"
        )
    return plan


def compare(
    task: str,
    kinds: list[str],
    backbones: list[str],
    preset: str,
    seeds: list[int],
    out: str | Path,
    overrides: list[str] | None = None,
    progress: bool = True,
    grid: list[str] | None = None,
    budget: Budget | None = None,
) -> dict:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    overrides = list(overrides or [])
    axes = parse_grid(grid or [])
    _check_arms(kinds, backbones, seeds, overrides, axes)
    out = Path(out)
    plan = _plan(task, preset, kinds, backbones, seeds, overrides, axes, budget)
    if budget is not None:  # the sizing is part of the result, printed even when quiet
        sizings = (arm[4] for arm in plan)
        lines = (f"budget {s.budget:,} embedding parameters: {s.describe()}" for s in sizings)
        print("\n".join(dict.fromkeys(lines)), flush=True)  # each kind's sizing once
    arms = []
    for kind, backbone, point, seed, sizing, settings, _ in plan:
        sized = {} if sizing is None else sizing.options
        directory = out / "arms" / arm_name(kind, backbone, seed, [*point, *sized.items()])
        results = run_or_reuse(task, preset, settings, directory, progress)
        arms.append(
            {
                "kind": kind,
                "backbone": backbone,
                "setting": dict(point),
                **({} if sizing is None else {"sized": sized, "budget": sizing.budget}),
                "seed": seed,
                "params": results["params"],
                "metrics": results["metrics"],
                "wall_time_s": results["wall_time_s"],
                "steps_per_s": results["steps_per_s"],
                "checkpoint": str(directory / "model"),
                "run": str(directory),
            }
        )
    summary = {
        "task": task,
        "preset": preset,
        "overrides": overrides,
        "grid": axes,
        "budget": None if budget is None else budget.as_dict(),
        "seeds": seeds,
        "arms": arms,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", summary)
    table = format_table(summary)
    atomic_write_text(out / "table.md", table + "\n")
    plot_curves(summary, out / "curves.png")
    plot_metric_vs_params(summary, out / "metric_vs_params.png")
    return summary


def _mean_spread(values: list) -> str:
    values = [v for v in values if v is not None]  # e.g. steps_to_target never reached
    if not values:
        return "n/a"
    if all(float(v).is_integer() for v in values) and len(set(values)) == 1:
        return f"{int(values[0]):,}"  # a count, the same in every seed
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _groups(summary: dict) -> dict[tuple, list[dict]]:
    """The arms of each (kind, backbone, grid point), over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for arm in summary["arms"]:
        point = tuple(arm.get("setting", {}).items())
        groups.setdefault((arm["kind"], arm["backbone"], point), []).append(arm)
    return groups


def _label(kind: str, backbone: str, point: tuple) -> str:
    return " / ".join([kind, backbone, *(f"{key}={value}" for key, value in point)])


def format_table(summary: dict) -> str:
    """Markdown: one row per (kind, backbone, grid point), metrics as mean ± std over seeds;
    a grid key an arm's kind does not have shows as "-"."""
    metric_names = [
        k
        for k, v in summary["arms"][0]["metrics"].items()
        if (v is None or isinstance(v, (int, float)))
        and not k.startswith("embedding/")
        and k != "pairs"
    ]
    with_head = "head_tied" in summary["arms"][0]["params"]  # causal LMs: tied or its own
    grid_keys = list(summary.get("grid", {}))
    sized = summary.get("budget") is not None
    header = [
        "embedding",
        "backbone",
        *grid_keys,
        *(["sized to the budget by"] if sized else []),
        "total params",
        "embedding params",
        *(["head params"] if with_head else []),
        "wall time s",
        "steps/s",
        *metric_names,
    ]
    texts = 2 + len(grid_keys) + int(sized)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * texts + "---:|" * (len(header) - texts),
    ]
    for (kind, backbone, point), arms in _groups(summary).items():
        params = arms[0]["params"]
        cells = [
            kind,
            backbone,
            *(dict(point).get(key, "-") for key in grid_keys),
            *([format_sizing(arms[0]["sized"])] if sized else []),
            f"{params['total']:,}",
            f"{params['embedding']:,}",
            *([_head(params)] if with_head else []),
            _mean_spread([a["wall_time_s"] for a in arms]),
            _mean_spread([a["steps_per_s"] for a in arms]),
            *(_mean_spread([a["metrics"].get(name) for a in arms]) for name in metric_names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _head(params: dict) -> str:
    return "0 (tied)" if params["head_tied"] else f"{params['head']:,} (untied)"


def plot_curves(summary: dict, path: Path) -> None:
    """Training loss of every arm against the step, on one chart."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for arm in summary["arms"]:
        points = [
            (x["step"], x["train/loss"]) for x in read_metrics(arm["run"]) if "train/loss" in x
        ]
        point = tuple(arm.get("setting", {}).items())
        label = f"{_label(arm['kind'], arm['backbone'], point)} / seed {arm['seed']}"
        axes.plot(*zip(*points, strict=True), label=label, linewidth=1.2)
    axes.set(xlabel="step", ylabel="training loss", title=f"{summary['task']}: training loss")
    save(figure, axes, path)


def plot_metric_vs_params(summary: dict, path: Path) -> None:
    """The task's main metric (mean over seeds, bars for the spread) against total parameters."""
    plt = pyplot()
    metric = MAIN_METRIC[summary["task"]]
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for (kind, backbone, point), arms in _groups(summary).items():
        values = [a["metrics"][metric] for a in arms]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        axes.errorbar(
            arms[0]["params"]["total"],
            statistics.mean(values),
            yerr=spread,
            fmt="o",
            capsize=3,
            label=_label(kind, backbone, point),
        )
    axes.set_xscale("log")
    axes.set(
        xlabel="trainable parameters (log scale)",
        ylabel=metric,
        title=f"{summary['task']}: {metric} against parameters",
    )
    save(figure, axes, path)
