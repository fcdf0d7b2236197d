"""One rank of the two-process test in tests/test_hf.py (run under torchrun, on CPU).

Builds a tiny GPT-2 from its config with the real GPT-2 tokenizer, swaps in a Kronecker
embedding with a tied head (seeded alike on every rank) and trains it a few steps with the
`transformers` Trainer (DDP over gloo), twice: with the Trainer's default settings, then with
`ddp_broadcast_buffers=False`. Each rank writes `rank{R}.json` into OUTDIR with, per run,
the world size, sha256 checksums of the byte table as built and after training, and float64
sums and a sha256 of the trainable parameters before and after training (or the error the
run raised).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/hf_ddp_worker.py OUTDIR
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from petra.data import load_tokenizer
from petra.hf import replace_embeddings

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The cat sat quietly on the warm mat.",
    "Two children are running through the park.",
    "A woman is slicing tomatoes in the kitchen.",
    "The train arrived at the station late at night.",
    "Someone is riding a bicycle down a hill.",
    "A dog catches a frisbee in the air.",
    "The old bridge was closed for repairs.",
]
LENGTH = 16
RUNS = {"default": {}, "no_broadcast_buffers": {"ddp_broadcast_buffers": False}}


def byte_table_checksum(model) -> str:
    table = model.get_input_embeddings().byte_table
    return hashlib.sha256(table.cpu().numpy().tobytes()).hexdigest()


def trainable(model) -> list[torch.Tensor]:
    return [p.detach() for p in model.parameters() if p.requires_grad]


def parameter_sum(model) -> float:
    return sum(p.double().sum().item() for p in trainable(model))


def parameter_checksum(model) -> str:
    digest = hashlib.sha256()
    for p in trainable(model):
        digest.update(p.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def examples(tokenizer) -> list[dict]:
    """Causal-LM examples padded to LENGTH (padding is masked and not predicted)."""
    pad = tokenizer.token_to_id("<|endoftext|>")
    rows = []
    for sentence in SENTENCES:
        ids = tokenizer.encode(sentence).ids[:LENGTH]
        fill = LENGTH - len(ids)
        rows.append({
            "input_ids": torch.tensor(ids + [pad] * fill),
            "attention_mask": torch.tensor([1] * len(ids) + [0] * fill),
            "labels": torch.tensor(ids + [-100] * fill),
        })  # fmt: skip
    return rows


def train(outdir: Path, tokenizer, **settings) -> dict:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=50257))
    replace_embeddings(model, "kronecker", tokenizer, head="tied")
    result = {"byte_table_built": byte_table_checksum(model), "params_start": parameter_sum(model)}
    args = TrainingArguments(
        output_dir=str(outdir / "trainer"),
        use_cpu=True,
        per_device_train_batch_size=2,
        max_steps=3,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        ddp_find_unused_parameters=False,
        **settings,
    )
    try:
        Trainer(model=model, args=args, train_dataset=examples(tokenizer)).train()
    except Exception as error:  # recorded for the test to show
        return {**result, "error": f"{type(error).__name__}: {error}"}
    return {
        **result,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "byte_table_trained": byte_table_checksum(model),
        "params_trained": parameter_sum(model),
        "params_trained_sha256": parameter_checksum(model),
    }


def main(outdir: Path) -> None:
    tokenizer = load_tokenizer("gpt2")
    results = {name: train(outdir, tokenizer, **settings) for name, settings in RUNS.items()}
    rank = dist.get_rank() if dist.is_initialized() else 0
    (outdir / f"rank{rank}.json").write_text(json.dumps(results, indent=2) + "\n")
    if dist.is_initialized():  # the Trainer leaves its gloo group open: an open group torn
        dist.barrier()  # down by interpreter exit can abort one rank while the other writes
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
