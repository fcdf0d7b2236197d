"""Optimizer groups by what a parameter is, the learning-rate schedule's closed form, and the
one training step (`optimizer_step`) against plain SGD written out."""

import pytest
import torch
from torch import nn

from petra.models import ModelConfig, build_model
from petra.training.optim import optimizer_step, parameter_groups

EMBEDDINGS = {
    "learned": {"kind": "learned"},
    "factorized": {"kind": "learned", "factor_dim": 8},
    "fourier_linear": {"kind": "fourier", "refine": "linear"},
    "fourier_geglu_norm": {"kind": "fourier", "refine": "geglu", "final_norm": True},
    "kronecker": {"kind": "kronecker", "pos_dim": 4},
    "kronecker_factorized": {"kind": "kronecker", "pos_dim": 4, "rank": 3},
    "qr": {"kind": "qr"},
    "hash": {"kind": "hash"},
    "dhe": {"kind": "dhe", "hidden": 8, "code_dim": 16},
    "tt": {"kind": "tt", "rank": 2},  # its cores are the table: decayed like one
}
GAINS = ("attn_norm.weight", "ffn_norm.weight", "backbone.norm.weight", "embedding.norm.weight")


def tiny_model(model_type: str, backbone: str, embedding: str):
    config = ModelConfig(
        model=model_type,
        vocab_size=40,
        dim=16,
        n_layers=2,
        n_heads=2,
        backbone=backbone,
        slices=2 if backbone == "spectral" else 1,
        freq_scaling="learned" if backbone == "spectral" else "none",
        tie_embeddings=False,  # a causal LM with its own head.weight
        embedding=EMBEDDINGS[embedding],
    )
    token_bytes = [bytes([33 + i]) * (1 + i % 3) for i in range(40)]
    kronecker = EMBEDDINGS[embedding]["kind"] == "kronecker"
    return build_model(config, token_bytes=token_bytes if kronecker else None)


def group_names(model: nn.Module, weight_decay: float = 0.1) -> tuple[set, set]:
    decay, no_decay = parameter_groups(model, weight_decay)
    assert decay["weight_decay"] == weight_decay and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}


@pytest.mark.parametrize("embedding", list(EMBEDDINGS))
@pytest.mark.parametrize("model_type", ["encoder", "sentence", "classifier", "causal_lm"])
@pytest.mark.parametrize("backbone", ["standard", "spectral"])
def test_no_decay_group_is_norm_gains_biases_scales_and_temperature(
    backbone, model_type, embedding
):
    """Whatever their shape: the norm gains ((d,) or the spectral (p, m)), biases, the
    spectral `scale` and the sentence temperature are not decayed; every other parameter (a
    linear weight, an embedding table or projection, a slice weight (p, m_in, m_out)) is."""
    model = tiny_model(model_type, backbone, embedding)
    decay, no_decay = group_names(model)
    names = {n for n, _ in model.named_parameters()}
    expected = {
        n
        for n in names
        if n.endswith(GAINS) or n.endswith(".bias") or n in ("backbone.scale", "log_temperature")
    }
    assert no_decay == expected
    assert decay == names - expected and decay.isdisjoint(no_decay)
    assert ("backbone.scale" in no_decay) == (backbone == "spectral")
    assert ("log_temperature" in no_decay) == (model_type == "sentence")


def test_spectral_slice_norm_gains_are_not_decayed():
    """The (p, m) gains of the spectral backbone's SliceRMSNorms are norm gains, as the (d,)
    gains of the standard backbone: the same rule, whatever the number of dimensions."""
    spectral, standard = (tiny_model("classifier", b, "learned") for b in ("spectral", "standard"))
    _, no_decay = group_names(spectral)
    gains = {n for n, p in spectral.named_parameters() if n.endswith("norm.weight")}
    assert len(gains) == 5 and all(spectral.get_parameter(n).shape == (2, 8) for n in gains)
    assert gains <= no_decay
    _, standard_no_decay = group_names(standard)
    assert {n for n in no_decay if n.endswith("norm.weight")} == {
        n for n in standard_no_decay if n.endswith("norm.weight")
    }


def test_torch_norm_layers_and_frozen_parameters():
    """torch's own norm layers count as norms; frozen parameters join no group."""
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 3), nn.RMSNorm(3))
    model[2].weight.requires_grad_(False)
    decay, no_decay = group_names(model)
    assert decay == {"0.weight"}
    assert no_decay == {"1.weight", "1.bias", "2.bias", "3.weight"}


def test_gains_of_norm_classes_petra_does_not_know_are_not_decayed():
    """A user's (or Hugging Face's LlamaRMSNorm-style) norm: a 1-D `weight` of an unknown
    class is a gain, not a matrix."""

    class UserRMSNorm(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))

    model = nn.Sequential(nn.Linear(4, 4), UserRMSNorm(4))
    decay, no_decay = group_names(model)
    assert decay == {"0.weight"} and no_decay == {"0.bias", "1.weight"}


def test_every_trainable_parameter_is_in_exactly_one_group():
    model = tiny_model("sentence", "spectral", "fourier_geglu_norm")
    decay, no_decay = parameter_groups(model, 0.1)
    grouped = [id(p) for p in decay["params"] + no_decay["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    torch.optim.AdamW([decay, no_decay])  # accepted as optimizer groups


def _sgd_step_setup(scale: float):
    """A linear model, a loss whose gradient norm grows with `scale`, SGD at lr 0.1 with a
    schedule halving the rate each step."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    inputs = torch.randn(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    loss = scale * model(inputs).pow(2).sum()
    return model, loss, optimizer, schedule


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # below and above the clipping norm
@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_optimizer_step_is_backward_clip_update_schedule(scale, grad_clip):
    """w' = w - lr g min(1, c / (||g|| + 1e-6)) (no scaling for c = 0), ||g|| the global norm
    of the gradients, handed to `check_norm` before the update; the rate used is returned,
    the schedule moves on and the gradients are cleared."""
    model, loss, optimizer, schedule = _sgd_step_setup(scale)
    before = [p.detach().clone() for p in model.parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    factor = min(1.0, grad_clip / (norm.item() + 1e-6)) if grad_clip > 0 else 1.0
    seen = []

    def check_norm(found):
        seen.append(found.item())
        assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))

    lr = optimizer_step(model, loss, optimizer, schedule, grad_clip, check_norm=check_norm)
    assert lr == 0.1 and optimizer.param_groups[0]["lr"] == 0.05
    assert seen == ([pytest.approx(norm.item(), rel=1e-6)] if grad_clip > 0 else [])
    assert (factor < 1) == (grad_clip > 0 and scale > 1)  # both cases are met
    for b, g, p in zip(before, grads, model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), b - 0.1 * factor * g)
        assert p.grad is None


def test_a_check_that_raises_leaves_the_weights_and_the_schedule_as_they_were():
    model, loss, optimizer, schedule = _sgd_step_setup(10.0)
    before = [p.detach().clone() for p in model.parameters()]

    def refuse(norm):
        raise RuntimeError(f"norm {norm.item():.0f}")

    with pytest.raises(RuntimeError, match="norm"):
        optimizer_step(model, loss, optimizer, schedule, 1.0, check_norm=refuse)
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert optimizer.param_groups[0]["lr"] == 0.1
