"""Probes on tiny trained checkpoints and fresh embeddings, with asserted invariants."""

import json

import pytest
import torch

from petra import build_embedding
from petra.cli import main
from petra.data import load_tokenizer
from petra.models import load_pretrained
from petra.probes import (
    PromptPair,
    default_pairs,
    forced_oov_generation,
    norm_series,
    probe_geometry,
    probe_spelling,
    typographic_pairs,
    typographic_similarity,
)
from petra.probes.spelling import CATEGORIES, edit_category
from petra.tasks import run_task


@pytest.fixture(scope="module")
def kronecker_lm(tmp_path_factory):
    """A tiny causal LM with a Kronecker embedding, trained for 12 steps (run directory)."""
    out = tmp_path_factory.mktemp("lm")
    run_task("lm", "tiny", ["model.embedding=kronecker"], out, progress=False)
    return out


@pytest.fixture(scope="module")
def loaded(kronecker_lm):
    tokenizer = load_tokenizer(kronecker_lm / "model")  # saved beside the weights
    return load_pretrained(kronecker_lm / "model", tokenizer=tokenizer).eval(), tokenizer


def test_identical_prompts_agree_completely(loaded):
    model, tokenizer = loaded
    pairs = [PromptPair("To be or not to", "To be or not to", "none")] * 2
    summary = probe_spelling(model, tokenizer, pairs)["summary"]
    assert summary["top1_agreement"] == 1.0
    assert summary["kl_mean"] == pytest.approx(0.0, abs=1e-6)
    assert summary["hidden_cosine_mean"] == pytest.approx(1.0, abs=1e-5)
    assert summary["logprob_drop_mean"] == pytest.approx(0.0, abs=1e-6)


def test_default_pairs_are_reproducible_typos_of_the_last_word():
    pairs = default_pairs(limit=40)
    assert pairs == default_pairs(limit=40) and len(pairs) == 40
    for pair in pairs:
        clean, typo = pair.clean.split(), pair.typo.split()
        assert clean[:-1] == typo[:-1] and clean[-1] != typo[-1] and len(clean) >= 4
        assert pair.category in CATEGORIES and pair.category == edit_category(clean[-1], typo[-1])
    assert default_pairs(limit=40, seed=1) != pairs  # another seed, other sentences


@pytest.mark.parametrize(
    "correct, typo, category",
    [("receive", "recieve", "transposition"), ("until", "untill", "insertion"),
     ("beginning", "begining", "deletion"), ("definite", "definate", "substitution"),
     ("necessary", "neccesary", "other")],
)  # fmt: skip
def test_edit_categories(correct, typo, category):
    assert edit_category(correct, typo) == category


