"""The L-product algebra and the L-Transformer: spectral equivalence, parameters, training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.fft import dct
from test_nn import assert_same_function
from torch.func import functional_call

from petra.models import ModelConfig, build_model, load_pretrained
from petra.models.backbone import StandardEncoder
from petra.nn import attention_bias
from petra.spectral import (
    TRANSFORMS,
    SpectralEncoder,
    along_slices,
    dct_matrix,
    lidentity,
    lproduct,
    ltranspose,
    transform_matrices,
)
from petra.spectral.layers import SliceGeGLU, SliceLinear, SliceRMSNorm, in_transform_domain


# -- the algebra -----------------------------------------------------------------------
def test_dct_matrix_is_scipys_orthonormal_dct_ii():
    for p in (1, 2, 5, 8):
        expected = dct(np.eye(p), type=2, norm="ortho", axis=0)
        np.testing.assert_allclose(dct_matrix(p).numpy(), expected, atol=1e-12)


def test_cosine_transform_is_kernfeld_kilmer_aeron():
    """M = W^-1 C (I + Z): check the defining identity W M = C (I + Z) and that M is not
    orthogonal (it is the non-orthogonal original)."""
    p = 6
    matrix, inverse = transform_matrices("cosine", p)
    c = dct_matrix(p)
    upshift = torch.eye(p, dtype=torch.float64) + torch.diag(
        torch.ones(p - 1, dtype=torch.float64), 1
    )
    torch.testing.assert_close(torch.diag(c[:, 0]) @ matrix, c @ upshift)
    assert not torch.allclose(matrix @ matrix.T, torch.eye(p, dtype=torch.float64), atol=1e-3)
    torch.testing.assert_close(inverse @ matrix, torch.eye(p, dtype=torch.float64))


@pytest.mark.parametrize("kind", TRANSFORMS)
def test_lproduct_algebra(kind):
    p = 5
    matrix, inverse = transform_matrices(kind, p, seed=3)
    g = torch.Generator().manual_seed(0)
    a, b, c = (
        torch.randn(*shape, p, generator=g, dtype=torch.float64)
        for shape in ((3, 4), (4, 2), (2, 6))
    )

    def prod(x, y):
        return lproduct(x, y, matrix, inverse)

    torch.testing.assert_close(prod(prod(a, b), c), prod(a, prod(b, c)))  # associativity
    torch.testing.assert_close(prod(lidentity(3, inverse), a), a)  # identity, both sides
    torch.testing.assert_close(prod(a, lidentity(4, inverse)), a)
    torch.testing.assert_close(ltranspose(prod(a, b)), prod(ltranspose(b), ltranspose(a)))
    torch.testing.assert_close(along_slices(along_slices(a, matrix), inverse), a)  # round trip


def test_lproduct_is_facewise_matrix_product_in_the_transform_domain():
    matrix, inverse = transform_matrices("dct", 3)
    a, b = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(4, 5, 3, dtype=torch.float64)
    c_hat = along_slices(lproduct(a, b, matrix, inverse), matrix)
    a_hat, b_hat = along_slices(a, matrix), along_slices(b, matrix)
    for k in range(3):
        torch.testing.assert_close(c_hat[:, :, k], a_hat[:, :, k] @ b_hat[:, :, k])


def test_random_transform_is_seeded_and_orthogonal():
    m1, _ = transform_matrices("random", 4, seed=1)
    m2, _ = transform_matrices("random", 4, seed=1)
    m3, _ = transform_matrices("random", 4, seed=2)
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)
    torch.testing.assert_close(m1 @ m1.T, torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_slice_major_transforms_are_along_slices_and_a_permute(transform):
    """The encoder's transforms (one product each, contiguous slice-major output, the scale
    folded into diag(s) M) against the plain ones: `along_slices`, a permute, then s_k;
    outputs and gradients, for the input, the scale and the way back."""
    spectral = SpectralEncoder(32, 1, 2, 2.0, 4, transform=transform, freq_scaling="learned")
    with torch.no_grad():
        spectral.scale.uniform_(0.5, 2.0)
    scale = spectral.scale
    x = torch.randn(2, 5, 32, requires_grad=True)

    def plain_to(x):
        x_hat = along_slices(x.view(2, 5, 8, 4), spectral.matrix).permute(3, 0, 1, 2)
        return x_hat * scale.view(-1, 1, 1, 1)

    assert spectral.to_slices(x, scale).is_contiguous()
    assert_same_function(lambda: spectral.to_slices(x, scale), lambda: plain_to(x), [x, scale])
    h = torch.randn(4, 2, 5, 8, requires_grad=True)

    def plain_from(h):
        return along_slices(h.permute(1, 2, 3, 0), spectral.inverse).reshape(2, 5, 32)

    assert_same_function(lambda: spectral.from_slices(h), lambda: plain_from(h), [h])


# -- spectral equivalence ----------------------------------------------------------------
def slice_state(spectral: SpectralEncoder, k: int) -> dict:
    """Slice k of the spectral encoder's weights as a standard encoder's state (views)."""
    state = {"norm.weight": spectral.norm.weight[k]}
    for i, block in enumerate(spectral.blocks):
        state |= {
            f"blocks.{i}.attn_norm.weight": block.attn_norm.weight[k],
            f"blocks.{i}.ffn_norm.weight": block.ffn_norm.weight[k],
            f"blocks.{i}.attn.qkv.weight": block.attn.qkv.weight[k].T,
            f"blocks.{i}.attn.out.weight": block.attn.out.weight[k].T,
            f"blocks.{i}.ffn.gate_up.weight": block.ffn.gate_up.weight[k].T,
            f"blocks.{i}.ffn.out.weight": block.ffn.out.weight[k].T,
        }
    return state


def slice_encoders(spectral: SpectralEncoder, n_heads: int, ffn_mult: float):
    """p standard encoders of width m, loaded with the spectral encoder's slice weights."""
    config = ModelConfig(
        dim=spectral.m, n_layers=len(spectral.blocks), n_heads=n_heads, ffn_mult=ffn_mult
    )
    encoders = []
    for k in range(spectral.slices):
        encoder = StandardEncoder(config)
        encoder.load_state_dict(slice_state(spectral, k))
        encoders.append(encoder)
    return encoders


def randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("freq_scaling", ["none", "learned", "decay"])
def test_spectral_equivalence(transform, causal, freq_scaling):
    """L-Transformer(x) = M^-1 [standard_k(s_k x_hat_k)]_k, with a padding mask."""
    p, d, heads, ffn = 4, 32, 2, 2.0
    spectral = SpectralEncoder(
        d,
        2,
        heads,
        ffn,
        p,
        transform=transform,
        transform_seed=7,
        freq_scaling=freq_scaling,
        freq_decay=0.5,
    )
    randomize(spectral)
    x = torch.randn(3, 6, d)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    mask = attention_bias(attention_mask, 6, causal, x.device)
    expected_hat = []
    x_hat = spectral.to_slices(x)  # (p, B, n, m)
    scale = torch.ones(p) if spectral.scale is None else spectral.scale
    for k, encoder in enumerate(slice_encoders(spectral, heads, ffn)):
        expected_hat.append(encoder(scale[k] * x_hat[k], mask, causal))
    expected = spectral.from_slices(torch.stack(expected_hat))
    out = spectral(x, mask, causal)
    real = attention_mask.bool()
    torch.testing.assert_close(out[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_are_those_of_p_standard_encoders(causal):
    """The fast path (contiguous slices, one additive mask per forward, norm gains folded
    into the next slice linear, GeGLU in two products) against the plain computation
    M^-1 [standard_k(s_k x_hat_k)]_k written with `along_slices` and p standard encoders
    whose weights are views of the spectral ones: outputs and the gradients of the input
    and of every parameter."""
    p, d, heads, ffn = 4, 32, 2, 2.0
    spectral = SpectralEncoder(d, 2, heads, ffn, p, freq_scaling="learned")
    randomize(spectral)
    standard = slice_encoders(spectral, heads, ffn)[0]  # the structure; weights are views
    x = torch.randn(3, 6, d, requires_grad=True)
    attention_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [0] * 1 + [1] * 5])
    mask = attention_bias(attention_mask, 6, causal, x.device)

    def plain():
        x_hat = along_slices(x.view(3, 6, d // p, p), spectral.matrix) * spectral.scale
        slices = [
            functional_call(standard, slice_state(spectral, k), (x_hat[..., k], mask, causal))
            for k in range(p)
        ]
        return along_slices(torch.stack(slices, dim=-1), spectral.inverse).reshape(3, 6, d)

    inputs = [x, *spectral.parameters()]
    assert_same_function(lambda: spectral(x, mask, causal), plain, inputs)


@pytest.mark.parametrize("domain", ["transform", "spatial"])
def test_norm_gain_folded_into_the_next_slice_linear(domain):
    """(rms(x_k) * g_k) W_k = rms(x_k) (diag(g_k) W_k): outputs and gradients (x, g, W) equal
    the norm applied with its gain, with the weights in either domain."""
    mix = dct_matrix(4).float() if domain == "spatial" else None
    norm, linear = SliceRMSNorm(4, 8), SliceLinear(4, 8, 12)
    randomize(norm)
    x = torch.randn(4, 2, 5, 8, requires_grad=True)
    inputs = [x, norm.weight, linear.weight]
    assert_same_function(
        lambda: linear(norm.normalize(x), mix, norm.gain(mix)),
        lambda: linear(norm(x, mix), mix),
        inputs,
    )


def test_slice_geglu_in_two_products_is_the_split_of_one():
    """W_gate and W_up as two bmm (`SliceLinear.split`) against one bmm split in two: outputs
    and gradients (x, every weight)."""
    ffn = SliceGeGLU(4, 8, 12)
    x = torch.randn(4, 2, 5, 8, requires_grad=True)

    def plain():
        gate, up = torch.einsum("kbni,kio->kbno", x, ffn.gate_up.weight).chunk(2, dim=-1)
        return torch.einsum("kbni,kio->kbno", F.gelu(gate) * up, ffn.out.weight)

    assert_same_function(lambda: ffn(x), plain, [x, *ffn.parameters()])


def test_one_slice_with_identity_is_the_standard_encoder():
    config = ModelConfig(dim=32, n_layers=2, n_heads=4, ffn_mult=3.0)
    spectral = SpectralEncoder(32, 2, 4, 3.0, 1, transform="identity")
    randomize(spectral)
    (standard,) = slice_encoders(spectral, 4, 3.0)
    assert sum(p.numel() for p in standard.parameters()) == sum(
        p.numel() for p in StandardEncoder(config).parameters()
    )
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(spectral(x), standard(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transform", ["dct", "cosine"])
def test_spatial_weights_give_identical_outputs(transform):
    kwargs = dict(transform=transform, freq_scaling="learned")
    spectral = SpectralEncoder(32, 2, 2, 2.0, 4, **kwargs)
    randomize(spectral)
    spatial = SpectralEncoder(32, 2, 2, 2.0, 4, weight_domain="spatial", **kwargs)
    inverse = spectral.inverse.float()
    state = spectral.state_dict()
    for name, module in spectral.named_modules():
        if isinstance(module, (SliceLinear, SliceRMSNorm)):  # W = M^-1 W_hat along slices
            key = f"{name}.weight"
            state[key] = torch.tensordot(inverse, state[key], dims=([1], [0]))
    spatial.load_state_dict(state)
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(spatial(x), spectral(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_spatial_and_transform_domains_start_as_the_same_model(transform):
    """Same seed, same model: the spatial weights are W = W_hat x_1 M^-1 of the transform-domain
    initial values (for `identity`, W = W_hat already: the control)."""
    config = ModelConfig(
        model="classifier",
        vocab_size=50,
        dim=32,
        n_layers=2,
        n_heads=2,
        backbone="spectral",
        slices=4,
        transform=transform,
        transform_seed=3,
        freq_scaling="learned",
    )
    models = {}
    for domain in ("transform", "spatial"):
        torch.manual_seed(0)
        models[domain] = build_model(config.replace(spectral_weights=domain)).eval()
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    spatial, spectral = (models[d](ids, attention_mask=mask) for d in ("spatial", "transform"))
    torch.testing.assert_close(spatial, spectral, rtol=1e-5, atol=1e-5)
    hidden = {d: m.hidden_states(ids, mask) for d, m in models.items()}
    torch.testing.assert_close(hidden["spatial"], hidden["transform"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_fresh_spatial_norm_gains_are_ones_in_the_transform_domain(transform):
    """Every slice starts switched on: the gains g that the spatial model uses, g x_1 M, are
    ones, and its slice linear weights read in the transform domain are the usual init."""
    torch.manual_seed(1)
    spectral = SpectralEncoder(32, 2, 2, 2.0, 4, transform=transform)
    torch.manual_seed(1)
    spatial = SpectralEncoder(32, 2, 2, 2.0, 4, transform=transform, weight_domain="spatial")
    matrix = spatial.matrix.float()
    gains = [m for m in spatial.modules() if isinstance(m, SliceRMSNorm)]
    assert len(gains) == 5
    for norm in gains:
        torch.testing.assert_close(in_transform_domain(norm.weight, matrix), torch.ones(4, 8))
    for mine, theirs in zip(spatial.slice_weights(), spectral.slice_weights(), strict=True):
        torch.testing.assert_close(in_transform_domain(mine, matrix), theirs)


# -- parameters, gradients, training -----------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 4, 8])
def test_encoder_parameters_are_one_pth_up_to_norms(p):
    d, layers, ffn = 64, 3, 4.0
    spectral = SpectralEncoder(d, layers, 1, ffn, p)
    dense = StandardEncoder(ModelConfig(dim=d, n_layers=layers, n_heads=2, ffn_mult=ffn))
    count = sum(q.numel() for q in spectral.parameters())
    norms = layers * 2 * d + d  # every RMSNorm gain: p slices of m = d features in all
    matrices = layers * (4 * d * d + 3 * d * int(ffn * d))
    assert count == matrices // p + norms
    assert spectral.dense_equivalent_params() == sum(q.numel() for q in dense.parameters())


def test_param_report_shows_the_dense_equivalent():
    config = ModelConfig(
        model="classifier",
        vocab_size=100,
        dim=64,
        n_layers=2,
        n_heads=2,
        backbone="spectral",
        slices=4,
    )
    report = build_model(config).param_report()
    dense = build_model(config.replace(backbone="standard")).param_report()
    assert report["encoder_dense_equivalent"] == dense["encoder"]
    assert report["encoder"] * 4 == pytest.approx(dense["encoder"], rel=0.05)


def test_gradients_reach_every_parameter():
    spectral = SpectralEncoder(32, 2, 2, 2.0, 4, freq_scaling="learned")
    spectral(torch.randn(2, 5, 32)).pow(2).sum().backward()
    for name, p in spectral.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model_type", ["encoder", "sentence", "classifier", "causal_lm"])
def test_every_model_type_runs_on_the_spectral_backbone(tmp_path, model_type):
    config = ModelConfig(
        model=model_type,
        vocab_size=50,
        dim=32,
        n_layers=1,
        n_heads=2,
        backbone="spectral",
        slices=2,
        embedding={"kind": "fourier"},
    )
    model = build_model(config).eval()
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    out = model(ids, attention_mask=mask)
    assert torch.isfinite(out).all()
    model.save_pretrained(tmp_path)
    torch.testing.assert_close(
        load_pretrained(tmp_path)(ids, attention_mask=mask), out, rtol=0, atol=0
    )
    if model_type == "causal_lm":  # no look-ahead through the slices either
        changed = ids.clone()
        changed[:, 4:] = (changed[:, 4:] + 1) % 50
        torch.testing.assert_close(model(changed)[:, :4], model(ids)[:, :4], rtol=1e-5, atol=1e-5)


def test_spectral_classifier_trains_on_a_tiny_batch():
    torch.manual_seed(0)
    config = ModelConfig(
        model="classifier",
        vocab_size=50,
        dim=32,
        n_layers=2,
        n_heads=2,
        num_labels=2,
        backbone="spectral",
        slices=4,
        freq_scaling="learned",
    )
    model = build_model(config)
    ids = torch.randint(0, 50, (8, 10))
    labels = torch.tensor([0, 1] * 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_bfloat16_keeps_the_transform_exact():
    spectral = SpectralEncoder(32, 1, 2, 2.0, 4).to(torch.bfloat16)
    assert spectral.matrix.dtype == torch.float64
    x = torch.randn(2, 3, 32)
    torch.testing.assert_close(spectral.from_slices(spectral.to_slices(x)), x, rtol=1e-6, atol=1e-6)
    assert spectral(x.bfloat16()).dtype == torch.bfloat16
