"""Run the `petra compress` trade-off of one model: every arm after the same recovery budget,
then its table and plot.

    python scripts/compress_tradeoff.py minilm [--only ARM ...]
    python scripts/compress_tradeoff.py smollm2 --choose

Each arm is one `petra compress` run in `runs/compress/MODEL/ARM/` (not committed: it holds
the model); its `compress.json`, with the quality measured during the recovery, is copied to
`benchmarks/results/compress-MODEL/ARM.json`, and its training log to `ARM.metrics.jsonl`,
both committed. A run that finished is reused (from its committed JSON where its folder is
gone: `petra compress` checks that it recorded the same settings) and an interrupted one
resumes, so the script can be stopped and started again at any point, on this machine or
on a fresh checkout. Once every arm has finished it writes
`benchmarks/results/compress-MODEL/TABLE.md` and `docs/compress-MODEL.png`
from the committed results.

`--choose` runs instead each candidate recovery of the model (`Model.candidates`) on each of
its choosing arms, measured on the split kept for choosing (`--eval-split train`: never the
reported one), into `runs/compress/MODEL-choose/ARM/CANDIDATE/` and
`benchmarks/results/compress-MODEL/choose/ARM/CANDIDATE.json`, and prints each one's measure
during and after the recovery. Once every candidate has run, the arms are recovered with the
chosen one (`arm_recipe`; a run folder `ARM.CANDIDATE` where it is not the default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from petra.checks import key_values
from petra.compress import LOWER_IS_BETTER

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "compress"
RESULTS = ROOT / "benchmarks" / "results"

# arm name -> the arguments of `petra compress` that make it (the model and budget are added)
MINILM_ARMS = {
    "int8": ["--kind", "quantized", "--option", "bits=8"],
    "int4": ["--kind", "quantized", "--option", "bits=4"],
    "trimmed": ["--kind", "trimmed"],
    "svd-4": ["--kind", "learned", "--factor-dim", "4"],
    "svd-16": ["--kind", "learned", "--factor-dim", "16"],
    # ranks at Kronecker's budget (50: 1.55M vs 1.57M) and bytes (55: 6.58 MiB, the byte
    # code's buffer counted), and at the residual arm's budget (67: 2.07M) and bytes (71: 8.47)
    "svd-50": ["--kind", "learned", "--factor-dim", "50"],
    "svd-55": ["--kind", "learned", "--factor-dim", "55"],
    "svd-67": ["--kind", "learned", "--factor-dim", "67"],
    "svd-71": ["--kind", "learned", "--factor-dim", "71"],
    "tt": ["--kind", "tt"],
    "qr": ["--kind", "qr", "--start", "norms"],
    "kronecker": ["--kind", "kronecker"],
    "kronecker-residual-16": ["--kind", "residual", "--option", "rank=16"],
    "fourier": ["--kind", "fourier"],
}
# SmolLM2's table is 49,152 x 576: its SVD ranks at Kronecker's budget (2,359,296) and at the
# residual arm's (3,154,944) are 47 and 63. The arms run in this order (about 40 CPU-minutes
# each here, alone on a core): those the trade-off needs first, then the residual arm's
# equal-parameter SVD. (A lower rank is left out: rank 47 already ends at perplexity 746
# against the original's 63.)
SMOLLM2_ARMS = {
    "int8": MINILM_ARMS["int8"],
    "svd-47": ["--kind", "learned", "--factor-dim", "47"],
    **{name: MINILM_ARMS[name] for name in ("kronecker", "kronecker-residual-16")},
    "svd-63": ["--kind", "learned", "--factor-dim", "63"],
}


@dataclass(frozen=True)
class Recipe:
    """A recovery: its own arguments of `petra compress`, its steps, and whether the new
    embedding trains alone throughout (every pretrained layer frozen)."""

    arguments: list[str]
    steps: int
    alone: bool = False

    def command(self) -> list[str]:
        alone = self.steps if self.alone else 0
        return [*self.arguments, "--steps", str(self.steps), "--embedding-steps", str(alone)]


@dataclass(frozen=True)
class Model:
    """One model's trade-off: `petra compress --model`, its arms, the recovery an arm gets
    when none was chosen for it, and the candidate recoveries `--choose` compares on each of
    `choosing_arms`. With `per_arm`, each of those arms gets its own choice; without, the
    first's choice is every arm's, at `recipe`'s steps."""

    name: str
    arms: dict[str, list[str]]
    recipe: Recipe
    candidates: dict[str, Recipe] = field(default_factory=dict)
    choosing_arms: tuple[str, ...] = ("kronecker",)
    per_arm: bool = False
    causal: bool = False  # a causal LM: its table gets a context-free baseline (unigrams)


