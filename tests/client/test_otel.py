"""
OpenTelemetry spans: one CLIENT span per API request, one span per export lifecycle.

Real requests against FakeBabou on loopback, recorded by the SDK's in-memory exporter on the
process's tracer provider (set once per process, as an application does). What happens
without a provider, or without opentelemetry at all, runs in fresh subprocesses.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from babou_async import BabouSession, ExportTimeoutError, TransportError
from babou_async.testing import FakeBabou

from ..support import FAST_POLL, fast_retry

pytestmark = pytest.mark.anyio

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> Iterator[None]:
    """The process's SDK tracer provider, exporting to memory while this module runs."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    yield
    _EXPORTER.shutdown()  # later tests' spans are dropped, not kept in memory


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The exporter, emptied before the test."""
    _EXPORTER.clear()
    return _EXPORTER


def finished(exporter: InMemorySpanExporter) -> Sequence[ReadableSpan]:
    """The spans ended so far."""
    return exporter.get_finished_spans()


def session_on(fake: FakeBabou, attempts: int = 4) -> BabouSession:
    """A fast session on ``fake``."""
    return BabouSession(
        fake.api_key, base_url=fake.base_url, retry=fast_retry(attempts), poll=FAST_POLL
    )


def no_key_in(fake: FakeBabou, spans: Sequence[ReadableSpan]) -> bool:
    """Whether no span's name or attribute shows the key."""
    texts = [span.name for span in spans]
    texts += [str(value) for span in spans for value in (span.attributes or {}).values()]
    return not any(fake.api_key in text for text in texts)


