"""Speed and memory of every embedding kind at GPT-2 scale (V = 50,257, d = 768, 4 x 512 tokens).

For each arm, in a fresh process of its own:
- forward: median wall time of one forward under `torch.no_grad` in training mode: the
  computed kinds compute their rows (once per distinct id), as in every training step;
- eval forward: the same in `eval()` mode, where the computed kinds keep their V x d table
  (built once, before timing) and look rows up: what inference pays per call;
- step: median wall time of forward + backward of sum(E * G) for a fixed random G + one
  optimizer step (AdamW; SparseAdam for the sparse `nn.Embedding`);
- forward peak: the memory one training-mode forward adds at its peak, its saved activations
  alive (after one warm-up call; `measure.peak_mib`);
- bound: the least the forward must move and compute (float32), for the arms whose work is
  modelled (`forward_bound`), against this machine's copy bandwidth and matmul rate measured
  in the same run: bound ms = max(bytes / bandwidth, FLOPs / matmul rate), and
  `forward_over_bound` says how far the forward is from it.

The token ids are 4 windows of 512 GPT-2 tokens of Shakespeare (the shared corpus), so that
token lengths, the Kronecker codec's work and the share of distinct ids are those of real
text.

    python benchmarks/embeddings.py --out benchmarks/results/embeddings.json [--device cuda]

Timings on a shared 2-core machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
from measure import matmul_gflops, median_ms, memory_bandwidth_gbs, peak_mib
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
    """The arm's module (on the CPU) and its optimizer class."""
    from petra import FourierEmbedding, KroneckerEmbedding
    from petra.data import load_tokenizer

    vocab = 50257
    if name.startswith("nn.Embedding"):
        sparse = "sparse" in name
        module = nn.Embedding(vocab, dim, sparse=sparse)
        return module, torch.optim.SparseAdam if sparse else torch.optim.AdamW
    if name.startswith("fourier"):
        module = FourierEmbedding(vocab, dim, cache_features=name.endswith("cached"))
        return module, torch.optim.AdamW
    if name in ("qr", "hash", "dhe") or name.startswith("tt"):  # the baselines at their defaults
        from petra import build_embedding

        options = {"rank": int(name.removeprefix("tt-rank"))} if name.startswith("tt") else {}
        module = build_embedding(name.split("-")[0], vocab, dim, **options)
        return module, torch.optim.AdamW
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
    return module, torch.optim.AdamW


def forward_bound(arm: str, module, ids: torch.Tensor) -> dict | None:
    """The least one forward of `arm` must do on `ids`, float32: bytes it must move (read or
    write, each once) and FLOPs it must compute. None for arms not modelled.

    With N ids, U distinct, width d, 8-byte ids and the N x d output written once:
    - lookup: read N rows, write N rows: 8N + 8Nd bytes, no FLOPs;
    - Fourier, linear refinement: read R (d^2), write the output; 2 U d^2 FLOPs (the
      refinement per distinct id; the sin/cos features are not counted), plus a read of U
      feature rows when they are cached;
    - Kronecker, sparse: read W (r x D, r = d or the rank, and the d x r expansion) once,
      as W 1 needs all of it, the U byte rows (P bytes and an int32 length) and write the
      output; r D (W 1) + 2 r sum_u L_u (the bag) + 2 U r (the rank-one term) + 2 U r d
      (the expansion) FLOPs.
    """
    n, d = ids.numel(), module.embedding_dim
    unique = ids.unique()
    u = unique.numel()
    io = 8 * n + 4 * n * d
    if arm.startswith("nn.Embedding"):
        return {"bytes": io + 4 * n * d, "flops": 0}
    if arm.startswith("fourier-linear"):
        cached = 4 * u * d if arm.endswith("cached") else 0
        return {"bytes": io + 4 * d * d + cached, "flops": 2 * u * d * d}
    if arm.startswith("kronecker-sparse"):
        r, codec = module.rank or d, module.codec_dim
        expand = 0 if module.rank is None else r * d
        lengths = int(module.byte_lengths[unique].sum())
        return {
            "bytes": io + 4 * (r * codec + expand) + u * (module.pos_dim + 4),
            "flops": r * codec + 2 * r * lengths + 2 * u * r + 2 * u * expand,
        }
    return None


