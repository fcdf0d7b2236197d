"""Probes on tiny trained checkpoints and fresh embeddings, with asserted invariants."""

import copy
import json
import re
from pathlib import Path

import pytest
import torch

from petra import build_embedding
from petra.cli import main
from petra.data import load_tokenizer
from petra.embeddings import KINDS, REGISTRY
from petra.models import CausalLM, ModelConfig, build_model, load_pretrained
from petra.probes import (
    PromptPair,
    brown_pairs,
    compare_categories,
    forced_oov_generation,
    norm_series,
    pair_set,
    paper_pairs,
    probe_geometry,
    probe_spelling,
)
from petra.probes import generate as generate_probe
from petra.probes.spelling import (
    CATEGORIES,
    INSIDE_WORDS_AFTER,
    edit_category,
    first_of_each_category,
)
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


def test_top1_chance_and_kappa_against_a_count_over_different_pairs():
    """chance: how often a clean top-1 equals another pair's typo top-1, counted over every
    ordered pair i != j; kappa (agreement - chance) / (1 - chance): 0 for a model with one
    prediction everywhere, 1 for distinct predictions all kept, below 0 under chance."""
    from itertools import permutations

    from petra.probes.spelling import top1_kappa

    cases = [
        ([7, 7, 7, 7], [7, 7, 7, 7]),
        ([1, 2, 3], [1, 2, 3]),
        ([1, 2], [2, 1]),
        ([1, 1, 2, 2, 2], [2, 1, 2, 3, 1]),
        ([5, 9, 5, 5, 1, 9, 0], [5, 5, 9, 5, 0, 9, 1]),
    ]
    for clean, typo in cases:
        pairs = list(permutations(range(len(clean)), 2))
        chance = sum(clean[i] == typo[j] for i, j in pairs) / len(pairs)
        agreement = sum(t == u for t, u in zip(clean, typo, strict=True)) / len(clean)
        found = top1_kappa(clean, typo)
        assert found["top1_chance"] == pytest.approx(chance, abs=1e-12)
        if chance < 1:
            kappa = (agreement - chance) / (1 - chance)
            assert found["top1_kappa"] == pytest.approx(kappa, abs=1e-12)
    assert top1_kappa([7, 7, 7], [7, 7, 7]) == {"top1_chance": 1.0, "top1_kappa": 0.0}
    assert top1_kappa([1, 2, 3], [1, 2, 3]) == {"top1_chance": 0.0, "top1_kappa": 1.0}
    # every typo took another prompt's answer: below chance
    assert top1_kappa([1, 2, 3], [2, 3, 1])["top1_kappa"] == pytest.approx(-1)
    # a typo that pushes every prompt to one default token: agreement is chance's
    assert top1_kappa([4, 4, 4, 5], [4, 4, 4, 4])["top1_kappa"] == pytest.approx(0, abs=1e-12)


def test_last_token_cosine_is_the_final_state_against_the_last_token_read(loaded):
    """The cosine of the clean prompt's final hidden state with the input vector of its last
    position, as the model's forward computes both over the whole prompt."""
    model, tokenizer = loaded
    pairs = [PromptPair("To be or not to", "To be or nto to", "a"),
             PromptPair("The king is", "The kign is", "b")]  # fmt: skip
    result = probe_spelling(model, tokenizer, pairs)
    for pair, row in zip(pairs, result["pairs"], strict=True):
        ids = torch.tensor([tokenizer.encode(pair.clean).ids])
        with torch.no_grad():
            hidden, read = model.hidden_states(ids)[0, -1], model.embed(ids)[0, -1]
        expected = torch.nn.functional.cosine_similarity(hidden, read, dim=0)
        assert row["last_token_cosine"] == pytest.approx(float(expected), abs=1e-6)
        # the next-token distributions are the forward's over the whole prompt
        typo_ids = torch.tensor([tokenizer.encode(pair.typo).ids])
        with torch.no_grad():
            p, q = (model(i)[0, -1].log_softmax(-1) for i in (ids, typo_ids))
        assert row["kl"] == pytest.approx(float((p.exp() * (p - q)).sum()), abs=1e-5)
        assert row["clean_top1"] == int(p.argmax()) and row["typo_top1"] == int(q.argmax())
    mean = sum(row["last_token_cosine"] for row in result["pairs"]) / 2
    assert result["summary"]["last_token_cosine_mean"] == pytest.approx(mean)
    # blocks that add nothing and a final norm of gain 1: the last state is the read vector
    silent = copy.deepcopy(model)
    with torch.no_grad():
        for block in silent.backbone.blocks:
            for weight in (*block.attn.parameters(), *block.ffn.parameters()):
                weight.zero_()
        silent.backbone.norm.weight.fill_(1.0)
    for row in probe_spelling(silent, tokenizer, pairs)["pairs"]:
        assert row["last_token_cosine"] == pytest.approx(1.0, abs=1e-6)


