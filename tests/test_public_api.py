"""
Checks of the public surface (STYLE.md rule 10): what ``__all__`` promises is what exists.

The facade modules are the contract; the ``_private`` modules behind them may change.
"""

from __future__ import annotations
import __future__

import importlib.metadata
import inspect
import re
import types
import typing
from pathlib import Path

import attrs
import pytest

import babou_async
import babou_async.contrib.redis
import babou_async.contrib.saq
import babou_async.testing

FACADES = [babou_async, babou_async.testing]
#: The optional integrations define what they export (they are not facades over _private
#: modules), so only the __all__ checks that do not compare it with the module's names apply.
MODULES = [*FACADES, babou_async.contrib.redis, babou_async.contrib.saq]


def public_names(module: types.ModuleType) -> set[str]:
    """Names a user can reach on ``module``: not private, not submodules or __future__ flags."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }


def has_doc_comment(module: types.ModuleType, name: str) -> bool:
    """Whether ``name`` is assigned, somewhere in ``module``'s package, under a ``#:`` comment."""
    package = Path(module.__file__ or "").parent
    assignment = re.compile(rf"^{re.escape(name)}(: [^=]+)? = ", re.MULTILINE)
    for source in sorted(package.glob("*.py")):
        text = source.read_text(encoding="utf-8")
        match = assignment.search(text)
        if match is not None:
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            return before.startswith("#:")
    return False


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest, each alphabetically (ruff's RUF022 order)."""
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted(module: types.ModuleType) -> None:
    """__all__ is kept sorted, so that diffs and reviews stay readable (as ruff's RUF022)."""
    assert sorted(module.__all__, key=_isort_style) == list(module.__all__)


@pytest.mark.parametrize("module", FACADES, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    """Every public name is in __all__, and every name in __all__ exists."""
    assert public_names(module) | ({"__version__"} & set(vars(module))) == set(module.__all__)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_has_no_duplicates(module: types.ModuleType) -> None:
    """No name is listed twice."""
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m in MODULES for n in m.__all__ if n != "__version__"],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_public_names_are_documented(module: types.ModuleType, name: str) -> None:
    """Classes and functions have their own docstring; type aliases a ``#:`` doc comment."""
    obj = getattr(module, name)
    if isinstance(obj, (type, types.FunctionType)):
        assert obj.__doc__
        assert obj.__doc__.strip()
    else:
        # Aliases such as Callable[...] cannot carry a docstring; Sphinx reads "#:" comments.
        assert has_doc_comment(module, name)


def test_public_classes_live_in_private_modules() -> None:
    """Everything is implemented in a _private module and only re-exported by the facade."""
    modules = {
        getattr(babou_async, name).__module__
        for name in babou_async.__all__
        if isinstance(getattr(babou_async, name), type)
    }

    assert set() == {m for m in modules if not m.startswith("babou_async._")}


def test_version_matches_metadata() -> None:
    """__version__ is the installed distribution's version."""
    assert importlib.metadata.version("babou_async") == babou_async.__version__


ATTRS_CLASSES = sorted(
    (
        getattr(babou_async, name)
        for name in babou_async.__all__
        if attrs.has(getattr(babou_async, name))
    ),
    key=lambda cls: cls.__name__,
)


def test_attrs_classes_found() -> None:
    """The models, option bundles and events are attrs classes."""
    assert {
        "Asset",
        "Chapter",
        "DownloadResult",
        "DownloadProgressEvent",
        "Export",
        "ExportEvent",
        "ExportResult",
        "Hooks",
        "Page",
        "PollPolicy",
        "Project",
        "Prompt",
        "PromptSubmission",
        "RateLimit",
        "RequestEvent",
        "ResponseEvent",
        "RetryEvent",
        "RetryPolicy",
        "StatusChangeEvent",
        "Timeouts",
    } <= {cls.__name__ for cls in ATTRS_CLASSES}


@pytest.mark.parametrize("cls", ATTRS_CLASSES, ids=lambda cls: cls.__name__)
def test_type_hints_resolve(cls: type) -> None:
    """get_type_hints works on every public attrs class (cattrs and Sphinx rely on it)."""
    hints = typing.get_type_hints(cls)

    assert {field.name for field in attrs.fields(cls)} <= set(hints)


@pytest.mark.parametrize("cls", ATTRS_CLASSES, ids=lambda cls: cls.__name__)
def test_attrs_classes_are_frozen_and_keyword_only(cls: type) -> None:
    """Public value objects are immutable and take keyword arguments only."""
    fields = attrs.fields(cls)
    blank: object = object.__new__(cls)

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(blank, fields[0].name, None)
    assert [] == [field.name for field in fields if not field.kw_only]


@pytest.mark.parametrize(
    "function",
    [
        getattr(babou_async.testing, name)
        for name in babou_async.testing.__all__
        if inspect.isfunction(getattr(babou_async.testing, name))
    ],
    ids=lambda f: f.__name__,
)
def test_testing_functions_have_resolvable_hints(function: types.FunctionType) -> None:
    """The test kit's functions have complete, resolvable annotations."""
    hints = typing.get_type_hints(function)

    assert set(inspect.signature(function).parameters) | {"return"} == set(hints)
