"""The reproduction's measurements: the result schema, the exact facts among their checks,
the training step they time, and the pretrained table they load. Nothing here compares times."""

import json

import pytest
import torch

from petra import KroneckerEmbedding
from petra.embeddings.token_bytes import token_bytes
from petra.reproduce import get_claim, measures
from petra.reproduce.claims import Comparison
from petra.reproduce.measures import (
    STEP_METRIC,
    Arm,
    _resolution,
    _time_arms,
    claim_model,
    kronecker_codec_overhead,
    pete_step_time,
    reference_kronecker,
    spectral_heads,
    spectral_scaling,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine another busy process makes every
    multi-threaded step many times slower (these tests time nothing)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_schema(result: dict, labels: list[str]) -> None:
    assert list(result["arms"]) == labels
    for arm in result["arms"].values():
        assert arm["description"] and isinstance(arm["params"], dict)
        assert list(arm["per_seed"]) == ["0", "1"]
        assert all(seed[STEP_METRIC] > 0 for seed in arm["per_seed"].values())
    for check in result["checks"]:
        assert set(check) == {"name", "value", "expected", "holds"}
    assert result["notes"] and all(isinstance(note, str) for note in result["notes"])
    assert json.loads(json.dumps(result)) == result  # what the runner stores


def test_pete_step_time():
    result = pete_step_time(repeats=2, steps=2, quick=True)
    check_schema(result, ["learned", "fourier"])
    learned, fourier = (result["arms"][k]["params"] for k in ("learned", "fourier"))
    assert learned["embedding"] == 30522 * 256  # the official layouts: RMSNorm(T + R T + b)
    assert fourier["embedding"] == 256 * 256 + 2 * 256
    assert learned["encoder"] == fourier["encoder"]  # the same 1-layer encoder


def test_pete_step_time_times_the_zero_shot_claims_models_of_its_size():
    """The measure reads its arms off the pete-sts-zero-shot claim's arms of its size, each
    set up as the official code sets up its arm."""
    claim = get_claim("pete-sts-zero-shot")
    size = {"dim": 256, "n_layers": 1, "n_heads": 1, "max_len": 64}
    assert claim_model(claim, "learned-1x256") == {
        **size, "embedding": {"kind": "learned"},
        "embedding_norm": True, "embedding_dropout": 0.1, "dropout": 0.1,
    }  # fmt: skip
    assert claim_model(claim, "fourier-1x256") == {
        **size, "embedding": {"kind": "fourier", "refine_bias": True, "final_norm": True},
    }  # fmt: skip


ARMS = ["petra-sparse", "reference-on-the-fly", "reference-precomputed"]


def test_kronecker_codec_overhead_byte_counts_and_resolution():
    result = kronecker_codec_overhead(repeats=2, steps=2, quick=True)
    check_schema(result, ARMS)
    paper, ours, table = result["checks"]
    assert paper["value"] == paper["expected"] == 50257 * (16 + 2)  # the paper's figure
    assert ours["value"] == ours["expected"] == 50257 * (16 + 4)
    assert table["value"] == table["expected"] == 50257 * 256 * 16 * 4
    assert paper["holds"] and ours["holds"] and table["holds"]
    arms = result["arms"]
    # the same trainable model: only where the codec comes from differs
    assert len({arms[label]["params"]["total"] for label in ARMS}) == 1
    assert arms["reference-precomputed"]["params"]["embedding_buffer_bytes"] > table["value"]
    assert arms["reference-on-the-fly"]["params"]["embedding_buffer_bytes"] == paper["value"]
    # one resolution row per comparison of the claim, each against its own test's bound
    claim = get_claim("kronecker-runtime")
    assert claim.measure == "kronecker_codec_overhead"
    rows = result["resolution"]
    assert [(row["a"], row["b"], row["test"]) for row in rows] == [
        (c.a, c.b, c.test) for c in claim.comparisons
    ]
    assert [row["bound_pct"] for row in rows] == [1.0, 1.0, 0.0]
    assert all(row["repeats"] == 2 and row["half_width_pct"] >= 0 for row in rows)
    assert sum(note.startswith("resolution, ") for note in result["notes"]) == 3


def test_reference_arms_equal_petra_in_outputs_and_gradients(gpt2):
    """The paper's package, dynamic and cached, in petra's embedding contract: for petra's
    bytes and projection it gives petra's rows and projection gradients (float32 rounding),
    on ids with repeats, every position computed (no dedupe) as the package computes it."""
    petra = KroneckerEmbedding.from_token_bytes(token_bytes(gpt2)[:2000], 24, pos_dim=16)
    ids = torch.randint(0, 2000, (3, 40))
    ids[1] = ids[0]  # repeated ids
    target = torch.randn(3, 40, 24)
    (petra(ids) * target).sum().backward()
    scale = petra.projection.weight.grad.abs().max()
    for mode in ("dynamic", "cached"):
        reference = reference_kronecker(petra, mode)
        assert not reference.computes_rows and reference.reference.mode == mode
        out = reference(ids)
        torch.testing.assert_close(out, petra(ids), rtol=1e-5, atol=1e-5)
        (out * target).sum().backward()
        grad = reference.reference.projection.weight.grad
        torch.testing.assert_close(
            grad / scale, petra.projection.weight.grad / scale, rtol=1e-5, atol=1e-5
        )
        with pytest.raises(ValueError, match="outside the vocabulary range"):
            reference(torch.tensor([2000]))


def test_reference_arm_refuses_a_factorized_projection():
    petra = KroneckerEmbedding.from_token_bytes([b"ab", b"c"], 8, pos_dim=4, rank=2)
    with pytest.raises(ValueError, match="no factorized projection"):
        reference_kronecker(petra, "dynamic")


def _timed(a_ms: list[float], b_ms: list[float]) -> dict:
    return {
        label: {str(r): {STEP_METRIC: ms} for r, ms in enumerate(times)}
        for label, times in (("a", a_ms), ("b", b_ms))
    }


PARITY = Comparison("a vs b", STEP_METRIC, "a", "b", "lower", "non_inferior", 1.0, relative=True)
FASTER = Comparison("a vs b", STEP_METRIC, "a", "b", "lower", relative=True)


def test_resolution_by_hand():
    """a = 101, 102, 103 ms against b = 100: differences 1, 2, 3 % (1, 2, 3 ms), mean 2, sd 1,
    half-width t_{0.975, 2} / sqrt(3) = 4.3027 / 1.7321 = 2.4841 %; the distance cleared
    80 % of the time (t_{0.975, 2} + t_{0.8, 2}) / sqrt(3) = 3.0965 %. Against the parity
    bound +1 % the interval [-0.48, +4.48] does not clear it; the measured mean lies 1 % from
    it, and at sd 1 the n with (t_{0.975, n-1} + t_{0.8, n-1}) / sqrt(n) <= 1 is 10
    ((2.2622 + 0.8834) / 3.1623 = 0.9947; 9 gives (2.3060 + 0.8889) / 3 = 1.0650), as is the
    margin shown met by equal arms. Against 0 (superiority) the mean lies 2 % away: n = 5
    ((2.7764 + 0.9410) / 2.2361 = 1.6625; 4 gives (3.1824 + 0.9785) / 2 = 2.0805), and no
    margin to meet. Three repeats have no halves."""
    timed = _timed([101.0, 102.0, 103.0], [100.0] * 3)
    (row,) = _resolution(timed, (PARITY,))
    assert row["repeats"] == 3 and row["mean_pct"] == pytest.approx(2.0)
    assert row["sd_pct"] == pytest.approx(1.0) and row["bound_pct"] == 1.0
    assert row["half_width_pct"] == pytest.approx(2.4841, abs=1e-4)
    assert row["mean_ms"] == pytest.approx(2.0)
    assert row["detectable_pct"] == pytest.approx(3.09651, abs=1e-5)
    assert not row["cleared"]
    assert row["repeats_to_clear"] == row["repeats_to_meet_margin"] == 10
    assert row["halves"] is None
    note = measures._resolution_note(row)
    assert "(non_inferior, bound +1 %)" in note and "about 10 repeats" in note
    assert "wholly above the bound" in note and "showing the 1 % margin met" in note
    (row,) = _resolution(timed, (FASTER,))
    assert row["bound_pct"] == 0.0 and not row["cleared"]
    assert row["repeats_to_clear"] == 5 and row["repeats_to_meet_margin"] is None
    assert "(superior, bound 0 %)" in measures._resolution_note(row)
    # a faster by 1-3 %: the interval lies below the parity bound, nothing more to run
    (row,) = _resolution(_timed([100.0] * 3, [101.0, 102.0, 103.0]), (PARITY,))
    assert row["mean_pct"] < 0 and row["cleared"] and row["repeats_to_clear"] is None
    assert "The interval lies wholly below the bound." in measures._resolution_note(row)
    (row,) = _resolution(_timed([101.0], [100.0]), (PARITY,))
    assert row["half_width_pct"] is None and row["repeats_to_meet_margin"] is None


def test_resolution_halves_show_drift():
    """Differences 1, 3, 2 then 2, 2, 2 %: the first half's interval 2 +- t_{0.975, 2} / sqrt(3)
    = 2 +- 2.4841 straddles the +1 % bound (inconclusive); the second half has no spread,
    [2, 2], wholly above it (does not hold). The note gives both; five repeats give no
    halves (a half of two values has t_{0.975, 1} = 12.7)."""
    timed = _timed([101.0, 103.0, 102.0, 102.0, 102.0, 102.0], [100.0] * 6)
    (row,) = _resolution(timed, (PARITY,))
    first, second = row["halves"]
    assert first["repeats"] == [0, 2] and second["repeats"] == [3, 5]
    assert first["mean_pct"] == pytest.approx(2.0)
    assert first["high_pct"] - first["mean_pct"] == pytest.approx(2.4841, abs=1e-4)
    assert first["verdict"] == "inconclusive" and second["verdict"] == "does not hold"
    note = measures._resolution_note(row)
    assert "repeats 0-2 +2.00 %" in note and "(does not hold)" in note
    assert "The interval lies wholly above the bound." in note  # all six: [+1.34, +2.66]
    (row,) = _resolution(_timed([101.0, 103.0, 102.0, 102.0, 102.0], [100.0] * 5), (PARITY,))
    assert row["halves"] is None


def test_spectral_scaling_encoder_counts():
    result = spectral_scaling(repeats=2, steps=2, quick=True)
    check_schema(result, ["standard", "p2", "p4", "p8"])
    assert len(result["checks"]) == 6 and all(check["holds"] for check in result["checks"])
    standard = result["arms"]["standard"]["params"]
    for p in (2, 4, 8):
        spectral = result["arms"][f"p{p}"]["params"]
        assert spectral["encoder_matrix_params"] * p == standard["encoder_matrix_params"]
        assert spectral["encoder_norm_params"] == standard["encoder_norm_params"]  # p slices of m
        assert (
            spectral["embedding"] == standard["embedding"] and spectral["head"] == standard["head"]
        )


def test_spectral_heads_keep_width_64_where_the_slice_allows():
    assert [spectral_heads(256, p) for p in (1, 2, 4, 8)] == [4, 2, 1, 1]
    assert 256 // 8 // spectral_heads(256, 8) == 32


def test_arm_step_is_a_whole_training_step():
    """Every trainable parameter moves, gradients are cleared, the schedule advances."""
    from petra.models import ModelConfig, build_model

    class Task:
        def loss(self, model, batch):
            logits = model(batch["input_ids"])
            return torch.nn.functional.cross_entropy(logits, batch["labels"]), 8

    model = build_model(ModelConfig(model="classifier", vocab_size=50, dim=16, n_layers=1))
    arm = Arm("tiny", model, Task(), {})
    before = [p.detach().clone() for p in model.parameters()]
    lr = arm.optimizer.param_groups[0]["lr"]
    arm.step({"input_ids": torch.randint(0, 50, (2, 4)), "labels": torch.tensor([0, 1])})
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert arm.optimizer.param_groups[0]["lr"] != lr  # warmup: the next step's rate
    assert arm.grad_clip == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_williams_orders_balance_places_and_predecessors(n):
    import itertools
    from collections import Counter

    from petra.reproduce.measures import williams_orders

    orders = williams_orders(n)
    assert len(orders) == (n if n % 2 == 0 else 2 * n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    places = Counter((place, arm) for order in orders for place, arm in enumerate(order))
    assert set(places.values()) == {len(orders) // n}  # every arm in every place alike
    follows = Counter(pair for order in orders for pair in itertools.pairwise(order))
    if n > 1:  # every ordered pair of distinct arms adjacent equally often
        assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1


def test_arm_steps_as_the_trainer_steps(tmp_path):
    """From the same weights, batches and RNG, three steps of an `Arm` and of the `Trainer`
    (at the trainer's default settings, as the arm takes them) end with the same weights."""
    import copy

    from petra.tasks.run import build_run, load_preset
    from petra.training import TrainConfig, Trainer

    task, model, config = build_run("classify", load_preset("classify", "tiny"))
    arm = Arm("tiny", copy.deepcopy(model), task, {})
    start = copy.deepcopy(model.state_dict())
    defaults = TrainConfig(device="cpu", batch_size=config.batch_size)
    trainer = Trainer(model, task, defaults, tmp_path, progress=False)
    sampler = iter(task.batch_sampler(config.batch_size, 0))
    for _ in range(3):
        batch = task.collate([task.train_dataset[i] for i in next(sampler)])
        torch.manual_seed(1)
        trainer._step(trainer.model, batch)
        torch.manual_seed(1)
        arm.step(batch)
    for (name, a), b in zip(trainer.model.state_dict().items(), arm.model.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    moved = [k for k, v in start.items() if not torch.equal(v, arm.model.state_dict()[k])]
    assert len(moved) == len([p for p in model.parameters() if p.requires_grad])


def test_timing_on_a_busy_machine_warns_before_it_times(monkeypatch, capsys):
    """A 1-minute load average above the run's own threads plus `BUSY_LOAD` before timing
    means another process runs: the times will be noisy, and it is said before they are
    taken (the load is in the notes). The run's own load alone does not warn."""

    class Counting:
        steps = 0

        def step(self, batch):
            self.steps += 1

    arms = {"a": Counting(), "b": Counting()}
    own = torch.get_num_threads()
    busy = own + 1.0  # another single-threaded job beside this run
    monkeypatch.setattr(measures.os, "getloadavg", lambda: (busy, 1.0, 0.5))
    per_seed, load = _time_arms(arms, [{}], repeats=2, steps=3, warmup=1)
    assert f"load average is {busy:.2f} before timing" in capsys.readouterr().out
    assert load[0] == busy and arms["a"].steps == arms["b"].steps == 1 + 2 * 3
    assert sorted(per_seed["a"]) == ["0", "1"]
    monkeypatch.setattr(measures.os, "getloadavg", lambda: (own + 0.1, 0.1, 0.1))  # itself
    _time_arms(arms, [{}], repeats=1, steps=1, warmup=0)
    assert "warning" not in capsys.readouterr().out
    loads = iter([(own + 0.1, 0.1, 0.1), (busy, 1.0, 0.5)])  # a job starts while it times
    monkeypatch.setattr(measures.os, "getloadavg", lambda: next(loads))
    _time_arms(arms, [{}], repeats=1, steps=1, warmup=0)
    assert f"rose to {busy:.2f} while timing" in capsys.readouterr().out
