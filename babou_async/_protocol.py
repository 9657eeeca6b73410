"""
The sans-I/O core: pure, synchronous functions, no sockets, no clock, no randomness.

* checks of caller input against the documented limits, before anything is sent
  (:mod:`babou_async._validation`, re-exported here);
* request building (:class:`RequestSpec`, :mod:`babou_async._requests`, re-exported here);
* response parsing: JSON decoding, error envelope to exception, JSON to models;
* decisions: retry or not and how long to wait, ``Retry-After``, poll delays.

The download-resume rules are :mod:`babou_async._resume`, the rate arithmetic
:mod:`babou_async._ratelimit`. The I/O edges (:mod:`babou_async._runtime` and the modules
built on it) feed these
functions status codes, headers and bytes, and the current time and random draws when a
decision needs them, so every rule here is testable without an event loop.

API facts are from https://docs.babou.ai (summarised in ``shared/babou-api.md``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar

from ._decisions import (
    FailureKind,
    RetryDecision,
    backoff_delay,
    decide_retry,
    next_poll_delay,
    poll_window_step,
)
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
from ._redaction import Redactor
from ._requests import (
    RequestSpec,
    RetryMode,
    build_create_chapter,
    build_create_project,
    build_get_asset,
    build_get_chapter,
    build_get_export,
    build_get_project,
    build_list_assets,
    build_list_chapters,
    build_list_projects,
    build_start_export,
    build_submit_prompt,
)
from ._serialization import structure
from ._validation import (
    ALLOWED_CONTENT_TYPES,
    DEFAULT_BASE_URL,
    DESCRIPTION_MAX,
    EXTENSION_CONTENT_TYPES,
    LIST_LIMIT_MAX,
    MAX_UPLOAD_BYTES,
    NAME_MAX,
    PROMPT_MAX,
    check_api_key,
    check_asset_id,
    check_base_url,
    check_bool,
    check_callback,
    check_chapter_id,
    check_estimate,
    check_id,
    check_limit,
    check_option,
    check_path,
    check_poll,
    check_positive_int,
    check_project_id,
    check_project_id_source,
    check_project_ids,
    check_retry,
    check_session_options,
    check_text,
    check_timeout,
    check_upload_size,
    guess_content_type,
    normalise_content_type,
)

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "DEFAULT_BASE_URL",
    "DESCRIPTION_MAX",
    "EXTENSION_CONTENT_TYPES",
    "LIST_LIMIT_MAX",
    "MAX_UPLOAD_BYTES",
    "NAME_MAX",
    "PROMPT_MAX",
    "FailureKind",
    "RawResponse",
    "RequestSpec",
    "RetryDecision",
    "RetryMode",
    "backoff_delay",
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
    "check_api_key",
    "check_asset_id",
    "check_base_url",
    "check_bool",
    "check_callback",
    "check_chapter_id",
    "check_estimate",
    "check_id",
    "check_limit",
    "check_option",
    "check_path",
    "check_poll",
    "check_positive_int",
    "check_project_id",
    "check_project_id_source",
    "check_project_ids",
    "check_retry",
    "check_session_options",
    "check_text",
    "check_timeout",
    "check_upload_size",
    "decide_retry",
    "decode_error",
    "error_class",
    "error_from_response",
    "guess_content_type",
    "next_poll_delay",
    "normalise_content_type",
    "parse_asset",
    "parse_assets_page",
    "parse_chapter",
    "parse_chapters",
    "parse_estimated_time",
    "parse_export",
    "parse_json",
    "parse_project",
    "parse_projects_page",
    "parse_prompt_submission",
    "parse_retry_after",
    "poll_window_step",
    "request_id_of",
]

T = TypeVar("T")
P = ParamSpec("P")

_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

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


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request identifier a response carries (``X-Request-Id`` and friends), if any."""
    return next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)


#: The longest text taken from a response into an exception (message, hint, request ID).
MAX_TEXT: Final = 1000
_ANONYMOUS: Final = Redactor()


def decode_error(raw: RawResponse, message: str) -> DecodeError:
    """
    Build a :class:`DecodeError` carrying the response's status, type and first bytes.

    Anything key-shaped is hidden from the message and the excerpt (the session has already
    hidden its own key, in every spelling, from the whole body).
    """
    excerpt = _ANONYMOUS.redact_bytes(raw.body[:4096])[:200]
    content_type = raw.content_type
    if content_type is not None:
        content_type = _ANONYMOUS(content_type[:MAX_TEXT])
    return DecodeError(
        _ANONYMOUS(message), status=raw.status, content_type=content_type, body_excerpt=excerpt
    )


