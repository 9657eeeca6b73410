"""
Adversarial robustness review: a legitimate-but-odd server, or a hostile network.

Each test drives the public API against a tiny hand-written aiohttp server on 127.0.0.1
(or FakeBabou) to pin one wire behaviour precisely. Tests marked ``xfail(strict=True)``
document a bug that is still present (the reason names the file:line and a fix); the
others are regression tests for behaviour that holds.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from babou_async import (
    APIError,
    BabouError,
    BabouSession,
    DecodeError,
    DownloadError,
    PollPolicy,
    Timeouts,
    TransportError,
)

from ..support import Handler, fast_retry, serve

pytestmark = pytest.mark.anyio

KEY = "sk-bab-adversarialSECRETkey0123456789"
FAST_RETRY = fast_retry(3)


def session(origin: str, **kwargs: Any) -> BabouSession:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("poll", PollPolicy.fast())
    return BabouSession(KEY, base_url=f"{origin}/api/v1", **kwargs)


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


async def listing(path: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(path).iterdir()])


def video(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


# --------------------------------------------------------------------------------------
# Waiting on chapters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["ready", "error"])
async def test_wait_for_chapter_trusts_a_terminal_chapter_status(status: str) -> None:
    """A terminal chapter whose old prompt never got a result is done, not pending."""

    async def chapter(request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "id": "cht_a",
                "name": "Intro",
                "status": status,
                "prompt_count": 2,
                "prompts": [
                    # Superseded by the forced prompt below, or failed: no result, ever.
                    {"id": "int_1", "content": "first", "result": None},
                    {"id": "int_2", "content": "second", "result": "Rendered"},
                ],
            }
        )

    async with (
        serve([("GET", "/api/v1/projects/{p}/chapters/{c}", chapter)]) as origin,
        session(origin) as babou,
    ):
        with anyio.fail_after(5):
            got = await babou.wait_for_chapter("prj_a", "cht_a", timeout=1.0)
    assert got.status_raw == status


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


def export_route(
    download_url: Callable[[web.Request], str],
) -> tuple[str, str, Handler]:
    async def get_export(request: web.Request) -> web.StreamResponse:
        return json_response({"status": "completed", "download_url": download_url(request)})

    return ("GET", "/api/v1/projects/{pid}/export", get_export)


def own_video_url(request: web.Request) -> str:
    return f"http://{request.host}/v/{request.match_info['pid']}.mp4"


async def test_two_downloads_to_one_destination_never_commit_a_corrupt_file(
    tmp_path: Path,
) -> None:
    """A second download to a destination in use is refused; the first commits the exact bytes."""
    content = video(3 * 1024 * 1024)
    release_first = anyio.Event()
    requests = 0

    async def serve_video(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = len(content)
        await response.prepare(request)
        if requests == 1:
            await response.write(content[: 2 * 1024 * 1024])
            await release_first.wait()
            await response.write(content[2 * 1024 * 1024 :])
        else:
            await anyio.sleep(30)  # the second download stalls (it is cancelled below)
        return response

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", serve_video)]) as origin,
        session(origin) as babou,
    ):
        first_ok: list[bool] = []

        async def first() -> None:
            first_ok.append((await babou.download_export("prj_a", tmp_path)).ok)

        async def wait_for(predicate: Callable[[int], bool]) -> None:
            # Any .part file in the folder (each download may name its own).
            while True:
                async for path in anyio.Path(tmp_path).iterdir():
                    if path.name.endswith(".part") and predicate((await path.stat()).st_size):
                        return
                await anyio.sleep(0.005)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await wait_for(lambda size: size >= 1024 * 1024)  # first buffer on disk
                second = anyio.CancelScope()

                second_done = anyio.Event()

                async def run_second() -> None:
                    # The partial is locked by the first download: the second is refused.
                    with second, pytest.raises(BabouError, match="another process"):
                        await babou.download_export("prj_a", tmp_path)
                    second_done.set()

                tg.start_soon(run_second)
                await second_done.wait()
                release_first.set()
                while not first_ok:
                    await anyio.sleep(0.005)
                second.cancel()
    saved = await anyio.Path(tmp_path / "prj_a.mp4").read_bytes()
    assert first_ok == [True]
    assert saved == content, "a file reported complete differs from the server's bytes"


async def test_gzip_content_encoding_on_the_video_is_not_saved_as_is(tmp_path: Path) -> None:
    """A gzip-encoded video is saved decoded or refused leaving nothing, never saved compressed."""
    content = video(200_000)

    async def serve_video(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=gzip.compress(content),
            headers={"Content-Type": "video/mp4", "Content-Encoding": "gzip"},
        )

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", serve_video)]) as origin,
        session(origin) as babou,
    ):
        try:
            result = await babou.download_export("prj_a", tmp_path)
        except DownloadError:
            assert [] == await listing(tmp_path)
            return
    assert result.ok
    assert await anyio.Path(tmp_path / "prj_a.mp4").read_bytes() == content


@pytest.mark.parametrize("bad_url", ["http://[bad/x.mp4", "http://127.0.0.1:99999/x.mp4"])
async def test_malformed_download_url_fails_only_its_own_project(
    tmp_path: Path, bad_url: str
) -> None:
    """An unusable download URL fails its own project with DownloadError, not the batch."""

    def url(request: web.Request) -> str:
        return bad_url if request.match_info["pid"] == "prj_bad" else own_video_url(request)

    async def serve_video(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"video", content_type="video/mp4")

    async with (
        serve([export_route(url), ("GET", "/v/{name}", serve_video)]) as origin,
        session(origin) as babou,
    ):
        results = await babou.download_exports(["prj_ok", "prj_bad"], tmp_path)
    assert [r.ok for r in results] == [True, False]
    assert isinstance(results[1].error, DownloadError)


async def test_slow_loris_download_host_does_not_hang_forever(tmp_path: Path) -> None:
    """A host trickling 100 B/s cannot keep a download alive: it ends, leaving nothing behind."""

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 1000
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"x")
            await anyio.sleep(0.1)  # always inside the 0.3 s read timeout
        return response

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", drip)]) as origin,
        session(origin, timeout=Timeouts(read=0.3, total=5)) as babou,
    ):
        with anyio.move_on_after(3) as scope, pytest.raises(BabouError):
            await babou.download_export("prj_a", tmp_path)
    assert not scope.cancelled_caught, "download_export still running after 3 s (100 B/s)"
    assert [] == await listing(tmp_path)


async def test_cross_origin_redirect_of_the_video_never_carries_the_key(tmp_path: Path) -> None:
    """Storage redirecting to a CDN on another origin: followed, and no credentials go there."""
    content = video(100_000)
    seen: list[dict[str, str]] = []

    async def cdn(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return web.Response(body=content, content_type="video/mp4")

    async with serve([("GET", "/cdn/{name}", cdn)]) as cdn_origin:

        async def storage(request: web.Request) -> web.StreamResponse:
            seen.append(dict(request.headers))
            raise web.HTTPFound(f"{cdn_origin}/cdn/{request.match_info['name']}")

        async with (
            serve([export_route(own_video_url), ("GET", "/v/{name}", storage)]) as origin,
            session(origin) as babou,
        ):
            result = await babou.download_export("prj_a", tmp_path)
    assert result.ok
    assert await anyio.Path(tmp_path / "prj_a.mp4").read_bytes() == content
    assert len(seen) == 2
    for headers in seen:
        assert "Authorization" not in headers
        assert KEY not in json.dumps(headers)


async def test_api_redirect_is_not_followed_and_the_key_stays_home() -> None:
    """A 3xx from the API origin is an APIError; the key never reaches the Location."""
    hits: list[str] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        hits.append(request.headers.get("Authorization", ""))
        return json_response({"id": "prj_a", "name": "x"})

    async with serve([("GET", "/api/v1/projects/{pid}", elsewhere)]) as other:

        async def moved(request: web.Request) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(f"{other}{request.path}")

        async with (
            serve([("GET", "/api/v1/projects/{pid}", moved)]) as origin,
            session(origin) as babou,
        ):
            with pytest.raises(APIError) as info:
                await babou.get_project("prj_a")
    assert info.value.status == 307
    assert hits == []


async def test_truncated_body_resumes_with_range_and_saves_exact_bytes(tmp_path: Path) -> None:
    """Content-Length promised, connection cut half-way: resumed with Range, exact file."""
    content = video(300_000)
    ranges: list[str | None] = []

    async def flaky(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        if len(ranges) == 1:
            response = web.StreamResponse(headers={"Content-Type": "video/mp4", "ETag": '"v1"'})
            response.content_length = len(content)
            await response.prepare(request)
            await response.write(content[:100_000])
            assert request.transport is not None
            request.transport.close()
            return response
        start = int((request.headers.get("Range") or "bytes=0-")[6:].rstrip("-"))
        return web.Response(
            status=206,
            body=content[start:],
            headers={
                "Content-Type": "video/mp4",
                "ETag": '"v1"',
                "Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}",
            },
        )

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", flaky)]) as origin,
        session(origin) as babou,
    ):
        result = await babou.download_export("prj_a", tmp_path)
    assert result.ok
    assert result.bytes == len(content)
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"
    assert await anyio.Path(tmp_path / "prj_a.mp4").read_bytes() == content


async def test_206_without_content_range_leaves_nothing_at_the_final_path(
    tmp_path: Path,
) -> None:
    """A resume answered 206 with no Content-Range is refused; no half file appears."""
    content = video(200_000)
    calls = 0

    async def odd(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.content_length = len(content)
            await response.prepare(request)
            await response.write(content[:50_000])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(status=206, body=content[50_000:], content_type="video/mp4")

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", odd)]) as origin,
        session(origin) as babou,
    ):
        try:
            result = await babou.download_export("prj_a", tmp_path)
        except DownloadError:
            assert [] == await listing(tmp_path)
        else:
            assert result.ok
            assert await anyio.Path(tmp_path / "prj_a.mp4").read_bytes() == content


async def test_cancelled_download_keeps_a_resumable_partial_and_no_final_file(
    tmp_path: Path,
) -> None:
    """Cancelled mid-body: nothing at the final path; the partial and its sidecar stay."""

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 4 * 1024 * 1024
        await response.prepare(request)
        await response.write(video(2 * 1024 * 1024))
        await anyio.sleep(30)
        return response

    async def part_has_bytes() -> bool:
        async for path in anyio.Path(tmp_path).iterdir():
            if path.name.endswith(".part") and (await path.stat()).st_size > 0:
                return True
        return False

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", stall)]) as origin,
        session(origin) as babou,
    ):
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(babou.download_export, "prj_a", tmp_path)
                while not await part_has_bytes():
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
    assert ["prj_a.mp4.part", "prj_a.mp4.part.json"] == await listing(tmp_path)


# --------------------------------------------------------------------------------------
# Creates after ambiguous failures
# --------------------------------------------------------------------------------------


async def test_create_is_not_resent_after_the_server_dropped_the_connection() -> None:
    """The server read the POST (and may have acted) then vanished: one POST, TransportError."""
    posts = 0

    async def create(request: web.Request) -> web.StreamResponse:
        nonlocal posts
        await request.read()
        posts += 1
        assert request.transport is not None
        request.transport.close()
        await anyio.sleep(1)
        return json_response({"id": "prj_a", "name": "x"})

    async with serve([("POST", "/api/v1/projects", create)]) as origin, session(origin) as babou:
        with pytest.raises(TransportError):
            await babou.create_project("Launch")
    assert posts == 1


async def test_create_is_not_resent_after_a_5xx() -> None:
    """A create answered 502 (which may have acted) is sent once and raises ServerError."""
    posts = 0

    async def create(request: web.Request) -> web.StreamResponse:
        nonlocal posts
        posts += 1
        return web.Response(status=502, text="<html>Bad gateway</html>", content_type="text/html")

    async with serve([("POST", "/api/v1/projects", create)]) as origin, session(origin) as babou:
        with pytest.raises(APIError) as info:
            await babou.create_project("Launch")
    assert info.value.status == 502
    assert posts == 1


async def test_start_export_after_a_dropped_attempt_follows_its_own_export() -> None:
    """First start reaches the server but the answer is lost; a look finds it running."""
    posts = 0

    async def start(request: web.Request) -> web.StreamResponse:
        nonlocal posts
        posts += 1
        if posts == 1:
            assert request.transport is not None
            request.transport.close()
            await anyio.sleep(1)
        return json_response(
            {"error": "An export is already in progress for this project", "code": "CONFLICT"},
            status=409,
        )

    async def status(request: web.Request) -> web.StreamResponse:
        return json_response({"status": "processing", "download_url": None})

    async with (
        serve(
            [
                ("POST", "/api/v1/projects/{pid}/export", start),
                ("GET", "/api/v1/projects/{pid}/export", status),
            ]
        ) as origin,
        session(origin) as babou,
    ):
        export = await babou.start_export("prj_a")
    assert export.status_raw == "processing"
    assert posts == 1  # not resent: the look before a resend found the export running


async def test_start_export_answered_204_is_queued() -> None:
    """A start answered 204 with no body counts as a queued export."""

    async def start(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async with (
        serve([("POST", "/api/v1/projects/{pid}/export", start)]) as origin,
        session(origin) as babou,
    ):
        export = await babou.start_export("prj_a")
    assert export.status_raw == "queued"


# --------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------


async def test_a_progressing_upload_is_not_cut_by_the_api_total_timeout(tmp_path: Path) -> None:
    """A slow upload that keeps progressing is not cut by the API's total timeout."""
    size = 8 * 1024 * 1024
    source = anyio.Path(tmp_path / "clip.mp4")
    await source.write_bytes(bytes(size))

    async def slow_reader(request: web.Request) -> web.StreamResponse:
        received = 0
        while chunk := await request.content.read(64 * 1024):
            received += len(chunk)
            await anyio.sleep(0.01)  # about 6 MB/s: progressing, just not instant
        return json_response(
            {"id": "ast_a", "name": "uploaded-file", "state": "processing", "size": received}
        )

    async with (
        serve([("POST", "/api/v1/assets", slow_reader)]) as origin,
        session(origin, timeout=Timeouts(total=0.3, read=0.3)) as babou,
    ):
        asset = await babou.upload_asset(Path(source))
    assert asset.size == size