def test_the_probe_reports_its_prompts_top1_chance_and_kappa(loaded):
    """The summary's chance and kappa are `top1_kappa` of the rows' clean and typo top-1
    tokens, overall and per category; one prompt repeated has chance 1 and kappa 0 (its
    agreement is no evidence)."""
    from petra.probes.spelling import top1_kappa

    model, tokenizer = loaded
    pairs = [PromptPair("To be or not to", "To be or nto to", "a"),
             PromptPair("The king is", "The kign is", "a"),
             PromptPair("My lord, I", "My lrod, I", "b")]  # fmt: skip
    result = probe_spelling(model, tokenizer, pairs)
    rows, summary = result["pairs"], result["summary"]
    tokens = lambda rows: ([r["clean_top1"] for r in rows], [r["typo_top1"] for r in rows])  # noqa: E731
    assert {k: summary[k] for k in ("top1_chance", "top1_kappa")} == top1_kappa(*tokens(rows))
    category = summary["per_category"]["a"]
    assert {k: category[k] for k in ("top1_chance", "top1_kappa")} == top1_kappa(*tokens(rows[:2]))
    assert all(r["top1_agreement"] == float(r["clean_top1"] == r["typo_top1"]) for r in rows)
    repeated = probe_spelling(model, tokenizer, [PromptPair("To be", "To be", "a")] * 3)
    assert repeated["summary"]["top1_chance"] == 1.0
    assert repeated["summary"]["top1_kappa"] == 0.0


def test_brown_pairs_are_reproducible_typos_of_the_last_word():
    pairs = brown_pairs(limit=40)
    assert pairs == brown_pairs(limit=40) and len(pairs) == 40
    for pair in pairs:
        clean, typo = pair.clean.split(), pair.typo.split()
        assert clean[:-1] == typo[:-1] and clean[-1] != typo[-1] and len(clean) >= 4
        assert pair.category in CATEGORIES and pair.category == edit_category(clean[-1], typo[-1])
    assert brown_pairs(limit=40, seed=1) != pairs  # another seed, other sentences
    assert pair_set("brown", 40) == pairs and len(pair_set("brown")) == 200


def test_brown_inside_pairs_hold_the_typo_inside_and_end_on_the_same_token(gpt2):
    pairs = pair_set("brown-inside")
    assert len(pairs) == 200 and brown_pairs(7, words_after=INSIDE_WORDS_AFTER) == pairs[:7]
    for number, pair in enumerate(pairs):
        after = INSIDE_WORDS_AFTER[number % len(INSIDE_WORDS_AFTER)]  # 1, 2, 3 items in turn
        clean, typo = pair.clean.split(), pair.typo.split()
        assert clean[-after:] == typo[-after:] and clean[: -after - 1] == typo[: -after - 1]
        assert clean[-after - 1] != typo[-after - 1] and len(clean) >= 4 + after
        assert pair.category == edit_category(clean[-after - 1], typo[-after - 1])
        assert gpt2.encode(pair.clean).ids[-1] == gpt2.encode(pair.typo).ids[-1]
    # mostly the typo-last set's misspellings: one no sentence has room after drops out
    typos = {p.typo.split()[-1 - INSIDE_WORDS_AFTER[i % 3]] for i, p in enumerate(pairs)}
    assert len(typos & {p.typo.split()[-1] for p in brown_pairs()}) >= 180
    for wrong in ((), (2, -1)):
        with pytest.raises(ValueError, match="words_after must be counts of at least 0"):
            brown_pairs(5, words_after=wrong)


