"""Forced out-of-vocabulary generation with an embedding that reads raw bytes
(`TokenEmbedding.embeds_bytes`).

A span of the prompt is replaced by ONE position whose embedding is computed from arbitrary
bytes (a coined word, a misspelling, a word in another script), something a learned table
cannot do; the continuation is shown next to the one from the ordinary tokenization of the
same text, where the span becomes however many tokens the tokenizer makes of it.
"""

from __future__ import annotations

import torch

from petra.probes.checks import require_at_least_one, require_causal_lm


def forced_oov_generation(
    model, tokenizer, prompt: str, span: str, replacement: bytes, max_new_tokens: int = 20
) -> dict:
    """Greedy continuations of `prompt` with `span` replaced by `replacement`: as one forced
    position (the replacement's bytes embedded in place of a token), and as ordinary tokens.

    Args:
        model: a petra causal LM whose embedding `embeds_bytes`.
        tokenizer: its tokenizer.
        prompt: the text to continue.
        span: a non-empty part of `prompt` to replace.
        replacement: the non-empty bytes put in its place.
        max_new_tokens: the length of each continuation, at least 1.

    Returns:
        `{"prompt": the replaced text, "forced": {"positions", "continuation"},
        "ordinary": {"positions", "span_tokens", "continuation"}}`.

    Raises:
        ValueError: if the model is not a causal LM whose embedding embeds bytes, the span or
            the replacement is empty, or the span is not in the prompt.
    """
    require_causal_lm(model, "generate", "generation")
    require_at_least_one(max_new_tokens, "max_new_tokens")
    if not model.embedding.embeds_bytes:
        raise ValueError(
            f"forced out-of-vocabulary input needs an embedding that embeds raw bytes "
            f"(embeds_bytes); this model's is {model.embedding.kind!r}"
        )
    if not span:
        raise ValueError("the span to replace is empty: give a part of the prompt")
    if not replacement:
        raise ValueError("the replacement bytes are empty: give at least one byte")
    if span not in prompt:
        raise ValueError(f"the span {span!r} does not occur in the prompt {prompt!r}")
    prefix, suffix = prompt.split(span, 1)
    if prefix.endswith(" "):  # a byte-level token carries its leading space
        prefix, replacement = prefix[:-1], b" " + replacement
    before, after = tokenizer.encode(prefix).ids, tokenizer.encode(suffix).ids
    device = model.device
    ids = torch.tensor([[*before, 0, *after]], device=device)  # the 0 at len(before) is overridden
    forced = model.generate(ids, max_new_tokens, byte_overrides={(0, len(before)): replacement})
    text = prefix + replacement.decode("utf-8", errors="replace") + suffix
    ordinary_ids = torch.tensor([tokenizer.encode(text).ids], device=device)
    ordinary = model.generate(ordinary_ids, max_new_tokens)
    return {
        "prompt": text,
        "forced": {
            "positions": ids.shape[1],
            "continuation": tokenizer.decode(forced[0, ids.shape[1] :].tolist()),
        },
        "ordinary": {
            "positions": ordinary_ids.shape[1],
            "span_tokens": ordinary_ids.shape[1] - len(before) - len(after),
            "continuation": tokenizer.decode(ordinary[0, ordinary_ids.shape[1] :].tolist()),
        },
    }
