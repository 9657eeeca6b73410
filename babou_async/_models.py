"""
The domain objects returned to users: frozen attrs classes, no I/O.

Status fields are enums that tolerate values the docs do not list: an unknown status
maps to the ``UNKNOWN`` member and the server's string is kept in ``status_raw`` /
``state_raw``, so that Babou adding a status never breaks a client.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Any

import attrs

from ._exceptions import BabouError

__all__ = [
    "Asset",
    "AssetState",
    "Chapter",
    "ChapterStatus",
    "DownloadResult",
    "Export",
    "ExportResult",
    "ExportStatus",
    "Page",
    "Project",
    "Prompt",
    "PromptStatus",
    "PromptSubmission",
]


# The docs use "error" and "failed", "ready" and "completed" interchangeably across
# resources (babou-api.md section 7); accept either spelling for each resource.
_SYNONYMS: dict[str, dict[str, str]] = {
    "ExportStatus": {"error": "failed", "ready": "completed", "complete": "completed"},
    "ChapterStatus": {"completed": "ready", "failed": "error"},
    "PromptStatus": {"error": "failed", "ready": "completed"},
    "AssetState": {"failed": "error", "completed": "ready"},
}


# Each enum's members by their exact value, for the common case of :meth:`_TolerantEnum.parse`.
_EXACT: dict[type, dict[str, Any]] = {}


class _TolerantEnum(str, enum.Enum):
    """A string enum whose lookup maps synonyms and unknown values instead of failing."""

    @classmethod
    def parse(cls, raw: object) -> Any:
        """Map a raw server value to a member: exact, then synonym, then ``UNKNOWN``."""
        exact = _EXACT.get(cls)
        if exact is None:
            exact = _EXACT[cls] = {member.value: member for member in cls}
        if isinstance(raw, str) and raw in exact:  # every poll: a dict lookup, no Enum call
            return exact[raw]
        text = str(raw).strip().lower() if raw is not None else ""
        text = _SYNONYMS.get(cls.__name__, {}).get(text, text)
        try:
            return cls(text)
        except ValueError:
            return cls("unknown")

    def __str__(self) -> str:
        return str(self.value)


class ExportStatus(_TolerantEnum):
    """
    Status of a project's export.

    Documented values: ``queued``, ``processing``, ``completed``, ``failed``
    (https://docs.babou.ai/api-reference/exports/status). ``UNKNOWN`` stands for anything
    else; :attr:`Export.status_raw` keeps the server's string.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the export will not change status on its own any more."""
        return self in (ExportStatus.COMPLETED, ExportStatus.FAILED)


class ChapterStatus(_TolerantEnum):
    """
    Status of a chapter, derived by the server from its prompts.

    Documented: ``ready``, ``processing``, ``error``; the MCP docs also show ``completed``,
    which is read as ``ready`` (and ``failed`` as ``error``).
    """

    READY = "ready"
    PROCESSING = "processing"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether no prompt of the chapter is in flight."""
        return self in (ChapterStatus.READY, ChapterStatus.ERROR)


class PromptStatus(_TolerantEnum):
    """Status returned when a prompt is submitted: ``processing``, ``completed``, ``failed``."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class AssetState(_TolerantEnum):
    """
    Processing state of an uploaded asset: ``uploading``, ``processing``, ``ready``, ``error``.

    The list-assets page spells the failure ``failed``; it is read as ``error``.
    """

    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the asset will not change state on its own any more."""
        return self in (AssetState.READY, AssetState.ERROR)


@attrs.frozen(kw_only=True)
class Project:
    """
    A video project (https://docs.babou.ai/api-reference/projects/get).

    Attributes:
        id: ``prj_...``.
        name: 1-30 characters.
        description: Optional description.
        settings: Reserved by Babou for future use.
        active_export_id: The export in progress, if any.
        created_at: Creation time, timezone-aware.
    """

    id: str
    name: str
    description: str | None = None
    settings: dict[str, Any] | None = None
    active_export_id: str | None = None
    created_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Prompt:
    """
    A prompt submitted to a chapter, as listed by ``get_chapter``.

    Attributes:
        id: ``int_...``.
        content: The prompt text.
        result: The result message; ``None`` while the prompt is processing.
        status: A status string if the server sends one (the docs' sample code reads it,
            the field table does not list it).
        created_at: Submission time.
    """

    id: str
    content: str = ""
    result: str | None = None
    status: str | None = None
    created_at: dt.datetime | None = None

    @property
    def is_done(self) -> bool:
        """Whether the prompt finished (a ``result`` arrived or a terminal status was sent)."""
        if self.status is not None:
            return PromptStatus.parse(self.status) in (
                PromptStatus.COMPLETED,
                PromptStatus.FAILED,
            )
        return self.result is not None


@attrs.frozen(kw_only=True)
class Chapter:
    """
    A chapter of a project; chapters are rendered in order into the final video.

    ``status``, ``prompt_count`` and ``prompts`` are filled by ``list_chapters`` /
    ``get_chapter``; the create call returns a chapter without them.

    Attributes:
        id: ``cht_...``.
        project_id: The owning project.
        name: 1-30 characters.
        duration: Seconds, when set.
        status: Parsed status; ``None`` when the response had none (a create).
        status_raw: The server's status string.
        prompt_count: Number of prompts submitted.
        prompts: The prompts (``get_chapter`` only).
        created_at: Creation time.
    """

    id: str
    project_id: str | None = None
    name: str = ""
    duration: float | None = None
    status: ChapterStatus | None = None
    status_raw: str | None = None
    prompt_count: int | None = None
    prompts: tuple[Prompt, ...] = ()
    created_at: dt.datetime | None = None

    @property
    def is_ready(self) -> bool:
        """Whether the chapter is ready (its prompts completed)."""
        return self.status is ChapterStatus.READY


@attrs.frozen(kw_only=True)
class PromptSubmission:
    """
    The answer to ``submit_prompt``: processing has started.

    Attributes:
        prompt_id: ``int_...``.
        status: Parsed status (usually ``processing``).
        status_raw: The server's string.
        message: For example ``"Prompt processing started"``.
        estimated_time: Raw estimate, for example ``"30-90 seconds"``.
        estimated_seconds: The estimate parsed into ``(low, high)`` seconds, if it could be.
    """

    prompt_id: str
    status: PromptStatus = PromptStatus.UNKNOWN
    status_raw: str | None = None
    message: str | None = None
    estimated_time: str | None = None
    estimated_seconds: tuple[float, float] | None = None


@attrs.frozen(kw_only=True)
class Asset:
    """
    An uploaded media file (https://docs.babou.ai/api-reference/assets/get).

    Attributes:
        id: ``ast_...``.
        name: The file name the server chose.
        url: Storage URL once the upload completed.
        content_type: MIME type.
        size: Bytes.
        state: Parsed state.
        state_raw: The server's string.
        duration: Seconds (audio and video).
        width: Pixels (images and video).
        height: Pixels (images and video).
        created_at: Upload time.
    """

    id: str
    name: str | None = None
    url: str | None = None
    content_type: str | None = None
    size: int | None = None
    state: AssetState = AssetState.UNKNOWN
    state_raw: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    created_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Export:
    """
    The state of a project's export (start or status response).

    Babou keeps one export "slot" per project, addressed by the project ID.
    A failed export is a status, not an exception: ``status`` is ``FAILED`` and
    :attr:`error` holds the server's text.

    Attributes:
        project_id: The project.
        status: Parsed status.
        status_raw: The server's status string.
        download_url: The video URL once completed (it may expire; see ``download_export``).
        error: The server's failure text when failed.
        message: The start response's message (``"Export started"``).
        estimated_time: Raw estimate (``"2-5 minutes"``).
        estimated_seconds: The estimate parsed into ``(low, high)`` seconds, if it could be.
        duration_seconds: Sent by some servers once completed (undocumented field).
    """

    project_id: str
    status: ExportStatus
    status_raw: str
    download_url: str | None = None
    error: str | None = None
    message: str | None = None
    estimated_time: str | None = None
    estimated_seconds: tuple[float, float] | None = None
    duration_seconds: float | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the export is completed or failed."""
        return self.status.is_terminal


@attrs.frozen(kw_only=True)
class Page:
    """
    Offset pagination data of a list response.

    Attributes:
        limit: Page size.
        offset: Index of the first item.
        total: Total number of items, when the server says.
    """

    limit: int | None = None
    offset: int | None = None
    total: int | None = None


@attrs.frozen(kw_only=True)
class DownloadResult:
    """
    The outcome of downloading one export.

    Attributes:
        project_id: The project.
        path: Where the video is (or would have been) saved.
        bytes: Size of the file at ``path`` when ok; bytes received otherwise.
        ok: Whether the file at ``path`` is complete.
        error: What went wrong, when not ok.
        skipped: True when a complete file was already there and nothing was downloaded.
    """

    project_id: str
    path: Path | None
    bytes: int = 0
    ok: bool = False
    error: BabouError | None = None
    skipped: bool = False


@attrs.frozen(kw_only=True)
class ExportResult:
    """
    The outcome of one project in :meth:`BabouSession.export_many`.

    Attributes:
        project_id: The project.
        status: The last export status seen (``None`` if none was).
        path: The saved video, when ok.
        bytes: Its size.
        ok: Whether the export completed and its video is saved at ``path``.
        error: What went wrong, when not ok.
        skipped: The video was already complete on disk.
        started_at: When we started (or began following) the export, aware UTC.
        completed_at: When we first saw it terminal.
        downloaded_at: When the video was saved.
    """

    project_id: str
    status: ExportStatus | None = None
    path: Path | None = None
    bytes: int = 0
    ok: bool = False
    error: BabouError | None = None
    skipped: bool = False
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    downloaded_at: dt.datetime | None = None
