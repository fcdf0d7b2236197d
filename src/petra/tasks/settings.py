"""A run's settings changed by typed changes, and the `--set section.key=value` strings of
the command line read into them.

A run's settings are the `model`, `train` and `data` sections of a preset, changed by typed
changes `(key, value)`: `("train.lr", 0.001)`, `("model.embedding", "kronecker")` (a kind,
the preset's options for it reset) or `("model.embedding", {"kind": "kronecker", "rank":
4})`, `("model.embedding.rank", 4)` (one option of the kind). `apply_changes` checks each
value against the type of the field it sets (an embedding option against the type its final
kind declares, whatever the order the changes come in). `petra compare` and `petra reproduce`
build their arms this way; strings exist only at the command line.

`parse_overrides` reads command-line strings into typed changes: a value takes the type of
the field it sets, read from the field's annotation: `true`/`false` (any case) for booleans,
numbers for numbers, `none`/`null` for an optional field, a comma-separated list (or a JSON
list) for list fields, a JSON object for an embedding with its options. Anything that does
not convert is refused with the key, the value and the type expected, before any data is
read. `format_change` writes a typed change back in that language (for records and names).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import typing
from collections.abc import Callable

from petra.checks import describe, fits, is_union
from petra.embeddings import embedding_class, embedding_options
from petra.models import ModelConfig
from petra.models.config import DEFAULT_EMBEDDING
from petra.training import TrainConfig

SECTIONS = ("model", "train", "data")
SET_BY_TASK = ("model", "vocab_size", "num_labels", "tokenizer_fingerprint")
_NONE = ("none", "null")


def parse_value(key: str, text: str, hint):
    """`text` as a value of type `hint`; `ValueError` naming `key` if it does not convert."""
    try:
        return _convert(text, hint)
    except (ValueError, TypeError):
        raise ValueError(f"--set {key}={text}: expected {describe(hint)}") from None


def _convert(text: str, hint):
    text = text.strip()
    if is_union(hint):
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


def setting_key(item: str) -> str:
    """The key of a command-line `--set` item: `train.lr` of `train.lr=0.001`."""
    return item.partition("=")[0]


def embedding_option(key: str) -> str | None:
    """The option a setting `model.embedding.<option>` sets (None for any other key; a
    `--set` item `key=value` is read by its key)."""
    key = setting_key(key)
    option = key.removeprefix("model.embedding.")
    return option if option != key and option != "kind" else None


# -- typed changes -----------------------------------------------------------------------------
Change = tuple[str, object]  # ("train.lr", 0.001), ("model.embedding", "kronecker"), ...


def text(value) -> str:
    """A value as one types it after `--set key=` (`true`, `none`, `0.0003`, `1,2`, a JSON
    object): `parse_value` reads it back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def format_change(key: str, value) -> str:
    """A typed change in the `--set` language: `train.lr=0.0003`."""
    return f"{key}={text(value)}"


def change_keys(key: str, value) -> list[str]:
    """The settings a typed change sets, spelled one way: `model.embedding` for the kind
    (however given: `model.embedding` = "qr", `model.embedding.kind` = "qr", or an object
    {"kind": "qr", ...}, whose options count as `model.embedding.<option>`), else its key."""
    if key == "model.embedding.kind":
        return ["model.embedding"]
    if key == "model.embedding" and isinstance(value, dict):
        return [key, *(f"{key}.{name}" for name in value if name != "kind")]
    return [key]


def item_keys(item: str) -> list[str]:
    """The settings a command-line `--set` item sets (`change_keys` of what it reads as; an
    embedding object that is not JSON counts as the kind alone, and is refused by name when
    the settings are applied)."""
    key, _, value = item.partition("=")
    if key == "model.embedding" and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    return change_keys(key, value)


def embedding_changes(options: dict) -> list[Change]:
    """Typed changes setting the embedding's `options` one by one (a budget's sizing):
    `[("model.embedding.rows", 256)]` for {"rows": 256}."""
    return [(f"model.embedding.{name}", value) for name, value in options.items()]


Point = tuple[Change, ...]  # one value of each axis of a grid


