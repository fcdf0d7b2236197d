"""Throughput of the L-Transformer encoder against the standard encoder of the same width.

d = 512, 4 layers, 8 heads, GeGLU x4, sequence 256, batch 8, on random hidden states with
a padding mask. The L-Transformer runs twice for each p: with 8 heads in every slice (head
width 512 / (8 p)), and with 8 heads in all, 8 / p per slice (head width 64, as in the
standard encoder), since attention costs the same FLOPs in both and only its head width
differs. For each arm: the median over repeats
of one forward (`torch.no_grad`) and of one training step (forward, backward of sum(Y * G)
for a fixed random G, AdamW step), as tokens per second. Repeats are interleaved across the
arms, so that drifts of a shared machine hit every arm alike.

    python benchmarks/spectral.py --out benchmarks/results/spectral.json

Compare the ratios within one run, not absolute figures across runs. The report records the
1-minute load average before and after the run: another job on a shared machine shows there.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
from measure import timed_ms
from report import write_report

from petra.models import ModelConfig
from petra.models.backbone import build_backbone
from petra.nn import attention_bias

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--slices", default="2,4,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    parser.add_argument("--out", default="benchmarks/results/spectral.json")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    torch.manual_seed(0)
    base = ModelConfig(dim=args.dim, n_layers=args.layers, n_heads=args.heads)
    configs = {"standard": base}
    for p in map(int, args.slices.split(",")):
        spectral = base.replace(backbone="spectral", slices=p)
        configs[f"spectral p={p}, {args.heads} heads/slice"] = spectral
        if args.heads % p == 0 and p > 1:
            configs[f"spectral p={p}, {args.heads} heads total"] = spectral.replace(
                n_heads=args.heads // p
            )
    arms = {}
    for name, config in configs.items():
        encoder = build_backbone(config)
        arms[name] = (encoder, torch.optim.AdamW(encoder.parameters(), lr=1e-4))

    x = torch.randn(args.batch, args.seq, args.dim)
    grad_out = torch.randn_like(x)
    attention_mask = torch.ones(args.batch, args.seq, dtype=torch.bool)
    attention_mask[1::2, -args.seq // 4 :] = False  # every other row a quarter padded
    mask = attention_bias(attention_mask, args.seq, False, x.device)
    tokens = args.batch * args.seq

    def forward(encoder):
        with torch.no_grad():
            encoder(x, mask)

    def step(encoder, optimizer):
        (encoder(x, mask) * grad_out).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = {name: {"forward": [], "step": []} for name in arms}
    for repeat in range(args.warmup + args.repeats):
        for name, (encoder, optimizer) in arms.items():
            t_forward = timed_ms(lambda: forward(encoder), CPU) / 1000  # noqa: B023
            t_step = timed_ms(lambda: step(encoder, optimizer), CPU) / 1000  # noqa: B023
            if repeat >= args.warmup:
                times[name]["forward"].append(t_forward)
                times[name]["step"].append(t_step)

    results = []
    for name, (encoder, _) in arms.items():
        forward_s = statistics.median(times[name]["forward"])
        step_s = statistics.median(times[name]["step"])
        results.append(
            {
                "arm": name,
                "encoder_params": sum(p.numel() for p in encoder.parameters()),
                "forward_tokens_per_s": tokens / forward_s,
                "step_tokens_per_s": tokens / step_s,
                "forward_s_all": times[name]["forward"],
                "step_s_all": times[name]["step"],
            }
        )
    standard = results[0]
    for r in results:
        r["forward_speedup"] = r["forward_tokens_per_s"] / standard["forward_tokens_per_s"]
        r["step_speedup"] = r["step_tokens_per_s"] / standard["step_tokens_per_s"]
        r["param_ratio"] = r["encoder_params"] / standard["encoder_params"]
        print(
            f"{r['arm']:30s} params {r['encoder_params']:>10,} ({r['param_ratio']:.3f})"
            f"   forward {r['forward_tokens_per_s']:>9,.0f} tok/s ({r['forward_speedup']:.2f}x)"
            f"   step {r['step_tokens_per_s']:>8,.0f} tok/s ({r['step_speedup']:.2f}x)"
        )
    report = {
        "benchmark": "spectral",
        "config": {
            k: getattr(args, k)
            for k in ("dim", "layers", "heads", "seq", "batch", "repeats", "warmup")
        },
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
