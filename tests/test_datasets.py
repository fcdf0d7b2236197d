"""The data set loaders, on the real shared files and on small temporary files."""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections import Counter
from pathlib import Path

import pytest

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

NLI_LABELS = {"entailment", "neutral", "contradiction"}


@pytest.fixture(scope="module")
def stsb():
    return {split: load_stsb(split) for split in ("train", "dev")}


@pytest.fixture(scope="module")
def snli_dev():
    return load_nli("dev")


@pytest.fixture(scope="module")
def imdb():
    return {split: load_imdb(split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def agnews():
    return load_agnews("test")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    """`data` as the file's bytes, gzip-compressed if the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_records_are_frozen():
    pair = SentencePair("a", "b", 1.0)
    with pytest.raises(AttributeError):
        pair.score = 2.0
    assert Records([pair]).skipped == {"malformed": 0}


# --- STS-B ---------------------------------------------------------------------------------


def test_stsb_counts_and_scores(stsb):
    assert len(stsb["train"]) == 5_749 and len(stsb["dev"]) == 1_500
    for records in stsb.values():
        assert records.skipped == {"malformed": 0}
        assert all(isinstance(r, SentencePair) for r in records)
        assert all(0.0 <= r.score <= 5.0 for r in records)
        assert all(r.sentence1 and r.sentence2 for r in records)
    first = stsb["train"][0]
    assert (first.sentence1, first.sentence2, first.score) == (
        "A plane is taking off.",
        "An air plane is taking off.",
        5.0,
    )
    genres = Counter(r.genre for r in stsb["train"])  # the first field, for per-genre scores
    assert genres == {"main-captions": 2_000, "main-forum": 450, "main-news": 3_299}


def test_stsb_keeps_quotes_and_ignores_trailing_fields(tmp_path):
    path = write(
        tmp_path / "sts.csv",
        'g\ts\t2012\t1\t2.5\tHe said "hi.\tShe said "bye".\textra\tfields\n',
    )
    assert load_stsb(path) == [SentencePair('He said "hi.', 'She said "bye".', 2.5, "g")]
    assert load_stsb(str(path)) == load_stsb(path)


STSB_BAD = (
    "g\ts\t2012\t1\t4.0\tgood one\tgood two\n"
    "g\ts\t2012\t2\tnot-a-number\tbad\tbad\n"
    "g\ts\t2012\t3\t3.0\tgood three\tgood four\n"
    "g\ts\t2012\t4\t7.5\tout of\trange\n"
    "g\ts\t2012\t5\t1.0\ttoo few fields\n"
)


def test_stsb_malformed_rows_warn_once(tmp_path):
    path = write(tmp_path / "sts.csv", STSB_BAD)
    with pytest.warns(UserWarning) as caught:
        records = load_stsb(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 3 malformed" in message and "line 2" in message and str(path) in message
    assert [r.score for r in records] == [4.0, 3.0]
    assert records.skipped == {"malformed": 3}


def test_stsb_strict_raises_with_line_number(tmp_path):
    path = write(tmp_path / "sts.csv", STSB_BAD)
    with pytest.raises(ValueError, match=r"sts\.csv, line 2: malformed"):
        load_stsb(path, strict=True)


def test_clean_file_gives_no_warning(tmp_path):
    path = write(tmp_path / "sts.csv", STSB_BAD.splitlines(keepends=True)[0] + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_stsb(path, strict=True)) == 1


# --- NLI -----------------------------------------------------------------------------------


def test_snli_dev_counts_and_labels(snli_dev):
    assert len(snli_dev) + snli_dev.skipped["no_label"] == 9_842
    assert snli_dev.skipped["malformed"] == 0
    assert {r.label for r in snli_dev} == NLI_LABELS
    assert all(isinstance(r, NLIPair) and r.premise and r.hypothesis for r in snli_dev)


def test_nli_label_filter(snli_dev):
    kept = load_nli("dev", labels=("entailment",))
    assert {r.label for r in kept} == {"entailment"}
    assert kept == [r for r in snli_dev if r.label == "entailment"]
    assert len(kept) + kept.skipped["filtered"] == len(snli_dev)
    with pytest.raises(TypeError, match="not a string"):
        load_nli("dev", labels="entailment")


def nli_line(label, premise="p .", hypothesis="h ."):
    return json.dumps({"gold_label": label, "sentence1": premise, "sentence2": hypothesis})


def test_nli_skips_and_counts_unlabelled_rows(tmp_path):
    lines = [nli_line("neutral"), nli_line("-"), nli_line("entailment"), nli_line("-")]
    records = load_nli(write(tmp_path / "mnli.jsonl", "\n".join(lines) + "\n"))
    assert [r.label for r in records] == ["neutral", "entailment"]
    assert records.skipped == {"malformed": 0, "no_label": 2, "filtered": 0}
    assert records[0] == NLIPair("p .", "h .", "neutral")


def test_nli_malformed_rows(tmp_path):
    lines = [
        nli_line("neutral"),
        '{"gold_label": "neutral", "sentence1": "no hypothesis"}',
        "{not json",
        nli_line("contradiction"),
    ]
    path = write(tmp_path / "nli.jsonl", "\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 2 malformed row\(s\); the first at line 2"):
        records = load_nli(path)
    assert [r.label for r in records] == ["neutral", "contradiction"]
    with pytest.raises(ValueError, match=r"line 2: malformed row \(missing key 'sentence2'\)"):
        load_nli(path, strict=True)


def test_nli_train_is_not_offline(tmp_path):
    (tmp_path / "nli").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        load_nli("train", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "nli" / "snli_1.0_train.jsonl") in message
    assert "only the dev and test" in message and "MultiNLI" in message


# --- IMDB ----------------------------------------------------------------------------------


def test_imdb_counts_and_balance(imdb):
    for records in imdb.values():
        assert len(records) == 25_000
        assert Counter(r.label for r in records) == {0: 12_500, 1: 12_500}
        assert all(isinstance(r, LabeledText) for r in records[:100])
        assert not any("<br />" in r.text for r in records)
    assert any("\n" in r.text for r in imdb["train"])


def make_aclimdb(root: Path) -> Path:
    reviews = {
        "train/pos/10_9.txt": "Great.<br /><br />Loved it.",
        "train/pos/2_8.txt": "Good film.",
        "train/neg/1_2.txt": "Bad.",
        "train/unsup/0_0.txt": "no label",
        "test/neg/0_1.txt": "Awful.",
    }
    for name, text in reviews.items():
        write(root / "aclImdb" / name, text)
    return root / "aclImdb"


def test_imdb_reads_original_aclimdb_folders(tmp_path):
    folder = make_aclimdb(tmp_path)
    expected = [
        LabeledText("Bad.", 0),
        LabeledText("Good film.", 1),
        LabeledText("Great.\n\nLoved it.", 1),
    ]
    assert load_imdb("train", path=folder) == expected
    assert load_imdb("test", path=folder) == [LabeledText("Awful.", 0)]
    # the same layout under data_dir/imdb/aclImdb
    data_dir = tmp_path / "data"
    make_aclimdb(data_dir / "imdb")
    assert load_imdb("train", data_dir=data_dir) == expected


def test_imdb_jsonl_gz_and_errors(tmp_path):
    path = tmp_path / "data" / "imdb" / "train.jsonl.gz"
    path.parent.mkdir(parents=True)
    rows = [{"id": "0_3", "text": "a<br />b", "label": 0}, {"id": "1_9", "text": "c", "label": 7}]
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.warns(UserWarning, match="line 2"):
        assert load_imdb("train", data_dir=path.parents[1]) == [LabeledText("a\nb", 0)]
    with pytest.raises(FileNotFoundError, match="test.jsonl.gz"):
        load_imdb("test", data_dir=path.parents[1])
    with pytest.raises(ValueError, match="unknown IMDB split"):
        load_imdb("unsup")


# --- AG News -------------------------------------------------------------------------------


def test_agnews_counts_and_labels(agnews):
    assert len(agnews) == 7_600
    assert Counter(r.label for r in agnews) == {0: 1_900, 1: 1_900, 2: 1_900, 3: 1_900}
    assert agnews[0].text.startswith("Fears for T N pension after talks\nUnions representing")
    assert not any("\\" in r.text for r in agnews)
    second = agnews[1].text  # its description holds `\` newlines
    assert "A second\nteam of rocketeers" in second


def test_agnews_test_split(agnews):
    train = load_agnews("test-split:train")
    heldout = load_agnews("test-split:heldout")
    assert len(train) == 6_080 and len(heldout) == 1_520
    assert Counter(r.label for r in heldout) == {label: 380 for label in range(4)}
    assert Counter(r.label for r in train) == {label: 1_520 for label in range(4)}
    # a partition of the test file: together, each row exactly as often as in the file
    assert Counter(train) + Counter(heldout) == Counter(agnews)
    # deterministic per seed, different across seeds
    assert load_agnews("test-split:heldout", seed=0) == heldout
    other = load_agnews("test-split:heldout", seed=1)
    assert other != heldout and len(other) == len(heldout)
    smaller = load_agnews("test-split:heldout", heldout_fraction=0.1)
    assert Counter(r.label for r in smaller) == {label: 190 for label in range(4)}
    with pytest.raises(ValueError, match="heldout_fraction"):
        load_agnews("test-split:train", heldout_fraction=1.5)


def test_agnews_csv_without_header_and_malformed_rows(tmp_path):
    rows = (
        '3,"Title, with comma","First line\\second line"\n'
        "9,Bad,label out of range\n"
        "1,Only two fields\n"
        "2,Sports,Won\n"
    )
    path = write(tmp_path / "agnews.csv", rows)
    with pytest.warns(UserWarning, match=r"skipped 2 malformed row\(s\); the first at line 2"):
        records = load_agnews(path)
    assert records == [
        LabeledText("Title, with comma\nFirst line\nsecond line", 2),
        LabeledText("Sports\nWon", 1),
    ]
    with pytest.raises(ValueError, match=r"agnews\.csv, line 2: malformed"):
        load_agnews(path, strict=True)
    with_header = write(tmp_path / "with_header.csv", "label,title,description\n2,Sports,Won\n")
    assert load_agnews(with_header, strict=True) == [LabeledText("Sports\nWon", 1)]


def test_agnews_train_is_not_offline(tmp_path):
    (tmp_path / "agnews").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        load_agnews("train", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "agnews" / "train.csv") in message
    assert "not available offline" in message and "test-split:train" in message
    write(tmp_path / "agnews" / "train.csv", "4,Tech,Chips\n")
    assert load_agnews("train", data_dir=tmp_path) == [LabeledText("Tech\nChips", 3)]


# --- corpora -------------------------------------------------------------------------------


def check_split(documents, name_or_path, **kwargs):
    train = load_corpus(name_or_path, "train", **kwargs)
    valid = load_corpus(name_or_path, "validation", **kwargs)
    assert valid and train
    assert not set(train) & set(valid)
    assert sorted(train + valid) == sorted(documents)
    return train, valid


def test_shakespeare_works():
    works = load_corpus("shakespeare")
    assert len(works) == 42
    assert works[0].startswith("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare")
    assert works[-1].startswith("THE WINTER'S TALE")
    assert any(w.startswith("THE SONNETS") for w in works)
    train, valid = check_split(works, "shakespeare")
    assert len(valid) == 2  # round(0.05 * 42)
    assert load_corpus("shakespeare", "validation", seed=0) == valid
    assert load_corpus("shakespeare", "validation", seed=1) != valid


def test_brown_blocks():
    documents = load_corpus("brown")
    assert len(documents) == 574  # 57,340 lines in blocks of 100
    assert all(d.count("\n") == 99 for d in documents[:-1])
    check_split(documents, "brown", valid_fraction=0.1)


def test_imdb_corpus(imdb):
    documents = load_corpus("imdb")
    assert documents == [r.text for r in imdb["train"]]


def test_corpus_from_file_and_folder(tmp_path):
    text = "First paragraph\nstill first.\n\n  \nSecond.\n\n\nThird.\n"
    path = write(tmp_path / "book.txt", text)
    documents = load_corpus(path)
    assert documents == ["First paragraph\nstill first.", "Second.", "Third."]
    train, valid = check_split(documents, path, valid_fraction=0.01)
    assert len(valid) == 1 and len(train) == 2  # at least one validation document
    folder = tmp_path / "docs"
    for name, body in {"b.txt": "bee", "a.txt": "ay", "c.md": "not read", "d.txt": ""}.items():
        write(folder / name, body)
    assert load_corpus(folder) == ["ay", "bee"]
    with pytest.raises(ValueError, match="unknown split"):
        load_corpus(path, "valid")
    with pytest.raises(ValueError, match="cannot split 1"):
        load_corpus(write(tmp_path / "one.txt", "alone"), "train")


# --- misspellings and the data directory ---------------------------------------------------


def test_misspellings():
    table = load_misspellings()
    assert len(table) == 4_273
    assert table["abandonned"] == "abandoned"
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in table.items())


def test_data_dir_and_petra_data(tmp_path, monkeypatch):
    write(tmp_path / "stsb" / "sts-train.csv", "g\ts\t2012\t1\t1.5\tone\ttwo\n")
    expected = [SentencePair("one", "two", 1.5, "g")]
    assert load_stsb("train", data_dir=tmp_path) == expected
    monkeypatch.setenv("PETRA_DATA", str(tmp_path))
    assert load_stsb("train") == expected
    with pytest.raises(FileNotFoundError) as error:
        load_stsb("dev")
    message = str(error.value)
    assert str(tmp_path / "stsb" / "sts-dev.csv") in message and "docs/guide/data.md" in message
    assert "set PETRA_DATA" in message and "--data-dir" in message
    with pytest.raises(FileNotFoundError, match="misspellings"):
        load_misspellings()
    with pytest.raises(FileNotFoundError, match="brown.txt"):
        load_corpus("brown")
    with pytest.raises(FileNotFoundError, match="neither a split name"):
        load_stsb(tmp_path / "missing.csv")


def test_the_data_folder_is_the_argument_then_the_runs_then_petra_data(tmp_path, monkeypatch):
    from petra.data import paths

    given, run, env = (tmp_path / name for name in ("given", "run", "env"))
    for folder in (given, run, env):
        folder.mkdir()
    monkeypatch.setenv("PETRA_DATA", str(env))
    assert paths.resolve_data_dir() == env
    with paths.use_data_dir(run):
        assert paths.resolve_data_dir() == run
        assert paths.resolve_data_dir(given) == given
        with paths.use_data_dir(None):  # no --data-dir: the run's folder stays
            assert paths.resolve_data_dir() == run
    assert paths.resolve_data_dir() == env  # restored after the block
    with pytest.raises(RuntimeError), paths.use_data_dir(run):
        raise RuntimeError  # restored when the block fails too
    assert paths.resolve_data_dir() == env
    missing = pytest.raises(FileNotFoundError, match="the data folder .*missing does not exist")
    with missing, paths.use_data_dir(tmp_path / "missing"):
        pass
    assert paths.resolve_data_dir() == env


@pytest.mark.parametrize("source", ["data_dir", "$PETRA_DATA"])
def test_a_data_folder_that_is_not_there_is_named_with_where_it_came_from(
    source, tmp_path, monkeypatch
):
    from petra.data import paths

    missing = tmp_path / "missing"
    monkeypatch.setenv("PETRA_DATA", str(missing))
    with pytest.raises(FileNotFoundError) as error:
        paths.resolve_data_dir(missing if source == "data_dir" else None)
    assert f"the data folder {missing} (from {source}) does not exist" in str(error.value)


def test_an_installed_petra_without_data_says_how_to_point_at_them(monkeypatch):
    """Outside a source checkout there is no default folder; the message names no path (none
    inside the virtualenv) and tells both ways to give one."""
    from petra.data import paths

    monkeypatch.delenv("PETRA_DATA", raising=False)
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", False)
    with pytest.raises(FileNotFoundError) as error:
        load_stsb("train")
    message = str(error.value)
    assert message == (
        "petra has no data folder: set PETRA_DATA to a data folder, or pass --data-dir "
        "(data_dir= from Python), laid out as docs/guide/data.md describes"
    )


# --- encodings and empty files, across the loaders -----------------------------------------

BOM = "\ufeff"  # a UTF-8 byte-order mark, as some editors and Excel write it


def bom_nli(tmp_path):
    path = write(tmp_path / "nli.jsonl", BOM + nli_line("neutral") + "\n")
    return load_nli(path, strict=True), [NLIPair("p .", "h .", "neutral")]


def bom_agnews(tmp_path):
    path = write(tmp_path / "agnews.csv", BOM + "label,title,description\n2,Sports,Won\n")
    return load_agnews(path, strict=True), [LabeledText("Sports\nWon", 1)]


def bom_imdb_jsonl_gz(tmp_path):
    row = json.dumps({"id": "0_9", "text": "Good.", "label": 1})
    path = write_bytes(tmp_path / "train.jsonl.gz", (BOM + row + "\n").encode())
    return load_imdb("train", path=path, strict=True), [LabeledText("Good.", 1)]


def bom_aclimdb(tmp_path):
    write(tmp_path / "aclImdb" / "train" / "pos" / "0_9.txt", BOM + "Good.")
    return load_imdb("train", path=tmp_path / "aclImdb"), [LabeledText("Good.", 1)]


def bom_corpus(tmp_path):
    path = write(tmp_path / "book.txt", BOM + "First.\n\nSecond.\n")
    return load_corpus(path), ["First.", "Second."]


def bom_misspellings(tmp_path):
    write(tmp_path / "misspellings" / "wikipedia-common-misspellings.json", BOM + '{"teh": "the"}')
    return load_misspellings(data_dir=tmp_path, strict=True), {"teh": "the"}


@pytest.mark.parametrize(
    "case", [bom_nli, bom_agnews, bom_imdb_jsonl_gz, bom_aclimdb, bom_corpus, bom_misspellings]
)
def test_byte_order_mark_is_dropped(tmp_path, case):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded, expected = case(tmp_path)
    assert loaded == expected


def imdb_row(text: bytes, label: int) -> bytes:
    return b'{"id": "0_1", "text": "' + text + b'", "label": ' + str(label).encode() + b"}\n"


# each: a file whose first row starts with a BOM, whose row at line 2 holds a Latin-1 "e acute"
# (the byte 0xe9, not UTF-8), and the loader with what it must keep
UNDECODABLE = {
    "stsb": (
        "sts.csv",
        b"g\ts\t2012\t1\t4.0\tone\ttwo\ng\ts\t2012\t2\t1.0\tcaf\xe9\tbar\n"
        b"g\ts\t2012\t3\t2.0\tthree\tfour\n",
        load_stsb,
        [SentencePair("one", "two", 4.0, "g"), SentencePair("three", "four", 2.0, "g")],
    ),
    "nli": (
        "nli.jsonl",
        nli_line("neutral").encode() + b'\n{"gold_label": "neutral", "sentence1": "caf\xe9", '
        b'"sentence2": "h ."}\n' + nli_line("contradiction").encode() + b"\n",
        load_nli,
        [NLIPair("p .", "h .", "neutral"), NLIPair("p .", "h .", "contradiction")],
    ),
    "imdb": (
        "train.jsonl.gz",
        imdb_row(b"Good.", 1) + imdb_row(b"Caf\xe9.", 0) + imdb_row(b"Bad.", 0),
        lambda path, **kwargs: load_imdb("train", path=path, **kwargs),
        [LabeledText("Good.", 1), LabeledText("Bad.", 0)],
    ),
    "agnews": (  # the bad record spans lines 2-3 (a quoted newline); the next is at line 4
        "agnews.csv",
        b'label,title,description\n2,"Caf\xe9","two\nlines"\n3,Business,Up\n',
        load_agnews,
        [LabeledText("Business\nUp", 2)],
    ),
}


@pytest.mark.parametrize("name", UNDECODABLE)
def test_undecodable_line_is_one_malformed_row(tmp_path, name):
    file_name, data, load, expected = UNDECODABLE[name]
    path = write_bytes(tmp_path / file_name, b"\xef\xbb\xbf" + data)
    with pytest.warns(UserWarning) as caught:
        records = load(path)
    assert records == expected and records.skipped["malformed"] == 1
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "skipped 1 malformed row(s); the first at line 2" in message
    assert "byte 0xe9 is not UTF-8" in message
    pattern = rf"{re.escape(str(path))}, line 2: malformed row \(byte 0xe9 is not UTF-8\)"
    with pytest.raises(ValueError, match=pattern):
        load(path, strict=True)


def test_undecodable_review_file_is_one_malformed_row(tmp_path):
    folder = make_aclimdb(tmp_path)
    bad = write_bytes(folder / "train" / "pos" / "5_7.txt", b"Caf\xe9 scene.")
    with pytest.warns(UserWarning, match=r"skipped 1 malformed row\(s\); the first at file 3"):
        records = load_imdb("train", path=folder)
    assert [r.text for r in records] == ["Bad.", "Good film.", "Great.\n\nLoved it."]
    with pytest.raises(ValueError, match=re.escape(f"{bad}, line 1: byte 0xe9 is not UTF-8")):
        load_imdb("train", path=folder, strict=True)


def test_undecodable_corpus_names_file_and_line(tmp_path):
    path = write_bytes(tmp_path / "book.txt", b"First.\n\nCaf\xe9.\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 3: byte 0xe9 is not UTF-8")):
        load_corpus(path)


# each: a file name, its text (empty or blank), and how to load it
EMPTY_FILES = {
    "stsb": ("sts.csv", "", load_stsb),
    "nli blank lines": ("nli.jsonl", "\n  \n", load_nli),
    "imdb": ("train.jsonl.gz", "", lambda path, **kwargs: load_imdb("train", path=path, **kwargs)),
    "agnews header only": ("agnews.csv", "label,title,description\n", load_agnews),
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("name", EMPTY_FILES)
def test_empty_file_is_refused(tmp_path, name, strict):
    file_name, text, load = EMPTY_FILES[name]
    path = write_bytes(tmp_path / file_name, text.encode())
    with pytest.raises(
        ValueError, match=rf"no valid rows in {re.escape(str(path))} \(it is empty\)"
    ):
        load(path, strict=strict)


# each: a file name, rows that are all malformed, how to load it, the first row's fault
ALL_MALFORMED = {
    "stsb": (
        "sts.csv",
        "g\ts\t2012\t1\tnan\ta\tb\ng\ts\t2012\t2\t1.0\ttoo few\n",
        load_stsb,
        "score 'nan' is outside [0, 5]",
    ),
    "nli": ("nli.jsonl", "[1, 2]\n{not json\n", load_nli, "expected a JSON object, got list"),
    "agnews": (
        "agnews.csv",
        "9,Bad,label\n1,Two fields\n",
        load_agnews,
        "label '9' is not in 1..4",
    ),
}


@pytest.mark.parametrize("name", ALL_MALFORMED)
def test_file_of_malformed_rows_is_refused(tmp_path, name):
    file_name, text, load, fault = ALL_MALFORMED[name]
    path = write(tmp_path / file_name, text)
    expected = f"no valid rows in {path} (2 malformed; the first at line 1: {fault})"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused outright, not first warned about
        with pytest.raises(ValueError, match=re.escape(expected)):
            load(path)


def test_empty_review_folders_and_misspellings_are_refused(tmp_path):
    for name in ("pos", "neg"):
        (tmp_path / "aclImdb" / "train" / name).mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(f"no valid rows in {tmp_path / 'aclImdb'}")):
        load_imdb("train", path=tmp_path / "aclImdb")
    write(tmp_path / "misspellings" / "wikipedia-common-misspellings.json", "{}")
    with pytest.raises(ValueError, match="no valid rows in .*misspellings.json \\(it is empty\\)"):
        load_misspellings(data_dir=tmp_path)


def test_blank_corpus_is_refused(tmp_path):
    path = write(tmp_path / "book.txt", "\n \n\n")
    with pytest.raises(ValueError, match=re.escape(f"no documents in {path}")):
        load_corpus(path)
    folder = tmp_path / "docs"
    write(folder / "a.txt", "")
    write(folder / "b.txt", "  \n")
    with pytest.raises(ValueError, match=re.escape(f"no documents in {folder}")):
        load_corpus(folder, "train")


def test_agnews_splits_are_the_official_ones_only_where_train_csv_is(tmp_path):
    assert agnews_splits() == ("test-split:train", "test-split:heldout")  # shared data: no train
    (tmp_path / "agnews").mkdir()
    (tmp_path / "agnews" / "train.csv").write_text('label,title,description\n1,"a","b"\n')
    assert agnews_splits(tmp_path) == ("train", "test")


# --- damaged files: a clear ValueError naming the file and the line ---------------------------


def imdb_lines(count: int) -> bytes:
    return b"".join(imdb_row(b"A fine film, " * 20, i % 2) for i in range(count))


def truncated_gzip(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[: len(packed) // 2]


def corrupted_gzip(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[-6] ^= 0xFF  # inside the CRC trailer
    return bytes(packed)


DAMAGED_GZIP = {
    "truncated": (truncated_gzip, r"line \d+: the gzip data ends early"),
    "not-gzip": (lambda data: data, r"line 1: it is not gzip data"),
    "corrupted": (corrupted_gzip, r"line \d+: the gzip data is damaged"),
}


@pytest.mark.parametrize("damage", DAMAGED_GZIP)
@pytest.mark.parametrize("strict", [False, True])
def test_damaged_gzip_file_is_refused_naming_file_and_line(tmp_path, damage, strict):
    make, message = DAMAGED_GZIP[damage]
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(make(imdb_lines(300)))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ", " + message) as caught:
        load_imdb("train", path=path, strict=strict)
    assert "re-download or re-compress" in str(caught.value)


def test_damaged_gzip_is_refused_by_every_line_reader(tmp_path):
    for name, load in [("sts.csv.gz", load_stsb), ("nli.jsonl.gz", load_nli)]:
        path = tmp_path / name
        path.write_bytes(b"plain text, not gzip\n")
        with pytest.raises(ValueError, match=re.escape(f"{path}, line 1: it is not gzip data")):
            load(path)


def test_agnews_gzip_damage_is_refused(tmp_path):
    path = tmp_path / "agnews.csv.gz"
    path.write_bytes(truncated_gzip(b"".join(b"3,Title %d,Some description\n" % i
                                             for i in range(3000))))  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(str(path)) + r", line \d+: the gzip data"):
        load_agnews(path)


@pytest.mark.parametrize("strict", [False, True])
def test_agnews_field_beyond_the_csv_limit_names_file_and_line(tmp_path, strict):
    path = write(tmp_path / "agnews.csv", '1,T,D\n2,"huge","' + "x" * 140_000 + '"\n3,B,Up\n')
    expected = (
        f"{path}, line 2: a field is longer than the csv limit of 131072 characters; AG News "
        "fields are short: check that this is an AG News CSV and that its quotes are balanced"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_agnews(path, strict=strict)


def test_agnews_unbalanced_quote_runs_into_the_limit_naming_its_line(tmp_path):
    body = "".join(f"3,Title {i},Some description of story {i}\n" for i in range(4000))
    path = write(tmp_path / "agnews.csv", '1,T,D\n2,"open quote,never closed\n' + body)
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: a field is longer")):
        load_agnews(path)
