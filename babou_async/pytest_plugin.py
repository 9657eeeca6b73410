"""
The pytest plugin (the ``pytest11`` entry point): fixtures for testing code that uses babou_async.

It defines fixtures and one marker only, so a test suite that does not ask for them is
unaffected; the simulator is imported the first time a test asks for it.

* ``babou_fake``: a running :class:`~babou_async.testing.FakeBabou` on ``127.0.0.1`` (free
  ports), served from a background thread with its own event loop, so that plain tests,
  anyio tests and pytest-asyncio tests can all use it. Every call on it is thread-safe.
* ``babou_env``: the same simulator, with ``BABOU_API_KEY`` and ``BABOU_BASE_URL`` set to
  it for the test (and restored after), for applications that read the environment.
* ``@pytest.mark.babou(**options)``: ``FakeBabou``'s keyword arguments for this test's
  simulator (``faults=``, ``video_size=``, ``export_processing_seconds=``, ``seed=``...);
  ``render_seconds=`` is short for ``export_processing_seconds=``. On a module or class it
  applies to every test inside; the closest marker wins, keyword by keyword. An indirect
  parametrization of ``babou_fake`` with a dict of options works too.

See ``docs/testing.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from babou_async.testing import FakeBabou

__all__ = ["babou_env", "babou_fake", "pytest_configure"]

_ALIASES = {"render_seconds": "export_processing_seconds"}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``babou`` marker (so that ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "babou(**options): FakeBabou keyword arguments for this test's babou_fake "
        "(faults=, video_size=, render_seconds=, seed=, ...)",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The simulator's options: markers from the farthest to the closest, then the param."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("babou"))):
        if marker.args:
            pytest.fail("@pytest.mark.babou takes keyword arguments only", pytrace=False)
        options.update(marker.kwargs)
    options.update(getattr(request, "param", None) or {})
    return {_ALIASES.get(name, name): value for name, value in options.items()}


@pytest.fixture
def babou_fake(request: pytest.FixtureRequest) -> Iterator[FakeBabou]:
    """
    A running FakeBabou for this test, on loopback, usable from any thread or event loop.

    It is served from a background thread; its methods and attributes are those of
    :class:`~babou_async.testing.FakeBabou`, and each call runs on the simulator's own loop.
    Configure it with ``@pytest.mark.babou(**options)``.
    """
    # Imported here, not at the top: a suite that never asks for the fixture never pays
    # for the simulator (aiohttp.web and the rest).
    from babou_async.testing import FakeBabou  # noqa: PLC0415
    from babou_async.testing._threaded import serve_in_thread  # noqa: PLC0415

    options = _options(request)
    unknown = sorted(set(options) - set(inspect.signature(FakeBabou).parameters))
    if unknown:
        pytest.fail(f"@pytest.mark.babou: FakeBabou takes no {', '.join(unknown)}", pytrace=False)
    with serve_in_thread(**options) as fake:
        yield cast("FakeBabou", fake)


@pytest.fixture
def babou_env(babou_fake: FakeBabou, monkeypatch: pytest.MonkeyPatch) -> FakeBabou:
    """
    The ``babou_fake`` simulator, with ``BABOU_API_KEY`` and ``BABOU_BASE_URL`` pointing at it.

    ``BabouSession()`` with no arguments then talks to the simulator; the variables are
    restored after the test.
    """
    monkeypatch.setenv("BABOU_API_KEY", babou_fake.api_key)
    monkeypatch.setenv("BABOU_BASE_URL", babou_fake.base_url)
    return babou_fake
