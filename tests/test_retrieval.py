"""The Kronecker paper's retrieval probe: hand-made tables with known neighbours, the byte
code against its closed form, and SmolLM2's byte code against the reference's published
output."""

import json
import math

import pytest
import torch

from petra.cli import main
from petra.embeddings.kronecker import encode_bytes, kronecker_codec
from petra.probes.retrieval import (
    FAMILIES,
    TABULATED,
    _typographic_count,
    canonical,
    code_space,
    probe_space,
    random_pairs,
    retrieval_probe,
    table_space,
)


def _id(tokenizer, text):
    (token,) = tokenizer.encode(text, add_special_tokens=False).ids
    return token


@pytest.fixture(scope="module")
def planted(gpt2):
    """A random GPT-2 table in which "Run", " run" and " Run" (typographic variants of "run")
    and "runs" (another word) sit next to "run", and " computation" is exactly the mean of
    the tokens of "computation"."""
    table = torch.randn(gpt2.get_vocab_size(), 128, generator=torch.Generator().manual_seed(0))
    run = table[_id(gpt2, "run")]
    for n, text in enumerate(("Run", " run", " Run", "runs")):
        table[_id(gpt2, text)] = run + 0.01 * (n + 1) * table[n]
    pieces = gpt2.encode("computation", add_special_tokens=False).ids
    assert len(pieces) > 1
    table[_id(gpt2, " computation")] = table[pieces].mean(0)
    return table


def test_neighbours_and_fractions_of_a_planted_table(gpt2, planted):
    result = probe_space(table_space(planted, gpt2), gpt2)
    run = result["probes"]["run"]
    assert [text for text, _ in run["neighbours"][:4]] == ["Run", " run", " Run", "runs"]
    assert run["typographic"] == 3  # "runs" is another word; the fifth is a random token
    assert run["variants_in_vocab"] == 4  # "Run", " run", " Run", " RUN" (GPT-2 has no "RUN")
    computation = result["probes"]["computation"]
    assert "".join(computation["tokens"]) == "computation" and len(computation["tokens"]) > 1
    assert computation["neighbours"][0] == [" computation", 1.0]  # the mean of its pieces
    assert computation["typographic"] == 1
    counts = {w: p["typographic"] for w, p in result["probes"].items()}
    assert counts == {w: {"run": 3, "computation": 1}.get(w, 0) for w in counts}
    families = result["families"]
    assert families["run"]["typographic_at_k"] == pytest.approx(3 / 25)
    assert families["compute"]["typographic_at_k"] == pytest.approx(1 / 25)
    assert families["run"]["morphological_at_k"] == pytest.approx(22 / 25)
    assert result["typographic_at_k"] == pytest.approx((3 + 1) / 25 / len(TABULATED))
    assert result["typographic_at_k_all"] == pytest.approx((3 + 1) / 25 / len(FAMILIES))


def test_self_is_left_out_only_for_a_word_of_one_token(gpt2, planted):
    result = probe_space(table_space(planted, gpt2), gpt2, k=3)
    assert "run" not in [text for text, _ in result["probes"]["run"]["neighbours"]]
    magnet = result["probes"]["magnet"]  # two tokens: both may be its neighbours
    assert len(magnet["tokens"]) == 2
    assert {text for text, _ in magnet["neighbours"][:2]} == set(magnet["tokens"])


def test_centred_cosines_ignore_a_common_offset_and_scale(gpt2, planted):
    base = probe_space(table_space(planted, gpt2), gpt2, pairs=2000)
    offset = torch.randn(planted.shape[1], generator=torch.Generator().manual_seed(1))
    moved = probe_space(
        table_space(3.0 * planted + 5.0 * offset, gpt2), gpt2, pairs=2000
    )  # float32
    for family in FAMILIES:
        a, b = base["families"][family]["centred"], moved["families"][family]["centred"]
        assert a["in_family"] == pytest.approx(b["in_family"], abs=1e-6)
        assert a["random_pair"] == pytest.approx(b["random_pair"], abs=1e-6)
        assert a["difference"] == pytest.approx(a["in_family"] - a["random_pair"])
    raw = moved["random_pair_cosine"]["raw"]
    assert raw > 0.5 > abs(base["random_pair_cosine"]["raw"])  # the offset shows uncentred


def test_random_pairs_are_distinct_seeded_and_in_range():
    pairs = random_pairs(7, 5000, seed=3)
    assert pairs.shape == (5000, 2) and pairs.min() >= 0 and pairs.max() < 7
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert torch.equal(pairs, random_pairs(7, 5000, seed=3))
    counts = torch.bincount(pairs.flatten(), minlength=7).float()
    assert counts.min() > 0.8 * counts.mean()  # every id drawn about equally often


def _closed_form_cosine(shared: int, first: int, second: int, codec_dim: int) -> float:
    """cos(z_a, z_b) of two codes with `shared` (byte, position) slots in common: z is x
    minus its mean over D, scaled, and ||x|| = 1 with mean sqrt(L) / D, so
    cos = (s / sqrt(La Lb) - sqrt(La Lb) / D) / sqrt((1 - La / D)(1 - Lb / D))."""
    root = math.sqrt(first * second)
    return (shared / root - root / codec_dim) / math.sqrt(
        (1 - first / codec_dim) * (1 - second / codec_dim)
    )