def test_paper_pairs_are_110_in_11_categories_with_the_typo_inside_the_prompt():
    pairs = paper_pairs()
    assert len(pairs) == 110 and pair_set("paper") == pairs and pair_set("paper", 12) == pairs[:12]
    categories = [pair.category for pair in pairs]
    assert len(set(categories)) == 11 and all(categories.count(c) == 10 for c in categories)
    assert pairs[0] == PromptPair("The capital of France is", "The capitla of France is",
                                  "geography")  # fmt: skip
    same = [pair for pair in pairs if pair.clean == pair.typo]
    assert [pair.clean for pair in same] == ["The sun rises in the"]  # as published
    inside = [p for p in pairs if p.clean != p.typo and p.clean.split()[-1] == p.typo.split()[-1]]
    assert len(inside) == 105  # the typo ends the prompt in only 4 pairs
    assert first_of_each_category(pairs, 5) == [p for i, p in enumerate(pairs) if i % 10 < 5]


def test_paper_pairs_missing_or_malformed_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Kronecker spelling pairs at .*spelling_pairs"):
        paper_pairs(data_dir=tmp_path)
    path = tmp_path / "kronecker-probes" / "spelling_pairs.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"clean": "a b", "typo": "a c"}]))
    with pytest.raises(ValueError, match="pair 0 needs a 'category', got keys "):
        paper_pairs(data_dir=tmp_path)
    path.write_text("{")
    with pytest.raises(ValueError, match="spelling_pairs.json is not valid JSON"):
        paper_pairs(data_dir=tmp_path)
    path.write_text(json.dumps([{"clean": "a b", "typo": "a c", "category": "x"}]))
    assert paper_pairs(data_dir=tmp_path) == [PromptPair("a b", "a c", "x")]


def _summary(**categories) -> dict:
    """A probe summary whose per-category means are (top-1, KL, hidden cosine, log-prob drop)."""
    names = ("top1_agreement", "kl_mean", "hidden_cosine_mean", "logprob_drop_mean")
    return {"per_category": {c: dict(zip(names, v, strict=True)) for c, v in categories.items()}}


def test_compare_categories_counts_wins_ties_and_losses_by_each_metrics_direction():
    ours = _summary(a=(0.5, 0.2, 0.9, 0.1), b=(0.3, 0.4, 0.8, 0.5), c=(0.2, 0.6, 0.7, 0.3))
    theirs = _summary(a=(0.4, 0.3, 0.9, 0.2), b=(0.3, 0.4, 0.9, 0.1), c=(0.6, 0.5, 0.6, 0.3))
    compared = compare_categories(ours, theirs)
    assert compared["top1_agreement"] == {  # higher is better
        "win": 1, "tie": 1, "loss": 1, "won_or_tied": 2,
        "categories": {"a": "win", "b": "tie", "c": "loss"},
    }  # fmt: skip
    assert compared["kl_mean"]["categories"] == {"a": "win", "b": "tie", "c": "loss"}  # lower
    assert compared["hidden_cosine_mean"]["categories"] == {"a": "tie", "b": "loss", "c": "win"}
    assert compared["logprob_drop_mean"]["categories"] == {"a": "win", "b": "loss", "c": "tie"}
    swapped = compare_categories(theirs, ours)["top1_agreement"]
    assert (swapped["win"], swapped["tie"], swapped["loss"]) == (1, 1, 1)
    with pytest.raises(ValueError, match=re.escape("only in the first ['c'], only in the second")):
        compare_categories(ours, _summary(a=(0,) * 4, b=(0,) * 4, d=(0,) * 4))


