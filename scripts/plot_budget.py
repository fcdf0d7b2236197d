"""One metric-against-parameters plot of `petra compare` results run at one budget in parts
(a kind added later with the same protocol and seeds, in its own results JSON):

    python scripts/plot_budget.py docs/budget-65k-metric-vs-params.png \
        benchmarks/results/budget/nli-sts-demo-65536.json \
        benchmarks/results/budget/nli-sts-demo-65536-ngram.json

The parts must share the task, preset, budget and seeds; the plot is
`petra.compare.plot_metric_vs_params` of their arms together.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from petra.compare import plot_metric_vs_params

SHARED = ("task", "preset", "budget", "seeds")


def merged(paths: list[Path]) -> dict:
    parts = [json.loads(path.read_text()) for path in paths]
    for key in SHARED:
        values = {json.dumps(part.get(key), sort_keys=True) for part in parts}
        if len(values) > 1:
            raise SystemExit(f"the results differ in {key}: {sorted(values)}")
    return {**parts[0], "arms": [arm for part in parts for arm in part["arms"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("results", type=Path, nargs="+", help="compare results.json files")
    args = parser.parse_args()
    plot_metric_vs_params(merged(args.results), args.out)


if __name__ == "__main__":
    main()
