"""`petra params`: the main job until the comparison harness exists."""

import json
import subprocess
import sys

import pytest

from petra.cli import main


def test_params_report_is_built_from_real_modules(tmp_path, capsys):
    out = tmp_path / "params.json"
    assert main(["params", "--tokenizers", "gpt2", "--dims", "64", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| gpt2 | 50,257 | 64 | learned | 3,216,448 |" in table
    rows = {row["embedding"]: row for row in json.loads(out.read_text())}
    assert rows["learned"]["trainable_params"] == 50257 * 64
    assert rows["fourier, linear"]["trainable_params"] == 64 * 64
    assert rows["fourier, geglu x4"]["trainable_params"] == 3 * 64 * 256
    kronecker = rows["kronecker, pos_dim 16"]
    assert kronecker["trainable_params"] == 256 * 16 * 64
    assert kronecker["buffer_bytes"] == 50257 * (16 + 4) + 32  # bytes, int32 lengths, fingerprint
    assert kronecker["saving_pct"] == pytest.approx(100 * (1 - 256 * 16 / 50257))
    # the baselines, by their closed forms at V = 50,257 = 37^3 - 396, d = 64 = 4 x 4 x 4
    assert rows["kronecker, pos_dim 16, rank 64"]["trainable_params"] == 64 * (4096 + 64)
    assert rows["qr, mult, c = ceil(sqrt V)"]["trainable_params"] == (224 + 225) * 64  # c = 225
    assert rows["hash, k=2, B = V/10"]["trainable_params"] == 5026 * 64 + 2 * 50257
    dhe = (1024 + 1) * 512 + (512 + 1) * 512 + (512 + 1) * 64
    assert rows["dhe, k=1024, 2 x 512"]["trainable_params"] == dhe
    assert rows["tt, 3 cores, rank 16"]["trainable_params"] == 37 * 4 * 16 * (1 + 16 + 1)


def test_the_installed_command_reports_bad_input_clearly():
    result = subprocess.run(
        [sys.executable, "-m", "petra.cli", "params", "--tokenizers", "no-such-tokenizer"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "no tokenizer 'no-such-tokenizer'" in result.stderr
