"""Fingerprints of one small run of each task, to check that a change of petra's machinery
changes no result: run it before and after the change and compare the two JSON files.

    python scripts/fingerprint_runs.py before.json
    (change petra)
    python scripts/fingerprint_runs.py after.json
    python scripts/fingerprint_runs.py --compare before.json after.json

A run's fingerprint is the SHA-256 of each weight tensor of its saved model (bytes, dtype and
shape) and its final metrics (exact floats). Runs use one torch thread, so that the float
sums, and so the weights, are the same from one process to the next; the runs go into a
temporary folder, deleted after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

TASKS = ("nli-sts", "sts", "classify", "lm", "distill")
KINDS = ("learned", "kronecker")


def weights_digest(folder: Path) -> dict[str, str]:
    """{tensor name: sha256 of its dtype, shape and bytes} over the folder's safetensors."""
    digests = {}
    for path in sorted(folder.glob("*.safetensors")):
        for name, tensor in sorted(load_file(path).items()):
            h = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            h.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
            digests[f"{path.name}:{name}"] = h.hexdigest()
    return digests


def train_runs(root: Path) -> dict:
    from petra.tasks.run import run_task

    runs = {}
    for task in TASKS:
        for kind in KINDS:
            out = root / f"{task}-{kind}"
            result = run_task(task, "tiny", [f"model.embedding={kind}"], out, progress=False)
            runs[f"{task}/{kind}"] = {
                "metrics": result["metrics"],
                "weights": weights_digest(out / "model"),
            }
    return runs


def compress_run(root: Path) -> dict:
    from petra.compress import CompressSettings, compress

    settings = CompressSettings(model="all-minilm-l6-v2", kind="kronecker", start="norms",
                                steps=4, batch_size=4, max_sentences=32, eval_pairs=60,
                                checkpoint_every=2)  # fmt: skip
    out = root / "compress"
    result = compress(settings, out, progress=False)
    return {"compress/minilm-kronecker": {
        "metrics": result["quality"], "weights": weights_digest(out / "model"),
    }}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="the JSON to write, or two to --compare")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(Path(f).read_text()) for f in args.files)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print("identical" if not differ else "differ: " + ", ".join(differ))
        return int(bool(differ))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("PETRA_CACHE", str(Path(folder) / "cache"))
        runs = {**train_runs(Path(folder)), **compress_run(Path(folder))}
    Path(args.files[0]).write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    print(f"{len(runs)} runs fingerprinted into {args.files[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