def grid_points(axes: dict[str, list]) -> list[Point]:
    """Every combination of one value per axis (`{"train.lr": [0.001, 0.0003]}`), each as
    the changes it makes; [()] without axes."""
    return [tuple(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def point_names(point) -> list[str]:
    """Each change of a grid point as it names a run folder: `lr=0.001` for ("train.lr",
    0.001), by the last part of its key, a '/' of the value as '_'."""
    return [f"{key.rsplit('.', 1)[-1]}={text(value).replace('/', '_')}" for key, value in point]


def check_value(key: str, value, hint):
    """A typed `value` of `key`, checked against `hint` (an integer given for a float field
    becomes a float, as the command line reads it); `ValueError` naming the key if it is not
    of that type."""
    if not fits(value, hint):
        raise ValueError(f"{key}={value!r}: expected {describe(hint)}")
    types_ = typing.get_args(hint) if is_union(hint) else (hint,)
    if type(value) is int and int not in types_ and float in types_:
        return float(value)
    return value


_LABEL = {True: "--set ", False: ""}  # what starts a refusal of command-line text, typed value


def _check_kind(key: str, kind, label: str) -> str:
    try:
        embedding_class(kind)
    except ValueError as error:
        raise ValueError(f"{label}{key}={kind}: {error}") from None
    return kind


def _apply(spec: dict, changes, data_class, from_text: bool) -> tuple[dict, list[Change]]:
    """A copy of `spec` with each (key, value) of `changes` applied in order, and the changes
    with typed values: a value is command-line text read as its field's type (`from_text`),
    or a typed value checked against it. An embedding option is typed by the kind the
    changes end with."""
    convert, label = (parse_value if from_text else check_value), _LABEL[from_text]
    spec = copy.deepcopy(spec)
    typed: list[list] = []  # [key, value] of each change, its value typed in place
    pending: list[tuple[str, str, object, Callable]] = []  # embedding options, typed last
    for key, value in changes:
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ValueError(f"{label}{key}: unknown section {section!r}; choose one of {SECTIONS}")
        if section == "model" and (name == "embedding" or name.startswith("embedding.")):
            option = name.removeprefix("embedding").removeprefix(".")
            if not option:  # a new kind: the preset's options go, the given ones stay
                kind, given = _embedding(key, value, from_text)
                spec["model"]["embedding"] = {"kind": kind}
                holder = {"kind": kind}
                typed.append([key, holder if given else kind])
                pending += [
                    (name_, f"{key}.{name_}", item, functools.partial(holder.__setitem__, name_))
                    for name_, item in given.items()
                ]
            elif option == "kind":
                embedding = spec["model"].setdefault("embedding", dict(DEFAULT_EMBEDDING))
                kind = value.strip() if isinstance(value, str) else value
                embedding["kind"] = _check_kind(key, kind, label)
                typed.append([key, embedding["kind"]])
            else:
                typed.append([key, value])
                pending.append((option, key, value, functools.partial(typed[-1].__setitem__, 1)))
            continue
        valid = section_types(section, data_class)
        if name not in valid:
            raise ValueError(
                f"{label}{key}: unknown key {name!r} for section {section!r}; "
                f"choose one of {sorted(valid)}"
            )
        spec[section][name] = convert(key, value, valid[name])
        typed.append([key, spec[section][name]])
    embedding = spec["model"].setdefault("embedding", dict(DEFAULT_EMBEDDING))
    valid = embedding_options(embedding["kind"])
    for option, key, value, record in pending:
        if option not in valid:
            raise ValueError(
                f"{label}{key}: the {embedding['kind']} embedding has no option {option!r}; "
                f"its options are {sorted(valid)}"
            )
        embedding[option] = convert(key, value, valid[option])
        record(embedding[option])  # the typed value, in its change
    return spec, [(key, value) for key, value in typed]


def _embedding(key: str, value, from_text: bool) -> tuple[str, dict]:
    """`model.embedding=<kind>`, or an object {"kind": ..., **options} (a dict, or its JSON
    text): the kind, and the options (typed with the kind's, once it is final; from a
    JSON text, each as its own text)."""
    label = _LABEL[from_text]
    if isinstance(value, str) and not (from_text and value.lstrip().startswith("{")):
        return _check_kind(key, value.strip(), label), {}
    if isinstance(value, str):
        value = parse_value(key, value, dict)
    if not isinstance(value, dict):
        raise ValueError(f"{key}={value!r}: expected a kind or an object")
    if "kind" not in value:
        raise ValueError(f'{label}{key}={text(value)}: an embedding object needs a "kind"')
    options = {
        name: json.dumps(item) if from_text and not isinstance(item, str) else item
        for name, item in value.items()
        if name != "kind"
    }
    return _check_kind(key, value["kind"], label), options


def apply_changes(spec: dict, changes, data_class) -> dict:
    """A copy of `spec` (sections model, train, data) with each typed change (key, value)
    applied in order (`train.lr`, 0.001; `model.embedding`, "kronecker" or {"kind": ...,
    **options}; `model.embedding.rank`, 4), each value checked against the type of the field
    it sets; `data_class` is the task's data dataclass."""
    return _apply(spec, changes, data_class, from_text=False)[0]


def parse_overrides(spec: dict, items, data_class) -> list[Change]:
    """Command-line `--set section.key=value` items (or (key, text) pairs) as typed changes
    of `spec`: each value read as the type of the field it sets, an embedding option as the
    type the final kind declares; refused, with the item and the type expected, if it does
    not convert."""
    return _apply(spec, _pairs(items), data_class, from_text=True)[1]


def split_item(item: str, flag: str = "--set", form: str = "section.key=value") -> tuple[str, str]:
    """A command-line `KEY=VALUE` item as (key, value text); `ValueError` saying the form
    `flag` takes when it has no `=` or no key."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} takes {form}, got {item!r}")
    return key.strip(), value


def _pairs(items) -> list[tuple[str, str]]:
    """Command-line settings as (key, text): a `key=value` string, or a (key, text) pair
    already split (a `--grid` axis's key and one of its values)."""
    pairs = []
    for item in items:
        if isinstance(item, tuple):
            pairs.append(item)
            continue
        pairs.append(split_item(item))
    return pairs