def test_spelling_probe_command_writes_json(kronecker_lm, tmp_path, capsys):
    out = tmp_path / "spelling.json"
    assert (
        main(
            [
                "probe",
                "spelling",
                "--checkpoint",
                str(kronecker_lm / "model"),
                "--limit",
                "12",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert (
        summary["pairs"] == 12 and 0 <= summary["top1_agreement"] <= 1 and summary["kl_mean"] >= 0
    )
    assert sum(c["pairs"] for c in summary["per_category"].values()) == 12
    assert "| all | 12 |" in printed


def test_forced_oov_takes_one_position_and_equals_the_token_when_the_bytes_match(loaded):
    model, tokenizer = loaded
    coined = forced_oov_generation(
        model, tokenizer, "To be or flibbertigibbet to be", "flibbertigibbet", b"flibbertigibbet", 5
    )
    assert coined["ordinary"]["span_tokens"] > 1
    assert (
        coined["forced"]["positions"]
        == coined["ordinary"]["positions"] - coined["ordinary"]["span_tokens"] + 1
    )
    same = forced_oov_generation(model, tokenizer, "To be or not to be", "not", b"not", 5)
    assert same["ordinary"]["span_tokens"] == 1  # " not" is one GPT-2 token, with these bytes
    assert same["forced"]["continuation"] == same["ordinary"]["continuation"]


def test_forced_oov_needs_a_kronecker_model(tmp_path):
    run_task(
        "lm",
        "tiny",
        ["train.steps=2", "train.eval_every=2", "train.checkpoint_every=2"],
        tmp_path,
        progress=False,
    )
    args = [
        "probe",
        "generate",
        "--checkpoint",
        str(tmp_path / "model"),
        "--prompt",
        "a b",
        "--span",
        "b",
        "--bytes",
        "c",
    ]
    assert main(args) == 2


def test_geometry_finds_the_paper_normalization_collision(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab_size()
    paper = build_embedding("fourier", vocab, 32, normalize="paper", refine="none")
    assert probe_geometry(paper, tiny_tokenizer)["colliding_rows"] == 2  # ids 0 and V - 1
    default = probe_geometry(build_embedding("fourier", vocab, 32, refine="none"), tiny_tokenizer)
    assert default["colliding_rows"] == 0 and default["min_distance"] > 0 and default["exact"]


def test_fresh_kronecker_neighbours_are_orthographic(gpt2):
    """At initialization the byte code already puts " houses" near " house"; a fresh learned
    table puts nothing anywhere in particular."""
    kronecker = build_embedding("kronecker", 50257, 256, tokenizer=gpt2)
    result = probe_geometry(kronecker, gpt2, sample=256)
    assert result["variants_tested"] > 20 and not result["exact"]
    assert result["variant_neighbour_rate"] > 0.3 > result["unrelated_neighbour_rate"]
    learned = probe_geometry(build_embedding("learned", 50257, 256), gpt2, sample=256)
    assert learned["variant_neighbour_rate"] < 0.05
    assert "houses" in "".join(result["words"]["house"]["neighbours"])


def test_norms_probe_reads_the_run(kronecker_lm, tmp_path):
    series = norm_series(kronecker_lm)
    assert series["kind"] == "kronecker"
    assert [step for step, _ in series["logged"]["matrix_spectral"]] == [0, 6, 12]
    # the paper's projection norm: the mean L2 norm of the d output rows, 1.0 before training
    # (N(0, 1/sqrt(D)) entries, D = 256 * 16), whatever d is; Frobenius is sqrt(d) times that
    step, value = series["logged"]["matrix_row_norm_mean"][0]
    assert step == 0 and value == pytest.approx(1.0, abs=0.05)
    assert series["logged"]["matrix_fro"][0][1] == pytest.approx(value * 32**0.5, rel=0.05)
    assert series["checkpoints"][-1]["step"] == "final"
    out = tmp_path / "norms.json"
    assert main(["probe", "norms", "--run", str(kronecker_lm), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "kronecker"
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_geometry_scans_every_chunk_and_finds_the_one_duplicated_pair():
    """The exact scan over a table of several 1024-row chunks, with a byte-level BPE of 3,000
    pieces trained on the shared corpus (an all-pairs scan of GPT-2's 50,257 rows takes 40 s)."""
    from tokenizers import ByteLevelBPETokenizer

    from petra.data import resolve_data_dir

    tokenizer = ByteLevelBPETokenizer()
    corpus = resolve_data_dir(None) / "corpus" / "shakespeare.txt"
    tokenizer.train_from_iterator(
        [corpus.read_text()[:300_000]], vocab_size=3000, show_progress=False
    )
    vocab_size = tokenizer.get_vocab_size()
    embedding = build_embedding("learned", vocab_size, 256)
    with torch.no_grad():
        embedding.weight_table.weight[7] = embedding.weight_table.weight[2500]
    result = probe_geometry(embedding, tokenizer, sample=vocab_size, exact_limit=vocab_size)
    assert result["exact"] and result["rows_examined"] == vocab_size > 2 * 1024
    assert result["colliding_rows"] == 2 and result["min_distance"] > 0.01
    assert result["variants_tested"] > 0  # the probe words met the trained vocabulary


def test_typographic_similarity_finds_variants_built_close(gpt2):
    """A random table in which every group of variants (joined through variant pairs) shares
    one vector up to small noise: variants near 1, random pairs and relatives near 0."""
    pairs = typographic_pairs(gpt2)
    table = torch.randn(50257, 32)
    group = list(range(50257))  # union-find over the variant pairs

    def root(i):
        while group[i] != i:
            i = group[i]
        return i

    for pair in pairs["variants"]:
        i, j = pair["ids"]
        group[root(j)] = root(i)
    members = {i for pair in pairs["variants"] for i in pair["ids"]}
    for i in members:
        table[i] = table[root(i)] + 0.05 * torch.randn(32)
    result = typographic_similarity(table, gpt2)
    assert result["variants"]["pairs"] > 300 and result["variants"]["mean"] > 0.95
    assert abs(result["random"]["mean"]) < 0.05 and result["random"]["pairs"] == 1000
    assert abs(result["morphological"]["mean"]) < 0.15
    assert result["variant_minus_random"] == pytest.approx(
        result["variants"]["mean"] - result["random"]["mean"]
    )


def test_typographic_similarity_is_blind_to_a_common_offset(gpt2):
    """Centring: adding one vector to every row (or scaling the table) changes nothing, though
    it changes every plain cosine."""
    table = torch.randn(50257, 32)
    offset = table + 3.0 * torch.randn(32)
    base, moved = typographic_similarity(table, gpt2), typographic_similarity(2.5 * offset, gpt2)
    for kind in ("variants", "morphological", "random"):
        assert moved[kind]["mean"] == pytest.approx(base[kind]["mean"], abs=1e-5)
        assert moved[kind]["pairs"] == base[kind]["pairs"]
    i, j = typographic_pairs(gpt2)["random"][0]["ids"]
    plain = torch.nn.functional.cosine_similarity
    assert abs(plain(table[i], table[j], dim=0) - plain(offset[i], offset[j], dim=0)) > 0.1


def test_typographic_pairs_of_an_uncased_tokenizer_have_no_case_variants(gpt2, bert):
    uncased = typographic_similarity(torch.randn(30522, 16), bert)
    assert uncased["uncased"] and uncased["variants"]["by_edit"]["case"]["pairs"] == 0
    assert uncased["morphological"]["pairs"] > 100 and uncased["variants"]["pairs"] > 20
    cased = typographic_pairs(gpt2)
    assert sum(p["edit"] == "case" for p in cased["variants"]) > 100
    for found in (cased, typographic_pairs(bert)):
        for kind in found.values():
            assert all(p["ids"][0] != p["ids"][1] for p in kind)
            assert len({tuple(sorted(p["ids"])) for p in kind}) == len(kind)  # each pair once


def test_fresh_kronecker_table_puts_typographic_variants_together(gpt2):
    """At initialization " House" shares all bytes but one with " house": the byte code alone
    puts case variants and variants in all well above random word pairs."""
    table = build_embedding("kronecker", 50257, 64, tokenizer=gpt2).table()
    result = typographic_similarity(table, gpt2)
    assert result["variants"]["by_edit"]["case"]["mean"] > result["random"]["mean"] + 0.3
    assert result["variant_minus_random"] > 0.2 and result["morphological_minus_random"] > 0.2
    assert [" house", " House"] == result["variants"]["examples"][0][:2]


# -- mistakes a user can make: one line and exit code 2, before any work ----------------------


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory, tiny_tokenizer):
    """Untrained tiny checkpoints of three model types, each with its tokenizer beside it."""
    from petra.models import ModelConfig, build_model

    root = tmp_path_factory.mktemp("checkpoints")
    for model_type in ("causal_lm", "classifier", "encoder"):
        config = ModelConfig(
            model=model_type, vocab_size=tiny_tokenizer.get_vocab_size(), dim=16, n_layers=1,
            n_heads=2, max_len=32, num_labels=3, embedding={"kind": "kronecker", "pos_dim": 4},
        )  # fmt: skip
        model = build_model(config, tokenizer=tiny_tokenizer)
        model.save_pretrained(root / model_type, tokenizer=tiny_tokenizer)
    return root


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """`petra ARGS`: its exit code and its stderr (asserted to be one line when it fails)."""
    code = main([*args])
    error = capsys.readouterr().err
    if code:
        assert error.count("\n") == 1 and error.startswith(f"petra {args[0]}: error: "), error
    return code, error.strip()


def write_pairs(tmp_path, pairs) -> str:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    return str(path)


@pytest.mark.parametrize(
    "model_type, probe",
    [("classifier", "spelling"), ("encoder", "spelling"), ("classifier", "generate")],
)
def test_probes_of_a_causal_lm_refuse_another_model_type(
    tiny_checkpoints, tmp_path, capsys, model_type, probe
):
    extra = ["--prompt", "a b", "--span", "b", "--bytes", "c"]
    if probe == "spelling":
        extra = ["--pairs", write_pairs(tmp_path, [{"clean": "a b", "typo": "a c"}])]
    code, error = run_cli(
        capsys, "probe", probe, "--checkpoint", str(tiny_checkpoints / model_type), *extra
    )
    what = "next-token predictions" if probe == "spelling" else "generation"
    assert code == 2 and error.endswith(
        f"the {probe} probe compares {what} of a causal language model (a causal_lm "
        f"checkpoint); this model is a {model_type} model"
    )


@pytest.mark.parametrize("k, message", [
    (384, "k must be between 1 and 383 (the other rows of a 384-row table), got 384"),
    (100000, "k must be between 1 and 383 (the other rows of a 384-row table), got 100000"),
    (0, "k must be between 1 and 383 (the other rows of a 384-row table), got 0"),
])  # fmt: skip
def test_geometry_refuses_a_k_beyond_the_table(tiny_checkpoints, capsys, k, message):
    checkpoint = str(tiny_checkpoints / "causal_lm")
    code, error = run_cli(capsys, "probe", "geometry", "--checkpoint", checkpoint, "--k", str(k))
    assert code == 2 and error == f"petra probe: error: {message}"


def test_geometry_takes_the_largest_k(tiny_tokenizer):
    embedding = build_embedding("learned", tiny_tokenizer.get_vocab_size(), 8)
    result = probe_geometry(embedding, tiny_tokenizer, k=383)
    assert result["k"] == 383 and result["vocab_size"] == 384


@pytest.mark.parametrize("pairs, message", [
    ([], "holds no pairs: give a JSON list of at least one {clean, typo, category} object"),
    ({"clean": "a"}, "must hold a JSON list of {clean, typo, category} objects"),
    ([{"clean": "a b"}], "pair 0 needs a 'clean' and a 'typo' prompt, got keys ['clean']"),
    ([{"clean": "a b", "typo": "a c"}, "x"],
     "pair 1 must be an object {clean, typo, category}, got 'x'"),
    ([{"clean": "a b", "typo": 3}], "pair 0: 'typo' must be a non-empty string, got 3"),
    ([{"clean": "", "typo": "a"}], "pair 0: 'clean' must be a non-empty string, got ''"),
    ([{"clean": "a", "typo": "b", "category": None}],
     "pair 0: 'category' must be a string, got None"),
])  # fmt: skip
def test_spelling_pairs_that_do_not_fit_are_refused(tiny_checkpoints, tmp_path, capsys, pairs,
                                                    message):  # fmt: skip
    path = write_pairs(tmp_path, pairs)
    checkpoint = str(tiny_checkpoints / "causal_lm")
    code, error = run_cli(capsys, "probe", "spelling", "--checkpoint", checkpoint, "--pairs", path)
    assert code == 2 and error.endswith(f"{path} {message}" if "pair " not in message
                                        else f"{path}: {message}")  # fmt: skip


def test_spelling_pairs_that_are_not_json_name_the_file(tiny_checkpoints, tmp_path, capsys):
    path = tmp_path / "pairs.json"
    path.write_text("[{'clean': 'a'}]")
    checkpoint = str(tiny_checkpoints / "causal_lm")
    code, error = run_cli(capsys, "probe", "spelling", "--checkpoint", checkpoint,
                          "--pairs", str(path))  # fmt: skip
    assert code == 2 and f"{path} is not valid JSON (" in error


def test_probe_spelling_refuses_no_pairs(tiny_checkpoints, tiny_tokenizer):
    model = load_pretrained(tiny_checkpoints / "causal_lm", tokenizer=tiny_tokenizer)
    with pytest.raises(ValueError, match="no prompt pairs to probe: give at least one"):
        probe_spelling(model, tiny_tokenizer, [])


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_spelling_limit_must_be_positive(tiny_checkpoints, capsys, limit):
    checkpoint = str(tiny_checkpoints / "causal_lm")
    code, error = run_cli(capsys, "probe", "spelling", "--checkpoint", checkpoint, "--limit", limit)
    assert code == 2 and error.endswith(f"--limit must be at least 1, got {limit}")
    with pytest.raises(ValueError, match=f"limit must be at least 1, got {limit}"):
        default_pairs(int(limit))


def test_spelling_limit_also_cuts_given_pairs(tiny_checkpoints, tmp_path, capsys):
    pairs = [{"clean": "to be or", "typo": f"to be ox{i}"} for i in range(5)]
    out = tmp_path / "spelling.json"
    args = ["probe", "spelling", "--checkpoint", str(tiny_checkpoints / "causal_lm"),
            "--pairs", write_pairs(tmp_path, pairs), "--limit", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    typos = [row["typo"] for row in json.loads(out.read_text())["pairs"]]
    assert typos == ["to be ox0", "to be ox1"]


@pytest.mark.parametrize("option, value, message", [
    ("--span", "", "the span to replace is empty: give a part of the prompt"),
    ("--bytes", "", "the replacement bytes are empty: give at least one byte"),
    ("--max-new-tokens", "0", "max_new_tokens must be at least 1, got 0"),
])  # fmt: skip
def test_generate_refuses_empty_spans_and_lengths(tiny_checkpoints, capsys, option, value,
                                                  message):  # fmt: skip
    given = {"--prompt": "to be or not", "--span": "not", "--bytes": "nought",
             "--max-new-tokens": "3", option: value}  # fmt: skip
    args = [part for pair in given.items() for part in pair]
    code, error = run_cli(capsys, "probe", "generate", "--checkpoint",
                          str(tiny_checkpoints / "causal_lm"), *args)  # fmt: skip
    assert code == 2 and error == f"petra probe: error: {message}"


@pytest.mark.parametrize("probe", ["spelling", "generate", "geometry", "norms"])
def test_an_out_that_cannot_be_written_is_refused_before_the_work(
    tiny_checkpoints, tmp_path, capsys, monkeypatch, probe
):
    """A folder as --out, or a path under a file, is refused at once (no probe runs and is
    then lost), in one line."""
    import petra.probes as probes

    def never(*args, **kwargs):
        raise AssertionError("the probe ran before --out was checked")

    for name in ("probe_spelling", "forced_oov_generation", "probe_geometry", "norm_series"):
        monkeypatch.setattr(probes, name, never)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    source = {
        "spelling": ["--checkpoint", str(tiny_checkpoints / "causal_lm"), "--limit", "2"],
        "generate": ["--checkpoint", str(tiny_checkpoints / "causal_lm"), "--prompt", "a b",
                     "--span", "b", "--bytes", "c"],
        "geometry": ["--checkpoint", str(tiny_checkpoints / "causal_lm")],
        "norms": ["--run", str(tmp_path)],
    }[probe]  # fmt: skip
    code, error = run_cli(capsys, "probe", probe, *source, "--out", str(tmp_path))
    assert code == 2 and error.endswith(
        f"--out {tmp_path} is a folder: give the path of a file to write, such as "
        f"{tmp_path / 'result.json'}"
    )
    code, error = run_cli(capsys, "probe", probe, *source, "--out", str(a_file / "x.json"))
    assert code == 2 and error.endswith(
        f"--out {a_file / 'x.json'}: {a_file} is a file, not a folder"
    )
