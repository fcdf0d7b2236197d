"""The reproduction report: Student-t intervals and verdicts checked by hand, and the Markdown
and plots written from hand-made results files (tests/fixtures/reproduce)."""

import dataclasses
import itertools
import json
import math
import re
import shutil
import statistics
import types
from pathlib import Path

import pytest
from scipy.stats import t as student_t

from petra.reproduce.report import format_report, load_results, write_report
from petra.reproduce.stats import (
    OPPOSITE,
    PAPER_INSIDE,
    PAPER_OUTSIDE,
    SAME,
    UNRESOLVED,
    VERDICT_RULE,
    detectable_difference,
    direction,
    interval,
    joint_verdict,
    paired_differences,
    repeats_for_power,
    threshold,
    verdict,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reproduce"
# Student-t quantiles in closed form, p = 0.975 (95% two-sided):
# 1 degree of freedom is the Cauchy distribution, t = tan(pi (p - 1/2)); two seeds
T_1 = math.tan(math.pi * 0.475)  # 12.7062047...
# 2 degrees of freedom, t = (2p - 1) sqrt(2 / (4 p (1 - p))); three seeds
T_2 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))  # 4.3026527...


@pytest.fixture
def results_dir(tmp_path):
    """A copy of the fixture results, so that the default plots folder (beside the results)
    lies in tmp_path."""
    return Path(shutil.copytree(FIXTURES, tmp_path / "results"))


# ---------------------------------------------------------------- stats


def test_interval_by_hand():
    assert T_2 == pytest.approx(4.30265273, abs=1e-8) and T_1 == pytest.approx(12.70620474)
    assert student_t.ppf(0.975, [1, 2]) == pytest.approx([T_1, T_2], rel=1e-12)
    mean, low, high = interval([1.0, 2.0, 3.0])
    # mean 2, sd 1 (n - 1), half-width t * 1 / sqrt(3) = 2.4841...
    half = T_2 / math.sqrt(3)
    assert half == pytest.approx(2.4841, abs=1e-4)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)
    # two values: sd |x - y| / sqrt(2), half-width t_{0.975,1} * sd / sqrt(2) = t * |x - y| / 2
    assert interval([0.02, 0.03]) == pytest.approx(
        (0.025, 0.025 - T_1 * 0.005, 0.025 + T_1 * 0.005), rel=1e-9
    )
    # a wider level, a wider interval; identical values, an interval of width 0
    assert interval([1.0, 2.0, 3.0], level=0.99)[1] < low
    assert interval([4.0, 4.0]) == (4.0, 4.0, 4.0)


def test_repeats_for_power_at_one_half_is_the_half_width_by_hand():
    """At power 0.5 (its t quantile is 0) the repeats are those whose interval's half-width is
    the distance. sd 1: three values give the half-width T_2 / sqrt(3) exactly (so a hair
    above it takes 3, a hair below 4); sd 0 needs the fewest values that have an interval;
    bad input refused."""
    h = T_2 / math.sqrt(3)
    assert repeats_for_power(1.0, h * (1 + 1e-9), power=0.5) == 3
    assert repeats_for_power(1.0, h * (1 - 1e-9), power=0.5) == 4
    assert repeats_for_power(2.0, 2 * h * (1 + 1e-9), power=0.5) == 3  # scales with sd / h
    assert repeats_for_power(0.0, 0.1, power=0.5) == 2
    # large n: about (1.96 sd / h)^2, a little more for t's heavier tails
    assert 753 <= repeats_for_power(14.0, 1.0, power=0.5) <= 760
    for sd, half in ((-1.0, 1.0), (math.nan, 1.0), (1.0, 0.0), (1.0, math.inf)):
        with pytest.raises(ValueError, match="must be a finite number"):
            repeats_for_power(sd, half, power=0.5)


def test_detectable_difference_and_repeats_for_power_by_hand():
    """sd 1, three values: (t_{0.975, 2} + t_{0.8, 2}) / sqrt(3) = (4.3027 + 1.0607) / 1.7321
    = 3.0965; the repeats that reach a difference are the first n whose detectable difference
    is at most it (so a detectable difference of n values asks for n); large n: about
    ((1.96 + 0.8416) sd / d)^2, 1.96 being the interval's own precision term alone."""
    assert detectable_difference(1.0, 3) == pytest.approx(3.09651, abs=1e-5)
    assert detectable_difference(2.0, 3) == pytest.approx(2 * 3.0965, abs=1e-3)
    for n in (2, 3, 7, 24, 100):
        assert repeats_for_power(1.0, detectable_difference(1.0, n) * (1 + 1e-12)) == n
    normal = ((1.959964 + 0.841621) * 7.51 / 1.0) ** 2  # 442.6
    assert normal <= repeats_for_power(7.51, 1.0) <= normal + 5
    assert repeats_for_power(0.0, 0.1) == 2
    assert detectable_difference(1.0, 24) > 2.0687 / math.sqrt(24)  # above the half-width
    with pytest.raises(ValueError, match="n >= 2"):
        detectable_difference(1.0, 1)
    with pytest.raises(ValueError, match="must be a finite number"):
        repeats_for_power(1.0, 0.0)


def test_interval_of_one_value_has_no_ends():
    assert interval([3.5]) == (3.5, None, None)
    with pytest.raises(ValueError, match="at least one value"):
        interval([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        interval([1.0, 2.0], level=95)


def test_paired_differences_by_hand():
    assert paired_differences([3.0, 1.0], [1.0, 1.5], relative=False) == [2.0, -0.5]
    # 100 * (4.9 / 5 - 1) = -2, 100 * (3.92 / 4 - 1) = -2, 100 * (4.85 / 5 - 1) = -3
    relative = paired_differences([4.9, 3.92, 4.85], [5.0, 4.0, 5.0], relative=True)
    assert relative == pytest.approx([-2.0, -2.0, -3.0], abs=1e-12)
    assert paired_differences([0.6], [0.5], relative=True) == pytest.approx([20.0])
    with pytest.raises(ValueError, match="got 2 values for a and 1 for b"):
        paired_differences([1.0, 2.0], [1.0], relative=False)
    with pytest.raises(ValueError, match="relative=False"):
        paired_differences([1.0], [0.0], relative=True)
    with pytest.raises(ValueError, match="must be positive"):  # -6 vs -5 is not +20 %
        paired_differences([-6.0], [-5.0], relative=True)


@pytest.mark.parametrize(
    ("low", "high", "better", "test", "margin", "expected"),
    [
        # superior, higher is better: against 0
        (0.1, 0.5, "higher", "superior", None, "holds"),
        (-0.5, -0.1, "higher", "superior", None, "does not hold"),
        (-0.1, 0.5, "higher", "superior", None, "inconclusive"),
        (0.0, 0.5, "higher", "superior", None, "inconclusive"),  # touching 0 is not beyond it
        # superior, lower is better
        (-0.5, -0.1, "lower", "superior", None, "holds"),
        (0.1, 0.5, "lower", "superior", None, "does not hold"),
        (-0.1, 0.1, "lower", "superior", None, "inconclusive"),
        # non-inferior, higher is better: against -m
        (-0.9, 0.5, "higher", "non_inferior", 1.0, "holds"),
        (-3.0, -1.1, "higher", "non_inferior", 1.0, "does not hold"),
        (-1.5, 0.5, "higher", "non_inferior", 1.0, "inconclusive"),
        (-0.5, -0.2, "higher", "non_inferior", 1.0, "holds"),  # worse than b, within the margin
        # non-inferior, lower is better: against +m
        (-0.5, 0.9, "lower", "non_inferior", 1.0, "holds"),
        (1.1, 3.0, "lower", "non_inferior", 1.0, "does not hold"),
        (-0.5, 1.5, "lower", "non_inferior", 1.0, "inconclusive"),
        # a trails b (the paper has it so), higher is better: the interval below 0
        (-0.5, -0.1, "higher", "inferior", None, "holds"),
        (0.1, 0.5, "higher", "inferior", None, "does not hold"),
        (-0.1, 0.5, "higher", "inferior", None, "inconclusive"),
        (0.1, 0.5, "lower", "inferior", None, "holds"),
        # a small drop, margin 1, higher is better: the band (-1, 0)
        (-0.9, -0.1, "higher", "small_drop", 1.0, "holds"),
        (-3.0, -1.1, "higher", "small_drop", 1.0, "does not hold"),  # a drop larger than m
        (0.1, 0.5, "higher", "small_drop", 1.0, "does not hold"),  # no drop: a ahead of b
        (-1.5, -0.5, "higher", "small_drop", 1.0, "inconclusive"),  # out of the band below
        (-0.5, 0.5, "higher", "small_drop", 1.0, "inconclusive"),  # out of the band above
        (-2.0, 2.0, "higher", "small_drop", 1.0, "inconclusive"),  # over the whole band
        (-0.5, 0.0, "higher", "small_drop", 1.0, "inconclusive"),  # touching 0 is not inside
        (-1.0, -0.5, "higher", "small_drop", 1.0, "inconclusive"),  # nor touching -m
        (-2.0, -1.0, "higher", "small_drop", 1.0, "inconclusive"),  # nor beyond it
        (0.0, 0.5, "higher", "small_drop", 1.0, "inconclusive"),  # nor beyond 0
        # a small drop, lower is better: the band (0, +m)
        (0.1, 0.9, "lower", "small_drop", 1.0, "holds"),
        (1.1, 3.0, "lower", "small_drop", 1.0, "does not hold"),
        (-0.5, -0.1, "lower", "small_drop", 1.0, "does not hold"),
        (0.5, 1.5, "lower", "small_drop", 1.0, "inconclusive"),
        (-0.9, -0.1, "lower", "small_drop", 1.0, "does not hold"),  # higher's band, not lower's
        # one seed: no interval, whatever the test
        (None, None, "higher", "inferior", None, "inconclusive"),
        (None, None, "higher", "superior", None, "inconclusive"),
        (None, None, "lower", "superior", None, "inconclusive"),
        (None, None, "higher", "non_inferior", 1.0, "inconclusive"),
        (None, None, "lower", "non_inferior", 1.0, "inconclusive"),
        (None, None, "higher", "small_drop", 1.0, "inconclusive"),
    ],
)
def test_verdict_rule(low, high, better, test, margin, expected):
    assert verdict(low, high, better, test, margin) == expected


@pytest.mark.parametrize(
    ("paper", "mean", "low", "high", "expected"),
    [
        (-2.08, 3.5, 1.0, 6.0, f"{OPPOSITE}; {PAPER_OUTSIDE}"),  # the paper: a behind
        (-2.08, -1.0, -1.5, -0.5, f"{SAME}; {PAPER_OUTSIDE}"),
        (-2.08, -2.4, -3.6, -1.2, f"{SAME}; {PAPER_INSIDE}"),
        (-2.08, -2.08, -2.08, -2.08, f"{SAME}; {PAPER_INSIDE}"),  # ends count as inside
        (7.4, 1.0, -0.5, 2.5, f"{UNRESOLVED}; {PAPER_OUTSIDE}"),  # the interval spans 0
        (0.3, 1.0, -0.5, 2.5, f"{UNRESOLVED}; {PAPER_INSIDE}"),
        (7.4, 0.0, 0.0, 0.0, f"{UNRESOLVED}; {PAPER_OUTSIDE}"),
        (-5.3, 0.0, None, None, UNRESOLVED),  # one seed, no difference at all
        (-5.3, -2.0, None, None, f"{SAME} (one seed)"),
        (None, 1.0, 0.5, 1.5, "–"),  # the paper gives no difference
        (0.0, 1.0, 0.5, 1.5, "–"),
        (1.0, None, None, None, "–"),  # no seed has both arms
    ],
)
def test_direction_against_the_paper(paper, mean, low, high, expected):
    assert direction(paper, mean, low, high) == expected


def test_one_seed_is_inconclusive_end_to_end():
    _, low, high = interval(paired_differences([0.9], [0.1], relative=False))
    assert verdict(low, high, "higher", "superior", None) == "inconclusive"


@pytest.mark.parametrize(
    "better, test, margin, bound",
    [("higher", "superior", None, 0.0), ("lower", "inferior", None, 0.0),
     ("higher", "non_inferior", 2.5, -2.5), ("lower", "non_inferior", 1.0, 1.0)],
)  # fmt: skip
def test_threshold_is_the_bound_the_verdict_reads(better, test, margin, bound):
    """The one bound of each test: an interval just past it on a's side holds, just short of
    it on the other side does not; a small drop has two bounds and is refused."""
    assert threshold(better, test, margin) == bound
    side = 1.0 if (better == "higher") != (test == "inferior") else -1.0
    near = sorted((bound + side * 0.01, bound + side * 0.02))
    far = sorted((bound - side * 0.01, bound - side * 0.02))
    assert verdict(*near, better, test, margin) == "holds"
    assert verdict(*far, better, test, margin) == "does not hold"
    with pytest.raises(ValueError, match="two bounds"):
        threshold("higher", "small_drop", 2.5)


def test_verdict_refuses_bad_settings():
    with pytest.raises(ValueError, match="better must be one of"):
        verdict(0.1, 0.2, "bigger", "superior")
    with pytest.raises(ValueError, match="test must be one of"):
        verdict(0.1, 0.2, "higher", "parity", 1.0)
    with pytest.raises(ValueError, match="takes no margin"):
        verdict(0.1, 0.2, "higher", "superior", 0.5)
    with pytest.raises(ValueError, match="takes no margin"):
        verdict(0.1, 0.2, "higher", "inferior", 0.5)
    for margin in (None, 0.0, -1.0, math.inf, math.nan):
        for test in ("non_inferior", "small_drop"):
            with pytest.raises(ValueError, match="needs a margin m > 0"):
                verdict(-0.2, -0.1, "higher", test, margin)
    with pytest.raises(ValueError, match="small-drop test needs a margin"):
        verdict(None, None, "higher", "small_drop")  # refused before looking at the interval


def test_small_drop_is_inferior_and_non_inferior_and_mirrors_with_better():
    """Over a grid of intervals: a holding small drop (margin m) is a holding "inferior" and
    "non_inferior" (margin m) verdict; a "does not hold" is an interval wholly above 0 or wholly
    below -m; and lower-is-better gives the verdict of the mirrored interval."""
    m = 1.0
    ends = [x / 4 for x in range(-10, 7)]  # -2.5 .. 1.5, hitting -m and 0 exactly
    seen = set()
    for low in ends:
        for high in (h for h in ends if h >= low):
            said = verdict(low, high, "higher", "small_drop", m)
            seen.add(said)
            assert verdict(-high, -low, "lower", "small_drop", m) == said
            if said == "holds":
                assert verdict(low, high, "higher", "inferior") == "holds"
                assert verdict(low, high, "higher", "non_inferior", m) == "holds"
            assert (said == "does not hold") == (low > 0 or high < -m)
            assert (said == "holds") == (-m < low and high < 0)
    assert seen == {"holds", "does not hold", "inconclusive"}


# ---------------------------------------------------------------- loading


def test_results_sorted_by_order(results_dir):
    claims = [r["claim"] for r in load_results(results_dir)]
    assert claims == ["slices-accuracy", "kronecker-lm-loss", "fourier-sts"]


def test_missing_key_names_the_file_and_key(results_dir):
    path = results_dir / "fourier-sts.json"
    result = json.loads(path.read_text())
    del result["comparisons"]
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"fourier-sts\.json.*'comparisons'"):
        load_results(results_dir)


def test_malformed_comparison_names_the_file(results_dir):
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    del result["comparisons"][0]["better"]
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"slices-accuracy\.json: comparison 0 .*'better'"):
        load_results(results_dir)
    result["comparisons"][0].update(better="higher", b="no-such-arm")
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=r"slices-accuracy\.json.*'no-such-arm'"):
        load_results(results_dir)


