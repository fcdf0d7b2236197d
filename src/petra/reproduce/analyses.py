"""What a claim reads from trained runs beyond their metrics: steps to a target loss, the
spelling probe, norm drift, typographic retrieval.

Each function takes the arms' results (`{label: {"per_seed": {"0": metrics}, "curves":
{"0": {"eval/loss": [[step, value], ...]}}, ...}}`), their run directories (`{label: {seed:
Path}}`), the seeds and whether the claim is a quick first look, and returns `{"arms": ...,
"notes": [...], "checks": [...]}` (notes and checks may be left out) with the claim's
metrics in each arm's `per_seed`. Probe results are kept in the run directory
(`<probe>.json`) under a key of the probe's code and settings (`_cached`), so a claim re-read
later does not probe again unless the probe changed.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import statistics
from pathlib import Path

from petra.atomic import atomic_write_json, read_json
from petra.reproduce.claims import BASELINE_ARM as BASELINE
from petra.reproduce.claims import CONTROL_NAMES, NORM_BAND, SPELLING_CATEGORIES_CLAIMED
from petra.reproduce.claims import METHOD_ARM as METHOD
from petra.reproduce.claims import SPELLING_CONTROLS as CONTROLS
from petra.reproduce.records import missing_model
from petra.training import read_metrics


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


def cached(path: Path, key: dict, compute, what: str, field: str = "value", reused: str = ""):
    """`compute()`, kept in the JSON file `path` as `{**key, field: value}`: `key` holds what
    the value depends on (the code and settings that make it). A kept value is returned (and
    `reused` printed, when given) only when the file holds every entry of `key` as it is now,
    else it is computed again and the file rewritten, so a changed computation never serves
    a stale figure. A damaged file is an error that names it (`read_json`: "delete it to redo
    it"), never silently redone. The file is written whole (`atomic_write_json`)."""
    if path.is_file():
        kept = read_json(path, what)
        if field in kept and all(kept.get(k) == v for k, v in key.items()):
            if reused:
                print(reused, flush=True)
            return kept[field]
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**key, field: value}, indent=1)
    return value


def _cached(run: Path, name: str, compute, key: dict) -> dict:
    """A probe's result, kept as RUN/NAME.json (`{"key": key, "value": ...}`, `cached`)."""
    return cached(run / f"{name}.json", {"key": key}, compute, f"a kept {name} probe result")


def source_digest(*objects) -> str:
    """sha256 (first 16 hex digits) of the source of modules or functions: what a kept
    probe result or measurement is keyed by, so that a changed one is computed again."""
    digest = hashlib.sha256()
    for thing in objects:
        digest.update(inspect.getsource(thing).encode())
    return digest.hexdigest()[:16]


def _model(run: Path):
    from petra.data import load_tokenizer
    from petra.models import load_pretrained

    if not (run / "model").is_dir():
        raise ValueError(missing_model(run))
    tokenizer = load_tokenizer(run / "model")
    return load_pretrained(run / "model", tokenizer=tokenizer).eval(), tokenizer


# a quick first look: 5 paper pairs a category, 50 of each Brown-made set
SPELLING_QUICK = {"paper": 5, "brown-inside": 50, "brown": 50}
SPELLING_METRICS = {  # summary mean: (per-seed metric, scale, name in the notes)
    "top1_agreement": ("top1_agreement_pct", 100, "top-1 agreement"),
    "top1_chance": ("top1_chance_pct", 100, "top-1 chance"),
    "top1_kappa": ("top1_kappa", 1, "top-1 kappa"),
    "kl_mean": ("kl_mean", 1, "KL"),
    "hidden_cosine_mean": ("hidden_cosine_mean", 1, "hidden cosine"),
    "logprob_drop_mean": ("logprob_drop_mean", 1, "log-prob drop"),
    "last_token_cosine_mean": ("last_token_cosine_mean", 1, "last-token cosine"),
    "pairs": ("pairs", 1, "pairs"),
}


def _spelling_pairs(quick: bool) -> dict:
    """The pairs of each set: the paper's 110 and the first 200 of each Brown-made set (typo
    inside, typo last); a quick first look takes 5 paper pairs of each category (55) and 50
    of each Brown-made set."""
    from petra.probes import pair_set
    from petra.probes.spelling import first_of_each_category

    if not quick:
        return {name: pair_set(name) for name in SPELLING_QUICK}
    return {
        name: first_of_each_category(pair_set(name), count)
        if name == "paper"
        else pair_set(name, count)
        for name, count in SPELLING_QUICK.items()
    }


