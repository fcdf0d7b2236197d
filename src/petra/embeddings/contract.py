"""The embedding contract as checks a kind's author can run: `check_kind`.

    from petra.embeddings import check_kind
    check_kind(MyEmbedding)                  # or a registered name: check_kind("random-code")
    check_kind(MyEmbedding, bits=8)          # at other options

Each check builds the kind afresh on a small vocabulary (V = 97 ids, d = 16 by default; a
kind built from token bytes gets V distinct byte strings) and holds it to one part of the
contract of `petra.embeddings.base`. Every check runs; the failures are raised together as
one `ContractError`, each under its check's name. petra's own kinds pass every check (its
contract tests call these functions, beside checks of their own on each kind's options).
"""

from __future__ import annotations

from collections.abc import Callable

import safetensors.torch
import torch
from torch import nn

from petra.embeddings.base import TOKEN_INPUTS, TokenEmbedding
from petra.embeddings.budget import size_for_budget
from petra.embeddings.registry import embedding_class

# a factory of fresh embeddings of one kind and options; keywords add or replace options
Make = Callable[..., TokenEmbedding]

# the integer dtypes ids may come in besides int64 (each holds the ids 0..127)
INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.uint8, torch.uint16, torch.uint32,
                  torch.uint64)  # fmt: skip


class ContractError(AssertionError):
    """A kind broke the contract: the message names each failed check and why."""


def distinct_token_bytes(vocab_size: int) -> list[bytes]:
    """`vocab_size` distinct byte strings of one to five bytes, for a kind built from bytes."""
    return [bytes([i % 256]) * (1 + i % 5) + bytes([i // 256]) * (i >= 256)
            for i in range(vocab_size)]  # fmt: skip


def _trainable(emb: nn.Module) -> int:
    return sum(p.numel() for p in emb.parameters() if p.requires_grad)


def _perturbed(emb: TokenEmbedding, size: float = 1.0) -> TokenEmbedding:
    """`emb` with every parameter moved off its start by N(0, size^2) noise (a zero or
    identity start would hide a part of the map that a check should see)."""
    with torch.no_grad():
        for p in emb.parameters():
            p.add_(size * torch.randn_like(p))
    return emb


def check_shapes(make: Make, vocab_size: int, dim: int) -> None:
    """Any batch shape, empty ones included, gives `(..., d)`, each row its id's alone."""
    emb = make()
    for shape in [(5,), (2, 3), (2, 3, 4), (1, 1, 1, 7)]:
        ids = torch.randint(0, vocab_size, shape)
        out = emb(ids)
        assert out.shape == (*shape, dim), f"ids of shape {shape} gave {tuple(out.shape)}"
        rows = torch.stack([emb(torch.tensor([i]))[0] for i in ids.reshape(-1).tolist()])
        torch.testing.assert_close(out.reshape(-1, dim), rows, rtol=1e-5, atol=1e-6)
    for shape in [(0,), (3, 0)]:
        out = emb(torch.zeros(shape, dtype=torch.long))
        assert out.shape == (*shape, dim), f"empty ids {shape} gave {tuple(out.shape)}"


def check_ids(make: Make, vocab_size: int, dim: int) -> None:
    """Ids out of range are refused naming the value and the range; ids that are not an
    integer tensor are refused, even with `validate` off; any integer dtype reads as long."""
    emb = make()
    for bad in (-1, vocab_size, vocab_size + 1000):
        try:
            emb(torch.tensor([[0, 1], [bad, 2]]))
        except ValueError as error:
            wanted = f"token id {bad} is outside"
            assert wanted in str(error) and f"[0, {vocab_size})" in str(error), str(error)
        else:
            raise AssertionError(f"token id {bad} was accepted (V = {vocab_size})")
    for validate in (True, False):
        emb.validate = validate
        for ids in (torch.tensor([1.7, 2.2]), torch.zeros(3, dtype=torch.bool), [1, 2, 3]):
            try:
                emb(ids)
            except TypeError:
                pass
            else:
                raise AssertionError(f"ids {ids!r} were accepted (validate={validate})")
    emb.validate = True
    ids = torch.tensor([[0, 5], [min(vocab_size - 1, 127), 90 % vocab_size]])
    for dtype in INTEGER_DTYPES:
        torch.testing.assert_close(emb(ids.to(dtype)), emb(ids))


def check_table(make: Make, vocab_size: int, dim: int) -> None:
    """`table()` is the forward of every id, in chunks or not, and `to_embedding()` a frozen
    `nn.Embedding` with the same outputs and padding id."""
    emb = make(padding_idx=0)
    table = emb.table(chunk_size=10)  # chunks that need not divide V
    assert table.shape == (vocab_size, dim), f"table() has shape {tuple(table.shape)}"
    torch.testing.assert_close(table, emb(torch.arange(vocab_size)), rtol=1e-5, atol=1e-6)
    frozen = emb.to_embedding()
    assert isinstance(frozen, nn.Embedding) and not frozen.weight.requires_grad
    assert frozen.padding_idx == 0, f"to_embedding() has padding_idx {frozen.padding_idx}"
    ids = torch.randint(0, vocab_size, (4, 9))
    torch.testing.assert_close(frozen(ids), emb(ids), rtol=1e-5, atol=1e-6)


def check_padding(make: Make, vocab_size: int, dim: int) -> None:
    """The padding id embeds to zero, in `forward` and `table()`, and adds no gradient."""
    emb = make(padding_idx=3)
    out = emb(torch.tensor([[3, 4], [5, 3]]))
    assert torch.all(out[0, 0] == 0) and torch.all(out[1, 1] == 0), "padding is not zero"
    assert out[0, 1].abs().sum() > 0, "a token that is not padding embeds to zero"
    torch.testing.assert_close(emb.table()[3], torch.zeros(dim))
    if not any(True for _ in emb.parameters()):
        return
    grads = []
    for ids in (torch.tensor([4, 3]), torch.tensor([4])):
        emb.zero_grad()
        emb(ids).sum().backward()
        grads.append([p.grad.clone() for p in emb.parameters()])
    for with_pad, without in zip(*grads, strict=True):
        torch.testing.assert_close(with_pad, without)


def check_gradients(make: Make, vocab_size: int, dim: int) -> None:
    """Through a tied output head (`hidden @ table().T`), every trainable parameter gets a
    gradient that is not zero."""
    emb = make()
    if not any(p.requires_grad for p in emb.parameters()):
        return
    logits = torch.randn(3, dim) @ emb.table().T
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2, 3])).backward()
    for name, p in emb.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"


