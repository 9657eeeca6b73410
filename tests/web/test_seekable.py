"""
Seekable streaming: ``BabouSession.open_export`` and ``parse_range``.

Against the simulator over loopback, and, for what the simulator never does (no size, no
validator, content that changes under a stream), against a scripted download host: a
small aiohttp server on 127.0.0.1:0 that answers each request from a list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web

from babou_async import (
    BabouSession,
    DownloadError,
    ExportNotReadyError,
    IntegrityError,
    RangeNotSatisfiableError,
    RetryPolicy,
    ValidationError,
    parse_range,
)
from babou_async._download import MAX_DOWNLOAD_BYTES
from babou_async._ranges import RangeMachine
from babou_async._resume import Action
from babou_async.testing import FakeBabou, Faults
from babou_async.testing._http import close_connection

SIZE = 300_000


# -- parse_range: pure --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-300", (700, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("BYTES = 5 - 9", (5, 9)),
        ("bytes=0-0", (0, 0)),
        # Ignored: the whole video.
        ("bytes=9-5", None),
        ("bytes=0-1,5-9", None),
        ("items=0-9", None),
        ("bytes", None),
        ("bytes=", None),
        ("bytes=-", None),
        ("bytes=a-9", None),
        ("bytes=5", None),
        ("bytes=٣-9", None),  # a non-ASCII digit
        (f"bytes={'9' * 40}-", None),  # not a 64-bit offset
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    """RFC 9110 ranges, inclusive, clamped to the end; anything odd means the whole video."""
    assert expected == parse_range(header, 1000)


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=-10", 0)]
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    """A range past the end, or of no bytes, is a 416 carrying the size."""
    with pytest.raises(RangeNotSatisfiableError) as caught:
        parse_range(header, size)

    assert (size, "") == (caught.value.size, caught.value.project_id)


# -- RangeMachine: pure -------------------------------------------------------------------

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def machine(**fields: Any) -> RangeMachine:
    """A machine for bytes 10-19 of a 100-byte video whose ETag is "v1"."""
    fields = {"offset": 10, "end": 19, "etag": '"v1"', "pinned": (100, '"v1"', None), **fields}
    return RangeMachine(project_id="prj_x", policy=RetryPolicy(), **fields)


def test_range_machine_asks_for_the_rest_of_its_range() -> None:
    """Range up to ``end``, If-Range on the validator, no content coding."""
    assert {"Accept-Encoding": "identity", "Range": "bytes=10-19", "If-Range": '"v1"'} == (
        machine().request_headers()
    )


def test_range_machine_cuts_a_whole_body_to_its_range() -> None:
    """A 200 (Range ignored): bytes before the range skipped, after it dropped, then done."""
    state = machine()
    step = state.on_response(200, {"content-length": "100", "etag": '"v1"'}, now=NOW, rand=0)

    pieces = [state.take(bytes(range(n, n + 8))) for n in range(0, 32, 8)]

    assert Action.READ is step.action
    assert [None, (10, bytes(range(10, 16))), (16, bytes(range(16, 20))), None] == pieces
    assert Action.DONE is state.on_body_end("/v.mp4", rand=0).action


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"content-length": "100", "etag": '"v2"'}),  # another video
        (206, {"content-range": "bytes 10-19/99", "etag": '"v1"'}),  # another size
    ],
)
def test_range_machine_refuses_other_content(status: int, headers: dict[str, str]) -> None:
    """Content other than the pinned one fails: the headers sent no longer describe it."""
    step = machine(total=None).on_response(status, headers, now=NOW, rand=0)

    assert (Action.FAIL, "the export of prj_x changed since it was opened") == (
        step.action,
        step.reason,
    )


# -- open_export on the simulator -----------------------------------------------------------


async def completed(fake: FakeBabou, babou: BabouSession, **faults: Any) -> str:
    """A project whose export has completed (``SIZE`` bytes), with these faults from now on."""
    fake.export_video_size = SIZE
    project_id = fake.seed_project()
    await babou.start_export(project_id)
    fake.finish_export(project_id)
    fake.faults = Faults(**faults)
    return project_id


async def read(babou: BabouSession, project_id: str, **options: Any) -> tuple[Any, bytes]:
    """Open, then read all of it: ``(video, bytes)``."""
    async with babou.open_export(project_id, **options) as video:
        body = b"".join([chunk async for chunk in video.iter_bytes()])
    return video, body


@pytest.mark.anyio
async def test_the_whole_video_with_its_headers(fake: FakeBabou, babou: BabouSession) -> None:
    """No range: 200, the full size, the host's type and validators; all the bytes."""
    project_id = await completed(fake, babou)

    video, body = await read(babou, project_id)

    assert fake.video_bytes(project_id) == body
    assert (200, SIZE, SIZE, None, None) == (
        video.status,
        video.size,
        video.content_length,
        video.content_range,
        video.span,
    )
    assert {
        "Content-Type": "video/mp4",
        "Content-Length": str(SIZE),
        "Accept-Ranges": "bytes",
        "ETag": fake.video_etag(project_id),
    }.items() <= video.headers.items()
    assert "Last-Modified" in video.headers
    assert f"<ExportStream {project_id}>" == repr(video)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("asked", "span"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=-10", (SIZE - 10, SIZE - 1)),
        ((1000, 1999), (1000, 1999)),
        ((SIZE - 5, SIZE + 100), (SIZE - 5, SIZE - 1)),  # clamped to the end
    ],
)
async def test_a_range(
    fake: FakeBabou, babou: BabouSession, asked: Any, span: tuple[int, int]
) -> None:
    """A range: 206, its Content-Range and Content-Length, exactly its bytes."""
    project_id = await completed(fake, babou)

    video, body = await read(babou, project_id, range=asked)

    first, last = span
    assert fake.video_bytes(project_id)[first : last + 1] == body
    assert (206, span, last - first + 1, f"bytes {first}-{last}/{SIZE}") == (
        video.status,
        video.span,
        video.content_length,
        video.content_range,
    )
    assert video.headers["Content-Range"] == video.content_range
    sent = fake.find_requests(origin="asset")[-1]
    assert f"bytes={first}-{last}" == sent.header("Range")
    assert fake.video_etag(project_id) == sent.header("If-Range")
    assert sent.header("Authorization") is None


