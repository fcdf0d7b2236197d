"""`petra reproduce`: the registry resolves to runnable presets, a quick run on the tiny
preset goes end to end for one claim of each paper (and a rerun reuses its runs), and the
report is written from the results alone."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest

from petra.cli import main
from petra.models import ModelConfig, build_model
from petra.reproduce import CLAIMS, analyses, get_claim, measures, reproduce, runner, stats
from petra.reproduce.claims import claim_arms
from petra.reproduce.runner import arm_overrides, layout
from petra.reproduce.stats import MARGIN_TESTS, verdict
from petra.tasks.run import TASKS, check_same_run, run_config

TINY = ["train.steps=2", "train.eval_every=2", "train.checkpoint_every=2", "train.log_every=1"]


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> dict[str, str]:
    """Slices of the real data sets, in their own formats, so that the end-to-end runs read
    and evaluate a few hundred rows instead of the whole sets: 300 Shakespeare paragraphs,
    64 STS-B dev rows, 600 SNLI dev rows."""
    from petra.data import resolve_data_dir

    data, folder = resolve_data_dir(), tmp_path_factory.mktemp("slices")
    paragraphs = (data / "corpus" / "shakespeare.txt").read_text().split("\n\n")
    (folder / "corpus.txt").write_text("\n\n".join(p for p in paragraphs[200:500]))
    rows = (data / "stsb" / "sts-dev.csv").read_text().splitlines(keepends=True)
    (folder / "sts.csv").write_text("".join(rows[:64]))
    lines = (data / "nli" / "snli_1.0_dev.jsonl").read_text().splitlines(keepends=True)
    (folder / "nli.jsonl").write_text("".join(lines[:600]))
    return {name: str(folder / name) for name in ("corpus.txt", "sts.csv", "nli.jsonl")}


def test_every_claim_names_its_paper_a_figure_and_what_differs():
    orders = [claim.order for claim in CLAIMS.values()]
    assert sorted(orders) == list(range(1, len(CLAIMS) + 1))
    for claim in CLAIMS.values():
        assert claim.paper and claim.where and claim.paper_figure and claim.differences
        assert claim.paper_scale, claim.id
        assert bool(claim.measure) != bool(claim_arms(claim)), claim.id
        assert claim.measure is None or callable(getattr(measures, claim.measure))
        assert claim.analysis is None or callable(getattr(analyses, claim.analysis))
        labels = {arm.label for arm in claim_arms(claim)}
        for comparison in claim.comparisons:
            assert comparison.better in ("higher", "lower")
            assert (comparison.test in MARGIN_TESTS) == (comparison.margin is not None)
            # the test's settings are valid (verdict refuses a bad test, better or margin)
            verdict(None, None, comparison.better, comparison.test, comparison.margin)
            if not claim.measure:
                compared = {comparison.a, comparison.b, *(comparison.minus or ())}
                assert compared <= labels, (claim.id, comparison.name)
        for plot in claim.plots:
            assert set(plot.get("arms", plot.get("x", {}))) <= labels, claim.id


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS.values() if c.arms])
@pytest.mark.parametrize("quick", [False, True])
def test_every_arm_resolves_to_a_preset_whose_model_builds(claim_id, quick, bert, gpt2):
    claim = get_claim(claim_id)
    for arm in claim.arms:
        if arm.init_from is not None:  # its model is the one it starts from
            assert claim.arm(arm.init_from).task == "nli-sts"
            continue
        changes = arm_overrides(arm, 0, Path("r"), claim, quick, [])
        config = run_config(arm.task, arm.preset, changes=changes)
        tokenizer = gpt2 if config["data"].get("tokenizer") == "gpt2" else bert
        model_type = TASKS[arm.task][0].model_type
        fields = {"model": model_type, "vocab_size": tokenizer.get_vocab_size(), "num_labels": 4}
        model = build_model(
            ModelConfig.from_dict({**config["model"], **fields}), tokenizer=tokenizer
        )
        assert model.config.dim == config["model"]["dim"]


def test_table2_sizes_are_near_the_papers_counts(bert):
    paper = {"58k": 58_000, "396k": 396_000, "1.58M": 1_580_000, "3.68M": 3_680_000}
    claim = get_claim("pete-sts-finetune")
    for size, count in paper.items():
        arm = claim.arm(f"fourier-{size}-nli")
        config = run_config(arm.task, arm.preset, changes=list(arm.overrides.items()))
        fields = {"model": "sentence", "vocab_size": bert.get_vocab_size()}
        model = build_model(ModelConfig.from_dict({**config["model"], **fields}), tokenizer=bert)
        total = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert abs(total / count - 1) < 0.05, (size, total)


def test_unknown_claims_and_bad_settings_are_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown claim 'pete'"):
        reproduce(["pete"], tmp_path)
    with pytest.raises(ValueError, match="--seeds must be at least 1"):
        reproduce(["kronecker-lm-loss"], tmp_path, seeds=0)
    assert main(["reproduce", "kronecker-lm-loss", "--all", "--out", str(tmp_path)]) == 2
    assert "claim ids or --all" in capsys.readouterr().err
    # a setting that the first claim takes and the last refuses: nothing runs
    with pytest.raises(ValueError, match="block_size"):
        reproduce(
            ["kronecker-lm-loss", "ltransformer-agnews"], tmp_path, extra=["data.block_size=64"]
        )
    assert not any(tmp_path.iterdir())


def test_refusals_of_settings_that_do_not_apply(tmp_path):
    with pytest.raises(ValueError, match="measures models of its own protocol"):
        reproduce(["pete-step-time"], tmp_path, preset="tiny")
    with pytest.raises(ValueError, match="starts from the model of fourier-58k-nli"):
        reproduce(["pete-sts-finetune"], tmp_path, extra=["model.dropout=0.1"])
    with pytest.raises(ValueError, match="preset 'pete-paper' has no settings for task 'sts'"):
        reproduce(["pete-sts-finetune"], tmp_path, preset="pete-paper")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("claim_id", "item", "sets"),
    [
        ("kronecker-lm-loss", "model.embedding=qr", "arm learned-tied (learned, tied head "
         "(paper's baseline)) sets model.embedding=learned"),
        ("kronecker-lm-loss", "model.embedding.kind=qr", "sets model.embedding=learned"),
        ("kronecker-lm-loss", 'model.embedding={"kind": "qr"}', "sets model.embedding=learned"),
        ("kronecker-spelling", "model.tie_embeddings=true", "arm learned-untied (learned, "
         "untied head (control)) sets model.tie_embeddings=false"),
        ("ltransformer-imdb", "model.backbone=spectral", "arm standard (standard encoder) sets "
         "model.backbone=standard"),
        ("ltransformer-imdb", "model.slices=2", "arm p2 (p=2, DCT, no scaling) sets "
         "model.slices=2"),
        ("ltransformer-imdb", "model.freq_scaling=decay", "arm p4-decay"),
        ("pete-sts-zero-shot", "model.embedding.refine_bias=false", "arm fourier-1x256 "
         "(Fourier, 1 layer, d=256) sets model.embedding.refine_bias=true"),
        ("pete-sts-zero-shot", "model.embedding.factor_dim=4", "arm learned-budget-1x256"),
        ("pete-sts-zero-shot", "model.dim=128", "arm learned-1x256 (learned, 1 layer, d=256) "
         "sets model.dim=256"),
    ],
)  # fmt: skip
def test_a_setting_that_defines_the_arms_is_refused(claim_id, item, sets):
    """--set of what an arm is (its kind, head, backbone, p, size) would run other arms than
    those the report names (refused by the check `reproduce` makes before anything runs)."""
    with pytest.raises(ValueError) as refused:
        runner.check_claim(get_claim(claim_id), True, None, [item])
    message = str(refused.value)
    assert message.startswith(f"{claim_id}: --set {item} changes what defines its arms (")
    assert f"{sets}" in message and "the report would name arms that did not run" in message


def test_settings_the_arms_leave_alone_are_taken_and_named_in_the_arm_descriptions():
    runner.check_claim(get_claim("ltransformer-imdb"), False, None, ["model.dim=768"])
    runner.check_claim(get_claim("kronecker-lm-loss"), True, "tiny", ["model.n_layers=1"])
    arm = get_claim("kronecker-lm-loss").arm("kronecker-untied")
    assert runner.arm_description(arm, []) == "Kronecker, untied head (paper's arm)"
    assert runner.arm_description(arm, ["model.n_layers=1", "train.lr=0.01"]) == (
        "Kronecker, untied head (paper's arm) (with --set model.n_layers=1, --set train.lr=0.01)"
    )


def test_a_run_is_the_same_run_however_its_settings_are_spelled(tmp_path):
    """A finished arm is reused when its effective settings are the same (a preset's value
    given again with --set), and refused when one differs."""
    (tmp_path / "config.json").write_text(json.dumps(run_config("lm", "tiny", ["train.seed=1"])))
    same = run_config(
        "lm", "tiny", ["model.embedding=learned", "data.tokenizer=gpt2", "train.seed=1"]
    )
    check_same_run(tmp_path, same, "")
    with pytest.raises(ValueError, match="describes another run"):
        check_same_run(tmp_path, run_config("lm", "tiny", ["train.seed=2"]), "")


def _quick(claim_ids, out, extra=()):
    return reproduce(
        claim_ids, out, quick=True, preset="tiny", extra=[*TINY, *extra], progress=False
    )


def _results(path) -> dict:
    return json.loads(Path(path).read_text())


def test_a_kept_retrieval_result_is_keyed_by_the_analysis_too(monkeypatch, tmp_path):
    """The typographic analysis keeps each run's probe result under `typographic_key`, which
    names the k's it measures: a result kept before @10 was measured is not read as one
    with it (the bug: the key held the probe's code alone)."""
    from petra.reproduce import analyses

    used = []
    monkeypatch.setattr(analyses, "_cached", lambda run, name, compute, key: used.append(key) or {})
    arms = {"learned-tied": {"per_seed": {}}}
    analyses.typographic(arms, {"learned-tied": {0: tmp_path}}, [0], quick=True)
    assert used == [analyses.typographic_key()]
    monkeypatch.setattr(analyses, "TYPOGRAPHIC_K", (5,))
    assert analyses.typographic_key() != used[0]


def test_the_category_count_has_a_seed_noise_reference_and_a_pooled_count():
    """Against itself at another seed an arm ties every category when its seeds agree, and
    wins all or none when one seed is uniformly ahead; pooling counts the pairs kept over the
    seeds (an integer: equal counts tie exactly) and averages the other means."""
    from petra.probes.spelling import BETTER

    def summary(rate):
        row = {**dict.fromkeys(BETTER, rate), "pairs": 10}
        return {"paper": {"per_category": {f"c{i}": row for i in range(11)}}}

    summaries = {
        "same": {0: summary(0.5), 1: summary(0.5)},
        "apart": {0: summary(0.5), 1: summary(0.6)},
    }
    note = analyses._seed_noise(summaries, [0, 1])
    assert "in 3 of 4 ordered seed pairs (2 unordered;" in note and "counts [0, 11, 11, 11]" in note
    pooled = analyses._pooled(summaries["apart"], "paper")["per_category"]
    assert pooled.keys() == summary(0)["paper"]["per_category"].keys()
    for row in pooled.values():
        assert row.pop("top1_agreement") == 5 + 6  # pairs kept over both seeds
        assert all(v == pytest.approx(0.55) for v in row.values())
    # 0.7 and 0.9 against 0.8 twice: 16 kept pairs each, a tie (averaged floats need not be)
    uneven = {0: summary(0.7), 1: summary(0.9)}, {0: summary(0.8), 1: summary(0.8)}
    ours, theirs = (analyses._pooled(by_seed, "paper") for by_seed in uneven)
    assert (
        ours["per_category"]["c0"]["top1_agreement"]
        == 16
        == theirs["per_category"]["c0"]["top1_agreement"]
    )


def test_quick_kronecker_claims_end_to_end_then_reuse(tmp_path, slices):
    """The LM claim and the three claims that analyse its models, on the tiny preset; a rerun
    reuses every run (nothing is trained or probed again)."""
    ids = [
        "kronecker-lm-loss",
        "kronecker-spelling",
        "kronecker-norm-drift",
        "kronecker-typographic-clusters",
    ]
    corpus = [f"data.corpus={slices['corpus.txt']}"]
    paths = _quick(ids, tmp_path, corpus)
    runs, results_dir = layout(tmp_path, quick=True)
    assert [p.name for p in paths] == [f"{i}.json" for i in ids]
    lm = _results(paths[0])
    assert lm["quick"] and lm["seeds"] == [0]
    assert set(lm["arms"]) == {"learned-tied", "kronecker-untied", "learned-untied", "ngram-untied"}
    assert lm["arms"]["learned-untied"]["params"]["head_tied"] is False
    for arm in lm["arms"].values():
        losses = [loss for _, loss in arm["curves"]["0"]["eval/loss"]]
        assert arm["per_seed"]["0"]["loss"] == losses[-1]
    target = lm["arms"]["learned-tied"]["per_seed"]["0"]["loss"]
    for arm in lm["arms"].values():  # the first evaluated step at or below the target
        steps = [s for s, loss in arm["curves"]["0"]["eval/loss"] if loss <= target]
        row = arm["per_seed"]["0"]
        assert row["steps_to_target"] == (steps[0] if steps else 2 + 2)  # censored: steps + 2
        assert row["target_reached"] == bool(steps)
    spelling = _results(paths[1])
    for comparison in spelling["comparisons"]:  # every compared metric, in both arms
        for label in (comparison["a"], comparison["b"]):
            assert isinstance(spelling["arms"][label]["per_seed"]["0"][comparison["metric"]], float)
    ours = spelling["arms"]["kronecker-untied"]["per_seed"]["0"]
    assert ours["paper/pairs"] == 55  # a quick look's pairs
    assert ours["brown-inside/pairs"] == ours["brown/pairs"] == 50
    for pairs in ("paper", "brown-inside", "brown"):
        assert 0 <= ours[f"{pairs}/top1_agreement_pct"] <= 100 and ours[f"{pairs}/kl_mean"] >= 0
        for control in ("tied", "untied", "ngram"):
            assert 0 <= ours[f"{pairs}/categories_won_or_tied_vs_{control}"] <= 11
    (note,) = [n for n in spelling["notes"] if "paper pairs, Kronecker vs learned (untied)" in n]
    assert "categories won-tied-lost of 11: top-1 agreement " in note  # every category kept
    (check,) = spelling["checks"]  # the paper's count, on its pairs against the tied table
    assert check["value"] == ours["paper/categories_won_or_tied_vs_tied"]
    assert check["holds"] == (check["value"] >= 10)
    norms = _results(paths[2])
    drift = norms["arms"]["kronecker-untied"]["per_seed"]["0"]
    assert drift["row_norm_drift_pct"] == pytest.approx(
        100 * abs(drift["row_norm_final"] / drift["row_norm_start"] - 1)
    )
    assert drift["row_norm_start"] == pytest.approx(1.0, abs=0.05)  # N(0, 1/sqrt(D)) rows
    for label in ("learned-tied", "learned-untied"):  # the table is the matrix: the vectors
        row = norms["arms"][label]["per_seed"]["0"]  # read are its training split's rows
        assert row["consumed_norm_start"] == pytest.approx(row["row_norm_start"], rel=0.2)
        assert row["consumed_norm_drift_pct"] == pytest.approx(
            100 * abs(row["consumed_norm_final"] / row["consumed_norm_start"] - 1)
        )
    (check,) = norms["checks"]  # the band, on the Kronecker projection, one per seed
    assert check["holds"] == (check["value"] <= 0.10)
    controls = {"learned-tied", "learned-untied", "ngram-untied"}
    assert {c["b"] for c in norms["comparisons"]} == controls
    typographic = _results(paths[3])
    compared = {c["metric"] for c in typographic["comparisons"]}
    assert compared == {"typographic_at_10_pct", "typographic_at_10_pct_gain"}  # and its change
    for label in ("learned-tied", "kronecker-untied"):  # step 0 rebuilt and checked
        row = typographic["arms"][label]["per_seed"]["0"]
        for k in (5, 10):  # the cross-model output's k, and Table 10's
            assert row[f"typographic_at_{k}_pct_gain"] == pytest.approx(
                row[f"typographic_at_{k}_pct"] - row[f"init/typographic_at_{k}_pct"]
            )
            assert 0 <= row[f"typographic_at_{k}_pct"] <= 100
        # ten neighbours hold the five nearest: as many variants as a fraction of 10, at
        # least half of @5's fraction
        assert row["typographic_at_10_pct"] >= row["typographic_at_5_pct"] / 2 - 1e-9
    # a random table retrieves no variant; the byte code at step 0 a few ("Running" for
    # "running": 6 of 7 bytes in place)
    assert typographic["arms"]["learned-tied"]["per_seed"]["0"]["init/typographic_at_5_pct"] == 0
    assert typographic["arms"]["kronecker-untied"]["per_seed"]["0"]["init/typographic_at_5_pct"] > 0
    assert "smollm2-135m" not in typographic["arms"]  # a quick look probes no public model
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("results.json")}
    probes = {p: p.stat().st_mtime_ns for p in runs.rglob("spelling-sets.json")}
    assert len(stamps) == 4 and len(probes) == 4
    _quick(ids, tmp_path, corpus)
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("results.json")} == stamps
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("spelling-sets.json")} == probes
    with pytest.raises(ValueError, match="describes another run"):
        _quick(["kronecker-lm-loss"], tmp_path, [*corpus, "train.lr=0.01"])
    # a fresh checkout holds the committed records only: every run and probe result is
    # restored from them, nothing trains or loads a model, and the results are the same
    records = runner.records_root(tmp_path, quick=True) / "kronecker-lm-loss"
    assert sorted(p.name for p in records.iterdir()) == sorted(p.parent.name for p in stamps)
    assert not any(records.rglob("*.safetensors")) and not any(records.rglob("model"))
    before = [_results(p) for p in paths]
    shutil.rmtree(runs)
    again = [_results(p) for p in _quick(ids, tmp_path, corpus)]
    for first, second in zip(before, again, strict=True):
        for key in ("arms", "comparisons", "checks", "notes"):
            assert second[key] == first[key]
    assert not any(runs.rglob("model")) and len(list(runs.rglob("restored.json"))) == 4
    # a record of other settings is refused, named, before anything is copied or trained
    shutil.rmtree(runs)
    with pytest.raises(ValueError, match="delete the record .*learned-tied-seed0"):
        _quick(["kronecker-lm-loss"], tmp_path, [*corpus, "train.lr=0.01"])
    assert not any(runs.rglob("*.json"))


