"""
The sans-I/O core: pure, synchronous functions, no sockets, no clock, no randomness.

* checks of caller input against the documented limits, before anything is sent;
* request building (:class:`RequestSpec`);
* response parsing: JSON decoding, error envelope to exception, JSON to models;
* decisions: retry or not and how long to wait, ``Retry-After``, poll delays.

The I/O edges (:mod:`babou_async._session`, :mod:`babou_async._download`) feed these
functions status codes, headers and bytes, and the current time and random draws when a
decision needs them, so every rule here is testable without an event loop.

API facts are from https://docs.babou.ai (summarised in ``shared/babou-api.md``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar

import attrs

from ._config import PollPolicy, RetryPolicy
from ._exceptions import (
    APIError,
    AuthenticationError,
    ConflictError,
    DecodeError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._models import (
    Asset,
    Chapter,
    Export,
    Page,
    Project,
    PromptSubmission,
)
from ._serialization import structure

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_BASE_URL: Final = "https://api.babou.ai/api/v1"
_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

# --------------------------------------------------------------------------------------
# Documented limits (https://docs.babou.ai/api-reference/errors and the endpoint pages)
# --------------------------------------------------------------------------------------

NAME_MAX: Final = 30
DESCRIPTION_MAX: Final = 1000
PROMPT_MAX: Final = 5000
# "100 MB" is not said to mean 10**6 or 2**20 bytes; we check the smaller reading so that a
# file we let through is never refused by the server after a long upload.
MAX_UPLOAD_BYTES: Final = 100 * 1000 * 1000
LIST_LIMIT_MAX: Final = 100

# The upload page's list (https://docs.babou.ai/api-reference/assets/upload). The
# asset-management guide omits SVG (and one version AVI, GIF, AAC); we accept the union and
# let the server have the last word.
ALLOWED_CONTENT_TYPES: Final = frozenset(
    {
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
    }
)

# Guessing by extension with our own table, not the platform's mimetypes database, which
# differs between machines (for example .wav is audio/x-wav on some).
EXTENSION_CONTENT_TYPES: Final = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".webm": "video/webm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".aac": "audio/aac",
}

# IDs: the docs document prj_/cht_ + 21 alphanumerics, but their own examples have 9, so only
# the prefix and a safe alphabet are checked (no "/", "?", "#", whitespace or "..").
_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")


def check_id(value: object, prefix: str, field: str) -> str:
    """
    Validate a resource ID: a string with the documented prefix and no path characters.

    Raises:
        ValidationError: Naming ``field`` and what is wrong.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string, got {type(value).__name__}",
            field=field,
        )
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise ValidationError(
            f"{field} must look like {prefix}..., got {value!r}",
            field=field,
        )
    if not _ID_RE.fullmatch(value):
        raise ValidationError(
            f"{field} may only contain letters, digits, '_' and '-', got {value!r}",
            field=field,
        )
    return value


def check_project_id(value: object) -> str:
    """Validate a project ID (``prj_...``)."""
    return check_id(value, "prj_", "project_id")


def check_chapter_id(value: object) -> str:
    """Validate a chapter ID (``cht_...``)."""
    return check_id(value, "cht_", "chapter_id")


def check_asset_id(value: object) -> str:
    """
    Validate an asset ID.

    The Get Asset page says "UUID format" while every example is ``ast_...``; both are
    accepted (only the alphabet is checked when there is no ``ast_`` prefix).
    """
    if (
        isinstance(value, str)
        and not value.startswith("ast_")
        and re.fullmatch(
            r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", value
        )
    ):
        return value
    return check_id(value, "ast_", "asset_id")


