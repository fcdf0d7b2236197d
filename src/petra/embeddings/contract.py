"""The embedding contract as checks a kind's author can run: `check_kind`.

    from petra.embeddings import check_kind
    check_kind(MyEmbedding)                  # or a registered name: check_kind("random-code")
    check_kind(MyEmbedding, bits=8)          # at other options

Each check builds the kind afresh on a small vocabulary (V = 97 ids, d = 16 by default; a
kind built from token bytes gets V distinct byte strings) and holds it to one part of the
contract of `petra.embeddings.base`, on the CPU, in float32 (float64 in the dtype check),
in training mode, seeded. Every check runs; the failures are raised together as one
`ContractError`, each under its check's name. petra's own kinds pass every check (its
contract tests call `check_kind` on each of them, beside tests of their own details).

Not checked here: the optional hooks (`from_table`, a least-squares start, `embed_bytes`),
bfloat16, and the table a computed kind keeps in evaluation mode.
"""

from __future__ import annotations

import inspect
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

# the checks below read ids up to 5 (padding 3, tokens 4 and 5)
SMALLEST_VOCABULARY = 6


class ContractError(AssertionError):
    """A kind broke the contract: the message names each failed check and why;
    `failures` maps each failed check's name to its exception (the first is the cause)."""

    def __init__(self, message: str, failures: dict[str, Exception]):
        super().__init__(message)
        self.failures = failures


