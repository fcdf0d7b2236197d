"""Tokenizers from the shared files, with padding and truncation switched off.

`load_tokenizer("gpt2")` reads GPT-2's `vocab.json` + `merges.txt` (byte-level BPE);
`load_tokenizer("bert-base-uncased")` reads BERT's `tokenizer.json` (WordPiece), both from the
data folder's `tokenizers/`. A path to a `tokenizer.json` file, or to a folder holding one or the
GPT-2 pair, works as well, and so does a `tokenizers.Tokenizer` or a Hugging Face `transformers`
fast tokenizer already in memory.

Also: `special_token_ids` (by role), `padding_id`, `tokenizer_fingerprint` (the sha256 of
the vocabulary that checkpoints store), `train_bpe` and `token_counts`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from petra.data.paths import resolve_data_dir
from petra.embeddings.token_bytes import backend_tokenizer, tokenizer_fingerprint

NAMED = ("bert-base-uncased", "gpt2")
T = TypeVar("T")

__all__ = [
    "load_tokenizer",
    "padding_id",
    "special_token_ids",
    "token_counts",
    "tokenizer_fingerprint",
    "train_bpe",
]


def load_tokenizer(source, data_dir: str | os.PathLike | None = None) -> Tokenizer:
    """A `tokenizers.Tokenizer` with padding and truncation switched off.

    Args:
        source: one of the names `NAMED` (read from `tokenizers/NAME` in the data folder);
            a path to a `tokenizer.json`, or to a folder holding one or GPT-2's `vocab.json`
            + `merges.txt`; or a tokenizer object: a `tokenizers.Tokenizer` or a
            `transformers` fast tokenizer (`AutoTokenizer.from_pretrained(...)`), whose
            `tokenizers.Tokenizer` is copied, so the object given keeps its own settings.
        data_dir: the data folder for a name (default: `resolve_data_dir()`).

    Returns:
        The tokenizer, encoding without padding or truncation (petra pads per batch).

    Raises:
        FileNotFoundError: an unknown name, or a path that holds no tokenizer files.
        ValueError: a file the tokenizers library cannot read as a tokenizer.
        TypeError: an object that is neither a path nor a fast tokenizer (a `transformers`
            slow tokenizer has no `tokenizers.Tokenizer` inside).
    """
    if isinstance(source, str | os.PathLike):
        tokenizer = _read_files(source, data_dir)
    else:
        try:
            backend = backend_tokenizer(source)
        except TypeError:
            raise TypeError(
                f"load_tokenizer takes a name {NAMED}, a path, a tokenizers.Tokenizer or a "
                f"transformers fast tokenizer, got {type(source).__name__}"
            ) from None
        tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _read_files(name_or_path: str | os.PathLike, data_dir) -> Tokenizer:
    """The tokenizer a name in `NAMED` or a path stands for (see `load_tokenizer`)."""
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
        tokenizer = _read(lambda: Tokenizer.from_file(str(path)), str(path))
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        pair = (str(path / "vocab.json"), str(path / "merges.txt"))
        bpe = _read(lambda: models.BPE.from_file(*pair), f"{pair[0]} + merges.txt")
        tokenizer = Tokenizer(bpe)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        if "<|endoftext|>" in tokenizer.get_vocab():
            tokenizer.add_special_tokens(["<|endoftext|>"])  # GPT-2's one special token
    else:
        raise FileNotFoundError(f"{path} holds neither tokenizer.json nor vocab.json + merges.txt")
    return tokenizer


def _read(read: Callable[[], T], what: str) -> T:
    """`read()`, a file of the tokenizers library; the bare `Exception` that library raises
    for a file it cannot parse becomes a `ValueError` naming `what` (its own errors of other
    types pass unchanged)."""
    try:
        return read()
    except Exception as error:
        if type(error) is not Exception:
            raise
        raise ValueError(
            f"{what} is not a tokenizer ({error}): give a tokenizer.json, or a folder with "
            f"tokenizer.json or vocab.json + merges.txt, or one of the names {NAMED}"
        ) from error


# special tokens by role, under the names the common tokenizers give them
_ROLE_NAMES = {
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "mask": ("[MASK]", "<mask>"),
    "bos": ("<s>", "<|endoftext|>"),
    "eos": ("</s>", "<|endoftext|>"),
}


def special_token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """Ids of the special tokens the tokenizer has, by role: pad, unk, cls, sep, mask, bos,
    eos (GPT-2's `<|endoftext|>` is both bos and eos; it has no pad)."""
    found = {}
    for role, names in _ROLE_NAMES.items():
        for name in names:
            token_id = tokenizer.token_to_id(name)
            if token_id is not None:
                found[role] = token_id
                break
    return found


def padding_id(tokenizer: Tokenizer) -> int:
    """The id to pad with: the pad token, else eos (padding is masked out either way)."""
    ids = special_token_ids(tokenizer)
    for role in ("pad", "eos"):
        if role in ids:
            return ids[role]
    raise ValueError("the tokenizer has neither a pad nor an eos token: pass pad_id explicitly")


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    min_frequency: int = 2,
) -> Tokenizer:
    """A byte-level BPE trained on `texts`, with GPT-2's pre-tokenizer and decoder.

    Ids come out as: the special tokens, the 256 byte symbols, then every merge in the order
    it was learned, i.e. by decreasing pair frequency at the time: the roughly frequency-
    ordered ids that the PETE paper's Fourier embedding assumes.
    """
    if vocab_size < 256 + len(special_tokens) + 1:
        raise ValueError(
            f"vocab_size {vocab_size} leaves no room for merges: it must exceed "
            f"256 byte symbols + {len(special_tokens)} special tokens"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def token_counts(tokenizer: Tokenizer, texts: Iterable[str], batch_size: int = 1024) -> np.ndarray:
    """How often each id occurs when `texts` are encoded (no special tokens added): int64 (V,),
    the `token_counts` of the Fourier embedding's frequency id order."""
    counts = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    texts = iter(texts)
    while batch := list(itertools.islice(texts, batch_size)):
        for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
            counts += np.bincount(encoding.ids, minlength=counts.size)
    return counts
