"""The whole-model training step: what a user of each embedding kind pays per step.

Causal LM, GPT-2-shaped and small: GPT-2's vocabulary (V = 50,257), d = 256, 4 layers, 4
heads, blocks of 256 Shakespeare tokens, batch 8. Arms: `learned` (tied head, the usual
baseline), `kronecker` (untied head: the paper's setup), `kronecker-cached` (the codec
table kept in memory: the paper's precomputed variant, against which it reports a
0.01-0.24 % step overhead for the on-the-fly codec), `fourier` (untied, petra's default for
it). Sentence encoder: BERT's vocabulary, d = 256, 1 layer, 4 heads, two batches of 64
sentences of 48 tokens, the InfoNCE step of `nli-sts`; arms `learned`, `fourier`,
`kronecker`.

One training step = forward, loss, backward, AdamW step, zero_grad. Repeats are interleaved
across the arms of a model, so that drifts of a shared machine hit every arm alike; the
median per arm is reported with its ratio to `learned` of the same run. Peak memory: on
CUDA `torch.cuda.max_memory_allocated` over one step (reset before it); on the CPU the rise
of the process's peak resident memory over one step (`measure.peak_mib`), after a warm-up
step, so optimizer states exist.

    python benchmarks/model_step.py --out benchmarks/results/model_step.json [--device cuda]

Compare the ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from measure import peak_mib, timed_ms
from report import write_report

from petra.data import load_tokenizer, resolve_data_dir
from petra.models import ModelConfig, build_model

LM_ARMS = {
    "learned": {"kind": "learned"},
    "kronecker": {"kind": "kronecker"},
    "kronecker-cached": {"kind": "kronecker", "mode": "cached"},
    "fourier": {"kind": "fourier"},
}
SENTENCE_ARMS = {
    "learned": {"kind": "learned"},
    "fourier": {"kind": "fourier"},
    "kronecker": {"kind": "kronecker"},
}


def shakespeare_ids(tokenizer, batch: int, length: int, data_dir) -> torch.Tensor:
    text = (resolve_data_dir(data_dir) / "corpus" / "shakespeare.txt").read_text()[:600_000]
    ids = torch.tensor(tokenizer.encode(text).ids)
    starts = torch.linspace(0, len(ids) - length - 1, batch).long()
    return torch.stack([ids[s : s + length] for s in starts])


def lm_step(model, ids):
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


def sentence_step(model, pair):
    a, b = (F.normalize(model(x), dim=-1) for x in pair)
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(a @ b.T / 0.05, labels) + F.cross_entropy(b @ a.T / 0.05, labels)) / 2


def run_model(name, arms, config_fields, tokenizer, inputs, loss_fn, args, device) -> dict:
    steps = {}
    for arm, embedding in arms.items():
        torch.manual_seed(0)
        config = ModelConfig(**config_fields, embedding=embedding)
        model = build_model(config, tokenizer=tokenizer).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model=model, optimizer=optimizer):
            loss_fn(model, inputs).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[arm] = (step, model)
    times = {arm: [] for arm in arms}
    for _ in range(args.warmup):
        for step, _ in steps.values():
            step()
    peaks = {arm: peak_mib(step, device) for arm, (step, _) in steps.items()}
    for _ in range(args.repeats):
        for arm, (step, _) in steps.items():
            times[arm].append(timed_ms(step, device))
    median = {arm: statistics.median(t) for arm, t in times.items()}
    rows = []
    for arm, (_, model) in steps.items():
        rows.append(
            {
                "model": name,
                "arm": arm,
                "params": sum(p.numel() for p in model.parameters()),
                "step_ms_median": median[arm],
                "step_vs_learned": median[arm] / median["learned"],
                "peak_mib": peaks[arm],
                "peak_vs_learned": peaks[arm] / max(peaks["learned"], 1e-9),
                "step_ms_all": times[arm],
            }
        )
        print(
            f"{name:9s} {arm:17s} step {median[arm]:8.2f} ms ({rows[-1]['step_vs_learned']:.3f}x)"
            f"   peak {peaks[arm]:8.1f} MiB ({rows[-1]['peak_vs_learned']:.2f}x)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="benchmarks/results/model_step.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    gpt2 = load_tokenizer("gpt2", args.data_dir)
    lm_ids = shakespeare_ids(gpt2, 8, 257, args.data_dir).to(device)
    lm = dict(model="causal_lm", vocab_size=50257, dim=256, n_layers=4, n_heads=4, max_len=256)
    rows = run_model("causal_lm", LM_ARMS, lm, gpt2, lm_ids, lm_step, args, device)

    bert = load_tokenizer("bert-base-uncased", args.data_dir)
    ids = shakespeare_ids(bert, 128, 48, args.data_dir).to(device)
    pair = (ids[:64], ids[64:])
    sentence = dict(model="sentence", vocab_size=30522, dim=256, n_layers=1, n_heads=4, max_len=64)
    rows += run_model("sentence", SENTENCE_ARMS, sentence, bert, pair, sentence_step, args, device)

    write_report(
        args.out,
        {
            "benchmark": "model_step",
            "device": str(device),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "arms": rows,
        },
    )


if __name__ == "__main__":
    main()