@pytest.mark.anyio
async def test_a_malformed_header_means_the_whole_video(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A Range header that does not parse is ignored, as the RFC allows."""
    project_id = await completed(fake, babou)

    video, body = await read(babou, project_id, range="bytes=oops")

    assert (200, SIZE) == (video.status, len(body))


@pytest.mark.anyio
@pytest.mark.parametrize("asked", [f"bytes={SIZE}-", (SIZE, SIZE + 10), "bytes=-0"])
async def test_a_range_outside_the_video(fake: FakeBabou, babou: BabouSession, asked: Any) -> None:
    """Past the end: RangeNotSatisfiableError on entering, with the size, before any body."""
    project_id = await completed(fake, babou)

    with pytest.raises(RangeNotSatisfiableError) as caught:
        await read(babou, project_id, range=asked)

    assert (SIZE, project_id) == (caught.value.size, caught.value.project_id)
    assert all(r.header("Range") == "bytes=0-0" for r in fake.find_requests(origin="asset"))


@pytest.mark.anyio
@pytest.mark.parametrize("asked", [(5, 1), (-1, 3), (True, 3), [0, 9], (0, 1, 2), 7])
async def test_a_bad_range_argument(fake: FakeBabou, babou: BabouSession, asked: Any) -> None:
    """A range that is neither a header nor (first <= last) offsets: refused at once."""
    with pytest.raises(ValidationError) as caught:
        babou.open_export("prj_x", range=asked)

    assert "range" == caught.value.field


@pytest.mark.anyio
async def test_drops_within_a_range_are_resumed(fake: FakeBabou, babou: BabouSession) -> None:
    """Cut connections resume inside the range, with If-Range; the bytes are exact."""
    project_id = await completed(fake, babou, drop_rate=0.7)
    fake.clear_requests()

    _, body = await read(babou, project_id, range=(1000, SIZE - 1000))

    assert fake.video_bytes(project_id)[1000 : SIZE - 999] == body
    downloads = fake.find_requests(origin="asset")
    assert any(r.dropped for r in downloads)
    resumed = [r.header("Range") for r in downloads[2:]]
    assert resumed
    assert all(r is not None and r.endswith(f"-{SIZE - 1000}") for r in resumed)


@pytest.mark.anyio
@pytest.mark.parametrize("first", [37_800, 270_000])  # in the first 256 KiB read, or after
async def test_a_host_ignoring_range_still_gives_the_range(
    fake: FakeBabou, babou: BabouSession, first: int
) -> None:
    """A host answering 200 to every Range: the bytes before and after the range are dropped."""
    project_id = await completed(fake, babou, ignore_range=True)

    video, body = await read(babou, project_id, range=(first, first + 50))

    assert fake.video_bytes(project_id)[first : first + 51] == body
    assert (206, SIZE) == (video.status, video.size)


@pytest.mark.anyio
async def test_a_video_that_changed_since_it_was_opened(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A new render between the headers and the body: an error, never mismatched bytes."""
    project_id = await completed(fake, babou)
    async with babou.open_export(project_id) as video:
        await babou.start_export(project_id)
        fake.finish_export(project_id)

        with pytest.raises(DownloadError, match="changed since it was opened"):
            async for _ in video.iter_bytes():
                pass  # pragma: no cover - no byte of the new video is yielded


@pytest.mark.anyio
async def test_leaving_the_block_closes_an_unfinished_stream(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A handler that stops reading (the client left) closes the stream with the block."""
    project_id = await completed(fake, babou)

    async with babou.open_export(project_id) as video:
        chunks = video.iter_bytes()
        first = await chunks.__anext__()

    assert first
    with pytest.raises(StopAsyncIteration):
        await chunks.__anext__()


@pytest.mark.anyio
async def test_an_unfinished_export_cannot_be_opened(fake: FakeBabou, babou: BabouSession) -> None:
    """Opening a running export raises ExportNotReadyError (the app's 409)."""
    fake.export_processing_seconds = 60
    project_id = fake.seed_project()
    await babou.start_export(project_id)

    with pytest.raises(ExportNotReadyError):
        await read(babou, project_id)


# -- open_export on a scripted download host ---------------------------------------------------


@attrs.define
class Answer:
    """One scripted answer: status, headers, body, and where to cut the connection."""

    status: int
    headers: dict[str, str] = attrs.Factory(dict)
    body: bytes = b""
    cut_after: int | None = None
    chunked: bool = False


@attrs.define
class ScriptedHost:
    """A download host answering each request with the next :class:`Answer`."""

    answers: list[Answer]
    seen: list[dict[str, str]] = attrs.Factory(list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        answer = self.answers.pop(0)
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        if answer.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(answer.body)
        await response.prepare(request)
        await response.write(answer.body[: answer.cut_after])
        if answer.cut_after is not None:
            close_connection(request)
        return response


@pytest.fixture
async def scripted(
    fake: FakeBabou, babou: BabouSession
) -> AsyncIterator[Callable[[list[Answer]], ScriptedHost]]:
    """Make ``prj_scripted``'s completed export live on a scripted host."""
    hosts: list[ScriptedHost] = []
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await hosts[-1].handle(request)

    app.router.add_get("/video.mp4", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.inject(
        "GET",
        "/projects/prj_scripted/export",
        status=200,
        json={"status": "completed", "download_url": f"http://127.0.0.1:{port}/video.mp4"},
        times=None,
    )

    def script(answers: list[Answer]) -> ScriptedHost:
        hosts.append(ScriptedHost(answers))
        return hosts[-1]

    try:
        yield script
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_a_host_without_validators(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """No ETag, no Last-Modified: the range is asked without If-Range."""
    host = scripted(
        [
            Answer(206, {"Content-Range": "bytes 0-0/5"}, b"a"),
            Answer(206, {"Content-Range": "bytes 0-4/5"}, b"abcde"),
        ]
    )

    video, body = await read(babou, "prj_scripted")

    assert (b"abcde", None, None) == (body, video.etag, video.last_modified)
    assert "If-Range" not in host.seen[1]
    assert "bytes=0-4" == host.seen[1]["Range"]


@pytest.mark.anyio
async def test_a_short_body_is_resumed_where_it_stopped(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """A body that ends cleanly before the range does: the rest is asked with If-Range."""
    etag = {"ETag": '"v1"'}
    host = scripted(
        [
            Answer(206, {"Content-Range": "bytes 0-0/10", **etag}, b"a"),
            Answer(206, {"Content-Range": "bytes 0-9/10", **etag}, b"abcde"),
            Answer(206, {"Content-Range": "bytes 5-9/10", **etag}, b"fghij"),
        ]
    )

    _, body = await read(babou, "prj_scripted")

    assert b"abcdefghij" == body
    assert ("bytes=5-9", '"v1"') == (host.seen[2]["Range"], host.seen[2]["If-Range"])


@pytest.mark.anyio
async def test_a_new_last_modified_is_a_changed_video(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """Without an ETag, Last-Modified is the validator: a new one means new content."""
    scripted(
        [
            Answer(206, {"Content-Range": "bytes 0-0/5", "Last-Modified": "Mon"}, b"a"),
            Answer(200, {"Last-Modified": "Tue"}, b"vwxyz"),
        ]
    )

    with pytest.raises(DownloadError, match="changed since it was opened"):
        await read(babou, "prj_scripted")


@pytest.mark.anyio
async def test_content_that_restarts_under_a_stream(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """A resume told to start over (a 416 mid-stream) cannot be served: an error."""
    etag = {"ETag": '"v1"'}
    scripted(
        [
            Answer(206, {"Content-Range": "bytes 0-0/10", **etag}, b"a"),
            Answer(206, {"Content-Range": "bytes 0-9/10", **etag}, b"abcdefghij", cut_after=5),
            Answer(416, {"Content-Range": "bytes */10"}),
            Answer(206, {"Content-Range": "bytes 0-9/10", **etag}, b"abcdefghij"),
        ]
    )

    with pytest.raises(DownloadError, match="changed while streaming"):
        await read(babou, "prj_scripted")


@pytest.mark.anyio
async def test_a_host_announcing_no_size(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """A video of unknown size cannot be served with a Content-Length: an error."""
    scripted([Answer(200, {}, b"abc", chunked=True)])

    with pytest.raises(DownloadError, match="announced no size"):
        await read(babou, "prj_scripted")


@pytest.mark.anyio
async def test_a_video_over_the_ceiling(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """A size over the download ceiling is refused before any body."""
    scripted([Answer(206, {"Content-Range": f"bytes 0-0/{MAX_DOWNLOAD_BYTES + 1}"}, b"a")])

    with pytest.raises(IntegrityError, match="ceiling"):
        await read(babou, "prj_scripted")


@pytest.mark.anyio
async def test_an_empty_video(
    scripted: Callable[[list[Answer]], ScriptedHost], babou: BabouSession
) -> None:
    """An empty video: 200, no bytes, and no second request."""
    host = scripted([Answer(416, {"Content-Range": "bytes */0"})])

    video, body = await read(babou, "prj_scripted")

    assert (200, 0, b"", 1) == (video.status, video.content_length, body, len(host.seen))