async def test_an_api_request_is_one_client_span(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """GET /projects: one CLIENT span with the HTTP client attributes, no query in url.full."""
    async with session_on(fake) as babou:
        await babou.list_projects()
    [span] = finished(spans)
    port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    assert ("GET", SpanKind.CLIENT) == (span.name, span.kind)
    assert {
        "http.request.method": "GET",
        "url.full": f"{fake.base_url}/projects",
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": 200,
    } == dict(span.attributes or {})
    assert StatusCode.UNSET == span.status.status_code
    assert no_key_in(fake, [span])


async def test_each_attempt_is_a_span_with_its_resend_count(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """A 503 then a 200: the first span is an error of type "503", the second a resend."""
    pid = fake.seed_project()
    fake.inject("GET", f"/projects/{pid}", status=503, headers={"X-Request-Id": "req-1"}, times=1)
    async with session_on(fake) as babou:
        await babou.get_project(pid)
    first, second = finished(spans)
    assert "503" == (first.attributes or {})["error.type"]
    assert "req-1" == (first.attributes or {})["babou.request_id"]
    assert StatusCode.ERROR == first.status.status_code
    assert 1 == (second.attributes or {})["http.request.resend_count"]
    assert 200 == (second.attributes or {})["http.response.status_code"]


async def test_a_request_without_answer_records_the_error_type(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """A dropped connection: the span's error.type is the exception's class."""
    fake.inject("GET", "/projects", status=200, drop=True, times=None)
    async with session_on(fake, attempts=2) as babou:
        with pytest.raises(TransportError):
            await babou.list_projects()
    assert {"TransportError"} == {(s.attributes or {})["error.type"] for s in finished(spans)}


async def test_a_cancelled_request_ends_its_span(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """A request cancelled mid-flight still ends its span (error.type "cancelled")."""
    fake.inject("GET", "/projects", status=200, delay=5, times=1)
    async with session_on(fake) as babou:
        with anyio.move_on_after(0.2):
            await babou.list_projects()
    [span] = finished(spans)
    assert "cancelled" == (span.attributes or {})["error.type"]


async def test_wait_for_export_is_one_lifecycle_span_parent_of_its_polls(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """wait_for_export: a babou.wait_for_export span, the polls its children."""
    pid = fake.seed_project()
    async with session_on(fake) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=30)
    done = finished(spans)
    [life] = [s for s in done if s.name.startswith("babou.")]
    assert "babou.wait_for_export" == life.name
    assert {"babou.project_id": pid, "babou.export.status": "completed"} == dict(
        life.attributes or {}
    )
    polls = [s for s in done if s.kind is SpanKind.CLIENT and s.parent is not None]
    assert polls
    assert all(s.parent is not None and s.parent.span_id == life.context.span_id for s in polls)
    start = next(s for s in done if s.name == "POST")
    assert start.parent is None  # start_export is no part of the wait
    assert no_key_in(fake, done)


async def test_a_watch_that_times_out_is_an_error_span(
    fake: FakeBabou, spans: InMemorySpanExporter
) -> None:
    """watch_export past its deadline: babou.watch_export ends with ExportTimeoutError."""
    pid = fake.seed_project()
    fake.export_processing_seconds = 60
    async with session_on(fake) as babou:
        await babou.start_export(pid)
        with pytest.raises(ExportTimeoutError):
            async for _ in babou.watch_export(pid, timeout=0.3):
                pass
    [life] = [s for s in finished(spans) if s.name == "babou.watch_export"]
    assert "ExportTimeoutError" == (life.attributes or {})["error.type"]
    assert StatusCode.ERROR == life.status.status_code


async def test_export_project_is_one_span_around_start_watch_and_download(
    fake: FakeBabou, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """export_project: one babou.export_project span, every API request of it a child."""
    pid = fake.seed_project()
    async with session_on(fake) as babou:
        result = await babou.export_project(pid, tmp_path)
    assert result.ok
    done = finished(spans)
    [life] = [s for s in done if s.name.startswith("babou.")]
    assert "babou.export_project" == life.name
    assert "completed" == (life.attributes or {})["babou.export.status"]
    requests = [s for s in done if s.kind is SpanKind.CLIENT]
    assert {"POST", "GET"} == {s.name for s in requests}
    assert all(s.parent is not None and s.parent.span_id == life.context.span_id for s in requests)


async def test_a_failed_export_is_an_error_lifecycle(
    fake: FakeBabou, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """An export that fails: the lifecycle span says so (error.type, status ERROR)."""
    pid = fake.seed_project()
    fake.faults.fail_exports = {pid}
    async with session_on(fake) as babou:
        result = await babou.export_project(pid, tmp_path)
        async for _ in babou.watch_export(pid):
            pass
    assert not result.ok
    lives = [s for s in finished(spans) if s.name.startswith("babou.")]
    assert ["babou.export_project", "babou.watch_export"] == [s.name for s in lives]
    assert ["ExportFailedError", "export_failed"] == [
        (s.attributes or {})["error.type"] for s in lives
    ]
    assert all(s.status.status_code is StatusCode.ERROR for s in lives)


async def test_an_export_that_never_started_is_a_lifecycle_without_status(
    fake: FakeBabou, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """export_project of an unknown project: its span carries the error, and no status."""
    async with session_on(fake) as babou:
        result = await babou.export_project("prj_" + "x" * 21, tmp_path)
    assert not result.ok
    [life] = [s for s in finished(spans) if s.name == "babou.export_project"]
    assert "babou.export.status" not in (life.attributes or {})
    assert "NotFoundError" == (life.attributes or {})["error.type"]


async def test_a_cancelled_export_project_ends_its_span(
    fake: FakeBabou, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """export_project cancelled while it watches: the span ends, marked with the cancellation."""
    pid = fake.seed_project()
    fake.export_processing_seconds = 60
    async with session_on(fake) as babou:
        with anyio.move_on_after(0.5):
            await babou.export_project(pid, tmp_path)
    [life] = [s for s in finished(spans) if s.name == "babou.export_project"]
    assert "CancelledError" == (life.attributes or {})["error.type"]


async def run_script(code: str, *args: str) -> tuple[int, str, str]:
    """Run ``code`` in a fresh interpreter; its exit code, stdout and stderr."""
    result = await anyio.run_process(
        [sys.executable, "-c", textwrap.dedent(code), *args], check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_without_a_provider_no_tracer_is_used(fake: FakeBabou) -> None:
    """No provider: requests work and no tracer is looked up; one set later is picked up."""
    code = """
        import asyncio, sys
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from babou_async import BabouSession
        from babou_async._otel import RECHECK_SECONDS, Tracing

        async def main() -> None:
            async with BabouSession(sys.argv[1], base_url=sys.argv[2]) as babou:
                assert await babou.list_projects() == []
                assert babou._rt.observer.tracing.tracer() is None
            now = [0.0]
            tracing = Tracing(monotonic=lambda: now[0])
            assert tracing.tracer() is None
            trace.set_tracer_provider(TracerProvider())
            assert tracing.tracer() is None  # not looked at again within the second
            now[0] += RECHECK_SECONDS
            tracer = tracing.tracer()
            assert tracer is not None and tracing.tracer() is tracer
            print("ok")

        asyncio.run(main())
    """
    code_, out, err = await run_script(code, fake.api_key, fake.base_url)
    assert (0, "ok\n", "") == (code_, out, err)


async def test_without_opentelemetry_everything_works(fake: FakeBabou) -> None:
    """Without opentelemetry importable, sessions, waits and exports run, with no span."""
    code = """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if not installed
        from babou_async import BabouSession, PollPolicy

        async def main() -> None:
            async with BabouSession(
                sys.argv[1], base_url=sys.argv[2], poll=PollPolicy.fast()
            ) as babou:
                project = await babou.get_project(sys.argv[3])
                await babou.start_export(project.id)
                await babou.wait_for_export(project.id, timeout=30)
                assert babou._rt.observer.tracing.tracer() is None
            print("ok")

        asyncio.run(main())
    """
    pid = fake.seed_project()
    code_, out, err = await run_script(code, fake.api_key, fake.base_url, pid)
    assert (0, "ok\n", "") == (code_, out, err)
