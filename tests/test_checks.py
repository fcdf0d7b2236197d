"""petra.checks: the one way settings and measures are put in words."""

from petra.checks import key_values


def test_key_values_writes_each_pair_in_order():
    values = {"rank": 8, "mode": "sparse", "expansion": 5.33203125, "seed": None}
    assert key_values(values) == "rank=8, mode=sparse, expansion=5.33203125, seed=None"
    assert key_values(values, floats="g") == "rank=8, mode=sparse, expansion=5.33203, seed=None"
    assert key_values({"tied": True}, floats=".2f") == "tied=True"  # a bool is not a float


def test_key_values_says_what_it_is_given_for_nothing():
    assert key_values({}) == ""
    assert key_values({}, empty="full size") == "full size"
