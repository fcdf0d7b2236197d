"""Tokenizer piece -> the raw bytes it stands for in text.

The bytes come from the vocabulary piece itself, never from `decode([id])`: decoding merges
distinct tokens (every GPT-2 token holding part of a multi-byte character decodes to U+FFFD,
and WordPiece drops the `##` that tells a continuation from a word start). Schemes:

- `byte_level` (GPT-2, RoBERTa, byte-level BPE): each character of the piece is one byte
  under GPT-2's printable byte-to-unicode map; the map is inverted exactly.
- `wordpiece` (BERT): a continuation `##ing` stands for b"ing"; a word start `walk` for
  b" walk", with the space that separates words in text, so the two never collide.
- `sentencepiece` (T5, Llama): `▁` is a space, and a byte-fallback piece `<0xNN>` is byte NN.
- `utf8`: the piece's own UTF-8 bytes.

Special tokens (`[CLS]`, `<|endoftext|>`, `<s>`) get the literal UTF-8 bytes of their text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import lru_cache

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SENTENCEPIECE_SPACE = "\u2581"  # ▁


@lru_cache(maxsize=1)
def gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-unicode map (Radford et al., 2019, `encoder.py`).

    Printable bytes map to themselves; the other 68 bytes map, in order, to U+0100 onwards.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    shifted = [b for b in range(256) if b not in printable]
    mapping = {chr(b): b for b in printable}
    mapping.update({chr(256 + i): b for i, b in enumerate(shifted)})
    return mapping


def byte_level_bytes(piece: str) -> bytes:
    table = gpt2_unicode_to_byte()
    if all(ch in table for ch in piece):
        return bytes(table[ch] for ch in piece)
    return piece.encode("utf-8")  # an added token written in plain text


def wordpiece_bytes(piece: str, prefix: str = "##") -> bytes:
    if piece.startswith(prefix) and len(piece) > len(prefix):
        return piece[len(prefix) :].encode("utf-8")
    return b" " + piece.encode("utf-8")


def sentencepiece_bytes(piece: str) -> bytes:
    fallback = _BYTE_FALLBACK.match(piece)
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    return piece.replace(_SENTENCEPIECE_SPACE, " ").encode("utf-8")


def utf8_bytes(piece: str) -> bytes:
    return piece.encode("utf-8")


SCHEMES: dict[str, Callable[[str], bytes]] = {
    "byte_level": byte_level_bytes,
    "wordpiece": wordpiece_bytes,
    "sentencepiece": sentencepiece_bytes,
    "utf8": utf8_bytes,
}


def piece_bytes(piece: str, scheme: str) -> bytes:
    """The bytes one vocabulary piece stands for under `scheme`."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown token-bytes scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    return SCHEMES[scheme](piece)


def backend_tokenizer(tokenizer):
    """A `tokenizers.Tokenizer` from itself or a `transformers` fast tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not all(hasattr(backend, name) for name in ("to_str", "get_vocab", "get_vocab_size")):
        raise TypeError(
            "expected a tokenizers.Tokenizer (or a transformers fast tokenizer), "
            f"got {type(tokenizer).__name__}"
        )
    return backend


def detect_scheme(tokenizer) -> str:
    """Read the scheme off the tokenizer's model, normalizer, pre-tokenizer and decoder."""
    spec = json.loads(backend_tokenizer(tokenizer).to_str())
    parts = [spec.get(key) for key in ("normalizer", "pre_tokenizer", "decoder")]
    text = json.dumps(parts, ensure_ascii=False)
    model_type = (spec.get("model") or {}).get("type")
    if '"ByteLevel"' in text:
        return "byte_level"
    if model_type == "WordPiece" or '"WordPiece"' in text:
        return "wordpiece"
    if '"Metaspace"' in text or _SENTENCEPIECE_SPACE in text or '"ByteFallback"' in text:
        return "sentencepiece"
    return "utf8"


def token_bytes(tokenizer, scheme: str | None = None) -> list[bytes]:
    """Bytes of every id in `[0, V)`, V = the tokenizer's size with added tokens.

    `scheme=None` detects it (see `detect_scheme`). Ids that no piece names get b"".
    """
    backend = backend_tokenizer(tokenizer)
    scheme = scheme or detect_scheme(backend)
    convert = SCHEMES.get(scheme)
    if convert is None:
        raise ValueError(f"unknown token-bytes scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    if scheme == "wordpiece":
        prefix = (json.loads(backend.to_str()).get("model") or {}).get("continuing_subword_prefix")
        convert = lambda piece: wordpiece_bytes(piece, prefix or "##")  # noqa: E731
    special = {
        token.content for token in backend.get_added_tokens_decoder().values() if token.special
    }
    vocab = backend.get_vocab(with_added_tokens=True)
    size = max(backend.get_vocab_size(with_added_tokens=True), max(vocab.values(), default=-1) + 1)
    result = [b""] * size
    for piece, token_id in vocab.items():
        result[token_id] = piece.encode("utf-8") if piece in special else convert(piece)
    return result


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 (hex) of the vocabulary: every piece, in id order, with its special flag."""
    backend = backend_tokenizer(tokenizer)
    vocab = backend.get_vocab(with_added_tokens=True)
    special = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
    ordered = sorted(vocab.items(), key=lambda item: item[1])
    payload = json.dumps([[piece, token_id, piece in special] for piece, token_id in ordered])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def other_fingerprint(tokenizer, expected: str | None) -> str | None:
    """The tokenizer's fingerprint when it differs from `expected`; None when it is the same
    or there is nothing to compare (no tokenizer, or none recorded)."""
    if tokenizer is None or expected is None:
        return None
    given = tokenizer_fingerprint(tokenizer)
    return None if given == expected else given
