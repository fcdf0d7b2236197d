"""Generation speed of a causal LM with and without the key-value cache.

A small causal LM with the GPT-2 vocabulary (V = 50,257, learned tied embedding), d = 128,
2 layers, 4 heads, on the standard backbone and on the spectral L-Transformer (p = 2 slices,
2 heads each): batches of 4 random prompts of 32 tokens, extended greedily by 64 new tokens
(no stop token, so every run makes them all). For each arm (backbone x cache): the median
wall time of one `generate` call over the repeats (after warm-up calls), as new tokens per
second (batch x new tokens / time). Repeats are interleaved across the arms, so that drifts
of a shared machine hit every arm alike. Each backbone's cached and uncached outputs are
checked to be the same tokens (`same_tokens`).

    python benchmarks/generation.py --out benchmarks/results/generation.json [--device cuda]

Compare the ratios within one run (`cache_speedup`: cached over uncached tokens/s, per
backbone), not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from measure import timed_ms
from report import write_report

from petra.models import ModelConfig, build_model

BACKBONES = ("standard", "spectral")


def build(backbone: str, args) -> torch.nn.Module:
    spectral = {"backbone": "spectral", "slices": args.slices} if backbone == "spectral" else {}
    heads = args.heads // args.slices if backbone == "spectral" else args.heads
    config = ModelConfig(
        model="causal_lm",
        vocab_size=args.vocab,
        dim=args.dim,
        n_layers=args.layers,
        n_heads=heads,
        max_len=args.prompt + args.new_tokens,
        embedding={"kind": "learned"},
        **spectral,
    )
    return build_model(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4, help="in all (split over the slices)")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/generation.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    models = {backbone: build(backbone, args).to(device) for backbone in BACKBONES}
    prompts = torch.randint(0, args.vocab, (args.batch, args.prompt), device=device)
    arms = [(backbone, use_cache) for backbone in BACKBONES for use_cache in (True, False)]
    times = {arm: [] for arm in arms}
    outputs = {}
    for repeat in range(args.warmup + args.repeats):
        for backbone, use_cache in arms:

            def run(arm=(backbone, use_cache)):
                outputs[arm] = models[arm[0]].generate(prompts, args.new_tokens, use_cache=arm[1])

            elapsed = timed_ms(run, device) / 1000
            if repeat >= args.warmup:
                times[backbone, use_cache].append(elapsed)

    tokens = args.batch * args.new_tokens
    results = []
    for backbone, use_cache in arms:
        median = statistics.median(times[backbone, use_cache])
        results.append(
            {
                "backbone": backbone,
                "use_cache": use_cache,
                "tokens_per_s": tokens / median,
                "seconds_median": median,
                "seconds_all": times[backbone, use_cache],
            }
        )
    ratios = {}
    for backbone in BACKBONES:
        cached, uncached = (r for r in results if r["backbone"] == backbone)
        ratios[backbone] = {
            "cache_speedup": cached["tokens_per_s"] / uncached["tokens_per_s"],
            "same_tokens": torch.equal(outputs[backbone, True], outputs[backbone, False]),
        }
    for r in results:
        print(
            f"{r['backbone']:9s} cache={str(r['use_cache']):5s}"
            f"   {r['tokens_per_s']:>9,.0f} new tokens/s   ({r['seconds_median']:.3f} s)"
        )
    for backbone, ratio in ratios.items():
        print(
            f"{backbone}: cache speedup {ratio['cache_speedup']:.2f}x, "
            f"same tokens: {ratio['same_tokens']}"
        )
    report = {
        "benchmark": "generation",
        "config": {
            k: getattr(args, k)
            for k in (
                "vocab",
                "dim",
                "layers",
                "heads",
                "slices",
                "prompt",
                "new_tokens",
                "batch",
                "repeats",
                "warmup",
                "device",
            )
        },  # fmt: skip
        "results": results,
        "ratios": ratios,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
