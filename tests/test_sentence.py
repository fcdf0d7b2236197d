"""Sentence tasks (nli-sts, sts, distill), STS evaluation, and `petra compare`."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from petra.cli import main
from petra.data import load_nli, load_stsb
from petra.data.batching import encode_texts
from petra.models import ModelConfig, build_model
from petra.tasks.run import apply_overrides, build_run, load_preset, run_config
from petra.tasks.sentence import (
    cosent_loss,
    embed_ids,
    pearson_loss,
    spearman_change,
    split_heldout,
)


@pytest.fixture(scope="module")
def sentence_model(bert):
    config = ModelConfig(model="sentence", vocab_size=30522, dim=32, n_layers=1, n_heads=2)
    return build_model(config, tokenizer=bert).eval()


def test_sentence_vectors_come_back_in_input_order(sentence_model, bert):
    sentences = ["a much longer sentence than the others, it goes on", "hi", "two words"]
    ids = encode_texts(bert, sentences, max_length=32)
    together = embed_ids(sentence_model, ids, pad_id=0, batch_size=2)
    for i in range(len(sentences)):
        alone = embed_ids(sentence_model, [ids[i]], pad_id=0)
        torch.testing.assert_close(together[i], alone[0], rtol=1e-5, atol=1e-5)


def test_sts_evaluation_uses_every_pair_in_order(bert):
    task, model, _ = build_run("sts", load_preset("sts", "tiny"))
    model.eval()
    result = task.evaluate(model)
    pairs = load_stsb("dev")
    assert result["pairs"] == 1500 and task.eval_sets[""][2] == [p.score for p in pairs]
    a = embed_ids(model, encode_texts(bert, [p.sentence1 for p in pairs], 32), 0)
    b = embed_ids(model, encode_texts(bert, [p.sentence2 for p in pairs], 32), 0)
    cosine = (a * b).sum(-1).numpy()
    scores = [p.score for p in pairs]
    # threaded CPU kernels may reorder float sums between two encodings: allow 1e-4
    assert result["spearman"] == pytest.approx(
        100 * stats.spearmanr(cosine, scores).statistic, abs=1e-2
    )
    assert result["pearson"] == pytest.approx(
        100 * stats.pearsonr(cosine, scores).statistic, abs=1e-2
    )


def test_cosent_closed_form():
    cosine = torch.tensor([0.9, 0.1, 0.5])
    scores = torch.tensor([5.0, 1.0, 3.0])
    # ordered pairs (i, j) with s_i > s_j: (0, 1), (0, 2), (2, 1)
    terms = [20 * (0.1 - 0.9), 20 * (0.5 - 0.9), 20 * (0.1 - 0.5)]
    expected = math.log(1 + sum(math.exp(t) for t in terms))
    assert cosent_loss(cosine, scores).item() == pytest.approx(expected, rel=1e-4)
    assert cosent_loss(cosine, torch.ones(3)).item() == 0.0  # ties order nothing


def test_pearson_loss_is_one_minus_scipys_correlation():
    generator = torch.Generator().manual_seed(0)
    cosine = torch.rand(32, generator=generator, dtype=torch.float64, requires_grad=True)
    scores = 5 * torch.rand(32, generator=generator, dtype=torch.float64)
    expected = 1 - stats.pearsonr(cosine.detach().numpy(), scores.numpy()).statistic
    loss = pearson_loss(cosine, scores)
    assert loss.item() == pytest.approx(expected, abs=1e-9)  # eps 1e-8 in the denominator
    loss.backward()
    assert torch.isfinite(cosine.grad).all() and cosine.grad.abs().sum() > 0
    # perfectly correlated: 0; anti-correlated: 2; invariant to scale and shift of either
    assert pearson_loss(scores, 3 * scores + 1).item() == pytest.approx(0.0, abs=1e-9)
    assert pearson_loss(-scores, scores).item() == pytest.approx(2.0, abs=1e-9)
    # equal scores order nothing: the loss stays finite (1) and pushes nowhere
    flat = pearson_loss(cosine, torch.full((32,), 3.0, dtype=torch.float64))
    assert flat.item() == pytest.approx(1.0)


def test_spearman_change_against_scipy_and_a_plain_bootstrap():
    """The change is scipy's rho(after) - rho(before) (ties included); its interval is a
    paired percentile bootstrap's, checked against a plain loop over index draws (another
    random stream, so within a tenth of the interval's width); it mirrors when before and
    after trade places, and is a point at no change."""
    rng = np.random.default_rng(1)
    gold = np.round(rng.uniform(0, 5, 300))  # whole scores: many ties, as STS-B's
    before = gold + rng.normal(0, 2.0, 300)
    after = gold + rng.normal(0, 1.0, 300)
    found = spearman_change(before, after, gold, repeats=4000)
    rho = [100 * stats.spearmanr(x, gold).statistic for x in (before, after)]
    assert found["change"] == pytest.approx(rho[1] - rho[0], abs=1e-9)
    draws = rng.integers(0, 300, size=(4000, 300))
    plain = [
        100 * (stats.spearmanr(after[i], gold[i]).statistic
               - stats.spearmanr(before[i], gold[i]).statistic)
        for i in draws
    ]  # fmt: skip
    low, high = np.quantile(plain, [0.025, 0.975])
    width = high - low
    assert found["low"] == pytest.approx(low, abs=0.1 * width)
    assert found["high"] == pytest.approx(high, abs=0.1 * width)
    assert 0 < found["low"] < found["change"] < found["high"]  # the better cosines, resolved
    mirrored = spearman_change(after, before, gold, repeats=4000)
    assert mirrored["change"] == pytest.approx(-found["change"])
    assert (mirrored["low"], mirrored["high"]) == pytest.approx((-found["high"], -found["low"]))
    same = spearman_change(before, before, gold, repeats=200)
    assert same["change"] == same["low"] == same["high"] == 0
    assert (found["pairs"], found["level"]) == (300, 0.95)
    with pytest.raises(ValueError, match="one value per pair"):
        spearman_change(before, after[:-1], gold)


def test_held_out_pairs_are_fixed_disjoint_and_never_trained_on():
    pairs = load_stsb("train")
    kept, held = split_heldout(pairs, 0.2)
    assert len(held) == 1150 and len(kept) == 4599
    assert {id(p) for p in kept}.isdisjoint(id(p) for p in held)
    assert [p for p in pairs if any(p is h for h in held)] == held  # file order
    trained = {sentence for p in kept for sentence in (p.sentence1, p.sentence2)}
    assert not any(p.sentence1 in trained or p.sentence2 in trained for p in held)
    settings = ["data.sts_heldout=0.2", "model.dim=16", "model.n_heads=1", "model.n_layers=1"]
    for seed in (0, 1):  # the same split whatever the run's seed
        spec = apply_overrides("sts", load_preset("sts", "tiny"), [*settings, f"train.seed={seed}"])
        task, model, _ = build_run("sts", spec)
        encode = task._encode
        assert task.train_dataset == list(
            zip(
                encode([p.sentence1 for p in kept]),
                encode([p.sentence2 for p in kept]),
                [p.score for p in kept],
                strict=True,
            )
        )
        assert task.eval_sets["heldout/"] == (
            encode([p.sentence1 for p in held]),
            encode([p.sentence2 for p in held]),
            [p.score for p in held],
        )
        metrics = task.evaluate(model.eval())
        assert metrics["heldout/pairs"] == 1150 and metrics["pairs"] == 1500
        assert -100 <= metrics["heldout/spearman"] <= 100


def test_the_sts_task_trains_on_the_papers_loss(bert):
    spec = apply_overrides(
        "sts", load_preset("sts", "tiny"), ["data.sts_loss=pearson", "train.batch_size=8"]
    )
    task, model, _ = build_run("sts", spec)
    items = task.train_dataset[:8]
    batch = task.collate(items)
    loss, _ = task.loss(model, batch)
    cosine = (
        model(batch["a_ids"], attention_mask=batch["a_mask"])
        * model(batch["b_ids"], attention_mask=batch["b_mask"])
    ).sum(-1)
    assert loss.item() == pytest.approx(pearson_loss(cosine, batch["targets"]).item(), abs=1e-6)
    with pytest.raises(ValueError, match="unknown sts_loss='mse'"):
        run_config("sts", "tiny", ["data.sts_loss=mse"])
    with pytest.raises(ValueError, match=r"sts_heldout is the fraction .* \[0, 1\); got 1.0"):
        run_config("sts", "tiny", ["data.sts_heldout=1"])


def test_infonce_is_symmetric_cross_entropy_with_the_model_temperature():
    spec = load_preset("nli-sts", "tiny")
    task, model, _ = build_run("nli-sts", spec)
    batch = task.collate(task.train_dataset[:6])
    loss, tokens = task.loss(model, batch)
    a = model(batch["a_ids"], attention_mask=batch["a_mask"])
    b = model(batch["b_ids"], attention_mask=batch["b_mask"])
    logits = a @ b.T / 0.05
    labels = torch.arange(6)
    expected = (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.T, labels)
    ) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.log_temperature.grad is not None and model.log_temperature.grad != 0
    assert tokens == int(batch["a_mask"].sum() + batch["b_mask"].sum())


def test_hard_negatives_come_from_the_same_premise():
    spec = apply_overrides("nli-sts", load_preset("nli-sts", "tiny"), ["data.hard_negatives=true"])
    task, model, _ = build_run("nli-sts", spec)
    records = {(r.premise, r.hypothesis, r.label) for f in ("dev", "test") for r in load_nli(f)}
    for premise, entailed, negative in task.triples[:50]:
        assert (premise, entailed, "entailment") in records
        assert (premise, negative, "contradiction") in records
    batch = task.collate(task.train_dataset[:4])
    assert {"a_ids", "b_ids", "n_ids"} <= batch.keys()
    loss, _ = task.loss(model, batch)  # premise-to-hypothesis over 2B candidates
    assert torch.isfinite(loss)


@pytest.mark.parametrize("task", ["nli-sts", "sts", "distill"])
def test_tiny_sentence_runs(task, tmp_path, monkeypatch):
    monkeypatch.setenv("PETRA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / task
    assert main(["train", task, "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["pairs"] == 1500 and metrics["train_pairs"] > 0
    assert -100 <= metrics["spearman"] <= 100 and -100 <= metrics["pearson"] <= 100
    if task == "distill":  # teacher vectors were cached
        assert len(list((tmp_path / "cache").glob("teacher-*.npy"))) == 1


def test_eval_sts_on_any_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "sts", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    rows = tmp_path / "small.csv"
    rows.write_text(
        "".join(
            f"g\ts\ty\t{i}\t{i % 6}.0\tsentence {i}\tanother sentence {i % 3}\n" for i in range(20)
        )
    )
    assert (
        main(
            [
                "eval",
                "sts",
                "--preset",
                "tiny",
                "--checkpoint",
                str(out / "model"),
                "--file",
                str(rows),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 20 and {"spearman", "pearson"} <= result.keys()


def test_compare_writes_results_table_and_plots(tmp_path, capsys):
    out = tmp_path / "compare"
    args = [
        "compare",
        "sts",
        "--preset",
        "tiny",
        "--kinds",
        "learned,fourier",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "results.json").read_text())
    assert len(summary["arms"]) == 4
    for arm in summary["arms"]:
        assert {
            "kind",
            "backbone",
            "seed",
            "params",
            "metrics",
            "wall_time_s",
            "checkpoint",
        } <= arm.keys()
        assert math.isfinite(arm["metrics"]["spearman"]) and (tmp_path / arm["checkpoint"]).exists()
    seeds = [a["metrics"]["spearman"] for a in summary["arms"] if a["kind"] == "fourier"]
    assert seeds[0] != seeds[1]  # the seeds differ, so the spread is real
    table = (out / "table.md").read_text()
    assert table.strip() == printed.strip()
    assert "| fourier | standard |" in table and "±" in table
    for plot in ("curves.png", "metric_vs_params.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 0  # a second call reuses the arms


def test_compare_refuses_an_arm_run_with_other_settings(tmp_path):
    args = ["compare", "sts", "--preset", "tiny", "--kinds", "fourier", "--out", str(tmp_path)]
    assert main([*args, "--quiet"]) == 0
    assert main([*args, "--quiet", "--set", "train.lr=0.01"]) == 2
