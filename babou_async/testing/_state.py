"""
The simulator's domain state, free of I/O.

Everything time-dependent is stored as timestamps of the simulator's clock and
evaluated lazily against ``now`` when a request asks, so no background task ever
runs and thousands of projects cost only their records.
Operations validate their input the way the endpoint pages of https://docs.babou.ai
describe and raise :class:`ApiError`, which the HTTP layer turns into the error
envelope ``{"error", "code", "hint"?}``.
"""

from __future__ import annotations

import math
import random
import string
import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

from ._video import VideoContent

__all__ = [
    "ApiError",
    "Asset",
    "Chapter",
    "Export",
    "Project",
    "Prompt",
    "Store",
    "estimate",
    "iso8601",
    "parse_page",
]

_ALNUM = string.ascii_letters + string.digits
_ID_LENGTH = 21

ALLOWED_MIME_TYPES: tuple[str, ...] = (
    "video/mp4",
    "video/quicktime",
    "video/x-msvideo",
    "video/webm",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/svg+xml",
    "audio/mpeg",
    "audio/wav",
    "audio/ogg",
    "audio/aac",
)
"""MIME types the upload page lists (the asset guide's lists are subsets)."""

ASSET_STATES = ("uploading", "processing", "ready", "error")
PromptState = Literal["processing", "completed", "failed", "cancelled"]
ExportStatus = Literal["queued", "processing", "completed", "failed"]
ChapterView = Literal["created", "listed", "full"]

PROMPT_RESULT = "Chapter content generated successfully"
PROMPT_FAILURE = "Error: failed to generate chapter content"
PROMPT_CANCELLED = "Cancelled"


class ApiError(Exception):
    """
    An error answer of the simulated API.

    Args:
        status: The HTTP status.
        code: The envelope's machine-readable ``code``.
        message: The envelope's human-readable ``error``.
        hint: The optional ``hint``.
        headers: Extra response headers.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, str]:
        """
        Build the JSON error envelope.

        Returns:
            ``{"error": ..., "code": ...}`` plus ``"hint"`` when there is one.
        """
        body = {"error": self.message, "code": self.code}
        if self.hint is not None:
            body["hint"] = self.hint
        return body


def _validation(hint: str) -> ApiError:
    """Build the generic 400 of the create and submit endpoints."""
    return ApiError(400, "VALIDATION_ERROR", "Validation failed", hint)


def iso8601(unix_time: float) -> str:
    """
    Format a Unix time the way the docs' examples do.

    Args:
        unix_time: Seconds since the epoch.

    Returns:
        A UTC timestamp such as ``"2025-12-02T10:00:00Z"`` (whole seconds).
    """
    moment = datetime.fromtimestamp(math.floor(unix_time), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def estimate(seconds: float, spread: float) -> str:
    """
    Phrase an ``estimated_time`` such as ``"30-90 seconds"`` or ``"2-5 minutes"``.

    Args:
        seconds: The expected duration; the low end of the range.
        spread: Factor giving the high end of the range.

    Returns:
        The range in seconds below two minutes, in minutes from there on.
    """
    low = max(1, round(seconds))
    high = max(low + 1, math.ceil(seconds * spread))
    if low >= 120:
        return f"{low // 60}-{math.ceil(high / 60)} minutes"
    return f"{low}-{high} seconds"


def parse_page(
    query: Mapping[str, str], *, default: int = 20, maximum: int = 100
) -> tuple[int, int]:
    """
    Read and check ``limit`` and ``offset`` query parameters.

    Args:
        query: The request's query parameters.
        default: ``limit`` when the parameter is absent.
        maximum: Largest accepted ``limit``.

    Returns:
        ``(limit, offset)``.

    Raises:
        ApiError: 400 ``VALIDATION_ERROR`` for a malformed or out-of-range value.
    """
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        limit = -1
    if not 1 <= limit <= maximum:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Invalid pagination parameters",
            f"limit must be an integer between 1 and {maximum}",
        )
    try:
        offset = int(query.get("offset", 0))
    except ValueError:
        offset = -1
    if offset < 0:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Invalid pagination parameters",
            "offset must be a non-negative integer",
        )
    return limit, offset


@attrs.define(eq=False)
class Prompt:
    """A prompt submitted to a chapter; it completes at ``done_at``."""

    id: str
    content: str
    created_at: float
    done_at: float
    fails: bool = False
    cancelled: bool = False

    def state(self, now: float) -> PromptState:
        """Return the prompt's state at ``now``."""
        if self.cancelled:
            return "cancelled"
        if now < self.done_at:
            return "processing"
        return "failed" if self.fails else "completed"

    def to_json(self, now: float, wall_offset: float, *, with_status: bool) -> dict[str, Any]:
        """Serialize the prompt as GET chapter lists it."""
        state = self.state(now)
        result = {
            "processing": None,
            "completed": PROMPT_RESULT,
            "failed": PROMPT_FAILURE,
            "cancelled": PROMPT_CANCELLED,
        }[state]
        body: dict[str, Any] = {
            "id": self.id,
            "content": self.content,
            "result": result,
            "created_at": iso8601(self.created_at + wall_offset),
        }
        if with_status:
            body["status"] = "failed" if state == "cancelled" else state
        return body


