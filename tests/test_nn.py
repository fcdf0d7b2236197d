"""Shared blocks against closed forms and an independent attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from petra.nn import (
    GeGLU,
    MultiHeadAttention,
    RMSNorm,
    RotaryEmbedding,
    additive_bias,
    attention_bias,
)


def assert_same_function(fast, plain, inputs, atol=1e-5, rtol=1e-5):
    """fast() and plain() give the same output, and the same gradients of sum(output * G), for
    one random G, with respect to every tensor in `inputs` (inputs and parameters)."""
    out = fast()
    grad_out = torch.randn_like(out)
    fast_grads = torch.autograd.grad(out, inputs, grad_out)
    expected = plain()
    plain_grads = torch.autograd.grad(expected, inputs, grad_out)
    torch.testing.assert_close(out, expected, atol=atol, rtol=rtol)
    for mine, theirs in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(mine, theirs, atol=atol, rtol=rtol)


def test_rope_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding(16)
    q, k = torch.randn(16), torch.randn(16)

    def score(s, t):
        rq = rope(q.view(1, 1, 1, 16), torch.tensor([s]))
        rk = rope(k.view(1, 1, 1, 16), torch.tensor([t]))
        return (rq * rk).sum().item()

    for s, t in [(0, 3), (5, 1), (7, 7), (2, 40)]:
        for shift in (1, 13, 250):
            assert score(s + shift, t + shift) == pytest.approx(score(s, t), abs=1e-5)
    assert abs(score(0, 3) - score(0, 4)) > 1e-3  # and it does depend on the offset


def test_rope_preserves_norms_and_rotates_pairs_by_position():
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 3, 11, 8)
    y = rope(x)
    assert rope(x.bfloat16()).dtype == torch.bfloat16
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    # pair i = (2i, 2i + 1) turns by t theta_i, theta_i = 10000^(-2i/8): a plain rotation
    t = 5
    for i in range(4):
        angle = t * 10000 ** (-2 * i / 8)
        c, s = math.cos(angle), math.sin(angle)
        a, b = x[0, 0, t, 2 * i], x[0, 0, t, 2 * i + 1]
        torch.testing.assert_close(y[0, 0, t, 2 * i], c * a - s * b)
        torch.testing.assert_close(y[0, 0, t, 2 * i + 1], s * a + c * b)


def reference_attention(attn, x, attention_mask, causal):
    """Attention written out by hand from the module's weights."""
    b, t, d = x.shape
    h, w = attn.n_heads, attn.head_dim
    q, k, v = attn.qkv(x).view(b, t, 3, h, w).unbind(2)
    q, k, v = (z.transpose(1, 2) for z in (q, k, v))
    q, k = attn.rope(q), attn.rope(k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(w)  # (B, H, T, T)
    allowed = torch.ones(t, t, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    allowed = allowed & attention_mask.bool()[:, None, None, :]
    allowed = allowed | torch.eye(t, dtype=torch.bool)
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return attn.out((weights @ v).transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_a_hand_written_softmax(causal):
    attn = MultiHeadAttention(32, 4)
    x = torch.randn(3, 7, 32)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0] * 2 + [1] * 5])  # incl. left padding
    out = attn(x, attention_bias(mask, 7, causal, x.device), causal)
    torch.testing.assert_close(
        out, reference_attention(attn, x, mask, causal), atol=1e-5, rtol=1e-5
    )
    assert torch.isfinite(out).all()


def test_causal_fast_path_equals_explicit_mask():
    attn = MultiHeadAttention(16, 2)
    x = torch.randn(2, 6, 16)
    explicit = attn(x, attention_bias(torch.ones(2, 6), 6, True, x.device), True)
    torch.testing.assert_close(attn(x, None, True), explicit, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_additive_bias_is_the_boolean_mask_that_sdpa_converts(causal):
    """One conversion per forward instead of SDPA's per layer: the same attention (outputs
    and gradients), and `copies` stacks the batch slice-major (row c N + b is row b)."""
    attn = MultiHeadAttention(16, 2)
    x = torch.randn(3, 5, 16, requires_grad=True)
    mask = attention_bias(
        torch.tensor([[1] * 5, [1] * 3 + [0] * 2, [0] + [1] * 4]), 5, causal, "cpu"
    )
    bias = additive_bias(mask)
    assert bias.dtype == torch.float32 and torch.equal(bias == 0, mask)
    assert torch.equal(additive_bias(mask, 2), torch.cat((bias, bias)))
    assert additive_bias(mask[:1], 2).shape[0] == 1  # a batch of one broadcasts
    inputs = [x, *attn.parameters()]
    assert_same_function(lambda: attn(x, bias, causal), lambda: attn(x, mask, causal), inputs)


def test_rmsnorm_closed_form_in_float32_for_low_precision_input():
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    x = torch.randn(4, 8, dtype=torch.float64)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight.double()
    torch.testing.assert_close(norm(x.float()).double(), expected, rtol=1e-6, atol=1e-6)
    assert norm(x.bfloat16()).dtype == torch.bfloat16


def test_geglu_closed_form():
    """The closed form with one fused product split in two: outputs and gradients (the module
    computes W_gate and W_up as two products)."""
    ffn = GeGLU(6, 10)
    x = torch.randn(3, 6, requires_grad=True)

    def closed_form():
        gate, up = (x @ ffn.gate_up.weight.T).chunk(2, dim=-1)
        return (F.gelu(gate) * up) @ ffn.out.weight.T

    assert_same_function(lambda: ffn(x), closed_form, [x, *ffn.parameters()])
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 6 * 10
