"""Speed and memory of every embedding kind at GPT-2 scale (V = 50,257, d = 768, 4 x 512 tokens).

For each arm, in a fresh process of its own:
- forward: median wall time of one inference forward (`torch.no_grad`);
- step: median wall time of forward + backward of sum(E * G) for a fixed random G + one
  optimizer step (AdamW; SparseAdam for the sparse `nn.Embedding`);
- forward peak: the rise of the process's peak resident memory (VmHWM, reset through
  /proc/self/clear_refs after `malloc_trim`) during one training-mode forward (after one
  warm-up call), whose saved activations stay alive until backward: a CPU measure of what
  one forward adds to memory.

The token ids are 4 windows of 512 GPT-2 tokens of Shakespeare (the shared corpus), so that
token lengths, and with them the Kronecker codec's work, are those of real text.

    python benchmarks/embeddings.py --out benchmarks/results/embeddings.json

Timings on a shared 2-core machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from report import write_report
from torch import nn

ARMS = (
    "nn.Embedding",
    "nn.Embedding(sparse)+SparseAdam",
    "fourier-linear",
    "fourier-linear-cached",
    "kronecker-sparse",
    "kronecker-dense",
    "kronecker-cached",
    "kronecker-sparse-rank64",
    "reference-dynamic",
    "qr",
    "hash",
    "dhe",
    "tt-rank16",
)


def token_ids(batch: int, seq: int, data_dir: str | None) -> torch.Tensor:
    from petra.data import load_tokenizer, resolve_data_dir

    tokenizer = load_tokenizer("gpt2", data_dir)
    text = (resolve_data_dir(data_dir) / "corpus" / "shakespeare.txt").read_text()[:400_000]
    ids = torch.tensor(tokenizer.encode(text).ids)
    starts = torch.linspace(0, len(ids) - seq - 1, batch).long()
    return torch.stack([ids[s : s + seq] for s in starts])  # (B, T)


def build_arm(name: str, dim: int, pos_dim: int, data_dir: str | None):
    from petra import FourierEmbedding, KroneckerEmbedding
    from petra.data import load_tokenizer

    vocab = 50257
    if name.startswith("nn.Embedding"):
        sparse = "sparse" in name
        module = nn.Embedding(vocab, dim, sparse=sparse)
        optimizer_cls = torch.optim.SparseAdam if sparse else torch.optim.AdamW
        return module, optimizer_cls(module.parameters(), lr=1e-3)
    if name.startswith("fourier"):
        module = FourierEmbedding(vocab, dim, cache_features=name.endswith("cached"))
        return module, torch.optim.AdamW(module.parameters(), lr=1e-3)
    if name in ("qr", "hash", "dhe") or name.startswith("tt"):  # the baselines at their defaults
        from petra import build_embedding

        options = {"rank": int(name.removeprefix("tt-rank"))} if name.startswith("tt") else {}
        module = build_embedding(name.split("-")[0], vocab, dim, **options)
        return module, torch.optim.AdamW(module.parameters(), lr=1e-3)
    gpt2 = load_tokenizer("gpt2", data_dir)
    if name.startswith("kronecker"):
        mode = name.split("-")[1]
        rank = int(name.split("-rank")[1]) if "-rank" in name else None
        module = KroneckerEmbedding.from_tokenizer(gpt2, dim, pos_dim=pos_dim, mode=mode, rank=rank)
    else:
        import kronecker_embeddings

        ours = KroneckerEmbedding.from_tokenizer(gpt2, dim, pos_dim=pos_dim)
        module = kronecker_embeddings.KroneckerEmbedding(
            vocab,
            dim,
            pos_dim=pos_dim,
            mode="dynamic",
            byte_buffer=ours.byte_table,
            length_buffer=ours.byte_lengths,
        )
    return module, torch.optim.AdamW(module.parameters(), lr=1e-3)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def forward_peak_mib(module, ids) -> float:
    module(ids)  # a warm-up call first: lazy one-time allocations are not the forward's
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _rss_kib("VmRSS")
    out = module(ids)  # training mode: the graph keeps what backward needs
    peak = _rss_kib("VmHWM")
    del out
    return (peak - before) / 1024


def median_ms(fn, repeats: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), times


def run_arm(args) -> dict:
    torch.manual_seed(0)
    ids = token_ids(args.batch, args.seq, args.data_dir)
    module, optimizer = build_arm(args.arm, args.dim, args.pos_dim, args.data_dir)
    grad_out = torch.randn(*ids.shape, args.dim)
    peak = forward_peak_mib(module, ids)

    def forward():
        with torch.no_grad():
            module(ids)

    def step():
        (module(ids) * grad_out).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    forward_ms, forward_all = median_ms(forward, args.repeats, args.warmup)
    step_ms, step_all = median_ms(step, args.repeats, args.warmup)
    return {
        "arm": args.arm,
        "forward_ms_median": forward_ms,
        "step_ms_median": step_ms,
        "forward_peak_mib": peak,
        "forward_ms_all": forward_all,
        "step_ms_all": step_all,
        "trainable_params": sum(p.numel() for p in module.parameters()),
        "distinct_id_fraction": ids.unique().numel() / ids.numel(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--pos-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", default="benchmarks/results/embeddings.json")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # worker mode: one arm, JSON to stdout
    args = parser.parse_args()

    if args.arm:
        print(json.dumps(run_arm(args)))
        return

    results = []
    for arm in args.arms.split(","):
        command = [sys.executable, __file__, "--arm", arm]
        for flag in ("dim", "batch", "seq", "pos_dim", "repeats", "warmup"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{arm:34s} forward {r['forward_ms_median']:8.2f} ms"
            f"   step {r['step_ms_median']:8.2f} ms"
            f"   forward peak {r['forward_peak_mib']:8.1f} MiB",
            flush=True,
        )

    by_arm = {r["arm"]: r for r in results}
    ratios = {}
    if {"kronecker-sparse", "reference-dynamic"} <= by_arm.keys():
        sparse, ref = by_arm["kronecker-sparse"], by_arm["reference-dynamic"]
        ratios["reference_step_over_kronecker_sparse_step"] = (
            ref["step_ms_median"] / sparse["step_ms_median"]
        )
        ratios["reference_forward_over_kronecker_sparse_forward"] = (
            ref["forward_ms_median"] / sparse["forward_ms_median"]
        )
        ratios["kronecker_sparse_peak_over_reference_peak"] = sparse["forward_peak_mib"] / max(
            ref["forward_peak_mib"], 1e-9
        )
    if {"kronecker-sparse", "nn.Embedding"} <= by_arm.keys():
        ratios["nn_embedding_step_over_kronecker_sparse_step"] = (
            by_arm["nn.Embedding"]["step_ms_median"] / by_arm["kronecker-sparse"]["step_ms_median"]
        )
    report = {
        "benchmark": "embeddings",
        "config": {
            k: getattr(args, k) for k in ("dim", "batch", "seq", "pos_dim", "repeats", "warmup")
        },
        "vocab_size": 50257,
        "results": results,
        "ratios": ratios,
    }
    write_report(args.out, report)
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