@pytest.mark.parametrize(
    "break_it, where",
    [
        (lambda r: r["arms"]["p2"].update(per_seed=[1, 2]), "'per_seed' must be a JSON object"),
        (lambda r: r["arms"]["p2"]["per_seed"].update({"0": [1]}), "seed 0 must map"),
        (lambda r: r["arms"]["p2"]["per_seed"]["0"].update(accuracy="high"), "must be a number"),
        (lambda r: r["arms"]["p2"].update(params=[]), "'params' must be a JSON object"),
        (lambda r: r["comparisons"].append("p2 vs p1"), "list of JSON objects"),
        (lambda r: r["comparisons"][0].update(paper_difference="-0.5"), "must be a number"),
        (lambda r: r["comparisons"][0].update(test="inferior", margin=0.1), "must be null"),
        (
            lambda r: r["comparisons"][0].update(test="small_drop"),
            "'margin' must be > 0 for a small_drop test",
        ),
        (lambda r: r["arms"]["p2"].update(selection="lr"), "'points' and 'chosen'"),
        (lambda r: r["arms"]["p2"].update(selection={"points": []}), "none of its points"),
        (
            lambda r: r["arms"]["p2"].update(
                selection={"points": [{"settings": [], "value": "x"}], "chosen": []}
            ),
            "without a number 'value'",
        ),
        (
            lambda r: r["arms"]["p2"].update(selection={"points": [{"value": 1}], "chosen": []}),
            "without a list 'settings'",
        ),
        (
            lambda r: r["arms"]["p2"].update(
                selection={"points": [{"settings": [1], "value": 1}], "chosen": [1]}
            ),
            "settings are not strings",
        ),
        (
            lambda r: r["arms"]["p2"].update(
                selection={"points": [{"settings": ["a=1"], "value": 1}], "chosen": "a=1"}
            ),
            "none of its points",
        ),
        (lambda r: r.update(selection="best"), "key 'selection' must be a JSON object"),
        (
            lambda r: r["arms"]["p2"]["per_seed"].update({"00": {"accuracy": 0.5}}),
            "has seeds ['00'] that are not the claim's seeds",
        ),
        (lambda r: r.update(metrics=[1]), "list of metric names"),
    ],
)
def test_malformed_values_name_the_file(results_dir, break_it, where):
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    break_it(result)
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=rf"slices-accuracy\.json: .*{re.escape(where)}"):
        load_results(results_dir)


@pytest.mark.parametrize(
    "break_it, where",
    [
        (lambda r: r.update(seeds=[0, 0, 1, 2]), "key 'seeds' must list each seed once, as an "
         "integer, got [0, 0, 1, 2]"),
        (lambda r: r.update(seeds=[0, True, 2]), "key 'seeds' must list each seed once"),
        (lambda r: r.update(seeds=["0", "1", "2"]), "key 'seeds' must list each seed once"),
        (lambda r: r.update(quick="no"), "the results: quick is 'no', not true or false"),
        (lambda r: r.update(order="1"), "the results: order is '1', not an integer"),
        (lambda r: r.update(claim=["slices"]), "the results: claim is ['slices'], not a string"),
        (lambda r: r["comparisons"][0].update(relative="no"), "comparison 0 ('p=2 vs standard'): "
         "relative is 'no', not true or false"),
        (lambda r: r["comparisons"][0].update(test="non_inferior", margin="1"), "comparison 0 "
         "('p=2 vs standard') key 'margin' must be > 0"),
        (lambda r: r["comparisons"][0].update(paper_difference=math.nan), "comparison 0 "
         "('p=2 vs standard') key 'paper_difference' must be a number or null, and finite"),
        (lambda r: r["arms"]["p2"]["per_seed"]["0"].update(accuracy=True), "arm 'p2', seed 0, "
         "'accuracy' is true: a compared or shown metric must be a number or null"),
        (lambda r: r["arms"]["p4"]["per_seed"]["1"].update(accuracy=False), "arm 'p4', seed 1, "
         "'accuracy' is false"),
        (lambda r: r["arms"]["p2"].update(description=2), "arm 'p2': description is 2, not "
         "a string"),
        (lambda r: r["arms"]["p2"].update(steps_per_s={"0": "fast"}), "arm 'p2', steps_per_s of "
         "seed 0 must be a number"),
        (lambda r: r["checks"][0].update(holds="no"), "check 0: holds is 'no', not true or "
         "false"),
        (lambda r: r.update(differences=[{"data": "less"}]), "key 'differences' must be a list "
         "of strings"),
    ],
)  # fmt: skip
def test_hand_edited_values_of_the_wrong_type_are_refused(results_dir, break_it, where):
    """A seed given twice would narrow the interval, "no" would read as true, and true would
    count as 1: each is refused, naming the file."""
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    break_it(result)
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match=rf"slices-accuracy\.json: {re.escape(where)}"):
        load_results(results_dir)


def test_a_flag_beside_the_metrics_may_be_a_boolean(results_dir):
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    result["arms"]["p2"]["per_seed"]["0"]["diverged"] = False  # neither compared nor shown
    path.write_text(json.dumps(result))
    loaded = {r["claim"]: r for r in load_results(results_dir)}["slices-accuracy"]
    assert loaded["arms"]["p2"]["per_seed"]["0"]["diverged"] is False


