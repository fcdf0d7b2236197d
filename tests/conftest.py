import os
import sys
from pathlib import Path

import pytest
import torch

from petra.data import load_tokenizer

if "PYTEST_XDIST_WORKER" in os.environ:  # `make test` runs one worker per core
    torch.set_num_threads(1)

# The kind written outside petra in examples/own_kind.py registers itself on import: every
# test that runs each of `kinds()` (the contract, the Hugging Face swap, compress) holds it
# to the contract petra's own kinds honour.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import own_kind  # noqa: E402, F401


@pytest.fixture(scope="session")
def gpt2():
    return load_tokenizer("gpt2")


@pytest.fixture(scope="session")
def bert():
    return load_tokenizer("bert-base-uncased")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A real byte-level BPE of 384 tokens, trained on the first 100k characters of the
    shared Shakespeare corpus: small enough for tiny models."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from petra.data import resolve_data_dir

    text = (resolve_data_dir() / "corpus" / "shakespeare.txt").read_text()[:100_000]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.splitlines(), trainer)
    return tokenizer


def run_two_processes(*arguments: str, timeout: int = 300):
    """`torchrun --standalone --nproc_per_node 2 ARGUMENTS...` on the CPU (one thread each),
    its output captured; fails the test with the end of stderr unless it exits 0."""
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *arguments]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    # the ranks' own lines come before torchrun's summary of a failure: keep enough to see them
    assert result.returncode == 0, result.stderr[-12000:]
    return result
