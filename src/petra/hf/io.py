"""Save, load and export `transformers` models that carry a petra embedding.

A saved folder is what `model.save_pretrained` writes (config, generation config; a
sentence-transformers model's modules) with the weights as `petra.safetensors`, every tensor
of `state_dict()` (the Kronecker byte table included), and the sidecar `petra.json`: the
embedding's kind, options, padding id and head, the tokenizer fingerprint, the model class and
dtype. `from_pretrained(folder)` builds the model from its config, installs the embedding and
head the sidecar names and loads the state strictly: the round trip is bit-identical.

Plain `transformers` loading of such a folder fails loudly (there is no `model.safetensors`
for it to read, so it cannot quietly start a random table), and so does plain
sentence-transformers loading (its first module is petra's `PetraTransformer`, which it
imports only with `trust_remote_code=True`; with it, the model loads through petra).

A save is written into a staging folder first and moved into place only when every file is
written, so a save that fails (a full disk, a refused tokenizer) leaves an earlier save in the
folder whole; a model may be saved back into the folder it was loaded from. Unlike
`petra.atomic.atomic_folder`, which replaces a folder whole, the save is merged into an
existing folder: a user's folder keeps the files the save does not write (a README, a
model card). A tokenizer given
to the save must be the one the embedding was built with (its fingerprint is compared).

`materialize(model)` turns the embedding back into a plain `nn.Embedding` (a tied head back
into a tied `Linear`), for export to vanilla `transformers` or sentence-transformers with
identical outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import petra
from petra.atomic import sync_tree
from petra.embeddings import embedding_class
from petra.embeddings.token_bytes import other_fingerprint, token_bytes, tokenizer_fingerprint
from petra.hf.swap import (
    RECORD_KEYS,
    TableHead,
    check_tokenizer_fits,
    hf_model,
    mark_swapped,
    set_tying,
    unwrap_embedding,
)

SIDECAR = "petra.json"
WEIGHTS = "petra.safetensors"
FORMAT = 1
ST_MODULE = "petra.hf.sentence.PetraTransformer"
STAGING = "petra-saving-"  # in the name of a save's (hidden) staging folder
SIDECAR_KEYS = (  # what a sidecar must hold (fit_error: not in those of an earlier petra)
    *(key for key in RECORD_KEYS if key != "fit_error"),
    "vocab_size", "dim", "head_bias", "dtype", "sentence_transformers", "aliases",
)  # fmt: skip


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("petra.hf needs transformers: pip install 'petra[hf]'") from None
    return transformers


def _petra_embedding(inner: nn.Module):
    embedding = unwrap_embedding(inner.get_input_embeddings())
    record = getattr(inner, "petra_swap", None)
    if record is None or not hasattr(embedding, "param_report"):
        raise ValueError(
            "this model carries no petra embedding (use its own save_pretrained, or "
            "petra.hf.replace_embeddings first)"
        )
    return embedding, record


def save_pretrained(model, directory: str | Path, tokenizer=None) -> Path:
    """Save a `transformers` or sentence-transformers model with a petra embedding, for
    `from_pretrained`. Written aside and moved into place: a failure leaves the folder as it
    was; files of the folder that the save does not write stay. The folder's layout is set
    out in `petra.hf.io`.

    Args:
        model: a model swapped by `replace_embeddings` (or loaded by `from_pretrained`).
        directory: the folder to write (created if needed).
        tokenizer: saved beside the model; it must be the one the embedding was built with.

    Returns:
        The folder.

    Raises:
        ValueError: if the model carries no petra embedding, or the tokenizer is not the
            one its embedding was built with.
    """
    inner = hf_model(model)
    _petra_embedding(inner)  # refused before any folder is made
    directory = Path(directory)
    staging = _staging_folder(directory)
    try:
        _write_folder(model, staging, tokenizer)
        sync_tree(staging)  # on disk before the renames, as `atomic_folder` does
        _move_into_place(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _write_folder(model, folder: Path, tokenizer) -> None:
    """Write the folder of `save_pretrained` into `folder` (new and empty), after checking
    the tokenizer saved with it."""
    inner = hf_model(model)
    embedding, record = _petra_embedding(inner)
    sentence = inner is not model
    # a sentence model's folder gets its own tokenizer when none is given: check that one too
    written = (
        tokenizer if tokenizer is not None or not sentence else getattr(model, "tokenizer", None)
    )
    _check_tokenizer_at_save(record, written, embedding)
    _write_model(model, inner, embedding, record, folder, tokenizer)


class HFModelFiles:
    """How `petra.training.Trainer` saves, reads back and counts a transformers or
    sentence-transformers model with a petra embedding (its `ModelFiles`): the folder
    `save_pretrained` writes, read back whole by `from_pretrained` (a sentence-transformers
    model's every module, a Dense layer's included), and the swap's report as its counts.

    Args:
        report: what `results.json` records as the model's parameters (the swap's
            `SwapReport.as_dict()`).
    """

    def __init__(self, report: dict):
        self._report = dict(report)

    def write(self, model, folder: Path, tokenizer=None) -> None:
        _write_folder(model, Path(folder), tokenizer)

    def read(self, folder: Path) -> dict:
        with torch.random.fork_rng(devices=[]):  # building the model draws initial weights
            return from_pretrained(folder).state_dict()

    def report(self, model) -> dict:
        return dict(self._report)


def _check_tokenizer_at_save(record: dict, tokenizer, embedding) -> None:
    """Refuse to save beside the model a tokenizer other than the one its embedding was built
    with: the folder would then accept that tokenizer on load and refuse the model's own. A
    swap made without a tokenizer recorded none: the one given must then fit the table."""
    built_with = record.get("tokenizer_fingerprint")
    if tokenizer is not None and built_with is None:  # a swap made without a tokenizer
        check_tokenizer_fits(len(token_bytes(tokenizer)), embedding.num_embeddings)
    given = other_fingerprint(tokenizer, built_with)
    if given is not None:
        raise ValueError(
            f"this tokenizer is not the one the model's embedding was built with (tokenizer "
            f"fingerprint {given[:12]}, the model's {built_with[:12]}): save with the model's "
            "tokenizer, or without one"
        )


def _write_model(model, inner, embedding, record: dict, directory: Path, tokenizer) -> None:
    sentence = inner is not model
    if sentence:
        model.save(str(directory))
        _point_modules_at_petra(directory)
    else:  # the config files only (the weights are petra's): also for a model read from GGUF,
        # whose own save_pretrained refuses as a quantized model
        inner.config.save_pretrained(directory)
        if getattr(inner, "generation_config", None) is not None:
            inner.generation_config.save_pretrained(directory)
    _remove_transformers_weights(directory)  # petra's go to WEIGHTS
    if hasattr(tokenizer, "save_pretrained"):  # a transformers tokenizer
        tokenizer.save_pretrained(directory)
    elif tokenizer is not None:  # a tokenizers.Tokenizer
        tokenizer.save(str(directory / "tokenizer.json"))
    fingerprint = record.get("tokenizer_fingerprint")
    state, aliases = _distinct_tensors(inner.state_dict())
    save_file(state, directory / WEIGHTS, metadata={"format": "pt"})
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    sidecar = {
        "format": FORMAT,
        "petra_version": petra.__version__,
        **record,
        "vocab_size": embedding.num_embeddings,
        "dim": embedding.embedding_dim,
        "head_bias": isinstance(head, TableHead) and head.bias is not None,
        "dtype": str(next(inner.parameters()).dtype).removeprefix("torch."),
        "tokenizer_fingerprint": (
            fingerprint if tokenizer is None else tokenizer_fingerprint(tokenizer)
        ),
        "sentence_transformers": sentence,
        "aliases": aliases,
    }
    (directory / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")


def _remove_transformers_weights(directory: Path) -> None:
    index = directory / "model.safetensors.index.json"
    for stale in (*directory.glob("model*.safetensors"), index):
        stale.unlink(missing_ok=True)


def _staging_folder(directory: Path) -> Path:
    """A new empty folder on the same file system as `directory` (inside it when it exists,
    beside it when not), after removing what an interrupted save into it left there."""
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file: save_pretrained saves into a folder")
    home, prefix = (
        (directory, "." + STAGING) if directory.is_dir()
        else (directory.parent, f".{directory.name}.{STAGING}")
    )  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    for leftover in home.glob(prefix + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = home / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def _move_into_place(staging: Path, directory: Path) -> None:
    """Put a finished save where it belongs: the whole folder in one rename when `directory`
    does not exist yet; else file by file over the earlier save, the old sidecar removed first
    and the new one put last, so that no moment shows a sidecar over weights it did not write
    (the folder is refused as unsaved until the last rename)."""
    if not directory.exists():
        staging.rename(directory)
        return
    (directory / SIDECAR).unlink(missing_ok=True)
    _remove_transformers_weights(directory)
    _merge_folder(staging, directory, last=SIDECAR)


def _merge_folder(source: Path, target: Path, last: str | None = None) -> None:
    """Move every entry of `source` into `target`, replacing what has its name (folders are
    merged), the entry named `last` after all others."""
    entries = sorted(source.iterdir(), key=lambda entry: entry.name == last)
    for entry in entries:
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _merge_folder(entry, destination)
            continue
        if destination.is_dir():
            shutil.rmtree(destination)
        elif entry.is_dir() and destination.exists():
            destination.unlink()
        os.replace(entry, destination)


def _distinct_tensors(state: dict) -> tuple[dict, dict]:
    """The state with each shared tensor once (safetensors refuses two names for one
    storage, as a tied head's bias held by two modules has), and {dropped name: kept name}."""
    kept, aliases, owners = {}, {}, {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in owners:
            aliases[name] = owners[key]
        else:
            owners[key] = name
            kept[name] = tensor.detach().contiguous()
    return kept, aliases


def _point_modules_at_petra(directory: Path) -> None:
    """Name petra's Transformer module in a sentence-transformers folder's `modules.json`."""
    path = directory / "modules.json"
    modules = json.loads(path.read_text())
    first = min(modules, key=lambda m: m["idx"])
    if first["type"] != ST_MODULE and not first["type"].endswith(".Transformer"):
        raise ValueError(f"expected the first module to be a Transformer, got {first['type']}")
    first["type"] = ST_MODULE
    path.write_text(json.dumps(modules, indent=2) + "\n")


def read_sidecar(directory: str | Path) -> dict:
    """The sidecar of a folder written by `save_pretrained`, checked."""
    path = Path(directory) / SIDECAR
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a folder saved by petra.hf.save_pretrained"
        )
    try:
        sidecar = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): the folder is damaged") from None
    if sidecar.get("format") != FORMAT:
        raise ValueError(f"{path} has format {sidecar.get('format')}, this petra reads {FORMAT}")
    missing = sorted(set(SIDECAR_KEYS) - set(sidecar))
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: the folder is damaged")
    return sidecar