def test_a_key_given_twice_is_refused(results_dir):
    path = results_dir / "slices-accuracy.json"
    text = path.read_text().replace(
        '"per_seed": {"0": {"accuracy": 0.8},', '"per_seed": {"0": {"accuracy": 0.8}, "0": {},'
    )
    path.write_text(text)
    with pytest.raises(ValueError, match=r"slices-accuracy\.json: a JSON object gives the key 0 "):
        load_results(results_dir)


def test_a_file_that_is_not_text_names_the_file(results_dir):
    (results_dir / "binary.json").write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ValueError, match=r"binary\.json: not valid JSON"):
        load_results(results_dir)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_value_that_is_not_finite_is_left_out_and_said(results_dir, tmp_path, bad):
    """A NaN or infinite per-seed value (a run that diverged, or a hand edit) is dropped
    from the pairing and from the mean, and the report says so."""
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    result["arms"]["p2"]["per_seed"]["1"]["accuracy"] = bad
    path.write_text(json.dumps(result))  # written as NaN or Infinity, as json.dumps does
    to = write_report(results_dir, tmp_path / "REPORT.md")
    text = to.read_text()
    shown = "nan" if math.isnan(bad) else "inf"
    # seeds 0 and 2: differences -0.05 and -0.06 -> mean -0.055 +- t_1 * 0.005
    low, high = -0.055 - T_1 * 0.005, -0.055 + T_1 * 0.005
    assert (
        "| [slices-accuracy](#slices-accuracy) | p=2 vs standard | a better | +0.5 points "
        f"| -0.055 accuracy [{low:+.3f}, {high:+.3f}] | 2 (1 dropped) |"
    ) in text
    dropped = f"- p=2 vs standard: seed 1 has accuracy = {bad} for `p2`; dropped from the pairing."
    assert dropped in text
    assert f"| 0.810 ± 0.014 (0.800, {shown}, 0.820; 1 not finite, left out) |" in text


def test_an_interval_of_values_that_are_not_finite_is_refused():
    with pytest.raises(ValueError, match="an interval needs finite values"):
        interval([1.0, math.nan, 2.0])


def test_report_to_a_folder_is_refused(results_dir, tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        write_report(results_dir, tmp_path)


def test_a_claim_given_to_report_is_refused_with_what_to_do(results_dir, tmp_path, capsys):
    """`--report` takes folders: a claim id among them (`petra reproduce --report DIR
    kronecker-lm-loss`) is named as a claim, not as a missing results folder."""
    from petra.cli import main

    to = tmp_path / "REPORT.md"
    assert (
        main(["reproduce", "--report", str(results_dir), "kronecker-lm-loss", "--to", str(to)]) == 2
    )
    err = capsys.readouterr().err
    assert "kronecker-lm-loss is a claim: run the claims first" in err and "Traceback" not in err
    assert not to.exists()


def test_invalid_json_names_the_file(results_dir):
    (results_dir / "broken.json").write_text('{"claim": "broken", ')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        load_results(results_dir)


def test_no_results_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no results \(\*\.json\)"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="no results directory"):
        load_results(tmp_path / "missing")


# ---------------------------------------------------------------- the report


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _section(text: str, claim: str) -> str:
    return _between(text + "<a id=", f'<a id="{claim}"></a>', "<a id=")


def test_report_from_fixtures(results_dir, tmp_path):
    to = tmp_path / "docs" / "REPRODUCTION.md"
    assert write_report(results_dir, to) == to
    text = to.read_text()

    assert text.count(VERDICT_RULE) == 1
    assert "generated by `petra reproduce --report`" in text.lower()
    # a training claim's steps/s are its runs' own: the report says so where it shows them
    # (the LM fixture has them, the sentence one none), and names the claims that time arms
    own = "The steps/s are each run's own, taken with whatever else the machine ran"
    lm = text.split('<a id="kronecker-lm-loss"></a>')[1].split("<a id=")[0]
    assert own in lm and "`kronecker-runtime`" in lm and text.count(own) == 1

    # relative: differences -2, -2, -3 % -> mean -7/3, sd sqrt(1/3), half t * sqrt(1/3) / sqrt(3)
    half = T_2 / 3
    assert (-7 / 3 - half, -7 / 3 + half) == pytest.approx((-3.7676, -0.8991), abs=1e-4)
    assert (  # the fixture is not today's entry, whose name of this comparison is shown
        "| [kronecker-lm-loss](#kronecker-lm-loss) | Kronecker (untied) vs learned (tied), "
        "validation loss (today's comparison, on the stored values) | a better | -2.5 +- 0.2 % "
        "| -2.33 % [-3.77, -0.90] | 3 | same as the paper; the paper's a − b inside the interval "
        "| holds (earlier registry entry: rerun) |"
    ) in text
    # non-inferior, lower is better, margin 0.1: differences 0.02, 0.03 (seed 2 dropped) ->
    # 0.025 +- t_1 * 0.005 = [-0.0385, 0.0885], below +0.1
    assert (
        "| [kronecker-lm-loss](#kronecker-lm-loss) | learned (untied) vs learned (tied) "
        "| parity within 0.100 loss | – | +0.025 loss [-0.039, +0.089] | 2 (1 dropped) | – "
        "| holds (earlier registry entry: rerun) |"
    ) in text
    assert "seed 2 has no loss for `learned-untied`; dropped from the pairing." in text
    # absolute, higher is better: differences -0.05, -0.04, -0.06 -> -0.05 +- t * 0.01 / sqrt 3
    assert T_2 * 0.01 / math.sqrt(3) == pytest.approx(0.02484, abs=1e-5)
    assert (
        "| [slices-accuracy](#slices-accuracy) | p=2 vs standard | a better | +0.5 points "
        "| -0.050 accuracy [-0.075, -0.025] | 3 | opposite to the paper; the paper's a − b "
        "outside the interval | does not hold |"
    ) in text
    # a quick claim: one seed, no interval, labelled in the summary and in its section
    assert (
        "| [fourier-sts](#fourier-sts), quick first look (1 seed, short budget) "
        "| Fourier vs learned | a better | +0.01 | +0.012 spearman (one seed, no interval) | 1 "
        "| same as the paper (one seed) | inconclusive |"
    ) in text
    assert "**Quick first look (1 seed, short budget)**" in text
    assert text.count("quick first look") == 1  # only the quick claim's summary row

    # sections in claim order, each reachable from the summary
    positions = [text.index(f'<a id="{c}"></a>') for c in ("slices-accuracy", "kronecker-lm-loss")]
    assert positions == sorted(positions) and text.index('<a id="fourier-sts"></a>') > positions[1]

    # arms: mean ± std, then the per-seed values in seed order; a missing seed shows as –
    assert "| 4.557 ± 0.552 (4.900, 3.920, 4.850) | 1.00 |" in text
    assert "| 4.667 ± 0.577 (5.000, 4.000, 5.000) | 1.30 |" in text
    assert "| 4.525 ± 0.700 (5.020, 4.030, –) | – |" in text
    assert "| 1,049,216 |" in text
    assert "| `fourier` | Fourier embedding | 20,000 | 0.712 |" in text
    arms = _between(_section(text, "kronecker-lm-loss"), "### Arms", "### Comparisons")
    assert "accuracy" not in arms  # a metric that no comparison uses is not tabled

    # checks, the paper's figure quoted, differences, command
    assert "| buffer bytes V x (P + 2) | 904,626 | 904,626 | yes |" in text
    assert "| p2 embedding parameters | 65,536 | 65,540 | **no** |" in text
    assert "> -2.5 +- 0.2 % validation loss at 124M / 2.5B tokens; ~1.43x fewer steps" in text
    assert "- size: d=128, not GPT-2 124M" in text
    assert "```bash\npetra reproduce kronecker-lm-loss --seeds 3 --out reproduction\n```" in text

    # plots: drawn beside the results, linked relative to the report's folder
    links = {
        "Validation loss against the step": "../plots/kronecker-lm-loss-1-curve-eval-loss.png",
        "Accuracy against the number of slices": "../plots/slices-accuracy-1-versus-accuracy.png",
        # x from each arm's params["total"]; p4 has none and is left out of the plot
        "Accuracy against parameters": "../plots/slices-accuracy-2-versus-accuracy.png",
    }
    for title, link in links.items():
        assert f"![{title}]({link})" in text
        assert (to.parent / link).resolve().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "*Spearman against the step: nothing to plot.*" in text  # no curves in that file
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        Path(link).name for link in links.values()
    )


def test_a_small_drop_comparison_is_tested_and_named(results_dir):
    """p2 - standard: differences -0.05, -0.04, -0.06 -> [-0.075, -0.025] (as above): inside
    the band (-0.1, 0) of a margin 0.1, reaching below the band (-0.05, 0) of a margin 0.05."""
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    drop = {**result["comparisons"][0], "test": "small_drop", "paper": "a small drop"}
    drop["paper_difference"] = None  # the paper says a drop, with no figure
    result["comparisons"] = [
        {**drop, "name": "p=2 small drop, margin 0.1", "margin": 0.1},
        {**drop, "name": "p=2 small drop, margin 0.05", "margin": 0.05},
    ]
    path.write_text(json.dumps(result))
    section = _section(format_report(load_results(results_dir), {}), "slices-accuracy")
    test = "small drop: a trails b by less than {} accuracy (higher accuracy is better)"
    assert (
        f"| {test.format('0.100')} | a small drop | -0.050 accuracy [-0.075, -0.025] "
        "| 0, 1, 2 | – | holds |"
    ) in section
    assert (
        f"| {test.format('0.050')} | a small drop | -0.050 accuracy [-0.075, -0.025] "
        "| 0, 1, 2 | – | inconclusive |"
    ) in section


def test_a_width_zero_interval_is_marked_as_no_spread(results_dir):
    """Every seed's difference the same (both arms at a floor, or a quantity the seed does not
    change): the verdict stands, marked, since the interval measures no spread."""
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    for seed, row in result["arms"]["p2"]["per_seed"].items():
        row["accuracy"] = result["arms"]["standard"]["per_seed"][seed]["accuracy"] + 0.25
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    row = (  # the paper's +0.5 points: the same side, outside an interval of no spread
        "| +0.250 accuracy [+0.250, +0.250] | 3 | same as the paper; the paper's a − b outside "
        "the interval | holds (every seed the same)"
    )
    assert row in text


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        (["holds", "holds (every seed the same)"], "holds"),
        (["holds", "inconclusive"], "inconclusive"),
        (["inconclusive", "does not hold"], "does not hold"),
        (["holds", "does not hold (every seed the same)"], "does not hold"),
    ],
)
def test_a_joint_claim_holds_only_where_each_of_its_comparisons_holds(verdicts, expected):
    assert joint_verdict(verdicts) == expected


