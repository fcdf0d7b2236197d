"""The API reference covers the public API: one docs/api page per public package, and a
docstring on every class and function a package exports (`make docs` renders them; its
strict build, run by CI, checks links and docstring sections)."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import petra

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def public_packages() -> list[str]:
    """petra and each of its subpackages that declares `__all__`."""
    names = ["petra"]
    for info in pkgutil.iter_modules(petra.__path__):
        if info.ispkg and hasattr(importlib.import_module(f"petra.{info.name}"), "__all__"):
            names.append(f"petra.{info.name}")
    return names


def documented_packages() -> set[str]:
    """The modules the API pages render as a page (the `::: name` directive at the top)."""
    pages = set()
    for page in API.glob("*.md"):
        first = re.match(r":::\s*(\S+)", page.read_text())
        if first:
            pages.add(first.group(1))
    return pages


def test_every_public_package_has_an_api_page():
    assert set(public_packages()) <= documented_packages()


def test_the_top_level_page_links_every_top_level_export():
    page = (API / "petra.md").read_text()
    for name in petra.__all__:
        homes = [  # the subpackages that export it, where the reference documents it
            package
            for package in public_packages()[1:]
            if name in importlib.import_module(package).__all__
        ]
        assert any(f"[`{name}`][{home}.{name}]" in page for home in homes), name


def test_every_api_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in API.glob("*.md"):
        assert f"api/{page.name}" in nav, page.name


def own_docstring(obj) -> str | None:
    """The docstring written for `obj`: not one inherited, nor the signature that
    `dataclasses` puts on an undocumented dataclass."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if doc and inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return None
    return doc


@pytest.mark.parametrize("package", public_packages())
def test_every_exported_class_and_function_has_a_docstring(package):
    module = importlib.import_module(package)
    missing = [
        name
        for name in module.__all__
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and not own_docstring(obj)
    ]
    assert not missing, f"{package} exports undocumented {missing}"


def test_own_docstring_sees_through_a_dataclass_signature():
    from dataclasses import dataclass

    @dataclass
    class Bare:
        x: int = 0

    @dataclass
    class Documented:
        """Said."""

    assert own_docstring(Bare) is None
    assert own_docstring(Documented) == "Said."
