"""Where petra finds its data: an explicit directory, `$PETRA_DATA`, or `../shared/data`."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory, in order: `data_dir`, `$PETRA_DATA`, `shared/data` beside the
    project root, `shared/data` beside the current directory."""
    if data_dir is not None:
        candidates = [Path(data_dir)]
    elif os.environ.get("PETRA_DATA"):
        candidates = [Path(os.environ["PETRA_DATA"])]
    else:
        candidates = [
            PROJECT_ROOT.parent / "shared" / "data",
            Path.cwd().parent / "shared" / "data",
        ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no data directory at {', '.join(str(c) for c in candidates)}; pass data_dir= or set "
        "PETRA_DATA to a folder laid out as described in shared/data/README.md"
    )