@attrs.define(eq=False)
class Chapter:
    """A chapter of a project."""

    id: str
    project_id: str
    name: str
    duration: int | None
    created_at: float
    prompts: list[Prompt] = attrs.Factory(list)

    def status(self, now: float) -> Literal["ready", "processing", "error"]:
        """
        Return the chapter status at ``now``.

        A chapter with no prompt reports ``"ready"`` (the docs are silent), yet it
        does not count as completed for an export.
        """
        if not self.prompts:
            return "ready"
        state = self.prompts[-1].state(now)
        if state == "processing":
            return "processing"
        return "error" if state == "failed" else "ready"

    def in_flight(self, now: float) -> Prompt | None:
        """Return the prompt being processed at ``now``, if any."""
        if self.prompts and self.prompts[-1].state(now) == "processing":
            return self.prompts[-1]
        return None

    def completed(self, now: float) -> bool:
        """Tell whether at least one of the chapter's prompts has completed."""
        return any(prompt.state(now) == "completed" for prompt in self.prompts)

    def to_json(
        self, now: float, wall_offset: float, view: ChapterView, *, prompt_status: bool = False
    ) -> dict[str, Any]:
        """
        Serialize the chapter.

        Args:
            now: The simulator's clock.
            wall_offset: Add to a clock value to get a Unix time.
            view: ``"created"`` (create response), ``"listed"`` (adds ``status``
                and ``prompt_count``) or ``"full"`` (also adds ``prompts``).
            prompt_status: Add a ``status`` field to each prompt.

        Returns:
            The JSON object.
        """
        body: dict[str, Any] = {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "duration": self.duration,
            "created_at": iso8601(self.created_at + wall_offset),
        }
        if view != "created":
            body["status"] = self.status(now)
            body["prompt_count"] = len(self.prompts)
        if view == "full":
            body["prompts"] = [
                prompt.to_json(now, wall_offset, with_status=prompt_status)
                for prompt in self.prompts
            ]
        return body


@attrs.define(eq=False)
class Export:
    """One run of a project's export; its status follows from the timestamps."""

    id: str
    generation: int
    started_at: float
    queued_until: float
    done_at: float
    failed_chapter: int | None
    content: VideoContent

    def status(self, now: float) -> ExportStatus:
        """Return the export status at ``now``."""
        if now < self.queued_until:
            return "queued"
        if now < self.done_at:
            return "processing"
        return "completed" if self.failed_chapter is None else "failed"

    @property
    def duration_seconds(self) -> float:
        """Seconds from start to completion (queue time included)."""
        return round(self.done_at - self.started_at, 3)


@attrs.define(eq=False)
class Project:
    """A project, with its chapters and the history of its exports."""

    id: str
    account: str
    name: str
    description: str | None
    settings: dict[str, Any] | None
    created_at: float
    chapters: list[Chapter] = attrs.Factory(list)
    chapter_index: dict[str, Chapter] = attrs.Factory(dict)
    exports: list[Export] = attrs.Factory(list)

    @property
    def export(self) -> Export | None:
        """The latest export, if one was ever started."""
        return self.exports[-1] if self.exports else None

    def active_export(self, now: float) -> Export | None:
        """Return the export that is queued or processing at ``now``, if any."""
        export = self.export
        if export is not None and export.status(now) in ("queued", "processing"):
            return export
        return None

    def served_export(self, now: float) -> Export | None:
        """Return the newest export completed at ``now`` (what the download serves)."""
        for export in reversed(self.exports):
            if export.status(now) == "completed":
                return export
        return None

    def to_json(self, now: float, wall_offset: float) -> dict[str, Any]:
        """Serialize the project object of section 6.1."""
        active = self.active_export(now)
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "settings": self.settings,
            "active_export_id": None if active is None else active.id,
            "created_at": iso8601(self.created_at + wall_offset),
        }