def _seed_noise(summaries: dict, seeds: list[int]) -> str:
    """A noise reference for the paper's category count (its pairs, top-1 agreement): how
    often an arm against itself at another seed wins or ties the claimed number of
    categories, over every arm and ordered pair of seeds."""
    from petra.probes import compare_categories

    counts = [
        compare_categories(by_seed[a]["paper"], by_seed[b]["paper"])["top1_agreement"][
            "won_or_tied"
        ]
        for by_seed in summaries.values()
        for a in seeds
        for b in seeds
        if a != b
    ]
    reached = sum(count >= SPELLING_CATEGORIES_CLAIMED for count in counts)
    return (
        "Noise reference for the category count (paper's pairs, top-1 agreement): an arm "
        f"against itself at another seed wins or ties >= {SPELLING_CATEGORIES_CLAIMED} "
        f"categories in {reached} of {len(counts)} ordered seed pairs ({len(counts) // 2} "
        f"unordered; every arm; counts {sorted(counts)})."
    )


def _pooled(by_seed: dict, name: str) -> dict:
    """A spelling summary's per-category figures pooled over seeds, as `compare_categories`
    reads them (`per_category` only): top-1 agreement as the count of pairs kept over every
    seed (an integer, so that equal counts tie exactly), the other means averaged."""
    from petra.probes.spelling import BETTER

    per_seed = [summary[name]["per_category"] for summary in by_seed.values()]

    def pooled(rows: list[dict], metric: str) -> float:
        if metric == "top1_agreement":
            return sum(round(row[metric] * row["pairs"]) for row in rows)
        return statistics.fmean(row[metric] for row in rows)

    return {
        "per_category": {
            category: {m: pooled([seed[category] for seed in per_seed], m) for m in BETTER}
            for category in per_seed[0]
        }
    }


def _spelling_summaries(run: Path, pairs: dict) -> dict:
    from petra.probes import probe_spelling

    model, tokenizer = _model(run)
    return {name: probe_spelling(model, tokenizer, p)["summary"] for name, p in pairs.items()}


