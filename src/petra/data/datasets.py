"""Loaders for the real data sets, read in their original formats.

Each loader is a plain function that returns simple typed records, so that a user who
downloads a full set (SNLI or MultiNLI train, the AG News train split, the original aclImdb
folders, their own corpus) points petra at it and it works:

    load_stsb("train")       STS Benchmark, tab-separated, no csv quoting   -> SentencePair
    load_nli("dev")          SNLI / MultiNLI JSON lines                    -> NLIPair
    load_imdb("train")       IMDB JSON lines (gzip) or aclImdb folders     -> LabeledText
    load_agnews("test")      AG News Kaggle CSV                            -> LabeledText
    load_corpus("brown")     documents (str) for language modelling, split by document
    load_misspellings()      {misspelling: correction}

Split names are looked up under the data directory (`resolve_data_dir`: `data_dir=`,
`petra --data-dir`, `$PETRA_DATA`; layout in docs/guide/data.md); any other string or a path
names a file. Record loaders return `Records`, a list whose `skipped` attribute counts the
rows left out, by reason. Files are read as UTF-8, a leading byte-order mark dropped. Malformed
rows (including a line or CSV record holding bytes that are not UTF-8) are skipped, counted
and reported in one warning per file (count and first line number); with `strict=True` the
first raises `ValueError`. A file with no valid row (empty, or every row malformed) raises
`ValueError`, as does a corpus with no document, and, whatever `strict` says, a file that
cannot be read on (a truncated, corrupted or non-gzip .gz; a CSV field over the csv limit),
naming the file and the line.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from petra.data.paths import DATA_GUIDE, POINT_AT_DATA, resolve_data_dir

__all__ = [
    "LabeledText",
    "NLIPair",
    "Records",
    "SentencePair",
    "load_agnews",
    "load_corpus",
    "load_imdb",
    "load_misspellings",
    "load_nli",
    "load_stsb",
]

PathLike = str | os.PathLike
STSB_SPLITS = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
NLI_SPLITS = ("train", "dev", "test")
IMDB_SPLITS = ("train", "test")
AGNEWS_SPLITS = ("test", "train", "test-split:train", "test-split:heldout")
AGNEWS_HEADER = ["label", "title", "description"]
CORPORA = ("shakespeare", "brown", "imdb")
CORPUS_SPLITS = (None, "train", "validation")
BROWN_LINES_PER_DOCUMENT = 100  # this copy does not delimit the Brown corpus' 500 texts
SHAKESPEARE_BYLINE = "by william shakespeare"
MALFORMED_ERRORS = (ValueError, KeyError, TypeError)  # what a row parser raises on a bad row
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as surrogateescape keeps it
# what reading a file can raise for its contents, not its path: a damaged .gz, an unreadable CSV
READ_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, csv.Error)


@dataclass(frozen=True, slots=True)
class SentencePair:
    """Two sentences and their similarity score (STS-B: 0 unrelated .. 5 equivalent), and
    the pair's genre (STS-B: main-captions, main-forum, main-news; "" where none)."""

    sentence1: str
    sentence2: str
    score: float
    genre: str = ""


@dataclass(frozen=True, slots=True)
class NLIPair:
    """A premise, a hypothesis and the gold label ("entailment", "neutral", "contradiction")."""

    premise: str
    hypothesis: str
    label: str


@dataclass(frozen=True, slots=True)
class LabeledText:
    """A text and its integer class label."""

    text: str
    label: int


class Records(list):
    """A list of records; `skipped` maps a reason to the number of rows left out for it:
    "malformed" (always present), and for `load_nli` "no_label" (gold label "-") and
    "filtered" (a label not in `labels`)."""

    def __init__(self, items: Iterable = (), skipped: dict[str, int] | None = None):
        super().__init__(items)
        self.skipped: dict[str, int] = {"malformed": 0, **(skipped or {})}