# The reference repository's published per-category means (probes/data/robustness_results.json,
# rounded to 4 decimals): top-1 match rate, KL, final-hidden cosine, log-prob drop
PAPER_KRON = _summary(
    geography=(0.5, 1.0382, 0.8516, 0.2900), math=(0.3, 0.3607, 0.9197, 1.0524),
    time=(0.6, 1.0936, 0.8212, 1.5098), colors=(0.8, 0.2236, 0.9308, 0.1922),
    idiom=(0.4, 1.7907, 0.8356, 2.3263), body=(0.4, 1.2192, 0.8511, 2.1796),
    animals=(0.8, 0.2404, 0.9378, 0.2481), counting=(0.8, 0.3785, 0.8979, 0.0076),
    syntax=(0.1, 1.4092, 0.8227, 3.1824), misc=(0.8, 0.3492, 0.9328, 0.1403),
    people=(0.6, 0.6342, 0.8719, 0.5073),
)  # fmt: skip
PAPER_BPE = _summary(
    geography=(0.7, 1.4058, 0.7903, 2.1353), math=(0.0, 0.4137, 0.8978, 1.0667),
    time=(0.6, 1.1955, 0.8345, 1.4795), colors=(0.7, 0.1680, 0.9268, 0.2397),
    idiom=(0.4, 1.5911, 0.7986, 2.6451), body=(0.2, 1.1655, 0.8428, 2.0555),
    animals=(0.7, 0.4501, 0.8930, 0.2179), counting=(0.8, 0.5452, 0.8713, -0.0681),
    syntax=(0.0, 1.2965, 0.8201, 2.4418), misc=(0.7, 0.4299, 0.9135, -0.0346),
    people=(0.4, 0.7910, 0.8410, 1.0100),
)  # fmt: skip


def test_compare_categories_gives_the_papers_10_of_11_from_its_published_figures():
    compared = compare_categories(PAPER_KRON, PAPER_BPE)
    top1 = compared["top1_agreement"]
    assert (top1["win"], top1["tie"], top1["loss"], top1["won_or_tied"]) == (7, 3, 1, 10)
    assert [c for c, o in top1["categories"].items() if o != "win"] == [
        "counting", "geography", "idiom", "time"
    ]  # fmt: skip
    assert top1["categories"]["geography"] == "loss"
    counts = {m: (c["win"], c["tie"], c["loss"]) for m, c in compared.items()}
    assert counts["kl_mean"] == (7, 0, 4)
    assert counts["hidden_cosine_mean"] == (10, 0, 1)
    assert counts["logprob_drop_mean"] == (5, 0, 6)


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
    # the default set is the paper's, in its published order: 10 geography, then math
    assert {c: s["pairs"] for c, s in summary["per_category"].items()} == {"geography": 10,
                                                                         "math": 2}  # fmt: skip
    assert result["pairs"][0]["typo"] == "The capitla of France is"
    for row in result["pairs"]:  # the four measures of every pair, and their means
        assert abs(row["hidden_cosine"]) <= 1 + 1e-6 and row["kl"] >= 0
        assert row["top1_agreement"] in (0.0, 1.0) and isinstance(row["logprob_drop"], float)
    for name in ("kl", "hidden_cosine", "logprob_drop"):
        mean = sum(row[name] for row in result["pairs"]) / 12
        assert summary[f"{name}_mean"] == pytest.approx(mean)


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