def from_pretrained(directory: str | Path, tokenizer=None):
    """Load a folder written by `save_pretrained`, bit-identical.

    Args:
        directory: the folder.
        tokenizer: if given, it must be the one the model was saved with (its fingerprint is
            compared with the sidecar's).

    Returns:
        A `transformers` model, or a sentence-transformers model if one was saved.

    Raises:
        FileNotFoundError: if the folder has no `petra.json` sidecar.
        ValueError: if the sidecar is damaged or the tokenizer is not the model's.
    """
    sidecar = read_sidecar(directory)
    _check_tokenizer(sidecar, tokenizer, directory)
    if sidecar["sentence_transformers"]:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(directory), trust_remote_code=True, device="cpu")
        hf_model(model).petra_tokenizer = tokenizer
        return model
    return load_model(directory, tokenizer)


def _check_tokenizer(sidecar: dict, tokenizer, directory) -> None:
    saved = sidecar.get("tokenizer_fingerprint")
    given = other_fingerprint(tokenizer, saved)
    if given is not None:
        raise ValueError(
            f"this tokenizer is not the one the model in {directory} was saved with (tokenizer "
            f"fingerprint {given[:12]}, saved {saved[:12]})"
        )


def load_model(directory: str | Path, tokenizer=None) -> nn.Module:
    """The `transformers` model of a folder written by `save_pretrained`, bit-identical.

    Args:
        directory: the folder.
        tokenizer: kept on the model for `resize_token_embeddings`.

    Returns:
        The model, in evaluation mode.

    Raises:
        FileNotFoundError: if the folder has no `petra.json` sidecar.
        ValueError: if the sidecar is damaged or names a class `transformers` lacks.
    """
    transformers = _transformers()
    sidecar = read_sidecar(directory)
    config = transformers.AutoConfig.from_pretrained(str(directory))
    model_class = getattr(transformers, sidecar["class"], None)
    if model_class is None:
        raise ValueError(f"transformers has no model class {sidecar['class']!r}")
    state = load_file(Path(directory) / WEIGHTS)
    state.update({alias: state[name] for alias, name in sidecar["aliases"].items()})
    dtype = getattr(torch, sidecar["dtype"])
    model = model_class._from_config(config, dtype=dtype)
    prefix = _module_name(model, model.get_input_embeddings()) + "."
    embedding = _rebuild_embedding(sidecar, state, prefix).to(dtype)
    model.set_input_embeddings(embedding)
    if sidecar["head"] == "tied":
        bias = torch.zeros(sidecar["vocab_size"], dtype=dtype) if sidecar["head_bias"] else None
        model.set_output_embeddings(TableHead(model, bias))
    set_tying(model, False)
    model.load_state_dict(state, strict=True)
    record = {key: sidecar.get(key) for key in RECORD_KEYS}
    mark_swapped(model, record, tokenizer)
    return model.eval()