def test_a_joint_claim_is_reported_beside_its_comparisons(results_dir):
    """p=2 - standard lies in [-0.075, -0.025]: no worse than -0.1 (holds), and not surely
    better than -0.05 (inconclusive): the joint claim of the two is inconclusive."""
    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    parity = {**result["comparisons"][0], "test": "non_inferior"}
    result["comparisons"] = [
        {**parity, "name": "within 0.1", "margin": 0.1},
        {**parity, "name": "within 0.05", "margin": 0.05},
    ]
    result["joint"] = [{"name": "p=2 on both", "comparisons": ["within 0.1", "within 0.05"]}]
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    rows = [line for line in text.splitlines() if line.startswith("| [slices-accuracy]")]
    assert [row.rsplit("|", 2)[-2].strip() for row in rows[:3]] == [
        "holds", "inconclusive", "inconclusive (its parts: holds; inconclusive)"]  # fmt: skip
    assert rows[2].startswith("| [slices-accuracy](#slices-accuracy) | p=2 on both (joint) |")
    assert (
        "- p=2 on both: **inconclusive** (of within 0.1: holds; within 0.05: inconclusive)" in text
    )
    assert "Not written by this petra's runner" not in text  # the runner writes `joint`
    result["joint"][0]["comparisons"].append("no such comparison")
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="names no comparison 'no such comparison'"):
        format_report(load_results(results_dir), {})


def test_report_plots_dir_and_measurement_claim(results_dir, tmp_path):
    """A claim of checks only (no arms, no comparisons) gets a summary row that counts its
    checks; an explicit plots folder is linked relative to the report."""
    measurement = {
        **json.loads((results_dir / "fourier-sts.json").read_text()),
        "claim": "buffer-bytes",
        "order": 0,
        "quick": False,
        "arms": {},
        "comparisons": [],
        "plots": [],
        "checks": [
            {"name": "bytes", "value": 1024, "expected": 1024, "holds": True},
            {"name": "ratio", "value": 0.25, "expected": 0.5, "holds": False},
        ],
    }
    (results_dir / "buffer-bytes.json").write_text(json.dumps(measurement))
    to = write_report(results_dir, tmp_path / "REPORT.md", plots_dir=tmp_path / "figures")
    text = to.read_text()
    assert (
        "| [buffer-bytes](#buffer-bytes) | (measurement, no comparison) | – | – | – | – | – "
        "| 1 of 2 checks hold |"
    ) in text
    assert "| ratio | 0.250 | 0.500 | **no** |" in text
    assert "](figures/slices-accuracy-1-versus-accuracy.png)" in text
    section = _section(text, "buffer-bytes")
    assert "### Arms" not in section and "### Comparisons" not in section


def test_format_report_without_plot_links(results_dir):
    text = format_report(load_results(results_dir), {})
    assert "### Plots" not in text and "![" not in text
    assert text.count(VERDICT_RULE) == 1


def test_claims_without_results_are_named(results_dir):
    """The fixtures hold kronecker-lm-loss (a registry claim) but not the others."""
    text = format_report(load_results(results_dir), {})
    line = next(x for x in text.splitlines() if x.startswith("Not in this report"))
    assert "`kronecker-spelling`" in line and "`pete-sts-zero-shot`" in line
    assert "`kronecker-lm-loss`" not in line


def test_settings_chosen_on_held_out_data_are_tabled(results_dir, tmp_path):
    """An arm's sweep shows every grid point's held-out value, the chosen one in bold, under
    the claim's rule; the shown metrics join the arms table."""
    path = results_dir / "fourier-sts.json"
    result = json.loads(path.read_text())
    result["selection"] = {"metric": "heldout/spearman", "better": "higher", "why": "the best"}
    result["metrics"] = ["pearson"]
    result["arms"]["fourier"]["per_seed"]["0"]["pearson"] = 0.5
    result["arms"]["fourier"]["selection"] = {
        "metric": "heldout/spearman",
        "seed": 0,
        "points": [
            {"settings": ["train.lr=0.001"], "value": 61.25},
            {"settings": ["train.lr=0.003"], "value": 64.5},
            {"settings": ["train.lr=0.01"], "value": None, "diverged": "the loss is nan"},
        ],
        "chosen": ["train.lr=0.003"],
    }
    path.write_text(json.dumps(result))
    text = _section(format_report(load_results(results_dir), {}), "fourier-sts")
    assert "### Settings chosen on held-out data" in text and "Rule: the best." in text
    assert (
        "| `fourier` | heldout/spearman (seed 0) | train.lr=0.001: 61.25; "
        "**train.lr=0.003: 64.50**; train.lr=0.01: diverged |"
    ) in text
    # the largest of three swept values chosen: said, since a better one may lie beyond it
    sweep = result["arms"]["fourier"]["selection"]
    sweep["points"][2]["value"], sweep["chosen"] = 70.0, ["train.lr=0.01"]
    path.write_text(json.dumps(result))
    text = _section(format_report(load_results(results_dir), {}), "fourier-sts")
    assert "**train.lr=0.01: 70.00**; chosen at the grid's edge in train.lr |" in text
    # a second setting, swept at two values: said apart from the grid's edge, with or without it
    grid = itertools.product(("0.001", "0.003", "0.01"), ("4", "8"))
    sweep["points"] = [
        {"settings": [f"train.lr={lr}", f"train.epochs={epochs}"], "value": 60.0 + i}
        for i, (lr, epochs) in enumerate(grid)
    ]
    two = (
        "train.epochs swept at two values only (8 chosen): a better value may lie beyond or "
        "between them |"
    )
    sweep["chosen"] = ["train.lr=0.003", "train.epochs=8"]  # inside the grid of lr
    path.write_text(json.dumps(result))
    text = _section(format_report(load_results(results_dir), {}), "fourier-sts")
    assert f"train.lr=0.01, train.epochs=8: 65.00; {two}" in text and "grid's edge" not in text
    sweep["chosen"] = ["train.lr=0.01", "train.epochs=8"]  # at its edge
    path.write_text(json.dumps(result))
    text = _section(format_report(load_results(results_dir), {}), "fourier-sts")
    assert f"train.epochs=8: 65.00**; chosen at the grid's edge in train.lr; {two}" in text
    assert "| spearman | pearson |" in text and "| 0.712 | 0.500 |" in text


def test_a_baseline_at_its_floor_in_every_seed_is_not_testable():
    """A comparison with a `floor` gives no verdict when b sits at the floor in every seed
    (a's side of it says nothing of b); one seed above the floor, and it is tested."""
    from petra.reproduce.outcomes import evaluate
    from petra.reproduce.stats import NOT_TESTABLE, VERDICT_RULE

    result = json.loads((FIXTURES / "kronecker-lm-loss.json").read_text())
    comparison = {**result["comparisons"][0], "relative": False, "floor": 4.0}
    a, b = result["arms"][comparison["a"]], result["arms"][comparison["b"]]
    for seed in b["per_seed"]:
        b["per_seed"][seed]["loss"] = 4.0
        a["per_seed"][seed]["loss"] = 4.5 + int(seed) / 10  # "worse" than b, in every seed
    untestable = evaluate(result, comparison)
    assert untestable["verdict"] == NOT_TESTABLE and untestable["direction"] == "–"
    assert evaluate(result, {**comparison, "floor": None})["verdict"] == "does not hold"
    b["per_seed"]["1"]["loss"] = 4.2
    assert evaluate(result, comparison)["verdict"] == "does not hold"
    assert '"not testable: b at its floor"' in VERDICT_RULE


def test_a_contrast_tests_the_change_of_a_gap_seed_by_seed(results_dir, monkeypatch):
    """A comparison with `minus` (c, d) tests (a - b) - (c - d) per seed: with d = b it is
    a - c itself (here p4 - p2: -0.02, -0.05, -0.03, mean -1/30, sd 0.01528); a seed where
    any of the four arms lacks the metric is dropped, naming it; the report names c and d
    and refuses a contrast of unknown arms or a relative one; the registry refuses a
    relative contrast and writes the pair as a results file holds it."""
    from petra.reproduce.claims import Comparison
    from petra.reproduce.earlier_entry import todays_comparisons
    from petra.reproduce.outcomes import evaluate

    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    contrast = {**result["comparisons"][0], "name": "a gap that closes", "a": "p4",
                "b": "standard", "minus": ["p2", "standard"]}  # fmt: skip
    outcome = evaluate(result, contrast)
    direct = evaluate(result, {**contrast, "a": "p4", "b": "p2", "minus": None})
    assert outcome["differences"] == pytest.approx([-0.02, -0.05, -0.03], abs=1e-12)
    assert outcome["differences"] == pytest.approx(direct["differences"], abs=1e-12)
    half = T_2 * statistics.stdev([-0.02, -0.05, -0.03]) / math.sqrt(3)
    assert (outcome["mean"], outcome["high"]) == pytest.approx((-1 / 30, -1 / 30 + half))
    del result["arms"]["p2"]["per_seed"]["2"]
    assert evaluate(result, contrast)["dropped"] == [("2", [("p2", None)])]
    result["arms"]["standard"]["per_seed"]["1"]["accuracy"] = math.nan  # b = d: named once
    assert evaluate(result, contrast)["dropped"][0][1] == [("standard", pytest.approx(math.nan,
                                                           nan_ok=True))]  # fmt: skip
    result["arms"]["standard"]["per_seed"]["1"]["accuracy"] = 0.89
    result["comparisons"].append(contrast)
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    assert "c = `p2`, d = `standard`: (a − b) − (c − d))" in text
    for bad, why in (
        ({"minus": ["p2", "p8"]}, "names arm 'p8'"),
        ({"minus": ["p2"]}, "its minus must name two arms"),
        ({"minus": [["p2"], "standard"]}, "its minus must name two arms"),
        ({"minus": ["p2", "p2"]}, "other than a and b"),
        ({"minus": ["p4", "standard"]}, "other than a and b"),
        ({"relative": True}, "neither relative nor has a floor"),
    ):
        result["comparisons"][-1] = {**contrast, **bad}
        path.write_text(json.dumps(result))
        with pytest.raises(ValueError, match=why):
            load_results(results_dir)
    with pytest.raises(ValueError, match="neither relative"):
        Comparison("x", "accuracy", "p4", "standard", "higher", relative=True, minus=("p2", "s"))
    claim = types.SimpleNamespace(
        comparisons=(Comparison("x", "accuracy", "p4", "standard", "higher", minus=("p2", "s")),)
    )
    assert todays_comparisons(claim)[0]["minus"] == ["p2", "s"]  # as json.loads reads it
    # today's registry entry adds a contrast: answered from an earlier entry's stored values
    from petra.reproduce.claims import CLAIMS

    result["comparisons"].pop()
    path.write_text(json.dumps(result))
    today = Comparison("the gap", "accuracy", "p4", "standard", "higher", minus=("p2", "standard"))
    entry = dataclasses.replace(CLAIMS["ltransformer-imdb"], id="slices-accuracy",
                                comparisons=(today,), joint=())  # fmt: skip
    monkeypatch.setitem(CLAIMS, "slices-accuracy", entry)
    text = format_report(load_results(results_dir), {})
    assert "the gap (today's comparison, on the stored values)" in text


