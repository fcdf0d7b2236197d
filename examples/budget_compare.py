"""Compare embedding kinds at one budget of embedding parameters: a small language model each.

    python examples/budget_compare.py                            # the demo preset, some minutes
    python examples/budget_compare.py --kinds learned,kronecker --budget 32k --seeds 0,1

It is the command line

    petra compare lm --preset demo --kinds learned,fourier,kronecker,hash --budget 65k \\
        --out runs/budget-compare

through the Python API. Every kind is sized by its own knob (learned: `factor_dim`,
fourier: the GeGLU width, kronecker: `rank`, hash: `buckets`, ...) to the largest size that
stays within the budget, and must land within 10 % below it (`size_for_budget`); then each
arm trains with the preset's data, steps and seeds. At the demo preset (a BPE of 4,096
tokens, d = 128) the learned table would hold 524,288 parameters: 65k is about an eighth.
`OUT/table.md` is the table printed at the end, `OUT/results.json` every arm's settings and
metrics, `OUT/curves.png` the training losses. An interrupted comparison continues where it
stopped: arms with results are reused.
"""

import argparse

from petra.compare import Budget, compare, format_table
from petra.embeddings import parse_budget


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="lm", help="lm, classify, nli-sts, sts or distill")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--kinds", default="learned,fourier,kronecker,hash")
    parser.add_argument("--budget", default="65k", help="embedding parameters, e.g. 65k or 1.5M")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--steps", type=int, default=None, help="training steps (the preset's)")
    parser.add_argument("--out", default="runs/budget-compare")
    args = parser.parse_args(argv)

    overrides = [] if args.steps is None else [f"train.steps={args.steps}"]
    summary = compare(
        args.task,
        kinds=args.kinds.split(","),
        backbones=["standard"],
        preset=args.preset,
        seeds=[int(seed) for seed in args.seeds.split(",")],
        out=args.out,
        overrides=overrides,
        progress=False,
        budget=Budget(params=parse_budget(args.budget)),
    )
    print(format_table(summary))
    for arm in summary["arms"]:
        ((knob, value),) = arm["sized"].items()
        print(f"{arm['kind']} (seed {arm['seed']}): {knob}={value}, "
              f"{arm['params']['embedding']:,} embedding parameters -> {arm['run']}")  # fmt: skip


if __name__ == "__main__":
    main()