def test_forced_oov_runs_on_a_kind_that_embeds_bytes_and_names_the_others(tiny_tokenizer):
    def lm(kind):
        config = ModelConfig(model="causal_lm", vocab_size=tiny_tokenizer.get_vocab_size(),
                             dim=32, n_layers=1, n_heads=2, max_len=64,
                             embedding={"kind": kind})  # fmt: skip
        return build_model(config, tokenizer=tiny_tokenizer).eval()

    ngram = lm("ngram")
    assert ngram.embedding.embeds_bytes
    same = forced_oov_generation(ngram, tiny_tokenizer, "to be or not to be", "be", b"be", 4)
    assert same["ordinary"]["span_tokens"] == 1  # " be": one token, with these bytes
    assert same["forced"]["continuation"] == same["ordinary"]["continuation"]
    with pytest.raises(ValueError, match="needs an embedding that embeds raw bytes .*'learned'"):
        forced_oov_generation(lm("learned"), tiny_tokenizer, "to be or not", "not", b"x", 4)


def test_what_reads_raw_bytes_is_named_by_its_capability_not_by_a_list_of_kinds(
    capsys, monkeypatch
):
    """The texts on forced byte input (the probe, the `generate` help, `byte_overrides` of
    the causal LM and its guide) name `embeds_bytes`, not the kinds that have it today: a
    hand-kept list goes stale when a kind gains it."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse: each command's help on one line
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    (help_line,) = [line for line in capsys.readouterr().out.splitlines() if "generate" in line]
    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "models.md").read_text()
    (guide_paragraph,) = [part for part in guide.split("\n\n") if "byte_overrides" in part]
    byte_kinds = [kind for kind in KINDS if REGISTRY[kind].embeds_bytes]
    assert byte_kinds  # else the check below checks nothing
    texts = {
        "probe": generate_probe.__doc__,
        "help": help_line,
        "forward": CausalLM.forward.__doc__,
        "guide": guide_paragraph,
    }
    for where, text in texts.items():
        assert "embeds_bytes" in text, where
        words = text.lower().replace("-", "")  # "n-gram" names the ngram kind too
        assert not [kind for kind in byte_kinds if kind in words], (where, text)


def test_the_generate_command_refuses_a_model_that_cannot_embed_bytes(tmp_path):
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
    for make in (brown_pairs, pair_set):
        with pytest.raises(ValueError, match=f"limit must be at least 1, got {limit}"):
            make(*(["paper"] if make is pair_set else []), int(limit))


def test_spelling_limit_also_cuts_given_pairs(tiny_checkpoints, tmp_path, capsys):
    pairs = [{"clean": "to be or", "typo": f"to be ox{i}"} for i in range(5)]
    out = tmp_path / "spelling.json"
    args = ["probe", "spelling", "--checkpoint", str(tiny_checkpoints / "causal_lm"),
            "--pairs", write_pairs(tmp_path, pairs), "--limit", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    typos = [row["typo"] for row in json.loads(out.read_text())["pairs"]]
    assert typos == ["to be ox0", "to be ox1"]
    args[args.index("--pairs") + 1] = "brown"  # the second named set
    assert main(args) == 0
    typos = [row["typo"] for row in json.loads(out.read_text())["pairs"]]
    assert typos == [pair.typo for pair in brown_pairs(2)]


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


def test_token_vector_norm_follows_only_the_rows_read():
    from petra.probes.norms import token_vector_norm

    learned = build_embedding("learned", 50, 8)
    read = torch.tensor([[3, 4, 3], [7, 4, 4]])
    before = token_vector_norm(learned, read)
    expected = learned.table()[torch.tensor([3, 4, 7])].norm(dim=-1).mean().item()
    assert before == pytest.approx(expected)  # each distinct id once
    with torch.no_grad():
        learned.weight[10:] *= 5.0  # rows the model never reads
    assert token_vector_norm(learned, read) == pytest.approx(before)
    with torch.no_grad():
        learned.weight[4] *= 3.0
    assert token_vector_norm(learned, read) > before
