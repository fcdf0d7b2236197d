"""`petra params`: the main job until the comparison harness exists."""

import json
import os
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
    # a quantized table trains a scale and an offset per row and stores its codes
    for label, code_bytes in (("quantized, 8 bits", 64), ("quantized, 4 bits", 32)):
        row = rows[label]
        assert row["trainable_params"] == 2 * 50257
        assert row["stored_bytes"] == 50257 * (code_bytes + 8)  # codes, float32 scale, offset
        assert row["bytes_saving_pct"] == pytest.approx(100 * (1 - (code_bytes + 8) / 256))
    assert rows["learned"]["bytes_saving_pct"] == 0


def test_the_installed_command_reports_bad_input_clearly():
    result = subprocess.run(
        [sys.executable, "-m", "petra.cli", "params", "--tokenizers", "no-such-tokenizer"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "no tokenizer 'no-such-tokenizer'" in result.stderr


def fails_in_one_line(capsys, *args: str) -> str:
    """`petra ARGS` exits 2 with one line on stderr, no traceback; returns that line."""
    assert main([*args]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"petra {args[0]}: error: "), error
    return error.strip()


def test_a_path_too_long_for_the_system_is_one_line(capsys):
    long_path = "x" * 5000
    error = fails_in_one_line(capsys, "probe", "geometry", "--checkpoint", long_path)
    assert error == (
        f"petra probe: error: File name too long: {'x' * 60}... (a path of 5000 characters); "
        "check the path"
    )


def test_a_file_that_is_no_tokenizer_is_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    error = fails_in_one_line(capsys, "probe", "geometry", "--tokenizer", str(path))
    assert error.startswith(f"petra probe: error: {path} is not a tokenizer (")


def test_os_errors_about_user_paths_are_one_line(tmp_path, capsys, monkeypatch):
    """IsADirectoryError, NotADirectoryError, PermissionError about a path (wherever they
    come from) are one line; other OSErrors are internal and keep their traceback."""
    import petra.cli

    def raising(error):
        def handler(args):
            raise error

        return handler

    for error, line in [
        (IsADirectoryError(21, "Is a directory", str(tmp_path)), f"Is a directory: {tmp_path}"),
        (NotADirectoryError(20, "Not a directory", "f/x"), "Not a directory: f/x"),
        (PermissionError(13, "Permission denied", "/root/x"), "Permission denied: /root/x"),
        (
            FileNotFoundError(2, "No such file or directory", "y" * 300),
            f"No such file or directory: {'y' * 60}... (a path of 300 characters)",
        ),
        (FileExistsError(17, "File exists", "a-file"), "File exists: a-file"),
    ]:
        monkeypatch.setattr(petra.cli, "_probe_geometry", raising(error))
        assert fails_in_one_line(capsys, "probe", "geometry") == (
            f"petra probe: error: {line}; check the path"
        )
    monkeypatch.setattr(petra.cli, "_probe_geometry", raising(FileNotFoundError("no run at x")))
    assert fails_in_one_line(capsys, "probe", "geometry") == "petra probe: error: no run at x"
    monkeypatch.setattr(petra.cli, "_probe_geometry", raising(OSError(5, "Input/output error")))
    with pytest.raises(OSError, match="Input/output error"):
        main(["probe", "geometry"])
    monkeypatch.setattr(petra.cli, "_probe_geometry", raising(ConnectionResetError(104, "reset")))
    with pytest.raises(ConnectionResetError):
        main(["probe", "geometry"])


def test_a_width_beyond_memory_is_refused_before_anything_is_built(capsys, monkeypatch):
    monkeypatch.setattr("petra.embeddings.budget.memory_bytes", lambda: 16 * 2**30)
    assert main(["params", "--tokenizers", "gpt2", "--dims", "64,99999999999"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "petra params: error: --dims 99999999999: the learned 50,257 x 99,999,999,999 table of "
        "gpt2: 5,025,699,999,949,743 parameters would need 18,722,191.5 GiB as float32, more "
        "than this machine's memory (16.0 GiB); give a smaller width in --dims\n"
    )
    assert captured.out == ""  # refused before any row
    # the learned table fits; Fourier's GeGLU x4, 12 d^2 = 43.2 G parameters, does not
    assert main(["params", "--tokenizers", "gpt2", "--dims", "60000"]) == 2
    assert "error: --dims 60000: fourier, geglu x4 at V=50,257 (gpt2): 43,200,000,000" in (
        capsys.readouterr().err
    )


def test_a_width_an_arm_refuses_is_reported_in_its_row(tmp_path, capsys):
    out = tmp_path / "params.json"
    assert main(["params", "--tokenizers", "gpt2", "--dims", "64,3", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| gpt2 | 50,257 | 64 | fourier, linear | 4,096 |" in table
    assert "| gpt2 | 50,257 | 3 | learned | 150,771 |" in table
    assert (
        "| gpt2 | 50,257 | 3 | fourier, linear | not built: the Fourier basis pairs sin and cos: "
        "dim must be even, got 3 | – | – | 150,771 | – | – |"
    ) in table
    from petra.params import report_arms

    rows = json.loads(out.read_text())
    assert len(rows) == 2 * len(report_arms())  # every row of the report, at each width
    refused = [row for row in rows if "error" in row]
    assert {row["embedding"] for row in refused} == {
        "fourier, linear",
        "fourier, geglu x4",
        "fourier, geglu x1/4",
        "quantized, 4 bits",  # two codes to a byte: an even width
    }
    assert all(row["embedding_dim"] == 3 for row in refused)


@pytest.mark.parametrize("dims", ["0", "64,-4"])
def test_a_width_below_one_is_refused(capsys, dims):
    assert main(["params", "--tokenizers", "gpt2", "--dims", dims]) == 2
    assert "error: --dims takes positive widths such as 256,512,768, got [" in (
        capsys.readouterr().err
    )


def test_json_into_a_folder_is_refused_before_the_report(tmp_path, capsys):
    assert main(["params", "--tokenizers", "gpt2", "--dims", "64", "--json", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"petra params: error: --json {tmp_path} is a folder: give the path of a file to "
        f"write, such as "
        f"{tmp_path / 'params.json'}\n"
    )
    assert captured.out == ""


def test_embedding_params_is_the_count_of_the_built_module():
    """The closed forms the memory check uses, against the modules of every arm of the
    report (and of a few other layouts) at an odd V."""
    from petra.embeddings import build_embedding
    from petra.embeddings.budget import embedding_params
    from petra.embeddings.registry import embedding_class
    from petra.params import report_arms

    layouts = [*((kind, options) for _, kind, options in report_arms())]
    layouts += [("fourier", {"refine": "none", "final_norm": True}),
                ("fourier", {"refine_bias": True, "final_norm": True}),
                ("qr", {"operation": "concat", "collisions": 7}),
                ("hash", {"buckets": 11, "num_hashes": 3}),
                ("dhe", {"hidden": 24, "layers": 3, "code_dim": 16}),
                ("tt", {"rank": 4, "cores": 2})]  # fmt: skip
    vocab, dim = 1001, 24
    pieces = [bytes([i % 256]) * (1 + i % 3) for i in range(vocab)]
    for kind, options in layouts:
        extra = {"token_bytes": pieces} if embedding_class(kind).needs_tokenizer else {}
        built = build_embedding(kind, vocab, dim, **options, **extra)
        trainable = sum(p.numel() for p in built.parameters() if p.requires_grad)
        assert embedding_params(kind, vocab, dim, **options) == trainable, (kind, options)


def test_a_train_out_under_a_file_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = a_file / "run"
    error = fails_in_one_line(capsys, "train", "lm", "--preset", "tiny", "--out", str(out))
    assert error == (
        f"petra train: error: {out} cannot be a run directory: {a_file} is a file; choose "
        "another --out"
    )


DATA_COMMANDS = [
    "params",
    "train lm",
    "eval lm --checkpoint DIR",
    "compare lm",
    "reproduce --all",
    "compress",
    "probe spelling --checkpoint DIR",
    "probe generate --checkpoint DIR --prompt p --span p --bytes b",
    "probe geometry",
]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_command_that_reads_data_takes_data_dir(command):
    from petra.cli import build_parser

    args = build_parser().parse_args([*command.split(), "--data-dir", "DATA"])
    assert args.data_dir == "DATA"


def test_data_dir_reaches_the_loaders_for_one_run(tmp_path, capsys, monkeypatch):
    from petra.data import resolve_data_dir

    data = resolve_data_dir()
    monkeypatch.setenv("PETRA_DATA", str(tmp_path / "no-data-here"))
    args = ["train", "classify", "--preset", "tiny", "--quiet", "--set", "train.steps=2",
            "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2"]  # fmt: skip
    error = fails_in_one_line(capsys, *args, "--out", str(tmp_path / "a"))
    assert f"the data folder {tmp_path / 'no-data-here'} (from $PETRA_DATA)" in error
    assert main([*args, "--out", str(tmp_path / "b"), "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    assert os.environ["PETRA_DATA"] == str(tmp_path / "no-data-here")  # not set by --data-dir
    with pytest.raises(FileNotFoundError, match=r"\(from \$PETRA_DATA\)"):
        resolve_data_dir()  # --data-dir held for that run only
    missing = tmp_path / "missing"
    error = fails_in_one_line(
        capsys, *args, "--out", str(tmp_path / "c"), "--data-dir", str(missing)
    )
    assert error == (
        f"petra train: error: the data folder {missing} does not exist or is not a folder"
    )


def test_import_names_a_kind_of_your_own_to_the_command(tmp_path):
    """`petra --import my_kind`: a file in the current folder registers its kind, which the
    command then lists (a fresh process, so no test has registered it before)."""
    examples = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
    (tmp_path / "my_kind.py").write_text(open(os.path.join(examples, "own_kind.py")).read())
    command = [sys.executable, "-m", "petra", "--import", "my_kind", "params",
               "--tokenizers", "gpt2", "--dims", "64"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONSAFEPATH": "1"}  # no folder of -m's
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| gpt2 | 50,257 | 64 | random-code, r = 64 | 4,096 |" in result.stdout


def test_import_of_a_module_not_found_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["--import", "no_such_kind_module", "params", "--dims", "64"]) == 2
    error = capsys.readouterr().err
    assert error == (
        "petra params: error: --import no_such_kind_module: No module named 'no_such_kind_module'\n"
    )


def test_an_error_raised_by_the_imported_file_is_one_line_under_its_name(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "bad_kind.py").write_text('raise ValueError("a bad option")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["--import", "bad_kind", "params", "--dims", "64"]) == 2
    assert capsys.readouterr().err == "petra params: error: --import bad_kind: a bad option\n"
    assert str(tmp_path) not in sys.path  # searched while importing only
