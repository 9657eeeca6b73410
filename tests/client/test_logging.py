"""
Logging as libraries do it: silent unless configured, named children, the right levels.

The "done when" of issue #11: a script using the library with no logging configured prints
nothing on stderr during a run with retries and cut downloads (a subprocess against
FakeBabou with faults on). The same script with logging configured shows what it rode
through, at INFO, on the named child loggers.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import babou_async
from babou_async import BabouSession
from babou_async.testing import FakeBabou, Faults

from ..support import FAST_POLL, fast_retry

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
    import asyncio, json, logging, sys
    from babou_async import BabouSession, PollPolicy, RetryPolicy

    if sys.argv[5] == "configured":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")

    async def main() -> None:
        key, base_url, out, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
        retry = RetryPolicy(attempts=12, base_delay=0.001, max_delay=0.01)
        async with BabouSession(key, base_url=base_url, retry=retry, poll=PollPolicy.fast()) as b:
            results = await b.export_many(ids.split(","), out, timeout=60)
        print(json.dumps([r.ok for r in results]))

    asyncio.run(main())
"""


async def run_script(fake: FakeBabou, out: Path, ids: list[str], mode: str) -> tuple[str, str]:
    """Run the export script in a fresh interpreter; its stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = await anyio.run_process(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SCRIPT),
            fake.api_key,
            fake.base_url,
            str(out),
            ",".join(ids),
            mode,
        ],
        env=env,
        check=True,
    )
    return done.stdout.decode(), done.stderr.decode()


def faulty(fake: FakeBabou) -> None:
    """Retries and cut downloads: 5xx, 429, dropped API connections and cut bodies."""
    fake.export_video_size = 512 * 1024
    fake.faults = Faults(
        server_error_rate=0.15,
        rate_limit_rate=0.1,
        retry_after=0.01,
        drop_api_rate=0.05,
        drop_rate=0.5,
    )


@pytest.mark.parametrize("mode", ["unconfigured", "configured"])
async def test_a_script_without_logging_prints_nothing_on_stderr(
    fake: FakeBabou, tmp_path: Path, mode: str
) -> None:
    """
    Faults on, no logging configured: stderr stays empty; configured, INFO lines show.

    The run really retried and resumed (the simulator saw errors and cut bodies), and every
    video was saved.
    """
    ids = [fake.seed_project(f"P{i}") for i in range(6)]
    faulty(fake)
    out, err = await run_script(fake, tmp_path, ids, mode)
    assert "[true, true, true, true, true, true]\n" == out
    assert any(r.status is not None and r.status >= 500 for r in fake.requests)
    assert any(r.origin == "asset" and r.dropped for r in fake.requests)
    if mode == "unconfigured":
        assert "" == err
        return
    lines = err.splitlines()
    assert any(line.startswith("INFO babou_async.http retrying ") for line in lines)
    assert any(line.startswith("INFO babou_async.download download of ") for line in lines)
    assert not any(line.startswith(("WARNING", "ERROR")) for line in lines), err
    assert fake.api_key not in err


def test_the_package_logger_has_a_null_handler_and_named_children() -> None:
    """A NullHandler on babou_async, no level set; the children are named after their job."""
    package = logging.getLogger("babou_async")
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)
    assert babou_async.__name__ == package.name
    names = {"babou_async.http", "babou_async.download", "babou_async.export"}
    names |= {"babou_async.batch", "babou_async.callbacks"}
    assert names <= set(logging.Logger.manager.loggerDict)


async def test_one_debug_line_per_request(
    fake: FakeBabou, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """
    DEBUG on babou_async.http: method, path, status, elapsed ms and request ID per request.

    Download requests show the asset host and path, never the signed query; no key anywhere.
    """
    pid = fake.seed_project()
    fake.inject("GET", "/projects", status=200, json=[], headers={"X-Request-Id": "rq-7"})
    async with BabouSession(
        fake.api_key, base_url=fake.base_url, retry=fast_retry(), poll=FAST_POLL
    ) as babou:
        with caplog.at_level(logging.DEBUG, logger="babou_async"):
            await babou.list_projects()
            await babou.start_export(pid)
            await babou.wait_for_export(pid, timeout=30)
            await babou.download_export(pid, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "babou_async.http"]
    assert len(fake.requests) == len(lines)
    first = lines[0].split()
    assert ["GET", "/projects", "200", "request_id=rq-7"] == [*first[:3], first[4]]
    assert first[3].endswith("ms")
    asset = fake.asset_base_url.removeprefix("http://")
    downloads = [line for line in lines if line.startswith(f"GET {asset}/")]
    assert downloads
    assert all("?" not in line for line in downloads)
    assert not any(fake.api_key in r.getMessage() for r in caplog.records)


async def test_retries_are_info_not_warning(
    fake: FakeBabou, caplog: pytest.LogCaptureFixture
) -> None:
    """A retried request logs at INFO: nothing at WARNING for what the library rides through."""
    fake.inject("GET", "/projects", status=503, times=2)
    async with BabouSession(fake.api_key, base_url=fake.base_url, retry=fast_retry()) as babou:
        with caplog.at_level(logging.INFO, logger="babou_async"):
            await babou.list_projects()
    ours = [r for r in caplog.records if not r.name.startswith("babou_async.testing")]
    assert [logging.INFO, logging.INFO] == [r.levelno for r in ours]
    assert {"babou_async.http"} == {r.name for r in ours}


async def test_the_cli_shows_info_lines_as_info(fake: FakeBabou) -> None:
    """`babou -v projects list` after a 503: an `info: retrying` line, no `warning:` prefix."""
    fake.inject("GET", "/projects", status=503, times=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env |= {"BABOU_API_KEY": fake.api_key, "BABOU_BASE_URL": fake.base_url}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = await anyio.run_process(
        [sys.executable, "-m", "babou_async", "-v", "projects", "list"], env=env, check=False
    )
    err = done.stderr.decode()
    assert 0 == done.returncode, err
    assert err.startswith("info: retrying GET /projects"), err
    assert "warning:" not in err