def _module_name(model: nn.Module, module: nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError("the model's input embedding is not one of its modules")


def _rebuild_embedding(sidecar: dict, state: dict, prefix: str):
    kind, options = sidecar["kind"], dict(sidecar["options"])
    vocab, dim, padding = sidecar["vocab_size"], sidecar["dim"], sidecar["padding_idx"]
    try:
        kind_class = embedding_class(kind)
    except ValueError as error:
        raise ValueError(f"{SIDECAR}: {error}") from None
    return kind_class.from_saved(vocab, dim, state, prefix, padding_idx=padding, **options)


def materialize(model):
    """Replace the petra embedding by a plain trainable `nn.Embedding` of its current table
    (and a tied `TableHead` by a tied `Linear`), in place: identical outputs, and a model that
    vanilla `transformers` (or sentence-transformers, without remote code) saves and loads
    with no missing key.

    Args:
        model: a model with a petra embedding.

    Returns:
        The same model, changed in place.

    Raises:
        ValueError: if the model carries no petra embedding.
    """
    inner = hf_model(model)
    embedding, record = _petra_embedding(inner)
    table = embedding.to_embedding()
    table.weight.requires_grad_(True)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    inner.set_input_embeddings(table)
    if isinstance(head, TableHead):
        vocab, dim = embedding.num_embeddings, embedding.embedding_dim
        linear = nn.Linear(dim, vocab, bias=head.bias is not None)
        linear.weight = table.weight  # tied again, as the model was before the swap
        if head.bias is not None:
            linear.bias = head.bias
        inner.set_output_embeddings(linear)
        set_tying(inner, True)
    for attribute in ("petra_swap", "petra_tokenizer", "resize_token_embeddings"):
        inner.__dict__.pop(attribute, None)
    if inner is not model:  # a loaded sentence model's first module is petra's: no longer needed
        from petra.hf.sentence import as_plain_transformer

        as_plain_transformer(model[0])
    return model