def _check_text(value: object, field: str, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not low <= len(value) <= high:
        raise ValidationError(
            f"{field} must be between {low} and {high} characters, got {len(value)}",
            field=field,
        )


def _check_bool(value: object, field: str) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be a bool, got {type(value).__name__}", field=field)


def check_positive_int(value: object, field: str, *, maximum: int | None = None) -> int:
    """Validate an int >= 1 (and <= ``maximum``); booleans are not integers here."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or (maximum is not None and value > maximum)
    ):
        bound = f" from 1 to {maximum}" if maximum is not None else " >= 1"
        raise ValidationError(f"{field} must be an integer{bound}, got {value!r}", field=field)
    return value


def check_limit(limit: object) -> int:
    """Validate a page size: an int from 1 to 100."""
    return check_positive_int(limit, "page_size", maximum=LIST_LIMIT_MAX)


def normalise_content_type(content_type: object) -> str:
    """
    Validate an upload's MIME type against the documented list; parameters are dropped.

    Raises:
        ValidationError: When the type is missing or not one Babou accepts.
    """
    if not isinstance(content_type, str) or not content_type.strip():
        raise ValidationError(
            "content_type is required (and could not be guessed from the file name)",
            field="content_type",
        )
    base = content_type.split(";", 1)[0].strip().lower()
    if base not in ALLOWED_CONTENT_TYPES:
        raise ValidationError(
            f"content type {base!r} is not accepted by Babou; use one of "
            + ", ".join(sorted(ALLOWED_CONTENT_TYPES)),
            field="content_type",
        )
    return base


def guess_content_type(filename: str) -> str | None:
    """Guess a Babou-accepted MIME type from a file name's extension."""
    dot = filename.rfind(".")
    if dot < 0:
        return None
    return EXTENSION_CONTENT_TYPES.get(filename[dot:].lower())


def check_upload_size(size: int | None) -> None:
    """Refuse, before sending, an upload known to exceed the documented 100 MB."""
    if size is not None and size > MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"file is {size} bytes; Babou accepts at most {MAX_UPLOAD_BYTES} bytes (100 MB)",
            field="file",
        )


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
        if not kwargs and all(type(arg) is str for arg in args):
            return cached(*args)
        return builder(*args, **kwargs)

    return build


def build_create_project(
    name: object, description: object = None, settings: object = None
) -> RequestSpec:
    """``POST /projects`` (https://docs.babou.ai/api-reference/projects/create)."""
    _check_text(name, "name", 1, NAME_MAX)
    _check_text(description, "description", 0, DESCRIPTION_MAX, optional=True)
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
    _check_text(name, "name", 1, NAME_MAX)
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
    _check_text(content, "content", 1, PROMPT_MAX)
    _check_bool(force, "force")
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


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------


class RawResponse(NamedTuple):
    """
    A complete HTTP response, as the transport received it.

    A named tuple rather than an attrs class: one is built per API call, and a tuple is
    the cheapest immutable record to build.

    Attributes:
        status: HTTP status.
        headers: Headers, looked up by lower-case name (aiohttp's case-insensitive
            mapping, or a plain dict with lower-case keys).
        body: The whole body.
    """

    status: int
    headers: Mapping[str, str] = _NO_HEADERS
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header."""
        return self.headers.get("content-type")


_REQUEST_ID_HEADERS: Final = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


def decode_error(raw: RawResponse, message: str) -> DecodeError:
    """Build a :class:`DecodeError` carrying the response's status, type and first bytes."""
    return DecodeError(
        message, status=raw.status, content_type=raw.content_type, body_excerpt=raw.body[:200]
    )


def parse_json(raw: RawResponse) -> Any:
    """
    Decode a success response's JSON body.

    The content type is not insisted on (some proxies say ``text/plain``); the body must
    parse as JSON.

    Raises:
        DecodeError: When the body is not JSON.
    """
    try:
        # JSON on the wire is UTF-8 (RFC 8259); decoding first skips json's encoding sniff.
        return json.loads(raw.body.decode())
    except UnicodeDecodeError:
        try:
            return json.loads(raw.body)  # a UTF-16/32 body, detected by json itself
        except (ValueError, UnicodeDecodeError):
            raise decode_error(raw, "response body is not valid JSON") from None
    except ValueError:
        raise decode_error(raw, "response body is not valid JSON") from None


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _redact(text: str | None, secret: str | None) -> str | None:
    if text is None or not secret:
        return text
    return text.replace(secret, "[REDACTED]")


