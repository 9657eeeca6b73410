"""
The simulator's API endpoints: the twelve routes under ``/api/v1``, over the store.

Each handler reads its request, calls one :class:`~babou_async.testing._state.Store`
operation and answers JSON; errors are raised as
:class:`~babou_async.testing._entities.ApiError` for the gate to turn into the envelope.
The caller's account comes from the gate through
:func:`~babou_async.testing._http.current_context`.
Section numbers refer to https://docs.babou.ai/api-reference/overview.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from ._entities import ALLOWED_MIME_TYPES, ApiError, Asset, Project, estimate, media_facts
from ._faults import Draws, Faults
from ._http import API_PREFIX, RequestContext, current_context
from ._state import Store, parse_page

__all__ = ["MIB", "ApiEndpoints", "ApiKnobs", "read_json", "too_large"]

MIB = 1024 * 1024
"""One mebibyte."""

_JSON_LIMIT = MIB
_HEAD_SIZE = 32


class ApiKnobs(Protocol):
    """The settings of :class:`~babou_async.testing.FakeBabou` the endpoints read live."""

    faults: Faults
    prompt_seconds: float
    asset_seconds: float
    export_queued_seconds: float
    export_processing_seconds: float | Callable[[str], float]
    export_video_size: int | Callable[[str], int]
    list_projects_shape: Literal["envelope", "bare"]
    max_upload_bytes: int
    create_status: int
    accepted_status: int
    prompt_status_field: bool

    def download_url(self, project_id: str) -> str:
        """Sign a fresh download URL for a project."""
        ...


def _json(data: Any, status: int = 200) -> web.Response:
    """Build a JSON response."""
    return web.json_response(data, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """
    Read and decode a JSON object body (an empty body reads as ``{}``).

    Args:
        request: The request; its body size is noted in the request context.

    Returns:
        The decoded object.

    Raises:
        ApiError: 413 for a body over 1 MiB, 400 ``VALIDATION_ERROR`` for another
            ``Content-Type``, broken JSON or JSON that is not an object.
    """
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, "FILE_TOO_LARGE", "Request body too large", "JSON bodies are limited to 1 MiB"
        ) from None
    current_context().body_size = len(raw)
    if not raw.strip():
        return {}
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Content-Type must be application/json",
            "Send the body as JSON with Content-Type: application/json",
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(
            400, "VALIDATION_ERROR", "Invalid JSON in request body", "Send a JSON object"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400, "VALIDATION_ERROR", "Validation failed", "Request body must be a JSON object"
        )
    return data


def too_large(limit: int) -> ApiError:
    """
    Build the 413 of an oversized upload.

    Args:
        limit: The largest accepted upload, in bytes.

    Returns:
        The error, naming the limit in MB when it is a whole number of MiB.
    """
    shown = f"{limit // MIB}MB" if limit % MIB == 0 else f"{limit} bytes"
    return ApiError(
        413,
        "FILE_TOO_LARGE",
        f"File size exceeds maximum allowed size of {shown}",
        "Compress or split the file before uploading",
    )


def _upload_type(header: str) -> str:
    """Check an upload's ``Content-Type`` header and return its MIME type."""
    raw_type = header.strip()
    if not raw_type:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Content-Type header is required",
            "Set Content-Type to the file's MIME type, such as video/mp4",
        )
    content_type = raw_type.split(";")[0].strip().lower()
    if content_type not in ALLOWED_MIME_TYPES:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"Unsupported content type: {content_type}",
            "Supported types: " + ", ".join(ALLOWED_MIME_TYPES),
        )
    return content_type


