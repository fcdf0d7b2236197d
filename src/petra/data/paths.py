"""Where petra finds its data folder.

In order: the `data_dir` a function is given; the folder the `petra` command's `--data-dir`
chose for the run (`use_data_dir`); `$PETRA_DATA`; and, for a source checkout of petra only
(a folder with pyproject.toml and src/petra), `shared/data` beside that checkout. An installed
petra has no default: it reads no data until it is told where the data are. The folder's layout
and where each set comes from are described in the data guide (docs/guide/data.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# a source checkout (editable install or src/ on the path), not a wheel in site-packages
SOURCE_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (
    PROJECT_ROOT / "src" / "petra"
).is_dir()
DATA_GUIDE = "docs/guide/data.md"
# how a user points petra at a data folder, from the command line or from Python
POINT_AT_DATA = "set PETRA_DATA to a data folder, or pass --data-dir (data_dir= from Python)"

_run_data_dir: Path | None = None


@contextmanager
def use_data_dir(data_dir: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, `resolve_data_dir()` answers `data_dir` (ahead of `$PETRA_DATA`)
    wherever it is called without an explicit folder: how `petra --data-dir` reaches every
    loader without changing the process environment.

    Args:
        data_dir: the data folder for the block; `None` changes nothing.

    Raises:
        FileNotFoundError: `data_dir` is not a folder.
    """
    global _run_data_dir
    if data_dir is None:
        yield
        return
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"the data folder {folder} does not exist or is not a folder")
    previous, _run_data_dir = _run_data_dir, folder
    try:
        yield
    finally:
        _run_data_dir = previous


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: `data_dir`, else the one `use_data_dir` chose, else `$PETRA_DATA`,
    else (in a source checkout) `shared/data` beside the checkout.

    Args:
        data_dir: the folder to use, ahead of every other source.

    Returns:
        The folder.

    Raises:
        FileNotFoundError: the chosen folder does not exist, or none was chosen.
    """
    chosen = (
        (data_dir, "data_dir"),
        (_run_data_dir, "--data-dir"),
        (os.environ.get("PETRA_DATA") or None, "$PETRA_DATA"),
    )
    for folder, source in chosen:
        if folder is None:
            continue
        if Path(folder).is_dir():
            return Path(folder)
        raise FileNotFoundError(
            f"the data folder {folder} (from {source}) does not exist or is not a folder; "
            f"{POINT_AT_DATA}, laid out as {DATA_GUIDE} describes"
        )
    beside = PROJECT_ROOT.parent / "shared" / "data"
    if SOURCE_CHECKOUT and beside.is_dir():
        return beside
    looked = f" (nor is there {beside} beside this source checkout)" if SOURCE_CHECKOUT else ""
    raise FileNotFoundError(
        f"petra has no data folder{looked}: {POINT_AT_DATA}, laid out as {DATA_GUIDE} describes"
    )
