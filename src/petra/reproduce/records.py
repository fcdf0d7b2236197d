"""Records of finished runs, kept where they can be committed, so that a claim whose runs take
longer than one machine lives resumes on a fresh checkout.

A run's folder (`runs/<claim>/<run>/`) holds its model and checkpoints: too large to
commit. Its record is the rest, a few kB: the JSON files at the folder's top (config.json,
results.json, the analyses' kept probe results) and its metrics.jsonl. Once the run has
finished (and again after the claim's analyses) the record is copied to
`progress/<claim>/<run>/` beside `runs/` (`reproduction/progress/`, committed). A run whose
folder has no results.json is restored from its record when there is one (its config.json
first checked against the settings the registry asks for now, so a record of other settings
is refused, naming it, never silently taken) and reused as any finished run is.

A run that diverged is recorded too (its config.json, metrics.jsonl and `diverged.json`
with the error): a fresh checkout that asks for the same settings gets the divergence from
the record instead of training up to it again (`diverged`).

A restored run has no model, so the runs of an arm that starts from another arm's model
(`Arm.init_from`, Table 2's fine-tuning) and of the arm it starts from are never restored:
they train again. An analysis reads a restored run's kept probe results; one whose kept
result was made by other code needs the model and says so (`missing_model`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from petra.atomic import atomic_write_bytes

RESULTS_FILE = "results.json"
MARKER = "restored.json"  # written in a restored folder: its model is not there
DIVERGED = "diverged.json"  # in a record of a run that diverged: {"error": ...}


def record_files(run: Path) -> list[Path]:
    """The files of a run's folder that make its record (its model and checkpoints do not)."""
    files = [path for path in run.glob("*.json") if path.name != MARKER]
    return sorted([*files, *run.glob("metrics.jsonl")])


def keep(run: Path, record: Path) -> None:
    """Copy the record of the finished run in `run` to `record` (each file written whole;
    one that is already the same is left alone, so a committed record stays unchanged; a
    file the run no longer has, such as a probe result of a run trained again, removed)."""
    if not (run / RESULTS_FILE).is_file():
        raise ValueError(f"{run} has not finished: it has no record to keep")
    record.mkdir(parents=True, exist_ok=True)
    files = record_files(run)
    for path in files:
        data = path.read_bytes()
        kept = record / path.name
        if not (kept.is_file() and kept.read_bytes() == data):
            atomic_write_bytes(kept, data)
    for stale in set(record_files(record)) - {record / path.name for path in files}:
        stale.unlink()


def keep_diverged(run: Path, record: Path, error: str) -> None:
    """Record that the run in `run` diverged with `error`: its config.json and metrics.jsonl
    (as far as it got) and `DIVERGED`, written last; nothing where the run has no
    config.json (its settings could not be checked against a later run's)."""
    if not (run / "config.json").is_file():
        return
    record.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.jsonl"):
        if (run / name).is_file():
            atomic_write_bytes(record / name, (run / name).read_bytes())
    atomic_write_bytes(record / DIVERGED, (json.dumps({"error": error}) + "\n").encode())


def diverged(record: Path, run: Path) -> str | None:
    """The error `record` holds of a run that diverged, where the folder `run` has not
    finished (a finished run is its own answer); None otherwise."""
    if not (record / DIVERGED).is_file() or (run / RESULTS_FILE).is_file():
        return None
    return json.loads((record / DIVERGED).read_text())["error"]


def pending(record: Path, run: Path) -> bool:
    """Whether `record` holds a finished run that the folder `run` has not finished."""
    return (record / RESULTS_FILE).is_file() and not (run / RESULTS_FILE).is_file()


def restore(record: Path, run: Path) -> None:
    """Copy the `record` of a finished run into `run` (where `pending`). The marker goes
    first and results.json last, so a copy cut off midway leaves an unfinished run, which the
    next attempt restores again. Files the folder already holds (an interrupted run's
    config.json) are replaced by the record's."""
    run.mkdir(parents=True, exist_ok=True)
    (run / MARKER).write_text(json.dumps({"record": str(record)}) + "\n")
    for path in sorted(record_files(record), key=lambda path: path.name == RESULTS_FILE):
        shutil.copyfile(path, run / path.name)


def missing_model(run: Path) -> str:
    """Why the model of `run` is not there, and what to do, for an error message."""
    if (run / MARKER).is_file():
        record = json.loads((run / MARKER).read_text())["record"]
        return (
            f"{run} was restored from its committed record without its model, and a kept "
            f"result of it was made by other code (or none was kept): delete {run} and its "
            f"record {record} to train it again"
        )
    return f"{run} holds no model: delete {run} to train it again"
