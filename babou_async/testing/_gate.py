"""
The simulator's request gate: what happens to a request before an endpoint sees it.

:class:`Gate` is the middleware of both origins.
It records every request on arrival and completes the record once it is answered; it
answers scripted :class:`~babou_async.testing.Injection` responses; and on the API origin
it applies, in this order, the ``latency`` fault, injections, ``drop_api_rate``,
authentication (:class:`Keyring`), the per-key token bucket (:class:`TokenBuckets`),
``rate_limit_rate`` and ``server_error_rate``, before running the endpoint and turning
any error it raises into the JSON envelope.
The order is the one :class:`~babou_async.testing.Faults` documents.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ._entities import ApiError
from ._faults import Draws, Faults, Injection, Origin
from ._http import (
    API_PREFIX,
    RequestContext,
    close_connection,
    error_response,
    format_seconds,
    open_context,
    s3_error,
)
from ._records import RecordedRequest

__all__ = ["KEY_PREFIX", "Gate", "GateKnobs", "Keyring", "TokenBuckets"]

KEY_PREFIX = "sk-bab-"
"""How every valid API key starts."""

_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_STATUS_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "FILE_TOO_LARGE",
    429: "RATE_LIMIT_EXCEEDED",
}
_SERVER_MESSAGES = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}

_logger = logging.getLogger("babou_async.testing")

_Pipeline = Callable[[web.Request, Handler, RequestContext], Awaitable[web.StreamResponse]]


class GateKnobs(Protocol):
    """The settings of :class:`~babou_async.testing.FakeBabou` the gate reads live."""

    faults: Faults
    record_limit: int | None


class Keyring:
    """
    The valid, expired and revoked API keys, and the account of each valid key.

    Args:
        rng: Seeded generator for new keys.
        primary: The primary key; default: a new random one. Its account is ``"default"``.
    """

    def __init__(self, rng: random.Random, primary: str | None) -> None:
        self._rng = rng
        self.primary = primary if primary is not None else self.new_key()
        self.accounts: dict[str, str] = {self.primary: "default"}
        self.expired: set[str] = set()

    def new_key(self) -> str:
        """Draw a key that looks like a real one."""
        return KEY_PREFIX + "".join(self._rng.choices(_KEY_ALPHABET, k=32))

    def add(self, key: str, account: str) -> None:
        """Make ``key`` valid for ``account`` (and no longer expired)."""
        self.accounts[key] = account
        self.expired.discard(key)

    def expire(self, key: str) -> None:
        """Make ``key`` answer 401 ``API_KEY_EXPIRED`` from now on."""
        self.expired.add(key)

    def revoke(self, key: str) -> None:
        """Make ``key`` unknown (401 ``UNAUTHORIZED``) from now on."""
        self.accounts.pop(key, None)
        self.expired.discard(key)

    def account_of(self, key: str | None) -> str:
        """Return the account of a key (the primary key's by default)."""
        return self.accounts[self.primary if key is None else key]

    def authenticate(self, header: str) -> str:
        """
        Check an ``Authorization`` header's bearer key.

        Args:
            header: The header's value, or ``""`` when it is absent.

        Returns:
            The key.

        Raises:
            ApiError: 401 ``UNAUTHORIZED``, ``INVALID_API_KEY_FORMAT`` or
                ``API_KEY_EXPIRED``.
        """
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Unauthorized - Invalid API key",
                "Send your key as Authorization: Bearer sk-bab-...",
            )
        if not key.startswith(KEY_PREFIX):
            raise ApiError(401, "INVALID_API_KEY_FORMAT", "Invalid API key format")
        if key in self.expired:
            raise ApiError(401, "API_KEY_EXPIRED", "API key has expired")
        if key not in self.accounts:
            raise ApiError(401, "UNAUTHORIZED", "Unauthorized - Invalid API key")
        return key


@attrs.define
class _Bucket:
    """Token-bucket state of one API key."""

    tokens: float
    updated: float


class TokenBuckets:
    """A real token bucket per API key, or no limit at all."""

    def __init__(self) -> None:
        self._limit: tuple[float, int] | None = None
        self._buckets: dict[str, _Bucket] = {}

    @property
    def limit(self) -> tuple[float, int] | None:
        """``(requests_per_second, burst)``, or ``None`` for no limit."""
        return self._limit

    @limit.setter
    def limit(self, value: tuple[float, int] | None) -> None:
        if value is not None and (value[0] <= 0 or value[1] < 1):
            raise ValueError("rate_limit needs a positive rate and a burst of at least 1")
        self._limit = value
        self._buckets.clear()

    def wait(self, key: str, now: float) -> float | None:
        """Take a token from a key's bucket; return the wait when it is empty."""
        if self._limit is None:
            return None
        rate, burst = self._limit
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return math.ceil((1 - bucket.tokens) / rate * 1000) / 1000


