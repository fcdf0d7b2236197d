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

BASELINE = "learned-tied"
METHOD = "kronecker-untied"


def lm_steps_to_target(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """`steps_to_target` of every arm and seed: the first evaluated step at which its
    validation loss is at or below the final validation loss of the tied learned arm of the
    same seed (None if never)."""
    arms = copy.deepcopy(arms)
    for seed in map(str, seeds):
        target = arms[BASELINE]["per_seed"][seed]["loss"]
        for arm in arms.values():
            curve = arm["curves"][seed]["eval/loss"]
            reached = [step for step, loss in curve if loss <= target]
            arm["per_seed"][seed]["steps_to_target"] = reached[0] if reached else None
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
                "top1_agreement": s["top1_agreement"],
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


SIMILARITY_KEYS = ("variant_minus_random", "morphological_minus_random")


def _typographic_summary(table, tokenizer) -> dict:
    from petra.probes import typographic_similarity

    result = typographic_similarity(table, tokenizer)
    return {key: value for key, value in result.items() if not isinstance(value, (list, dict))}


def typographic(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """Typographic clustering (centred cosine of variants and relatives, minus random pairs)
    of each trained table, and of all-MiniLM-L6-v2's pretrained word embeddings."""
    import torch

    arms = copy.deepcopy(arms)
    for label, by_seed in runs.items():
        for seed, run in by_seed.items():

            def summary(run=run):
                model, tokenizer = _model(run)
                with torch.no_grad():
                    return _typographic_summary(model.embedding.table().float(), tokenizer)

            arms[label]["per_seed"][str(seed)] = _cached(run, "typographic", summary)
    notes = []
    try:
        from petra.reproduce.measures import minilm_word_embeddings

        table, tokenizer = minilm_word_embeddings()
    except ImportError as error:
        notes.append(f"all-MiniLM-L6-v2 reference not measured: {error}")
    else:
        arms["minilm-pretrained"] = {
            "description": "all-MiniLM-L6-v2 word embeddings (pretrained; reference, no seeds)",
            "params": {},
            "per_seed": {"0": _typographic_summary(table, tokenizer)},
        }
    return {"arms": arms, "notes": notes}
