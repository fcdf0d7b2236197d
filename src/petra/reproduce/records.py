"""Records of finished runs, kept where they can be committed, so that a claim whose runs take
longer than one machine lives resumes on a fresh checkout.

A run's folder (`runs/<claim>/<run>/`) holds its model and checkpoints: too large to
commit. Its record is the rest, a few kB: the JSON files at the folder's top (config.json,
results.json, the analyses' kept probe results) and its metrics.jsonl. Once the run has
finished (and again after the claim's analyses) the record is copied to
`progress/<claim>/<run>/` beside `runs/` (`reproduction/progress/`, committed). A run whose
folder has no results.json is restored from its record when there is one, and reused as any
finished run is: its config.json is checked against the settings the registry asks for now,
so a record of other settings is refused, never silently taken.

A restored run has no model. What needs one says so (`missing_model`): another run that
starts from it (`train.init`) or an analysis whose kept result no longer matches its code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from petra.atomic import atomic_write_bytes

RESULTS_FILE = "results.json"
MARKER = "restored.json"  # written in a restored folder: its model is not there


def record_files(run: Path) -> list[Path]:
    """The files of a run's folder that make its record (its model and checkpoints do not)."""
    files = [path for path in run.glob("*.json") if path.name != MARKER]
    return sorted([*files, *run.glob("metrics.jsonl")])


def keep(run: Path, record: Path) -> None:
    """Copy the record of the finished run in `run` to `record` (each file written whole;
    one that is already the same is left alone, so a committed record stays unchanged)."""
    if not (run / RESULTS_FILE).is_file():
        raise ValueError(f"{run} has not finished: it has no record to keep")
    record.mkdir(parents=True, exist_ok=True)
    for path in record_files(run):
        data = path.read_bytes()
        kept = record / path.name
        if not (kept.is_file() and kept.read_bytes() == data):
            atomic_write_bytes(kept, data)


def restore(record: Path, run: Path) -> bool:
    """Copy the `record` of a finished run into `run` when `run` has not finished and the
    record has; True when it did. Files the folder already holds (an interrupted run's
    config.json) are replaced by the record's."""
    if (run / RESULTS_FILE).is_file() or not (record / RESULTS_FILE).is_file():
        return False
    run.mkdir(parents=True, exist_ok=True)
    for path in record_files(record):
        shutil.copyfile(path, run / path.name)
    (run / MARKER).write_text(f'{{"from": "{record}"}}\n')
    return True


def missing_model(run: Path) -> str:
    """Why the model of `run` is not there, and what to do, for an error message."""
    if (run / MARKER).is_file():
        return (
            f"{run} was restored from its committed record without its model: delete {run} "
            "and its record (progress/ beside runs/) to train it again"
        )
    return f"{run} holds no model: delete {run} to train it again"