# The sentence encoder's recipe was chosen on STS-B train, one seed, one arm (Kronecker), pilot
# in benchmarks/results/compress-minilm/pilot/: of the recipes tried only those matching the
# pairwise cosines of a batch's sentence vectors (--distil cosines) end above their start,
# best with the new embedding alone at lr 3e-6 for 400 steps (the pretrained layers trained
# from step 200 gave back under a point; every recipe training them at 5e-5 from the start
# lost 9 to 20 points). An earlier petra's recovery, the sentence vectors with every layer
# training (benchmarks/results/compress-minilm/earlier/), took SVD rank 50 much higher and the
# computed starts down: so each arm chooses between the two on STS-B train (`--choose`).
MINILM_RECIPE = Recipe(
    ["--batch-size", "32", "--distil", "cosines", "--embedding-lr", "3e-6"], 400, alone=True
)
MINILM = Model(
    "all-minilm-l6-v2",
    MINILM_ARMS,
    MINILM_RECIPE,
    {
        "cosines-embedding": MINILM_RECIPE,
        "output-every-layer": Recipe(["--batch-size", "32", "--distil", "output"], 400),
    },
    # the arms that start at the original (a quantized or trimmed table) have nothing to recover
    choosing_arms=tuple(name for name in MINILM_ARMS if name not in ("int8", "int4", "trimmed")),
    per_arm=True,
)
# The causal LM's candidates, compared on Kronecker (its least-squares start puts the swapped
# model's held-out perplexity in the thousands) over a shorter budget than the arms' (about a
# CPU-hour an arm here): next-token KL alone or with every layer's states, every layer
# training or the table alone, the table at lr 1e-4 or 1e-3.
SMOLLM2_BATCH = ["--batch-size", "4", "--max-length", "128"]
SMOLLM2_CANDIDATES = {
    "hidden": Recipe([*SMOLLM2_BATCH, "--distil", "hidden"], 100),
    "output": Recipe([*SMOLLM2_BATCH, "--distil", "output"], 100),
    "hidden-embedding-1e-3": Recipe(
        [*SMOLLM2_BATCH, "--distil", "hidden", "--embedding-lr", "1e-3"], 100
    ),
    "hidden-embedding-1e-3-alone": Recipe(
        [*SMOLLM2_BATCH, "--distil", "hidden", "--embedding-lr", "1e-3"], 100, alone=True
    ),
}
# The arms' recovery: the candidate `--choose` finds best on Kronecker, at 300 steps (until
# every candidate has run, `hidden`)
SMOLLM2 = Model(
    "smollm2-135m",
    SMOLLM2_ARMS,
    Recipe([*SMOLLM2_BATCH, "--distil", "hidden"], 300),
    SMOLLM2_CANDIDATES,
    causal=True,
)
MODELS = {"minilm": MINILM, "smollm2": SMOLLM2}  # fmt: skip


def compress(model: Model, arm: list[str], recipe: Recipe, out: Path, eval_every: int,
             extra: tuple[str, ...] = (), committed: Path | None = None) -> None:  # fmt: skip
    """One `petra compress` run (it resumes an interrupted one and reuses a finished one,
    its folder started from the `committed` result where the folder is gone; a committed
    result of other settings, which `petra compress` refuses, is set aside and the arm run)."""
    command = [sys.executable, "-m", "petra", "compress", "--model", model.name, *arm,
               *recipe.command(), "--eval-every", str(eval_every), *extra, "--out", str(out),
               "--quiet"]  # fmt: skip
    seeded = committed is not None and committed.is_file() and not (out / "compress.json").exists()
    if seeded:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(committed, out / "compress.json")
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError:
        if not seeded:
            raise
        print(f"petra compress failed on {committed} (above): running the arm afresh", flush=True)
        (out / "compress.json").unlink()
        subprocess.run(command, check=True)


def keep_result(out: Path, results: Path, name: str) -> None:
    """Copy a finished run's `compress.json` to `results/NAME.json`, and its training log (the
    distillation loss every 10 steps) to `results/NAME.metrics.jsonl` where the run has one
    (a run reused from its committed result has none)."""
    shutil.copyfile(out / "compress.json", results / f"{name}.json")
    if (out / "metrics.jsonl").is_file():
        shutil.copyfile(out / "metrics.jsonl", results / f"{name}.metrics.jsonl")


