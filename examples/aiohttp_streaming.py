"""
A web app that streams finished exports to its clients, straight from Babou.

    python examples/aiohttp_streaming.py

The application holds one :class:`~babou_async.BabouSession` for its whole life, opened
and closed in a ``cleanup_ctx``, on an ``aiohttp.ClientSession`` the app owns. The video
handler pipes :meth:`~babou_async.BabouSession.iter_export_bytes` into the response: the
video never touches the server's disk, and a connection dropped by the download host is
resumed with a ``Range`` request without the browser noticing.

With ``BABOU_API_KEY`` set it serves on http://127.0.0.1:8080/videos/{project_id} until
Ctrl-C. Without it, it runs itself against the bundled simulator: it starts the app on a
free port, fetches one video through it and checks the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from babou_async import BabouError, BabouSession, ExportStatus, NotFoundError, PollPolicy
from babou_async.testing import FakeBabou, Faults

BABOU = web.AppKey("babou", BabouSession)


def babou_context(
    api_key: str | None = None, base_url: str | None = None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Build a ``cleanup_ctx`` that opens one BabouSession for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # The app owns the HTTP session (and could share it with other clients); the
        # BabouSession uses it and leaves closing it to its owner.
        async with (
            aiohttp.ClientSession() as http,
            BabouSession(api_key, base_url=base_url, http_session=http) as babou,
        ):
            app[BABOU] = babou
            yield

    return ctx


async def video(request: web.Request) -> web.StreamResponse:
    """``GET /videos/{project_id}``: the project's exported video, streamed."""
    babou = request.app[BABOU]
    project_id = request.match_info["project_id"]
    try:
        export = await babou.get_export(project_id)
    except NotFoundError:
        raise web.HTTPNotFound(text=f"no export for {project_id}\n") from None
    except BabouError as exc:  # a bad ID, Babou unreachable...
        raise web.HTTPBadGateway(text=f"{exc}\n") from None
    if export.status is not ExportStatus.COMPLETED:
        raise web.HTTPConflict(text=f"the export is {export.status}, not completed\n")

    response = web.StreamResponse(
        headers={
            "Content-Type": "video/mp4",
            "Content-Disposition": f'attachment; filename="{project_id}.mp4"',
        }
    )
    await response.prepare(request)
    # aclosing: if the client goes away mid-video, the download from Babou stops at once.
    async with contextlib.aclosing(babou.iter_export_bytes(project_id)) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response


def make_app(api_key: str | None = None, base_url: str | None = None) -> web.Application:
    """Build the application."""
    app = web.Application()
    app.cleanup_ctx.append(babou_context(api_key, base_url))
    app.router.add_get("/videos/{project_id}", video)
    return app


async def self_test() -> None:
    """Run the app against a simulator whose download host cuts connections."""
    async with FakeBabou(video_size=3_000_000, faults=Faults(drop_rate=0.8)) as fake:
        project_id = fake.seed_project("Streamed video")
        async with BabouSession(
            fake.api_key, base_url=fake.base_url, poll=PollPolicy.fast()
        ) as babou:
            await babou.start_export(project_id)
            await babou.wait_for_export(project_id)

        runner = web.AppRunner(make_app(fake.api_key, fake.base_url))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as client:
                url = f"http://127.0.0.1:{port}/videos/{project_id}"
                async with client.get(url) as response:
                    body = await response.read()
                    print(f"GET /videos/{project_id}: {response.status}, {len(body):,} bytes")
                async with client.get(f"http://127.0.0.1:{port}/videos/prj_unknown") as response:
                    print(f"GET /videos/prj_unknown: {response.status}")
        finally:
            await runner.cleanup()
        dropped = len([r for r in fake.find_requests(origin="asset") if r.dropped])
        identical = body == fake.video_bytes(project_id)
        print(f"Identical to the export: {identical} (after {dropped} cut connections)")


if __name__ == "__main__":
    if os.environ.get("BABOU_API_KEY"):
        web.run_app(make_app(), host="127.0.0.1", port=8080)
    else:
        asyncio.run(self_test())
