"""
The rows that ``status`` and the thin wrappers of the API print, typed, and their builders.

A row is a :class:`~typing.TypedDict`: ``--json`` prints it as it is (key order included),
and the columns pick what a table or a tab-separated line shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from babou_async import (
    Asset,
    BabouError,
    Chapter,
    Export,
    NotFoundError,
    Project,
    PromptSubmission,
)

from ._results import describe_error, error_text, iso

__all__ = [
    "ASSET_COLUMNS",
    "CHAPTER_COLUMNS",
    "PROJECT_COLUMNS",
    "PROMPT_COLUMNS",
    "STATUS_COLUMNS",
    "AssetRow",
    "ChapterRow",
    "Columns",
    "ProjectRow",
    "PromptRow",
    "StatusRow",
    "asset_row",
    "chapter_row",
    "created_project_row",
    "failed_status_row",
    "pending_status_row",
    "project_row",
    "prompt_row",
    "status_detail",
    "status_row",
]

#: ``(key, title)`` pairs: which fields of a row a table or a plain line shows, in order.
Columns = Sequence[tuple[str, str]]


class _ProjectFields(TypedDict):
    id: str
    name: str
    description: str | None
    created_at: str | None


class ProjectRow(_ProjectFields, total=False):
    """A project (``projects list`` adds ``active_export_id``; ``create`` does not)."""

    active_export_id: str | None


class ChapterRow(TypedDict):
    """A chapter."""

    id: str
    project_id: str | None
    name: str
    status: str | None
    prompt_count: int | None
    duration: float | None
    created_at: str | None


class _PromptFields(TypedDict):
    prompt_id: str
    status: str
    estimated_time: str | None


class PromptRow(_PromptFields, total=False):
    """A submitted prompt (``chapter_status`` with ``--wait`` only)."""

    chapter_status: str


class AssetRow(TypedDict):
    """A media asset."""

    id: str
    name: str | None
    content_type: str | None
    size: int | None
    state: str
    url: str | None
    created_at: str | None


class StatusRow(TypedDict):
    """A project's export, as ``status`` shows it."""

    project_id: str
    status: str
    error: str | None
    download_url: str | None
    duration_seconds: float | None


PROJECT_COLUMNS: Columns = [
    ("id", "ID"),
    ("name", "Name"),
    ("created_at", "Created"),
    ("active_export_id", "Export"),
]
CHAPTER_COLUMNS: Columns = [
    ("id", "ID"),
    ("name", "Name"),
    ("status", "Status"),
    ("prompt_count", "Prompts"),
    ("duration", "Duration"),
]
PROMPT_COLUMNS: Columns = [
    ("prompt_id", "Prompt"),
    ("status", "Status"),
    ("estimated_time", "Estimate"),
]
ASSET_COLUMNS: Columns = [
    ("id", "ID"),
    ("name", "Name"),
    ("content_type", "Type"),
    ("size", "Bytes"),
    ("state", "State"),
]
STATUS_COLUMNS: Columns = [("project_id", "Project"), ("status", "Status"), ("detail", "Detail")]


def project_row(p: Project) -> ProjectRow:
    """A listed project."""
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "active_export_id": p.active_export_id,
        "created_at": iso(p.created_at),
    }


def created_project_row(p: Project) -> ProjectRow:
    """A project just created (it has no export yet)."""
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "created_at": iso(p.created_at),
    }


def chapter_row(c: Chapter) -> ChapterRow:
    """A chapter, its status as the server spelled it."""
    return {
        "id": c.id,
        "project_id": c.project_id,
        "name": c.name,
        "status": c.status_raw or (str(c.status) if c.status_raw is not None else None),
        "prompt_count": c.prompt_count,
        "duration": c.duration,
        "created_at": iso(c.created_at),
    }


def prompt_row(sub: PromptSubmission, chapter: Chapter | None = None) -> PromptRow:
    """A submitted prompt, with its chapter's final status if it was waited for."""
    row: PromptRow = {
        "prompt_id": sub.prompt_id,
        "status": sub.status_raw or str(sub.status),
        "estimated_time": sub.estimated_time,
    }
    if chapter is not None:
        row["chapter_status"] = chapter.status_raw or str(chapter.status)
    return row


def asset_row(a: Asset) -> AssetRow:
    """An asset, its state as the server spelled it."""
    return {
        "id": a.id,
        "name": a.name,
        "content_type": a.content_type,
        "size": a.size,
        "state": a.state_raw or str(a.state),
        "url": a.url,
        "created_at": iso(a.created_at),
    }


def status_row(project_id: str, export: Export, secret: str | None = None) -> StatusRow:
    """A project's export as the server reported it (``secret`` hidden in its error)."""
    return {
        "project_id": project_id,
        "status": export.status_raw or str(export.status),
        "error": error_text(export.error, secret),
        "download_url": export.download_url,
        "duration_seconds": export.duration_seconds,
    }


def failed_status_row(
    project_id: str, error: BabouError, secret: str | None = None, base_url: str | None = None
) -> StatusRow:
    """
    A project whose export could not be read: ``none`` if it has none, else ``error``.

    The error is phrased for the command line (:func:`~._results.describe_error`).
    """
    return {
        "project_id": project_id,
        "status": "none" if isinstance(error, NotFoundError) else "error",
        "error": describe_error(error, secret, base_url),
        "download_url": None,
        "duration_seconds": None,
    }


def pending_status_row(project_id: str) -> StatusRow:
    """A project not heard of yet (``…``)."""
    return {
        "project_id": project_id,
        "status": "…",
        "error": None,
        "download_url": None,
        "duration_seconds": None,
    }


def status_detail(row: StatusRow) -> str:
    """The detail column of a status row: its error, or what a completed export allows."""
    if row["error"]:
        return row["error"]
    if row["status"] == "completed":
        return "ready to download"
    return ""
