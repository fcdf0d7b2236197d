"""A petra embedding dropped into someone else's model: tying a head, a host's weight
initialization and `reset_parameters`, and what `seed` decides."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from petra.embeddings import LearnedEmbedding, build_embedding
from petra.embeddings.base import init_generator, reset_linear_

V, D = 60, 32
TOKENS = [bytes([97 + i % 26]) * (1 + i % 5) for i in range(V)]  # a..z runs, some repeated
CASES = {
    "learned": ("learned", {"padding_idx": 0}),
    "learned-factored": ("learned", {"factor_dim": 4}),
    "fourier": ("fourier", {"refine_bias": True, "final_norm": True}),
    "fourier-geglu": ("fourier", {"refine": "geglu", "expansion": 0.5, "id_order": "permuted"}),
    "kronecker": ("kronecker", {"token_bytes": TOKENS, "pos_dim": 4}),
    "kronecker-rank": ("kronecker", {"token_bytes": TOKENS, "pos_dim": 4, "rank": 3}),
    "qr": ("qr", {}),
    "hash": ("hash", {"buckets": 7}),
    "dhe": ("dhe", {"hidden": 8, "code_dim": 16, "distribution": "gaussian"}),
    "tt": ("tt", {"rank": 2}),
    "random-code": ("random-code", {"bits": 8}),  # examples/own_kind.py (the conftest's)
}
SEEDED = ("fourier", "fourier-geglu", "hash", "dhe", "random-code")


def build(name: str, **extra):
    kind, options = CASES[name]
    return build_embedding(kind, V, D, **options, **extra)


def scramble(module: nn.Module) -> None:
    """A host's `_init_weights`, as `model.apply` calls it on every module, that leaves no
    parameter as it was (nanoGPT's: N(0, 0.02) for Linear and Embedding weights, zero
    biases; here N(0, 0.5) everywhere, so that it also differs from a 0.02-std table)."""
    for parameter in module.parameters(recurse=False):
        nn.init.normal_(parameter, std=0.5)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# -- tying a head -------------------------------------------------------------------------
@pytest.mark.parametrize("name", [name for name in CASES if name != "learned"])
def test_tying_a_weight_is_refused_where_there_is_no_table(name):
    emb, head = build(name), nn.Linear(D, V, bias=False)
    before = dict(emb.named_parameters())
    with pytest.raises(TypeError, match=r"logits = h @ emb\.table\(\)\.T"):
        emb.weight = head.weight  # nanoGPT's tying line
    assert dict(emb.named_parameters()) == before  # nothing registered


def test_tying_a_learned_table_shares_one_parameter_with_the_head():
    emb, head = LearnedEmbedding(V, D, padding_idx=0), nn.Linear(D, V, bias=False)
    emb.weight = head.weight
    assert emb.weight is head.weight and emb.weight_table.weight is head.weight
    model = nn.ModuleDict({"wte": emb, "lm_head": head})
    assert sum(p.numel() for p in model.parameters()) == V * D  # one table, counted once
    ids = torch.tensor([[3, 0, 7, 3]])
    model.lm_head(model.wte(ids)).logsumexp(-1).sum().backward()
    # the same computation on one plain tensor: the padding row embeds to zero
    weight = head.weight.detach().clone().requires_grad_()
    rows = F.embedding(ids, weight) * (ids != 0).unsqueeze(-1)
    (rows @ weight.T).logsumexp(-1).sum().backward()
    torch.testing.assert_close(head.weight.grad, weight.grad)


def test_a_learned_weight_of_another_shape_or_a_factorized_table_is_refused():
    emb = LearnedEmbedding(V, D)
    with pytest.raises(ValueError, match=r"the table's shape \(60, 32\), got \(32, 60\)"):
        emb.weight = nn.Parameter(torch.zeros(D, V))
    factored = LearnedEmbedding(V, D, factor_dim=4)
    with pytest.raises(AttributeError):
        factored.weight  # noqa: B018
    with pytest.raises(TypeError, match="factor_dim=4\\) has no V x d weight"):
        factored.weight = nn.Linear(D, V).weight


# -- reset_parameters -------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_reset_after_a_host_init_redraws_every_parameter(name):
    """After a host's init, `reset_parameters` under a global seed gives what it gives on a
    fresh module: nothing the host wrote survives, and the buffers are untouched."""
    torch.manual_seed(3)
    fresh, emb = build(name), build(name)
    buffers = {k: v.clone() for k, v in emb.named_buffers()}
    emb.apply(scramble)
    for (key, value), original in zip(emb.named_parameters(), fresh.parameters(), strict=True):
        assert not torch.equal(value, original), key  # the host changed every parameter
    torch.manual_seed(4)
    emb.reset_parameters()
    torch.manual_seed(4)
    fresh.reset_parameters()
    assert_same_state(emb, fresh)
    for key, value in emb.named_buffers():
        assert torch.equal(value, buffers[key]), key


@pytest.mark.parametrize("name", CASES)
def test_reset_draws_from_the_constructors_distributions(name):
    """Each parameter's spread after reset is the constructor's (to sampling error: within
    15 % for the larger tensors; exact for a constant such as a norm gain), and the host's
    is not."""
    torch.manual_seed(5)
    fresh, emb = build(name), build(name)
    emb.apply(scramble)
    scrambled = {key: value.detach().clone() for key, value in emb.named_parameters()}
    emb.reset_parameters()
    for (key, value), original in zip(emb.named_parameters(), fresh.parameters(), strict=True):
        if original.std() == 0:  # a constant: the norm gain, hash importance weights
            assert torch.equal(value, original), key
        elif value.numel() >= 100:
            ratio = (value.std() / original.std()).item()
            assert 0.85 < ratio < 1.15, (key, ratio)
            assert not 0.85 < (scrambled[key].std() / original.std()).item() < 1.15, key


def test_reset_restores_the_kronecker_rows_and_the_learned_padding_row():
    """The closed forms: Kronecker rows of W ~ N(0, 1/D) have E ||w_i||^2 = D / D = 1 (a
    nanoGPT N(0, 0.02) init gives 0.02 sqrt(D) = 0.64 at D = 1024); a learned table's
    padding row starts at zero."""
    emb = build("kronecker")
    emb.apply(scramble)
    assert emb.weight_norms()["matrix_row_norm_mean"] == pytest.approx(0.5 * math.sqrt(1024), 0.05)
    emb.reset_parameters()
    assert emb.weight_norms()["matrix_row_norm_mean"] == pytest.approx(1.0, abs=0.05)
    learned = build("learned")
    learned.apply(scramble)
    learned.reset_parameters()
    assert not learned.weight_table.weight[0].any()
    assert learned.weight_table.weight[1:].std().item() == pytest.approx(0.02, rel=0.1)


def test_reset_linear_with_a_generator_is_nn_linears_own_initialization():
    """Drawn from a generator, it equals what `nn.Linear`'s constructor draws from the global
    RNG seeded alike (weight, then bias)."""
    linear = nn.Linear(24, 10)
    reset_linear_(linear, torch.Generator().manual_seed(11))
    torch.manual_seed(11)
    reference = nn.Linear(24, 10)
    assert torch.equal(linear.weight, reference.weight)
    assert torch.equal(linear.bias, reference.bias)
    assert linear.weight.abs().max() <= 1 / math.sqrt(24)


# -- seed -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SEEDED)
def test_a_seed_gives_the_same_module_whatever_the_global_rng(name):
    torch.manual_seed(1)
    first = build(name, seed=3)
    torch.manual_seed(2)
    assert_same_state(first, build(name, seed=3))
    other = build(name, seed=4)
    assert not all(map(torch.equal, first.parameters(), other.parameters()))


@pytest.mark.parametrize("name", SEEDED)
def test_without_a_seed_the_global_rng_draws_the_parameters(name):
    torch.manual_seed(1)
    first = build(name)
    torch.manual_seed(1)
    assert_same_state(first, build(name))
    torch.manual_seed(2)
    other = build(name)
    assert not all(map(torch.equal, first.parameters(), other.parameters()))
    fixed = dict(build(name, seed=0).named_buffers())  # hash functions, a permutation: seed 0's
    assert {key: torch.equal(value, fixed[key]) for key, value in first.named_buffers()} == {
        key: True for key in fixed
    }


@pytest.mark.parametrize("name", SEEDED)
def test_a_seeded_reset_gives_the_constructors_draws_in_any_dtype(name):
    """The draws are made in float32 on the CPU and copied: bit for bit the constructor's
    (a constant such as the hash importance 1 / sqrt(k) is filled in the float64 itself)."""
    emb = build(name, seed=7).double()
    emb.apply(scramble)
    emb.reset_parameters()
    fresh = dict(build(name, seed=7).double().named_parameters())
    for key, value in emb.named_parameters():
        if fresh[key].std() > 0:
            assert torch.equal(value, fresh[key]), key
        else:
            torch.testing.assert_close(value, fresh[key])


def test_the_initial_parameters_do_not_reuse_the_fixed_parts_stream():
    """The CPU generator reads only a seed's low 32 bits: the init stream must differ there."""
    for seed in (0, 5, 2**40 + 5, -1):
        drawn = init_generator(seed).initial_seed()
        assert drawn % 2**32 != seed % 2**32
    assert init_generator(None) is None
