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

`materialize(model)` turns the embedding back into a plain `nn.Embedding` (a tied head back
into a tied `Linear`), for export to vanilla `transformers` with identical outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import petra
from petra.embeddings import KINDS, FourierEmbedding, KroneckerEmbedding, build_embedding
from petra.embeddings.token_bytes import tokenizer_fingerprint
from petra.hf.swap import TableHead, hf_model, mark_swapped, set_tying, unwrap_embedding

SIDECAR = "petra.json"
WEIGHTS = "petra.safetensors"
FORMAT = 1
ST_MODULE = "petra.hf.sentence.PetraTransformer"
SIDECAR_KEYS = (
    "kind",
    "options",
    "padding_idx",
    "head",
    "scale",
    "class",
    "vocab_size",
    "dim",
    "head_bias",
    "dtype",
    "tokenizer_fingerprint",
    "sentence_transformers",
    "aliases",
)


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
    """Save a `transformers` or sentence-transformers model with a petra embedding into
    `directory` (with `tokenizer`, when given), for `from_pretrained`."""
    inner = hf_model(model)
    embedding, record = _petra_embedding(inner)
    directory = Path(directory)
    sentence = inner is not model
    if sentence:
        model.save(str(directory))
        _point_modules_at_petra(directory)
    else:  # the config files only (the weights are petra's): also for a model read from GGUF,
        # whose own save_pretrained refuses as a quantized model
        directory.mkdir(parents=True, exist_ok=True)
        inner.config.save_pretrained(directory)
        if getattr(inner, "generation_config", None) is not None:
            inner.generation_config.save_pretrained(directory)
    index = directory / "model.safetensors.index.json"
    for stale in (*directory.glob("model*.safetensors"), index):
        stale.unlink(missing_ok=True)  # transformers' weights: petra's go to WEIGHTS
    if hasattr(tokenizer, "save_pretrained"):  # a transformers tokenizer
        tokenizer.save_pretrained(directory)
    elif tokenizer is not None:  # a tokenizers.Tokenizer
        tokenizer.save(str(directory / "tokenizer.json"))
    tokenizer = tokenizer if tokenizer is not None else getattr(inner, "petra_tokenizer", None)
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
    return directory


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
    if not first["type"].endswith(".Transformer"):
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
    """Load a folder written by `save_pretrained`: a `transformers` model, or a
    sentence-transformers model if one was saved. `tokenizer`, when given, must be the one the
    model was saved with (its fingerprint is compared with the sidecar's)."""
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
    if tokenizer is None or saved is None:
        return
    if tokenizer_fingerprint(tokenizer) != saved:
        raise ValueError(
            f"this tokenizer is not the one the model in {directory} was saved with (tokenizer "
            f"fingerprint {tokenizer_fingerprint(tokenizer)[:12]}, saved {saved[:12]})"
        )


def load_model(directory: str | Path, tokenizer=None) -> nn.Module:
    """The `transformers` model of a folder written by `save_pretrained`, bit-identical
    (`tokenizer`, when given, is kept for `resize_token_embeddings`)."""
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
    kept = (
        "kind",
        "options",
        "padding_idx",
        "head",
        "scale",
        "fit_error",
        "class",
        "tokenizer_fingerprint",
    )
    record = {k: sidecar.get(k) for k in kept}
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
    if kind not in KINDS:
        raise ValueError(f"{SIDECAR} names an unknown embedding kind {kind!r}")
    if kind == "kronecker":
        return KroneckerEmbedding.from_state_dict(
            state, prefix=prefix, mode=options.get("mode", "sparse"), padding_idx=padding
        )
    if kind == "fourier":
        if options.get("id_order") == "frequency":
            options["id_rank"] = state[prefix + "id_rank"]
        return FourierEmbedding(vocab, dim, padding_idx=padding, **options)
    return build_embedding(kind, vocab, dim, padding_idx=padding, **options)


def materialize(model):
    """Replace the petra embedding by a plain trainable `nn.Embedding` of its current table
    (and a tied `TableHead` by a tied `Linear`), in place: identical outputs, and a model that
    vanilla `transformers` saves and loads with no missing key. Returns the model."""
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
    return model
