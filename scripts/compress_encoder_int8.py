"""A reference beside the MiniLM trade-off: what a user gets by quantizing the encoder instead
of (or as well as) the word table.

    python scripts/compress_encoder_int8.py [--int4-run runs/compress/minilm/int4] [--out FILE]

Scores on STS-B dev (all 1,500 pairs, Spearman x100 of the cosine, as the trade-off does):
the original all-MiniLM-L6-v2; its encoder's Linear layers dynamically quantized to int8
(`torch.ao.quantization.quantize_dynamic`: int8 weights, activations quantized per batch at
run time; the fp32 word table kept); and the trade-off's int4-table arm (its recovered model)
with the same encoder quantization. Each model's size is the bytes of its serialized
`state_dict` (torch.save), in MiB: a different count from the trade-off table's model MiB
(tensor bytes), so the original is measured here the same way. Written to `--out` (default
`benchmarks/results/compress-minilm/encoder-int8.json`).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch

from petra.atomic import atomic_write_json
from petra.compress import load_teacher, stsb_spearman
from petra.hf import from_pretrained

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "compress-minilm" / "encoder-int8.json"


def serialized_mebibytes(model) -> float:
    """The size of `torch.save(model.state_dict())`, in MiB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 2**20


def encoder_int8(model):
    """`model` with every `nn.Linear` dynamically quantized to int8 weights."""
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--int4-run", type=Path, default=ROOT / "runs/compress/minilm/int4")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    original, _, _ = load_teacher("all-minilm-l6-v2")
    models = {
        "original": original,
        "encoder int8, fp32 table": encoder_int8(original),
        "encoder int8, int4 table (the int4 arm, recovered)": encoder_int8(
            from_pretrained(args.int4_run / "model").eval()
        ),
    }
    result = {}
    for name, model in models.items():
        result[name] = {
            "stsb_dev_spearman": stsb_spearman(model),
            "serialized_mib": serialized_mebibytes(model),
        }
        print(name, {k: round(v, 2) for k, v in result[name].items()}, flush=True)
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