async def test_uploading_a_few_megabytes_of_bytes_emits_no_warning() -> None:
    """A 2 MiB bytes upload arrives whole and emits no warning (warnings are errors here)."""

    async def accept(request: web.Request) -> web.StreamResponse:
        size = 0  # counted as it streams (request.read() stops at aiohttp's 1 MiB default)
        async for chunk in request.content.iter_any():
            size += len(chunk)
        return json_response({"id": "ast_a", "state": "processing", "size": size})

    async with serve([("POST", "/api/v1/assets", accept)]) as origin, session(origin) as babou:
        asset = await babou.upload_asset(bytes(2 * 1024 * 1024), content_type="video/mp4")
    assert asset.size == 2 * 1024 * 1024


# --------------------------------------------------------------------------------------
# Odd but valid JSON
# --------------------------------------------------------------------------------------


async def test_odd_but_valid_json_is_understood() -> None:
    """Extra fields, nulls, floats for integers, fractional/offset timestamps, other case."""

    async def project(request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "id": "prj_a",
                "name": "Launch",
                "description": None,
                "settings": {},
                "active_export_id": None,
                "created_at": "2025-12-02T10:00:00.123456789+05:30",
                "owner": {"id": "usr_1"},
                "NOT_FOUND": {},
            }
        )

    async def asset(request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "id": "ast_a",
                "name": "uploaded-file",
                "url": None,
                "content_type": "video/mp4",
                "size": 1024.0,
                "state": "READY",
                "duration": 12,
                "width": 1920.0,
                "height": None,
                "created_at": "2025-12-02T10:00:00.000Z",
                "extra": [1, 2, 3],
            }
        )

    async def export(request: web.Request) -> web.StreamResponse:
        return json_response({"status": "failed", "error": "Failed to render chapter 2"})

    async with (
        serve(
            [
                ("GET", "/api/v1/projects/{pid}", project),
                ("GET", "/api/v1/assets/{aid}", asset),
                ("GET", "/api/v1/projects/{pid}/export", export),
            ]
        ) as origin,
        session(origin) as babou,
    ):
        got = await babou.get_project("prj_a")
        a = await babou.get_asset("ast_a")
        e = await babou.get_export("prj_a")
    assert got.created_at is not None
    assert got.created_at.utcoffset() is not None
    assert got.created_at.hour == 4
    assert a.size == 1024
    assert a.width == 1920
    assert a.state.value == "ready"
    assert e.status.value == "failed"
    assert e.error == "Failed to render chapter 2"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/api/v1/projects/{pid}/export", {"status": "queued", "estimated_time": 180}),
        (
            "GET",
            "/api/v1/projects/{pid}/export",
            {"status": "completed", "download_url": "http://x/v.mp4", "duration_seconds": "42.5"},
        ),
        ("GET", "/api/v1/projects/{pid}", {"id": "prj_a", "name": "n", "created_at": ""}),
    ],
    ids=["estimated_time-number", "duration_seconds-string", "created_at-empty"],
)
async def test_odd_informational_fields_do_not_fail_the_call(
    method: str, path: str, payload: dict[str, object]
) -> None:
    """Informational fields of unexpected types never fail a call; the status is still read."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return json_response(payload)

    async with serve([(method, path, answer)]) as origin, session(origin) as babou:
        if path.endswith("/export"):
            call = babou.start_export if method == "POST" else babou.get_export
            export = await call("prj_a")
            assert export.status_raw == payload["status"]
        else:
            assert (await babou.get_project("prj_a")).id == "prj_a"


async def test_api_key_echoed_in_an_undecodable_body_is_not_in_the_exception() -> None:
    """A key echoed in a non-JSON body is absent from the DecodeError's str, repr and excerpt."""

    async def echo(request: web.Request) -> web.StreamResponse:
        dump = "".join(f"{k}: {v}\n" for k, v in request.headers.items())
        return web.Response(text=f"<pre>{dump}</pre>", content_type="text/html")

    async with (
        serve([("GET", "/api/v1/projects/{pid}", echo)]) as origin,
        session(origin) as babou,
    ):
        with pytest.raises(DecodeError) as info:
            await babou.get_project("prj_a")
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    assert KEY.encode() not in info.value.body_excerpt