def check_counts(make: Make, vocab_size: int, dim: int, saved: dict) -> None:
    """`params_for` is the built module's trainable count (at the options a config saves);
    the parameter report counts parameters and the learned table's equivalent, and its
    stored bytes are those of the state's safetensors data."""
    emb = make()
    kind_class = type(emb)
    counted = kind_class.params_for(vocab_size, dim, **saved)
    assert counted == _trainable(emb), f"params_for gives {counted}, built {_trainable(emb)}"
    report = emb.param_report()
    assert report.kind == kind_class.kind, f"the report names kind {report.kind!r}"
    assert (report.num_embeddings, report.embedding_dim) == (vocab_size, dim)
    assert report.trainable_params == _trainable(emb), "the report's trainable count differs"
    assert report.learned_equivalent == vocab_size * dim
    data = safetensors.torch.save({k: v.contiguous() for k, v in emb.state_dict().items()})
    header = 8 + int.from_bytes(data[:8], "little")  # the file's data follow its header
    assert report.stored_bytes == len(data) - header, "stored_bytes is not the state's bytes"
    kind_class.check_options(dim, **saved)  # what builds is accepted


def check_saving(make: Make, vocab_size: int, dim: int, saved: dict) -> None:
    """A state dict loads into a fresh module, and `from_saved` rebuilds one it loads into,
    with the same outputs."""
    source = _perturbed(make())
    ids = torch.randint(0, vocab_size, (10,))
    target = make()
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(ids), source(ids))
    state = {"embedding." + k: v for k, v in source.state_dict().items()}
    loaded = type(source).from_saved(vocab_size, dim, state, "embedding.", **saved)
    loaded.load_state_dict(source.state_dict())
    torch.testing.assert_close(loaded(ids), source(ids))


def check_dtypes(make: Make, vocab_size: int, dim: int) -> None:
    """`.to(float64)` changes the computation's dtype, not its result."""
    emb = make()
    ids = torch.randint(0, vocab_size, (3, 4))
    expected = emb(ids)
    out = emb.to(torch.float64)(ids)
    assert out.dtype == torch.float64, f"a float64 module gave {out.dtype}"
    scale = expected.abs().max()
    torch.testing.assert_close(out.float() / scale, expected / scale, rtol=0, atol=1e-5)


