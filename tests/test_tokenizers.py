"""Tokenizers from the shared files, BPE training and token counts."""

import re

import numpy as np
import pytest
from scipy import stats

from petra.data import load_tokenizer
from petra.data.paths import resolve_data_dir
from petra.data.tokenizers import (
    padding_id,
    special_token_ids,
    token_counts,
    tokenizer_fingerprint,
    train_bpe,
)


def test_shared_tokenizers_load_without_padding_or_truncation(bert, gpt2):
    long_text = "word " * 300
    assert len(bert.encode(long_text).ids) == 302  # [CLS] + 300 + [SEP]: no truncation at 128
    assert len(bert.encode("hi").ids) == 3  # no padding to 128
    assert gpt2.encode("Hello world").ids == [15496, 995]  # GPT-2's own ids


def test_special_token_ids_by_role(bert, gpt2):
    assert special_token_ids(bert) == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    assert special_token_ids(gpt2) == {"bos": 50256, "eos": 50256}
    assert padding_id(bert) == 0 and padding_id(gpt2) == 50256


def test_fingerprints_tell_tokenizers_apart(bert, gpt2):
    assert tokenizer_fingerprint(bert) != tokenizer_fingerprint(gpt2)
    assert tokenizer_fingerprint(gpt2) == tokenizer_fingerprint(load_tokenizer("gpt2"))


def test_unknown_tokenizer_lists_the_names():
    with pytest.raises(FileNotFoundError, match="name one of .*bert-base-uncased"):
        load_tokenizer("roberta")


@pytest.fixture(scope="module")
def shakespeare_lines():
    text = (resolve_data_dir() / "corpus" / "shakespeare.txt").read_text()[:300_000]
    return [line for line in text.splitlines() if line.strip()]


def test_trained_bpe_ids_follow_merge_order_and_frequency(shakespeare_lines):
    tokenizer = train_bpe(shakespeare_lines, 600)
    assert tokenizer.get_vocab_size() == 600
    assert tokenizer.token_to_id("<|endoftext|>") == 0
    vocab = tokenizer.get_vocab()
    # ids 1..256 are the byte symbols; each later id is a merge, in the order learned
    merged = sorted((i, piece) for piece, i in vocab.items() if i > 256)
    assert all(len(piece) > 1 for _, piece in merged)
    counts = token_counts(tokenizer, shakespeare_lines)
    ids = np.arange(257, 600)
    rho = stats.spearmanr(ids, counts[257:600]).statistic
    assert rho < -0.3, rho  # later merges are rarer: ids are roughly frequency-ordered
    text = "To be, or not to be"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_token_counts_match_a_direct_count(gpt2):
    texts = ["the cat and the hat", "the end"] * 3
    counts = token_counts(gpt2, texts, batch_size=4)
    assert counts.shape == (50257,) and counts.dtype == np.int64
    expected = np.zeros(50257, dtype=np.int64)
    for text in texts:
        for token_id in gpt2.encode(text).ids:
            expected[token_id] += 1
    assert np.array_equal(counts, expected)
    assert counts[gpt2.token_to_id("the")] == 6  # "the" opens every text
    assert counts[gpt2.token_to_id("Ġthe")] == 3  # " the" is inside the first one


def test_bpe_needs_room_for_merges():
    with pytest.raises(ValueError, match="leaves no room for merges"):
        train_bpe(["a b c"], 200)


@pytest.mark.parametrize(
    "name, text",
    [("notes.txt", "hello"), ("tokenizer.json", '{"version": "1.0"}'), ("empty.json", "")],
)
def test_a_file_that_is_no_tokenizer_is_refused_naming_it(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a tokenizer \("):
        load_tokenizer(path)
    with pytest.raises(ValueError, match=r"give a tokenizer\.json, or a folder with"):
        load_tokenizer(tmp_path if name == "tokenizer.json" else path)


def test_a_bpe_pair_that_is_no_tokenizer_is_refused_naming_the_folder(tmp_path):
    (tmp_path / "vocab.json").write_text("not json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/vocab.json \+ merges.txt"):
        load_tokenizer(tmp_path)


# --- a tokenizer given as a file or as an object --------------------------------------------

SAMPLE = "Petra's embeddings: 3 kinds, naïve café, tokenizer.json!"


def test_a_tokenizer_json_path_reads_as_the_named_tokenizer(bert):
    path = resolve_data_dir() / "tokenizers" / "bert-base-uncased" / "tokenizer.json"
    from_path = load_tokenizer(path)
    assert from_path.to_str() == bert.to_str()
    assert from_path.encode(SAMPLE).ids == bert.encode(SAMPLE).ids


def test_a_tokenizer_object_is_copied_with_padding_and_truncation_off():
    from tokenizers import Tokenizer

    path = resolve_data_dir() / "tokenizers" / "bert-base-uncased" / "tokenizer.json"
    given = Tokenizer.from_file(str(path))  # this file pads to 128 and truncates
    assert given.padding is not None and given.truncation is not None
    loaded = load_tokenizer(given)
    assert loaded is not given and loaded.padding is None and loaded.truncation is None
    assert given.padding is not None and given.truncation is not None  # the caller's, untouched
    assert len(loaded.encode("word " * 300).ids) == 302
    ids = loaded.encode(SAMPLE).ids
    assert given.encode(SAMPLE).ids == ids + [0] * (128 - len(ids))  # the same ids, unpadded


def test_a_transformers_tokenizer_encodes_as_transformers_does():
    transformers = pytest.importorskip("transformers")
    from petra.tasks.distill import teacher_path

    try:
        folder = teacher_path()  # all-MiniLM-L6-v2's tokenizer, as a hub folder
    except ImportError:
        pytest.skip("needs petra[distill]")
    hf = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    loaded = load_tokenizer(hf)
    for text in (SAMPLE, "word " * 600):  # longer than the model's 512 positions
        assert loaded.encode(text).ids == hf(text, truncation=False)["input_ids"]
    assert loaded.get_vocab_size() == len(hf)
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(hf.backend_tokenizer)


@pytest.mark.parametrize("thing", [42, None, ["gpt2"]])
def test_something_else_is_refused_naming_what_is_taken(thing):
    with pytest.raises(TypeError, match=r"takes a name .* or a transformers fast tokenizer, got"):
        load_tokenizer(thing)
