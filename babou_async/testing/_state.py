"""
The simulator's domain state, free of I/O.

:class:`Store` holds every project and asset and performs the API's operations on
them, validating input the way the endpoint pages of https://docs.babou.ai
describe and raising :class:`~babou_async.testing._entities.ApiError`, which the
HTTP layer turns into the error envelope ``{"error", "code", "hint"?}``.
Everything time-dependent is stored as timestamps of the simulator's clock and
evaluated lazily against ``now`` when a request asks, so no background task ever
runs and thousands of projects cost only their records.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Mapping
from typing import Any

from ._entities import ASSET_STATES, ApiError, Asset, Chapter, Export, Project, Prompt
from ._video import VideoContent

__all__ = ["Store", "parse_page"]

_ALNUM = string.ascii_letters + string.digits
_ID_LENGTH = 21


def _validation(hint: str) -> ApiError:
    """Build the generic 400 of the create and submit endpoints."""
    return ApiError(400, "VALIDATION_ERROR", "Validation failed", hint)


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


def _exportable_chapters(project: Project, now: float) -> list[int]:
    """
    Check that an export of a project may start now.

    Args:
        project: The project.
        now: The simulator's clock.

    Returns:
        The 1-based numbers of the chapters with a completed prompt.

    Raises:
        ApiError: 409 ``CONFLICT`` while an export runs, or 400
            ``VALIDATION_ERROR`` when no chapter has a completed prompt.
    """
    if project.active_export(now) is not None:
        raise ApiError(
            409,
            "CONFLICT",
            "An export is already in progress for this project",
            "Wait for the current export to complete or check its status",
        )
    completed = [
        number for number, chapter in enumerate(project.chapters, start=1) if chapter.completed(now)
    ]
    if not completed:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Project has no completed chapters",
            "Add chapters and submit prompts before exporting",
        )
    return completed


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
        completed = _exportable_chapters(project, now)
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
