"""The baselines (quotient-remainder, hash, deep hash and tensor-train embeddings), Kronecker's
factorized projection (`rank=`) and budget sizing: each formula against a closed form, an
independent computation (Python integers, einsum, a hand-written MLP, numpy SVDs) or a
property that holds whatever the draw."""

import math

import numpy as np
import pytest
import torch

from petra import build_embedding
from petra.embeddings import (
    KINDS,
    REGISTRY,
    DeepHashEmbedding,
    HashEmbedding,
    KroneckerEmbedding,
    QREmbedding,
    TensorTrainEmbedding,
    parse_budget,
    size_for_budget,
)
from petra.embeddings.dhe import dhe_params
from petra.embeddings.hashed import hash_params
from petra.embeddings.hashing import PRIME, UniversalHash
from petra.embeddings.kronecker import encode_bytes, kronecker_codec, kronecker_params
from petra.embeddings.qr import qr_params
from petra.embeddings.registry import embedding_class
from petra.embeddings.tensor_train import dim_factors, tt_params, tt_ranks, vocab_factors

OPERATIONS = ("mult", "add", "concat")


def python_hash(module: UniversalHash, token_id: int, i: int) -> int:
    """h_i(x) = ((a_i x + b_i) mod (2^31 - 1)) mod B, in Python's unbounded integers."""
    a, b = int(module.a[i]), int(module.b[i])
    return ((a * token_id + b) % (2**31 - 1)) % module.buckets


def trainable(module) -> int:
    return module.param_report().trainable_params


