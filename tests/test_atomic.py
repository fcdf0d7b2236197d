"""`atomic_folder`: a folder appears whole or not at all, replaces an earlier one whole, is
fsynced before it goes in, and what an interrupted write left is cleaned up or recovered."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from petra import atomic
from petra.atomic import atomic_folder, previous_folder


def write(target, files: dict[str, str]):
    with atomic_folder(target) as folder:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)


def contents(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_folder_appears_whole_with_nothing_beside_it(tmp_path):
    target = tmp_path / "a" / "run"  # parents are made
    write(target, {"x.txt": "1", "sub/y.txt": "2"})
    assert contents(target) == {"x.txt": "1", "sub/y.txt": "2"}
    assert names(tmp_path / "a") == ["run"]


def test_an_existing_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "run"
    write(target, {"x.txt": "old", "only-old.txt": "gone"})
    write(target, {"x.txt": "new"})
    assert contents(target) == {"x.txt": "new"}
    assert names(tmp_path) == ["run"]


@pytest.mark.parametrize("existing", [False, True])
def test_an_error_in_the_block_leaves_the_previous_folder_or_none(tmp_path, existing):
    target = tmp_path / "run"
    if existing:
        write(target, {"x.txt": "old"})
    with pytest.raises(OSError, match="No space left"):
        with atomic_folder(target) as folder:
            (folder / "x.txt").write_text("half")
            raise OSError("No space left on device")
    assert names(tmp_path) == (["run"] if existing else [])
    if existing:
        assert contents(target) == {"x.txt": "old"}


def test_a_failed_rename_into_place_restores_the_previous_folder(tmp_path, monkeypatch):
    target = tmp_path / "run"
    write(target, {"x.txt": "old"})
    rename = Path.rename

    def failing(self, destination):
        if self.name.endswith(".tmp"):  # the new folder going in
            raise OSError("rename failed")
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        write(target, {"x.txt": "new"})
    assert contents(target) == {"x.txt": "old"}
    assert names(tmp_path) == ["run"]


def test_every_file_and_folder_is_synced_before_the_rename_and_the_parent_after(
    tmp_path, monkeypatch
):
    target = tmp_path / "run"
    write(target, {"x.txt": "old"})
    synced, sync = [], atomic._sync

    def recording(path, folder):
        synced.append((Path(path), folder, contents(target).get("x.txt")))
        sync(path, folder)

    monkeypatch.setattr(atomic, "_sync", recording)
    write(target, {"x.txt": "new", "sub/y.txt": "2"})
    *inside, parent = synced
    temporary = inside[-1][0]  # the temporary folder itself, synced last of its tree
    assert temporary.name.startswith(".run.") and temporary.name.endswith(".tmp")
    assert {(p.relative_to(temporary), folder) for p, folder, _ in inside} == {
        (Path("x.txt"), False),
        (Path("sub/y.txt"), False),
        (Path("sub"), True),
        (Path("."), True),
    }
    assert all(seen == "old" for _, _, seen in inside)  # all before the new folder went in
    assert parent == (tmp_path.resolve(), True, "new")  # the renames, after


def test_leftovers_of_an_interrupted_write_are_removed_and_no_one_elses(tmp_path):
    target = tmp_path / "lm"
    write(target, {"x.txt": "old"})
    stale = tmp_path / ".lm.0123abcd.tmp"  # a write killed half-way
    stale.mkdir()
    (stale / "x.txt").write_text("half")
    (previous_folder(target)).mkdir()  # killed after the renames, before the deletion
    kept = [".lm.v2.0123abcd.tmp", ".lmx.0123abcd.tmp", "lm.tmp", "lm.old", ".lm.tmp"]
    for name in kept:  # other targets' temporary folders, and folders of the user's
        (tmp_path / name).mkdir()
    write(target, {"x.txt": "new"})
    assert contents(target) == {"x.txt": "new"}
    assert names(tmp_path) == sorted(["lm", *kept])


def test_a_crash_between_the_renames_leaves_the_previous_folder_until_a_new_one_is_in(tmp_path):
    target = tmp_path / "run"
    write(target, {"x.txt": "old"})
    target.rename(previous_folder(target))  # the state a crash between the renames leaves
    with pytest.raises(RuntimeError):  # a failed write keeps it: still the last whole folder
        with atomic_folder(target):
            raise RuntimeError
    assert contents(previous_folder(target)) == {"x.txt": "old"}
    write(target, {"x.txt": "new"})
    assert contents(target) == {"x.txt": "new"}
    assert names(tmp_path) == ["run"]


def test_through_a_symbolic_link_the_folder_it_points_to_is_replaced(tmp_path):
    write(tmp_path / "real", {"x.txt": "old"})
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    write(tmp_path / "link", {"x.txt": "new"})
    assert (tmp_path / "link").is_symlink()
    assert contents(tmp_path / "real") == {"x.txt": "new"}
    assert names(tmp_path) == ["link", "real"]


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "run").write_text("mine")
    with pytest.raises(ValueError, match="is a file: a folder cannot be written in its place"):
        write(tmp_path / "run", {"x.txt": "new"})
    assert (tmp_path / "run").read_text() == "mine"


KILLED_WRITE = """
import os, signal, sys
from petra.atomic import atomic_folder

