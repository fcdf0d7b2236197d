"""Encoding, padding, bucketing and packing; padding never reaches the loss or the pooling."""

import pytest
import torch
import torch.nn.functional as F

from petra.data.batching import (
    IGNORE_INDEX,
    LengthBucketBatchSampler,
    RandomBatchSampler,
    ShardedBatches,
    collate_labeled,
    encode_texts,
    lm_labels,
    pack_blocks,
    pad_sequences,
)
from petra.models import ModelConfig, build_model


def test_truncation_keeps_special_tokens_and_leaves_the_tokenizer_alone(bert):
    ids = encode_texts(bert, ["one two three four five six seven", "hi"], max_length=5)
    assert ids[0][0] == 101 and ids[0][-1] == 102 and len(ids[0]) == 5
    assert ids[1] == bert.encode("hi").ids
    assert len(bert.encode("one two three four five six seven").ids) == 9  # caller's untouched


def test_dynamic_padding_to_the_longest_in_batch():
    ids, mask = pad_sequences([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_collators():
    batch = collate_labeled(pad_id=0)([([1, 2], 1), ([3], 0)])
    assert batch["input_ids"].shape == (2, 2) and batch["labels"].tolist() == [1, 0]


def test_lm_labels_never_target_padding():
    ids, mask = pad_sequences([[5, 6, 7, 8], [9, 10]], pad_id=0)
    labels = lm_labels(ids, mask)
    assert labels.tolist() == [
        [6, 7, 8, IGNORE_INDEX],
        [10, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ]


def test_padding_reaches_neither_loss_nor_pooling(tiny_tokenizer):
    """The same examples, padded to different lengths, give the same LM loss and the same
    classifier logits."""
    torch.manual_seed(0)
    base = dict(vocab_size=tiny_tokenizer.get_vocab_size(), dim=32, n_layers=1, n_heads=2)
    lm = build_model(ModelConfig(model="causal_lm", **base)).eval()
    classifier = build_model(ModelConfig(model="classifier", **base)).eval()
    texts = ["to be or not to be", "the king"]
    sequences = encode_texts(tiny_tokenizer, texts, max_length=32)
    short, short_mask = pad_sequences(sequences, pad_id=0)
    long, long_mask = pad_sequences([*sequences, [1] * (len(sequences[0]) + 9)], pad_id=0)
    long, long_mask = long[:2], long_mask[:2]  # the same two examples, with 9 more pads

    def lm_loss(ids, mask):
        logits = lm(ids, attention_mask=mask)
        return F.cross_entropy(
            logits.flatten(0, 1), lm_labels(ids, mask).flatten(), reduction="sum"
        )

    torch.testing.assert_close(
        lm_loss(long, long_mask), lm_loss(short, short_mask), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        classifier(long, attention_mask=long_mask),
        classifier(short, attention_mask=short_mask),
        rtol=1e-5,
        atol=1e-5,
    )


def test_packing_cuts_the_stream_into_full_blocks():
    blocks = pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4, separator_id=0)
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]


def test_bucketed_batches_cover_everything_once_with_similar_lengths():
    lengths = [(i * 37) % 100 + 1 for i in range(1000)]
    sampler = LengthBucketBatchSampler(lengths, batch_size=16, seed=3, pool_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(
        batches
    )
    assert spread < 15  # random batches of 16 would span about 90
    assert [b for b in LengthBucketBatchSampler(lengths, 16, seed=3, pool_batches=10)] == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_sharded_batches_split_each_global_batch():
    global_batches = list(LengthBucketBatchSampler(list(range(1, 102)), 16, seed=0))
    shards = [
        list(ShardedBatches(LengthBucketBatchSampler(list(range(1, 102)), 16, seed=0), 2, r))
        for r in (0, 1)
    ]
    for whole, a, b in zip(global_batches, *shards, strict=True):
        assert sorted(a + b) == sorted(whole) and not set(a) & set(b)
    with pytest.raises(ValueError, match="global batch size 16 must divide among 3 processes"):
        ShardedBatches(LengthBucketBatchSampler([1] * 10, 16), 3, 0)


def test_random_batches_are_a_seeded_permutation():
    sampler = RandomBatchSampler(10, 3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 and len({i for b in batches for i in b}) == 9
    assert batches == list(RandomBatchSampler(10, 3, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    from petra.tasks.classify import accuracy_and_macro_f1

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (200,), generator=generator)  # a 4th class never occurs
    noise = torch.randint(0, 3, (200,), generator=generator)
    predictions = torch.where(torch.rand(200, generator=generator) < 0.6, labels, noise)
    ours = accuracy_and_macro_f1(predictions, labels)
    assert ours["macro_f1"] == pytest.approx(100 * f1_score(labels, predictions, average="macro"))
    assert ours["accuracy"] == pytest.approx(100 * accuracy_score(labels, predictions))
