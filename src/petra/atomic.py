"""Atomic writes: petra's one way to write a folder (a saved model, a training checkpoint)
or a file (a run's results, a reproduction's JSON) that must never be seen half written;
and `read_json`, which reads such a JSON file back, naming it when it is damaged.

It imports nothing of petra, so that every layer may use it (`models` and `hf` included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Write the folder `target` as a whole: the block writes its files into the empty folder
    yielded (a hidden sibling of `target`, `.NAME.XXXXXXXX.tmp`), which takes the place of
    `target` when the block ends without an error.

        with atomic_folder(run / "checkpoint") as folder:
            torch.save(state, folder / "trainer.pt")

    What it guarantees, with one writer of `target` at a time:
    - All or nothing: `target` holds the previous folder (or none) until the new one is
      complete, then the new one; never a part or a mix of the two. An error raised in the
      block (or an interruption, `KeyboardInterrupt`) removes the temporary folder and leaves
      the previous folder untouched; so does a failure of the final renames.
    - Durable: before the new folder goes in, every file and folder in it is fsynced; after
      it, the parent folder (the rename itself). A folder in place when the call returns
      survives a power cut, as far as the file system honours fsync (not on Windows, which
      cannot open a folder to fsync it: there only the files are).
    - Replaced whole: an existing `target` is swapped for the new folder in two renames (one
      cannot rename a folder onto a non-empty one): `target` to `previous_folder(target)`,
      the new folder to `target`; then the previous one is deleted. Files of the old folder
      that the new one lacks are gone. Through a symbolic link, the folder it points to is
      replaced and the link kept. A file at `target` is refused (`ValueError`).
    - Recoverable after a crash (SIGKILL, power cut): a crash while the block writes leaves a
      stale `.NAME.XXXXXXXX.tmp`, removed by the next write of `target`; a crash between the
      two renames leaves no `target` and the previous folder, complete, at
      `previous_folder(target)`, where a reader may take it (the next write removes it once
      its own folder is in place); a crash after them leaves a stale previous folder beside
      the new `target`, removed by the next write.

    A second writer of the same `target` at the same time is not supported: the last one to
    rename wins, or one fails with an error; each writes its own temporary folder, so the
    result is never a mix of two writes.
    """
    target = Path(target).resolve()  # through symbolic links: the real folder is replaced
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file: a folder cannot be written in its place")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.mkdir()
    try:
        yield temporary
        sync_tree(temporary)
        _put_in_place(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def atomic_write_json(path: str | Path, value, indent: int = 2, strict: bool = False) -> None:
    """Write `value` as a JSON file (a newline at the end), whole (`atomic_write_bytes`);
    `strict` refuses a NaN or an infinity (`ValueError`) instead of writing it."""
    atomic_write_text(path, json.dumps(value, indent=indent, allow_nan=not strict) + "\n")


def read_json(path: Path, what: str) -> dict:
    """The JSON object of the file `path` (`what` it holds, for the message), as
    `atomic_write_json` wrote it; a `ValueError` naming the file when it is damaged."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} ({what}) is damaged ({error}): delete it to redo it") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} ({what}) is not a JSON object: delete it to redo it")
    return value


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write the text file `path` as a whole (UTF-8), as `atomic_write_bytes` does."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write the file `path` as a whole: `data` goes into a hidden sibling
    (`.NAME.PID-XXXXXXXX.tmp`, one per writer), fsynced, then renamed over `path`. A reader
    sees the old file or the new one, never a part; an error or interruption removes the
    sibling (a SIGKILL leaves it, hidden, and never in `path`'s place)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync(path.parent, folder=True)


def previous_folder(target: str | Path) -> Path:
    """Where `atomic_folder` keeps the previous `target` while it renames the new one into
    place: `.NAME.old` beside it (through symbolic links, beside the real folder)."""
    target = Path(target).resolve()
    return target.with_name(f".{target.name}.old")


def _remove_leftovers(target: Path) -> None:
    """Remove what interrupted writes of `target` left: their temporary folders, and a
    previous folder once `target` is in place (without `target`, it is the last complete
    folder, kept until a new one is in place)."""
    stale = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{8}}\.tmp")
    for entry in target.parent.iterdir():
        if stale.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
    if target.exists():
        shutil.rmtree(previous_folder(target), ignore_errors=True)


def _put_in_place(new: Path, target: Path) -> None:
    previous = previous_folder(target)
    if target.exists():
        target.rename(previous)
        try:
            new.rename(target)
        except BaseException:
            previous.rename(target)
            raise
    else:
        new.rename(target)
    _sync(target.parent, folder=True)
    shutil.rmtree(previous, ignore_errors=True)  # the write is complete: never fail after it


def sync_tree(root: Path) -> None:
    """fsync every file under `root`, then every folder, the deepest first."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _sync(Path(folder, name), folder=False)
        _sync(Path(folder), folder=True)


def _sync(path: Path, folder: bool) -> None:
    if folder and os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