@attrs.define(eq=False)
class Asset:
    """An uploaded asset; it is processed until ``ready_at``."""

    id: str
    account: str
    content_type: str
    size: int
    sha256: str
    created_at: float
    ready_at: float
    fails: bool = False
    width: int | None = None
    height: int | None = None
    duration: float | None = None

    def state(self, now: float) -> str:
        """Return the asset state at ``now``."""
        if now < self.ready_at:
            return "processing"
        return "error" if self.fails else "ready"

    def to_json(self, now: float, wall_offset: float) -> dict[str, Any]:
        """Serialize the asset object of section 6.8."""
        state = self.state(now)
        ready = state == "ready"
        return {
            "id": self.id,
            "name": "uploaded-file",
            "url": f"s3://babou-assets/assets/{self.id}-original" if ready else None,
            "content_type": self.content_type,
            "size": self.size,
            "state": state,
            "duration": self.duration if ready else None,
            "width": self.width if ready else None,
            "height": self.height if ready else None,
            "created_at": iso8601(self.created_at + wall_offset),
        }


def media_facts(
    content_type: str, size: int, head: bytes
) -> tuple[int | None, int | None, float | None]:
    """
    Make up plausible ``(width, height, duration)`` for an uploaded file.

    PNG and GIF dimensions are read from the file's header when it has one;
    other images are 1280x720, videos 1920x1080 at 1 Mbit/s, audio 128 kbit/s.

    Args:
        content_type: The upload's MIME type.
        size: The upload's size in bytes.
        head: The first bytes of the upload.

    Returns:
        Width and height in pixels and duration in seconds, each possibly ``None``.
    """
    kind = content_type.split("/", 1)[0]
    if kind == "image":
        if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height), None
        if head[:4] == b"GIF8" and len(head) >= 10:
            width, height = struct.unpack("<HH", head[6:10])
            return int(width), int(height), None
        return 1280, 720, None
    if kind == "video":
        return 1920, 1080, max(1.0, round(size / 125_000, 2))
    return None, None, max(1.0, round(size / 16_000, 2))


