"""Score `petra compress` models of a sentence encoder on all of STS-B train, overall and per
genre.

    python scripts/compress_rescore.py FOLDER... [--starts] [--out FILE]

Each FOLDER is a finished `petra compress` run (its recovered `model/` is read), or `swap`,
the pilot's Kronecker least-squares start itself. With `--starts`, each run's start (the
model right after its swap, rebuilt from the settings its `compress.json` records) is scored
too, as `NAME/swapped`: whether a run's recovery helped, judged on train. The pilot chose its
recipe on STS-B train's first pairs in file order, which are all captions (MSRvid, then
images); this scores every one of the 5,749 pairs (2,000 captions, 450 forum, 3,299 news)
instead, Spearman x100 of the cosine of the sentence vectors, with each genre's own. Dev,
the reported split, is not read. Written to `--out` (default
`benchmarks/results/compress-minilm/pilot/rescored-train.json`); a name already there is
not scored again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from petra.atomic import atomic_write_json
from petra.compress import CompressSettings, pair_spearman, swap_start
from petra.data import load_stsb
from petra.hf import from_pretrained

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "compress-minilm" / "pilot" / "rescored-train.json"


def models(folder: Path, starts: bool) -> list[tuple[str, object]]:
    """(name, a function that loads the model) of what FOLDER names: its recovered model,
    and with `starts` its start; `swap`, the pilot's Kronecker start."""
    if folder.name == "swap":
        pilot = CompressSettings(model="all-minilm-l6-v2", kind="kronecker", max_sentences=3000)
        return [("swap", lambda: swap_start(pilot).student)]
    found = [(folder.name, lambda: from_pretrained(folder / "model"))]
    if starts:
        recorded = json.loads((folder / "compress.json").read_text())["settings"]
        settings = CompressSettings(**recorded)
        found.append((f"{folder.name}/swapped", lambda: swap_start(settings).student))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--starts", action="store_true", help="score each run's start too")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pairs = load_stsb("train")
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for folder in map(Path, args.folders):
        for name, load in models(folder, args.starts):
            if name in result:
                continue
            result[name] = pair_spearman(load().eval(), pairs)
            print(name, {k: round(v, 2) for k, v in result[name].items()}, flush=True)
            atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