def test_runs_that_start_from_another_s_model_are_never_restored():
    """A record has no model: Table 2's fine-tuning runs and the NLI runs they start from
    train again on a fresh checkout; Table 1's runs, which stand alone, are restored."""
    for claim_id, restorable in (("pete-sts-finetune", False), ("pete-sts-zero-shot", True)):
        claim = get_claim(claim_id)
        plan = runner._Plan(claim, claim, Path("r"), Path("p"), False, None, [], False)
        assert {plan.restorable(arm) for arm in claim.arms} == {restorable}


def test_a_setting_given_is_not_chosen():
    """--set of a chosen setting fixes it (the paper's lr with its preset), and the quick
    budget fixes the training length."""
    table1, table2 = get_claim("pete-sts-zero-shot"), get_claim("pete-sts-finetune")
    nli, sts = table1.arm("fourier-1x256"), table2.arm("fourier-58k")
    lrs = [(("train.lr", lr),) for lr in (0.0001, 0.0003, 0.001, 0.003)]  # Table 1's own grid
    assert runner.arm_points(nli, runner.fixed_settings(table1, False, [])) == lrs
    assert len(runner.arm_points(table2.arm("fourier-58k-nli"), set())) == 3  # Table 2's NLI stage
    assert len(runner.arm_points(sts, runner.fixed_settings(table2, False, []))) == 6
    paper = ["train.lr=2e-05"]
    assert runner.arm_points(nli, runner.fixed_settings(table1, False, paper)) == [()]
    changes = arm_overrides(nli, 0, Path("r"), table1, False, paper, preset="pete-paper")
    config = run_config(nli.task, "pete-paper", changes=changes)
    assert config["train"]["lr"] == 2e-05 and config["train"]["steps"] == 122700
    quick = runner.fixed_settings(table2, True, [])
    assert runner.arm_points(sts, quick) == [
        (("train.lr", 2e-05),),
        (("train.lr", 0.0001),),
        (("train.lr", 0.0005),),
    ]  # the quick budget's train.steps, not the grid's epochs
    assert runner.point_name(runner.arm_points(sts, set())[1]) == "lr=2e-05,steps=568"


