"""
Request building: every endpoint as a :class:`RequestSpec`, plain data (sans-I/O).

Part of the sans-I/O core (:mod:`babou_async._protocol` re-exports every name).
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

import attrs

from ._exceptions import ValidationError
from ._validation import (
    DESCRIPTION_MAX,
    NAME_MAX,
    PROMPT_MAX,
    check_asset_id,
    check_bool,
    check_chapter_id,
    check_project_id,
    check_text,
    normalise_content_type,
)

__all__ = [
    "RequestSpec",
    "RetryMode",
    "build_create_chapter",
    "build_create_project",
    "build_get_asset",
    "build_get_chapter",
    "build_get_export",
    "build_get_project",
    "build_list_assets",
    "build_list_chapters",
    "build_list_projects",
    "build_start_export",
    "build_submit_prompt",
]

P = ParamSpec("P")

# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------


class RetryMode(enum.Enum):
    """How safe a request is to resend."""

    #: A read: any transient failure may be retried.
    IDEMPOTENT = "idempotent"
    #: A create: resending after the server may have acted would duplicate the resource.
    CREATE = "create"
    #: Starting an export: a duplicate start is harmless and detectable (409).
    START_EXPORT = "start_export"


@attrs.frozen(kw_only=True)
class RequestSpec:
    """
    Everything needed to send one API request, as plain data.

    Attributes:
        method: HTTP method.
        path: Path relative to the base URL, starting with ``/``, IDs already validated.
        params: Query parameters.
        json: JSON body, or ``None`` for no body.
        retry_mode: How safely the request can be retried.
    """

    method: str
    path: str
    params: Mapping[str, str] = attrs.field(factory=dict)
    json: Any = None
    retry_mode: RetryMode = RetryMode.IDEMPOTENT


# Path segments are IDs that check_id() limited to [A-Za-z0-9_-]: nothing to percent-encode.


def _cached(builder: Callable[P, RequestSpec]) -> Callable[P, RequestSpec]:
    """
    Memoise a GET builder whose arguments are IDs: polls rebuild the same spec every time.

    Only valid string IDs are cached (a failed check raises and is not cached; anything
    but a string goes to the builder, whose check reports it).
    """
    cached = functools.lru_cache(maxsize=4096)(builder)

    @functools.wraps(builder)
    def build(*args: P.args, **kwargs: P.kwargs) -> RequestSpec:
        if kwargs:
            return builder(*args, **kwargs)
        for arg in args:  # a loop, not all(...): this runs on every poll
            if type(arg) is not str:
                return builder(*args, **kwargs)
        return cached(*args)

    return build


def build_create_project(
    name: object, description: object = None, settings: object = None
) -> RequestSpec:
    """``POST /projects`` (https://docs.babou.ai/api-reference/projects/create)."""
    check_text(name, "name", 1, NAME_MAX)
    check_text(description, "description", 0, DESCRIPTION_MAX, optional=True)
    if settings is not None and not isinstance(settings, Mapping):
        raise ValidationError("settings must be a mapping", field="settings")
    body: dict[str, Any] = {"name": name}
    if description is not None:
        body["description"] = description
    if settings is not None:
        try:
            json.dumps(settings)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"settings must be JSON-serialisable: {exc}", field="settings"
            ) from None
        body["settings"] = dict(settings)
    return RequestSpec(method="POST", path="/projects", json=body, retry_mode=RetryMode.CREATE)


def build_list_projects(limit: int, offset: int) -> RequestSpec:
    """``GET /projects``: its page is missing from the docs; limit/offset as for assets."""
    return RequestSpec(
        method="GET", path="/projects", params={"limit": str(limit), "offset": str(offset)}
    )


@_cached
def build_get_project(project_id: object) -> RequestSpec:
    """``GET /projects/{projectId}``."""
    return RequestSpec(method="GET", path=f"/projects/{check_project_id(project_id)}")


def build_create_chapter(project_id: object, name: object, duration: object = None) -> RequestSpec:
    """``POST /projects/{projectId}/chapters``."""
    pid = check_project_id(project_id)
    check_text(name, "name", 1, NAME_MAX)
    body: dict[str, Any] = {"name": name}
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
            raise ValidationError(
                f"duration must be a positive integer number of seconds, got {duration!r}",
                field="duration",
            )
        body["duration"] = duration
    return RequestSpec(
        method="POST",
        path=f"/projects/{pid}/chapters",
        json=body,
        retry_mode=RetryMode.CREATE,
    )


@_cached
def build_list_chapters(project_id: object) -> RequestSpec:
    """``GET /projects/{projectId}/chapters``."""
    return RequestSpec(method="GET", path=f"/projects/{check_project_id(project_id)}/chapters")


@_cached
def build_get_chapter(project_id: object, chapter_id: object) -> RequestSpec:
    """``GET /projects/{projectId}/chapters/{chapterId}``."""
    pid = check_project_id(project_id)
    cid = check_chapter_id(chapter_id)
    return RequestSpec(method="GET", path=f"/projects/{pid}/chapters/{cid}")


def build_submit_prompt(
    project_id: object, chapter_id: object, content: object, force: object = False
) -> RequestSpec:
    """``POST /projects/{projectId}/chapters/{chapterId}/prompt`` (singular ``prompt``)."""
    pid = check_project_id(project_id)
    cid = check_chapter_id(chapter_id)
    check_text(content, "content", 1, PROMPT_MAX)
    check_bool(force, "force")
    return RequestSpec(
        method="POST",
        path=f"/projects/{pid}/chapters/{cid}/prompt",
        json={"content": content, "force": force},
        retry_mode=RetryMode.CREATE,
    )


def build_list_assets(
    limit: int, offset: int, content_type: str | None, state: str | None
) -> RequestSpec:
    """``GET /assets`` with offset pagination and filters (note the camelCase param)."""
    params = {"limit": str(limit), "offset": str(offset)}
    if content_type is not None:
        params["contentType"] = normalise_content_type(content_type)
    if state is not None:
        if not isinstance(state, str) or not state:  # type: ignore[redundant-expr]
            raise ValidationError("state must be a non-empty string", field="state")
        params["state"] = state
    return RequestSpec(method="GET", path="/assets", params=params)


@_cached
def build_get_asset(asset_id: object) -> RequestSpec:
    """``GET /assets/{assetId}``."""
    return RequestSpec(method="GET", path=f"/assets/{check_asset_id(asset_id)}")


def build_start_export(project_id: object) -> RequestSpec:
    """``POST /projects/{projectId}/export``: no body is documented, none is sent."""
    return RequestSpec(
        method="POST",
        path=f"/projects/{check_project_id(project_id)}/export",
        retry_mode=RetryMode.START_EXPORT,
    )


@_cached
def build_get_export(project_id: object) -> RequestSpec:
    """``GET /projects/{projectId}/export``."""
    return RequestSpec(method="GET", path=f"/projects/{check_project_id(project_id)}/export")
