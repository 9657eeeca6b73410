"""
The documentation keeps up with the code.

Building the docs (``nox -s docs``: HTML and doctest, warnings as errors) needs Sphinx,
which the test extra does not install; these checks need nothing but the sources.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import babou_async
import babou_async.testing

REPO = Path(__file__).resolve().parents[1]
API_MD = REPO / "docs" / "api.md"
PUBLIC_MODULES = [babou_async, babou_async.testing]


def _documented_names(text: str, module: str) -> set[str]:
    """Names that api.md documents for ``module``, by autodoc or by hand."""
    auto = re.findall(
        rf"^\.\. auto(?:class|exception|function|data):: {re.escape(module)}\.(\w+)$",
        text,
        re.MULTILINE,
    )
    # Hand-written entries (type aliases, __version__) follow ".. module:: <module>".
    section = text.split(f".. module:: {module}\n", 1)[1]
    section = section.split(".. module::", 1)[0]
    manual = re.findall(r"^\.\. data:: (\w+)$", section, re.MULTILINE)
    return set(auto) | set(manual)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_api_reference_documents_every_public_name(module: ModuleType) -> None:
    """docs/api.md has an entry for each name in the module's __all__, and no stale one."""
    text = API_MD.read_text(encoding="utf-8")

    assert _documented_names(text, module.__name__) == set(module.__all__)


def _public_callables() -> Iterator[tuple[str, Callable[..., object] | type]]:
    """Public classes and functions of both modules, and the public methods of the classes."""
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # type aliases and __version__ are documented in api.md
            yield f"{module.__name__}.{name}", obj
            if not inspect.isclass(obj):
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = member.fget if isinstance(member, property) else member
                func = getattr(func, "__func__", func)  # classmethod, staticmethod
                if inspect.isfunction(func):
                    yield f"{module.__name__}.{name}.{attr}", func


@pytest.mark.parametrize(
    ("name", "obj"), [pytest.param(name, obj, id=name) for name, obj in _public_callables()]
)
def test_public_api_has_a_summary_line(name: str, obj: object) -> None:
    """Every public class, function and method has a docstring opening with a sentence."""
    doc = inspect.getdoc(obj)

    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith("."), f"{name}: summary line {summary!r} is not a sentence"


def test_changelog_has_an_unreleased_section() -> None:
    """CHANGELOG.md follows Keep a Changelog, with what is not released yet on top."""
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")

    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings
    assert headings[0] == "Unreleased"