def spelling(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """The spelling probe on each pair set (`paper`: the paper's 110 pairs; `brown-inside`
    and `brown`: the Brown-made ones, typo inside and last), per arm and seed:
    `SET/top1_agreement_pct`, `SET/top1_chance_pct`
    and `SET/top1_kappa` (the agreement chance gives, and the agreement above it:
    `petra.probes.spelling`), `SET/kl_mean`,
    `SET/hidden_cosine_mean`, `SET/logprob_drop_mean`, `SET/last_token_cosine_mean` and
    `SET/pairs`; for the Kronecker arm
    also `SET/categories_won_or_tied_vs_tied`, `..._vs_untied` and `..._vs_ngram`, the
    paper's count: the categories in which its top-1 agreement is above (win) or equal to
    (tie) the control's (`compare_categories`). The notes give the win-tie-loss counts of
    every metric. Each run's summaries are kept as `spelling-sets.json`, under the probe's
    code and the pairs as their key (`_cached`)."""
    from petra.probes import compare_categories
    from petra.probes import spelling as probe

    arms = copy.deepcopy(arms)
    pair_sets = _spelling_pairs(quick)
    listed = json.dumps({name: [vars(p) for p in pairs] for name, pairs in pair_sets.items()})
    key = {
        "code": source_digest(probe, _spelling_summaries),
        "pairs": hashlib.sha256(listed.encode()).hexdigest()[:16],
    }
    summaries = {
        label: {seed: _cached(run, "spelling-sets", lambda run=run: _spelling_summaries(
            run, pair_sets), key) for seed, run in by_seed.items()}
        for label, by_seed in runs.items()
    }  # fmt: skip
    for label, by_seed in summaries.items():
        arms[label]["per_seed"] = {
            str(seed): {
                f"{name}/{metric}": scale * summary[key]
                for name, summary in by_set.items()
                for key, (metric, scale, _) in SPELLING_METRICS.items()
            }
            for seed, by_set in by_seed.items()
        }
    notes, checks = [], []
    for seed in seeds:
        for name in summaries[METHOD][seed]:
            for control, label in CONTROLS.items():
                counts = compare_categories(
                    summaries[METHOD][seed][name], summaries[label][seed][name]
                )
                top1 = counts["top1_agreement"]
                row = arms[METHOD]["per_seed"][str(seed)]
                row[f"{name}/categories_won_or_tied_vs_{control}"] = top1["won_or_tied"]
                each = "; ".join(
                    f"{SPELLING_METRICS[m][2]} {c['win']}-{c['tie']}-{c['loss']}"
                    for m, c in counts.items()
                )
                lost = [c for c, outcome in top1["categories"].items() if outcome == "loss"]
                if (name, control) == ("paper", "tied"):  # the paper's count, as it states it
                    checks.append({
                        "name": f"seed {seed}: Kronecker's top-1 agreement wins or ties "
                        f"{SPELLING_CATEGORIES_CLAIMED} of the {len(top1['categories'])} "
                        "categories of the paper's pairs against the tied table",
                        "value": top1["won_or_tied"],
                        "expected": f">= {SPELLING_CATEGORIES_CLAIMED}",
                        "holds": top1["won_or_tied"] >= SPELLING_CATEGORIES_CLAIMED,
                    })  # fmt: skip
                notes.append(
                    f"seed {seed}, {name} pairs, Kronecker vs {CONTROL_NAMES[label]}, categories "
                    f"won-tied-lost of {len(top1['categories'])}: {each}; top-1 agreement lost "
                    f"in {', '.join(lost) or 'none'}."
                )
    if len(seeds) > 1:
        notes.append(_seed_noise(summaries, seeds))
        pooled = {label: _pooled(by_seed, "paper") for label, by_seed in summaries.items()}
        won = {
            CONTROL_NAMES[label]: compare_categories(pooled[METHOD], pooled[label])
            for label in CONTROLS.values()
        }
        notes.append(
            "Pooled over seeds (each category's pairs kept, summed over the seeds), Kronecker's "
            "top-1 agreement wins or ties, of the paper's categories: "
            + ", ".join(f"{c['top1_agreement']['won_or_tied']} against {n}" for n, c in won.items())
            + "."
        )
    return {"arms": arms, "notes": notes, "checks": checks}


ROW_NORM = "eval/embedding/matrix_row_norm_mean"


def _consumed_norms(run: Path) -> dict:
    """Mean L2 norm of the token vectors the model reads, E(v) for every id v of the run's
    training split, at step 0 (the model rebuilt) and at the end."""
    import torch

    from petra.probes.norms import token_vector_norm

    initial, task = _initial(run)
    final, _ = _model(run)
    ids = task.train_dataset
    return {
        "consumed_ids": len(torch.unique(ids)),
        "consumed_norm_start": token_vector_norm(initial.embedding, ids),
        "consumed_norm_final": token_vector_norm(final.embedding, ids),
    }


def norm_drift(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """Drift, per arm and seed, of two norms, each 100 |final / start - 1| %:

    - `row_norm_*`: the mean row norm of the trained matrix (the learned table's V rows, the
      Kronecker projection's d rows), logged at every evaluation from step 0;
    - `consumed_norm_*`: the mean norm of the token vectors E(v) the model reads, over the
      ids of the training split (`_consumed_norms`), at step 0 and at the end.

    A check per seed tests the paper's "stays near 1.0" on the Kronecker projection as the
    band the registry states (`NORM_BAND`): its mean row norm within
    1.0 +- band at every evaluation."""

    arms = copy.deepcopy(arms)
    checks = []
    from petra.probes import norms

    consumed_key = {"code": source_digest(_consumed_norms, _initial, norms)}
    for label, arm in arms.items():
        for seed in seeds:
            curve = arm["curves"][str(seed)][ROW_NORM]
            (first_step, start), (_, final) = curve[0], curve[-1]
            if first_step != 0:
                raise ValueError("norm drift needs an evaluation at step 0 (train.eval_at_start)")
            run = runs[label][seed]
            consumed = _cached(
                run, "consumed-norms", lambda run=run: _consumed_norms(run), consumed_key
            )
            arm["per_seed"][str(seed)] = {
                "row_norm_start": start,
                "row_norm_final": final,
                "row_norm_drift_pct": 100 * abs(final / start - 1),
                **consumed,
                "consumed_norm_drift_pct": 100
                * abs(consumed["consumed_norm_final"] / consumed["consumed_norm_start"] - 1),
            }
            if label == METHOD:
                farthest = max(abs(value - 1.0) for _, value in curve)
                checks.append({
                    "name": f"seed {seed}: the projection's mean row norm within 1.0 +- "
                    f"{NORM_BAND} at every evaluation (largest distance from 1.0)",
                    "value": farthest,
                    "expected": f"<= {NORM_BAND}",
                    "holds": farthest <= NORM_BAND,
                })  # fmt: skip
    return {"arms": arms, "checks": checks}


def _retrieval_summary(result: dict) -> dict:
    """A space's probe result (`petra.probes.retrieval.probe_space`), flat: typographic@k in
    percent over the reference's tabulated families and per family, the centred in-family
    and random-pair cosines."""
    k = result["k"]
    summary = {
        f"typographic_at_{k}_pct": 100 * result["typographic_at_k"],
        "random_pair_centred": result["random_pair_cosine"]["centred"],
    }
    for family, row in result["families"].items():
        summary[f"typographic_at_{k}_pct/{family}"] = 100 * row["typographic_at_k"]
        summary[f"in_family_centred/{family}"] = row["centred"]["in_family"]
    return summary


# The reference repository's published probe of SmolLM2-135M (base model, its own weights):
# probes/data/raw/cross_model/results/trained_probe_smollm2-135M.txt, tables "Canonical-form
# filtered retrieval (top-5 non-self)" and "Quantitative summary (CENTERED cosines)".
PUBLISHED_SMOLLM2 = {
    "smollm2-135m (paper)": {
        "typographic": {"run": 0.48, "compute": 0.32, "magnet": 0.16, "tion": 0.48},
        "in_family": {"run": 0.4083, "compute": 0.3152, "magnet": 0.4248, "tion": 0.0966},
        "random_pair": 0.0005,
    },
    "byte-code-smollm2 (paper)": {
        "typographic": {"run": 0.08, "compute": 0.08, "magnet": 0.00, "tion": 0.08},
        "in_family": {"run": 0.6263, "compute": 0.7556, "magnet": 0.8220, "tion": 0.1583},
        "random_pair": 0.0010,
    },
}


def _published_summary(published: dict) -> dict:
    fractions = published["typographic"]
    summary = {
        "typographic_at_5_pct": 100 * sum(fractions.values()) / len(fractions),
        "random_pair_centred": published["random_pair"],
    }
    for family, fraction in fractions.items():
        summary[f"typographic_at_5_pct/{family}"] = 100 * fraction
        summary[f"in_family_centred/{family}"] = published["in_family"][family]
    return summary


def _public_models() -> tuple[dict, list[dict], list[str]]:
    """(reference arms, checks, notes) for the public models petra has offline.

    Arms (no seeds): each model's input table and the byte code of its vocabulary, probed by
    petra, and the reference repository's published SmolLM2 figures. Checks on SmolLM2, an
    LM the paper probes: the paper's claim (its table retrieves more typographic variants
    than its byte code in every tabulated family), and petra's probe against the published
    per-family figures (within one token of a family's 25, the largest gap a tie-break or
    the offline Instruct / 4-bit copy can explain). MiniLM (uncased WordPiece, not a model
    the paper probes) is shown, not checked: its vocabulary has almost no case or
    leading-space variants to retrieve (the notes give how many)."""
    from petra.compress import input_table
    from petra.probes.retrieval import TABULATED, retrieval_probe

    arms, checks, notes = {}, [], []
    models = {  # name: (reference arm label of its byte code, what its table is)
        "smollm2-135m": ("byte-code-smollm2", "SmolLM2-135M-Instruct, its 4-bit GGUF dequantized"),
        "all-minilm-l6-v2": ("byte-code-minilm", "all-MiniLM-L6-v2 (WordPiece, uncased)"),
    }
    for name, (code_label, description) in models.items():
        try:
            table, tokenizer = input_table(name)
        except (ImportError, OSError, ValueError) as error:
            notes.append(f"{name} not probed: {error}")
            continue
        result = retrieval_probe(table, tokenizer)
        for label, space, what in (
            (name, "trained", f"{description}: its pretrained input table"),
            (code_label, "byte code", f"the byte code (pos_dim 32) of {description}'s vocabulary"),
        ):
            arms[label] = {
                "description": f"{what} (reference, no seeds)",
                "params": {},
                "per_seed": {"0": _retrieval_summary(result[space])},
            }
        fractions = {
            space: {f: result[space]["families"][f]["typographic_at_k"] for f in TABULATED}
            for space in ("trained", "byte code")
        }
        above = [f for f in TABULATED if fractions["trained"][f] > fractions["byte code"][f]]
        notes.append(
            f"{name}: typographic@5 of its table {100 * result['trained']['typographic_at_k']:.0f}"
            f" %, of its byte code {100 * result['byte code']['typographic_at_k']:.0f} %; the "
            f"table ahead in {len(above)} of {len(TABULATED)} families. Its vocabulary holds "
            f"{result['trained']['variants_in_vocab_mean']:.1f} tokens spelled as a probe word "
            "(up to case and white space), its own token left out, per word on average: the "
            "most a table can retrieve."
        )
        if name != "smollm2-135m":
            continue
        checks.append({
            "name": "the paper's claim on SmolLM2-135M: families (of 4) in which its table "
            "retrieves more typographic variants than its byte code (rule fixed after "
            "petra's first probe of it was seen: every family)",
            "value": len(above),
            "expected": len(TABULATED),
            "holds": len(above) == len(TABULATED),
        })  # fmt: skip
        for space, label in (("trained", name), ("byte code", code_label)):
            published = PUBLISHED_SMOLLM2[f"{label} (paper)"]
            gap = max(abs(fractions[space][f] - published["typographic"][f]) for f in TABULATED)
            checks.append({
                "name": f"SmolLM2-135M, {'its table' if space == 'trained' else 'its byte code'}"
                ": largest per-family gap in typographic@5 to the reference's published figure",
                "value": round(gap, 4),
                "expected": "<= 0.04 (one token of 25)",
                "holds": gap <= 0.04 + 1e-9,
            })  # fmt: skip
    for label, published in PUBLISHED_SMOLLM2.items():
        arms[label] = {
            "description": "the reference repository's published probe output (SmolLM2-135M "
            "base); not measured by petra",
            "params": {},
            "per_seed": {"0": _published_summary(published)},
        }
    return arms, checks, notes


def _initial(run: Path):
    """(model at step 0, task) of a run, rebuilt from its settings and seed exactly as the run
    built them (checked against the run's logged step-0 row norm)."""
    from petra.tasks.run import SECTIONS, build_run

    config = read_json(run / "config.json", "the run's settings")
    task, model, _ = build_run(config["task"], {name: config[name] for name in SECTIONS})
    logged = next(
        record[ROW_NORM]
        for record in read_metrics(run)
        if record["step"] == 0 and ROW_NORM in record
    )
    rebuilt = model.embedding.weight_norms()["matrix_row_norm_mean"]
    if abs(rebuilt / logged - 1) > 1e-5:
        raise ValueError(
            f"{run}: the rebuilt step-0 model is not the run's ({rebuilt} != {logged})"
        )
    return model.eval(), task


# the neighbours counted for petra's trained tables: 5 as the reference's cross-model output,
# 10 as the paper's Table 10 for its own models
TYPOGRAPHIC_K = (5, 10)


def typographic_key() -> dict:
    """What a kept retrieval result of a run is keyed by: the probe's code and this
    analysis's own (which tables it probes, at which k), so that a change to either is
    computed again."""
    from petra.probes import retrieval

    code = source_digest(retrieval, _retrieval_summary, _initial, typographic)
    return {"code": code, "k": list(TYPOGRAPHIC_K)}


def typographic(arms: dict, runs: dict, seeds: list[int], quick: bool = False) -> dict:
    """The paper's retrieval probe (`petra.probes.retrieval`) of each trained table and of
    the same table at step 0 (`_gain`: trained minus step 0), at each k of `TYPOGRAPHIC_K`,
    and, unless `quick`, of the public models' tables and their byte codes at k = 5
    (`_public_models`)."""
    import torch

    from petra.probes.retrieval import probe_space, table_space

    arms = copy.deepcopy(arms)
    key = typographic_key()
    for label, by_seed in runs.items():
        for seed, run in by_seed.items():

            def summary(run=run):
                model, tokenizer = _model(run)
                with torch.no_grad():
                    initial = _initial(run)[0].embedding.table().float()
                    tables = {"": model.embedding.table().float(), "init/": initial}
                found = {}
                for prefix, table in tables.items():
                    space = table_space(table, tokenizer)
                    for k in TYPOGRAPHIC_K:
                        result = probe_space(space, tokenizer, k=k)
                        summary_k = _retrieval_summary(result)
                        found |= {prefix + name: v for name, v in summary_k.items()}
                for k in TYPOGRAPHIC_K:
                    found[f"typographic_at_{k}_pct_gain"] = (
                        found[f"typographic_at_{k}_pct"] - found[f"init/typographic_at_{k}_pct"]
                    )
                return found

            arms[label]["per_seed"][str(seed)] = _cached(run, "retrieval", summary, key)
    if quick:
        return {"arms": arms, "notes": ["A quick look: the public models were not probed."]}
    public, checks, notes = _public_models()
    return {"arms": arms | public, "checks": checks, "notes": notes}
