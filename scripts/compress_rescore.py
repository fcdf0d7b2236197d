"""Score the compress pilot's models on all of STS-B train, overall and per genre.

    python scripts/compress_rescore.py FOLDER... [--out FILE]

Each FOLDER is a `petra compress` run (its `model/` is read) or `swap`, the Kronecker
least-squares start itself. The pilot chose its recipe on STS-B train's first pairs in file
order, which are all captions (MSRvid, then images); this scores every one of the 5,749
pairs (2,000 captions, 450 forum, 3,299 news) instead, Spearman x100 of the cosine of the
sentence vectors, with each genre's own. Dev, the reported split, is not read. Written to
`--out` (default `benchmarks/results/compress-minilm/pilot/rescored-train.json`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from petra.atomic import atomic_write_json
from petra.compress import CompressSettings, swap_start
from petra.data import load_stsb, resolve_data_dir
from petra.hf import from_pretrained
from petra.tasks.sentence import cosine_correlations

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "compress-minilm" / "pilot" / "rescored-train.json"


def genres() -> list[str]:
    """Each STS-B train pair's genre (the file's first field), in file order."""
    path = resolve_data_dir() / "stsb" / "sts-train.csv"
    return [line.split("\t", 1)[0] for line in path.read_text().splitlines() if line.strip()]


def scores(model, pairs, genre_of: list[str]) -> dict:
    """Spearman x100 over every pair and over each genre's."""
    with torch.no_grad():
        a = model.encode([p.sentence1 for p in pairs], batch_size=128, convert_to_tensor=True)
        b = model.encode([p.sentence2 for p in pairs], batch_size=128, convert_to_tensor=True)
    gold = [p.score for p in pairs]
    found = {"all": cosine_correlations(a, b, gold)["spearman"]}
    for genre in sorted(set(genre_of)):
        keep = [i for i, g in enumerate(genre_of) if g == genre]
        found[genre] = cosine_correlations(a[keep], b[keep], [gold[i] for i in keep])["spearman"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pairs, genre_of = load_stsb("train"), genres()
    if len(genre_of) != len(pairs):
        raise ValueError(f"{len(genre_of)} genres for {len(pairs)} STS-B train pairs")
    result = {}
    for folder in args.folders:
        if folder == "swap":
            settings = CompressSettings(model="all-minilm-l6-v2", kind="kronecker",
                                        max_sentences=3000)  # fmt: skip
            model = swap_start(settings).student
        else:
            model = from_pretrained(Path(folder) / "model")
        model.eval()
        result[Path(folder).name] = scores(model, pairs, genre_of)
        print(Path(folder).name, {k: round(v, 2) for k, v in result[Path(folder).name].items()},
              flush=True)  # fmt: skip
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
