"""petra.checks: the one way settings and measures are put in words, and the fields of a JSON
file checked."""

from petra.checks import field_problem, key_values


def test_key_values_writes_each_pair_in_order():
    values = {"rank": 8, "mode": "sparse", "expansion": 5.33203125, "seed": None}
    assert key_values(values) == "rank=8, mode=sparse, expansion=5.33203125, seed=None"
    assert key_values(values, floats="g") == "rank=8, mode=sparse, expansion=5.33203, seed=None"
    assert key_values({"tied": True}, floats=".2f") == "tied=True"  # a bool is not a float


def test_key_values_says_what_it_is_given_for_nothing():
    assert key_values({}) == ""
    assert key_values({}, empty="full size") == "full size"


FIELDS = {(None, "steps"): int, (None, "seconds"): float, ("settings", "kind"): str,
          ("settings", "factor_dim"): int | None}  # fmt: skip
GOOD = {"steps": 4, "seconds": 2, "settings": {"kind": "kronecker", "factor_dim": None}}


def test_field_problem_names_the_first_field_missing_or_of_another_type():
    assert field_problem(GOOD, FIELDS) is None  # an integer is a number; None is allowed
    assert field_problem({**GOOD, "steps": True}, FIELDS) == "steps is True, not an integer"
    assert field_problem({**GOOD, "seconds": "2"}, FIELDS) == "seconds is '2', not a number"
    assert field_problem({"settings": GOOD["settings"]}, FIELDS) == "no steps"  # the first
    settings = {**GOOD, "settings": {"kind": 3, "factor_dim": "4"}}
    assert field_problem(settings, FIELDS) == "settings.kind is 3, not a string"
    settings = {**GOOD, "settings": {"kind": "tt", "factor_dim": "4"}}
    problem = "settings.factor_dim is '4', not an integer or none"
    assert field_problem(settings, FIELDS) == problem
    assert field_problem({**GOOD, "settings": {"factor_dim": 2}}, FIELDS) == "no settings.kind"
    assert field_problem({**GOOD, "settings": ["kronecker"]}, FIELDS) == "no settings.kind"


def test_field_problem_without_required_checks_only_the_fields_present():
    assert field_problem({}, FIELDS, required=False) is None
    assert field_problem({"settings": {}}, FIELDS, required=False) is None
    assert field_problem({"seconds": None}, FIELDS, required=False) == (
        "seconds is None, not a number"
    )
