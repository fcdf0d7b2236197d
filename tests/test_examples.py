"""The scripts in examples/ run as a user runs them (`python examples/NAME.py`, here in a
subprocess on one thread, from an empty folder) on tiny settings, and print what they say."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GPT2_VOCAB = 50257
TINY_GPT = ["--dim", "32", "--layers", "1", "--heads", "2", "--block-size", "32", "--batch-size",
            "4", "--log-every", "1", "--eval-batches", "2", "--sample", "4", "--max-chars",
            "60000"]  # fmt: skip


def run_example(name: str, *arguments: str, cwd: Path) -> str:
    """The script's standard output; fails the test with the end of its error output unless
    it exits 0."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def losses(output: str) -> list[float]:
    return [float(value) for value in re.findall(r"^step \d+: loss ([\d.]+)$", output, re.M)]


def test_nanogpt_with_a_tied_kronecker_head_trains_saves_and_reloads(tmp_path):
    """The tied Kronecker head starts far above ln V, as `KroneckerEmbedding.table` says
    (about 0.85 d nats; d = 32 here), and comes down; the reloaded model is the same."""
    output = run_example("nanogpt.py", *TINY_GPT, "--steps", "3", "--tied", cwd=tmp_path)
    assert "kronecker embedding: 131,072 parameters" in output  # 256 P d, P = 16, d = 32
    first, *_, last = losses(output)
    assert first > 2 * math.log(GPT2_VOCAB) and last < first
    assert "reloaded out-nanogpt/model.pt: largest logit difference 0.0e+00" in output
    assert (tmp_path / "out-nanogpt" / "model.pt").is_file()


def test_nanogpt_compiles_with_an_untied_fourier_embedding(tmp_path):
    """One compiled run (the `aot_eager` backend traces what inductor would compile, without
    its C++ build): an untied head starts at ln V, the uniform guess."""
    output = run_example("nanogpt.py", *TINY_GPT, "--steps", "2", "--kind", "fourier",
                         "--compile", "--compile-backend", "aot_eager", cwd=tmp_path)  # fmt: skip
    assert "fourier embedding: 1,024 parameters" in output  # the d x d refinement
    assert losses(output)[0] == pytest.approx(math.log(GPT2_VOCAB), abs=0.1)
    assert "largest logit difference 0.0e+00" in output


def test_hf_swap_saves_and_reloads_minilm(tmp_path):
    output = run_example("hf_swap.py", "--out", "swapped", cwd=tmp_path)
    # V d = 30,522 x 384 against 256 P d = 256 x 16 x 384
    assert "kronecker embedding 30522 x 384: 11,720,448 -> 1,572,864 parameters" in output
    assert "saved swapped: " in output and "petra.safetensors" in output
    assert "reloaded swapped: BertModel, sentence vectors identical: True" in output
    sidecar = json.loads((tmp_path / "swapped" / "petra.json").read_text())
    assert sidecar["kind"] == "kronecker"


def test_budget_compare_sizes_each_kind_to_the_budget(tmp_path):
    budget = 110_000
    arguments = ["--preset", "tiny", "--kinds", "learned,kronecker", "--budget", "110k",
                 "--steps", "2", "--out", "cmp"]  # fmt: skip
    output = run_example("budget_compare.py", *arguments, cwd=tmp_path)
    # learned: e (V + d) with e = 2; kronecker: r (256 P + d) with r = 26 (P = 16, d = 32)
    assert "learned (seed 0): factor_dim=2, 100,578 embedding parameters" in output
    assert "kronecker (seed 0): rank=26, 107,328 embedding parameters" in output
    assert "| embedding | backbone | sized to the budget by |" in output
    summary = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert summary["budget"]["params"] == budget
    for arm in summary["arms"]:
        assert 0.9 * budget <= arm["params"]["embedding"] <= budget


def test_own_kind_joins_petra_by_its_registration_alone(tmp_path):
    """The kind the script defines (and registers on import) is sized, trained and reported
    beside the learned table, as petra's own kinds are."""
    arguments = ["--preset", "tiny", "--budget", "55k", "--steps", "2", "--out", "own"]
    output = run_example("own_kind.py", *arguments, cwd=tmp_path)
    assert "random-code keeps the embedding contract (11 checks)" in output
    # learned: e (V + d) with e = 1 (V = 50,257, d = 32); the code: r d with r = 1,718
    assert "learned: factor_dim=1 -> 50,289 parameters" in output
    assert "random-code: bits=1718 -> 54,976 parameters" in output
    summary = json.loads((tmp_path / "own" / "results.json").read_text())
    assert [arm["kind"] for arm in summary["arms"]] == ["learned", "random-code"]
    assert all(math.isfinite(arm["metrics"]["loss"]) for arm in summary["arms"])
