"""From texts to batches: encoding with truncation, dynamic padding, length-bucketed batch
sampling, and packing a corpus into fixed-length blocks for language modelling.

Padding is always on the right and always comes with an `attention_mask` (1 for real
tokens), and padded positions of language-modelling labels are `IGNORE_INDEX`, so padding
reaches neither the attention, nor the pooling, nor the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import Tensor
from torch.utils.data import Sampler

IGNORE_INDEX = -100  # the default ignore_index of torch.nn.functional.cross_entropy


def encode_texts(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, add_special_tokens: bool = True
) -> list[list[int]]:
    """Token ids of each text, truncated to `max_length` by the tokenizer itself (so BERT's
    [CLS] ... [SEP] stay in place)."""
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    truncating = Tokenizer.from_str(tokenizer.to_str())  # leave the caller's tokenizer as it is
    truncating.no_padding()
    truncating.enable_truncation(max_length)
    encodings = truncating.encode_batch(list(texts), add_special_tokens=add_special_tokens)
    return [encoding.ids for encoding in encodings]


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest sequence of the batch: (input_ids, attention_mask), (B, T)."""
    if not sequences:
        raise ValueError("cannot pad an empty batch")
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


def collate_labeled(pad_id: int) -> Callable[[Sequence[tuple]], dict[str, Tensor]]:
    """A `DataLoader` collate_fn for (token ids, label) items: input_ids, attention_mask,
    labels."""

    def collate(items: Sequence[tuple[Sequence[int], int]]) -> dict[str, Tensor]:
        input_ids, attention_mask = pad_sequences([ids for ids, _ in items], pad_id)
        labels = torch.tensor([label for _, label in items])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    return collate


def lm_labels(input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """Next-token targets for a causal LM: labels[t] = input_ids[t + 1], IGNORE_INDEX at the
    last position and wherever the target is padding. (B, T) -> (B, T)."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    if attention_mask is not None:
        labels[:, :-1].masked_fill_(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return labels


def pack_blocks(documents: Sequence[Sequence[int]], block_size: int, separator_id: int) -> Tensor:
    """Concatenate token-id documents, each followed by `separator_id`, and cut the stream into
    (N, block_size) blocks; the incomplete tail is dropped. No padding is ever needed."""
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    stream = [token for doc in documents for token in (*doc, separator_id)]
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(f"{len(stream)} tokens do not fill one block of {block_size}")
    return torch.tensor(stream[: n_blocks * block_size], dtype=torch.long).view(
        n_blocks, block_size
    )


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose sequences have similar lengths, so that little is padded.

    Each epoch: a seeded shuffle of all indices, cut into pools of `batch_size *
    pool_batches`; each pool is sorted by length and cut into batches; the batches are
    shuffled. `set_epoch` reshuffles. For several processes, wrap it in `ShardedBatches`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        pool_batches: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.pool_batches, self.drop_last = pool_batches, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, n, pool):
            chunk = sorted(order[start : start + pool], key=self.lengths.__getitem__)
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return iter(batches)

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.lengths) // self.batch_size
        pool = self.batch_size * self.pool_batches
        full_pools, tail = divmod(len(self.lengths), pool)
        return full_pools * self.pool_batches + math.ceil(tail / self.batch_size)


class RandomBatchSampler(Sampler[list[int]]):
    """Seeded random batches of `batch_size` indices out of `n` (each epoch a permutation),
    for fixed-length items such as packed LM blocks. `set_epoch` reshuffles."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, drop_last: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(
            self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)
        )
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)


class ShardedBatches(Sampler[list[int]]):
    """Split every global batch of `batch_sampler` among `num_replicas` processes: rank r
    takes items r, r + R, ... of each batch. All ranks see the same global batches, in the
    same order, so a run on R processes follows the single-process run with the same
    global batch. `num_replicas` and `rank` default to torch.distributed's."""

    def __init__(self, batch_sampler, num_replicas: int | None = None, rank: int | None = None):
        initialized = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialized else 1
        if rank is None:
            rank = dist.get_rank() if initialized else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        if batch_sampler.batch_size % num_replicas:
            raise ValueError(
                f"the global batch size {batch_sampler.batch_size} must divide among "
                f"{num_replicas} processes"
            )
        self.batch_sampler, self.num_replicas, self.rank = batch_sampler, num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batch_sampler:
            yield batch[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.batch_sampler)
