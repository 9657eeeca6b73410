"""
The package's one cattrs converter, and the helpers that turn server JSON into models.

Policy (server data is parsed defensively, see STYLE.md rule 6):

* unknown fields are ignored, so the server may add fields freely;
* unknown status strings map to ``UNKNOWN`` and the raw value is kept;
* strings must be strings and numbers numbers: ``{"id": 123}`` is a :class:`DecodeError`,
  not a silent ``"123"``;
* timestamps are ISO 8601 and become timezone-aware :class:`datetime.datetime`
  (a naive timestamp is taken as UTC);
* any failure becomes a :class:`~babou_async.DecodeError` naming the path of the bad field.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError

from ._models import AssetState, ChapterStatus, ExportStatus, PromptStatus

__all__ = ["converter", "make_converter", "structure"]

T = TypeVar("T")
_FRACTION = re.compile(r"\.(\d+)")
log = logging.getLogger("babou_async.http")


def _shown(value: object) -> str:
    """``value`` for an error message: a short repr of a scalar, the type of anything else."""
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value) if not isinstance(value, int) or abs(value) < 10**50 else "a huge int"
    if isinstance(value, str):
        return repr(value[:50]) + ("..." if len(value) > 50 else "")
    return f"a {type(value).__name__}"


def _structure_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    msg = f"expected a string, got {type(value).__name__}"
    raise TypeError(msg)


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, bool):
        msg = "expected an integer, got a boolean"
        raise TypeError(msg)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    msg = f"expected an integer, got {_shown(value)}"
    raise TypeError(msg)


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"expected a number, got {_shown(value)}"
        raise TypeError(msg)
    return float(value)


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    msg = f"expected a boolean, got {_shown(value)}"
    raise TypeError(msg)


def parse_timestamp(value: object) -> dt.datetime:
    """Parse an ISO 8601 timestamp (``Z`` suffix allowed) into an aware datetime."""
    if not isinstance(value, str):
        msg = f"expected an ISO 8601 string, got {type(value).__name__}"
        raise TypeError(msg)
    # Only short texts are kept: a hostile server padding each with a megabyte of spaces
    # must not fill the cache with megabytes.
    return _parse_iso(value) if len(value) <= _CACHED_TEXT else _parse_iso.__wrapped__(value)


_CACHED_TEXT = 64


# Every poll of an export answers the same created_at: parsed once, not 10,000 times (a
# datetime is immutable, so sharing one is safe). Failures are not cached: they raise.
@functools.lru_cache(maxsize=1024)
def _parse_iso(value: str) -> dt.datetime:
    text = value.strip()
    # Python 3.10's fromisoformat does not accept "Z"; the docs' examples use it.
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        # Python 3.10 also wants exactly 3 or 6 fractional digits ("...00.123456789"
        # from a nanosecond clock is valid ISO 8601): cut or pad to microseconds.
        fixed = _FRACTION.sub(lambda m: "." + (m[1] + "000000")[:6], text, count=1)
        if fixed == text:
            raise
        parsed = dt.datetime.fromisoformat(fixed)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _structure_dict(value: object, _: type) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    msg = f"expected an object, got {type(value).__name__}"
    raise TypeError(msg)


def _lenient_timestamp(value: object, _: type) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError):
        log.debug("ignoring an unparseable timestamp: %s", _shown(value))
        return None


def _estimate_pair(value: object, _: type) -> tuple[float, float] | None:
    """``(low, high)`` seconds, or ``None``: a direct hook (cattrs' tuples cost every poll)."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (_structure_float(value[0], float), _structure_float(value[1], float))
    msg = f"expected a pair of numbers, got {_shown(value)}"
    raise TypeError(msg)


def _optional(
    hook: Callable[[object, type], T], exact: type[T] | None = None
) -> Callable[[object, type], T | None]:
    """``hook`` for ``X | None``; a value of exactly type ``exact`` passes as is, with no call."""

    def structure(value: object, cls: type) -> T | None:
        if value is None:
            return None
        if type(value) is exact:
            return value
        return hook(value, cls)

    return structure


def make_converter() -> cattrs.Converter:
    """Build the converter babou_async uses for every response (one per process)."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(dt.datetime, lambda v, _: parse_timestamp(v))
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _structure_dict)
    # Optional fields are most of every model: a direct hook each, rather than cattrs'
    # generic Optional dispatch (a measurable share of per-call overhead).
    for base, hook in (
        (str, _structure_str),
        (int, _structure_int),
        (float, _structure_float),
    ):
        conv.register_structure_hook(base | None, _optional(hook, base))
    conv.register_structure_hook_func(
        lambda t: t == dict[str, Any] | None, _optional(_structure_dict)
    )
    conv.register_structure_hook_func(lambda t: t == tuple[float, float] | None, _estimate_pair)
    # Timestamps are informational: an unparseable one ("", "soon") becomes None rather
    # than failing the whole response.
    conv.register_structure_hook(dt.datetime | None, _lenient_timestamp)
    for enum_cls in (ExportStatus, ChapterStatus, PromptStatus, AssetState):
        conv.register_structure_hook(enum_cls, lambda v, t: t.parse(_structure_str(v, t)))
    return conv


converter = make_converter()

# The converter's hook for each model, looked up once: its dispatch is a cost per response.
_hooks: dict[type, Callable[[object, type], object]] = {}


def describe_error(exc: BaseException) -> str:
    """Summarise a cattrs structuring failure with field paths (never raises)."""
    try:
        if isinstance(exc, (ClassValidationError, IterableValidationError)):
            return "; ".join(cattrs.transform_error(exc))
        return str(exc) or type(exc).__name__
    except Exception:  # noqa: BLE001 - a description must not fail (a RecursionError, say)
        return type(exc).__name__


def structure(data: object, cls: type[T]) -> T:
    """
    Structure ``data`` into ``cls`` with the package converter.

    Whatever ``data`` holds (wrong types anywhere, huge numbers, deep nesting), the only
    exception is this ``ValueError``.

    Raises:
        ValueError: With a readable description of every bad field. The caller, which
            knows the HTTP context, turns it into a :class:`~babou_async.DecodeError`.
    """
    hook = _hooks.get(cls)
    if hook is None:
        hook = _hooks[cls] = converter.get_structure_hook(cls)
    try:
        return hook(data, cls)  # type: ignore[return-value]
    except Exception as exc:
        raise ValueError(describe_error(exc)) from exc