def test_quick_pete_finetune_chooses_on_held_out_data_and_starts_from_the_chosen_nli_model(
    tmp_path, slices, monkeypatch
):
    """Each arm's grid is swept on seed 0 and the point best on the held-out pairs kept; each
    sts run starts from its NLI arm's run at that arm's chosen point; the sweep is in the
    results; a --set of a chosen setting is refused. (Table 2's smallest size and its
    baseline, each grid cut to two points, to keep the test short.)"""
    data = [
        f"data.{key}={slices[name]}"
        for key, name in (
            ("sts_eval", "sts.csv"),
            ("sts_train", "sts.csv"),
            ("nli_files", "nli.jsonl"),
        )
    ]
    table2 = get_claim("pete-sts-finetune")
    kept = {"fourier-58k", "learned-bert-tiny"}
    arms = tuple(
        dataclasses.replace(arm, grid={"train.lr": arm.grid["train.lr"][:2]} if arm.grid else {})
        for arm in table2.arms
        if arm.label.removesuffix("-nli") in kept
    )
    labels = {arm.label for arm in arms}
    claim = dataclasses.replace(
        table2,
        id="pete-sts-finetune-cut",
        arms=arms,
        comparisons=tuple(c for c in table2.comparisons if {c.a, c.b} <= labels),
        plots=(),
    )
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    (path,) = _quick([claim.id], tmp_path, [*data, "train.batch_size=8"])
    runs = layout(tmp_path, quick=True)[0] / claim.id
    result = _results(path)
    assert set(result["arms"]) == labels and result["selection"]["metric"] == "heldout/pearson"
    for label in kept:
        nli, sts = result["arms"][f"{label}-nli"], result["arms"][label]
        for arm in (nli, sts):
            sweep = arm["selection"]
            values = {tuple(p["settings"]): p["value"] for p in sweep["points"]}
            assert len(values) == 2 and values[tuple(sweep["chosen"])] == max(values.values())
            assert set(sweep["chosen"]) <= set(arm["overrides"])
            assert all("train/loss" in p["curves"] for p in sweep["points"])
        nli_point = ",".join(item.split(".", 1)[1] for item in nli["selection"]["chosen"])
        sts_point = ",".join(item.split(".", 1)[1] for item in sts["selection"]["chosen"])
        config = json.loads((runs / f"{label}@{sts_point}-seed0" / "config.json").read_text())
        start = runs / f"{label}-nli@{nli_point}-seed0" / "model"
        assert config["train"]["init"] == str(start)
        assert config["data"]["sts_loss"] == "pearson" and config["data"]["sts_heldout"] == 0.2
        assert config["model"]["dim"] == json.loads((start / "config.json").read_text())["dim"]
        assert {"pearson", "spearman", "heldout/spearman"} <= set(sts["per_seed"]["0"])
        assert "train/loss" in sts["curves"]["0"]
    report = tmp_path / "REPORT.md"
    assert main(["reproduce", "--report", str(path.parent), "--to", str(report)]) == 0
    assert "### Settings chosen on held-out data" in report.read_text()