def _drop(request: web.Request, context: RequestContext) -> web.StreamResponse:
    """Close the connection; the response returned is never sent."""
    context.dropped = True
    close_connection(request)
    return web.Response(status=500)


def _scripted_body(origin: Origin, injection: Injection) -> tuple[bytes, str | None]:
    """Return an injection's body and the ``Content-Type`` it implies, if any."""
    if injection.json is not None:
        return json.dumps(injection.json).encode(), "application/json"
    if injection.body is not None:
        return injection.body, "application/octet-stream"
    if origin == "api" and injection.status >= 400:
        code = _STATUS_CODES.get(
            injection.status, "INTERNAL_ERROR" if injection.status >= 500 else "ERROR"
        )
        message = web.Response(status=injection.status).reason
        return json.dumps({"error": message, "code": code}).encode(), "application/json"
    return b"", None


def _scripted_response(origin: Origin, injection: Injection) -> web.Response:
    """Build the response an injection scripts."""
    headers = dict(injection.headers)
    body, content_type = _scripted_body(origin, injection)
    has_type = any(name.lower() == "content-type" for name in headers)
    if content_type is not None and not has_type:
        headers["Content-Type"] = content_type
    return web.Response(status=injection.status, body=body, headers=headers)


def _api_http_error(error: web.HTTPException) -> web.Response:
    """Turn a routing error (404, 405...) into the JSON envelope."""
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    code = _STATUS_CODES.get(error.status, "ERROR")
    return error_response(ApiError(error.status, code, error.reason, headers=headers))


