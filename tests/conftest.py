import pytest
import torch

from petra.data import load_tokenizer


@pytest.fixture(scope="session")
def gpt2():
    return load_tokenizer("gpt2")


@pytest.fixture(scope="session")
def bert():
    return load_tokenizer("bert-base-uncased")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