def test_quick_ltransformer_claim_and_its_report(tmp_path):
    (path,) = _quick(["ltransformer-agnews"], tmp_path)
    result = _results(path)
    for dim in (512, 768):  # the paper's parity width, and petra's own
        p4 = result["arms"][f"p4-{dim}"]
        assert {"model.backbone=spectral", f"model.dim={dim}"} <= set(p4["overrides"])
        assert p4["params"]["encoder"] < result["arms"][f"standard-{dim}"]["params"]["encoder"] / 3
    p4 = result["arms"]["p4-512"]
    report = tmp_path / "REPORT.md"
    assert main(["reproduce", "--report", str(path.parent), "--to", str(report)]) == 0
    text = report.read_text()
    assert "quick first look" in text and "p=4 vs standard, d=512 (parity: petra's own)" in text
    assert "| small drop: a trails b by less than 2" in text  # d=256, the paper's small drop
    # parity at d=768 read with the baseline's own change from d=256 to d=768, and the
    # paper's reading as a whole: the drop at d=256 closing at d=768, a contrast of gaps
    parity, whole = result["joint"]
    assert parity["comparisons"][0] == "p=4 vs standard, d=768"
    assert "parity at d=768, the wider baseline at most 1 point below the narrower" in text
    assert whole["comparisons"][2].startswith("the gap closes with width")
    assert "c = `p4-256`, d = `standard-256`: (a − b) − (c − d)" in text
    assert "petra reproduce ltransformer-agnews --seeds 1 --quick --preset tiny" in text
    given = ", ".join(f"--set {item}" for item in TINY)
    assert p4["description"] == f"p=4, d=512 (with {given})"
    assert f"| `p4-512` | p=4, d=512 (with {given}) |" in text


