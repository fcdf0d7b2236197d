"""What a claim reads from trained runs beyond their metrics: steps to a target loss, the
spelling probe, norm drift, typographic clustering.

Each function takes the arms' results (`{label: {"per_seed": {"0": metrics}, "curves":
{"0": {"eval/loss": [[step, value], ...]}}, ...}}`), their run directories (`{label: {seed:
Path}}`), the seeds and whether the claim is a quick first look, and returns `{"arms": ...,
"notes": [...]}` with the claim's metrics in each arm's `per_seed`. Probe results are cached
in the run directory (`<probe>.json`), so a claim re-read later does not probe again.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from petra.tasks.run import read_json

BASELINE = "learned-tied"
METHOD = "kronecker-untied"


def lm_steps_to_target(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """`steps_to_target` of every arm and seed: the first evaluated step at which its
    validation loss is at or below the final validation loss of the tied learned arm of the
    same seed. An arm that never reaches it gets the lower bound steps + eval_every, and
    `target_reached` false: a censored value that can only understate how much later it is
    (dropping it would bias the comparison towards the arm that misses)."""
    from petra.tasks.lm import steps_to_target

    arms = copy.deepcopy(arms)
    for seed in seeds:
        target = arms[BASELINE]["per_seed"][str(seed)]["loss"]
        for label, arm in arms.items():
            curve = [(step, loss) for step, loss in arm["curves"][str(seed)]["eval/loss"]]
            reached = steps_to_target(curve, target)
            if reached is None:
                train = read_json(runs[label][seed] / "config.json", "the run's settings")["train"]
                reached = train["steps"] + train["eval_every"]
            row = arm["per_seed"][str(seed)]
            row |= {"steps_to_target": reached, "target_reached": reached <= curve[-1][0]}
    return {"arms": arms}


def _cached(run: Path, name: str, compute) -> dict:
    path = run / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _model(run: Path):
    from petra.data import load_tokenizer
    from petra.models import load_pretrained

    tokenizer = load_tokenizer(run / "model")
    return load_pretrained(run / "model", tokenizer=tokenizer).eval(), tokenizer


SPELLING_PAIRS = 200  # petra probe spelling's default; a quick first look takes 50


def _spelling_summary(run: Path, pairs: int) -> dict:
    from petra.probes import default_pairs, probe_spelling

    model, tokenizer = _model(run)
    return probe_spelling(model, tokenizer, default_pairs(pairs))["summary"]


def spelling(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """The spelling probe's top-1 agreement, KL and hidden cosine per arm and seed (on the
    default pairs), and in how many categories the Kronecker arm's top-1 agreement wins or
    ties the tied learned arm's."""
    arms = copy.deepcopy(arms)
    pairs = 50 if quick else SPELLING_PAIRS
    summaries = {
        label: {seed: _cached(run, "spelling", lambda run=run: _spelling_summary(run, pairs))
                for seed, run in by_seed.items()}
        for label, by_seed in runs.items()
    }  # fmt: skip
    notes = []
    for label, by_seed in summaries.items():
        arm = arms[label]
        arm["per_seed"] = {
            str(seed): {
                "top1_agreement_pct": 100 * s["top1_agreement"],
                "kl_mean": s["kl_mean"],
                "hidden_cosine_mean": s["hidden_cosine_mean"],
                "pairs": s["pairs"],
            }
            for seed, s in by_seed.items()
        }
    for seed in seeds:
        ours = summaries[METHOD][seed]["per_category"]
        base = summaries[BASELINE][seed]["per_category"]
        kept = [c for c in ours if ours[c]["top1_agreement"] >= base[c]["top1_agreement"]]
        arms[METHOD]["per_seed"][str(seed)]["categories_won_or_tied"] = len(kept)
        notes.append(
            f"seed {seed}: Kronecker's top-1 agreement wins or ties the tied learned arm's in "
            f"{len(kept)} of {len(ours)} categories ({', '.join(sorted(ours))})."
        )
    return {"arms": arms, "notes": notes}


