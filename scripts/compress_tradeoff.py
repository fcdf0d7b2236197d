"""Run the `petra compress` trade-off of one model: every arm after the same recovery budget,
then its table and plot.

    python scripts/compress_tradeoff.py minilm [--only ARM ...]

Each arm is one `petra compress` run in `runs/compress/MODEL/ARM/` (not committed: it holds
the model); its `compress.json`, with the quality measured during the recovery, is copied to
`benchmarks/results/compress-MODEL/ARM.json`, which is committed. A run that finished is
reused and an interrupted one resumes, so the script can be stopped and started again at any
point. Once every arm has finished it writes `benchmarks/results/compress-MODEL/TABLE.md` and
`docs/images/compress-MODEL.png` from the committed results.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

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
    "svd-50": ["--kind", "learned", "--factor-dim", "50"],  # Kronecker's budget (1.55M vs 1.57M)
    "svd-67": ["--kind", "learned", "--factor-dim", "67"],  # the residual arm's (2.07M)
    "tt": ["--kind", "tt"],
    "qr": ["--kind", "qr", "--start", "norms"],
    "kronecker": ["--kind", "kronecker"],
    "kronecker-residual-16": ["--kind", "residual", "--option", "rank=16"],
    "fourier": ["--kind", "fourier"],
}
# SmolLM2's table is 49,152 x 576: its SVD ranks at Kronecker's budget (2,359,296) and at the
# residual arm's (3,154,944) are 47 and 63
SMOLLM2_ARMS = {
    **{name: MINILM_ARMS[name] for name in ("int8", "svd-16")},
    "svd-47": ["--kind", "learned", "--factor-dim", "47"],
    "svd-63": ["--kind", "learned", "--factor-dim", "63"],
    **{name: MINILM_ARMS[name] for name in ("kronecker", "kronecker-residual-16")},
}
# name -> (petra compress --model, arms, the recovery's own arguments, its steps, and whether
# the embedding trains alone throughout). The sentence encoder's recipe was chosen on STS-B
# train, one seed, one arm (Kronecker), pilot in benchmarks/results/compress-minilm/pilot/:
# of the recipes tried only those matching the pairwise cosines of a batch's sentence vectors
# (--distil cosines) end above their start, best with the new embedding alone at lr 3e-6 for
# 400 steps (the pretrained layers trained from step 200 gave back under a point; every
# recipe training them at 5e-5 from the start lost 9 to 20 points). The same recipe is used
# for every arm, so an arm that a recovery of its layers would suit better (SVD) is not shown
# at its best. The causal LM's recipe (next-token KL and every layer's states, every layer
# training) is not yet chosen on held-out text.
MODELS = {
    "minilm": ("all-minilm-l6-v2", MINILM_ARMS,
               ["--batch-size", "32", "--distil", "cosines", "--embedding-lr", "3e-6"], 400, True),
    "smollm2": ("smollm2-135m", SMOLLM2_ARMS,
                ["--batch-size", "8", "--max-length", "128", "--distil", "hidden"], 1000, False),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--only", nargs="+", metavar="ARM", help="run these arms only")
    args = parser.parse_args(argv)
    model, arms, budget, steps, alone = MODELS[args.model]
    unknown = sorted(set(args.only or ()) - set(arms))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {sorted(arms)}")
    petra = [sys.executable, "-m", "petra"]
    runs, results = RUNS / args.model, RESULTS / f"compress-{args.model}"
    results.mkdir(parents=True, exist_ok=True)
    for name, arm in arms.items():
        if args.only and name not in args.only:
            continue
        print(f"[{args.model}] arm {name}", flush=True)
        recovery = ["--steps", str(steps), "--embedding-steps", str(steps if alone else 0),
                    "--eval-every", str(args.eval_every)]  # fmt: skip
        command = [*petra, "compress", "--model", model, *arm, *budget, *recovery,
                   "--out", str(runs / name), "--quiet"]  # fmt: skip
        subprocess.run(command, check=True)
        shutil.copyfile(runs / name / "compress.json", results / f"{name}.json")
    finished = [results / f"{name}.json" for name in arms if (results / f"{name}.json").is_file()]
    if not args.only and len(finished) == len(arms):
        from petra.compress import comparison_table, plot_tradeoff

        table = comparison_table(finished)
        (results / "TABLE.md").write_text(table + "\n")
        plot_tradeoff(finished, ROOT / "docs" / "images" / f"compress-{args.model}.png")
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