class SkipRow(Exception):
    """Raised by a row parser for a well-formed row that is left out on purpose."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# shared helpers


def _parse_rows(
    source: Path,
    rows: Iterable[tuple[int, Any]],
    parse: Callable[[Any], Any],
    *,
    strict: bool,
    skipped: Iterable[str] = (),
    unit: str = "line",
) -> Records:
    """Apply `parse` to each `(line_number, row)`. A row that holds bytes that are not UTF-8
    (see `_open_text`) or for which `parse` raises one of `MALFORMED_ERRORS` is malformed: with
    `strict` raise, else skip it, count it and warn once for the whole file. `SkipRow(reason)`
    leaves a row out and counts it under `reason`. No valid row at all raises `ValueError`."""
    records = Records(skipped={reason: 0 for reason in skipped})
    first_bad: tuple[int, Exception] | None = None
    seen = 0
    for number, row in rows:
        seen += 1
        try:
            records.append(parse(_utf8(row)))
        except SkipRow as skip:
            records.skipped[skip.reason] = records.skipped.get(skip.reason, 0) + 1
        except MALFORMED_ERRORS as error:
            if strict:
                raise ValueError(
                    f"{source}, {unit} {number}: malformed row ({_describe(error)}); fix or "
                    "remove it, or pass strict=False to skip malformed rows with a warning"
                ) from error
            records.skipped["malformed"] += 1
            first_bad = first_bad or (number, error)
    if seen == records.skipped["malformed"]:
        found = "it is empty"
        if first_bad is not None:
            number, error = first_bad
            found = f"{seen} malformed; the first at {unit} {number}: {_describe(error)}"
        raise ValueError(
            f"no valid rows in {source} ({found}); check that this is the right file and that "
            f"it has the expected format (see {DATA_GUIDE})"
        )
    if first_bad is not None:
        number, error = first_bad
        warnings.warn(
            f"{source}: skipped {records.skipped['malformed']} malformed row(s); the first at "
            f"{unit} {number} ({_describe(error)}). Pass strict=True to raise instead.",
            UserWarning,
            stacklevel=3,
        )
    return records


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing key {error}"
    return str(error) or type(error).__name__


def _utf8(row: Any) -> Any:
    """`row` (a line, or the fields of a record) unchanged; `ValueError` if it holds a byte
    that is not UTF-8."""
    for field in [row] if isinstance(row, str) else row:
        bad = NOT_UTF8.search(field) if isinstance(field, str) else None
        if bad:
            raise ValueError(f"byte {ord(bad.group()) - 0xDC00:#04x} is not UTF-8")
    return row


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    """A UTF-8 text file (gzip if it ends in .gz) opened for reading, a byte-order mark
    dropped. A byte that is not UTF-8 is kept as a lone surrogate (surrogateescape), so that
    only its row is malformed (`_utf8`), not the whole read."""
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def _read_text(path: Path) -> str:
    """The whole text of a UTF-8 file, a byte-order mark dropped; `ValueError` naming the file
    and the line if it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: byte {error.object[error.start]:#04x} is not UTF-8; "
            "re-encode the file as UTF-8"
        ) from error


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a UTF-8 text file (`_open_text`); blank lines
    are left out. A damaged .gz raises `ValueError` naming the file and the line (`_unreadable`)."""
    number = 0
    with _open_text(path) as file:
        try:
            for number, line in enumerate(file, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
        except READ_ERRORS as error:
            raise _unreadable(path, number + 1, error) from error


def _unreadable(path: Path, line: int, error: Exception) -> ValueError:
    """The `ValueError` for a file that cannot be read past `line`, whatever `strict` says: a
    truncated, corrupted or non-gzip .gz, or a CSV record that the csv module refuses."""
    if isinstance(error, csv.Error):
        if "field larger than field limit" in str(error):
            return ValueError(
                f"{path}, line {line}: a field is longer than the csv limit of "
                f"{csv.field_size_limit()} characters; AG News fields are short: check that "
                "this is an AG News CSV and that its quotes are balanced"
            )
        return ValueError(f"{path}, line {line}: not valid CSV ({error}); see {DATA_GUIDE}")
    if isinstance(error, EOFError):
        what = "the gzip data ends early (the file is truncated)"
    elif str(error).startswith("Not a gzipped file"):
        what = "it is not gzip data"
    else:
        what = f"the gzip data is damaged ({error})"
    return ValueError(
        f"{path}, line {line}: {what}; re-download or re-compress it, or drop the .gz from the "
        "name of a plain text file"
    )


def _json_object(line: str) -> dict:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    return row


def _string(row: dict, key: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _require_file(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"no {what} at {path}{'; ' + hint if hint else ''}; see {DATA_GUIDE} for the expected "
            f"layout and format, or {POINT_AT_DATA}"
        )
    return path


def _split_or_path(
    split_or_path: PathLike, names: Iterable[str], data_dir: PathLike | None
) -> tuple[str | None, Path]:
    """(split name, data folder) for a known split name, else (None, the path)."""
    if isinstance(split_or_path, str) and split_or_path in names:
        return split_or_path, resolve_data_dir(data_dir)
    if not isinstance(split_or_path, str | os.PathLike):
        raise TypeError(
            f"expected a split name or a path, got {type(split_or_path).__name__}: choose one "
            f"of {tuple(names)} or pass the path of a file"
        )
    return None, Path(split_or_path)


def _unknown_path(path: Path, what: str, names: Iterable[str]) -> FileNotFoundError:
    return FileNotFoundError(
        f"no {what} at {path}: {str(path)!r} is neither a split name {tuple(names)} nor an "
        "existing file; check the name or the path"
    )


# ---------------------------------------------------------------------------------------------
# STS-B


def _parse_stsb(line: str) -> SentencePair:
    fields = line.split("\t")
    if len(fields) < 7:
        raise ValueError(f"expected 7 tab-separated fields, got {len(fields)}")
    score = float(fields[4])
    if not 0.0 <= score <= 5.0:  # also rejects nan
        raise ValueError(f"score {fields[4]!r} is outside [0, 5]")
    sentence1, sentence2 = fields[5], fields[6]
    if not sentence1.strip() or not sentence2.strip():
        raise ValueError("empty sentence")
    return SentencePair(sentence1, sentence2, score, fields[0])


def load_stsb(
    split_or_path: PathLike = "train", *, data_dir: PathLike | None = None, strict: bool = False
) -> Records:
    """STS Benchmark sentence pairs, in file order: "train" (5,749) and "dev" (1,500) read
    `stsb/sts-{train,dev}.csv` ("test" reads `sts-test.csv` where a user has it); anything
    else is the path of a file in the STS-B format (tab-separated, no csv quoting: genre,
    source, year, id, score, sentence1, sentence2; extra trailing fields are ignored). A row
    whose score is not a number in [0, 5] is malformed."""
    split, where = _split_or_path(split_or_path, STSB_SPLITS, data_dir)
    if split is not None:
        path = _require_file(where / "stsb" / STSB_SPLITS[split], f"STS-B {split} split")
    elif not where.is_file():
        raise _unknown_path(where, "STS-B file", STSB_SPLITS)
    else:
        path = where
    return _parse_rows(path, _lines(path), _parse_stsb, strict=strict)


# ---------------------------------------------------------------------------------------------
# NLI


def load_nli(
    split_or_path: PathLike = "dev",
    labels: Iterable[str] | None = None,
    *,
    data_dir: PathLike | None = None,
    strict: bool = False,
) -> Records:
    """SNLI or MultiNLI pairs from JSON lines with the keys `gold_label`, `sentence1`
    (premise) and `sentence2` (hypothesis). "dev"/"test"/"train" read
    `nli/snli_1.0_{split}.jsonl` (only dev and test are shipped offline); anything else is a
    path. Rows whose gold label is "-" (no annotator majority) are left out and counted in
    `.skipped["no_label"]`; with `labels` (e.g. `("entailment",)`) only those labels are kept,
    the others counted in `.skipped["filtered"]`. Invalid JSON or a missing key is malformed."""
    if isinstance(labels, str):
        raise TypeError(f"labels must be an iterable of labels, e.g. ({labels!r},), not a string")
    keep = None if labels is None else frozenset(labels)
    split, where = _split_or_path(split_or_path, NLI_SPLITS, data_dir)
    if split is not None:
        hint = ""
        if split == "train":
            hint = (
                "only the dev and test splits are available offline: pass the path of your "
                "snli_1.0_train.jsonl or of a MultiNLI file (multinli_1.0_train.jsonl) instead"
            )
        path = _require_file(where / "nli" / f"snli_1.0_{split}.jsonl", f"SNLI {split}", hint)
    elif not where.is_file():
        raise _unknown_path(where, "NLI file", NLI_SPLITS)
    else:
        path = where

    def parse(line: str) -> NLIPair:
        row = _json_object(line)
        pair = NLIPair(_string(row, "sentence1"), _string(row, "sentence2"), row["gold_label"])
        if not isinstance(pair.label, str):
            raise TypeError(f"'gold_label' must be a string, got {type(pair.label).__name__}")
        if pair.label == "-":
            raise SkipRow("no_label")
        if keep is not None and pair.label not in keep:
            raise SkipRow("filtered")
        return pair

    return _parse_rows(path, _lines(path), parse, strict=strict, skipped=("no_label", "filtered"))


# ---------------------------------------------------------------------------------------------
# IMDB


def _clean_review(text: str) -> str:
    return re.sub(r"<br\s*/?>", "\n", text)


def _parse_imdb(line: str) -> LabeledText:
    row = _json_object(line)
    label = row["label"]
    if isinstance(label, bool) or label not in (0, 1):
        raise ValueError(f"label {label!r} is not 0 or 1")
    return LabeledText(_clean_review(_string(row, "text")), int(label))


def _review_key(path: Path) -> tuple[int, str]:
    """aclImdb files are named `<n>_<rating>.txt`: order by n, then by name."""
    stem = path.stem.split("_")[0]
    return (int(stem) if stem.isdigit() else -1, path.name)


def _read_aclimdb(folder: Path, strict: bool) -> Records:
    """`folder/{neg,pos}/*.txt` (label 0, 1), negatives first, each sorted by review number;
    a file that is not UTF-8 is a malformed row."""
    files = [
        (path, label)
        for label, name in enumerate(("neg", "pos"))
        for path in sorted((folder / name).glob("*.txt"), key=_review_key)
    ]

    def parse(file: tuple[Path, int]) -> LabeledText:
        return LabeledText(_clean_review(_read_text(file[0])), file[1])

    return _parse_rows(folder, enumerate(files, start=1), parse, strict=strict, unit="file")


def load_imdb(
    split: str = "train",
    *,
    path: PathLike | None = None,
    data_dir: PathLike | None = None,
    strict: bool = False,
) -> Records:
    """IMDB movie reviews (label 1 positive, 0 negative), 25,000 per split, `<br />` turned
    into newlines. Read from the first of: `path` (an `aclImdb` folder holding
    `{split}/{pos,neg}/*.txt`, or a JSON-lines file, gzip if it ends in .gz);
    `imdb/{split}.jsonl.gz` (keys id, text, label); the original layout
    `imdb/aclImdb/{split}/{pos,neg}/*.txt`, negatives first, files sorted by review number
    (there a review file that is not UTF-8 is a malformed row)."""
    if split not in IMDB_SPLITS:
        raise ValueError(f"unknown IMDB split {split!r}; choose one of {IMDB_SPLITS}")
    if path is not None:
        given = Path(path)
        if given.is_file():
            return _parse_rows(given, _lines(given), _parse_imdb, strict=strict)
        if (given / split / "pos").is_dir() or (given / split / "neg").is_dir():
            return _read_aclimdb(given / split, strict)
        raise FileNotFoundError(
            f"no IMDB data at {given}: pass an aclImdb folder holding {split}/pos and "
            f"{split}/neg, or a JSON-lines file with the keys text and label"
        )
    folder = resolve_data_dir(data_dir) / "imdb"
    jsonl = folder / f"{split}.jsonl.gz"
    if jsonl.is_file():
        return _parse_rows(jsonl, _lines(jsonl), _parse_imdb, strict=strict)
    original = folder / "aclImdb" / split
    if (original / "pos").is_dir() or (original / "neg").is_dir():
        return _read_aclimdb(original, strict)
    raise FileNotFoundError(
        f"no IMDB {split} split at {jsonl} nor at {original}/{{pos,neg}}; see {DATA_GUIDE}, pass "
        f"path= to an aclImdb folder, or {POINT_AT_DATA}"
    )


# ---------------------------------------------------------------------------------------------
# AG News


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each CSV record, the `label,title,description` header
    left out. A record holding bytes that are not UTF-8 is malformed, the others are kept; one
    the csv module refuses (a field over its limit: an unbalanced quote, most likely) or a
    damaged .gz raises `ValueError` naming the file and the record's first line."""
    with _open_text(path, newline="") as file:
        reader = csv.reader(file)
        start = 1  # the first line of the record being read
        try:
            for fields in reader:
                number, start = start, reader.line_num + 1
                if number == 1 and [f.strip().lower() for f in fields] == AGNEWS_HEADER:
                    continue
                if fields and any(f.strip() for f in fields):
                    yield number, fields
        except READ_ERRORS as error:
            raise _unreadable(path, start, error) from error