with atomic_folder(sys.argv[1]) as folder:
    (folder / "x.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_sigkilled_write_leaves_the_previous_folder_and_the_next_write_cleans_up(tmp_path):
    """SIGKILL: no cleanup at all runs in the killed process."""
    target = tmp_path / "run"
    write(target, {"x.txt": "old"})
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(target)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert contents(target) == {"x.txt": "old"}
    assert len(names(tmp_path)) == 2  # and the killed write's temporary folder
    write(target, {"x.txt": "new"})
    assert contents(target) == {"x.txt": "new"}
    assert names(tmp_path) == ["run"]


# -- atomic_write_text ---------------------------------------------------------------------
def test_a_text_file_is_replaced_whole_and_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "results.json"
    atomic.atomic_write_text(path, "old")
    atomic.atomic_write_text(path, "new")
    assert path.read_text() == "new" and names(tmp_path) == ["results.json"]
    assert len(synced) == 4  # the file and its folder, at each write


def test_a_failed_text_write_leaves_the_old_file_and_no_sibling(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic.atomic_write_text(path, "new")
    assert path.read_text() == "old" and names(tmp_path) == ["results.json"]


def test_bytes_are_written_whole_as_text_is(tmp_path):
    path = tmp_path / "vectors.npy"
    atomic.atomic_write_bytes(path, b"\x93NUMPY\x00")
    atomic.atomic_write_text(path, "über")
    assert path.read_bytes() == "über".encode() and names(tmp_path) == ["vectors.npy"]


def test_atomic_write_json_writes_whole_and_strict_refuses_what_json_cannot_hold(tmp_path):
    from petra.atomic import atomic_write_json

    path = tmp_path / "result.json"
    atomic_write_json(path, {"a": [1, 2.5]}, indent=1)
    assert path.read_text() == json.dumps({"a": [1, 2.5]}, indent=1) + "\n"
    with pytest.raises(ValueError, match="Out of range float values"):
        atomic_write_json(path, {"a": float("nan")}, strict=True)
    assert json.loads(path.read_text()) == {"a": [1, 2.5]}  # the earlier file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # nothing left beside it
    atomic_write_json(path, {"a": float("nan")})  # as json.dumps writes it: NaN
    assert "NaN" in path.read_text()


@pytest.mark.parametrize(
    ("text", "says"),
    [('{"a": ', r"\(the run's results\) is damaged \("), ("[1]", "is not a JSON object")],
)
def test_read_json_names_a_damaged_file(tmp_path, text, says):
    path = tmp_path / "results.json"
    atomic.atomic_write_json(path, {"a": [1, 2.5]})
    assert atomic.read_json(path, "the run's results") == {"a": [1, 2.5]}
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}.*{says}.*delete it to redo it"):
        atomic.read_json(path, "the run's results")
