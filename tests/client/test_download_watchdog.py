"""
Downloads always end: the library's own watchdog and size ceiling, against raw TCP hosts.

A raw socket server lets a test send what aiohttp.web never would: a malformed chunk size
after the headers (in which state aiohttp's own ``sock_read`` timer does not fire), or an
endless chunked body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from babou_async import BabouSession, DownloadError, IntegrityError, RetryPolicy, Timeouts

pytestmark = pytest.mark.anyio

KEY = "sk-bab-watchdogSECRETkey0123456789"
Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_host(write: Writer) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 answering every connection with ``write``; yields its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await write(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v.mp4"
    finally:
        server.close()


@asynccontextmanager
async def api_pointing_to(video_url: str) -> AsyncIterator[str]:
    """A Babou API whose every export is completed, with ``video_url`` to download."""

    async def get_export(_request: web.Request) -> web.Response:
        body = {"status": "completed", "download_url": video_url}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/projects/{pid}/export", get_export)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1"
    finally:
        await runner.cleanup()


def session(base_url: str) -> BabouSession:
    """A session with a 0.3 s read timeout and two attempts."""
    return BabouSession(
        KEY,
        base_url=base_url,
        timeout=Timeouts(read=0.3),
        retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01),
    )


async def malformed_chunk(writer: asyncio.StreamWriter) -> None:
    """Headers of a chunked body, then a chunk size that is not hex, then silence."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz")
    await writer.drain()
    await anyio.sleep(30)


async def endless(writer: asyncio.StreamWriter) -> None:
    """A chunked body that never ends."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    while True:
        writer.write(chunk)
        await writer.drain()


async def silent_after_headers(writer: asyncio.StreamWriter) -> None:
    """Headers with a Content-Length, then nothing."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    await writer.drain()
    await anyio.sleep(30)


@pytest.mark.parametrize("write", [malformed_chunk, silent_after_headers], ids=lambda w: w.__name__)
async def test_a_stalled_body_ends_in_download_error(tmp_path: Path, write: Writer) -> None:
    """However the body stalls, the download gives up after the read timeout per attempt."""
    async with raw_host(write) as url, api_pointing_to(url) as api, session(api) as babou:
        with anyio.fail_after(10), pytest.raises(DownloadError):
            await babou.download_export("prj_a", tmp_path)
        with anyio.fail_after(10), pytest.raises(DownloadError):
            async for _ in babou.iter_export_bytes("prj_a"):
                pass
    assert not await anyio.Path(tmp_path / "prj_a.mp4").exists()


async def test_an_endless_body_is_cut_at_the_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body without Content-Length that never ends fails at the ceiling; nothing is kept."""
    monkeypatch.setattr("babou_async._download.MAX_DOWNLOAD_BYTES", 3 * 1024 * 1024)
    async with raw_host(endless) as url, api_pointing_to(url) as api, session(api) as babou:
        with anyio.fail_after(20), pytest.raises(IntegrityError, match="exceeds"):
            await babou.download_export("prj_a", tmp_path)
    assert [] == [p.name async for p in anyio.Path(tmp_path).iterdir()]


async def test_an_announced_size_over_the_ceiling_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Content-Length over the ceiling fails before the body is read."""
    monkeypatch.setattr("babou_async._download.MAX_DOWNLOAD_BYTES", 500)
    async with (
        raw_host(silent_after_headers) as url,
        api_pointing_to(url) as api,
        session(api) as babou,
    ):
        with anyio.fail_after(5), pytest.raises(IntegrityError, match="ceiling"):
            await babou.download_export("prj_a", tmp_path)
