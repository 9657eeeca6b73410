"""
An aiohttp.web app that starts exports, follows them live and serves the videos, seekable.

    python examples/aiohttp_app.py --port 8080

The same routes as ``examples/fastapi_app.py``:

* ``GET /projects``: the project IDs, as JSON;
* ``POST /exports/{project_id}``: start an export (``202``);
* ``GET /exports/{project_id}``: its status, as JSON;
* ``GET /exports/{project_id}/events``: Server-Sent Events, one per change of status,
  ending at ``completed`` or ``failed``;
* ``GET`` and ``HEAD /videos/{project_id}.mp4``: the finished video, with
  ``Content-Length`` and ``Accept-Ranges: bytes``; ``206`` for a ``Range`` request (a
  ``<video>`` tag seeks with them), ``416`` for a range outside the video;
* ``GET /videos/{project_id}/redirect``: the alternative, a ``307`` to the signed URL on
  Babou's download host.

The app holds one :class:`~babou_async.BabouSession` for its whole life, opened and closed
in a ``cleanup_ctx``. With ``BABOU_API_KEY`` set it talks to Babou; without it, it starts
the bundled simulator (8 MiB videos) with three projects ready to export.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

from aiohttp import web

from babou_async import (
    BabouError,
    BabouSession,
    ConflictError,
    Export,
    ExportError,
    ExportNotReadyError,
    ExportStatus,
    NotFoundError,
    PollPolicy,
    RangeNotSatisfiableError,
    ValidationError,
)
from babou_async.testing import FakeBabou

VIDEO_SIZE = 8 * 1024 * 1024
BABOU = web.AppKey("babou", BabouSession)


@asynccontextmanager
async def simulator() -> AsyncIterator[FakeBabou]:
    """The bundled simulator, with three projects whose chapters are ready to export."""
    async with FakeBabou(
        video_size=VIDEO_SIZE, export_queued_seconds=0.3, export_processing_seconds=1.0
    ) as fake:
        for n in range(1, 4):
            fake.seed_project(f"Example {n}", chapters=2)
        yield fake


async def babou_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open one BabouSession for the app's lifetime (on the simulator without a key)."""
    async with AsyncExitStack() as stack:
        if os.environ.get("BABOU_API_KEY"):
            babou = BabouSession()  # the key, and BABOU_BASE_URL, from the environment
        else:
            fake = await stack.enter_async_context(simulator())
            babou = BabouSession(fake.api_key, base_url=fake.base_url, poll=PollPolicy.fast())
        app[BABOU] = await stack.enter_async_context(babou)
        yield


def export_json(export: Export) -> dict[str, object]:
    """What the routes tell about an export."""
    return {
        "project_id": export.project_id,
        "status": str(export.status),
        "error": export.error,
        "estimated_time": export.estimated_time,
    }


def status_of(exc: BabouError) -> type[web.HTTPException]:
    """The HTTP answer to one of Babou's errors."""
    if isinstance(exc, RangeNotSatisfiableError):
        return web.HTTPRequestRangeNotSatisfiable
    if isinstance(exc, ValidationError):
        return web.HTTPBadRequest
    if isinstance(exc, NotFoundError):
        return web.HTTPNotFound
    if isinstance(exc, (ConflictError, ExportError)):
        return web.HTTPConflict  # already running, failed, or not finished
    return web.HTTPBadGateway  # Babou unreachable, or answering nonsense


@contextmanager
def http_errors() -> Iterator[None]:
    """
    Turn Babou's errors into HTTP answers, in the part of a handler before the response.

    Once a response has started, an error can only cut it short: let it propagate, and
    aiohttp closes the connection.
    """
    try:
        yield
    except BabouError as exc:
        headers = {}
        if isinstance(exc, RangeNotSatisfiableError):
            headers["Content-Range"] = f"bytes */{exc.size}"
        body = json.dumps({"error": str(exc)})
        raise status_of(exc)(text=body, content_type="application/json", headers=headers) from None


async def projects(request: web.Request) -> web.Response:
    """``GET /projects``: the IDs of the account's projects (the first 100)."""
    ids = []
    with http_errors():
        async for project in request.app[BABOU].list_projects():
            ids.append(project.id)
            if len(ids) == 100:
                break
    return web.json_response(ids)


async def start_export(request: web.Request) -> web.Response:
    """``POST /exports/{project_id}``: start rendering the project's video."""
    with http_errors():
        export = await request.app[BABOU].start_export(request.match_info["project_id"])
    return web.json_response(export_json(export), status=202)


async def export_status(request: web.Request) -> web.Response:
    """``GET /exports/{project_id}``: the export's status."""
    with http_errors():
        export = await request.app[BABOU].get_export(request.match_info["project_id"])
    return web.json_response(export_json(export))


async def export_events(request: web.Request) -> web.StreamResponse:
    """``GET /exports/{project_id}/events``: one event per change of status, to the last."""
    babou, project_id = request.app[BABOU], request.match_info["project_id"]
    with http_errors():
        await babou.get_export(project_id)  # a 404 before the stream starts, not in it
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    async for export in babou.watch_export(project_id):
        data = json.dumps(export_json(export))
        await response.write(f"event: status\ndata: {data}\n\n".encode())
    await response.write_eof()
    return response


async def video(request: web.Request) -> web.StreamResponse:
    """``GET``/``HEAD /videos/{project_id}.mp4``: the video, whole (200) or a range (206)."""
    babou, project_id = request.app[BABOU], request.match_info["project_id"]
    async with AsyncExitStack() as stack:
        with http_errors():
            # Two small requests: the export's URL and the video's size; no byte of it yet.
            opened = await stack.enter_async_context(
                babou.open_export(project_id, range=request.headers.get("Range"))
            )
        response = web.StreamResponse(status=opened.status, headers=opened.headers)
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in opened.iter_bytes():
                await response.write(chunk)
    await response.write_eof()
    return response


async def video_redirect(request: web.Request) -> web.StreamResponse:
    """``GET /videos/{project_id}/redirect``: a 307 to the signed URL, not through us."""
    project_id = request.match_info["project_id"]
    with http_errors():
        export = await request.app[BABOU].get_export(project_id)
        if export.status is not ExportStatus.COMPLETED or not export.download_url:
            raise ExportNotReadyError(project_id, export.status_raw)
    # The URL expires: never let a cache keep the redirect.
    raise web.HTTPTemporaryRedirect(export.download_url, headers={"Cache-Control": "no-store"})


def make_app() -> web.Application:
    """Build the application."""
    app = web.Application()
    app.cleanup_ctx.append(babou_ctx)
    app.router.add_get("/projects", projects)
    app.router.add_post("/exports/{project_id}", start_export)
    app.router.add_get("/exports/{project_id}", export_status)
    app.router.add_get("/exports/{project_id}/events", export_events)
    app.router.add_get(r"/videos/{project_id}.mp4", video)  # HEAD too
    app.router.add_get("/videos/{project_id}/redirect", video_redirect)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, default=8080)
    port = parser.parse_args().port
    print(f"Serving on http://127.0.0.1:{port}", flush=True)
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
