"""
Checks of caller input against the documented limits, before anything is sent (sans-I/O).

Part of the sans-I/O core (:mod:`babou_async._protocol` re-exports every name).
"""

from __future__ import annotations

import inspect
import ipaddress
import math
import os
import re
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Final
from urllib.parse import SplitResult, urlsplit

from ._clock import Clock
from ._config import PollPolicy, RateLimit, RetryPolicy, to_seconds
from ._exceptions import ConfigurationError, ValidationError
from ._redaction import redact

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "DEFAULT_BASE_URL",
    "DESCRIPTION_MAX",
    "EXTENSION_CONTENT_TYPES",
    "LIST_LIMIT_MAX",
    "MAX_UPLOAD_BYTES",
    "NAME_MAX",
    "PROMPT_MAX",
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
    "guess_content_type",
    "normalise_content_type",
]

DEFAULT_BASE_URL: Final = "https://api.babou.ai/api/v1"

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


def _shown(value: str) -> str:
    """A caller's string for a message: clipped, and hidden if it looks like an API key."""
    shown = redact(value)  # before clipping: a key cut in two is still a key
    return repr(shown if len(shown) <= 60 else shown[:60] + "...")


def check_id(value: object, prefix: str, field: str) -> str:
    """
    Validate a resource ID: a string with the documented prefix and no path characters.

    Raises:
        ValidationError: Naming ``field`` and what is wrong (never a ``TypeError``, even
            for an unhashable value).
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{field} must be a string, got {type(value).__name__}",
            field=field,
        )
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise ValidationError(
            f"{field} must look like {prefix}..., got {_shown(value)}",
            field=field,
        )
    if not _ID_RE.fullmatch(value):
        raise ValidationError(
            f"{field} may only contain letters, digits, '_' and '-' (at most 200), "
            f"got {_shown(value)}",
            field=field,
        )
    return value


def check_project_id_source(value: object, field: str = "project_ids") -> None:
    """
    Validate a collection of project IDs without consuming it (a lazy batch's source).

    It must be an iterable or async iterable, not a string (whose characters would be taken
    as IDs), bytes or a mapping. Check each ID as it comes with
    ``check_id(item, "prj_", f"{field}[{index}]")``.

    Raises:
        ValidationError: Naming ``field``.
    """
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(
        value, (Iterable, AsyncIterable)
    ):
        raise ValidationError(
            f"{field} must be an iterable of project IDs (prj_...), got {type(value).__name__}",
            field=field,
        )


def check_project_ids(value: object, field: str = "project_ids") -> list[str]:
    """
    Validate a (synchronous) collection of project IDs; return them as a list.

    Raises:
        ValidationError: The collection is not one (see :func:`check_project_id_source`;
            an async iterable is refused too), or an ID is bad: the field is then named
            with its index, ``project_ids[3]``.
    """
    check_project_id_source(value, field)
    if not isinstance(value, Iterable):
        raise ValidationError(
            f"{field} must be a synchronous iterable (a list or tuple) of project IDs, "
            f"got {type(value).__name__}",
            field=field,
        )
    try:
        items = list(value)
    except Exception as exc:  # a caller's generator failing is the caller's input failing
        raise ValidationError(
            f"{field} could not be iterated: {type(exc).__name__}", field=field
        ) from exc
    return [check_id(item, "prj_", f"{field}[{index}]") for index, item in enumerate(items)]


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


def check_text(value: object, field: str, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not low <= len(value) <= high:
        raise ValidationError(
            f"{field} must be between {low} and {high} characters, got {len(value)}",
            field=field,
        )


def check_bool(value: object, field: str) -> None:
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


def check_timeout(timeout: object, field: str = "timeout") -> float:
    """Validate a deadline given as seconds or a timedelta; return it in seconds (> 0)."""
    try:
        seconds = to_seconds(timeout)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from None
    if not seconds > 0:
        raise ValidationError(f"{field} must be > 0, got {seconds!r}", field=field)
    return seconds


def check_option(value: object, types: type | tuple[type, ...], field: str, what: str) -> None:
    """Validate an optional per-call option by type (``None`` means the session's default)."""
    if value is not None and not isinstance(value, types):
        raise ValidationError(
            f"{field} must be {what} or None, got {type(value).__name__}", field=field
        )


def check_retry(value: object) -> None:
    """Validate a per-call ``retry=`` (a falsy wrong value must not pass as the default)."""
    check_option(value, RetryPolicy, "retry", "a RetryPolicy")


def check_poll(value: object) -> None:
    """Validate a per-call ``poll=``."""
    check_option(value, PollPolicy, "poll", "a PollPolicy")


def check_callback(value: object, field: str) -> None:
    """Validate an optional callback (``progress=``, ``on_result=``): a callable or ``None``."""
    if value is not None and not callable(value):
        raise ValidationError(
            f"{field} must be a callable or None, got {type(value).__name__}", field=field
        )


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def check_estimate(value: object) -> tuple[float, float] | None:
    """
    Validate ``estimate=``: ``None`` or ``(low, high)`` seconds, finite, 0 <= low <= high.

    A two-item list (as JSON gives it) is accepted too; the pair is returned as a tuple.
    """
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_seconds(v) and math.isfinite(v) for v in pair):
        raise ValidationError(
            f"estimate must be (low, high) seconds, finite and >= 0, got {value!r}",
            field="estimate",
        )
    low, high = float(pair[0]), float(pair[1])
    if low > high:
        raise ValidationError(f"estimate's low exceeds its high: {value!r}", field="estimate")
    return low, high


def check_path(value: object, field: str) -> str:
    """Validate a file system path argument (str or ``os.PathLike[str]``); return it as str."""
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValidationError(
            f"{field} must be a non-empty path (str or os.PathLike) without NUL, "
            f"got {type(value).__name__}",
            field=field,
        )
    return path


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
            f"content_type {base!r} is not accepted by Babou; use one of "
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


def check_upload_size(size: object) -> None:
    """Validate an announced upload size; refuse one known to exceed the documented 100 MB."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValidationError(f"size must be an int >= 0 or None, got {size!r}", field="size")
    if size is not None and size > MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"file is {size} bytes; Babou accepts at most {MAX_UPLOAD_BYTES} bytes (100 MB)",
            field="file",
        )


# --------------------------------------------------------------------------------------
# Session configuration
# --------------------------------------------------------------------------------------

_HOST_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}[A-Za-z0-9])?")


def _base_url_problem(url: str, allow_insecure: bool) -> str | None:
    """What is wrong with ``url`` as an API root, or ``None``."""
    if not url:
        return "it is empty (omit base_url for the production API)"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "it contains whitespace or control characters"
    if not url.isascii():
        return "it is not ASCII (percent-encode the path, punycode the host)"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an invalid bracketed IPv6 host, for one
        return f"it is not a valid URL ({exc})"
    return _shape_problem(parts, url) or _host_problem(parts, allow_insecure)


def _shape_problem(parts: SplitResult, url: str) -> str | None:
    """A problem of scheme, userinfo, query or fragment, or ``None``."""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "it must be an absolute http:// or https:// URL"
    if "@" in parts.netloc:
        return "it must not carry userinfo (user:password@): the key is sent as a header"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "it must not have a query or fragment"
    return None


def _host_problem(parts: SplitResult, allow_insecure: bool) -> str | None:
    """A problem of host or port, or plain http to another machine; or ``None``."""
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or (parts.netloc.endswith(":") and port is None):
        return "its port must be a number from 1 to 65535"
    loopback = _is_loopback(host, parts.netloc)
    if loopback is None:
        return f"its host {host!r} is not a valid host name or IP address"
    if parts.scheme == "http" and not loopback and not allow_insecure:
        return (
            "plain http:// would send the API key in clear to a host that is not this "
            "machine; use https://, or pass allow_insecure=True if you really mean it"
        )
    return None


def _is_loopback(host: str, netloc: str) -> bool | None:
    """Whether ``host`` is this machine; ``None`` when it is not a valid host at all."""
    if netloc.startswith("["):
        try:
            return ipaddress.IPv6Address(host).is_loopback
        except ValueError:
            return None
    if not _HOST_RE.fullmatch(host) or ".." in host:
        return None
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def check_base_url(url: object, *, allow_insecure: bool = False) -> str:
    """
    Validate an API root strictly; return it without a trailing slash.

    An absolute ``http``/``https`` URL with a valid host, a port from 1 to 65535 if any, no
    userinfo, query or fragment, and no whitespace or control character anywhere (a CRLF
    would split a request line). Plain ``http://`` is refused unless the host is this
    machine (``localhost``, ``127.0.0.0/8``, ``::1``) or ``allow_insecure`` is set: the key
    would travel in clear.

    Raises:
        ConfigurationError: Naming ``base_url`` and what is wrong.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"base_url must be a str, got {type(url).__name__}")
    problem = _base_url_problem(url, allow_insecure)
    if problem is not None:
        shown = redact(url)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise ConfigurationError(f"bad base_url {shown!r}: {problem}")
    return url.rstrip("/")


