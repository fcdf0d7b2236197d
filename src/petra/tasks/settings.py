"""Typed `--set section.key=value` overrides.

A value typed on the command line takes the type of the field it sets, read from the field's
annotation: `true`/`false` (any case) for booleans, numbers for numbers, `none`/`null` for an
optional field, a comma-separated list (or a JSON list) for list fields. Anything that does
not convert is refused with the key, the value and the type expected, before any data is read.

`model.embedding=<kind>` chooses the embedding kind (the preset's options for it reset), and
`model.embedding.<option>=<value>` sets one option of it, typed by the kind's constructor;
options given on the command line are checked against the final kind, whatever the order
they were given in.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing

from petra.embeddings import KINDS, embedding_options
from petra.models import ModelConfig
from petra.training import TrainConfig

SECTIONS = ("model", "train", "data")
SET_BY_TASK = ("model", "vocab_size", "num_labels", "tokenizer_fingerprint")
_NONE = ("none", "null")


def describe(hint) -> str:
    """A type annotation in words, for error messages."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if _is_union(hint):
        return " or ".join(describe(a) for a in args) + " or none"
    if typing.get_origin(hint) is list:
        return f"a comma-separated list of {describe(args[0]).removeprefix('a ')}s"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a JSON object",
    }.get(hint, str(hint))


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def parse_value(key: str, text: str, hint):
    """`text` as a value of type `hint`; `ValueError` naming `key` if it does not convert."""
    try:
        return _convert(text, hint)
    except (ValueError, TypeError):
        raise ValueError(f"--set {key}={text}: expected {describe(hint)}") from None


def _convert(text: str, hint):
    text = text.strip()
    if _is_union(hint):
        if type(None) in typing.get_args(hint) and text.lower() in _NONE:
            return None
        for option in (a for a in typing.get_args(hint) if a is not type(None)):
            try:
                return _convert(text, option)
            except (ValueError, TypeError):
                continue
        raise ValueError(text)
    if hint is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    if hint is str:
        return text
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if text.startswith("["):
            values = json.loads(text)
            if not isinstance(values, list):
                raise ValueError(text)
            return [_convert(str(v), item) for v in values]
        return [_convert(part, item) for part in text.split(",") if part.strip()]
    if hint is dict:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(text)
        return value
    raise TypeError(f"no conversion to {hint}")


def field_types(cls) -> dict[str, object]:
    """Annotation of every field of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def section_types(section: str, data_class) -> dict[str, object]:
    """The settable keys of a section and their types."""
    if section == "model":
        hints = field_types(ModelConfig)
        return {k: v for k, v in hints.items() if k not in SET_BY_TASK}
    return field_types(TrainConfig if section == "train" else data_class)


def embedding_option(item: str) -> str | None:
    """The option an override `model.embedding.<option>=...` sets (None for any other)."""
    key = item.partition("=")[0]
    option = key.removeprefix("model.embedding.")
    return option if option != key and option != "kind" else None


def _check_kind(key: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"--set {key}={kind}: unknown embedding kind; choose one of {KINDS}")
    return kind


def _embedding(key: str, text: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """`model.embedding=<kind>` or `model.embedding={"kind": ..., **options}`: the kind, and
    the options as (key, text) to be typed like any `model.embedding.<option>=<text>`."""
    if not text.lstrip().startswith("{"):
        return _check_kind(key, text.strip()), {}
    value = parse_value(key, text, dict)
    if "kind" not in value:
        raise ValueError(f'--set {key}={text}: an embedding object needs a "kind"')
    options = {
        name: (f"{key}.{name}", item if isinstance(item, str) else json.dumps(item))
        for name, item in value.items()
        if name != "kind"
    }
    return _check_kind(key, value["kind"]), options


def apply_overrides(spec: dict, overrides: list[str], data_class) -> dict:
    """A copy of `spec` (sections model, train, data) with each `section.key=value` applied,
    typed by the field it sets; `data_class` is the task's data dataclass."""
    spec = copy.deepcopy(spec)
    options: dict[str, tuple[str, str]] = {}  # embedding options, typed once the kind is known
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes section.key=value, got {item!r}")
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ValueError(f"--set {key}: unknown section {section!r}; choose one of {SECTIONS}")
        if section == "model" and (name == "embedding" or name.startswith("embedding.")):
            option = name.removeprefix("embedding").removeprefix(".")
            if not option:  # a new kind: the preset's options go, the command line's stay
                kind, given = _embedding(key, text)
                spec["model"]["embedding"] = {"kind": kind}
                options |= given
            elif option == "kind":
                embedding = spec["model"].setdefault("embedding", {"kind": "learned"})
                embedding["kind"] = _check_kind(key, text.strip())
            else:
                options[option] = (key, text)
            continue
        valid = section_types(section, data_class)
        if name not in valid:
            raise ValueError(
                f"--set {key}: unknown key {name!r} for section {section!r}; "
                f"choose one of {sorted(valid)}"
            )
        spec[section][name] = parse_value(key, text, valid[name])
    embedding = spec["model"].setdefault("embedding", {"kind": "learned"})
    valid = embedding_options(embedding["kind"])
    for option, (key, text) in options.items():
        if option not in valid:
            raise ValueError(
                f"--set {key}: the {embedding['kind']} embedding has no option {option!r}; "
                f"its options are {sorted(valid)}"
            )
        embedding[option] = parse_value(key, text, valid[option])
    return spec
