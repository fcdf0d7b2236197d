"""Fourier (PETE) embeddings and their bases, against closed forms and scipy."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import special

from petra import FourierEmbedding
from petra.embeddings.bases import BASES, build_basis


def closed_form_fourier(x: float, dim: int) -> list[float]:
    """Feature i: sin((i//2 + 1) pi x) for even i, cos(...) for odd i (DESIGN.md)."""
    return [(math.sin if i % 2 == 0 else math.cos)((i // 2 + 1) * math.pi * x) for i in range(dim)]


@pytest.mark.parametrize(
    "normalize, x_of",
    [
        ("half-open", lambda token_id, vocab: 2 * token_id / vocab - 1),
        ("paper", lambda token_id, vocab: 2 * token_id / (vocab - 1) - 1),
    ],
)
def test_features_match_the_closed_form(normalize, x_of):
    vocab, dim = 30522, 12
    emb = FourierEmbedding(vocab, dim, refine="none", normalize=normalize)
    for token_id in (0, 1, 2, 777, vocab // 2, vocab - 2, vocab - 1):
        expected = torch.tensor(closed_form_fourier(x_of(token_id, vocab), dim))
        torch.testing.assert_close(emb(torch.tensor(token_id)), expected, rtol=0, atol=1e-6)


def test_paper_normalization_makes_first_and_last_id_identical():
    emb = FourierEmbedding(1000, 64, refine="none", normalize="paper")
    first, last = emb(torch.tensor([0, 999]))
    torch.testing.assert_close(first, last, rtol=0, atol=1e-6)
    default = FourierEmbedding(1000, 64, refine="none")
    assert (default(torch.tensor(0)) - default(torch.tensor(999))).abs().max() > 1e-3


def test_all_bert_sized_rows_are_distinct():
    """The published code normalized ids by sequence length and collapsed 30,522 ids onto 127."""
    emb = FourierEmbedding(30522, 256)
    with torch.no_grad():
        table = emb.table()
        features = emb.features(torch.arange(30522))
    assert torch.unique(table, dim=0).shape[0] == 30522
    assert torch.unique(features, dim=0).shape[0] == 30522


@pytest.mark.parametrize(
    "options, closed_form",
    [
        (dict(refine="linear"), lambda d: d * d),
        (dict(refine="geglu"), lambda d: 3 * d * (4 * d)),
        (dict(refine="geglu", expansion=0.25), lambda d: 3 * d * (d // 4)),
        (dict(refine="none"), lambda d: 0),
        (dict(refine="linear", final_norm=True), lambda d: d * d + d),
        (dict(refine="linear", refine_bias=True, final_norm=True), lambda d: d * d + 2 * d),
        (dict(refine="geglu", expansion=0.25, final_norm=True), lambda d: 3 * d * (d // 4) + d),
    ],
)
@pytest.mark.parametrize("dim", [64, 256])
def test_parameter_report_equals_the_closed_form(options, closed_form, dim):
    report = FourierEmbedding(30522, dim, **options).param_report()
    assert report.trainable_params == closed_form(dim)
    assert report.learned_equivalent == 30522 * dim


def test_embedding_is_features_plus_refinement():
    emb = FourierEmbedding(500, 32, refine="linear", final_norm=True)
    ids = torch.tensor([3, 250, 499])
    t = emb.features(ids)
    e = t + t @ emb.refine.weight.T
    expected = e / torch.sqrt(e.pow(2).mean(-1, keepdim=True) + 1e-6) * emb.norm.weight
    torch.testing.assert_close(emb(ids), expected)
    assert torch.equal(FourierEmbedding(500, 32, refine="none")(ids), t)


def test_the_official_layout_is_norm_of_features_plus_biased_linear():
    """The official code's PETE embedding: RMSNorm(R T + b + T)."""
    emb = FourierEmbedding(500, 32, refine_bias=True, final_norm=True)
    with torch.no_grad():
        emb.refine.bias.normal_()  # a trained-looking bias, not the default start
    ids = torch.tensor([3, 250, 499])
    t = emb.features(ids)
    e = t + t @ emb.refine.weight.T + emb.refine.bias
    expected = e / torch.sqrt(e.pow(2).mean(-1, keepdim=True) + 1e-6) * emb.norm.weight
    torch.testing.assert_close(emb(ids), expected)


@pytest.mark.parametrize("basis", sorted(BASES))
def test_cached_features_equal_on_the_fly(basis):
    torch.manual_seed(1)
    live = FourierEmbedding(300, 24, basis=basis, refine="geglu", seed=5)
    cached = FourierEmbedding(300, 24, basis=basis, refine="geglu", seed=5, cache_features=True)
    cached.load_state_dict(live.state_dict())
    ids = torch.randint(0, 300, (4, 7))
    torch.testing.assert_close(cached(ids), live(ids), rtol=0, atol=0)
    assert set(cached.state_dict()) == set(live.state_dict())  # a cache, not state
    torch.testing.assert_close(cached.double()(ids), live.double()(ids), rtol=0, atol=0)


def test_cached_features_follow_a_loaded_id_order():
    source = FourierEmbedding(200, 16, id_order="permuted", seed=3)
    target = FourierEmbedding(200, 16, id_order="permuted", seed=99, cache_features=True)
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(torch.arange(200)), source(torch.arange(200)))


def test_random_basis_seed_is_saved_with_the_weights():
    source = FourierEmbedding(100, 16, basis="random", seed=1)
    target = FourierEmbedding(100, 16, basis="random", seed=2)
    assert not torch.allclose(target(torch.arange(100)), source(torch.arange(100)))
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(torch.arange(100)), source(torch.arange(100)))


def test_permuted_order_is_natural_order_at_the_permuted_rank():
    natural = FourierEmbedding(200, 16)
    permuted = FourierEmbedding(200, 16, id_order="permuted", seed=3)
    permuted.refine.load_state_dict(natural.refine.state_dict())
    rank = permuted.id_rank.long()
    assert sorted(rank.tolist()) == list(range(200)) and not torch.equal(rank, torch.arange(200))
    ids = torch.arange(200)
    torch.testing.assert_close(permuted(ids), natural(rank))


def test_permutation_survives_a_safetensors_round_trip(tmp_path):
    source = FourierEmbedding(200, 16, id_order="permuted", seed=3)
    save_file(source.state_dict(), tmp_path / "emb.safetensors")
    target = FourierEmbedding(200, 16, id_order="permuted", seed=99)  # another permutation
    target.load_state_dict(load_file(tmp_path / "emb.safetensors"))
    ids = torch.arange(200)
    assert torch.equal(target.id_rank, source.id_rank)
    torch.testing.assert_close(target(ids), source(ids), rtol=0, atol=0)


def test_frequency_order_puts_frequent_tokens_together():
    counts = np.array([5, 100, 0, 100, 7])  # id 1 and 3 tie: lower id first
    emb = FourierEmbedding(5, 8, id_order="frequency", token_counts=counts)
    assert emb.id_rank.tolist() == [3, 0, 4, 1, 2]
    natural = FourierEmbedding(5, 8, refine="none")
    frequency = FourierEmbedding(5, 8, refine="none", id_order="frequency", token_counts=counts)
    torch.testing.assert_close(frequency(torch.arange(5)), natural(frequency.id_rank.long()))
    with pytest.raises(ValueError, match=r"token_counts must be 5 counts >= 0 .*: got 4$"):
        FourierEmbedding(5, 8, id_order="frequency", token_counts=counts[:4])
    with pytest.raises(ValueError, match="needs token_counts"):
        FourierEmbedding(5, 8, id_order="frequency")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(basis="wavelet"), "unknown basis 'wavelet'"),
        (dict(refine="mlp"), "unknown refine='mlp'"),
        (dict(normalize="closed"), "unknown normalize='closed'"),
        (dict(id_order="sorted"), "unknown id_order='sorted'"),
        (dict(refine="linear", expansion=4), "expansion applies to refine='geglu' only"),
        (dict(refine="geglu", refine_bias=True), "refine_bias applies to refine='linear' only"),
    ],
)
def test_bad_options_say_what_is_valid(options, message):
    with pytest.raises(ValueError, match=message):
        FourierEmbedding(100, 16, **options)


def test_odd_width_fourier_basis_is_refused():
    with pytest.raises(ValueError, match="dim must be even"):
        FourierEmbedding(100, 15)
    assert FourierEmbedding(100, 15, basis="legendre")(torch.tensor([1])).shape == (1, 15)


def test_random_frequencies_stay_float64_in_a_bfloat16_model():
    emb = FourierEmbedding(100, 16, basis="random", cache_features=True).to(torch.bfloat16)
    assert emb(torch.tensor([1, 2])).dtype == torch.bfloat16
    freqs, phases = emb.basis.frequencies_and_phases(torch.device("cpu"))
    assert freqs.dtype == phases.dtype == torch.float64


# -- bases ------------------------------------------------------------------------------
X = torch.linspace(-1, 1, 101, dtype=torch.float64)


def test_chebyshev_matches_scipy():
    expected = np.stack([special.eval_chebyt(n, X.numpy()) for n in range(1, 65)], axis=1)
    torch.testing.assert_close(build_basis("chebyshev", 64)(X), torch.from_numpy(expected))


def test_legendre_is_orthonormal_legendre_of_scipy():
    expected = np.stack(
        [math.sqrt((2 * n + 1) / 2) * special.eval_legendre(n, X.numpy()) for n in range(1, 65)],
        axis=1,
    )
    torch.testing.assert_close(build_basis("legendre", 64)(X), torch.from_numpy(expected))


def test_hermite_functions_match_scipy():
    dim = 40
    t = X.numpy() * math.sqrt(2 * dim + 1)
    expected = np.stack(
        [
            special.eval_hermite(n, t)
            * np.exp(-(t**2) / 2)
            / math.sqrt(2.0**n * math.factorial(n) * math.sqrt(math.pi))
            for n in range(dim)
        ],
        axis=1,
    )
    torch.testing.assert_close(build_basis("hermite", dim)(X), torch.from_numpy(expected))


def test_hermite_keeps_high_orders_alive_where_the_gaussian_underflows():
    """At x = 1 and d = 4096, exp(-t^2/2) = exp(-4096.5) underflows float64; psi_4095 is near
    its turning point there and far from zero. A naive recurrence would return 0."""
    features = build_basis("hermite", 4096)(torch.tensor([1.0], dtype=torch.float64))
    assert features[0, 0] == 0 and abs(features[0, -1]) > 0.05


def test_random_basis_is_seeded():
    a, b, c = (build_basis("random", 32, seed) for seed in (1, 1, 2))
    assert torch.equal(a(X), b(X)) and not torch.equal(a(X), c(X))
    freqs, phases = a.frequencies_and_phases(X.device)
    torch.testing.assert_close(a(X), torch.cos(math.pi * X[:, None] * freqs + phases))
    assert freqs.std().item() == pytest.approx(32 / 4, rel=0.5)  # w ~ N(0, (d/4)^2)


@pytest.mark.parametrize("basis", sorted(BASES))
@pytest.mark.parametrize("dim", [2, 4096])
def test_every_basis_is_finite_up_to_v_262144_and_d_4096(basis, dim):
    """Both normalizations, at V = 262,144: the 2,048 ids at each end of the range (where
    polynomials peak and Gaussians underflow) and every 61st id in between."""
    vocab = 262144
    ids = torch.cat(
        (
            torch.arange(0, 2048),
            torch.arange(2048, vocab - 2048, 61),
            torch.arange(vocab - 2048, vocab),
        )
    )
    for normalize in ("half-open", "paper"):
        emb = FourierEmbedding(vocab, dim, basis=basis, refine="none", normalize=normalize)
        with torch.no_grad():
            out = emb(ids)
        assert torch.isfinite(out).all(), (basis, normalize)


def test_frequency_order_can_be_given_as_its_rank():
    """A saved `id_rank` rebuilds the frequency order without the counts; a frequency
    embedding with neither (or both) is refused rather than silently wrong."""
    counts = np.array([5, 100, 0, 100, 7])
    from_counts = FourierEmbedding(5, 8, id_order="frequency", token_counts=counts)
    from_rank = FourierEmbedding(5, 8, id_order="frequency", id_rank=from_counts.id_rank)
    from_rank.refine.load_state_dict(from_counts.refine.state_dict())
    assert torch.equal(from_rank.id_rank, from_counts.id_rank)
    assert from_rank.id_rank.dtype == torch.int32
    torch.testing.assert_close(from_rank(torch.arange(5)), from_counts(torch.arange(5)))
    assert FourierEmbedding(5, 8, id_order="frequency", id_rank=[4, 3, 2, 1, 0]).id_rank[0] == 4
    with pytest.raises(ValueError, match="needs token_counts .* or the id_rank .* not both"):
        FourierEmbedding(5, 8, id_order="frequency", token_counts=counts, id_rank=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="id_rank must be a permutation of 0..V-1"):
        FourierEmbedding(5, 8, id_order="frequency", id_rank=[0, 1, 1, 3, 4])
    with pytest.raises(ValueError, match=r"shape \(5,\), got \(4,\)"):
        FourierEmbedding(5, 8, id_order="frequency", id_rank=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="pass them with id_order='frequency'"):
        FourierEmbedding(5, 8, id_order="permuted", id_rank=[0, 1, 2, 3, 4])


def test_the_linear_residual_keeps_the_features_dtype_under_autocast():
    """Under autocast only the refinement runs in the low dtype: E = t + (t R^T in bf16),
    added in float32, as the unfused formula computes it."""
    emb = FourierEmbedding(64, 16)
    ids = torch.arange(64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = emb(ids)
        t = emb.features(ids)
        expected = t + emb.refine(t)
    assert out.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
