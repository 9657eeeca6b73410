"""
The pytest plugin shipped in the package: ``babou_fake``, ``babou_env`` and the ``babou`` marker.

The main test runs pytest as a new user would: a fresh directory with its own minimal
configuration (none of this project's ``addopts``), one test file using the fixtures from
a sync test, an anyio test and a pytest-asyncio test, and ``python -m pytest`` in a
subprocess. The others use the fixtures from this suite (sync tests: the simulator's
thread is what makes them work).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import urllib.request
from pathlib import Path

import anyio
import pytest

from babou_async.testing import FakeBabou, Faults

pytest_plugins = ["pytester"]

FRESH_CONFIG = """\
[pytest]
addopts = --strict-markers --strict-config
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

FRESH_TESTS = """\
import asyncio
import os
import sys

import pytest

from babou_async import BabouSession, PollPolicy


def test_the_plugin_imports_nothing_until_asked():
    assert "babou_async.testing" not in sys.modules


async def export_bytes(project_id):
    async with BabouSession(poll=PollPolicy.fast()) as babou:  # from BABOU_* variables
        await babou.start_export(project_id)
        await babou.wait_for_export(project_id)
        return b"".join([chunk async for chunk in babou.iter_export_bytes(project_id)])


@pytest.mark.babou(video_size=10_000, render_seconds=0.05)
def test_sync(babou_fake, babou_env):
    assert os.environ["BABOU_BASE_URL"] == babou_fake.base_url
    project_id = babou_fake.seed_project()
    video = asyncio.run(export_bytes(project_id))
    assert video == babou_fake.video_bytes(project_id)
    assert len(video) == 10_000
    assert babou_fake.renders(project_id) == 1


@pytest.mark.anyio
async def test_anyio(babou_fake, babou_env):
    project_id = babou_fake.seed_project()
    assert await export_bytes(project_id) == babou_fake.video_bytes(project_id)
    assert [r.status for r in babou_fake.find_requests(method="POST")] == [200]


@pytest.mark.asyncio
async def test_pytest_asyncio(babou_fake, babou_env):
    project_id = babou_fake.seed_project()
    assert await export_bytes(project_id) == babou_fake.video_bytes(project_id)
    downloads = babou_fake.find_requests(origin="asset")
    assert downloads and all(r.header("Authorization") is None for r in downloads)


def test_the_environment_is_restored():
    assert "BABOU_API_KEY" not in os.environ
"""


def _fresh_env() -> dict[str, str]:
    """This environment without BABOU_* or PYTEST_* variables (pytest's own would leak in)."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("BABOU_", "PYTEST_", "PYTHONPATH"))
    }


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_fresh_project_uses_the_fixtures_from_sync_anyio_and_asyncio_tests(
    tmp_path: Path,
) -> None:
    """A new project with only the package and pytest passes its three kinds of test."""
    await anyio.Path(tmp_path / "pytest.ini").write_text(FRESH_CONFIG)
    await anyio.Path(tmp_path / "test_fresh.py").write_text(FRESH_TESTS)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_fresh.py"]

    with anyio.fail_after(120):
        done = await anyio.run_process(command, cwd=tmp_path, env=_fresh_env(), check=False)

    output = done.stdout.decode() + done.stderr.decode()
    assert 0 == done.returncode, output
    assert "5 passed" in output, output
    for name in ("test_sync", "test_anyio", "test_pytest_asyncio"):
        assert re.search(rf"test_fresh\.py::{name}(\[asyncio\])? PASSED", output), output


def test_babou_fake_serves_from_its_own_thread(babou_fake: FakeBabou) -> None:
    """A plain test reaches the simulator over HTTP; the simulator runs on another thread."""
    project_id = babou_fake.seed_project()
    request = urllib.request.Request(  # noqa: S310 - a loopback http:// URL
        f"{babou_fake.base_url}/projects/{project_id}",
        headers={"Authorization": f"Bearer {babou_fake.api_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert 200 == response.status

    assert ["GET"] == [r.method for r in babou_fake.requests]
    assert "babou-fake" in {t.name for t in threading.enumerate()}
    assert "ThreadedFake" in repr(babou_fake)
    assert "seed_project" in dir(babou_fake)


@pytest.mark.babou(faults=Faults(rate_limit_rate=1.0), url_ttl=5)
def test_the_marker_configures_the_simulator(babou_fake: FakeBabou) -> None:
    """Marker keywords are FakeBabou's; attribute writes reach the simulator."""
    assert 1.0 == babou_fake.faults.rate_limit_rate
    assert 5 == babou_fake.url_ttl

    babou_fake.url_ttl = 7
    assert 7 == babou_fake.url_ttl


@pytest.mark.babou(url_ttl=0.0, video_size=100)
class TestMarkerScopes:
    @pytest.mark.babou(video_size=200)
    def test_the_closest_marker_wins_keyword_by_keyword(self, babou_fake: FakeBabou) -> None:
        """A function's marker overrides its class's, keeping the class's other keywords."""
        assert (200, 0.0) == (babou_fake.export_video_size, babou_fake.url_ttl)


@pytest.mark.parametrize("babou_fake", [{"render_seconds": 3.0}], indirect=True)
def test_an_indirect_parameter_configures_the_simulator(babou_fake: FakeBabou) -> None:
    """``indirect=True`` passes a dict of options; render_seconds is an alias."""
    assert 3.0 == babou_fake.export_processing_seconds


def test_babou_env_sets_and_restores_the_variables(
    babou_env: FakeBabou, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables point at the simulator during the test."""
    assert (babou_env.api_key, babou_env.base_url) == (
        os.environ["BABOU_API_KEY"],
        os.environ["BABOU_BASE_URL"],
    )


def test_bad_marker_options_fail_the_test_clearly(pytester: pytest.Pytester) -> None:
    """An unknown keyword or a positional argument fails with a message naming it."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.babou(no_such_option=1)
        def test_unknown(babou_fake):
            pass

        @pytest.mark.babou(1)
        def test_positional(babou_fake):
            pass
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "--strict-markers"
    )

    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*FakeBabou takes no no_such_option*",
            "*@pytest.mark.babou takes keyword arguments only*",
        ]
    )


def test_the_simulator_thread_refuses_to_wait_for_itself() -> None:
    """A call made from the simulator's own thread is refused instead of deadlocking."""
    from babou_async.testing._threaded import serve_in_thread

    with serve_in_thread() as fake:
        errors: list[BaseException] = []

        def from_inside() -> None:
            try:
                fake.seed_project()
            except RuntimeError as exc:
                errors.append(exc)

        fake._loop.call_soon_threadsafe(from_inside)
        fake.clear_requests()  # runs after from_inside, on the same loop

    assert ["the simulator's own thread cannot wait for itself"] == [str(e) for e in errors]


def test_a_simulator_that_cannot_start_leaves_no_thread_behind() -> None:
    """A port already taken: the bind error surfaces, and the thread and loop are gone."""
    import socket

    from babou_async.testing._threaded import serve_in_thread

    before = threading.active_count()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError), serve_in_thread(port=taken.getsockname()[1]):
            pass  # pragma: no cover - never entered

    assert before == threading.active_count()