def test_list_names_every_claim(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    assert all(claim_id in printed for claim_id in CLAIMS)


def test_a_kept_value_is_reused_under_its_key_redone_under_another_and_damage_is_named(
    tmp_path, capsys
):
    """`analyses.cached`, behind the kept probe results and the measurements: the file holds
    the key's entries and the value; a changed entry computes again; a damaged file is
    named, not silently redone."""
    path, calls = tmp_path / "probe.json", []

    def compute(value=1.5):
        calls.append(value)
        return {"metric": value}

    key = {"code": "abc", "pairs": "def"}
    assert analyses.cached(path, key, compute, "a probe", "value", reused="kept") == {"metric": 1.5}
    assert json.loads(path.read_text()) == {**key, "value": {"metric": 1.5}}
    assert capsys.readouterr().out == ""
    assert analyses.cached(path, key, lambda: compute(2.0), "a probe", reused="kept") == {
        "metric": 1.5
    }  # not computed again
    assert calls == [1.5] and capsys.readouterr().out == "kept\n"
    changed = {**key, "code": "xyz"}
    assert analyses.cached(path, changed, lambda: compute(2.0), "a probe") == {"metric": 2.0}
    assert calls == [1.5, 2.0] and json.loads(path.read_text())["code"] == "xyz"
    path.write_text('{"code": "xyz", "val')  # killed while writing by hand, or edited
    with pytest.raises(ValueError, match=r"probe.json \(a probe\) is damaged.*delete it"):
        analyses.cached(path, changed, compute, "a probe")
    assert calls == [1.5, 2.0]


def test_kept_probe_results_and_measurements_of_the_files_layouts_are_reused(
    tmp_path, monkeypatch, capsys
):
    """A probe result kept as `{"key": ..., "value": ...}` and a measurement kept as
    `{"repeats", "quick", "code", "measured"}` (the files of earlier runs) are read back,
    not computed again; a damaged probe result is named."""

    def refuse(**_):
        raise AssertionError("computed again")

    key = {"code": "abc"}
    (tmp_path / "retrieval.json").write_text(json.dumps({"key": key, "value": {"top": 3}}))
    assert analyses._cached(tmp_path, "retrieval", refuse, key) == {"top": 3}
    (tmp_path / "retrieval.json").write_text("{")
    with pytest.raises(ValueError, match=r"retrieval.json \(a kept retrieval probe result\)"):
        analyses._cached(tmp_path, "retrieval", refuse, key)

    def timed(repeats, quick):
        return {"arms": {}, "repeats": repeats}

    monkeypatch.setattr(runner, "_function", lambda module, name: timed)
    claim = dataclasses.replace(get_claim("pete-step-time"), measure="timed")
    # keyed by the function's own source only, a kept measurement outlived a change of the
    # helpers that write its notes: it is measured again
    alone = {"repeats": 2, "quick": True, "code": analyses.source_digest(timed), "measured": 1}
    (tmp_path / "measurement.json").write_text(json.dumps(alone))
    assert runner._measurement(claim, tmp_path, 2, True) == {"arms": {}, "repeats": 2}
    code = analyses.source_digest(sys.modules[timed.__module__], stats)
    kept = {"repeats": 2, "quick": True, "code": code, "measured": {"k": 1}}
    (tmp_path / "measurement.json").write_text(json.dumps(kept))
    assert runner._measurement(claim, tmp_path, 2, True) == {"k": 1}
    assert "measured before" in capsys.readouterr().out
    assert runner._measurement(claim, tmp_path, 3, True) == {"arms": {}, "repeats": 3}
    assert json.loads((tmp_path / "measurement.json").read_text()) == {
        **kept, "repeats": 3, "measured": {"arms": {}, "repeats": 3}
    }  # fmt: skip
    assert list(json.loads((tmp_path / "measurement.json").read_text())) == list(kept)


def test_a_floor_is_refused_where_higher_is_better():
    """A baseline at the floor of a lower-is-better metric cannot be beaten (not testable);
    at the floor of a higher-is-better one it can, so a floor there is a registry mistake."""
    from petra.reproduce.claims import Comparison

    kept = Comparison("at zero", "typographic_pct", "kronecker", "learned", "lower", floor=0.0)
    assert kept.floor == 0.0
    with pytest.raises(ValueError, match="only where lower is better"):
        Comparison("at zero", "accuracy", "kronecker", "learned", "higher", floor=0.0)


def test_a_run_that_diverged_is_recorded_and_not_trained_again_on_a_fresh_checkout(
    tmp_path, monkeypatch
):
    """A run that diverges leaves a record (its settings and `diverged.json`); on a fresh
    checkout (no run folders) the same settings get the divergence from the record without
    training, and other settings are refused, naming the record."""
    from petra.reproduce import records
    from petra.training.trainer import TrainingDiverged

    agnews = get_claim("ltransformer-agnews")
    arm = dataclasses.replace(
        agnews.arms[0], overrides={**agnews.arms[0].overrides, "train.lr": 1e30}
    )
    claim = dataclasses.replace(
        agnews, id="diverging", arms=(arm,), comparisons=(), joint=(), plots=()
    )
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    with pytest.raises(TrainingDiverged) as first:
        _quick([claim.id], tmp_path)
    runs = layout(tmp_path, quick=True)[0] / claim.id
    (run,) = runs.iterdir()
    record = runner.records_root(tmp_path, quick=True) / claim.id / run.name
    kept = json.loads((record / records.DIVERGED).read_text())
    assert kept["error"] == str(first.value) and (record / "config.json").is_file()
    shutil.rmtree(runs)  # a fresh checkout: the records only
    with pytest.raises(TrainingDiverged) as again:
        _quick([claim.id], tmp_path)
    assert str(again.value) == str(first.value)  # the same error, so the results read alike
    assert not (runs / run.name).exists()  # nothing trained
    with pytest.raises(ValueError, match=f"delete the record {record}"):
        _quick([claim.id], tmp_path, ["train.batch_size=4"])


def test_a_diverged_record_gives_way_to_a_finished_run_and_needs_its_settings(tmp_path):
    """A record of a divergence answers only while the run's folder has not finished; once
    it has (trained again by hand, say), keeping its record drops the stale `diverged.json`.
    A run with no config.json leaves no record of its divergence (nothing to check it by)."""
    from petra.reproduce import records

    run, record = tmp_path / "run", tmp_path / "record"
    run.mkdir()
    (run / "config.json").write_text('{"train": {"lr": 1e30}}\n')
    records.keep_diverged(run, record, "the loss is nan at step 2")
    assert records.diverged(record, run) == "the loss is nan at step 2"
    (run / "results.json").write_text('{"metrics": {}}\n')
    assert records.diverged(record, run) is None
    records.keep(run, record)
    assert sorted(path.name for path in record.iterdir()) == ["config.json", "results.json"]
    bare, elsewhere = tmp_path / "bare", tmp_path / "elsewhere"
    bare.mkdir()
    records.keep_diverged(bare, elsewhere, "the loss is nan")
    assert not elsewhere.exists()
