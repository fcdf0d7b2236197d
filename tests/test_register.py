"""A kind of one's own: `register` (the example in examples/own_kind.py, which the conftest
imports, is held to the whole contract in test_contract.py) and the `petra.embeddings`
entry points that make a kind known to every process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from own_kind import RandomCodeEmbedding
from torch import Tensor

from petra.embeddings import (
    KINDS,
    REGISTRY,
    LearnedEmbedding,
    TokenEmbedding,
    build_embedding,
    embedding_class,
    kinds,
    register,
    size_for_budget,
)
from petra.embeddings import registry as registry_module
from petra.models import ModelConfig, build_model, load_pretrained

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry (the one dict every module holds) as it is, restored in place after the
    test; entry points read again."""
    snapshot = dict(REGISTRY)
    monkeypatch.setattr(registry_module, "_entry_points_read", False)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(snapshot)


def _kind(name: str, **namespace):
    """A TokenEmbedding subclass named `name` with every piece a kind states, but for those
    set to None in `namespace` (left out)."""

    def params_for(cls, vocab_size, dim, **options):
        return dim

    def budget_layouts(cls, vocab_size, dim, budget, **options):
        return []

    def _embed(self, ids: Tensor) -> Tensor:
        return torch.zeros(len(ids), self.embedding_dim)

    body = {"kind": name, "budget_knob": (), "report_layouts": ((name, {}),),
            "params_for": classmethod(params_for), "budget_layouts": classmethod(budget_layouts),
            "_embed": _embed}  # fmt: skip
    body |= namespace
    return type("Made", (TokenEmbedding,), {k: v for k, v in body.items() if v is not None})


def test_the_example_kind_is_known_by_name_after_its_import():
    assert REGISTRY["random-code"] is RandomCodeEmbedding
    assert kinds()[: len(KINDS)] == KINDS and "random-code" in kinds()
    assert "random-code" not in KINDS  # petra's own kinds only
    emb = build_embedding("random-code", 100, 8, bits=4, seed=3)
    assert (
        emb.param_report().trainable_params == 32 == RandomCodeEmbedding.params_for(100, 8, bits=4)
    )
    assert size_for_budget("random-code", 100, 8, 64).options == {"bits": 8}


def test_the_example_kind_is_a_rank_r_table_of_sign_codes():
    """E = W s / sqrt(r) with s in {-1, +1}^r: the table is the codes times W^T, of rank r."""
    emb = build_embedding("random-code", 50, 16, bits=5, seed=1)
    codes = emb.features(torch.arange(50)) * 5**0.5
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    table = emb.table().detach()
    torch.testing.assert_close(table, codes @ emb.map.weight.T.detach() / 5**0.5)
    assert torch.linalg.matrix_rank(table) == 5


def test_a_model_of_the_example_kind_saves_and_loads(tmp_path):
    config = ModelConfig(model="causal_lm", vocab_size=64, dim=16, n_layers=1, n_heads=2,
                         embedding={"kind": "random-code", "bits": 8})  # fmt: skip
    model = build_model(config)
    assert config.head_tied  # the class's default (`head_tied_by_default`)
    model.save_pretrained(tmp_path / "model")
    loaded = load_pretrained(tmp_path / "model")
    ids = torch.randint(0, 64, (2, 5))
    torch.testing.assert_close(loaded.eval()(ids), model.eval()(ids), rtol=0, atol=0)


def test_registering_a_class_again_changes_nothing(clean_registry):
    before = dict(clean_registry)
    assert register(RandomCodeEmbedding) is RandomCodeEmbedding
    for cls in (REGISTRY[kind] for kind in KINDS):  # petra's own kinds pass its checks
        register(cls)
    assert clean_registry == before


@pytest.mark.parametrize(
    "made, error, message",
    [
        (lambda: int, TypeError, "register takes a TokenEmbedding subclass, got <class 'int'>"),
        (lambda: _kind(None), ValueError, "Made needs a kind: a class attribute naming it"),
        (lambda: _kind("two words"), ValueError, "got 'two words'"),
        (lambda: _kind("a,b"), ValueError, "in letters, digits and -_."),
        (lambda: _kind("../up"), ValueError, "got '../up'"),
        (lambda: type("Inherits", (LearnedEmbedding,), {}), ValueError, "Inherits needs a kind"),
        (lambda: _kind("x", budget_knob=None), TypeError, "Made does not state budget_knob"),
        (lambda: _kind("x", report_layouts=[]), TypeError, "does not state report_layouts"),
        (lambda: _kind("x", _embed=None, params_for=None), TypeError,
         "Made does not state _embed, params_for: every kind does"),
        (lambda: _kind("learned"), ValueError,
         "the kind 'learned' is taken by petra.embeddings.learned.LearnedEmbedding; give "),
    ],
)  # fmt: skip
def test_a_class_that_is_not_a_kind_is_refused_by_name(clean_registry, made, error, message):
    before = dict(clean_registry)
    with pytest.raises(error) as raised:
        register(made())
    assert message in str(raised.value)
    assert clean_registry == before


def test_a_class_defined_again_in_its_module_takes_the_place_of_the_one_before(clean_registry):
    """A module reloaded (a notebook cell run again) defines a new class of the same name."""
    first = _kind("made-twice")
    register(first)
    again = _kind("made-twice")
    assert again is not first and register(again) is again
    assert embedding_class("made-twice") is again


def _installed(root: Path, entry: str) -> Path:
    """A package's metadata under `root` naming `entry` in the `petra.embeddings` group, as
    `pip install` leaves it (a dist-info folder on the path)."""
    info = root / "own_kind_example-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: own-kind-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[petra.embeddings]\n{entry}\n")
    return root


def test_an_installed_kind_is_found_by_the_command_line_without_an_import(tmp_path):
    """`petra params` in a fresh process lists the kind an installed package names."""
    site = _installed(tmp_path / "site", "random-code = own_kind:RandomCodeEmbedding")
    path = os.pathsep.join([str(site), str(EXAMPLES), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "petra", "params", "--tokenizers", "gpt2", "--dims", "64"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| gpt2 | 50,257 | 64 | random-code, r = 64 | 4,096 |" in result.stdout


@pytest.mark.parametrize(
    "entry, reason",
    [
        ("broken = no_such_module:Kind", "No module named 'no_such_module'"),
        ("other-name = own_kind:RandomCodeEmbedding", "it names the kind 'random-code'"),
    ],
)
def test_an_installed_kind_that_does_not_load_is_left_out_with_a_warning(
    clean_registry, tmp_path, monkeypatch, entry, reason
):
    monkeypatch.syspath_prepend(str(_installed(tmp_path, entry)))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    name = entry.split(" = ")[0]
    with pytest.warns(UserWarning, match="left out") as caught:
        with pytest.raises(ValueError, match=f"unknown embedding kind '{name}'"):
            embedding_class(name)
    assert f"the embedding kind '{name}'" in str(caught[0].message)
    assert reason in str(caught[0].message)
    assert embedding_class("fourier") is REGISTRY["fourier"]  # petra's own kinds still work
