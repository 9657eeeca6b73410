"""
A FastAPI app that starts exports, follows them live and serves the videos, seekable.

    python examples/fastapi_app.py --port 8000

Routes:

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
by the ``lifespan``. With ``BABOU_API_KEY`` set it talks to Babou; without it, it starts
the bundled simulator (8 MiB videos) with three projects ready to export.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from babou_async import (
    BabouError,
    BabouSession,
    ConflictError,
    Export,
    ExportError,
    ExportNotReadyError,
    ExportStatus,
    ExportStream,
    NotFoundError,
    PollPolicy,
    RangeNotSatisfiableError,
    ValidationError,
)
from babou_async.testing import FakeBabou

VIDEO_SIZE = 8 * 1024 * 1024


@asynccontextmanager
async def simulator() -> AsyncIterator[FakeBabou]:
    """The bundled simulator, with three projects whose chapters are ready to export."""
    async with FakeBabou(
        video_size=VIDEO_SIZE, export_queued_seconds=0.3, export_processing_seconds=1.0
    ) as fake:
        for n in range(1, 4):
            fake.seed_project(f"Example {n}", chapters=2)
        yield fake


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open one BabouSession for the app's lifetime (on the simulator without a key)."""
    async with AsyncExitStack() as stack:
        if os.environ.get("BABOU_API_KEY"):
            babou = BabouSession()  # the key, and BABOU_BASE_URL, from the environment
        else:
            fake = await stack.enter_async_context(simulator())
            babou = BabouSession(fake.api_key, base_url=fake.base_url, poll=PollPolicy.fast())
        app.state.babou = await stack.enter_async_context(babou)
        yield


app = FastAPI(lifespan=lifespan)


def export_json(export: Export) -> dict[str, object]:
    """What the routes tell about an export."""
    return {
        "project_id": export.project_id,
        "status": str(export.status),
        "error": export.error,
        "estimated_time": export.estimated_time,
    }


@app.exception_handler(BabouError)
async def babou_error(_request: Request, exc: BabouError) -> Response:
    """Answer Babou's errors with the status that says what went wrong."""
    headers = {}
    if isinstance(exc, RangeNotSatisfiableError):
        status, headers = 416, {"Content-Range": f"bytes */{exc.size}"}
    elif isinstance(exc, ValidationError):
        status = 400
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, (ConflictError, ExportError)):
        status = 409  # already running, failed, or not finished
    else:
        status = 502  # Babou unreachable, or answering nonsense
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


@app.get("/projects")
async def projects(request: Request) -> list[str]:
    """The IDs of the account's projects (the first 100)."""
    ids = []
    async for project in request.app.state.babou.list_projects():
        ids.append(project.id)
        if len(ids) == 100:
            break
    return ids


@app.post("/exports/{project_id}", status_code=202)
async def start_export(project_id: str, request: Request) -> dict[str, object]:
    """Start rendering the project's video."""
    return export_json(await request.app.state.babou.start_export(project_id))


@app.get("/exports/{project_id}")
async def export_status(project_id: str, request: Request) -> dict[str, object]:
    """The export's status."""
    return export_json(await request.app.state.babou.get_export(project_id))


@app.get("/exports/{project_id}/events")
async def export_events(project_id: str, request: Request) -> StreamingResponse:
    """Server-Sent Events: one per change of status, ending at a terminal one."""
    babou: BabouSession = request.app.state.babou
    await babou.get_export(project_id)  # a 404 before the stream starts, not in it

    async def events() -> AsyncIterator[str]:
        async for export in babou.watch_export(project_id):
            yield f"event: status\ndata: {json.dumps(export_json(export))}\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@app.api_route("/videos/{project_id}.mp4", methods=["GET", "HEAD"])
async def video(project_id: str, request: Request) -> Response:
    """The finished video, whole (200) or the asked range (206); HEAD for its headers."""
    babou: BabouSession = request.app.state.babou
    stack = AsyncExitStack()
    # Two small requests: the export's URL and the video's size; no byte of it yet.
    opened = await stack.enter_async_context(
        babou.open_export(project_id, range=request.headers.get("Range"))
    )
    if request.method == "HEAD":
        await stack.aclose()
        return Response(status_code=opened.status, headers=opened.headers)
    return StreamingResponse(body(opened, stack), status_code=opened.status, headers=opened.headers)


async def body(video: ExportStream, stack: AsyncExitStack) -> AsyncIterator[bytes]:
    """The video's bytes; the stream is closed when the response ends, however it ends."""
    async with stack:
        async for chunk in video.iter_bytes():
            yield chunk


@app.get("/videos/{project_id}/redirect", status_code=307)
async def video_redirect(project_id: str, request: Request) -> RedirectResponse:
    """A 307 to the signed URL: the client downloads from Babou's host, not through us."""
    export = await request.app.state.babou.get_export(project_id)
    if export.status is not ExportStatus.COMPLETED or not export.download_url:
        raise ExportNotReadyError(project_id, export.status_raw)
    # The URL expires: never let a cache keep the redirect.
    headers = {"Cache-Control": "no-store"}
    return RedirectResponse(export.download_url, status_code=307, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    print(f"Serving on http://127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