def test_a_verdict_that_rests_on_one_seed_says_so(results_dir):
    """From 5 paired seeds each is left out in turn: differences 0.5, 0.6, 0.4, 0.5, -0.9
    give an interval across 0 (inconclusive), without seed 4 one above it (holds); the
    summary and the section say so. At 4 seeds nothing is left out."""
    from petra.reproduce.outcomes import evaluate

    path = results_dir / "slices-accuracy.json"
    result = json.loads(path.read_text())
    result["seeds"] = [0, 1, 2, 3, 4]
    differences = [0.5, 0.6, 0.4, 0.5, -0.9]
    result["arms"] = {"standard": {"per_seed": {str(i): {"accuracy": 80.0} for i in range(5)}},
                      "p2": {"per_seed": {str(i): {"accuracy": 80.0 + d}
                                          for i, d in enumerate(differences)}}}  # fmt: skip
    result["plots"] = []
    comparison = {**result["comparisons"][0], "paper_difference": None}
    result["comparisons"] = [comparison]
    outcome = evaluate(result, comparison)
    assert outcome["verdict"] == "inconclusive" and outcome["rests_on"] == [("4", "holds")]
    four = {**result, "seeds": [0, 1, 2, 3]}  # without seed 1 of these: inconclusive
    four["arms"]["p2"]["per_seed"]["3"]["accuracy"] = 80.9
    assert evaluate(four, comparison)["verdict"] == "holds"
    assert evaluate(four, comparison)["rests_on"] == []  # four seeds: none left out
    same = {"0": 80.5, "1": 80.5, "2": 80.5, "3": 80.5, "4": 80.7}
    steady = json.loads(json.dumps(result))
    for seed, value in same.items():
        steady["arms"]["p2"]["per_seed"][seed]["accuracy"] = value
    assert evaluate(steady, comparison)["rests_on"] == []  # 4 equal seeds: holds still
    result["arms"]["p2"]["per_seed"]["3"]["accuracy"] = 80.5
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    assert text.count("| inconclusive (without seed 4: holds) |") == 2  # summary and section


def test_a_second_results_folder_is_a_part_of_its_own(results_dir, tmp_path):
    """`petra reproduce --report MAIN OTHER`: OTHER's claims follow the main part under its
    own summary, named for its folder, with anchors of their own (no claim's anchor twice),
    every summary link pointing at its own part's section, its plots in a folder of their
    own; two folders of one name are refused before anything is written."""
    from petra.cli import main
    from petra.reproduce.report import scale_name

    larger = Path(shutil.copytree(results_dir, tmp_path / "larger" / "results"))
    to = tmp_path / "REPORT.md"
    assert main(["reproduce", "--report", str(results_dir), str(larger), "--to", str(to)]) == 0
    text = to.read_text()
    assert scale_name(larger) == "larger" and scale_name(tmp_path / "wide") == "wide"
    anchors = re.findall(r'<a id="([^"]+)"></a>', text)
    assert len(anchors) == len(set(anchors))
    claims = sorted(path.stem for path in results_dir.glob("*.json"))
    assert {f"larger-{claim}" for claim in claims} | {"larger"} <= set(anchors)
    main_part, larger_part = text.split('<a id="larger"></a>')
    assert "## At the larger scale: summary" in larger_part
    for claim in claims:
        assert f"](#{claim})" in main_part and f"](#larger-{claim})" not in main_part
        assert f"](#larger-{claim})" in larger_part and f"](#{claim})" not in larger_part
        section = _between(larger_part + "<a id=", f'<a id="larger-{claim}"></a>', "<a id=")
        assert section.lstrip().startswith("## At the larger scale: ")
    assert "plots/larger/" in larger_part and "plots/larger/" not in main_part
    same_name = Path(shutil.copytree(results_dir, tmp_path / "other" / "larger"))
    with pytest.raises(ValueError, match="names of their own"):
        write_report(results_dir, tmp_path / "TWICE.md", scales=[larger, same_name])
    named_for_a_claim = Path(
        shutil.copytree(results_dir, tmp_path / "kronecker-lm-loss" / "results")
    )
    with pytest.raises(ValueError, match="cannot be named for a claim"):
        write_report(results_dir, tmp_path / "CLAIM.md", scales=[named_for_a_claim])
    assert not (tmp_path / "TWICE.md").exists() and not (tmp_path / "CLAIM.md").exists()


def test_the_committed_report_regenerates_from_the_committed_results(tmp_path):
    """REPRODUCTION.md is what `petra reproduce --report reproduction/results
    reproduction/larger/results --to REPRODUCTION.md` writes from the committed results JSON,
    byte for byte."""
    root = Path(__file__).resolve().parents[1]
    to = tmp_path / "REPRODUCTION.md"
    write_report(root / "reproduction" / "results", to, tmp_path / "reproduction" / "plots",
                 scales=[root / "reproduction" / "larger" / "results"])  # fmt: skip
    assert to.read_text() == (root / "REPRODUCTION.md").read_text()


def test_results_of_an_earlier_registry_entry_are_marked(results_dir):
    """A results file whose protocol, differences or comparisons are not its claim's in
    today's registry is named under the summary and marked in its section; a claim the
    registry lacks is not."""
    from petra.reproduce.claims import CLAIMS
    from petra.reproduce.earlier_entry import stale_fields

    claim = CLAIMS["kronecker-lm-loss"]
    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    assert set(stale_fields(result)) == {
        "title", "place in the paper", "protocol", "differences", "comparisons", "notes",
    }  # fmt: skip
    fresh = json.loads((results_dir / "fourier-sts.json").read_text())
    fresh["notes"] = ["a note of the analysis"]  # a claim the registry lacks: never stale
    (results_dir / "fourier-sts.json").write_text(json.dumps(fresh))
    text = format_report(load_results(results_dir), {})
    assert "Written under an earlier entry of the claims registry" in text
    assert "[`kronecker-lm-loss`](#kronecker-lm-loss)" in text and "`fourier-sts`](" not in text
    assert (
        "**Written under an earlier registry entry**: its title, place in the paper, "
        "protocol, differences, comparisons, notes" in text
    )
    earlier_words = "As the earlier registry entry's analysis wrote them:"
    assert earlier_words in _section(text, "kronecker-lm-loss")  # its notes may be stale
    assert earlier_words not in _section(text, "fourier-sts")
    assert "- a note of the analysis" in _section(text, "fourier-sts")
    result["protocol"], result["differences"] = claim.protocol, list(claim.differences)
    result["comparisons"] = [dataclasses.asdict(c) for c in claim.comparisons]
    result["title"], result["where"] = claim.title, claim.where
    result["notes"] = [*claim.notes, "a note of the analysis, after the registry's"]
    assert stale_fields(result) == []
    for field, value in (("paper_figure", "another figure"), ("notes", ["another note"])):
        assert stale_fields({**result, field: value})  # a paper-facing text changed
    changed = [{**result["comparisons"][0], "paper": "-9 %"}, *result["comparisons"][1:]]
    assert stale_fields({**result, "comparisons": changed}) == ["comparisons"]


