"""Data: where the shared data lives, and the tokenizers."""

from petra.data.paths import resolve_data_dir
from petra.data.tokenizers import load_tokenizer

__all__ = ["load_tokenizer", "resolve_data_dir"]