def check_scale(make: Make, vocab_size: int, dim: int) -> None:
    """`scale_(c)` multiplies every output by c exactly, with no parameter added, or
    refuses in the contract's words; a factor that is not positive and finite is refused."""
    emb = _perturbed(make(), 0.1)  # a trained-looking map, within float32's exact scaling
    before = emb.table().detach().clone()
    try:
        assert emb.scale_(0.37) is emb, "scale_ does not return the module"
    except ValueError as error:
        assert "cannot scale its outputs exactly" in str(error), str(error)
    else:
        peak = before.abs().max()  # float32's rounding, relative to the table's size
        torch.testing.assert_close(
            emb.table().detach() / peak, 0.37 * before / peak, rtol=0, atol=1e-5
        )
        added = sum(p.numel() for p in emb.parameters()) - sum(
            p.numel() for p in make().parameters()
        )
        assert added == 0, f"scale_ added {added} parameters"
    for factor in (0.0, -1.0, float("nan")):
        try:
            make().scale_(factor)
        except ValueError:
            pass
        else:
            raise AssertionError(f"scale_({factor}) was accepted")


def check_budget(
    kind_class: type[TokenEmbedding], vocab_size: int, dim: int, saved: dict, inputs: dict
) -> None:
    """A budget of the kind's size at `saved` options is met exactly by `size_for_budget`
    (the options but the knob kept), and the sizing, built with `inputs` (token bytes and
    other construction inputs), has that count (a kind with no `budget_knob`, or nothing
    to train at these options, is left out)."""
    budget = kind_class.params_for(vocab_size, dim, **saved)
    if not kind_class.budget_knob or budget == 0:
        return
    others = {k: v for k, v in saved.items() if k not in kind_class.budget_knob}
    sizing = size_for_budget(kind_class, vocab_size, dim, budget, **others)
    assert sizing.params == budget, f"a budget of {budget} was sized to {sizing.params}"
    assert set(sizing.options) <= set(kind_class.budget_knob), (
        f"the sizing set {sorted(sizing.options)}, not only the knob {kind_class.budget_knob}"
    )
    built = kind_class.build(vocab_size, dim, **others, **sizing.options, **inputs)
    assert _trainable(built) == budget, f"the sizing builds {_trainable(built)} parameters"


def check_kind(
    kind: str | type[TokenEmbedding], *, vocab_size: int = 97, dim: int = 16, **options
) -> list[str]:
    """Hold a kind (its class, or a registered name) to petra's embedding contract at
    `options`; return the names of the checks, all passed.

    A kind built from token bytes gets `token_bytes` (V distinct byte strings) unless
    `options` gives them. Raises `ContractError` naming every failed check and why.
    """
    kind_class = embedding_class(kind) if isinstance(kind, str) else kind
    if not (isinstance(kind_class, type) and issubclass(kind_class, TokenEmbedding)):
        raise TypeError(
            f"check_kind takes a TokenEmbedding subclass or a kind's name, got {kind!r}"
        )
    extra = {}
    if kind_class.needs_tokenizer and not set(TOKEN_INPUTS) & set(options):
        extra["token_bytes"] = distinct_token_bytes(vocab_size)
    dropped = (*TOKEN_INPUTS, *kind_class.construction_inputs)
    saved = {k: v for k, v in options.items() if k not in dropped}  # as a config saves them
    inputs = {**{k: v for k, v in options.items() if k in dropped}, **extra}

    def make(**more) -> TokenEmbedding:
        return kind_class.build(vocab_size, dim, **{**options, **extra, **more})

    checks = {
        "shapes": lambda: check_shapes(make, vocab_size, dim),
        "ids": lambda: check_ids(make, vocab_size, dim),
        "table": lambda: check_table(make, vocab_size, dim),
        "padding": lambda: check_padding(make, vocab_size, dim),
        "gradients": lambda: check_gradients(make, vocab_size, dim),
        "counts": lambda: check_counts(make, vocab_size, dim, saved),
        "saving": lambda: check_saving(make, vocab_size, dim, saved),
        "dtypes": lambda: check_dtypes(make, vocab_size, dim),
        "scale": lambda: check_scale(make, vocab_size, dim),
        "budget": lambda: check_budget(kind_class, vocab_size, dim, saved, inputs),
    }
    failed = []
    with torch.random.fork_rng():  # seeded here, the caller's random state left as it was
        torch.manual_seed(0)
        for name, check in checks.items():
            try:
                check()
            except Exception as error:  # noqa: BLE001 - every failure is reported, by name
                failed.append(f"- {name}: {type(error).__name__}: {error}".rstrip())
    if failed:
        raise ContractError(
            f"{kind_class.__name__} ({kind_class.kind!r}) fails {len(failed)} of {len(checks)} "
            "checks of the embedding contract:\n" + "\n".join(failed)
        )
    return list(checks)