_STATUS_CLASSES: Final[dict[int, type[APIError]]] = {
    400: ValidationError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}

_CODE_CLASSES: Final[dict[str, type[APIError]]] = {
    "VALIDATION_ERROR": ValidationError,
    "UNAUTHORIZED": AuthenticationError,
    "INVALID_API_KEY_FORMAT": AuthenticationError,
    "API_KEY_EXPIRED": AuthenticationError,
    "NOT_FOUND": NotFoundError,
    "CONFLICT": ConflictError,
    "FILE_TOO_LARGE": PayloadTooLargeError,
    "RATE_LIMIT_EXCEEDED": RateLimitError,
    "RATE_LIMITED": RateLimitError,
    "TOO_MANY_REQUESTS": RateLimitError,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """
    Choose the exception class for an error response.

    The HTTP status decides when it is one the docs list; otherwise a known ``code``
    does (a 422 carrying ``VALIDATION_ERROR`` is still a :class:`ValidationError`); else
    5xx is :class:`ServerError` and anything else a plain :class:`APIError`.
    """
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    if code is not None and code in _CODE_CLASSES:
        return _CODE_CLASSES[code]
    return APIError


def error_from_response(
    raw: RawResponse,
    *,
    method: str,
    path: str,
    now: dt.datetime | None = None,
    secret: str | None = None,
) -> APIError:
    """
    Turn an error response into the matching :class:`APIError` subclass.

    Reads the documented flat envelope ``{"error", "code", "hint"}`` and tolerates a nested
    one (``{"error": {"code", "message"}}``) or a non-JSON body (an HTML 502 page from a
    proxy). ``secret`` (the API key) is scrubbed from every text taken from the body.
    """
    message: str | None = None
    code: str | None = None
    hint: str | None = None
    try:
        payload = json.loads(raw.body) if raw.body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, Mapping):
        err = payload.get("error")
        if isinstance(err, Mapping):
            message = _as_text(err.get("message") or err.get("error"))
            code = _as_text(err.get("code") or payload.get("code"))
            hint = _as_text(err.get("hint") or payload.get("hint"))
        else:
            message = _as_text(err if err is not None else payload.get("message"))
            code = _as_text(payload.get("code"))
            hint = _as_text(payload.get("hint"))
    if not message:
        message = f"HTTP {raw.status} from the Babou API"
        if payload is None and raw.body:
            message += " (the body is not a JSON error envelope)"
    request_id = next((raw.headers[h] for h in _REQUEST_ID_HEADERS if h in raw.headers), None)
    cls = error_class(raw.status, code)
    kwargs: dict[str, Any] = {
        "status": raw.status,
        "code": _redact(code, secret),
        "hint": _redact(hint, secret),
        "request_id": request_id,
        "method": method,
        "path": path,
        "headers": raw.headers,
    }
    kwargs["retry_after"] = parse_retry_after(raw.headers.get("retry-after"), now=now)
    return cls(_redact(message, secret) or "", **kwargs)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """
    Parse ``Retry-After``: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).

    Args:
        value: The header value.
        now: The current time, needed for the HTTP-date form (aware).

    Returns:
        Seconds to wait (never negative), or ``None`` if absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    reference = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - reference).total_seconds())


# --------------------------------------------------------------------------------------
# Payload -> model
# --------------------------------------------------------------------------------------


def _decode(raw: RawResponse, data: object, cls: type[T]) -> T:
    try:
        return structure(data, cls)
    except ValueError as exc:
        raise decode_error(raw, f"unexpected {cls.__name__} in response: {exc}") from None


def _object(raw: RawResponse, payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise decode_error(raw, f"expected a JSON object for {what}, got {type(payload).__name__}")
    return payload


def _list_in(
    raw: RawResponse, payload: object, keys: tuple[str, ...], what: str
) -> tuple[list[Any], Mapping[str, Any]]:
    """Find the item list in a bare list or an envelope under one of ``keys``."""
    if isinstance(payload, list):
        return payload, {}
    obj = _object(raw, payload, what)
    for key in keys:
        items = obj.get(key)
        if isinstance(items, list):
            return items, obj
    raise decode_error(raw, f"no list of {what} in response (looked for {', '.join(keys)})")


_ESTIMATE_RE: Final = re.compile(
    r"(?P<low>\d+(?:\.\d+)?)\s*(?:(?:-|\u2013|\u2014|to)\s*(?P<high>\d+(?:\.\d+)?))?\s*"
    r"(?P<unit>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_estimated_time(value: object) -> tuple[float, float] | None:
    """
    Parse an estimate such as ``"2-5 minutes"`` or ``"30-90 seconds"`` into seconds.

    Returns:
        ``(low, high)`` in seconds, or ``None`` when the text has no recognisable form.
    """
    if not isinstance(value, str):
        return None
    match = _ESTIMATE_RE.search(value)
    if match is None:
        return None
    unit = _UNIT_SECONDS[match["unit"][0].lower()]
    low = float(match["low"]) * unit
    high = float(match["high"]) * unit if match["high"] else low
    return (min(low, high), max(low, high))


def _status(raw: RawResponse, obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise decode_error(raw, f"{what} has no string {key!r} field")
    return value


def parse_project(raw: RawResponse, payload: object) -> Project:
    """Build a :class:`Project` from a project object."""
    return _decode(raw, _object(raw, payload, "a project"), Project)


def parse_projects_page(raw: RawResponse, payload: object) -> tuple[list[Project], Page]:
    """
    Parse ``GET /projects``: a bare list or an envelope (the page is missing from the docs).

    Recognises ``{"projects"|"data"|"items"|"results": [...], "pagination": {...}}`` and
    pagination fields at the top level of the envelope.
    """
    return _parse_page(raw, payload, ("projects", "data", "items", "results"), parse_project)


def _chapter_data(raw: RawResponse, obj: Mapping[str, Any], project_id: str) -> dict[str, Any]:
    data = dict(obj)
    data.setdefault("project_id", project_id)
    raw_status = obj.get("status")
    if raw_status is not None:
        data["status"] = raw_status
        data["status_raw"] = raw_status
    else:
        data.pop("status", None)
    prompts = obj.get("prompts")
    if prompts is None:
        data.pop("prompts", None)
    elif not isinstance(prompts, list):
        raise decode_error(raw, "chapter 'prompts' is not a list")
    return data


def parse_chapter(raw: RawResponse, payload: object, project_id: str) -> Chapter:
    """Build a :class:`Chapter` (with prompts when present)."""
    obj = _object(raw, payload, "a chapter")
    return _decode(raw, _chapter_data(raw, obj, project_id), Chapter)


def parse_chapters(raw: RawResponse, payload: object, project_id: str) -> list[Chapter]:
    """Parse ``GET /projects/{id}/chapters`` (``{"chapters": [...]}`` or a bare list)."""
    items, _ = _list_in(raw, payload, ("chapters", "data", "items"), "chapters")
    return [parse_chapter(raw, item, project_id) for item in items]


def parse_prompt_submission(raw: RawResponse, payload: object) -> PromptSubmission:
    """Parse the answer to ``submit_prompt``."""
    obj = _object(raw, payload, "a prompt submission")
    data = dict(obj)
    if "prompt_id" not in data and isinstance(obj.get("id"), str):
        data["prompt_id"] = obj["id"]
    status = obj.get("status")
    if status is not None:
        data["status_raw"] = status
    else:
        data.pop("status", None)
    data["message"] = _info_text(obj.get("message"))
    data["estimated_time"] = _info_text(obj.get("estimated_time"))
    data["estimated_seconds"] = _estimate(obj.get("estimated_time"))
    return _decode(raw, data, PromptSubmission)


def parse_asset(raw: RawResponse, payload: object) -> Asset:
    """Build an :class:`Asset`."""
    obj = _object(raw, payload, "an asset")
    data = dict(obj)
    state = obj.get("state", obj.get("status"))
    data.pop("state", None)
    if state is not None:
        data["state"] = state
        data["state_raw"] = state
    return _decode(raw, data, Asset)


def parse_assets_page(raw: RawResponse, payload: object) -> tuple[list[Asset], Page]:
    """Parse ``GET /assets``: ``{"assets": [...], "pagination": {limit, offset, total}}``."""
    return _parse_page(raw, payload, ("assets", "data", "items"), parse_asset)


def _parse_page(
    raw: RawResponse,
    payload: object,
    keys: tuple[str, ...],
    parse_item: Callable[[RawResponse, object], T],
) -> tuple[list[T], Page]:
    items, envelope = _list_in(raw, payload, keys, keys[0])
    parsed = [parse_item(raw, item) for item in items]
    pagination = envelope.get("pagination")
    page_data = pagination if isinstance(pagination, Mapping) else envelope
    page = _decode(
        raw,
        {k: page_data[k] for k in ("limit", "offset", "total") if page_data.get(k) is not None},
        Page,
    )
    return parsed, page


def parse_export(
    raw: RawResponse, payload: object, project_id: str, *, default_status: str | None = None
) -> Export:
    """
    Build an :class:`Export` from a start or status response.

    A failed export is an HTTP 200 whose body has ``error``: here it is a status, not an
    API error (its ``error`` field clashes in name with the error envelope's).
    The failed example omits ``download_url``; the in-progress one has ``null``: both work.
    ``default_status`` stands in for a missing ``status`` (a start response is documented
    as ``queued``; a status response must say).
    """
    obj = _object(raw, payload, "an export")
    if default_status is not None and obj.get("status") is None:
        obj = {**obj, "status": default_status}
    status_raw = _status(raw, obj, "status", "export")
    error = obj.get("error")
    if isinstance(error, Mapping):  # tolerate {"error": {"message": ...}}
        error = error.get("message") or error.get("error")
    data: dict[str, Any] = {
        "project_id": project_id,
        "status": status_raw,
        "status_raw": status_raw,
        "download_url": obj.get("download_url") or obj.get("url") or None,
        "error": _as_text(error),
        # Informational fields: an odd value must not fail a call whose real answer (the
        # status) is fine, so they are coerced where unambiguous, else dropped.
        "message": _info_text(obj.get("message")),
        "estimated_time": _info_text(obj.get("estimated_time")),
        "estimated_seconds": _estimate(obj.get("estimated_time")),
        "duration_seconds": _info_number(obj.get("duration_seconds")),
    }
    return _decode(raw, data, Export)


def _info_text(value: object) -> str | None:
    """An informational text field: a string, a number written out, or ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return None


def _info_number(value: object) -> float | None:
    """An informational number: a number, a numeric string, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _estimate(value: object) -> tuple[float, float] | None:
    """``estimated_time`` as seconds: parsed text, or a bare number taken as seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return (float(value), float(value))
    return parse_estimated_time(value)


# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------


class FailureKind(enum.Enum):
    """What kind of failure happened to a request, as far as retrying is concerned."""

    #: Nothing was sent (connection refused, DNS failure, connect timeout).
    NOT_SENT = "not sent"
    #: The request may have reached the server (reset, disconnect, read timeout).
    AMBIGUOUS = "ambiguous"


@attrs.frozen(kw_only=True)
class RetryDecision:
    """
    The answer of :func:`decide_retry`.

    Attributes:
        retry: Whether to try again.
        delay: Seconds to wait first.
        reason: A short description for the log.
    """

    retry: bool
    delay: float = 0.0
    reason: str = ""


def backoff_delay(policy: RetryPolicy, retry_number: int, rand: float) -> float:
    """
    Exponential backoff with optional full jitter.

    Args:
        policy: The retry policy.
        retry_number: 1 for the first retry, 2 for the second, ...
        rand: A uniform draw in ``[0, 1)``.
    """
    exponent = min(retry_number - 1, 62)  # 2**62 * base overflows nothing, and is capped below
    bound = min(policy.max_delay, policy.base_delay * (2.0**exponent))
    return bound * rand if policy.jitter else bound


def decide_retry(
    *,
    policy: RetryPolicy,
    mode: RetryMode,
    attempt: int,
    rand: float,
    error: APIError | None = None,
    failure: FailureKind | None = None,
) -> RetryDecision:
    """
    Decide whether a failed attempt is retried, and after how long.

    Args:
        policy: The retry policy in force.
        mode: How safe the request is to resend.
        attempt: The attempt that just failed (1 for the first).
        rand: A uniform draw in ``[0, 1)`` for the jitter.
        error: The API error, if the server answered.
        failure: The transport failure kind, if the server did not answer.
    """
    if attempt >= policy.attempts:
        return RetryDecision(retry=False, reason="no attempts left")
    retry_after: float | None = None
    if isinstance(error, RateLimitError):
        # 429: the request was refused, so even a create is safe to resend.
        reason = "rate limited (429)"
        retry_after = error.retry_after
    elif isinstance(error, ServerError):
        if mode is RetryMode.CREATE:
            return RetryDecision(retry=False, reason="server error on a create: not resent")
        reason = f"server error ({error.status})"
        retry_after = error.retry_after
    elif error is not None:
        return RetryDecision(retry=False, reason=f"not retryable ({error.status})")
    elif failure is FailureKind.NOT_SENT:
        reason = "connection failed before sending"
    elif failure is FailureKind.AMBIGUOUS:
        if mode is RetryMode.CREATE:
            return RetryDecision(
                retry=False, reason="request may have reached the server: a create is not resent"
            )
        reason = "connection lost or timed out"
    else:
        return RetryDecision(retry=False, reason="nothing to retry")
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return RetryDecision(
                retry=False,
                reason=f"Retry-After {retry_after:g}s exceeds max_retry_after "
                f"{policy.max_retry_after:g}s",
            )
        return RetryDecision(retry=True, delay=retry_after, reason=f"{reason}, Retry-After")
    return RetryDecision(retry=True, delay=backoff_delay(policy, attempt, rand), reason=reason)


def next_poll_delay(
    policy: PollPolicy,
    *,
    polls_since_due: int,
    elapsed: float,
    estimate: tuple[float, float] | None,
    rand: float,
) -> float:
    """
    Seconds to wait before the next status poll.

    Args:
        policy: The poll policy.
        polls_since_due: Polls made since the job became overdue (see below), 0 for the
            next.
        elapsed: Seconds since the job started (or since we began watching).
        estimate: The server's ``(low, high)`` estimate in seconds, if any.
        rand: A uniform draw in ``[0, 1)`` for the jitter.

    With an estimate, three phases:

    * before its lower bound, the delay aims at that moment in steps of at most
      ``max_delay`` (no point polling a "2-5 minutes" job every 2 s for 2 minutes);
    * inside the window, the job may finish any moment: a steady ``initial_delay``, so a
      finished job is noticed within that;
    * past the upper bound (or with no estimate at all), the delay grows from
      ``initial_delay`` by ``multiplier`` up to ``max_delay``. The caller counts
      ``polls_since_due`` only in this phase.
    """
    factor = 1.0 + policy.jitter * (2.0 * rand - 1.0)
    if policy.use_estimate and estimate is not None and elapsed < estimate[1]:
        if elapsed >= estimate[0]:
            return min(policy.initial_delay, policy.max_delay) * factor
        until_due = estimate[0] - elapsed
        # Land on the due moment, never later: jitter only shortens this delay.
        delay = min(until_due, policy.max_delay)
        # initial_delay may exceed max_delay (PollPolicy(max_delay=1) keeps the default 2 s):
        # max_delay caps every delay.
        floor = min(policy.initial_delay, policy.max_delay, until_due)
        return max(floor, delay * min(factor, 1.0))
    exponent = min(polls_since_due, 200)
    try:
        grown = policy.initial_delay * policy.multiplier**exponent
    except OverflowError:  # a large multiplier: 50.0**200 does not fit in a float
        grown = math.inf
    delay = min(policy.max_delay, grown)
    return delay * factor