async def test_api_key_echoed_in_an_error_envelope_is_redacted() -> None:
    """A key echoed in an error envelope is redacted from the exception's str and repr."""

    async def echo(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        return json_response(
            {"error": f"bad key {auth}", "code": "UNAUTHORIZED", "hint": auth}, status=401
        )

    async with (
        serve([("GET", "/api/v1/projects/{pid}", echo)]) as origin,
        session(origin) as babou,
    ):
        with pytest.raises(APIError) as info:
            await babou.get_project("prj_a")
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)


# --------------------------------------------------------------------------------------
# export_many
# --------------------------------------------------------------------------------------


def batch_routes(
    outcome: Callable[[str], str], video_url: Callable[[web.Request], str] = own_video_url
) -> list[tuple[str, str, Handler]]:
    """A small Babou: start answers queued; status says completed/failed/404 per project."""
    polls: dict[str, int] = {}

    async def start(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["pid"]
        if outcome(pid) == "missing":
            return json_response({"error": "Project not found", "code": "NOT_FOUND"}, 404)
        return json_response(
            {"status": "queued", "message": "Export started", "estimated_time": "2-5 minutes"}
        )

    async def status(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["pid"]
        polls[pid] = polls.get(pid, 0) + 1
        if polls[pid] == 1:
            return json_response({"status": "processing", "download_url": None})
        if outcome(pid) == "failed":
            return json_response({"status": "failed", "error": "Failed to render chapter 2"})
        return json_response({"status": "completed", "download_url": video_url(request)})

    async def serve_video(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return web.Response(body=name.encode() * 100, content_type="video/mp4")

    return [
        ("POST", "/api/v1/projects/{pid}/export", start),
        ("GET", "/api/v1/projects/{pid}/export", status),
        ("GET", "/v/{name}", serve_video),
    ]


async def test_export_many_keeps_input_order_and_reports_duplicates_everywhere(
    tmp_path: Path,
) -> None:
    """Async input, duplicates (in flight and finished), failures: one result per position."""

    def outcome(pid: str) -> str:
        return {"prj_fail": "failed", "prj_gone": "missing"}.get(pid, "completed")

    ids = ["prj_b", "prj_fail", "prj_a", "prj_b", "prj_gone", "prj_a", "prj_c", "prj_b"]

    async def source() -> AsyncIterator[str]:
        for pid in ids:
            yield pid
            await anyio.lowlevel.checkpoint()

    async with serve(batch_routes(outcome)) as origin, session(origin) as babou:
        with anyio.fail_after(10):
            results = await babou.export_many(
                source(), tmp_path, concurrency=3, download_concurrency=1, timeout=5
            )
    assert [r.project_id for r in results] == ids
    assert [r.ok for r in results] == [True, False, True, True, False, True, True, True]
    assert type(results[1].error).__name__ == "ExportFailedError"
    assert type(results[4].error).__name__ == "NotFoundError"
    assert results[0] is results[3] is results[7]
    assert await listing(tmp_path) == [
        ".babou-journal.sqlite3",
        "prj_a.mp4",
        "prj_b.mp4",
        "prj_c.mp4",
    ]
    for pid in ("prj_a", "prj_b", "prj_c"):
        saved = await anyio.Path(tmp_path / f"{pid}.mp4").read_bytes()
        assert saved == f"{pid}.mp4".encode() * 100


async def test_export_many_survives_one_malformed_download_url(tmp_path: Path) -> None:
    """One malformed download URL fails its own project; the rest of the batch completes."""

    def url(request: web.Request) -> str:
        bad = request.match_info["pid"] == "prj_bad"
        return "http://[bad/x.mp4" if bad else own_video_url(request)

    async with (
        serve(batch_routes(lambda _pid: "completed", url)) as origin,
        session(origin) as babou,
    ):
        results = await babou.export_many(["prj_ok", "prj_bad"], tmp_path, timeout=5)
    assert [r.ok for r in results] == [True, False]


async def test_cancelled_export_many_leaves_no_final_files(tmp_path: Path) -> None:
    """Cancelled mid-download: no final file; the journal and resumable partials remain."""

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 4 * 1024 * 1024
        await response.prepare(request)
        await response.write(video(2 * 1024 * 1024))
        await anyio.sleep(30)
        return response

    routes = batch_routes(lambda _pid: "completed")
    routes[-1] = ("GET", "/v/{name}", stall)
    async with serve(routes) as origin, session(origin) as babou:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: babou.export_many(["prj_a", "prj_b"], tmp_path, timeout=5))
                while len([n for n in await listing(tmp_path) if n.endswith(".part")]) < 2:
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
    names = await listing(tmp_path)
    assert not [n for n in names if n.endswith(".mp4")]
    assert all(n.endswith((".part", ".part.json", ".sqlite3")) for n in names)


# --------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------


def asset(i: int) -> dict[str, object]:
    return {"id": f"ast_{i:05d}", "state": "ready", "content_type": "video/mp4"}


async def test_listing_ends_when_the_server_ignores_offset() -> None:
    """Same page for every offset and a lying total: no infinite loop, no duplicates."""
    calls = 0

    async def page(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return json_response(
            {
                "assets": [asset(i) for i in range(100)],
                "pagination": {"limit": 100, "offset": 0, "total": 10_000},
            }
        )

    async with serve([("GET", "/api/v1/assets", page)]) as origin, session(origin) as babou:
        with anyio.fail_after(5):
            items = await babou.list_assets()
    assert len(items) == len({a.id for a in items}) == 100
    assert calls == 2


async def test_listing_follows_a_server_that_caps_the_page_size() -> None:
    """Asked 100, served 20 at a time (the documented default) with a total: all of them."""

    async def page(request: web.Request) -> web.StreamResponse:
        offset = int(request.query["offset"])
        return json_response(
            {
                "assets": [asset(i) for i in range(offset, min(offset + 20, 95))],
                "pagination": {"limit": 20, "offset": offset, "total": 95},
            }
        )

    async with serve([("GET", "/api/v1/assets", page)]) as origin, session(origin) as babou:
        items = await babou.list_assets()
    assert [a.id for a in items] == [f"ast_{i:05d}" for i in range(95)]


async def test_bare_list_projects_with_a_server_side_page_cap_is_not_truncated() -> None:
    """A bare-list listing capped server-side below page_size is followed to all 50 items."""
    projects = [{"id": f"prj_{i:05d}", "name": f"p{i}"} for i in range(50)]

    async def page(request: web.Request) -> web.StreamResponse:
        offset = int(request.query.get("offset", "0"))
        return json_response(projects[offset : offset + 20])

    async with serve([("GET", "/api/v1/projects", page)]) as origin, session(origin) as babou:
        items = await babou.list_projects()
    assert len(items) == 50


# --------------------------------------------------------------------------------------
# Retry-After and error bodies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after", ["nan", "-1", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "0.01"]
)
async def test_odd_retry_after_values_are_survived(retry_after: str) -> None:
    """Unparseable, negative, past or absurd Retry-After values cost one quick retry, no crash."""
    calls = 0

    async def throttled(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": retry_after})
        return json_response({"id": "prj_a", "name": "n"})

    async with (
        serve([("GET", "/api/v1/projects/{pid}", throttled)]) as origin,
        session(origin) as babou,
    ):
        with anyio.fail_after(3):
            project = await babou.get_project("prj_a")
    assert project.id == "prj_a"
    assert calls == 2


async def test_huge_retry_after_fails_fast_with_rate_limit_error() -> None:
    """A one-day Retry-After raises RateLimitError at once, with the server's value."""

    async def throttled(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=429,
            body=b'{"error": "Too many requests", "code": "RATE_LIMIT_EXCEEDED"}',
            headers={"Retry-After": "86400", "Content-Type": "application/json"},
        )

    async with (
        serve([("GET", "/api/v1/projects/{pid}", throttled)]) as origin,
        session(origin) as babou,
    ):
        with anyio.fail_after(3), pytest.raises(APIError) as info:
            await babou.get_project("prj_a")
    assert type(info.value).__name__ == "RateLimitError"
    assert info.value.retry_after == 86400


async def test_html_5xx_on_a_read_is_retried_then_a_server_error() -> None:
    """An HTML 503 on a read is retried every attempt, then raised as a ServerError."""
    calls = 0

    async def broken(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=503, text="<html>upstream</html>", content_type="text/html")

    async with (
        serve([("GET", "/api/v1/projects/{pid}", broken)]) as origin,
        session(origin) as babou,
    ):
        with pytest.raises(APIError) as info:
            await babou.get_project("prj_a")
    assert type(info.value).__name__ == "ServerError"
    assert info.value.status == 503
    assert calls == FAST_RETRY.attempts


# --------------------------------------------------------------------------------------
# Connection pool
# --------------------------------------------------------------------------------------


async def test_downloads_queued_behind_a_full_pool_are_not_failed(tmp_path: Path) -> None:
    """Downloads waiting for a free connection are not failed by connect timeouts."""
    content = video(128 * 1024)

    async def steady(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = len(content)
        await response.prepare(request)
        for i in range(0, len(content), 8 * 1024):
            await response.write(content[i : i + 8 * 1024])
            await anyio.sleep(0.1)  # ~1.6 s per video, never stalled
        return response

    async with (
        serve([export_route(own_video_url), ("GET", "/v/{name}", steady)]) as origin,
        session(origin, max_connections=2, timeout=Timeouts(connect=0.2, read=5)) as babou,
    ):
        with anyio.fail_after(10):
            results = await babou.download_exports(
                ["prj_a", "prj_b", "prj_c"], tmp_path, concurrency=3
            )
    assert [r.error for r in results] == [None, None, None]


# --------------------------------------------------------------------------------------
# Expired download URLs
# --------------------------------------------------------------------------------------


def signed_routes(
    content: bytes, on_video: Callable[[web.Request, int], web.StreamResponse | None]
) -> tuple[list[tuple[str, str, Handler]], list[str]]:
    """get_export hands out a fresh ?token=N each call; on_video may answer first."""
    tokens: list[str] = []

    async def get_export(request: web.Request) -> web.StreamResponse:
        tokens.append(str(len(tokens) + 1))
        url = f"http://{request.host}/v/{request.match_info['pid']}.mp4?token={tokens[-1]}"
        return json_response({"status": "completed", "download_url": url})

    async def serve_video(request: web.Request) -> web.StreamResponse:
        early = on_video(request, int(request.query["token"]))
        if early is not None:
            return early
        start = 0
        if "Range" in request.headers:
            start = int(request.headers["Range"][6:].rstrip("-"))
            return web.Response(
                status=206,
                body=content[start:],
                headers={
                    "ETag": '"v1"',
                    "Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}",
                },
            )
        return web.Response(body=content, headers={"ETag": '"v1"'})

    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/api/v1/projects/{pid}/export", get_export),
        ("GET", "/v/{name}", serve_video),
    ]
    return routes, tokens


async def test_url_expiring_between_a_drop_and_the_resume_is_refreshed(tmp_path: Path) -> None:
    """Half the body, a drop, then 403 on the old URL: a fresh URL resumes with Range."""
    content = video(300_000)
    dropped = False

    def on_video(request: web.Request, token: int) -> web.StreamResponse | None:
        if token == 1 and dropped:
            return web.Response(status=403, text="<Error>Request has expired</Error>")
        return None

    routes, tokens = signed_routes(content, on_video)
    plain = routes[1][2]

    async def half_then_drop(request: web.Request) -> web.StreamResponse:
        nonlocal dropped
        if dropped:
            return await plain(request)
        dropped = True
        response = web.StreamResponse(headers={"ETag": '"v1"'})
        response.content_length = len(content)
        await response.prepare(request)
        await response.write(content[:150_000])
        assert request.transport is not None
        request.transport.close()
        return response

    routes[1] = ("GET", "/v/{name}", half_then_drop)
    async with serve(routes) as origin, session(origin) as babou:
        result = await babou.download_export("prj_a", tmp_path)
    assert result.ok
    assert tokens == ["1", "2"]
    assert await anyio.Path(tmp_path / "prj_a.mp4").read_bytes() == content


async def test_url_expiry_reported_as_400_is_refreshed(tmp_path: Path) -> None:
    """A URL expired as a 400 (ExpiredToken) is refreshed once; the download completes."""
    content = video(100_000)

    def on_video(request: web.Request, token: int) -> web.StreamResponse | None:
        if token == 1:
            return web.Response(
                status=400,
                text="<Error><Code>ExpiredToken</Code><Message>Token expired</Message></Error>",
                content_type="application/xml",
            )
        return None

    routes, tokens = signed_routes(content, on_video)
    async with serve(routes) as origin, session(origin) as babou:
        result = await babou.download_export("prj_a", tmp_path)
    assert result.ok
    assert tokens == ["1", "2"]