def distinct_token_bytes(vocab_size: int) -> list[bytes]:
    """`vocab_size` distinct byte strings, for a kind built from token bytes: one byte
    repeated one to five times, and past id 255 the id's digits after a `#`."""
    return [bytes([i % 256]) * (1 + i % 5) + (b"#%d" % i if i >= 256 else b"")
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


def _close_for_its_size(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """`actual` equals `expected` within `atol` of `expected`'s largest entry (float
    rounding grows with the values' size)."""
    peak = expected.abs().max().clamp_min(1e-12)
    torch.testing.assert_close(actual / peak, expected / peak, rtol=0, atol=atol)


def _refused(call: Callable[[], object], error: type[Exception], words: str) -> None:
    """`call()` raises `error` with `words` in its message."""
    try:
        call()
    except error as raised:
        assert words in str(raised), f"refused with {str(raised)!r}, which lacks {words!r}"
    else:
        raise AssertionError(f"not refused with {error.__name__} ({words!r})")


def check_description(kind_class: type[TokenEmbedding], vocab_size: int, dim: int,
                      token_source: dict) -> None:  # fmt: skip
    """The kind describes itself as `petra.embeddings.base` asks: a `kind` name, a
    `budget_knob` among its options, `report_layouts` labelled with its name, among its
    options and counted right by `params_for` (built from `token_source` alone, as `petra
    params` builds them), construction inputs its builder takes."""
    options = kind_class.option_types()
    assert isinstance(kind_class.kind, str) and kind_class.kind, "the class states no kind"
    assert set(kind_class.budget_knob) <= set(options), (
        f"budget_knob {kind_class.budget_knob} names what is not an option"
    )
    assert kind_class.report_layouts, "report_layouts is empty"
    for label, layout in kind_class.report_layouts:
        assert isinstance(label, str) and label.startswith(kind_class.kind), (
            f"the report label {label!r} does not start with {kind_class.kind!r}"
        )
        assert set(layout) <= set(options), f"the layout {layout} names what is not an option"
        counted = kind_class.params_for(vocab_size, dim, **layout)
        built = _trainable(kind_class.build(vocab_size, dim, **layout, **token_source))
        assert counted == built, f"the layout {label!r}: params_for {counted}, built {built}"
    builder = inspect.signature(kind_class.builder()).parameters
    missing = set(kind_class.construction_inputs) - set(builder)
    assert not missing, f"construction_inputs {sorted(missing)} are not the builder's"


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


def check_id_handling(make: Make, vocab_size: int, dim: int) -> None:
    """Ids out of range are refused naming the value and the range; ids that are not an
    integer tensor are refused, even with `validate` off; any integer dtype reads as long."""
    emb = make()
    for bad in (-1, vocab_size, vocab_size + 1000):
        ids = torch.tensor([[0, 1], [bad, 2]])
        _refused(lambda ids=ids: emb(ids), ValueError, f"token id {bad} is outside")
        _refused(lambda ids=ids: emb(ids), ValueError, f"[0, {vocab_size})")
    for validate in (True, False):  # validate=False skips the range check, not the dtype's
        emb.validate = validate
        _refused(lambda: emb(torch.tensor([1.7, 2.2])), TypeError, "integer tensor")
        _refused(lambda: emb(torch.zeros(3, dtype=torch.bool)), TypeError, "integer tensor")
        _refused(lambda: emb([1, 2, 3]), TypeError, "torch.Tensor")
    emb.validate = True
    ids = torch.tensor([[0, 5], [min(vocab_size - 1, 127), 90 % vocab_size]])
    for dtype in INTEGER_DTYPES:
        torch.testing.assert_close(emb(ids.to(dtype)), emb(ids))


def check_table(make: Make, vocab_size: int, dim: int) -> None:
    """`table()` is the forward of every id, in chunks or not, with a padding id or not,
    and `to_embedding()` a frozen `nn.Embedding` with the same outputs and padding id."""
    for emb in (make(), make(padding_idx=0)):
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
    for module in (emb, _perturbed(make(padding_idx=3))):  # a start at zero proves nothing
        out = module(torch.tensor([[3, 4], [5, 3]]))
        assert torch.all(out[0, 0] == 0) and torch.all(out[1, 1] == 0), "padding is not zero"
        torch.testing.assert_close(module.table()[3], torch.zeros(dim))
    assert out[0, 1].abs().sum() > 0, "a token that is not padding embeds to zero"
    if not any(p.requires_grad for p in emb.parameters()):
        return
    grads = []
    for ids in (torch.tensor([4, 3]), torch.tensor([4])):
        emb.zero_grad()
        emb(ids).sum().backward()
        grads.append([p.grad for p in emb.parameters() if p.requires_grad])
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


def check_parameter_counts(make: Make, vocab_size: int, dim: int, saved: dict) -> None:
    """`params_for` is the built module's trainable count (at the options a config saves);
    the parameter report counts parameters and the learned table's equivalent, and its
    stored bytes are those of the state's safetensors data; `check_options` accepts the
    options."""
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
    kind_class.check_options(dim, **saved)


def check_saving(make: Make, vocab_size: int, dim: int, saved: dict) -> None:
    """A state dict loads into a fresh module (of another seed, where the kind takes one:
    the state must carry what the seed draws), and `from_saved` rebuilds one it loads
    into, with the same outputs."""
    source = _perturbed(make())
    ids = torch.randint(0, vocab_size, (10,))
    seeded = "seed" in type(source).option_types()
    target = make(seed=12345) if seeded else make()
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(ids), source(ids))
    state = {"embedding." + k: v for k, v in source.state_dict().items()}
    loaded = type(source).from_saved(vocab_size, dim, state, "embedding.", **saved)
    loaded.load_state_dict(source.state_dict())
    torch.testing.assert_close(loaded(ids), source(ids))


def check_dtypes(make: Make, vocab_size: int, dim: int) -> None:
    """`.to(float64)` changes the computation's dtype, not its result."""
    emb = _perturbed(make(), 0.1)  # away from a start at zero
    ids = torch.randint(0, vocab_size, (3, 4))
    expected = emb(ids)
    out = emb.to(torch.float64)(ids)
    assert out.dtype == torch.float64, f"a float64 module gave {out.dtype}"
    _close_for_its_size(out.float(), expected, atol=1e-5)


def check_scale(make: Make, vocab_size: int, dim: int) -> None:
    """`scale_(c)` multiplies every output by c exactly, with no parameter added, or
    refuses in the contract's words and changes nothing (a kind that refuses cannot start
    at a pretrained table's row norms in `petra.hf`); a factor that is not positive and
    finite is refused."""
    emb = _perturbed(make(), 0.1)  # a trained-looking map, within float32's exact scaling
    before = emb.table().detach().clone()
    try:
        assert emb.scale_(0.37) is emb, "scale_ does not return the module"
    except ValueError as error:
        assert "cannot scale its outputs exactly" in str(error), str(error)
        torch.testing.assert_close(emb.table().detach(), before, rtol=0, atol=0)
    else:
        _close_for_its_size(emb.table().detach(), 0.37 * before, atol=1e-5)
        added = sum(p.numel() for p in emb.parameters()) - sum(
            p.numel() for p in make().parameters()
        )
        assert added == 0, f"scale_ added {added} parameters"
    for factor in (0.0, -1.0, float("nan"), float("inf")):
        _refused(lambda factor=factor: make().scale_(factor), ValueError, "positive finite")


def check_budget(
    kind_class: type[TokenEmbedding], vocab_size: int, dim: int, saved: dict, inputs: dict
) -> None:
    """A budget of the kind's size at `saved` options is met exactly by `size_for_budget`
    (the options but the knob kept), and the sizing, built with `inputs` (token bytes and
    other construction inputs), has that count (a kind with no `budget_knob`, or nothing
    to train at these options, passes)."""
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
    """Hold a kind (its class, or a registered name) to petra's embedding contract; return
    the names of the checks, all passed (a check with nothing to test, such as gradients
    for a kind with no trainable parameter, passes).

    Args:
        kind: a `TokenEmbedding` subclass, registered or not, or a registered kind's name.
        vocab_size: V, at least 6 (the checks read ids up to 5).
        dim: d.
        **options: what `build_embedding` would take, construction inputs included (their
            sizes must match `vocab_size`); a kind built from token bytes gets V distinct
            byte strings unless given a token source. `padding_idx` is replaced where a
            check needs its own (the table and padding checks).

    Raises:
        ContractError: naming every failed check and why (`failures` holds each exception).
        TypeError, ValueError: for what is not a kind, or a vocabulary below 6 ids.
    """
    kind_class = embedding_class(kind) if isinstance(kind, str) else kind
    if not (isinstance(kind_class, type) and issubclass(kind_class, TokenEmbedding)):
        raise TypeError(
            f"check_kind takes a TokenEmbedding subclass or a kind's name, got {kind!r}"
        )
    if vocab_size < SMALLEST_VOCABULARY:
        raise ValueError(f"check_kind needs at least {SMALLEST_VOCABULARY} ids, got {vocab_size}")
    extra = {}
    if kind_class.needs_tokenizer and not set(TOKEN_INPUTS) & set(options):
        extra["token_bytes"] = distinct_token_bytes(vocab_size)
    dropped = (*TOKEN_INPUTS, *kind_class.construction_inputs)
    saved = {k: v for k, v in options.items() if k not in dropped}  # as a config saves them
    inputs = {**{k: v for k, v in options.items() if k in dropped}, **extra}
    token_source = {k: v for k, v in inputs.items() if k in TOKEN_INPUTS}

    def make(**more) -> TokenEmbedding:
        return kind_class.build(vocab_size, dim, **{**options, **extra, **more})

    V, d = vocab_size, dim  # noqa: N806 - the contract's names
    checks = {
        "description": lambda: check_description(kind_class, V, d, token_source),
        "shapes": lambda: check_shapes(make, V, d),
        "ids": lambda: check_id_handling(make, V, d),
        "table": lambda: check_table(make, V, d),
        "padding": lambda: check_padding(make, V, d),
        "gradients": lambda: check_gradients(make, V, d),
        "counts": lambda: check_parameter_counts(make, V, d, saved),
        "saving": lambda: check_saving(make, V, d, saved),
        "dtypes": lambda: check_dtypes(make, V, d),
        "scale": lambda: check_scale(make, V, d),
        "budget": lambda: check_budget(kind_class, V, d, saved, inputs),
    }
    failures: dict[str, Exception] = {}
    # seeded here on the CPU alone, the caller's random state and grad mode left as they were
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.random.default_generator.manual_seed(0)
        for name, check in checks.items():
            try:
                check()
            except Exception as error:  # noqa: BLE001 - every failure is reported, by name
                failures[name] = error
    if failures:
        lines = [f"- {name}: {type(e).__name__}: {e}".rstrip() for name, e in failures.items()]
        raise ContractError(
            f"{kind_class.__name__} ({kind_class.kind!r}) fails {len(failures)} of "
            f"{len(checks)} checks of the embedding contract:\n" + "\n".join(lines),
            failures,
        ) from next(iter(failures.values()))
    return list(checks)
