"""The embedding kinds by name: each a `TokenEmbedding` class that describes itself (the
contract in `petra.embeddings.base`). The order is the kinds' order everywhere (`petra
params` rows, `kinds()`): petra's own (`KINDS`), then those registered.

A kind of your own is one file: its class, decorated with `register`. Importing that file
makes the kind known by its name to everything that takes one (`build_embedding`, budgets,
model settings, `petra compare`, `petra params`, saved models); on the command line, `petra
--import MODULE` imports it. To have it in every process without an import, name it in an
installed package's entry points, group `petra.embeddings`, the kind's name =
"module:Class" (`examples/own_kind.py` is such a file).
"""

from __future__ import annotations

import re
import warnings
from importlib.metadata import entry_points

from petra.embeddings.base import TokenEmbedding
from petra.embeddings.dhe import DeepHashEmbedding
from petra.embeddings.fourier import FourierEmbedding
from petra.embeddings.hashed import HashEmbedding
from petra.embeddings.kronecker import KroneckerEmbedding
from petra.embeddings.learned import LearnedEmbedding
from petra.embeddings.ngram import NgramHashEmbedding
from petra.embeddings.qr import QREmbedding
from petra.embeddings.quantized import QuantizedEmbedding
from petra.embeddings.residual import ResidualEmbedding
from petra.embeddings.tensor_train import TensorTrainEmbedding
from petra.embeddings.trimmed import TrimmedEmbedding

REGISTRY: dict[str, type[TokenEmbedding]] = {
    cls.kind: cls
    for cls in (
        LearnedEmbedding,
        FourierEmbedding,
        KroneckerEmbedding,
        QREmbedding,
        HashEmbedding,
        DeepHashEmbedding,
        TensorTrainEmbedding,
        NgramHashEmbedding,
        QuantizedEmbedding,
        TrimmedEmbedding,
        ResidualEmbedding,
    )
}
KINDS = tuple(REGISTRY)  # petra's own kinds
ENTRY_POINT_GROUP = "petra.embeddings"
# what every kind states on its class (the rest has defaults in `TokenEmbedding`)
_STATED = ("budget_knob", "report_layouts")
_IMPLEMENTED = ("_embed", "params_for", "budget_layouts")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_entry_points_read = False


def register(cls: type[TokenEmbedding]) -> type[TokenEmbedding]:
    """Make `cls` the kind named `cls.kind`; returns `cls`, so it decorates the class.

    Registering the same class again does nothing, and a class of the same module and name
    (its module reloaded, a notebook cell run again) takes the place of the one before.

    Raises:
        TypeError: if `cls` is not a `TokenEmbedding` subclass, or does not state what every
            kind states (`budget_knob` and `report_layouts`, tuples) and implement what every
            kind implements (`_embed`, `params_for`, `budget_layouts`).
        ValueError: if its `kind`, set on the class itself, is not a name (letters, digits
            and `-_.`, as `--kinds a,b` and a run folder can hold it), or another class
            already has it.
    """
    if not (isinstance(cls, type) and issubclass(cls, TokenEmbedding)):
        raise TypeError(f"register takes a TokenEmbedding subclass, got {cls!r}")
    kind = cls.__dict__.get("kind")
    if not (isinstance(kind, str) and _NAME.fullmatch(kind)):
        raise ValueError(
            f"{cls.__qualname__} needs a kind: a class attribute naming it in letters, digits "
            f"and -_. (such as kind = 'random-code'); got {kind!r}"
        )
    missing = [name for name in _STATED if not isinstance(getattr(cls, name, None), tuple)]
    missing += [name for name in _IMPLEMENTED if _defined_by(cls, name) is TokenEmbedding]
    if missing:
        raise TypeError(
            f"{cls.__qualname__} does not state {', '.join(missing)}: every kind does (see "
            "petra.embeddings.base)"
        )
    taken = REGISTRY.get(kind)
    if taken is not None and _where(taken) != _where(cls):
        raise ValueError(
            f"the kind {kind!r} is taken by {_where(taken)}; give {_where(cls)} another name"
        )
    REGISTRY[kind] = cls
    return cls


def _defined_by(cls: type, name: str) -> type:
    """The class of `cls`'s method resolution order whose own body defines `name`."""
    return next(owner for owner in cls.__mro__ if name in owner.__dict__)


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def kinds() -> tuple[str, ...]:
    """Every kind's name: petra's own, then the registered ones (the installed packages'
    entry points read)."""
    _read_entry_points()
    return tuple(REGISTRY)


def embedding_class(kind: str) -> type[TokenEmbedding]:
    """The class of the embedding kind named `kind`."""
    if isinstance(kind, str) and kind not in REGISTRY:
        _read_entry_points()
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {tuple(REGISTRY)}")
    return REGISTRY[kind]


def _read_entry_points() -> None:
    """Register, once a process (at the first `kinds()`, or the first name not known), the
    kinds installed packages name in the entry-point group `petra.embeddings`; one that does
    not load, or whose name is not its class's kind, is left out with a warning."""
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
            if getattr(cls, "kind", None) != entry.name:
                raise ValueError(f"it names the kind {getattr(cls, 'kind', None)!r}")
            register(cls)
        except Exception as error:  # a broken package must not stop petra's own kinds
            warnings.warn(
                f"the embedding kind {entry.name!r} ({entry.value}, entry point of "
                f"{ENTRY_POINT_GROUP}) is left out: {error}",
                stacklevel=1,
            )