ROW_NORM = "eval/embedding/matrix_row_norm_mean"


def norm_drift(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """Row-norm drift of the trained matrix: start (step 0), final, and 100 |final / start
    - 1| %, per arm and seed."""
    arms = copy.deepcopy(arms)
    for arm in arms.values():
        for seed in map(str, seeds):
            curve = arm["curves"][seed][ROW_NORM]
            (first_step, start), (_, final) = curve[0], curve[-1]
            if first_step != 0:
                raise ValueError("norm drift needs an evaluation at step 0 (train.eval_at_start)")
            arm["per_seed"][seed] = {
                "row_norm_start": start,
                "row_norm_final": final,
                "row_norm_drift_pct": 100 * abs(final / start - 1),
            }
    return {"arms": arms}


def _typographic_summary(table, tokenizer) -> dict:
    """The probe's headline figures and each kind's per-edit means, flat."""
    from petra.probes import typographic_similarity

    result = typographic_similarity(table, tokenizer)
    summary = {k: v for k, v in result.items() if isinstance(v, (int, float)) or v is None}
    for kind in ("variants", "morphological", "random"):
        summary[f"{kind}_mean"] = result[kind]["mean"]
        summary[f"{kind}_pairs"] = result[kind]["pairs"]
        for edit, values in result[kind].get("by_edit", {}).items():
            summary[f"{kind}/{edit}_mean"] = values["mean"]
    return summary


def _initial_table(run: Path):
    """The table of the run's model at step 0, rebuilt from its settings and seed exactly as
    the run built it (checked against the run's step-0 row norm)."""
    from petra.tasks.run import SECTIONS, build_run

    config = read_json(run / "config.json", "the run's settings")
    _, model, _ = build_run(config["task"], {name: config[name] for name in SECTIONS})
    logged = next(
        record[ROW_NORM]
        for record in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if record["step"] == 0 and ROW_NORM in record
    )
    rebuilt = model.embedding.weight_norms()["matrix_row_norm_mean"]
    if abs(rebuilt / logged - 1) > 1e-5:
        raise ValueError(
            f"{run}: the rebuilt step-0 model is not the run's ({rebuilt} != {logged})"
        )
    return model.embedding.table().float()


def typographic(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """Typographic clustering (centred cosine of variants and relatives, minus random pairs)
    of each trained table and of the same table at step 0 (`_gain`: trained minus step 0),
    and of all-MiniLM-L6-v2's pretrained word embeddings."""
    import torch

    arms = copy.deepcopy(arms)
    for label, by_seed in runs.items():
        for seed, run in by_seed.items():

            def summary(run=run):
                model, tokenizer = _model(run)
                with torch.no_grad():
                    trained = _typographic_summary(model.embedding.table().float(), tokenizer)
                    initial = _typographic_summary(_initial_table(run), tokenizer)
                gains = {
                    f"{key}_gain": trained[key] - initial[key]
                    for key in ("variant_minus_random", "morphological_minus_random")
                    if trained[key] is not None and initial[key] is not None
                }
                return {**trained, **gains, **{f"init/{k}": v for k, v in initial.items()}}

            arms[label]["per_seed"][str(seed)] = _cached(run, "typographic", summary)
    notes = []
    try:
        from petra.reproduce.measures import minilm_word_embeddings

        table, tokenizer = minilm_word_embeddings()
    except (ImportError, OSError, ValueError) as error:
        notes.append(f"all-MiniLM-L6-v2 reference not measured: {error}")
    else:
        arms["minilm-pretrained"] = {
            "description": "all-MiniLM-L6-v2 word embeddings (pretrained; reference, no seeds)",
            "params": {},
            "per_seed": {"0": _typographic_summary(table, tokenizer)},
        }
    return {"arms": arms, "notes": notes}
