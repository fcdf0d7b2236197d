"""Byte collisions of the GPT-2 vocabulary: how many ids share their (truncated) bytes with
another id, and so get the same Kronecker embedding, under petra's piece-based extraction
and under the reference package's `decode()`-based one, at pos_dim 16 and 32.

The reference's `build_byte_buffer` expects a `transformers` tokenizer; `DecodeAdapter` gives
it the four methods it calls, backed by the same `tokenizers.Tokenizer` (GPT-2's byte-level
decoder), so that only the extraction rule differs.

    python benchmarks/collisions.py --out benchmarks/results/collisions.json
"""

from __future__ import annotations

import argparse
import json

import kronecker_embeddings
from report import write_report

from petra.data import load_tokenizer
from petra.embeddings.kronecker import byte_collisions, encode_bytes
from petra.embeddings.token_bytes import token_bytes


class DecodeAdapter:
    """The slice of the `transformers` tokenizer API that `build_byte_buffer` uses."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.all_special_ids = [
            i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special
        ]

    def get_vocab(self):
        return self.tokenizer.get_vocab(with_added_tokens=True)

    def convert_ids_to_tokens(self, token_id):
        return self.tokenizer.id_to_token(token_id)

    def decode(self, ids, skip_special_tokens=False, clean_up_tokenization_spaces=False):
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)


def summarize(groups: list[list[int]]) -> dict:
    return {
        "colliding_ids": sum(len(g) for g in groups),
        "groups": len(groups),
        "largest_group": max((len(g) for g in groups), default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/collisions.json")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    gpt2 = load_tokenizer("gpt2", args.data_dir)
    pieces = token_bytes(gpt2)
    adapter = DecodeAdapter(gpt2)
    decoded = [kronecker_embeddings.token_id_to_bytes(adapter, i) for i in range(len(pieces))]
    report = {"tokenizer": "gpt2", "vocab_size": len(pieces), "results": []}
    for pos_dim in (16, 32):
        table, lengths, truncated = encode_bytes(pieces, pos_dim)
        ref_table, ref_lengths = kronecker_embeddings.build_byte_buffer(adapter, pos_dim)
        ref_truncated = sum(len(raw) > pos_dim for raw in decoded)
        for extraction, groups, n_truncated in (
            ("petra (piece bytes)", byte_collisions(table, lengths), truncated),
            ("reference (decode)", byte_collisions(ref_table, ref_lengths), ref_truncated),
        ):
            row = {"pos_dim": pos_dim, "extraction": extraction, **summarize(groups)}
            row["truncated_ids"] = n_truncated
            report["results"].append(row)
            print(json.dumps(row))
    write_report(args.out, report)


if __name__ == "__main__":
    main()