class Gate:
    """
    Records, scripts, authenticates and throttles the requests of both origins.

    Args:
        knobs: The simulator whose ``faults`` and ``record_limit`` apply.
        clock: The simulator's clock.
        wall_offset: Add to a clock value to get a Unix time.
        keys: The valid keys.
        draws: The seeded stream of fault decisions.
    """

    def __init__(
        self,
        knobs: GateKnobs,
        *,
        clock: Callable[[], float],
        wall_offset: float,
        keys: Keyring,
        draws: Draws,
    ) -> None:
        self._knobs = knobs
        self._clock = clock
        self._wall_offset = wall_offset
        self._draws = draws
        self.keys = keys
        self.buckets = TokenBuckets()
        self.injections: list[Injection] = []
        self.requests: list[RecordedRequest] = []

    def middleware(self, origin: Origin) -> Middleware:
        """Return the middleware that puts ``origin``'s requests through the gate."""
        pipeline = self._api if origin == "api" else self._asset

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._handle(origin, pipeline, request, handler)

        return gate

    # Recording --------------------------------------------------------------------------

    def _record(self, origin: Origin, request: web.Request) -> RecordedRequest:
        """Append a request's record on arrival."""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query: dict[str, str] = {}
        for name, value in request.query.items():
            query.setdefault(name, value)
        record = RecordedRequest(
            origin=origin,
            method=request.method,
            path=request.path,
            query=query,
            headers=headers,
            body_size=request.content_length or 0,
            time=self._clock(),
        )
        self.requests.append(record)
        limit = self._knobs.record_limit
        if limit is not None and len(self.requests) > 2 * limit:
            del self.requests[: len(self.requests) - limit]
        return record

    def _complete(
        self, record: RecordedRequest, context: RequestContext, response: web.StreamResponse | None
    ) -> None:
        """Replace a request's record by its completed form."""
        status = (
            None
            if response is None or (context.dropped and not context.partial)
            else response.status
        )
        final = attrs.evolve(
            record,
            status=status,
            body_size=record.body_size if context.body_size is None else context.body_size,
            dropped=context.dropped,
            bytes_sent=context.bytes_sent,
        )
        for index in range(len(self.requests) - 1, -1, -1):
            if self.requests[index] is record:
                self.requests[index] = final
                break
        _logger.info("%s %s %s -> %s", record.origin, record.method, record.path, status)

    async def _handle(
        self, origin: Origin, pipeline: _Pipeline, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Record a request, run its origin's pipeline and complete the record."""
        record = self._record(origin, request)
        context = RequestContext()
        response: web.StreamResponse | None = None
        try:
            with open_context(context):
                response = await pipeline(request, handler, context)
            return response
        finally:
            self._complete(record, context, response)

    # Injections -------------------------------------------------------------------------

    def _take_injection(self, origin: Origin, method: str, path: str) -> Injection | None:
        """Consume the first active injection matching a request, if any."""
        for injection in self.injections:
            if injection.matches(origin, method, path):
                injection.consume()
                self.injections = [pending for pending in self.injections if pending.active]
                return injection
        return None

    async def _injected(
        self, origin: Origin, request: web.Request, path: str, context: RequestContext
    ) -> web.StreamResponse | None:
        """Answer with the first matching injection, if any."""
        injection = self._take_injection(origin, request.method, path)
        if injection is None:
            return None
        if injection.delay > 0:
            await asyncio.sleep(injection.delay)
        if injection.drop:
            return _drop(request, context)
        return _scripted_response(origin, injection)

    # The API origin ---------------------------------------------------------------------

    async def _api(
        self, request: web.Request, handler: Handler, context: RequestContext
    ) -> web.StreamResponse:
        """Apply faults, injections and auth, then run the endpoint."""
        faults = self._knobs.faults
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        path = request.path
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        injected = await self._injected("api", request, relative, context)
        if injected is not None:
            return injected
        if self._draws.chance(faults.drop_api_rate):
            return _drop(request, context)
        return await self._admitted(request, handler, context, faults, outside=relative == path)

    async def _admitted(
        self,
        request: web.Request,
        handler: Handler,
        context: RequestContext,
        faults: Faults,
        *,
        outside: bool,
    ) -> web.StreamResponse:
        """Run the checks that answer with an envelope, then the endpoint."""
        try:
            self._admit(request, context, outside=outside)
            if self._draws.chance(faults.server_error_rate):
                return self._server_error(self._draws.choice(faults.server_error_statuses))
            return await handler(request)
        except ApiError as error:
            return error_response(error)
        except web.HTTPException as error:
            return _api_http_error(error)
        except Exception:
            _logger.exception("FakeBabou failed on %s %s", request.method, request.path)
            return error_response(ApiError(500, "INTERNAL_ERROR", "Internal server error"))

    def _admit(self, request: web.Request, context: RequestContext, *, outside: bool) -> None:
        """Authenticate and rate-limit an API request; raise the error answer if any."""
        if outside:
            raise ApiError(404, "NOT_FOUND", "Not found")
        key = self.keys.authenticate(request.headers.get("Authorization", ""))
        context.account = self.keys.accounts[key]
        wait = self.buckets.wait(key, self._clock())
        if wait is not None:
            raise self._rate_limited(wait)
        if self._draws.chance(self._knobs.faults.rate_limit_rate):
            raise self._rate_limited(self._knobs.faults.retry_after)

    def _rate_limited(self, wait: float) -> ApiError:
        """Build a 429 with ``Retry-After`` in the configured form."""
        form = self._knobs.faults.retry_after_form
        headers: dict[str, str] = {}
        if form == "seconds":
            headers["Retry-After"] = format_seconds(wait)
        elif form == "http-date":
            moment = math.ceil(self._clock() + self._wall_offset + wait)
            headers["Retry-After"] = email.utils.formatdate(moment, usegmt=True)
        hint = "Retry after the delay in the Retry-After header" if headers else None
        return ApiError(429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded", hint, headers)

    def _server_error(self, status: int) -> web.Response:
        """Build a random server error (JSON, or HTML from a 'proxy')."""
        message = _SERVER_MESSAGES.get(status, "Server error")
        if self._knobs.faults.html_errors and status in (502, 503):
            html = (
                f"<html><head><title>{status} {message}</title></head>"
                f"<body><center><h1>{status} {message}</h1></center></body></html>"
            )
            return web.Response(status=status, text=html, content_type="text/html")
        return error_response(ApiError(status, "INTERNAL_ERROR", message))

    # The asset origin -------------------------------------------------------------------

    async def _asset(
        self, request: web.Request, handler: Handler, context: RequestContext
    ) -> web.StreamResponse:
        """Apply injections, then serve the download."""
        injected = await self._injected("asset", request, request.path, context)
        if injected is not None:
            return injected
        try:
            return await handler(request)
        except web.HTTPException as error:
            code = "NoSuchKey" if error.status == 404 else "MethodNotAllowed"
            return s3_error(error.status, code, error.reason)
