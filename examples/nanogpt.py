"""A nanoGPT-style language model with a petra embedding: train it, save it, load it back.

    python examples/nanogpt.py                          # Kronecker embedding, untied head
    python examples/nanogpt.py --kind fourier --tied    # Fourier, head tied through table()
    python examples/nanogpt.py --compile --steps 2000   # torch.compile (worth it on a GPU)

The GPT below has nanoGPT's shape (pre-LayerNorm blocks, learned positions, a GELU MLP, its
N(0, 0.02) init). Four lines are petra's, marked `# petra`:

- `wte = build_embedding(kind, V, d, ...)`, passed to the GPT and kept as `self.wte`, stands
  where `nn.Embedding(V, d)` was (two lines);
- a tied head is `logits = h @ wte.table().T` (here `head_table()`: the same in training,
  kept between calls in evaluation). nanoGPT's tying line `wte.weight = lm_head.weight` is
  refused by every kind but `learned`: a computed embedding has no V x d weight to share;
- `self.apply(self._init_weights)` also re-initializes the linear maps inside the embedding
  (a Kronecker projection, a Fourier refinement), so `wte.reset_parameters()` follows it.

A Kronecker head tied through `table()` starts at a loss of order d nats rather than ln V
(the input token's own logit is about d: see `KroneckerEmbedding.table`); the Kronecker
paper, and this script by default, leave it untied.
The text is petra's Shakespeare corpus (`PETRA_DATA`) or any file given with `--text`.
"""

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from petra import build_embedding
from petra.data import load_corpus, load_tokenizer


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, t, d / heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, wte: nn.Module, block_size: int, layers: int, heads: int, tied: bool):
        super().__init__()
        dim, vocab_size = wte.embedding_dim, wte.num_embeddings
        self.wte = wte  # petra: a TokenEmbedding, a drop-in nn.Embedding(V, d)
        self.wpe = nn.Embedding(block_size, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = None if tied else nn.Linear(dim, vocab_size, bias=False)
        self.apply(self._init_weights)
        self.wte.reset_parameters()  # petra: its own init again, after _init_weights

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if self.lm_head is None:
            logits = x @ self.wte.head_table().T  # petra: tied through the table
        else:
            logits = self.lm_head(x)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def build(args, tokenizer) -> GPT:
    options = {"tokenizer": tokenizer} if args.kind == "kronecker" else {}
    wte = build_embedding(args.kind, tokenizer.get_vocab_size(), args.dim, **options)  # petra
    return GPT(wte, args.block_size, args.layers, args.heads, args.tied).to(args.device)


def batch(ids: torch.Tensor, args, generator: torch.Generator):
    """`batch_size` random windows of `block_size` tokens, and the same shifted by one."""
    starts = torch.randint(len(ids) - args.block_size - 1, (args.batch_size,), generator=generator)
    x = torch.stack([ids[s : s + args.block_size] for s in starts])
    y = torch.stack([ids[s + 1 : s + 1 + args.block_size] for s in starts])
    return x.to(args.device), y.to(args.device)


@torch.no_grad()
def evaluate(model: GPT, ids: torch.Tensor, args) -> float:
    model.eval()
    generator = torch.Generator().manual_seed(0)  # the same windows every time
    losses = [model(*batch(ids, args, generator))[1].item() for _ in range(args.eval_batches)]
    model.train()
    return sum(losses) / len(losses)


@torch.no_grad()
def generate(model: GPT, ids: torch.Tensor, tokens: int, block_size: int) -> torch.Tensor:
    """Greedy continuation of `ids` (1, t) by `tokens` tokens."""
    model.eval()
    for _ in range(tokens):
        logits, _ = model(ids[:, -block_size:])
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    model.train()
    return ids


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="kronecker", help="a petra embedding kind")
    parser.add_argument("--tied", action="store_true", help="tie the head through table()")
    parser.add_argument("--compile", action="store_true", help="train the torch.compile'd model")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile's backend")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--sample", type=int, default=40, help="tokens generated at the end")
    parser.add_argument("--tokenizer", default="gpt2", help="a petra tokenizer name or path")
    parser.add_argument("--text", default="shakespeare", help="a petra corpus or a text file")
    parser.add_argument("--max-chars", type=int, default=2_000_000, help="of the text, used")
    parser.add_argument("--out", default="out-nanogpt", help="where the model is saved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.tokenizer)
    text = "\n\n".join(load_corpus(args.text))[: args.max_chars]
    ids = torch.tensor(tokenizer.encode(text).ids)
    train_ids, val_ids = ids[: int(0.9 * len(ids))], ids[int(0.9 * len(ids)) :]
    model = build(args, tokenizer)
    report = model.wte.param_report()
    total = sum(p.numel() for p in model.parameters())
    print(f"{args.kind} embedding: {report.trainable_params:,} parameters (a learned table: "
          f"{report.learned_equivalent:,}); model: {total:,}; head: "
          f"{'tied' if args.tied else 'untied'}; {len(ids):,} tokens")  # fmt: skip

    step_model = model
    if args.compile:
        model.wte.validate = False  # ids come from the tokenizer: skip the range check's sync
        step_model = torch.compile(model, backend=args.compile_backend)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # nanoGPT's weight-decay groups
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        _, loss = step_model(*batch(train_ids, args, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    vocab = tokenizer.get_vocab_size()
    print(f"validation loss {evaluate(model, val_ids, args):.3f} (ln V = {math.log(vocab):.2f})")
    prompt = torch.tensor([tokenizer.encode("ROMEO:").ids], device=args.device)
    sample = generate(model, prompt, args.sample, args.block_size)[0].tolist()
    print("sample:", repr(tokenizer.decode(sample)))

    # Save the weights (the Kronecker byte table travels in the state dict) with the settings,
    # then rebuild the model from the settings and load them back.
    path = Path(args.out) / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"args": vars(args), "model": model.state_dict()}, path)
    saved = torch.load(path, map_location=args.device)
    restored = build(argparse.Namespace(**saved["args"]), tokenizer)
    restored.load_state_dict(saved["model"])
    x, _ = batch(val_ids, args, torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (restored.eval()(x)[0] - model.eval()(x)[0]).abs().max().item()
    print(f"reloaded {path}: largest logit difference {difference:.1e}")


if __name__ == "__main__":
    main()