class ApiEndpoints:
    """
    The API's handlers, reading the simulator's settings at every request.

    Args:
        knobs: The simulator whose public settings apply.
        store: The domain state.
        clock: The simulator's clock.
        wall_offset: Add to a clock value to get a Unix time.
        draws: The seeded stream of fault decisions.
    """

    def __init__(
        self,
        knobs: ApiKnobs,
        *,
        store: Store,
        clock: Callable[[], float],
        wall_offset: float,
        draws: Draws,
    ) -> None:
        self._knobs = knobs
        self._store = store
        self._clock = clock
        self._wall_offset = wall_offset
        self._draws = draws

    def app(self, middleware: Middleware) -> web.Application:
        """Create the API application, its requests going through ``middleware``."""
        app = web.Application(middlewares=[middleware], client_max_size=_JSON_LIMIT)
        prefix = API_PREFIX
        router = app.router
        router.add_post(f"{prefix}/projects", self._create_project)
        router.add_get(f"{prefix}/projects", self._list_projects, allow_head=False)
        router.add_get(f"{prefix}/projects/{{project_id}}", self._get_project, allow_head=False)
        chapters = f"{prefix}/projects/{{project_id}}/chapters"
        router.add_post(chapters, self._create_chapter)
        router.add_get(chapters, self._list_chapters, allow_head=False)
        router.add_get(f"{chapters}/{{chapter_id}}", self._get_chapter, allow_head=False)
        router.add_post(f"{chapters}/{{chapter_id}}/prompt", self._submit_prompt)
        router.add_post(f"{prefix}/assets", self._upload_asset)
        router.add_get(f"{prefix}/assets", self._list_assets, allow_head=False)
        router.add_get(f"{prefix}/assets/{{asset_id}}", self._get_asset, allow_head=False)
        export = f"{prefix}/projects/{{project_id}}/export"
        router.add_post(export, self._start_export)
        router.add_get(export, self._export_status, allow_head=False)
        return app

    @property
    def _now(self) -> float:
        """The clock's current value."""
        return self._clock()

    # Projects and chapters -------------------------------------------------------------

    async def _create_project(self, request: web.Request) -> web.StreamResponse:
        """POST /projects (section 6.1)."""
        body = await read_json(request)
        project = self._store.create_project(current_context().account, body, self._now)
        return _json(project.to_json(self._now, self._wall_offset), self._knobs.create_status)

    async def _list_projects(self, request: web.Request) -> web.StreamResponse:
        """GET /projects (section 6.2, shape undocumented)."""
        account = current_context().account
        now = self._now
        query = dict(request.query)
        bare = self._knobs.list_projects_shape == "bare"
        if bare and "limit" not in query and "offset" not in query:
            projects, _ = self._store.list_projects(account, len(self._store.projects), 0)
            return _json([project.to_json(now, self._wall_offset) for project in projects])
        limit, offset = parse_page(query)
        page, total = self._store.list_projects(account, limit, offset)
        items = [project.to_json(now, self._wall_offset) for project in page]
        if self._knobs.list_projects_shape == "bare":
            return _json(items)
        return _json(
            {"projects": items, "pagination": {"limit": limit, "offset": offset, "total": total}}
        )

    async def _get_project(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId} (section 6.3)."""
        project = self._store.get_project(
            current_context().account, request.match_info["project_id"]
        )
        return _json(project.to_json(self._now, self._wall_offset))

    async def _create_chapter(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/chapters (section 6.4)."""
        project_id = request.match_info["project_id"]
        account = current_context().account
        self._store.get_project(account, project_id)
        body = await read_json(request)
        chapter = self._store.create_chapter(account, project_id, body, self._now)
        return _json(
            chapter.to_json(self._now, self._wall_offset, "created"), self._knobs.create_status
        )

    async def _list_chapters(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/chapters (section 6.5)."""
        project = self._store.get_project(
            current_context().account, request.match_info["project_id"]
        )
        now = self._now
        chapters = [
            chapter.to_json(now, self._wall_offset, "listed") for chapter in project.chapters
        ]
        return _json({"project_id": project.id, "chapters": chapters})

    async def _get_chapter(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/chapters/{chapterId} (section 6.6)."""
        chapter = self._store.get_chapter(
            current_context().account,
            request.match_info["project_id"],
            request.match_info["chapter_id"],
        )
        return _json(
            chapter.to_json(
                self._now, self._wall_offset, "full", prompt_status=self._knobs.prompt_status_field
            )
        )

    async def _submit_prompt(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/chapters/{chapterId}/prompt (section 6.7)."""
        account = current_context().account
        project_id = request.match_info["project_id"]
        chapter_id = request.match_info["chapter_id"]
        self._store.get_chapter(account, project_id, chapter_id)
        body = await read_json(request)
        prompt = self._store.submit_prompt(
            account,
            project_id,
            chapter_id,
            body,
            self._now,
            seconds=self._knobs.prompt_seconds,
            decide_failure=lambda: self._draws.chance(self._knobs.faults.prompt_fail_rate),
        )
        return _json(
            {
                "prompt_id": prompt.id,
                "status": "processing",
                "message": "Prompt processing started",
                "estimated_time": estimate(self._knobs.prompt_seconds, 3),
            },
            self._knobs.accepted_status,
        )

    # Assets ---------------------------------------------------------------------------

    async def _receive(
        self, request: web.Request, context: RequestContext
    ) -> tuple[int, str, bytes]:
        """Stream an upload's body; return its size, SHA-256 and first bytes."""
        digest = hashlib.sha256()
        size = 0
        head = b""
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            context.body_size = size
            if size > self._knobs.max_upload_bytes:
                raise too_large(self._knobs.max_upload_bytes)
            digest.update(chunk)
            if len(head) < _HEAD_SIZE:
                head += chunk[: _HEAD_SIZE - len(head)]
        context.body_size = size
        return size, digest.hexdigest(), head

    async def _upload_asset(self, request: web.Request) -> web.StreamResponse:
        """POST /assets (section 6.8): a raw body, streamed and hashed."""
        context = current_context()
        content_type = _upload_type(request.headers.get("Content-Type", ""))
        declared = request.content_length
        if declared is not None and declared > self._knobs.max_upload_bytes:
            raise too_large(self._knobs.max_upload_bytes)
        size, sha256, head = await self._receive(request, context)
        if size == 0:
            raise ApiError(
                400, "VALIDATION_ERROR", "File is empty", "Send the file's bytes as the body"
            )
        if self._draws.chance(self._knobs.faults.upload_fail_rate):
            raise ApiError(500, "UPLOAD_FAILED", "Failed to upload file to storage")
        now = self._now
        width, height, duration = media_facts(content_type, size, head)
        asset = Asset(
            id=self._store.new_id("ast_"),
            account=context.account,
            content_type=content_type,
            size=size,
            sha256=sha256,
            created_at=now,
            ready_at=now + self._knobs.asset_seconds,
            fails=self._draws.chance(self._knobs.faults.asset_fail_rate),
            width=width,
            height=height,
            duration=duration,
        )
        self._store.add_asset(asset)
        return _json(asset.to_json(now, self._wall_offset), self._knobs.create_status)

    async def _list_assets(self, request: web.Request) -> web.StreamResponse:
        """GET /assets (section 6.9)."""
        now = self._now
        page, total, limit, offset = self._store.list_assets(
            current_context().account, dict(request.query), now
        )
        return _json(
            {
                "assets": [asset.to_json(now, self._wall_offset) for asset in page],
                "pagination": {"limit": limit, "offset": offset, "total": total},
            }
        )

    async def _get_asset(self, request: web.Request) -> web.StreamResponse:
        """GET /assets/{assetId} (section 6.10)."""
        asset = self._store.get_asset(current_context().account, request.match_info["asset_id"])
        return _json(asset.to_json(self._now, self._wall_offset))

    # Exports --------------------------------------------------------------------------

    def _export_outcome(self, project: Project, completed: list[int]) -> int | None:
        """Decide whether a new export fails, and at which chapter."""
        faults = self._knobs.faults
        if project.id in faults.fail_exports or self._draws.chance(faults.export_fail_rate):
            return self._draws.choice(completed)
        return None

    def _size_for(self, project_id: str) -> int:
        """Return the video size of a new export."""
        size = self._knobs.export_video_size
        return size(project_id) if callable(size) else size

    async def _start_export(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/export (section 6.11)."""
        now = self._now
        project_id = request.match_info["project_id"]
        processing = self._knobs.export_processing_seconds
        if callable(processing):
            processing = processing(project_id)
        export = self._store.start_export(
            current_context().account,
            project_id,
            now,
            queued_seconds=self._knobs.export_queued_seconds,
            processing_seconds=processing,
            size=self._size_for,
            decide_failure=self._export_outcome,
        )
        return _json(
            {
                "status": export.status(now),
                "message": "Export started",
                "estimated_time": estimate(self._knobs.export_queued_seconds + processing, 2.5),
            },
            self._knobs.accepted_status,
        )

    async def _export_status(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/export (section 6.12)."""
        project_id = request.match_info["project_id"]
        export = self._store.export_of(current_context().account, project_id)
        status = export.status(self._now)
        if status == "completed":
            return _json(
                {
                    "status": status,
                    "download_url": self._knobs.download_url(project_id),
                    "duration_seconds": export.duration_seconds,
                }
            )
        if status == "failed":
            return _json(
                {"status": status, "error": f"Failed to render chapter {export.failed_chapter}"}
            )
        return _json({"status": status, "download_url": None})
