"""
Shared fixtures.

* One async runner: anyio's pytest plugin on asyncio (aiohttp is asyncio-only);
  ``BABOU_TEST_UVLOOP=1`` runs the whole suite on uvloop instead.
* Every test runs under blockbuster: a blocking call (file I/O, ``time.sleep``) made from the
  event loop thread fails the test.
* The environment is cleaned of ``BABOU_*`` variables so that a developer's real key can
  never leak into a test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from hypothesis import HealthCheck, settings

from babou_async import BabouSession
from babou_async.testing import FakeBabou

from .support import FAST_POLL, FAST_RETRY

# The package's pytest plugin (babou_fake, babou_env), loaded here rather than by its entry
# point (disabled in pyproject.toml), so that coverage is already measuring when it loads.
pytest_plugins = ["babou_async.pytest_plugin"]

settings.register_profile("tests", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tests"))


@pytest.fixture(
    params=[
        pytest.param(
            ("asyncio", {"use_uvloop": os.environ.get("BABOU_TEST_UVLOOP") == "1"}),
            id="asyncio",
        )
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Run async tests on asyncio (or uvloop with BABOU_TEST_UVLOOP=1)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test whose event loop thread makes a blocking call."""
    with blockbuster_ctx(["babou_async", "tests"]) as bb:
        yield bb


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove BABOU_* variables (a real key or URL) and proxy variables (the loopback fakes)."""
    for name in list(os.environ):
        if name.startswith("BABOU_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
async def babou(fake: FakeBabou, request: pytest.FixtureRequest) -> AsyncIterator[BabouSession]:
    """
    A session on ``fake`` with fast polls and retries: the one session fixture of the suite.

    A test module may set ``FAST_RETRY`` (its retry policy, for tests that count attempts)
    and ``VIDEO_SIZE`` (the simulator's video size).
    """
    size = getattr(request.module, "VIDEO_SIZE", None)
    if size is not None:
        fake.export_video_size = size
    async with BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        retry=getattr(request.module, "FAST_RETRY", FAST_RETRY),
        poll=FAST_POLL,
    ) as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeBabou]:
    """A running FakeBabou with fast timings, seeded for determinism."""
    async with FakeBabou(
        seed=1234,
        prompt_seconds=0.05,
        asset_seconds=0.05,
        export_queued_seconds=0.05,
        export_processing_seconds=0.15,
    ) as sim:
        yield sim