def choose(key: str, model: Model, eval_every: int) -> None:
    """Every candidate recovery on each choosing arm, measured on the split kept for choosing
    (`--eval-split train`), into `choose/ARM/CANDIDATE.json`; prints each one's measures."""
    for arm in model.choosing_arms:
        results = RESULTS / f"compress-{key}" / "choose" / arm
        results.mkdir(parents=True, exist_ok=True)
        for name, recipe in model.candidates.items():
            print(f"[{key}] choosing for {arm}: {name}", flush=True)
            out = RUNS / f"{key}-choose" / arm / name
            compress(model, model.arms[arm], recipe, out, eval_every, ("--eval-split", "train"),
                     results / f"{name}.json")  # fmt: skip
            keep_result(out, results, name)
        for name in model.candidates:
            result = json.loads((results / f"{name}.json").read_text())
            during = [(row["step"], {k: v for k, v in row.items() if k != "step"})
                      for row in result["during"]]  # fmt: skip
            measures = [(0, result["quality"]["swapped"]), *during,
                        (result["steps"], result["quality"]["recovered"])]  # fmt: skip
            print(arm, name, "  ".join(f"{step}: {key_values(m)}" for step, m in measures))
        print(f"{arm}: {chosen_candidate(key, model, arm)} chosen", flush=True)


def chosen_candidate(key: str, model: Model, arm: str) -> str | None:
    """The candidate whose recovery ended best on the choosing split for `arm` (a loss lowest,
    a correlation highest), from the committed `choose/ARM/*.json`; None before every
    candidate has run."""
    if not model.candidates:
        return None
    folder = RESULTS / f"compress-{key}" / "choose" / arm
    found = {}
    for name in model.candidates:
        path = folder / f"{name}.json"
        if not path.is_file():
            return None
        (metric, value), *_ = json.loads(path.read_text())["quality"]["recovered"].items()
        found[name] = -value if metric in LOWER_IS_BETTER else value
    return max(found, key=found.get)


def arm_recipe(key: str, model: Model, arm: str) -> tuple[str | None, Recipe]:
    """(the chosen candidate's name, or None, and the recovery) of an arm: its own choice
    (`per_arm`) or the first choosing arm's, at `recipe`'s steps; else `recipe`."""
    if model.per_arm:
        name = chosen_candidate(key, model, arm) if arm in model.choosing_arms else None
    else:
        name = chosen_candidate(key, model, model.choosing_arms[0])
    if name is None:
        return None, model.recipe
    candidate = model.candidates[name]
    return name, Recipe(candidate.arguments, model.recipe.steps, candidate.alone)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--only", nargs="+", metavar="ARM", help="run these arms only")
    parser.add_argument("--choose", action="store_true", help="compare the candidate recoveries")
    args = parser.parse_args(argv)
    model = MODELS[args.model]
    if args.choose:
        choose(args.model, model, args.eval_every)
        return 0
    unknown = sorted(set(args.only or ()) - set(model.arms))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {sorted(model.arms)}")
    runs, results = RUNS / args.model, RESULTS / f"compress-{args.model}"
    results.mkdir(parents=True, exist_ok=True)
    for name, arm in model.arms.items():
        if args.only and name not in args.only:
            continue
        candidate, recipe = arm_recipe(args.model, model, name)
        out = runs / name if recipe == model.recipe else runs / f"{name}.{candidate}"
        print(f"[{args.model}] arm {name}, recovery {candidate or 'the default'}", flush=True)
        compress(model, arm, recipe, out, args.eval_every, committed=results / f"{name}.json")
        keep_result(out, results, name)
    arms = [results / f"{name}.json" for name in model.arms]
    if not args.only and all(path.is_file() for path in arms):
        from petra.compress import comparison_table, plot_tradeoff

        floor = (
            context_free_floor(arms[0], results / "unigram-baseline.json") if model.causal else None
        )
        table = comparison_table(arms, floor)
        (results / "TABLE.md").write_text(table + "\n")
        plot_tradeoff(arms, ROOT / "docs" / f"compress-{args.model}.png", floor)
        print(table)
    return 0


def context_free_floor(result: Path, record: Path) -> tuple[str, float]:
    """(its name, its loss) of a context-free baseline for a causal LM, on the chunks its
    runs are reported on: Brown train's unigram loss (`petra.compress.unigram_loss`),
    written to `record` with how it was made."""
    from petra.compress import corpus_ids, held_out_chunks, load_teacher, unigram_loss
    from petra.tasks.lm import perplexity

    settings = json.loads(result.read_text())["settings"]
    model, tokenizer, _ = load_teacher(settings["model"])
    vocab = model.get_input_embeddings().num_embeddings
    chunks = held_out_chunks(tokenizer, settings["max_length"], settings["eval_split"],
                             settings["eval_chunks"])  # fmt: skip
    loss = unigram_loss(corpus_ids(tokenizer, "train"), chunks, vocab)
    how = (f"Brown train's unigram distribution, add-0.5 over the model's {vocab:,} ids, scored "
           f"on the {len(chunks)} chunks of {settings['max_length']} tokens the arms are "
           "reported on")  # fmt: skip
    floor = {"model": settings["model"], "val_loss": loss, "perplexity": perplexity(loss)}
    record.write_text(json.dumps({**floor, "how": how}, indent=1) + "\n")
    return "context-free baseline: Brown-train unigrams", loss


if __name__ == "__main__":
    raise SystemExit(main())