def test_texts_that_describe_a_claim_are_brought_up_to_date_without_its_runs(
    results_dir, capsys, monkeypatch
):
    """A results file whose only stale fields describe its claim (title, the paper's figure
    and place, what differs) takes today's texts, everything else byte for byte as it was;
    one whose protocol (or comparisons, joint claims, registry notes) changed is left as it
    is and named, with the rerun that would bring it up to date."""
    from petra.cli import main
    from petra.reproduce.claims import CLAIMS, Comparison
    from petra.reproduce.earlier_entry import stale_fields

    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    claim = dataclasses.replace(  # today's entry: the file's runs, other texts
        CLAIMS["kronecker-lm-loss"],
        protocol=result["protocol"],
        comparisons=tuple(Comparison(**c) for c in result["comparisons"]),
        notes=tuple(result["notes"]),
        joint=(),
    )
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    assert set(stale_fields(result)) == {"title", "place in the paper", "differences"}
    other = results_dir / "slices-accuracy.json"
    before = other.read_text()
    assert main(["reproduce", "--update-texts", str(results_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: its title, place in the paper, differences brought up to" in out
    updated = json.loads(path.read_text())
    assert stale_fields(updated) == []
    assert updated["differences"] == list(claim.differences)
    assert updated["registry_notes"] == len(claim.notes)  # counted: its notes are today's
    assert {k: v for k, v in updated.items() if k not in ("title", "where", "differences",
            "paper_scale", "registry_notes")} == {k: v for k, v in result.items() if k not in
            ("title", "where", "differences", "paper_scale")}  # fmt: skip
    assert other.read_text() == before  # a claim the registry lacks: nothing to update
    updated["protocol"] = "another protocol"
    path.write_text(json.dumps(updated))
    main(["reproduce", "--update-texts", str(results_dir)])
    assert "its protocol differ from today's registry entry" in capsys.readouterr().out
    assert json.loads(path.read_text())["protocol"] == "another protocol"


def test_registry_notes_are_brought_up_to_date_where_the_file_counts_them(
    results_dir, capsys, monkeypatch
):
    """A file that records how many of its notes were the registry's (`registry_notes`, as
    the runner writes it) takes today's registry notes and keeps its analysis's after them;
    a file without the count cannot tell the two apart and is left for a rerun."""
    from petra.cli import main
    from petra.reproduce.claims import CLAIMS, Comparison
    from petra.reproduce.earlier_entry import stale_fields

    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    claim = dataclasses.replace(  # today's entry: the file's runs and texts, other notes
        CLAIMS["kronecker-lm-loss"],
        **{key: result[key] for key in ("title", "where", "paper_figure", "protocol")},
        differences=tuple(result["differences"]),
        comparisons=tuple(Comparison(**c) for c in result["comparisons"]),
        notes=("today's first note", "today's second note"),
        joint=(),
    )
    monkeypatch.setitem(CLAIMS, claim.id, claim)
    stored = {**result, "notes": ["an earlier note", "the analysis's note"], "registry_notes": 1}
    path.write_text(json.dumps(stored))
    assert stale_fields(stored) == ["notes"]
    main(["reproduce", "--update-texts", str(results_dir)])
    assert f"{path}: its notes brought up to" in capsys.readouterr().out
    updated = json.loads(path.read_text())
    assert updated["notes"] == ["today's first note", "today's second note", "the analysis's note"]
    assert updated["registry_notes"] == 2 and stale_fields(updated) == []
    del stored["registry_notes"]  # written before the count: the notes cannot be split
    path.write_text(json.dumps(stored))
    main(["reproduce", "--update-texts", str(results_dir)])
    assert "its notes differ from today's registry entry" in capsys.readouterr().out
    assert json.loads(path.read_text()) == stored
    # a file without the count whose notes begin with today's: counted now, while known
    path.write_text(json.dumps({**stored, "notes": [*claim.notes, "the analysis's note"]}))
    main(["reproduce", "--update-texts", str(results_dir)])
    assert "its registry notes counted" in capsys.readouterr().out
    assert json.loads(path.read_text())["registry_notes"] == 2
    path.write_text(json.dumps({**stored, "registry_notes": 3}))  # more than it has
    with pytest.raises(ValueError, match="'registry_notes' must count some of its 2 notes"):
        load_results(results_dir)
    path.write_text(json.dumps({**stored, "registry_notes": True}))  # a count, not a flag
    with pytest.raises(ValueError, match="registry_notes"):
        load_results(results_dir)


def test_checks_of_a_claim_with_comparisons_reach_the_summary(results_dir):
    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    result["checks"] = [
        {"name": "a band", "value": 0.3, "expected": "<= 0.1", "holds": False},
        {"name": "a count", "value": 4, "expected": 4, "holds": True},
    ]
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    summary = text[: text.index('<a id="')]
    row = "| [kronecker-lm-loss](#kronecker-lm-loss) | (checks) | – | – | – | – | – | 1 of 2 checks"
    assert row in summary
    assert "| a band | 0.300 | <= 0.1 | **no** |" in text


def test_a_chosen_setting_that_is_not_a_number_is_never_at_an_edge():
    """A grid that mixes a word with numbers (`none,1000,2000,4000`): choosing the word is
    no edge and raises nothing; choosing the largest number is one."""
    from petra.reproduce.report import _at_edge

    points = [{"settings": [f"data.max_train={v}"]} for v in ("none", "1000", "2000", "4000")]
    assert _at_edge({"points": points, "chosen": ["data.max_train=none"]}) == []
    edge = [("data.max_train", "4000", 3)]
    assert _at_edge({"points": points, "chosen": ["data.max_train=4000"]}) == edge
    assert _at_edge({"points": points, "chosen": ["data.max_train=2000"]}) == []


@pytest.mark.parametrize(
    ("swept", "chosen", "expected"),
    [
        (("4", "8"), "8", [("train.epochs", "8", 2)]),  # two values: either choice is an edge
        (("4", "8"), "4", [("train.epochs", "4", 2)]),
        (("8",), "8", []),  # one value: nothing was chosen
        (("none", "8"), "8", []),  # one number beside a word: no numeric sweep
        (("2", "4", "8"), "4", []),  # inside a grid of three
        (("2", "4", "8"), "2", [("train.epochs", "2", 3)]),
        (("2", "4", "8", "1e1"), "1e1", [("train.epochs", "1e1", 4)]),  # as recorded
    ],
)
def test_a_chosen_setting_at_an_edge_counts_the_values_swept(swept, chosen, expected):
    """The edge of a grid is the smallest or largest numeric value swept, with the number of
    values swept: at two, every choice is at an edge."""
    from petra.reproduce.report import _at_edge

    points = [{"settings": [f"train.epochs={v}", "train.lr=0.001"]} for v in swept]
    selection = {"points": points, "chosen": [f"train.epochs={chosen}", "train.lr=0.001"]}
    assert _at_edge(selection) == expected


# ------------------------------------------------- today's comparisons on an earlier entry's runs


def _today_claim(monkeypatch, claim_id: str, comparisons, joint=()):
    """Today's registry entry of `claim_id` replaced, for this test, by one of these
    comparisons and joint claims (its texts stay today's, so a fixture file is stale)."""
    from petra.reproduce.claims import CLAIMS

    claim = dataclasses.replace(CLAIMS[claim_id], comparisons=comparisons, joint=joint)
    monkeypatch.setitem(CLAIMS, claim_id, claim)
    return claim


def test_todays_comparisons_are_answered_from_an_earlier_entrys_stored_values(
    results_dir, monkeypatch
):
    """The fixture kronecker-lm-loss was written under an earlier entry. Today's entry has: its
    recorded comparison 0 as it is (neither evaluated nor shown twice), its comparison 1 under
    another name (shown once, as today's, saying what it was recorded as), Kronecker against
    the untied arm (evaluated: 100 (a / b - 1) per seed of
    4.9 / 5.02 and 3.92 / 4.03 = -2.390, -2.730 %, seed 2 dropped, mean -2.560, half-width
    T_1 |d0 - d1| / 2 = 2.154: [-4.714, -0.406]), and three the runs cannot answer (an arm, a
    metric of no arm, a metric of one arm). A joint claim of answered comparisons gets its
    verdict; one of a comparison not measured is named; one recorded as it is is not repeated.
    Each comparison is evaluated once per report."""
    from petra.reproduce import earlier_entry, report
    from petra.reproduce.claims import Comparison, Joint

    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    recorded = [Comparison(**{k: c.get(k) for k in earlier_entry.COMPARISON_IDENTITY})
                for c in result["comparisons"]]  # fmt: skip
    renamed = dataclasses.replace(recorded[1], name="learned controls, renamed")
    untied = Comparison("Kronecker vs learned (untied)", "loss", "kronecker-untied",
                        "learned-untied", "lower", relative=True)  # fmt: skip
    ngram = dataclasses.replace(untied, name="Kronecker vs trigrams", b="ngram-untied")
    steps = dataclasses.replace(untied, name="steps", metric="steps_to_target", b="learned-tied")
    accuracy = dataclasses.replace(steps, name="accuracy", metric="accuracy", better="higher")
    joint = (
        Joint("both controls", (recorded[0].name, untied.name)),
        Joint("with trigrams", (untied.name, ngram.name)),
        Joint("as recorded", (recorded[0].name,)),
    )
    _today_claim(monkeypatch, "kronecker-lm-loss",
                 (recorded[0], renamed, untied, ngram, steps, accuracy), joint)  # fmt: skip
    result["joint"] = [{"name": "as recorded", "comparisons": [recorded[0].name]}]
    path.write_text(json.dumps(result))
    evaluated, original = [], report.evaluate
    for module in (report, earlier_entry):  # the recorded comparisons, and today's
        monkeypatch.setattr(
            module, "evaluate", lambda r, c: evaluated.append(c["name"]) or original(r, c)
        )
    results = load_results(results_dir)
    text = format_report(results, {})
    recorded_names = [c["name"] for r in results for c in r["comparisons"]]
    recorded_names.remove(recorded[1].name)  # shown as today's `renamed`, in its stead
    assert sorted(evaluated) == sorted([*recorded_names, untied.name, renamed.name])  # once
    summary = text[: text.index('<a id="')]
    claim_cell = "| [kronecker-lm-loss](#kronecker-lm-loss) |"
    today = "(today's comparison, on the stored values)"
    rerun = "(earlier registry entry: rerun)"
    assert (
        f"{claim_cell} Kronecker vs learned (untied) {today} | a better | – "
        "| -2.56 % [-4.71, -0.41] "
        f"| 2 (1 dropped) | – | holds {rerun} |"
    ) in summary
    joint_cell = f"{claim_cell} both controls (today's joint claim, on the stored values) |"
    assert f"{joint_cell} – | – | – | – | – | holds (its parts: holds; holds) {rerun} |" in summary
    assert summary.count(today) == 2  # the comparison recorded as it is: not repeated
    assert (  # 0.02, 0.03 (seed 2 dropped): as in test_report_from_fixtures
        f"{claim_cell} learned controls, renamed {today} | parity within 0.100 loss | – "
        "| +0.025 loss [-0.039, +0.089] "
        f"| 2 (1 dropped) | – | holds {rerun} |"
    ) in summary
    assert f"{claim_cell} learned (untied) vs learned (tied) |" not in summary
    assert f"{claim_cell} as recorded (joint) |" in summary
    assert "as recorded (today's joint claim" not in summary
    assert (
        f"{claim_cell} Kronecker (untied) vs learned (tied) | a better | -2.5 +- 0.2 % |" in summary
    )
    section = _section(text, "kronecker-lm-loss")
    block = _between(section, "### Today's comparisons, from these runs' stored values", "###")
    assert section.index("### Comparisons") < section.index("### Today's") < section.index(
        "### Checks")  # fmt: skip
    assert (
        "the values are as the earlier petra measured and stored them" in block.lower()
        and "each is shown once, here, as today's, in place of the recorded one: learned "
        "controls, renamed (recorded as learned (untied) vs learned (tied)). Already recorded "
        "above (the same comparison), not repeated: Kronecker (untied) vs learned (tied)."
        in block
    )
    assert "learned (untied) vs learned (tied) (a =" not in section
    assert (
        "| Kronecker vs learned (untied) (a = `kronecker-untied`, b = `learned-untied`) "
        "| superior (lower loss is better) | – | -2.56 % [-4.71, -0.41] | 0, 1 | – | holds |"
    ) in block
    assert (
        "- Kronecker vs learned (untied): seed 2 has no loss for `learned-untied`; dropped "
        "from the pairing."
    ) in block
    assert "- both controls: **holds** (of Kronecker (untied) vs learned (tied): holds; " in block
    assert "cannot answer (a comparison of each is not measured): with trigrams." in block
    assert "- as recorded:" not in block
    assert "- no arm `ngram-untied` in these runs: Kronecker vs trigrams\n" in block
    assert "- these runs stored no `steps_to_target`: steps\n" in block
    assert "- `kronecker-untied` stored no `accuracy`: accuracy\n" in block
    assert "Today's comparisons" not in _section(text, "fourier-sts")  # not a registry claim


def test_a_file_of_todays_entry_has_no_todays_comparisons(results_dir, monkeypatch):
    """A file that is today's entry (texts, comparisons, joint claims) shows only what it
    recorded, as it is."""
    from petra.reproduce.claims import Comparison

    untied = Comparison("Kronecker vs learned (untied)", "loss", "kronecker-untied",
                        "learned-untied", "lower", relative=True)  # fmt: skip
    claim = _today_claim(monkeypatch, "kronecker-lm-loss", (untied,))
    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    result.update(
        title=claim.title, where=claim.where, protocol=claim.protocol,
        paper_figure=claim.paper_figure, differences=list(claim.differences),
        notes=list(claim.notes), comparisons=[dataclasses.asdict(untied)],
    )  # fmt: skip
    path.write_text(json.dumps(result))
    text = format_report(load_results(results_dir), {})
    assert "Today's" not in text and "today's comparison" not in text
    assert (
        "Kronecker vs learned (untied) | a better | – | -2.56 % [-4.71, -0.41] | 2 (1 dropped)"
        in text
    )


def test_a_metric_an_earlier_entry_stored_under_another_name_is_read_from_it(
    results_dir, monkeypatch
):
    """The earlier spelling entry probed one pair set, made by what makes today's Brown-made
    pairs, and stored `hidden_cosine_mean` for today's `brown/hidden_cosine_mean`: today's
    Brown-made comparison reads it (Kronecker 0.60, 0.55, 0.65 against 0.80 in each seed:
    -0.20, -0.25, -0.15, mean -0.200, sd 0.05, half-width T_2 0.05 / sqrt(3) = 0.124), today's
    paper's-pairs one never does (not measured), and a file holding today's name is read
    under it. A joint claim of the two sets is answered only where both are."""
    from petra.reproduce.claims import Comparison, Joint

    brown = Comparison("Brown: cosine", "brown/hidden_cosine_mean", "kronecker-untied",
                       "learned-tied", "higher")  # fmt: skip
    paper = dataclasses.replace(brown, name="paper: cosine", metric="paper/hidden_cosine_mean")
    _today_claim(monkeypatch, "kronecker-spelling", (paper, brown),
                 (Joint("cosine on both sets", (paper.name, brown.name)),))  # fmt: skip
    from petra.reproduce.claims import CLAIMS

    result = json.loads((results_dir / "kronecker-lm-loss.json").read_text())
    result.update(claim="kronecker-spelling", comparisons=[], joint=[], checks=[], plots=[],
                  protocol=CLAIMS["kronecker-spelling"].stored_as.protocol)  # fmt: skip
    values = {"kronecker-untied": (0.6, 0.55, 0.65), "learned-tied": (0.8, 0.8, 0.8)}
    for label, arm in result["arms"].items():
        arm["per_seed"] = {str(s): {"hidden_cosine_mean": v}
                           for s, v in enumerate(values.get(label, (0.7,) * 3))}  # fmt: skip
    path = results_dir / "kronecker-lm-loss.json"
    path.write_text(json.dumps(result))
    section = _section(format_report(load_results(results_dir), {}), "kronecker-spelling")
    assert (
        "| Brown: cosine (a = `kronecker-untied`, b = `learned-tied`) | superior (higher "
        "brown/hidden_cosine_mean is better) | – | -0.200 brown/hidden_cosine_mean "
        "[-0.324, -0.076] | 0, 1, 2 | – | does not hold |"
    ) in section
    assert "`brown/hidden_cosine_mean` from the stored `hidden_cosine_mean`." in section
    assert "made by the code that makes today's Brown-made pairs" in section
    assert "- these runs stored no `paper/hidden_cosine_mean`: paper: cosine" in section
    assert "cannot answer (a comparison of each is not measured): cosine on both sets." in section
    assert "| hidden_cosine_mean |" in section  # the arms table shows what was read
    base = {"kronecker-untied": 0.9, "learned-tied": 0.8}  # +0.1 in every seed, on each set
    for label, arm in result["arms"].items():
        for seed, row in arm["per_seed"].items():
            value = base.get(label, 0.7) + int(seed) / 100
            row["brown/hidden_cosine_mean"] = row["paper/hidden_cosine_mean"] = value
    path.write_text(json.dumps(result))
    section = _section(format_report(load_results(results_dir), {}), "kronecker-spelling")
    assert "from the stored" not in section and "Not measured" not in section
    assert "| +0.100 brown/hidden_cosine_mean [+0.100, +0.100] |" in section
    assert (
        "- cosine on both sets: **holds** (of paper: cosine: holds (every seed the same); "
        "Brown: cosine: holds (every seed the same))"
    ) in section


def test_what_differs_says_when_its_texts_are_not_the_runs_settings(results_dir):
    """Right above its bullets, a section whose runs changed the default protocol says that
    the bullets describe that default, and whose texts they are: an earlier registry entry's
    (a file of an earlier petra gives only its command's `--set` values) or today's (the
    recorded departures); a section of runs made at the default says nothing there."""
    from petra.reproduce.claims import CLAIMS

    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    heading = "### What differs from the paper\n\n"
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    assert f"{heading}- data: Shakespeare, not FineWeb" in section
    result["command"] += " --set model.dim=256 --set train.steps=800"
    path.write_text(json.dumps(result))
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    assert (
        f"{heading}**Not these runs' settings**: the bullets below are the earlier registry "
        "entry's texts (written into this file with its runs) and describe that entry's default "
        "protocol, not the settings these runs ran with (`--set model.dim=256`, `--set "
        "train.steps=800`; see As run, above): where a bullet states one of these settings, the "
        "value here is the one that ran.\n\n- data: Shakespeare, not FineWeb"
    ) in section
    measured = json.loads((results_dir / "fourier-sts.json").read_text())
    measured["command"] += " --set train.repeats=9"  # arms of no task: measured, not trained
    (results_dir / "fourier-sts.json").write_text(json.dumps(measured))
    text = format_report(load_results(results_dir), {})
    assert "Not these runs' settings" not in _section(text, "fourier-sts")
    result["differences"] = list(CLAIMS["kronecker-lm-loss"].differences)
    departure = {"setting": "train.steps", "run": 800, "protocol": 400}
    sections = {"model": {"dim": 128}, "train": {"steps": 800}, "data": {}}
    for arm in result["arms"].values():
        arm["settings"] = [{"seeds": [0, 1, 2], **sections, "departures": [departure]}]
    path.write_text(json.dumps(result))
    section = _section(format_report(load_results(results_dir), {}), "kronecker-lm-loss")
    assert (
        f"{heading}**Not these runs' settings**: the bullets below are the registry's texts and "
        "describe its default protocol, not the settings these runs ran with (`train.steps=800`;"
    ) in section


def test_why_a_comparison_is_not_measured():
    """An arm not in the runs, the metric in neither arm or in one only, and (a hand-edited
    file) each arm holding it under another of its names."""
    from petra.reproduce.claims import CLAIMS
    from petra.reproduce.earlier_entry import _stored_name, _unmeasured

    def arm(**row):
        return {"per_seed": {"0": row, "1": {}}}

    comparison = {"a": "k", "b": "t", "metric": "brown/kl_mean"}
    earlier = CLAIMS["kronecker-spelling"].stored_as.protocol  # the entry that stored `kl_mean`
    result = {"claim": "kronecker-spelling", "protocol": earlier,
              "arms": {"k": arm(kl_mean=0.5), "t": arm()}}  # fmt: skip
    assert _unmeasured(result, {**comparison, "b": "n"}) == "no arm `n` in these runs"
    assert _unmeasured(result, comparison) == "`t` stored no `brown/kl_mean`"
    assert _unmeasured(result, {**comparison, "metric": "kl"}) == "these runs stored no `kl`"
    result["arms"]["t"] = arm(**{"brown/kl_mean": 0.4})
    assert _stored_name(result, comparison) is None
    assert _unmeasured(result, comparison) == (
        "`k` and `t` stored `brown/kl_mean` under different names"
    )
    result["arms"]["t"] = arm(kl_mean=None)  # a null is no value
    assert _unmeasured(result, comparison) == "`t` stored no `brown/kl_mean`"
    result["arms"]["t"] = arm(kl_mean=0.4)
    assert _stored_name(result, comparison) == "kl_mean"
    assert _stored_name({**result, "claim": "kronecker-lm-loss"}, comparison) is None
    # a file of another entry (its protocol not the one that stored `kl_mean`): not read so
    assert _stored_name({**result, "protocol": "the paper's pairs"}, comparison) is None


def test_a_new_joint_claim_of_recorded_comparisons_is_answered(results_dir, monkeypatch):
    """Today's entry has the file's comparisons as they are and a joint claim the file did
    not record: its verdict comes from the two recorded verdicts (both hold: it holds)."""
    from petra.reproduce.claims import Comparison, Joint
    from petra.reproduce.earlier_entry import COMPARISON_IDENTITY

    result = json.loads((results_dir / "kronecker-lm-loss.json").read_text())
    recorded = tuple(Comparison(**{k: c.get(k) for k in COMPARISON_IDENTITY})
                     for c in result["comparisons"])  # fmt: skip
    _today_claim(monkeypatch, "kronecker-lm-loss", recorded,
                 (Joint("both", tuple(c.name for c in recorded)),))  # fmt: skip
    text = format_report(load_results(results_dir), {})
    verdicts = [line.rsplit("|", 2)[-2].strip() for line in text.splitlines()
                if line.startswith("| [kronecker-lm-loss]")]  # fmt: skip
    assert verdicts[:2] == ["holds (earlier registry entry: rerun)"] * 2
    assert (
        "| both (today's joint claim, on the stored values) | – | – | – | – | – | holds "
        "(its parts: holds; holds) (earlier registry entry: rerun) |"
    ) in text
    section = _section(text, "kronecker-lm-loss")
    assert (
        "Today's registry entry makes joint claims of the comparisons above that these runs did "
        "not record. Already recorded above (the same comparison), not repeated: "
    ) in section
    assert "- both: **holds** (of Kronecker (untied) vs learned (tied): holds; learned" in section
    assert "| comparison | test |" not in _between(section, "### Today's", "###")


def _spelling_file(results_dir, comparisons, joint, values):
    """The fixture kronecker-lm-loss rewritten as an earlier spelling entry's file: these
    recorded `comparisons` and `joint` claims, each arm's `top1_agreement_pct` per seed."""
    from petra.reproduce.claims import CLAIMS

    result = json.loads((results_dir / "kronecker-lm-loss.json").read_text())
    result.update(claim="kronecker-spelling", comparisons=comparisons, joint=joint, checks=[],
                  plots=[], protocol=CLAIMS["kronecker-spelling"].stored_as.protocol)  # fmt: skip
    for label, arm in result["arms"].items():
        arm["per_seed"] = {str(s): {"top1_agreement_pct": v} for s, v in enumerate(values[label])}
    (results_dir / "kronecker-lm-loss.json").write_text(json.dumps(result))


def test_a_recorded_comparison_today_makes_is_shown_once_as_todays(results_dir, monkeypatch):
    """The earlier spelling entry recorded, on its one pair set, the comparisons today's entry
    makes on the Brown-made pairs (read from the stored `top1_agreement_pct`), one quoting
    the paper's figure, which today's entry quotes for the paper's pairs instead. Each is
    shown once, as today's (its name, no paper's figure), evaluated once; the section says
    what it was recorded as, and why it is not shown so. A comparison of another test stays
    as recorded. Of the recorded joint claims, the one of the replaced comparisons is today's
    joint claim of them (shown once, as today's); the other keeps its place, its verdict of
    the same verdicts. Kronecker 60, 62, 64 against 50, 51, 55: +10, +11, +9, mean 10, sd 1,
    half-width T_2 / sqrt(3) = 2.484; against 70 in each seed: -10, -8, -6, mean -8, sd 2,
    half-width 4.968: [-12.968, -3.032]."""
    from petra.reproduce import earlier_entry, report
    from petra.reproduce.claims import Comparison, Joint

    paper = Comparison("paper's: agreement", "paper/top1_agreement_pct", "kronecker-untied",
                       "learned-tied", "higher", paper="55.5 - 47.3 = +8.2 pts",
                       paper_difference=8.2)  # fmt: skip
    brown = dataclasses.replace(paper, name="Brown: agreement", metric="brown/top1_agreement_pct",
                                paper=None, paper_difference=None)  # fmt: skip
    untied = dataclasses.replace(brown, name="Brown: untied", b="learned-untied")
    both = Joint("Brown: both", (brown.name, untied.name))
    _today_claim(monkeypatch, "kronecker-spelling", (paper, brown, untied), (both,))
    recorded = [
        {**dataclasses.asdict(brown), "name": "agreement", "metric": "top1_agreement_pct",
         "paper": paper.paper},
        {**dataclasses.asdict(untied), "name": "untied agreement", "metric": "top1_agreement_pct"},
        {**dataclasses.asdict(brown), "name": "not inferior", "metric": "top1_agreement_pct",
         "test": "non_inferior", "margin": 5.0},
    ]  # fmt: skip
    joint = [
        {"name": "both agreements", "comparisons": ["agreement", "untied agreement"]},
        {"name": "agreement, not inferior", "comparisons": ["agreement", "not inferior"]},
    ]
    values = {"kronecker-untied": (60, 62, 64), "learned-tied": (50, 51, 55),
              "learned-untied": (70, 70, 70)}  # fmt: skip
    _spelling_file(results_dir, recorded, joint, values)
    evaluated, original = [], report.evaluate
    for module in (report, earlier_entry):
        monkeypatch.setattr(
            module, "evaluate", lambda r, c: evaluated.append(c["name"]) or original(r, c)
        )
    results = load_results(results_dir)
    text = format_report(results, {})
    others = [c["name"] for r in results if r["claim"] != "kronecker-spelling"
              for c in r["comparisons"]]  # fmt: skip
    assert sorted(evaluated) == sorted([*others, "not inferior", brown.name, untied.name])
    summary = text[: text.index('<a id="')]
    claim_cell = "| [kronecker-spelling](#kronecker-spelling) |"
    today, rerun = "(today's comparison, on the stored values)", "(earlier registry entry: rerun)"
    assert (
        f"{claim_cell} Brown: agreement {today} | a better | – "
        "| +10.00 brown/top1_agreement_pct "
        f"[+7.52, +12.48] | 3 | – | holds {rerun} |"
    ) in summary
    assert f"{claim_cell} Brown: untied {today} | a better | – | -8.00 brown/" in summary
    assert summary.count("| -8.00 ") == 1  # once
    assert "55.5 - 47.3" not in summary  # the paper's figure of the paper's pairs: not these
    assert f"{claim_cell} agreement |" not in summary and "untied agreement" not in summary
    assert (
        f"{claim_cell} not inferior | parity within 5.00 top1_agreement_pct | – | +10.00 "
        in summary
    )
    assert (
        f"{claim_cell} agreement, not inferior (joint) | – | – | – | – | – | holds (its parts: "
        f"holds; holds) {rerun}" in summary
    )
    assert (
        f"{claim_cell} Brown: both (today's joint claim, on the stored values) | – | – | – | – | – "
        f"| does not hold (its parts: holds; does not hold) {rerun} |"
    ) in summary
    assert "both agreements" not in summary
    section = _section(text, "kronecker-spelling")
    recorded_table = _between(section, "### Comparisons", "###")
    assert "| not inferior (a =" in recorded_table and "| agreement (a =" not in recorded_table
    assert (
        "each is shown once, here, as today's, in place of the recorded one: Brown: agreement "
        "(recorded as agreement: it quoted the paper's \"55.5 - 47.3 = +8.2 pts\", which today's "
        "entry quotes for paper's: agreement); Brown: untied (recorded as untied agreement)."
    ) in section
    assert (
        "- agreement, not inferior: **holds** (of agreement: holds; not inferior: holds)"
        in _between(section, "### Joint verdicts", "###")
    )
    assert (
        "- Brown: both (recorded as both agreements): **does not hold** (of Brown: agreement: "
        "holds; Brown: untied: does not hold)"
    ) in section
    assert section.count("both agreements") == 1


@pytest.mark.parametrize(
    ("change", "shown_as_todays"),
    [
        ({}, True),
        ({"name": "loss, earlier", "paper": "-9 %", "paper_difference": -9.0}, True),
        ({"relative": False}, False),
        ({"better": "higher"}, False),
        ({"test": "non_inferior", "margin": 0.1}, False),
        ({"b": "learned-untied"}, False),
        ({"metric": "accuracy"}, False),
        ({"floor": 0.0}, False),
    ],
)
def test_only_a_comparison_of_other_quotes_of_the_paper_is_todays(
    results_dir, monkeypatch, change, shown_as_todays
):
    """Today's comparison of the paper's difference -2.5, recorded with none (and, but for
    what is quoted of the paper, alike): shown as today's, its sign set against the paper's
    (-2.33 %, as in test_report_from_fixtures), the section saying the recorded one had no
    paper difference. Recorded otherwise in what it measures or tests, it is another
    comparison, shown as recorded and beside today's."""
    from petra.reproduce.claims import Comparison
    from petra.reproduce.earlier_entry import replaced

    loss = Comparison("loss", "loss", "kronecker-untied", "learned-tied", "lower",
                      relative=True, paper="-2.5 +- 0.2 %", paper_difference=-2.5)  # fmt: skip
    _today_claim(monkeypatch, "kronecker-lm-loss", (loss,))
    path = results_dir / "kronecker-lm-loss.json"
    result = json.loads(path.read_text())
    earlier = {**dataclasses.asdict(loss), "paper_difference": None, **change}
    result["comparisons"] = [earlier]
    path.write_text(json.dumps(result))
    results = load_results(results_dir)
    (loaded,) = [r for r in results if r["claim"] == "kronecker-lm-loss"]
    assert replaced(loaded) == ({earlier["name"]} if shown_as_todays else set())
    text = format_report(results, {})
    summary, section = text[: text.index('<a id="')], _section(text, "kronecker-lm-loss")
    todays_row = (
        "| loss (today's comparison, on the stored values) | a better | -2.5 +- 0.2 % "
        "| -2.33 % [-3.77, -0.90] | 3 | same as the paper; the paper's a − b inside the "
        "interval |"
    )
    assert todays_row in summary
    assert (f"| {earlier['name']} |" in summary) is not shown_as_todays
    assert ("### Comparisons" in section) is not shown_as_todays
    if shown_as_todays:
        was = "recorded under this name" if not change else "recorded as loss, earlier"
        why = "it had no paper difference, so no sign of petra's to set against the paper's"
        assert f"in place of the recorded one: loss ({was}: " in section
        assert (why in section) is ("paper_difference" not in change)  # -9 was one


def test_a_recorded_joint_reads_its_recorded_parts_beside_a_same_named_todays_one(
    results_dir, monkeypatch
):
    """Today's entry has a comparison of a recorded one's name but another control (so it is
    neither the same nor a replacement): the recorded joint claim lists its recorded part's
    verdict (holds: +10), not today's (does not hold: -8, against the untied arm); its other
    part, recorded against the untied arm, does not hold either."""
    from petra.reproduce.claims import Comparison

    recorded = Comparison("agreement", "top1_agreement_pct", "kronecker-untied", "learned-tied",
                          "higher")  # fmt: skip
    other = dataclasses.replace(recorded, name="other", b="learned-untied")
    _today_claim(monkeypatch, "kronecker-spelling",
                 (dataclasses.replace(recorded, b="learned-untied"),))  # fmt: skip
    joint = [{"name": "both", "comparisons": ["agreement", "other"]}]
    values = {"kronecker-untied": (60, 62, 64), "learned-tied": (50, 51, 55),
              "learned-untied": (70, 70, 70)}  # fmt: skip
    _spelling_file(results_dir, [dataclasses.asdict(recorded), dataclasses.asdict(other)],
                   joint, values)  # fmt: skip
    summary = format_report(load_results(results_dir), {}).split('<a id="')[0]
    (row,) = [line for line in summary.splitlines() if "| both (joint) |" in line]
    assert "does not hold (its parts: holds; does not hold)" in row


@pytest.mark.parametrize(
    ("test", "margin", "relative", "short", "full"),
    [
        ("superior", None, False, "a better", "superior (higher accuracy is better)"),
        ("inferior", None, False, "a worse", "a trails b (higher accuracy is better)"),
        ("non_inferior", 1.0, False, "parity within 1.000 accuracy",
         "non-inferior, margin 1.000 accuracy (higher accuracy is better)"),
        ("small_drop", 2.0, True, "a worse by under 2.00 %",
         "small drop: a trails b by less than 2.00 % (higher accuracy is better)"),
    ],
)  # fmt: skip
def test_the_summary_names_each_test_in_a_few_words_as_the_section_does_in_full(
    test, margin, relative, short, full
):
    from petra.reproduce.report import _margin, _short_test

    comparison = {"test": test, "margin": margin, "relative": relative, "metric": "accuracy",
                  "better": "higher"}  # fmt: skip
    outcome = {"decimals": 3}
    assert _short_test(comparison, outcome) == short
    assert _margin(comparison, outcome) == full