def test_byte_code_space_against_its_closed_form(gpt2):
    space = code_space(gpt2, gpt2.get_vocab_size())
    run, runs, Run = space.word("run"), space.word("runs"), space.word("Run")
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(run, runs, dim=0).item() == pytest.approx(_closed_form_cosine(3, 3, 4, 8192))
    assert cosine(run, Run, dim=0).item() == pytest.approx(_closed_form_cosine(2, 3, 3, 8192))
    ids = torch.tensor([0, _id(gpt2, " run"), _id(gpt2, "running"), 50256])
    pieces = [b"!", b" run", b"running", b"<|endoftext|>"]
    literal = kronecker_codec(*encode_bytes(pieces, 32)[:2])  # mean and std taken over D
    torch.testing.assert_close(space.rows(ids), literal, rtol=1e-5, atol=1e-6)


def test_a_tie_at_the_kth_place_counts_by_its_expectation():
    sims = torch.tensor([0.9, 0.8, 0.8, 0.8, 0.8, 0.1], dtype=torch.float64)
    variants = torch.tensor([False, True, False, False, False, True])
    assert _typographic_count(sims, variants, k=3) == pytest.approx(2 * 1 / 4)  # 2 places, 4 tied
    assert _typographic_count(sims, variants, k=5) == 1  # the whole tie fits
    assert _typographic_count(sims, ~variants, k=1) == 1
    assert _typographic_count(sims, variants, k=6) == 2


def test_canonical_form():
    assert canonical(" Run") == canonical("RUN") == canonical("run\n") == "run"
    assert canonical("runs") != canonical("run")


def test_byte_code_of_smollm2_reproduces_the_published_probe():
    """The reference repository's output for SmolLM2-135M (probes/data/raw/cross_model/
    results/trained_probe_smollm2-135M.txt): the byte code's centred in-family cosines and
    typographic@5, which depend on the vocabulary alone."""
    transformers = pytest.importorskip("transformers")
    from petra.compress import model_source

    folder, gguf = model_source("smollm2-135m")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    families = {name: FAMILIES[name] for name in TABULATED}
    result = probe_space(code_space(tokenizer, 49152), tokenizer, families=families)
    published = {  # family: (centred in-family cosine, typographic@5)
        "run": (0.6263, 0.08),
        "compute": (0.7556, 0.08),
        "magnet": (0.8220, 0.00),
        "tion": (0.1583, 0.08),
    }
    for family, (in_family, typographic) in published.items():
        row = result["families"][family]
        assert row["centred"]["in_family"] == pytest.approx(in_family, abs=5e-5)
        # the reference breaks ties by its sort's order, petra by their expectation: at most
        # one tied token of the family's 25 apart
        assert row["typographic_at_k"] == pytest.approx(typographic, abs=1 / 25 + 1e-9)
    # published 27.9704: 0.02 % apart (the pieces of a few special tokens, which the
    # reference reads otherwise, move the mean row)
    assert result["mean_row_norm"] == pytest.approx(27.9704, rel=1e-3)
    run = result["probes"]["run"]["neighbours"]  # published: rund, runk, runc, runs (0.866)
    assert {text for text, _ in run[:4]} <= {"runc", "rund", "runk", "runs", "runt"}
    assert all(s == pytest.approx(0.866, abs=1e-3) for _, s in run)


def test_retrieval_probe_refuses_a_table_smaller_than_the_vocabulary(gpt2):
    with pytest.raises(ValueError, match="belongs to this tokenizer"):
        retrieval_probe(torch.zeros(100, 8), gpt2)
    with pytest.raises(ValueError, match="must be"):
        table_space(torch.zeros(5), gpt2)
    with pytest.raises(ValueError, match="k must be"):
        probe_space(table_space(torch.randn(50257, 4), gpt2), gpt2, k=0)


def test_cli_probes_a_pretrained_model(tmp_path, capsys):
    pytest.importorskip("sentence_transformers")
    out = tmp_path / "minilm.json"
    main(["probe", "geometry", "--model", "all-minilm-l6-v2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "typographic@5" in printed and "byte code" in printed
    result = json.loads(out.read_text())["retrieval"]
    assert set(result) == {"trained", "random", "byte code"}
    trained = result["trained"]
    assert trained["vocab_size"] == 30522
    assert result["random"]["typographic_at_k"] == 0.0
    # the tokenizer.json pads to 128: a word is its own token, never [PAD]s averaged in
    assert trained["probes"]["run"]["tokens"] == [" run"]  # a WordPiece word start
    assert all(f["centred"]["in_family"] < 0.9 for f in trained["families"].values())
    assert all("[PAD]" not in [t for t, _ in p["neighbours"]] for p in trained["probes"].values())
    # the byte code of a word of one token is that token's (" run"), so the piece "##run"
    # (the bare bytes "run") is not a free typographic match at cosine 1
    code_run = result["byte code"]["probes"]["run"]["neighbours"]
    assert all(text != "run" and similarity < 0.99 for text, similarity in code_run)
