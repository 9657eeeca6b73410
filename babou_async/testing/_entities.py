"""
The simulator's resources: projects, chapters, prompts, exports and assets, free of I/O.

Each record stores timestamps of the simulator's clock and works out its state
lazily against ``now``, so nothing runs in the background; ``to_json`` gives the
objects of the endpoint pages of https://docs.babou.ai.
:class:`ApiError` is the error answer every layer raises and the gate turns into
the envelope ``{"error", "code", "hint"?}``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

from ._video import VideoContent

__all__ = [
    "ALLOWED_MIME_TYPES",
    "ASSET_STATES",
    "ApiError",
    "Asset",
    "Chapter",
    "Export",
    "Project",
    "Prompt",
    "estimate",
    "iso8601",
    "media_facts",
]

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
