"""Checks of plain values against annotated types: one definition for the command line and
typed settings (`petra.tasks.settings`), and of the fields of a JSON file (`field_problem`)
for the reproduction's results JSON, the provenance record and `petra compress`. It imports
nothing of petra, so that every layer may use it.
"""

from __future__ import annotations

import math
import types
import typing


def describe(hint) -> str:
    """A type annotation in words, for error messages."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if is_union(hint):
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


def key_values(values: dict, empty: str = "", floats: str = "") -> str:
    """`rank=8, mode=sparse`: settings or measures in words, for messages and tables, each
    float by the format spec `floats` (as `str` writes it by default); `empty` for none."""
    return ", ".join(f"{k}={format(v, floats) if isinstance(v, float) else v}"
                     for k, v in values.items()) or empty  # fmt: skip


def is_union(hint) -> bool:
    """Whether `hint` is a union (`int | None`, `Optional[int]`)."""
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def fits(value, hint) -> bool:
    """Whether `value` (as Python or JSON gives it) is of the annotated type `hint` (an
    integer counts as a number)."""
    args = typing.get_args(hint)
    if is_union(hint):
        return any(value is None if a is type(None) else fits(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if hint is dict:
        return isinstance(value, dict)
    return False


def field_problem(item: dict, fields: dict, required: bool = True) -> str | None:
    """The first of `fields` that `item` lacks or holds with another type, in words (`no
    settings.kind`, `settings.kind is 3, not a string`), or None when every one fits.

    `fields` maps (section, key) to the annotated type of `item[section][key]` (`fits`), or
    (None, key) to that of `item[key]`; a section that is not a JSON object lacks its keys.
    Without `required`, a field that is absent is no problem: only those present are checked.
    """
    for (section, key), hint in fields.items():
        holder = item if section is None else item.get(section)
        name = key if section is None else f"{section}.{key}"
        if not isinstance(holder, dict) or key not in holder:
            if required:
                return f"no {name}"
            continue
        if not fits(holder[key], hint):
            return f"{name} is {holder[key]!r}, not {describe(hint)}"
    return None


def is_finite_number(value) -> bool:
    """A finite number as JSON gives it: not a boolean, not NaN or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (at most `limit` characters), or its type's name:
    what a one-line refusal shows of an error raised by another library."""
    return (str(error).strip().splitlines() or [""])[0][:limit] or type(error).__name__


def file_in_the_way(path, itself: bool = True):
    """The first of `path` (when `itself`) and its parents that exists and is not a folder:
    what stops a folder from being made at `path`; None when nothing does."""
    from pathlib import Path

    path = Path(path)
    for place in (path, *path.parents) if itself else path.parents:
        if place.exists() and not place.is_dir():
            return place
    return None