class Store:
    """
    All projects and assets of the simulator, with the API's operations.

    Args:
        ids: Random generator for identifiers.
        wall_offset: Add to a clock value to get a Unix time.
        video_key: Prefix of every video's content key (derived from the seed).
    """

    def __init__(self, *, ids: random.Random, wall_offset: float, video_key: bytes) -> None:
        self.ids = ids
        self.wall_offset = wall_offset
        self.video_key = video_key
        self.projects: dict[str, Project] = {}
        self.assets: dict[str, Asset] = {}
        self._account_projects: dict[str, list[Project]] = {}
        self._account_assets: dict[str, list[Asset]] = {}
        self._used_ids: set[str] = set()

    def new_id(self, prefix: str, length: int = _ID_LENGTH) -> str:
        """
        Draw a fresh identifier.

        Args:
            prefix: Such as ``"prj_"``.
            length: Number of random alphanumeric characters after the prefix.

        Returns:
            An identifier never returned before by this store.
        """
        while True:
            candidate = prefix + "".join(self.ids.choices(_ALNUM, k=length))
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    # Projects -----------------------------------------------------------------

    def create_project(self, account: str, body: Mapping[str, Any], now: float) -> Project:
        """
        Validate a create-project body and store the project.

        Args:
            account: The caller's account.
            body: The decoded JSON object.
            now: The simulator's clock.

        Returns:
            The new project.

        Raises:
            ApiError: 400 ``VALIDATION_ERROR``.
        """
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 30:
            raise _validation("Name must be between 1 and 30 characters")
        description = body.get("description")
        if description is not None and (
            not isinstance(description, str) or len(description) > 1000
        ):
            raise _validation("Description must be at most 1000 characters")
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            raise _validation("Settings must be an object")
        return self.add_project(account, name, description, settings, now)

    def add_project(
        self,
        account: str,
        name: str,
        description: str | None,
        settings: dict[str, Any] | None,
        now: float,
    ) -> Project:
        """
        Store a project without validation.

        Args:
            account: The owning account.
            name: The project name.
            description: The description or ``None``.
            settings: The settings object or ``None``.
            now: The simulator's clock.

        Returns:
            The new project.
        """
        project = Project(self.new_id("prj_"), account, name, description, settings, now)
        self.projects[project.id] = project
        self._account_projects.setdefault(account, []).append(project)
        return project

    def list_projects(self, account: str, limit: int, offset: int) -> tuple[list[Project], int]:
        """
        Page through an account's projects in creation order.

        Args:
            account: The caller's account.
            limit: Page size.
            offset: Index of the first project.

        Returns:
            The page and the total number of projects.
        """
        projects = self._account_projects.get(account, [])
        return projects[offset : offset + limit], len(projects)

    def get_project(self, account: str, project_id: str) -> Project:
        """
        Find a project the account may see.

        Args:
            account: The caller's account.
            project_id: The project id.

        Returns:
            The project.

        Raises:
            ApiError: 404 ``NOT_FOUND`` "Project not found".
        """
        project = self.projects.get(project_id)
        if project is None or project.account != account:
            raise ApiError(404, "NOT_FOUND", "Project not found")
        return project

    # Chapters and prompts -------------------------------------------------------

    def create_chapter(
        self, account: str, project_id: str, body: Mapping[str, Any], now: float
    ) -> Chapter:
        """
        Validate a create-chapter body and append the chapter to its project.

        Args:
            account: The caller's account.
            project_id: The project id.
            body: The decoded JSON object.
            now: The simulator's clock.

        Returns:
            The new chapter.

        Raises:
            ApiError: 404 for an unknown project, 400 ``VALIDATION_ERROR``.
        """
        project = self.get_project(account, project_id)
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 30:
            raise _validation("Name must be between 1 and 30 characters")
        duration = body.get("duration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0
        ):
            raise _validation("Duration must be a positive integer (seconds)")
        return self.add_chapter(project, name, duration, now)

    def add_chapter(self, project: Project, name: str, duration: int | None, now: float) -> Chapter:
        """
        Append a chapter to a project without validation.

        Args:
            project: The project.
            name: The chapter name.
            duration: Seconds, or ``None``.
            now: The simulator's clock.

        Returns:
            The new chapter.
        """
        chapter = Chapter(self.new_id("cht_"), project.id, name, duration, now)
        project.chapters.append(chapter)
        project.chapter_index[chapter.id] = chapter
        return chapter

    def get_chapter(self, account: str, project_id: str, chapter_id: str) -> Chapter:
        """
        Find a chapter of a project the account may see.

        Args:
            account: The caller's account.
            project_id: The project id.
            chapter_id: The chapter id.

        Returns:
            The chapter.

        Raises:
            ApiError: 404 "Project not found" or "Chapter not found".
        """
        project = self.get_project(account, project_id)
        chapter = project.chapter_index.get(chapter_id)
        if chapter is None:
            raise ApiError(404, "NOT_FOUND", "Chapter not found")
        return chapter

    def submit_prompt(
        self,
        account: str,
        project_id: str,
        chapter_id: str,
        body: Mapping[str, Any],
        now: float,
        *,
        seconds: float,
        decide_failure: Callable[[], bool],
    ) -> Prompt:
        """
        Validate a prompt and start processing it.

        With ``force`` an in-flight prompt is cancelled: it stays in the chapter's
        ``prompts`` with the result ``"Cancelled"``.

        Args:
            account: The caller's account.
            project_id: The project id.
            chapter_id: The chapter id.
            body: The decoded JSON object.
            now: The simulator's clock.
            seconds: How long processing takes.
            decide_failure: Called once the prompt is accepted; true makes it fail.

        Returns:
            The new prompt.

        Raises:
            ApiError: 404, 400 ``VALIDATION_ERROR`` or 409 ``CONFLICT``.
        """
        chapter = self.get_chapter(account, project_id, chapter_id)
        content = body.get("content")
        if not isinstance(content, str) or not 1 <= len(content) <= 5000:
            raise _validation("Content must be between 1 and 5000 characters")
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise _validation("Force must be a boolean")
        running = chapter.in_flight(now)
        if running is not None:
            if not force:
                raise ApiError(
                    409,
                    "CONFLICT",
                    "A prompt is already being processed for this chapter",
                    "Wait for the current prompt to complete or set force: true to override",
                )
            running.cancelled = True
        return self.add_prompt(chapter, content, now, seconds=seconds, fails=decide_failure())

    def add_prompt(
        self, chapter: Chapter, content: str, now: float, *, seconds: float, fails: bool = False
    ) -> Prompt:
        """
        Append a prompt to a chapter without validation.

        Args:
            chapter: The chapter.
            content: The prompt text.
            now: When it was submitted.
            seconds: How long processing takes.
            fails: Whether it ends in failure.

        Returns:
            The new prompt.
        """
        prompt = Prompt(self.new_id("int_"), content, now, now + seconds, fails=fails)
        chapter.prompts.append(prompt)
        return prompt

    # Exports ----------------------------------------------------------------------

    def start_export(
        self,
        account: str,
        project_id: str,
        now: float,
        *,
        queued_seconds: float,
        processing_seconds: float,
        size: Callable[[str], int],
        decide_failure: Callable[[Project, list[int]], int | None],
    ) -> Export:
        """
        Start a new export of a project.

        Args:
            account: The caller's account.
            project_id: The project id.
            now: The simulator's clock.
            queued_seconds: Time spent queued.
            processing_seconds: Time spent processing after that.
            size: Gives the video size for a project id.
            decide_failure: Gets the project and the 1-based numbers of its
                completed chapters; returns the number of the chapter that fails to
                render, or ``None`` for success.

        Returns:
            The new export.

        Raises:
            ApiError: 404, 409 ``CONFLICT`` while an export runs, or 400
                ``VALIDATION_ERROR`` when no chapter has a completed prompt.
        """
        project = self.get_project(account, project_id)
        if project.active_export(now) is not None:
            raise ApiError(
                409,
                "CONFLICT",
                "An export is already in progress for this project",
                "Wait for the current export to complete or check its status",
            )
        completed = [
            number
            for number, chapter in enumerate(project.chapters, start=1)
            if chapter.completed(now)
        ]
        if not completed:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Project has no completed chapters",
                "Add chapters and submit prompts before exporting",
            )
        generation = len(project.exports) + 1
        video_size = size(project.id)
        if video_size < 0:
            raise ValueError(f"video_size must not be negative, got {video_size!r}")
        key = b"%s\x00%s\x00%d" % (self.video_key, project.id.encode(), generation)
        export = Export(
            id=self.new_id("exp_"),
            generation=generation,
            started_at=now,
            queued_until=now + queued_seconds,
            done_at=now + queued_seconds + processing_seconds,
            failed_chapter=decide_failure(project, completed),
            content=VideoContent(key, video_size),
        )
        project.exports.append(export)
        return export

    def export_of(self, account: str, project_id: str) -> Export:
        """
        Find the latest export of a project.

        Args:
            account: The caller's account.
            project_id: The project id.

        Returns:
            The latest export.

        Raises:
            ApiError: 404 "Project not found" or "No export found for this project".
        """
        export = self.get_project(account, project_id).export
        if export is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                "No export found for this project",
                f"Start an export first using POST /api/v1/projects/{project_id}/export",
            )
        return export

    # Assets -------------------------------------------------------------------------

    def add_asset(self, asset: Asset) -> Asset:
        """
        Store an asset.

        Args:
            asset: The asset, with an id from :meth:`new_id`.

        Returns:
            The same asset.
        """
        self.assets[asset.id] = asset
        self._account_assets.setdefault(asset.account, []).append(asset)
        return asset

    def get_asset(self, account: str, asset_id: str) -> Asset:
        """
        Find an asset the account may see.

        Args:
            account: The caller's account.
            asset_id: The asset id.

        Returns:
            The asset.

        Raises:
            ApiError: 404 "Asset not found".
        """
        asset = self.assets.get(asset_id)
        if asset is None or asset.account != account:
            raise ApiError(404, "NOT_FOUND", "Asset not found")
        return asset

    def list_assets(
        self, account: str, query: Mapping[str, str], now: float
    ) -> tuple[list[Asset], int, int, int]:
        """
        Filter and page through an account's assets in upload order.

        Args:
            account: The caller's account.
            query: ``limit``, ``offset``, ``contentType`` and ``state`` parameters;
                ``state=failed`` is taken as ``error``.
            now: The simulator's clock.

        Returns:
            The page, the total after filtering, the limit and the offset.

        Raises:
            ApiError: 400 ``VALIDATION_ERROR`` for bad parameters.
        """
        limit, offset = parse_page(query)
        assets = self._account_assets.get(account, [])
        content_type = query.get("contentType")
        if content_type is not None:
            wanted_type = content_type.lower()
            assets = [asset for asset in assets if asset.content_type == wanted_type]
        state = query.get("state")
        if state is not None:
            wanted_state = "error" if state == "failed" else state
            if wanted_state not in ASSET_STATES:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    "Invalid state filter",
                    "state must be one of uploading, processing, ready, error (or failed)",
                )
            assets = [asset for asset in assets if asset.state(now) == wanted_state]
        return assets[offset : offset + limit], len(assets), limit, offset
