"""Data: where it lives, loaders for the real data sets, tokenizers, batching."""

from petra.data.datasets import (
    LabeledText,
    NLIPair,
    Records,
    SentencePair,
    agnews_splits,
    load_agnews,
    load_corpus,
    load_imdb,
    load_misspellings,
    load_nli,
    load_stsb,
)
from petra.data.paths import resolve_data_dir, use_data_dir
from petra.data.tokenizers import (
    load_tokenizer,
    padding_id,
    special_token_ids,
    token_counts,
    tokenizer_fingerprint,
    train_bpe,
)

__all__ = [
    "LabeledText",
    "NLIPair",
    "Records",
    "SentencePair",
    "agnews_splits",
    "load_agnews",
    "load_corpus",
    "load_imdb",
    "load_misspellings",
    "load_nli",
    "load_stsb",
    "load_tokenizer",
    "padding_id",
    "resolve_data_dir",
    "special_token_ids",
    "token_counts",
    "tokenizer_fingerprint",
    "train_bpe",
    "use_data_dir",
]