def machine_ceilings(device: torch.device) -> dict:
    return {
        "memory_bandwidth_gbs": memory_bandwidth_gbs(device),
        "matmul_gflops": matmul_gflops(device),
    }


def with_bound(result: dict, ceilings: dict) -> dict:
    """`result` with its bound time and the forward's ratio to it, where modelled."""
    bound = result.get("bound")
    if bound is None:
        return result
    bound_ms = 1000 * max(
        bound["bytes"] / (ceilings["memory_bandwidth_gbs"] * 1e9),
        bound["flops"] / (ceilings["matmul_gflops"] * 1e9),
    )
    return {
        **result,
        "bound_ms": bound_ms,
        "forward_over_bound": result["forward_ms_median"] / bound_ms,
    }


def run_arm(args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    ids = token_ids(args.batch, args.seq, args.data_dir).to(device)
    module, optimizer_cls = build_arm(args.arm, args.dim, args.pos_dim, args.data_dir)
    optimizer = optimizer_cls(module.to(device).parameters(), lr=1e-3)
    grad_out = torch.randn(*ids.shape, args.dim, device=device)
    module(ids)  # a warm-up call first: lazy one-time allocations are not the forward's
    peak = peak_mib(lambda: module(ids), device)  # training mode: the graph keeps its inputs

    def forward():
        with torch.no_grad():
            module(ids)

    def step():
        (module(ids) * grad_out).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    forward_ms, forward_all = median_ms(forward, args.repeats, args.warmup, device)
    step_ms, step_all = median_ms(step, args.repeats, args.warmup, device)
    module.eval()
    eval_ms, eval_all = median_ms(forward, args.repeats, args.warmup, device)
    return {
        "arm": args.arm,
        "forward_ms_median": forward_ms,
        "eval_forward_ms_median": eval_ms,
        "step_ms_median": step_ms,
        "forward_peak_mib": peak,
        "forward_ms_all": forward_all,
        "eval_forward_ms_all": eval_all,
        "step_ms_all": step_all,
        "trainable_params": sum(p.numel() for p in module.parameters()),
        "distinct_id_fraction": ids.unique().numel() / ids.numel(),
        "bound": forward_bound(args.arm, module, ids),
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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", default="benchmarks/results/embeddings.json")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # worker mode: one arm, JSON to stdout
    args = parser.parse_args()

    if args.arm:
        print(json.dumps(run_arm(args)))
        return

    ceilings = machine_ceilings(torch.device(args.device))
    print(
        f"copy bandwidth {ceilings['memory_bandwidth_gbs']:.1f} GB/s, "
        f"matmul {ceilings['matmul_gflops']:.0f} GFLOP/s",
        flush=True,
    )
    results = []
    for arm in args.arms.split(","):
        command = [sys.executable, __file__, "--arm", arm]
        for flag in ("dim", "batch", "seq", "pos_dim", "repeats", "warmup", "device"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(with_bound(json.loads(output.strip().splitlines()[-1]), ceilings))
        r = results[-1]
        bound = f"{r['forward_over_bound']:5.1f}x its bound" if "bound_ms" in r else ""
        print(
            f"{arm:34s} forward {r['forward_ms_median']:8.2f} ms {bound:16s}"
            f"   eval {r['eval_forward_ms_median']:7.2f} ms"
            f"   step {r['step_ms_median']:8.2f} ms"
            f"   forward peak {r['forward_peak_mib']:8.1f} MiB",
            flush=True,
        )

    by_arm = {r["arm"]: r for r in results}
    ratios = {}
    if "nn.Embedding" in by_arm:
        lookup = by_arm["nn.Embedding"]["forward_ms_median"]
        for r in results:
            ratios[f"{r['arm']}_forward_over_lookup"] = r["forward_ms_median"] / lookup
            ratios[f"{r['arm']}_eval_forward_over_lookup"] = r["eval_forward_ms_median"] / lookup
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
            k: getattr(args, k)
            for k in ("dim", "batch", "seq", "pos_dim", "repeats", "warmup", "device")
        },
        "vocab_size": 50257,
        "machine_ceilings": ceilings,
        "results": results,
        "ratios": ratios,
    }
    write_report(args.out, report)
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
