"""Score `petra compress` models of a sentence encoder on all of an STS-B split, overall and
per genre, and how far each run's recovery moved them.

    python scripts/compress_rescore.py FOLDER... [--starts | --change] [--split train|dev]
        [--out FILE]

Each FOLDER is a finished `petra compress` run (its recovered `model/` is read; a candidate
run of `compress_tradeoff.py --choose`, `runs/compress/MODEL-choose/ARM/CANDIDATE`, is named
by its arm: the chosen candidate's run trains as its arm's), or `swap`, the pilot's Kronecker
least-squares start itself. With `--starts`, each run's start (the
model right after its swap, rebuilt from the settings its `compress.json` records) is scored
too, as `NAME/swapped`: whether a run's recovery helped. With `--change` (which scores the
starts too), `NAME/change` is the recovery's change of each Spearman with its 95 % paired
bootstrap interval over the pairs (`petra.compress.genre_spearman_change`): whether the
change is more than the split's sampling of pairs would make, for this one run (a recovery
with another seed varies besides). Spearman x100 of the cosine of the sentence vectors,
with each genre's own.

The pilot chose its recipe on STS-B train's first pairs in file order, which are all
captions (MSRvid, then images); `--split train` (the default) scores every one of its
5,749 pairs (2,000 captions, 450 forum, 3,299 news) instead. `--split dev` scores the
reported split's 1,500 pairs: for the reported numbers' intervals, never to choose a setting.
Written to `--out` (default `benchmarks/results/compress-minilm/pilot/rescored-SPLIT.json`); a
name already there is not scored again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from petra.atomic import atomic_write_json
from petra.compress import (
    CompressSettings,
    genre_spearman,
    genre_spearman_change,
    pair_cosines,
    swap_start,
)
from petra.data import load_stsb
from petra.hf import from_pretrained

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "benchmarks" / "results" / "compress-minilm" / "pilot"


def models(folder: Path, starts: bool) -> list[tuple[str, object]]:
    """(name, a function that loads the model) of what FOLDER names: its recovered model,
    and with `starts` its start; `swap`, the pilot's Kronecker start."""
    if folder.name == "swap":
        pilot = CompressSettings(model="all-minilm-l6-v2", kind="kronecker", max_sentences=3000)
        return [("swap", lambda: swap_start(pilot).student)]
    name = run_name(folder)
    found = [(name, lambda: from_pretrained(folder / "model"))]
    if starts:
        recorded = json.loads((folder / "compress.json").read_text())["settings"]
        settings = CompressSettings(**recorded)
        found.append((f"{name}/swapped", lambda: swap_start(settings).student))
    return found


def run_name(folder: Path) -> str:
    """A run's name: its folder's, or for a candidate of `compress_tradeoff.py --choose`
    (`runs/compress/MODEL-choose/ARM/CANDIDATE`) its arm's."""
    return folder.parent.name if folder.parent.parent.name.endswith("-choose") else folder.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--starts", action="store_true", help="score each run's start too")
    parser.add_argument(
        "--change", action="store_true", help="and the recovery's change, with its interval"
    )
    parser.add_argument("--split", choices=("train", "dev"), default="train")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.change and any(Path(folder).name == "swap" for folder in args.folders):
        parser.error("--change needs runs: `swap` is a start without a recovery")
    out = args.out or PILOT / f"rescored-{args.split}.json"
    pairs = load_stsb(args.split)
    result = json.loads(out.read_text()) if out.is_file() else {}
    for folder in map(Path, args.folders):
        found = models(folder, args.starts or args.change)
        run = run_name(folder)
        wanted = [name for name, _ in found] + ([f"{run}/change"] if args.change else [])
        if all(name in result for name in wanted):
            continue
        cosines = {}
        for name, load in found:
            cosines[name] = pair_cosines(load().eval(), pairs)
            result[name] = genre_spearman(cosines[name], pairs)
            print(name, {k: round(v, 2) for k, v in result[name].items()}, flush=True)
        if args.change:
            change = genre_spearman_change(cosines[f"{run}/swapped"], cosines[run], pairs)
            result[f"{run}/change"] = change
            rounded = {
                k: [round(v[x], 2) for x in ("change", "low", "high")] for k, v in change.items()
            }
            print(f"{run}/change", rounded, flush=True)
        atomic_write_json(out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