# -- quotient-remainder ----------------------------------------------------------------
@pytest.mark.parametrize("operation", OPERATIONS)
def test_qr_outputs_combine_quotient_and_remainder_rows_by_hand(operation):
    vocab, dim, c = 103, 7, 10  # c does not divide V; odd d splits 4 + 3 for concat
    torch.manual_seed(0)
    emb = QREmbedding(vocab, dim, collisions=c, operation=operation, init_std=0.3)
    Q, R = emb.quotient.weight.detach(), emb.remainder.weight.detach()
    assert Q.shape[0] == math.ceil(vocab / c) and R.shape[0] == c
    combine = {
        "mult": lambda q, r: q * r,
        "add": lambda q, r: q + r,
        "concat": lambda q, r: torch.cat((q, r)),
    }[operation]
    expected = torch.stack([combine(Q[i // c], R[i % c]) for i in range(vocab)])
    torch.testing.assert_close(emb.table().detach(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("vocab, c", [(1, 1), (10, 3), (100, 10), (101, 10), (997, 31), (50, 50)])
def test_qr_partitions_are_complementary(vocab, c):
    """Concat at d = 2 with Q[q] = q and R[r] = r: row id reads (id // c, id mod c), and no two
    ids share both."""
    emb = QREmbedding(vocab, 2, collisions=c, operation="concat")
    with torch.no_grad():
        emb.quotient.weight.copy_(torch.arange(emb.quotient.num_embeddings)[:, None].float())
        emb.remainder.weight.copy_(torch.arange(c)[:, None].float())
    pairs = [tuple(row) for row in emb.table().detach().long().tolist()]
    assert pairs == [(i // c, i % c) for i in range(vocab)]
    assert len(set(pairs)) == vocab
    assert max(q for q, _ in pairs) == emb.quotient.num_embeddings - 1  # every quotient row used


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("vocab, dim, c", [(100, 8, 10), (103, 7, 10), (1000, 5, 33), (7, 3, 7)])
def test_qr_param_count_is_qr_params_and_the_closed_form(operation, vocab, dim, c):
    emb = QREmbedding(vocab, dim, collisions=c, operation=operation)
    rows = -(-vocab // c)
    by_hand = (
        rows * ((dim + 1) // 2) + c * (dim // 2) if operation == "concat" else (rows + c) * dim
    )
    assert trainable(emb) == qr_params(vocab, dim, c, operation) == by_hand


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("init_std", [0.02, 0.1])
def test_qr_initial_table_has_the_learned_tables_std(operation, init_std):
    """A product of two N(0, s^2) tables has std s^2: mult must draw both at sqrt(init_std)."""
    torch.manual_seed(0)
    emb = QREmbedding(20000, 64, operation=operation, init_std=init_std)
    with torch.no_grad():
        std = emb.table().std().item()
    assert std == pytest.approx(init_std, rel=0.05)


@pytest.mark.parametrize("vocab", [1, 2, 3, 4, 5, 99, 100, 101, 30522, 50257, 1_000_001])
def test_qr_default_collisions_is_ceil_sqrt_v(vocab):
    emb = QREmbedding(vocab, 1)
    assert emb.collisions == math.ceil(math.sqrt(vocab))
    assert emb.remainder.num_embeddings * emb.quotient.num_embeddings >= vocab


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(operation="sum"), "unknown operation"),
        (dict(collisions=0), "collisions"),
        (dict(collisions=-3), "collisions"),
        (dict(collisions=51), "collisions"),
    ],
)
def test_qr_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QREmbedding(50, 4, **kwargs)


def test_qr_concat_needs_two_columns():
    with pytest.raises(ValueError, match="dim must be at least 2"):
        QREmbedding(50, 1, operation="concat")
    QREmbedding(50, 1, operation="mult")  # d = 1 is fine otherwise


# -- hash embeddings -------------------------------------------------------------------
def test_hash_output_is_importance_weighted_sum_of_hashed_rows():
    vocab, dim, buckets, k = 60, 5, 7, 3
    emb = HashEmbedding(vocab, dim, buckets=buckets, num_hashes=k, seed=3)
    with torch.no_grad():
        emb.importance.weight.normal_()  # not the constant start, which would hide a mix-up
    C, p = emb.components.weight.detach(), emb.importance.weight.detach()
    expected = torch.stack(
        [sum(p[v, i] * C[python_hash(emb.hashes, v, i)] for i in range(k)) for v in range(vocab)]
    )
    torch.testing.assert_close(emb.table().detach(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed, buckets", [(0, 1), (1, 10), (2, 1000), (3, 999_983), (4, PRIME)])
def test_universal_hash_matches_python_integer_arithmetic(seed, buckets):
    """Exact in int64 for every id below p, the largest ones included."""
    assert PRIME == 2**31 - 1
    hashes = UniversalHash(4, buckets, seed)
    generator = torch.Generator().manual_seed(seed)
    ids = [
        0,
        1,
        2,
        PRIME - 3,
        PRIME - 2,
        2**30,
        *torch.randint(0, PRIME - 1, (50,), generator=generator).tolist(),
    ]
    got = hashes(torch.tensor(ids)).tolist()
    assert got == [[python_hash(hashes, x, i) for i in range(4)] for x in ids]
    assert all(1 <= a < PRIME for a in hashes.a.tolist())
    assert all(0 <= b < PRIME for b in hashes.b.tolist())


def test_hash_is_determined_by_its_seed_and_its_saved_buffers():
    first, twin = (
        HashEmbedding(300, 8, buckets=31, seed=5),
        HashEmbedding(300, 8, buckets=31, seed=5),
    )
    other = HashEmbedding(300, 8, buckets=31, seed=6)
    ids = torch.arange(300)
    assert torch.equal(first.hashes(ids), twin.hashes(ids))
    assert not torch.equal(first.hashes.a, other.hashes.a)
    assert not torch.equal(first.hashes.b, other.hashes.b)
    state = first.state_dict()
    assert {"hashes.a", "hashes.b"} <= set(state)
    other.load_state_dict(state)
    assert torch.equal(other.hashes(ids), first.hashes(ids))
    assert torch.equal(other.table(), first.table())


@pytest.mark.parametrize(
    "vocab, dim, buckets, k", [(100, 8, 10, 2), (57, 3, 1, 1), (1000, 16, 97, 4)]
)
def test_hash_param_count_and_initial_importance(vocab, dim, buckets, k):
    emb = HashEmbedding(vocab, dim, buckets=buckets, num_hashes=k)
    assert trainable(emb) == hash_params(vocab, dim, buckets, k) == buckets * dim + vocab * k
    torch.testing.assert_close(
        emb.importance.weight.detach(), torch.full((vocab, k), 1 / math.sqrt(k)), rtol=0, atol=0
    )


def test_hash_default_buckets_is_a_tenth_of_v():
    assert HashEmbedding(1001, 4).hashes.buckets == 101
    assert HashEmbedding(1000, 4).hashes.buckets == 100


def test_hash_gradients_reach_importance_and_components():
    """d<g, E(v)>/dp[v, i] = <g, C[h_i(v)]>; d/dC[b] = sum over (v, i) with h_i(v) = b of p g."""
    vocab, dim, buckets, k = 40, 4, 5, 3
    emb = HashEmbedding(vocab, dim, buckets=buckets, num_hashes=k, seed=1)
    with torch.no_grad():
        emb.importance.weight.normal_()
    ids = torch.tensor([3, 17, 29, 0, 39])  # distinct ids
    g = torch.randn(len(ids), dim, generator=torch.Generator().manual_seed(0))
    (emb(ids) * g).sum().backward()
    C, p = emb.components.weight.detach(), emb.importance.weight.detach()
    grad_p = torch.zeros(vocab, k)
    grad_c = torch.zeros(buckets, dim)
    for n, v in enumerate(ids.tolist()):
        for i in range(k):
            b = python_hash(emb.hashes, v, i)
            grad_p[v, i] = g[n] @ C[b]
            grad_c[b] += p[v, i] * g[n]
    torch.testing.assert_close(emb.importance.weight.grad, grad_p, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(emb.components.weight.grad, grad_c, rtol=1e-5, atol=1e-6)
    assert emb.importance.weight.grad[ids].abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_hash_buckets_are_in_range_and_roughly_uniform(seed):
    """200,000 consecutive ids into 1,000 buckets: a chi-square statistic of 999 degrees of
    freedom (mean 999, sd 45) far below 1,500."""
    buckets, n = 1000, 200_000
    hashes = UniversalHash(3, buckets, seed)
    got = hashes(torch.arange(n))
    assert got.min() >= 0 and got.max() < buckets
    for i in range(3):
        counts = torch.bincount(got[:, i], minlength=buckets).double()
        expected = n / buckets
        chi2 = ((counts - expected) ** 2 / expected).sum().item()
        assert chi2 < 1500, (i, chi2)
    buckets_of_module = HashEmbedding(5000, 2, buckets=37, seed=seed).hashes(torch.arange(5000))
    assert buckets_of_module.min() >= 0 and buckets_of_module.max() < 37


# -- deep hash embeddings --------------------------------------------------------------
def test_dhe_uniform_code_is_the_scaled_hash_and_reaches_both_ends():
    m, k = 5, 6
    emb = DeepHashEmbedding(500, 4, hidden=3, code_dim=k, code_buckets=m, seed=2)
    ids = torch.arange(500)
    code = emb.code(ids).double()
    expected = torch.tensor(
        [[2 * python_hash(emb.hashes, v, i) / (m - 1) - 1 for i in range(k)] for v in range(500)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(code, expected, rtol=0, atol=1e-7)
    assert code.min() == -1 and code.max() == 1


def test_dhe_gaussian_code_is_box_muller_by_hand():
    m, k = 1000, 8
    emb = DeepHashEmbedding(300, 4, hidden=3, code_dim=k, code_buckets=m, distribution="gaussian")
    emb.to(torch.float64)
    code = emb.code(torch.arange(300))
    expected = []
    for v in range(300):
        row = []
        for j in range(k // 2):
            u1 = (python_hash(emb.hashes, v, 2 * j) + 1) / m
            u2 = (python_hash(emb.hashes, v, 2 * j + 1) + 1) / m
            radius = math.sqrt(-2 * math.log(u1))
            row += [radius * math.cos(2 * math.pi * u2), radius * math.sin(2 * math.pi * u2)]
        expected.append(row)
    torch.testing.assert_close(
        code, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )


def test_dhe_code_moments():
    """Over 4,000 ids x 64 functions: gaussian mean 0, std 1; uniform mean 0, std 1/sqrt(3)."""
    ids = torch.arange(4000)
    gauss = DeepHashEmbedding(4000, 2, hidden=1, code_dim=64, distribution="gaussian").code(ids)
    uniform = DeepHashEmbedding(4000, 2, hidden=1, code_dim=64).code(ids)
    assert abs(gauss.mean().item()) < 0.02 and gauss.std().item() == pytest.approx(1, rel=0.02)
    assert abs(uniform.mean().item()) < 0.01
    assert uniform.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.02)
    assert uniform.min() >= -1 and uniform.max() <= 1


def test_dhe_output_is_the_mlp_of_the_code_by_hand():
    """E = W_3 mish(W_2 mish(W_1 c + b_1) + b_2) + b_3, mish(x) = x tanh(ln(1 + e^x))."""
    emb = DeepHashEmbedding(50, 5, hidden=6, layers=2, code_dim=10).to(torch.float64)
    ids = torch.arange(50)
    linears = [module for module in emb.network if isinstance(module, torch.nn.Linear)]
    assert len(linears) == 3
    h = emb.code(ids).detach().numpy()
    for n, linear in enumerate(linears):
        h = h @ linear.weight.detach().numpy().T + linear.bias.detach().numpy()
        if n < 2:
            h = h * np.tanh(np.log1p(np.exp(h)))
    np.testing.assert_allclose(emb(ids).detach().numpy(), h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_dhe_code_is_kept_by_dtype_moves_and_by_the_state_dict(distribution):
    options = dict(hidden=4, code_dim=16, distribution=distribution)
    emb = DeepHashEmbedding(200, 3, seed=1, **options)
    ids = torch.arange(200)
    code = emb.code(ids)
    out = emb(ids).detach()
    state = {k: v.clone() for k, v in emb.state_dict().items()}
    assert {"hashes.a", "hashes.b"} <= set(state)
    emb.to(torch.float64)  # the int64 hash buffers must not follow to a float dtype
    assert emb.hashes.a.dtype == emb.hashes.b.dtype == torch.int64
    assert emb.code(ids).dtype == torch.float64
    assert torch.equal(emb.code(ids).float(), code)
    torch.testing.assert_close(emb(ids).float(), out, rtol=1e-5, atol=1e-6)
    emb.to(torch.float32)
    assert torch.equal(emb.code(ids), code)
    other = DeepHashEmbedding(200, 3, seed=99, **options)
    assert not torch.equal(other.code(ids), code)
    other.load_state_dict(state)
    assert torch.equal(other.code(ids), code)
    assert torch.equal(other(ids), out)


@pytest.mark.parametrize(
    "dim, hidden, layers, code_dim", [(8, 16, 2, 32), (5, 3, 1, 7), (16, 7, 3, 1024), (1, 1, 4, 2)]
)
def test_dhe_param_count_is_dhe_params_and_the_closed_form(dim, hidden, layers, code_dim):
    emb = DeepHashEmbedding(100, dim, hidden=hidden, layers=layers, code_dim=code_dim)
    by_hand = code_dim * hidden + hidden + (layers - 1) * (hidden**2 + hidden) + hidden * dim + dim
    assert trainable(emb) == dhe_params(dim, hidden, layers, code_dim) == by_hand


def test_dhe_refuses_an_odd_gaussian_code():
    with pytest.raises(ValueError, match="even"):
        DeepHashEmbedding(10, 4, hidden=3, code_dim=7, distribution="gaussian")
    DeepHashEmbedding(10, 4, hidden=3, code_dim=7)  # uniform takes any k


# -- tensor train ----------------------------------------------------------------------
@pytest.mark.parametrize("cores", [2, 3, 4])
def test_vocab_factors_are_balanced_and_minimal(cores):
    for vocab in [*range(1, 400), 997, 1000, 4096, 30522, 32000, 50257, 65536, 128256, 151936]:
        factors = vocab_factors(vocab, cores)
        assert len(factors) == cores
        assert math.prod(factors) >= vocab, (vocab, factors)
        assert max(factors) - min(factors) <= 1, (vocab, factors)
        for i in range(cores):  # lowering any factor by one falls below V
            lowered = factors[:i] + [factors[i] - 1] + factors[i + 1 :]
            assert math.prod(lowered) < vocab, (vocab, factors, i)
        assert max(factors) <= math.ceil(vocab ** (1 / cores)) + 1


def test_vocab_factors_known_values():
    assert vocab_factors(30522, 3) == [31, 31, 32]
    assert vocab_factors(50257, 3) == [37, 37, 37]
    assert vocab_factors(30522, 3) != [2, 3, 5087]  # tensorly-torch's exact factorization
    assert max(vocab_factors(30522, 3)) < 100
    assert vocab_factors(1000, 3) == [10, 10, 10]
    assert vocab_factors(4096, 2) == [64, 64]


def test_dim_factors_multiply_to_d():
    for cores in (2, 3, 4):
        for dim in [*range(1, 300), 384, 512, 768, 1024, 2048, 4096, 997]:
            factors = dim_factors(dim, cores)
            assert len(factors) == cores and math.prod(factors) == dim, (dim, factors)
            assert factors == sorted(factors, reverse=True)
    assert dim_factors(768, 3) == [12, 8, 8]
    assert dim_factors(256, 3) == [8, 8, 4]
    assert dim_factors(97, 3) == [97, 1, 1]
    assert dim_factors(1, 3) == [1, 1, 1]
    assert dim_factors(64, 3) == [4, 4, 4]
    assert dim_factors(90, 3) == [6, 5, 3]  # 5, 3, 3, 2 placed largest first: not 10 x 3 x 3


def tt_full(cores) -> torch.Tensor:
    """The padded V' x d table of cores stored (v_k, r_{k-1}, d_k, r_k), by einsum: rows
    row-major over the vocab digits, columns row-major over the dim digits."""
    out = cores[0][:, 0]  # (v_1, d_1, r_1)
    for core in cores[1:]:
        out = torch.einsum("...r,vrds->...vds", out, core)
    out = out[..., 0]  # (v_1, d_1, ..., v_n, d_n)
    n = len(cores)
    out = out.permute(*range(0, 2 * n, 2), *range(1, 2 * n, 2))
    vs, ds = [c.shape[0] for c in cores], [c.shape[2] for c in cores]
    return out.reshape(math.prod(vs), math.prod(ds))


@pytest.mark.parametrize(
    "vocab, dim, rank, cores", [(249, 16, 3, 3), (100, 12, 5, 2), (700, 24, 2, 4)]
)
def test_tt_forward_equals_an_einsum_of_the_cores(vocab, dim, rank, cores):
    torch.manual_seed(0)
    emb = TensorTrainEmbedding(vocab, dim, rank=rank, cores=cores).double()
    expected = tt_full([c.detach() for c in emb.cores])[:vocab]
    torch.testing.assert_close(emb.table().detach(), expected, rtol=1e-12, atol=1e-15)
    shapes = [tuple(c.shape) for c in emb.cores]
    assert shapes == [
        (v, emb.ranks[k], d, emb.ranks[k + 1])
        for k, (v, d) in enumerate(
            zip(vocab_factors(vocab, cores), dim_factors(dim, cores), strict=True)
        )
    ]


def unfolding_ranks(vocab: int, dim: int, cores: int) -> list[int]:
    modes = [
        v * d for v, d in zip(vocab_factors(vocab, cores), dim_factors(dim, cores), strict=True)
    ]
    return [min(math.prod(modes[:k]), math.prod(modes[k:])) for k in range(1, cores)]


@pytest.mark.parametrize("vocab, dim, cores", [(249, 16, 3), (100, 12, 2), (90, 8, 4)])
def test_tt_ranks_are_capped_by_the_unfoldings_and_from_embedding_is_then_exact(vocab, dim, cores):
    caps = unfolding_ranks(vocab, dim, cores)
    assert tt_ranks(vocab, dim, 10**6, cores) == [1, *caps, 1]
    assert tt_ranks(vocab, dim, 2, cores) == [1, *(min(2, c) for c in caps), 1]
    table = torch.randn(vocab, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    emb = TensorTrainEmbedding.from_embedding(table, rank=10**6, cores=cores)
    assert emb.ranks == [1, *caps, 1]
    assert trainable(emb) == tt_params(vocab, dim, 10**6, cores)
    torch.testing.assert_close(emb.table().double(), table, rtol=0, atol=1e-5)


def test_tt_from_embedding_recovers_a_tensor_train_of_its_rank_with_a_padded_vocab():
    """V = 249 pads to 6 x 6 x 7 = 252; a TT of ranks (1, 3, 3, 1) whose last core is zero for
    i_3 >= 4 is zero on the padded ids, so its rank-3 TT-SVD is exact."""
    vocab, dim, rank = 249, 16, 3
    assert vocab_factors(vocab, 3) == [6, 6, 7]
    source = TensorTrainEmbedding(vocab, dim, rank=rank)
    with torch.no_grad():
        source.cores[2][4:] = 0
    full = tt_full([c.detach().double() for c in source.cores])
    assert full[vocab:].abs().max() == 0  # the padded rows
    table = full[:vocab]
    emb = TensorTrainEmbedding.from_embedding(table, rank=rank)
    assert emb.ranks == [1, 3, 3, 1]
    torch.testing.assert_close(
        emb.table().double(), table, rtol=0, atol=1e-6 * table.abs().max().item()
    )


@pytest.mark.parametrize("rank", [1, 2, 4, 7, 12])
def test_tt_svd_error_lies_between_the_unfoldings_truncation_errors(rank):
    """Oseledets (2011), Thm 2.2: ||A - TT||^2 <= sum_k (discarded sigma^2 of unfolding k);
    and a TT of rank r_k has unfolding k of rank <= r_k, so by Eckart-Young the error is at
    least each unfolding's own truncation error (computed here with numpy on the padded A)."""
    vocab, dim, cores = 249, 16, 3
    vs, ds = vocab_factors(vocab, cores), dim_factors(dim, cores)
    table = np.random.default_rng(rank).standard_normal((vocab, dim))
    padded = np.zeros((math.prod(vs), dim))
    padded[:vocab] = table
    tensor = padded.reshape(*vs, *ds).transpose(0, 3, 1, 4, 2, 5)  # (v_1, d_1, v_2, d_2, ...)
    emb = TensorTrainEmbedding.from_embedding(torch.from_numpy(table), rank=rank)
    discarded = []
    for k in range(1, cores):
        s = np.linalg.svd(tensor.reshape(math.prod(tensor.shape[: 2 * k]), -1), compute_uv=False)
        discarded.append(float((s[emb.ranks[k] :] ** 2).sum()))
    full = tt_full([c.detach().double() for c in emb.cores]).numpy()
    error = float(((full - padded) ** 2).sum())
    assert max(discarded) * (1 - 1e-4) - 1e-6 <= error <= sum(discarded) * (1 + 1e-4) + 1e-6
    table_error = float(((emb.table().detach().double().numpy() - table) ** 2).sum())
    assert table_error <= error + 1e-6


@pytest.mark.parametrize(
    "vocab, dim, rank, cores",
    [(1000, 64, 8, 3), (1000, 64, 2, 3), (1000, 64, 8, 2), (1000, 64, 4, 4)],
)
def test_tt_initial_table_has_the_learned_tables_std(vocab, dim, rank, cores):
    """Cores at s = (init_std^2 / (r_1 ... r_{n-1}))^(1/2n), so E's entries have variance
    init_std^2; the mean square is averaged over 8 draws (one draw varies by ~10%)."""
    init_std = 0.05
    squares, core_squares = [], []
    for seed in range(8):
        torch.manual_seed(seed)
        emb = TensorTrainEmbedding(vocab, dim, rank=rank, cores=cores, init_std=init_std)
        with torch.no_grad():
            squares.append(emb.table().pow(2).mean().item())
        core_squares += torch.cat([c.detach().reshape(-1) for c in emb.cores]).pow(2).tolist()
    core_std = math.sqrt(sum(core_squares) / len(core_squares))
    assert core_std == pytest.approx(
        (init_std**2 / math.prod(emb.ranks)) ** (1 / (2 * cores)), rel=0.05
    )
    assert math.sqrt(sum(squares) / len(squares)) == pytest.approx(init_std, rel=0.05)


@pytest.mark.parametrize(
    "vocab, dim, rank, cores",
    [(1000, 32, 4, 3), (30522, 256, 16, 3), (2000, 16, 3, 2), (500, 24, 5, 4)],
)
def test_tt_param_count_is_tt_params_and_the_sum_over_cores(vocab, dim, rank, cores):
    emb = TensorTrainEmbedding(vocab, dim, rank=rank, cores=cores)
    r = emb.ranks
    by_hand = sum(
        r[k] * v * d * r[k + 1]
        for k, (v, d) in enumerate(
            zip(vocab_factors(vocab, cores), dim_factors(dim, cores), strict=True)
        )
    )
    assert trainable(emb) == tt_params(vocab, dim, rank, cores) == by_hand


# -- Kronecker with a factorized projection ----------------------------------------------
TOKENS = [b"", b"a", b"ab", b"hello", b"\xe4\xb8\xad\xe6\x96\x87", b"\x00\xff", b"xyzzy!", b"z"]


def factorized(mode: str, rank: int = 3, dim: int = 6) -> KroneckerEmbedding:
    torch.manual_seed(0)
    return KroneckerEmbedding.from_token_bytes(TOKENS, dim, pos_dim=4, mode=mode, rank=rank)


def test_factorized_kronecker_is_expand_of_projection_of_the_codec_in_every_mode():
    sparse = factorized("sparse")
    table, lengths, _ = encode_bytes(TOKENS, 4)
    z = kronecker_codec(table, lengths, torch.float64)  # (V, D)
    V_ = sparse.projection.weight.detach().double()  # (r, D)
    U = sparse.expand.weight.detach().double()  # (d, r)
    assert V_.shape == (3, 1024) and U.shape == (6, 3)
    expected = z @ V_.T @ U.T
    ids = torch.arange(len(TOKENS))
    for mode in ("sparse", "dense", "cached"):
        emb = factorized(mode)
        emb.load_state_dict(sparse.state_dict())
        scale = expected.abs().max().item()  # float32 rounding, relative to the outputs
        torch.testing.assert_close(emb(ids).double(), expected, rtol=1e-5, atol=1e-5 * scale)
    assert sparse(ids)[0].abs().max() == 0  # the empty token


@pytest.mark.parametrize("dim, pos_dim, rank", [(6, 4, 3), (64, 16, 5), (7, 2, 1)])
def test_factorized_kronecker_param_count(dim, pos_dim, rank):
    emb = KroneckerEmbedding.from_token_bytes(TOKENS, dim, pos_dim=pos_dim, rank=rank)
    assert trainable(emb) == kronecker_params(dim, pos_dim, rank) == rank * (256 * pos_dim + dim)
    full = KroneckerEmbedding.from_token_bytes(TOKENS, dim, pos_dim=pos_dim)
    assert trainable(full) == kronecker_params(dim, pos_dim) == dim * 256 * pos_dim


def test_factorized_projection_starts_with_the_full_projections_variance():
    """W = U V with V ~ N(0, 1/D), U ~ N(0, 1/r): Var W_ij = r (1/r)(1/D) = 1/D."""
    ratios = []
    for seed in range(4):
        torch.manual_seed(seed)
        emb = KroneckerEmbedding.from_token_bytes(TOKENS, 256, pos_dim=4, rank=16)
        W = emb.expand.weight.detach() @ emb.projection.weight.detach()  # (d, D)
        assert W.shape == (256, 1024)
        ratios.append(W.pow(2).mean().item() * 1024)
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, rel=0.05)


def test_from_saved_rebuilds_a_factorized_kronecker_embedding():
    emb = factorized("sparse", rank=2, dim=5)
    with torch.no_grad():
        emb.expand.weight.normal_()
    rebuilt = KroneckerEmbedding.from_saved(len(TOKENS), 5, emb.state_dict(), rank=2)
    rebuilt.load_state_dict(emb.state_dict())
    assert rebuilt.rank == 2 and rebuilt.embedding_dim == 5
    assert trainable(rebuilt) == trainable(emb)
    assert torch.equal(rebuilt.table(), emb.table())
    wrapped = {f"embed.{k}": v for k, v in emb.state_dict().items()}
    dense = KroneckerEmbedding.from_saved(len(TOKENS), 5, wrapped, "embed.", mode="dense", rank=2)
    dense.load_state_dict(emb.state_dict())
    torch.testing.assert_close(dense.table(), emb.table(), rtol=1e-5, atol=1e-6)


def test_kronecker_refuses_a_rank_below_one():
    with pytest.raises(ValueError, match="rank"):
        KroneckerEmbedding.from_token_bytes(TOKENS, 4, pos_dim=2, rank=0)


# -- budgets ---------------------------------------------------------------------------
def tokens_for(vocab: int) -> list[bytes]:
    return [f"t{i}".encode() for i in range(vocab)]


def all_counts(kind: str, vocab: int, dim: int, budget: int, options: dict) -> set[int]:
    """Every parameter count the kind's size knob can give, from closed forms written here
    (each knob value up to where the count must exceed the budget)."""
    if kind == "learned":
        return {vocab * dim} | {e * (vocab + dim) for e in range(1, budget // (vocab + dim) + 2)}
    if kind == "fourier":
        norm = dim if options.get("final_norm") else 0
        if options.get("refine_bias"):  # a bias exists on the linear refinement only
            return {dim * dim + dim + norm}
        geglu = {3 * dim * h + norm for h in range(1, budget // (3 * dim) + 2)}
        return {dim * dim + norm} | geglu
    if kind == "kronecker":
        codec = 256 * options.get("pos_dim", 16)
        return {dim * codec} | {r * (codec + dim) for r in range(1, budget // (codec + dim) + 2)}
    if kind == "qr":
        half = options.get("operation") == "concat"
        return {
            -(-vocab // c) * ((dim + 1) // 2) + c * (dim // 2)
            if half
            else (-(-vocab // c) + c) * dim
            for c in range(1, vocab + 1)
        }
    if kind == "hash":
        k = options.get("num_hashes", 2)
        return {b * dim + vocab * k for b in range(1, budget // dim + 2)}
    if kind == "dhe":
        layers, code = options.get("layers", 2), options.get("code_dim", 1024)
        return {
            code * h + h + (layers - 1) * (h * h + h) + h * dim + dim
            for h in range(1, budget // (code + dim + 1) + 2)
        }
    if kind == "tt":
        cores = options.get("cores", 3)
        vs, ds = vocab_factors(vocab, cores), dim_factors(dim, cores)
        caps = unfolding_ranks(vocab, dim, cores)
        counts = set()
        for rank in range(1, max(caps) + 1):
            r = [1, *(min(rank, c) for c in caps), 1]
            counts.add(sum(r[k] * vs[k] * ds[k] * r[k + 1] for k in range(cores)))
        return counts
    if kind == "ngram":
        return {rows * dim for rows in range(1, budget // dim + 2)}
    if kind == "trimmed":  # the kept rows, at most V
        return {rows * dim for rows in range(1, vocab + 1)}
    if kind == "residual":  # the base at its defaults (d 256 P, or ceil(V / 8) d) + r (V + d)
        kronecker = options.get("base", "kronecker") == "kronecker"
        base = 4096 * dim if kronecker else -(-vocab // 8) * dim
        return {base + r * (vocab + dim) for r in range(1, budget // (vocab + dim) + 2)}
    raise AssertionError(kind)


BUDGET_CASES = [
    ("learned", 1000, 32, 20000, {}),
    ("learned", 1000, 32, 32000, {}),  # exactly the full table
    ("learned", 2500, 48, 50000, {"padding_idx": 0}),
    ("fourier", 1000, 32, 5000, {}),
    ("fourier", 1000, 32, 1100, {"final_norm": True}),  # geglu h = 11 (1,088) beats linear (1,056)
    ("fourier", 800, 16, 256, {}),  # exactly the linear refinement
    ("fourier", 800, 16, 300, {"refine_bias": True, "final_norm": True}),  # 256 + 16 + 16
    ("kronecker", 600, 32, 20000, {"pos_dim": 4}),
    ("kronecker", 600, 16, 16384, {"pos_dim": 4}),  # exactly the full projection
    ("kronecker", 600, 32, 100000, {}),
    ("qr", 3000, 32, 50000, {"operation": "concat"}),
    ("qr", 500, 16, 720, {}),  # the smallest layout
    ("hash", 2000, 32, 20000, {}),
    ("hash", 1500, 24, 10000, {"num_hashes": 3}),
    ("dhe", 1000, 32, 30000, {"code_dim": 64}),
    ("dhe", 1000, 16, 50000, {"layers": 1}),
    ("tt", 1000, 32, 5000, {}),
    ("tt", 1000, 32, 34000, {}),  # the largest rank: ranks (1, 40, 20, 1)
    ("tt", 2000, 16, 3000, {"cores": 2}),
    ("tt", 3000, 64, 40000, {"cores": 4}),
    ("ngram", 1000, 32, 20000, {}),
    ("ngram", 1000, 16, 16000, {"num_hashes": 2}),  # exactly 1,000 rows
    ("trimmed", 1000, 32, 20000, {}),
    ("trimmed", 300, 16, 4800, {}),  # the whole table: every id kept
    ("residual", 600, 16, 100000, {}),  # the Kronecker code's 65,536 plus rank 55
    ("residual", 1000, 16, 30000, {"base": "ngram"}),  # 125 n-gram rows plus rank 27
]


def build_sized(kind, vocab, dim, options, sizing):
    extra = {"token_bytes": tokens_for(vocab)} if embedding_class(kind).needs_tokenizer else {}
    return build_embedding(kind, vocab, dim, **options, **sizing.options, **extra)


BUDGETED = [kind for kind in KINDS if REGISTRY[kind].budget_knob]  # a budget sizes them


def test_budget_cases_cover_every_kind_a_budget_sizes():
    assert {case[0] for case in BUDGET_CASES} == set(BUDGETED)


@pytest.mark.parametrize("kind, vocab, dim, budget, options", BUDGET_CASES)
def test_budget_sizing_builds_to_its_count_within_the_budget(kind, vocab, dim, budget, options):
    sizing = size_for_budget(kind, vocab, dim, budget, **options)
    assert sizing.kind == kind and sizing.budget == budget
    emb = build_sized(kind, vocab, dim, options, sizing)
    assert trainable(emb) == sizing.params <= budget
    assert sizing.params >= 0.9 * budget
    assert f"{sizing.params:,} parameters" in sizing.describe()


@pytest.mark.parametrize("kind, vocab, dim, budget, options", BUDGET_CASES)
def test_budget_sizing_is_the_largest_count_within_the_budget(kind, vocab, dim, budget, options):
    sizing = size_for_budget(kind, vocab, dim, budget, **options)
    fits = [count for count in all_counts(kind, vocab, dim, budget, options) if count <= budget]
    assert sizing.params == max(fits)


QR_MISSED = [  # (V, d, budget, operation, a layout c > sqrt(V) that fits the budget better)
    (1000, 16, 2000, "mult", 116),
    (3000, 32, 50000, "mult", 1560),
    (2000, 16, 10000, "mult", 621),
    (1000, 16, 2000, "concat", 245),
]


@pytest.mark.parametrize("vocab, dim, budget, operation, c", QR_MISSED)
def test_qr_budget_considers_collisions_above_sqrt_v(vocab, dim, budget, operation, c):
    count = trainable(QREmbedding(vocab, dim, collisions=c, operation=operation))
    assert c > math.isqrt(vocab) + 1 and 0.99 * budget <= count <= budget  # the layout exists
    assert size_for_budget("qr", vocab, dim, budget, operation=operation).params >= count


@pytest.mark.parametrize(
    "kind, knob", [(kind, knob) for kind, knobs in {
        "learned": ["factor_dim"], "fourier": ["refine", "expansion"], "kronecker": ["rank"],
        "qr": ["collisions"], "hash": ["buckets"], "dhe": ["hidden"], "tt": ["rank"],
        "ngram": ["rows"], "trimmed": ["rows"],
    }.items() for knob in knobs],
)  # fmt: skip
def test_budget_refuses_its_knob_as_an_option(kind, knob):
    with pytest.raises(ValueError, match=knob):
        size_for_budget(kind, 500, 16, 5000, **{knob: 2})


@pytest.mark.parametrize("kind", BUDGETED)
def test_budget_below_the_smallest_size_is_refused(kind):
    with pytest.raises(ValueError, match=f"{kind} cannot reach .*smallest size"):
        size_for_budget(kind, 500, 16, 10)


def test_qr_budget_at_bert_scale_needs_concat():
    with pytest.raises(ValueError, match="cannot reach.*smallest size is 89,600"):
        size_for_budget("qr", 30522, 256, 65536)
    assert (math.ceil(30522 / 175) + 175) * 256 == 89600
    sizing = size_for_budget("qr", 30522, 256, 65536, operation="concat")
    assert sizing.params == 65536
    emb = QREmbedding(30522, 256, operation="concat", **sizing.options)
    assert trainable(emb) == 65536


def test_learned_budget_far_above_the_table_is_refused_by_the_tolerance():
    with pytest.raises(ValueError, match="learned cannot reach.*largest size is 32,000"):
        size_for_budget("learned", 1000, 32, 10**6)
    assert size_for_budget("learned", 1000, 32, 35000).params == 32000  # within 10%
    assert size_for_budget("learned", 1000, 32, 10**6, tolerance=0.99).options == {}


@pytest.mark.parametrize("budget", [0, -5, 1.5, "1000"])
def test_budget_must_be_a_positive_int(budget):
    with pytest.raises(ValueError, match="budget"):
        size_for_budget("learned", 100, 8, budget)


@pytest.mark.parametrize(
    "text, value",
    [("65536", 65536), ("65k", 65000), ("65K", 65000), ("1M", 10**6), ("1.5M", 1_500_000),
     (" 2m ", 2 * 10**6), ("0.5k", 500), ("1", 1)],
)  # fmt: skip
def test_parse_budget(text, value):
    assert parse_budget(text) == value


@pytest.mark.parametrize(
    "text",
    ["abc", "0", "-5", "1.5", "k", "", "nan", "inf", "1.5x", "0.0001k", "2e12", "1e999999999"],
)
def test_parse_budget_refuses_what_is_not_a_whole_positive_count(text):
    with pytest.raises(ValueError):
        parse_budget(text)


@pytest.mark.parametrize("text, value", [("8.19k", 8190), ("2.01k", 2010), ("16.38k", 16380)])
def test_parse_budget_accepts_decimal_thousands(text, value):
    assert parse_budget(text) == value