# The C scanner json.loads runs, called directly: a body that starts with its value (they
# all do) skips json.loads' two whitespace regex passes and three calls.
_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body, else ``(False, None)``; never raises."""
    try:
        # JSON on the wire is UTF-8 (RFC 8259); decoding first skips json's encoding sniff.
        text = body.decode()
    except UnicodeDecodeError:
        return _json_loads(body)  # a UTF-16/32 body, detected by json itself
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:  # no value at the start: leading whitespace, or not JSON
        return _json_loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
        return False, None
    # "Extra data" after the value, as json.loads would say, is no JSON.
    whole = end == len(text) or not text[end:].strip(" \t\n\r")
    return whole, value if whole else None


def _json_loads(data: str | bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False, None


def parse_json(raw: RawResponse) -> Any:
    """
    Decode a success response's JSON body.

    The content type is not insisted on (some proxies say ``text/plain``); the body must
    parse as JSON. Whatever the body (deep nesting, huge numbers, bad encodings), the only
    exception is a :class:`DecodeError`, raised with no chained cause or context.

    Raises:
        DecodeError: When the body is not JSON.
    """
    ok, payload = _loads(raw.body)
    if not ok:
        raise decode_error(raw, "response body is not valid JSON")
    return payload


def _as_text(value: object) -> str | None:
    """A text field of a response: a string as is, anything else as JSON (never raises)."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return f"<unprintable {type(value).__name__}>"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _redact(text: str | None, redactor: Redactor | None) -> str | None:
    """A response text fit for an exception: redacted first (a cut key is still a key), clipped."""
    if text is None:
        return None
    return _clip(text if redactor is None else redactor(text))


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
    now: dt.datetime,
    secret: str | None = None,
    redactor: Redactor | None = None,
) -> APIError:
    """
    Turn an error response into the matching :class:`APIError` subclass.

    Reads the documented flat envelope ``{"error", "code", "hint"}`` and tolerates a nested
    one (``{"error": {"code", "message"}}``) or a non-JSON body (an HTML 502 page from a
    proxy); any body gives an :class:`APIError`, never another exception. ``secret`` (the
    API key), or the session's ``redactor``, is scrubbed in every spelling from every text
    taken from the response: message, code, hint, request ID and header values.
    """
    if redactor is None and secret:
        redactor = Redactor([secret])
    _, payload = _loads(raw.body) if raw.body else (True, None)
    message, code, hint = _envelope(payload)
    if not message:
        message = f"HTTP {raw.status} from the Babou API"
        if payload is None and raw.body:
            message += " (the body is not a JSON error envelope)"
    request_id = request_id_of(raw.headers)
    headers: Mapping[str, str] = raw.headers
    if redactor is not None:
        headers = {name: redactor(value) for name, value in raw.headers.items()}
    return error_class(raw.status, code)(
        _redact(message, redactor) or "",
        status=raw.status,
        code=_redact(code, redactor),
        hint=_redact(hint, redactor),
        request_id=_redact(_as_text(request_id), redactor),
        method=method,
        path=path,
        headers=headers,
        retry_after=parse_retry_after(raw.headers.get("retry-after"), now=now),
    )


def _envelope(payload: object) -> tuple[str | None, str | None, str | None]:
    """``(message, code, hint)`` of an error envelope, flat or nested; ``None`` when absent."""
    if not isinstance(payload, Mapping):
        return None, None, None
    err = payload.get("error")
    if isinstance(err, Mapping):
        return (
            _as_text(err.get("message") or err.get("error")),
            _as_text(err.get("code") or payload.get("code")),
            _as_text(err.get("hint") or payload.get("hint")),
        )
    return (
        _as_text(err if err is not None else payload.get("message")),
        _as_text(payload.get("code")),
        _as_text(payload.get("hint")),
    )


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
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
    return max(0.0, (when - now).total_seconds())


# --------------------------------------------------------------------------------------
# Payload -> model
# --------------------------------------------------------------------------------------


def _decode(raw: RawResponse, data: object, cls: type[T]) -> T:
    try:
        return structure(data, cls)
    except (ValueError, RecursionError) as exc:
        problem = _clip(str(exc))
    # Raised outside the handler: the structuring error (which may quote the payload) is
    # neither the cause nor the context.
    raise decode_error(raw, f"unexpected {cls.__name__} in response: {problem}")


def _object(raw: RawResponse, payload: object, what: str) -> Mapping[str, Any]:
    if type(payload) is dict:  # what json.loads makes: no ABC check on every response
        return payload
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
    # Clipped: a hostile megabyte of digits would make the search quadratic.
    return _parse_estimate(value[:200])


# Every poll of an export repeats its estimate: parsed once per distinct text.
@functools.lru_cache(maxsize=256)
def _parse_estimate(value: str) -> tuple[float, float] | None:
    match = _ESTIMATE_RE.search(value)
    if match is None:
        return None
    unit = _UNIT_SECONDS[match["unit"][0].lower()]
    low = float(match["low"]) * unit
    high = float(match["high"]) * unit if match["high"] else low
    return _finite_estimate(low, high)


def _finite_estimate(low: float, high: float) -> tuple[float, float] | None:
    """``(low, high)`` ordered, or ``None`` unless both are finite (a poll never waits forever)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
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
    """An informational text field: a string (clipped), a number written out, or ``None``."""
    if value is None or isinstance(value, str):
        return value
    number = _info_number(value)
    return None if number is None else f"{number:g}"


def _info_number(value: object) -> float | None:
    """An informational number: a number, a numeric string, or ``None``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value[:100] if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or an int beyond any float
        return None
    return number if math.isfinite(number) else None


def _estimate(value: object) -> tuple[float, float] | None:
    """``estimated_time`` as seconds: parsed text, or a bare number taken as seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _info_number(value)
        return None if number is None or number < 0 else (number, number)
    return parse_estimated_time(value)
