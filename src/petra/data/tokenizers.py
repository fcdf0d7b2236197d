"""Tokenizers from the shared files, with padding and truncation switched off.

`load_tokenizer("gpt2")` reads GPT-2's `vocab.json` + `merges.txt` (byte-level BPE);
`load_tokenizer("bert-base-uncased")` reads BERT's `tokenizer.json` (WordPiece). A path to a
`tokenizer.json` file, or to a folder holding one or the GPT-2 pair, works as well.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from petra.data.paths import resolve_data_dir

NAMED = ("bert-base-uncased", "gpt2")


def load_tokenizer(name_or_path: str | os.PathLike, data_dir=None) -> Tokenizer:
    path = Path(name_or_path)
    if str(name_or_path) in NAMED:
        path = resolve_data_dir(data_dir) / "tokenizers" / str(name_or_path)
    elif not path.exists():
        raise FileNotFoundError(
            f"no tokenizer {str(name_or_path)!r}: name one of {NAMED} or give a path to a "
            "tokenizer.json or to a folder with tokenizer.json or vocab.json + merges.txt"
        )
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    if path.is_file():
        tokenizer = Tokenizer.from_file(str(path))
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        bpe = models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt"))
        tokenizer = Tokenizer(bpe)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        if "<|endoftext|>" in tokenizer.get_vocab():
            tokenizer.add_special_tokens(["<|endoftext|>"])  # GPT-2's one special token
    else:
        raise FileNotFoundError(f"{path} holds neither tokenizer.json nor vocab.json + merges.txt")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