def _parse_agnews(fields: list[str]) -> LabeledText:
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields (label, title, description), got {len(fields)}")
    label = int(fields[0])
    if not 1 <= label <= 4:
        raise ValueError(f"label {fields[0]!r} is not in 1..4")
    title, description = (f.replace("\\", "\n").strip() for f in fields[1:])
    return LabeledText(f"{title}\n{description}", label - 1)


def _stratified_split(
    records: list[LabeledText], heldout_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train, heldout) indices in file order: per class, a seeded shuffle, the first
    round(heldout_fraction * class size) to heldout."""
    by_label: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        by_label.setdefault(record.label, []).append(index)
    rng = random.Random(seed)
    heldout: list[int] = []
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        heldout += indices[: round(heldout_fraction * len(indices))]
    chosen = set(heldout)
    return [i for i in range(len(records)) if i not in chosen], sorted(heldout)


def agnews_splits(data_dir: PathLike | None = None) -> tuple[str, str]:
    """The (train, held-out) split names for AG News: the official ("train", "test") where
    the official `agnews/train.csv` is there, else the seeded stratified split of the test
    file ("test-split:train", "test-split:heldout")."""
    if (resolve_data_dir(data_dir) / "agnews" / "train.csv").is_file():
        return "train", "test"
    return "test-split:train", "test-split:heldout"


def load_agnews(
    split: PathLike = "test",
    *,
    seed: int = 0,
    heldout_fraction: float = 0.2,
    data_dir: PathLike | None = None,
    strict: bool = False,
) -> Records:
    """AG News from the Kaggle CSV (`label,title,description`, header optional, standard csv
    quoting, `\\` for a newline). Labels 1..4 in the file (World, Sports, Business, Sci/Tech)
    come back as 0..3; the text is `f"{title}\\n{description}"`.

    Splits: "test" is the official test split (`agnews/test.csv`, 7,600 rows); "train" the
    official train split (`agnews/train.csv`, 120,000 rows), which is not available offline.
    "test-split:train" and "test-split:heldout" are NOT the official splits: a deterministic
    split of the official TEST file, stratified by class, `heldout_fraction` of each class
    (chosen by a shuffle seeded with `seed`) held out, the rest for training; for experiments
    with no official train split. Records keep their file order. Any other string or a path
    is read as a file in the Kaggle format."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    name, where = _split_or_path(split, AGNEWS_SPLITS, data_dir)
    if name is None:
        if not where.is_file():
            raise _unknown_path(where, "AG News CSV", AGNEWS_SPLITS)
        path = where
    elif name == "train":
        hint = (
            "the official train split is not available offline: put the Kaggle train.csv "
            "there, pass its path, or use split='test-split:train' / 'test-split:heldout' (a "
            "seeded stratified split of the official test file)"
        )
        path = _require_file(where / "agnews" / "train.csv", "AG News train split", hint)
    else:
        path = _require_file(where / "agnews" / "test.csv", "AG News test split")
    records = _parse_rows(path, _csv_rows(path), _parse_agnews, strict=strict)
    if name not in ("test-split:train", "test-split:heldout"):
        return records
    train, heldout = _stratified_split(records, heldout_fraction, seed)
    chosen = heldout if name == "test-split:heldout" else train
    return Records((records[i] for i in chosen), skipped=records.skipped)