def check_api_key(value: object) -> str:
    """
    Validate an API key (given, or read from ``BABOU_API_KEY``); return it stripped.

    Raises:
        ConfigurationError: No key, not a string, or whitespace/control characters inside.
    """
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"api_key must be a str, got {type(value).__name__}")
    if not value or not value.strip():
        raise ConfigurationError(
            "no Babou API key: pass api_key=... or set the BABOU_API_KEY environment variable"
        )
    key = value.strip()
    if any(ch.isspace() for ch in key) or not key.isprintable():
        raise ConfigurationError("the API key contains whitespace or control characters")
    return key


def _is_budget(value: object) -> bool:
    """Whether ``value`` implements the :class:`~babou_async.RequestBudget` protocol."""
    return (
        inspect.iscoroutinefunction(getattr(value, "acquire", None))
        and inspect.iscoroutinefunction(getattr(value, "on_response", None))
        and callable(getattr(value, "suggested_poll_delay", None))
    )


def check_session_options(
    *,
    retry: object,
    poll: object,
    rate_limit: object,
    max_connections: object,
    user_agent: object,
    clock: object,
    allow_insecure: object,
) -> None:
    """
    Validate the options of a :class:`~babou_async.BabouSession` by type.

    Raises:
        ConfigurationError: Naming the option and what it should be.
    """
    expected: list[tuple[str, object, tuple[type, ...], str]] = [
        ("retry", retry, (RetryPolicy, type(None)), "a RetryPolicy or None"),
        ("poll", poll, (PollPolicy, type(None)), "a PollPolicy or None"),
        ("clock", clock, (Clock, type(None)), "a babou_async.testing.Clock or None"),
        ("user_agent", user_agent, (str, type(None)), "a str or None"),
        ("allow_insecure", allow_insecure, (bool,), "a bool"),
    ]
    for name, value, types, what in expected:
        if not isinstance(value, types):
            raise ConfigurationError(f"{name} must be {what}, got {type(value).__name__}")
    if (
        rate_limit is not None
        and not isinstance(rate_limit, RateLimit)
        and not _is_budget(rate_limit)
    ):
        raise ConfigurationError(
            "rate_limit must be a RateLimit, a RequestBudget (async acquire and on_response, "
            f"suggested_poll_delay) or None, got {type(rate_limit).__name__}"
        )
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise ConfigurationError(
            f"max_connections must be an int, got {type(max_connections).__name__}"
        )
    if max_connections < 1:
        raise ConfigurationError(f"max_connections must be at least 1, got {max_connections}")
    if isinstance(user_agent, str) and (not user_agent.isprintable() or not user_agent.strip()):
        raise ConfigurationError("user_agent must be printable text (no CR, LF or controls)")
