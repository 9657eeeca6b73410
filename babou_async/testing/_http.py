"""
The HTTP pieces the simulator's gate, API endpoints and asset origin share.

The gate opens a :class:`RequestContext` for every request it admits and binds it with
:func:`open_context`; the endpoint or download that handles the request finds it with
:func:`current_context` and notes what the record of the request must say (the account,
the body size read, a deliberate drop).
The response builders give the two origins' error formats: the API's JSON envelope and
the S3-style XML of a storage origin.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import attrs
from aiohttp import web

from ._entities import ApiError

__all__ = [
    "API_PREFIX",
    "RequestContext",
    "close_connection",
    "current_context",
    "error_response",
    "format_seconds",
    "open_context",
    "s3_error",
]

API_PREFIX = "/api/v1"
"""Path prefix of every API endpoint, as on ``https://api.babou.ai/api/v1``."""


@attrs.define
class RequestContext:
    """What the gate and a handler share about one request."""

    account: str = ""
    body_size: int | None = None
    dropped: bool = False
    partial: bool = False
    bytes_sent: int = 0


_CONTEXT: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("babou_fake_request")


@contextmanager
def open_context(context: RequestContext) -> Iterator[RequestContext]:
    """Make ``context`` the current request's context until the block ends."""
    token = _CONTEXT.set(context)
    try:
        yield context
    finally:
        _CONTEXT.reset(token)


def current_context() -> RequestContext:
    """Return the context of the request being handled."""
    return _CONTEXT.get()


def format_seconds(seconds: float) -> str:
    """Write a delay the shortest way: ``"1"``, ``"0.25"``."""
    rounded = round(seconds, 3)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.3f}".rstrip("0")


def close_connection(request: web.Request) -> None:
    """Close a request's connection after flushing what was written."""
    transport = request.transport
    if transport is not None:  # pragma: no branch - None only once the peer has gone
        transport.close()


def error_response(error: ApiError) -> web.Response:
    """Build the JSON error envelope response."""
    return web.json_response(error.envelope(), status=error.status, headers=error.headers)


def s3_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Build an S3-style XML error, as a storage origin answers."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)