# ---------------------------------------------------------------------------------------------
# text corpora


def _paragraphs(text: str) -> list[str]:
    """Blank-line-separated paragraphs, stripped, empty ones left out."""
    return [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text) if p.strip()]


def _shakespeare_works(text: str) -> list[str]:
    """Split at each work's title: the last non-blank line within 5 lines above a line
    "by William Shakespeare". Text before the first title, if any, is a document of its own;
    with no such line at all, fall back to paragraphs."""
    lines = text.split("\n")
    starts = []
    for number, line in enumerate(lines):
        if line.strip().lower() != SHAKESPEARE_BYLINE:
            continue
        title = next(
            (j for j in range(number - 1, max(-1, number - 6), -1) if lines[j].strip()), None
        )
        if title is not None:
            starts.append(title)
    if not starts:
        return _paragraphs(text)
    bounds = [0, *starts, len(lines)]
    works = ("\n".join(lines[a:b]).strip() for a, b in zip(bounds, bounds[1:], strict=False))
    return [work for work in works if work]


def _brown_documents(text: str) -> list[str]:
    lines = [line for line in text.split("\n") if line.strip()]
    size = BROWN_LINES_PER_DOCUMENT
    return ["\n".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def _split_documents(
    documents: list[str], split: str, valid_fraction: float, seed: int
) -> list[str]:
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if len(documents) < 2:
        raise ValueError(
            f"cannot split {len(documents)} document(s) into train and validation; pass "
            "split=None, or a corpus of at least 2 documents"
        )
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    n_valid = min(len(documents) - 1, max(1, round(valid_fraction * len(documents))))
    chosen = set(order[:n_valid]) if split == "validation" else set(order[n_valid:])
    return [doc for i, doc in enumerate(documents) if i in chosen]


def load_corpus(
    name_or_path: PathLike = "shakespeare",
    split: str | None = None,
    *,
    valid_fraction: float = 0.05,
    seed: int = 0,
    data_dir: PathLike | None = None,
    strict: bool = False,
) -> list[str]:
    """Documents (str) for language modelling, in corpus order.

    Names: "shakespeare" (`corpus/shakespeare.txt`, one document per work: 42 plays and
    poems), "brown" (`corpus/brown.txt`, one sentence per line; its 500 texts are not
    delimited in this copy, so a document is a block of `BROWN_LINES_PER_DOCUMENT` = 100
    consecutive lines), "imdb" (the review texts of the IMDB train split; `strict` applies to
    it). Any other string or a path: a text file gives its blank-line-separated paragraphs, a
    folder one document per `*.txt` file (sorted by name). A file that is not UTF-8, or no
    document at all (only blank text), raises `ValueError`.

    `split=None` returns every document; "train" / "validation" a deterministic split by
    document: a shuffle of the document indices seeded with `seed`, whose first
    max(1, round(valid_fraction * n)) go to validation. The two are disjoint and cover all."""
    if split not in CORPUS_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {CORPUS_SPLITS}")
    name, where = _split_or_path(name_or_path, CORPORA, data_dir)
    if name == "imdb":
        documents = [record.text for record in load_imdb("train", data_dir=where, strict=strict)]
    elif name is not None:
        where = _require_file(where / "corpus" / f"{name}.txt", f"{name} corpus")
        text = _read_text(where)
        documents = _shakespeare_works(text) if name == "shakespeare" else _brown_documents(text)
    elif where.is_dir():
        files = sorted(where.glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no *.txt files in the folder {where}; one per document")
        documents = [d for d in (_read_text(f).strip() for f in files) if d]
    elif where.is_file():
        documents = _paragraphs(_read_text(where))
    else:
        raise _unknown_path(where, "corpus", CORPORA)
    if not documents:
        raise ValueError(f"no documents in {where}: it holds only blank text; check the path")
    if split is None:
        return documents
    return _split_documents(documents, split, valid_fraction, seed)


# ---------------------------------------------------------------------------------------------
# misspellings


def load_misspellings(*, data_dir: PathLike | None = None, strict: bool = False) -> dict[str, str]:
    """Wikipedia's list of common English misspellings, {misspelling: correction} (4,273
    pairs), from `misspellings/wikipedia-common-misspellings.json`. An entry whose
    correction is not a non-empty string is malformed; no valid entry raises `ValueError`."""
    name = "wikipedia-common-misspellings.json"
    path = _require_file(resolve_data_dir(data_dir) / "misspellings" / name, "misspellings list")
    try:
        table = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); see {DATA_GUIDE}") from error
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold one JSON object {{misspelling: correction}}")

    def parse(item: tuple[str, Any]) -> tuple[str, str]:
        wrong, right = item
        if not isinstance(right, str) or not right:
            raise ValueError(f"the correction of {wrong!r} is not a non-empty string")
        return wrong, right

    pairs = _parse_rows(path, enumerate(table.items(), 1), parse, strict=strict, unit="entry")
    return dict(pairs)
