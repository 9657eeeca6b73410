"""
The Babou simulator: an in-process fake of the REST API and its download origin.

:class:`~babou_async.testing.FakeBabou` is the whole public surface of this module.

It runs two ``aiohttp.web`` applications on loopback ports: the API under
``/api/v1`` (every endpoint of https://docs.babou.ai/api-reference/overview) and a
separate "asset origin" that serves finished exports through signed, expiring
URLs the way a CDN or S3 bucket would.
State changes (prompts completing, exports finishing, assets becoming ready) are
computed lazily from timestamps when a request asks, so nothing runs in the
background.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import fnmatch
import hashlib
import hmac
import json
import logging
import math
import random
import re
import secrets
import time
import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from ._faults import Faults, Injection, Origin
from ._records import RecordedRequest
from ._state import (
    ALLOWED_MIME_TYPES,
    ApiError,
    Asset,
    Export,
    Project,
    Store,
    estimate,
    media_facts,
    parse_page,
)

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

__all__ = ["API_PREFIX", "FakeBabou"]

API_PREFIX = "/api/v1"
"""Path prefix of every API endpoint, as on ``https://api.babou.ai/api/v1``."""

_KEY_PREFIX = "sk-bab-"
_MIB = 1024 * 1024
_CHUNK = 256 * 1024
_JSON_LIMIT = _MIB
_SHUTDOWN_TIMEOUT = 0.5
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


@attrs.define
class _RequestContext:
    """What the middleware and a handler share about one request."""

    account: str = ""
    body_size: int | None = None
    dropped: bool = False
    partial: bool = False


_CONTEXT: contextvars.ContextVar[_RequestContext] = contextvars.ContextVar("babou_fake_request")


@attrs.define
class _Bucket:
    """Token-bucket state of one API key."""

    tokens: float
    updated: float


def _format_seconds(seconds: float) -> str:
    """Write a delay the shortest way: ``"1"``, ``"0.25"``."""
    rounded = round(seconds, 3)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.3f}".rstrip("0")


def _url_host(host: str) -> str:
    """Turn a bind address into the host part of a URL."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - only compared, never bound here
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """
    Interpret a ``Range`` header (RFC 9110, section 14.2) for a file of ``size`` bytes.

    Args:
        header: The header's value.
        size: Length of the representation.

    Returns:
        ``(start, end)`` with ``end`` exclusive for one satisfiable byte range,
        ``"unsatisfiable"`` for a range outside the file, or ``None`` when the
        header is to be ignored (malformed, other unit, or several ranges).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    stop = int(last) if last else size - 1
    return start, min(stop, size - 1) + 1


def _s3_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Build an S3-style XML error, as a storage origin answers."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


def _close_connection(request: web.Request) -> None:
    """Close a request's connection after flushing what was written."""
    transport = request.transport
    if transport is not None:  # pragma: no branch - None only once the peer has gone
        transport.close()


def _error_response(error: ApiError) -> web.Response:
    """Build the JSON error envelope response."""
    return web.json_response(error.envelope(), status=error.status, headers=error.headers)


class FakeBabou:
    """
    A fake Babou API server, with a separate origin for export downloads.

    Use it as an async context manager (or call :meth:`start` and :meth:`close`);
    both origins bind ``host`` on their own ports (0 picks a free one).
    Point the client under test at :attr:`base_url` with :attr:`api_key`.

    Every keyword below is also a public attribute of the same name that may be
    changed while the server runs, except ``api_key``, ``seed``, ``host``,
    ``port``, ``asset_port``, ``clock``, ``epoch`` and ``video_size`` (which is
    :attr:`export_video_size`).

    Args:
        api_key: The primary valid key. Default: ``"sk-bab-"`` and 32 seeded random
            letters and digits.
        seed: Seeds identifiers, keys, URL tokens, video bytes and every fault
            draw, so runs repeat exactly. ``None`` draws a random seed.
        host: Address both origins bind.
        port: API port (0 picks a free one).
        asset_port: Asset-origin port (0 picks a free one).
        prompt_seconds: How long a prompt takes to complete.
        asset_seconds: How long an upload stays ``"processing"``.
        export_queued_seconds: How long an export stays ``"queued"``.
        export_processing_seconds: How long it is then ``"processing"``; or a callable
            giving it for a project id (evaluated when the export starts), for renders
            that take longer for some projects than others.
        video_size: Bytes of each export's video, or a callable giving them for a
            project id (evaluated when the export starts).
        url_ttl: Lifetime of a download URL in seconds; 0 makes URLs expire at once.
        list_projects_shape: ``"envelope"`` answers ``GET /projects`` with
            ``{"projects": [...], "pagination": {...}}`` (a guess, since the page
            is missing); ``"bare"`` with a plain list.
        faults: The initial :class:`~babou_async.testing.Faults`; default: no faults.
        rate_limit: ``(requests_per_second, burst)`` for a real per-key token
            bucket, or ``None`` for no limit. Exceeding it gives 429 with
            ``Retry-After`` (in the form ``faults.retry_after_form`` says).
        max_upload_bytes: Largest accepted upload; beyond it 413
            ``FILE_TOO_LARGE`` (the docs say 100 MB and do not say which MB).
        create_status: Status of successful create calls (projects, chapters,
            assets): 201 or 200, since the docs do not say.
        accepted_status: Status of prompt submission and export start (200 or 202).
        prompt_status_field: Add a ``status`` field (``processing``,
            ``completed`` or ``failed``) to each prompt of GET chapter, as one of
            the docs' samples reads although the field table has none.
        record_limit: Keep only about the last ``record_limit`` requests in
            :attr:`requests` (``None`` keeps all), for long-running simulators.
        clock: Monotonic clock in seconds; default ``time.monotonic``.
            All lazy state transitions and URL expiry follow it.
        epoch: Unix time matching the clock's value at construction, used for
            ``created_at`` and HTTP dates; default: the current time.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        seed: int | None = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        asset_port: int = 0,
        prompt_seconds: float = 0.2,
        asset_seconds: float = 0.1,
        export_queued_seconds: float = 0.1,
        export_processing_seconds: float | Callable[[str], float] = 0.4,
        video_size: int | Callable[[str], int] = 256 * 1024,
        url_ttl: float = 60.0,
        list_projects_shape: Literal["envelope", "bare"] = "envelope",
        faults: Faults | None = None,
        rate_limit: tuple[float, int] | None = None,
        max_upload_bytes: int = 100 * _MIB,
        create_status: int = 201,
        accepted_status: int = 200,
        prompt_status_field: bool = False,
        record_limit: int | None = None,
        clock: Callable[[], float] | None = None,
        epoch: float | None = None,
    ) -> None:
        if api_key is not None and not api_key.startswith(_KEY_PREFIX):
            raise ValueError(f"api_key must start with {_KEY_PREFIX!r}")
        label = secrets.token_hex(8) if seed is None else repr(seed)
        # Seeded generators on purpose: the simulator must be reproducible, and
        # nothing here protects real secrets.
        self._keys_rng = random.Random(f"babou:{label}:keys")  # noqa: S311
        self._rng = random.Random(f"babou:{label}:faults")  # noqa: S311
        self._token_rng = random.Random(f"babou:{label}:tokens")  # noqa: S311
        self._url_secret = self._token_rng.randbytes(32)
        self._clock = time.monotonic if clock is None else clock
        now = self._clock()
        self._wall_offset = (time.time() if epoch is None else epoch) - now
        self._store = Store(
            ids=random.Random(f"babou:{label}:ids"),  # noqa: S311
            wall_offset=self._wall_offset,
            video_key=f"babou:{label}".encode(),
        )
        self._api_key = api_key if api_key is not None else self._new_key()
        self._keys: dict[str, str] = {self._api_key: "default"}
        self._expired: set[str] = set()
        self._buckets: dict[str, _Bucket] = {}
        self._rate_limit: tuple[float, int] | None = None
        self.rate_limit = rate_limit
        self._injections: list[Injection] = []
        self._requests: list[RecordedRequest] = []
        self._host = host
        self._port = port
        self._asset_port = asset_port
        self._runners: list[web.AppRunner] = []
        self._base_url: str | None = None
        self._asset_base_url: str | None = None
        self.faults = Faults() if faults is None else faults
        self.prompt_seconds = prompt_seconds
        self.asset_seconds = asset_seconds
        self.export_queued_seconds = export_queued_seconds
        self.export_processing_seconds: float | Callable[[str], float] = export_processing_seconds
        self.export_video_size: int | Callable[[str], int] = video_size
        self.url_ttl = url_ttl
        self.list_projects_shape: Literal["envelope", "bare"] = list_projects_shape
        self.max_upload_bytes = max_upload_bytes
        self.create_status = create_status
        self.accepted_status = accepted_status
        self.prompt_status_field = prompt_status_field
        self.record_limit = record_limit

    # Lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def started(self) -> bool:
        """Whether both origins are serving."""
        return self._base_url is not None

    async def start(self) -> None:
        """Bind and start both origins; does nothing if they already run."""
        if self.started:
            return
        try:
            api_port = await self._serve(self._build_api_app(), self._port)
            asset_port = await self._serve(self._build_asset_app(), self._asset_port)
        except BaseException:
            await self.close()
            raise
        host = _url_host(self._host)
        self._base_url = f"http://{host}:{api_port}{API_PREFIX}"
        self._asset_base_url = f"http://{host}:{asset_port}"

    async def _serve(self, app: web.Application, port: int) -> int:
        """Start one application and return the port it got."""
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self._host, port).start()
        address = runner.addresses[0]
        return int(address[1])

    async def close(self) -> None:
        """Stop both origins; does nothing if they are not running."""
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        self._base_url = None
        self._asset_base_url = None

    @property
    def base_url(self) -> str:
        """The API's base URL, such as ``"http://127.0.0.1:41234/api/v1"``."""
        if self._base_url is None:
            raise RuntimeError("FakeBabou is not started")
        return self._base_url

    @property
    def asset_base_url(self) -> str:
        """The download origin's base URL, such as ``"http://127.0.0.1:41235"``."""
        if self._asset_base_url is None:
            raise RuntimeError("FakeBabou is not started")
        return self._asset_base_url

    # Keys ----------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The primary valid API key."""
        return self._api_key

    def _new_key(self) -> str:
        """Draw a key that looks like a real one."""
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return _KEY_PREFIX + "".join(self._keys_rng.choices(alphabet, k=32))

    def add_key(self, key: str | None = None, *, account: str = "default") -> str:
        """
        Make another API key valid.

        Keys of one account see the same projects and assets; a key of another
        account gets 404 for them, as the docs describe for resources "not
        accessible to this key". Rate limits are per key.

        Args:
            key: The key to accept; default: a new random one.
            account: The account the key belongs to; the primary key's account is
                ``"default"``.

        Returns:
            The key.
        """
        if key is None:
            key = self._new_key()
        elif not key.startswith(_KEY_PREFIX):
            raise ValueError(f"key must start with {_KEY_PREFIX!r}")
        self._keys[key] = account
        self._expired.discard(key)
        return key

    def expire_key(self, key: str | None = None) -> None:
        """
        Make a key answer 401 ``API_KEY_EXPIRED`` from now on.

        Args:
            key: The key; default: :attr:`api_key`. It need not be a known key.
        """
        self._expired.add(self._api_key if key is None else key)

    def revoke_key(self, key: str | None = None) -> None:
        """
        Make a key invalid (401 ``UNAUTHORIZED``) from now on.

        Args:
            key: The key; default: :attr:`api_key`.
        """
        key = self._api_key if key is None else key
        self._keys.pop(key, None)
        self._expired.discard(key)

    @property
    def rate_limit(self) -> tuple[float, int] | None:
        """``(requests_per_second, burst)`` of the per-key token bucket, or ``None``."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: tuple[float, int] | None) -> None:
        if value is not None and (value[0] <= 0 or value[1] < 1):
            raise ValueError("rate_limit needs a positive rate and a burst of at least 1")
        self._rate_limit = value
        self._buckets.clear()

    # Requests and injections -----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received on both origins, in arrival order (a live list)."""
        return self._requests

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests.clear()

    def find_requests(
        self,
        *,
        origin: Origin | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> list[RecordedRequest]:
        """
        Select recorded requests.

        Args:
            origin: Keep only this origin's requests.
            method: Keep only this method (any case).
            path: Keep only full paths matching this ``fnmatch`` glob, such as
                ``"/api/v1/projects/*/export"``.

        Returns:
            The matching records, in arrival order.
        """
        wanted = None if method is None else method.upper()
        return [
            record
            for record in self._requests
            if (origin is None or record.origin == origin)
            and (wanted is None or record.method == wanted)
            and (path is None or fnmatch.fnmatchcase(record.path, path))
        ]

    def inject(
        self,
        method: str,
        path: str | re.Pattern[str],
        *,
        status: int,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        origin: Origin = "api",
        drop: bool = False,
        delay: float = 0.0,
    ) -> Injection:
        """
        Script the answer to the next matching requests.

        Injections are checked right after a request is recorded (and after the
        ``latency`` fault), before authentication and every other fault, in the
        order they were registered; the first active match answers.

        Args:
            method: The method to match, or ``"*"``.
            path: A path relative to ``/api/v1`` on the API origin (a leading
                ``/api/v1`` is stripped) or the full path on the asset origin; a
                plain string matches exactly, one with ``*``, ``?`` or ``[`` is a
                glob, and a compiled ``re.Pattern`` must match the whole path.
            status: The status to answer with.
            json: A JSON body.
            body: A raw body (not with ``json``).
                With neither, an API error status gets a default envelope such as
                ``{"error": "Service Unavailable", "code": "INTERNAL_ERROR"}``.
            headers: Extra response headers (``Retry-After``, ``Content-Type``...).
            times: How many requests to answer; ``None`` for all until cancelled.
            origin: ``"api"`` or ``"asset"``.
            drop: Close the connection with no response instead. Note that
                aiohttp clients silently resend an idempotent request (GET, HEAD...)
                once when a reused keep-alive connection closes, so use ``times=2``
                to make such a client see the disconnect.
            delay: Seconds to wait before answering.

        Returns:
            The :class:`~babou_async.testing.Injection`, to inspect ``hits`` or
            :meth:`~babou_async.testing.Injection.cancel`.
        """
        if json is not None and body is not None:
            raise ValueError("give json or body, not both")
        if origin == "api" and isinstance(path, str) and path.startswith(API_PREFIX + "/"):
            path = path[len(API_PREFIX) :]
        injection = Injection(
            method=method.upper(),
            path=path,
            origin=origin,
            status=status,
            json=json,
            body=body,
            headers=dict(headers or {}),
            remaining=times,
            drop=drop,
            delay=delay,
        )
        self._injections.append(injection)
        return injection

    def clear_injections(self) -> None:
        """Withdraw every pending injection."""
        for injection in self._injections:
            injection.cancel()
        self._injections.clear()

    # Seeding and inspection ------------------------------------------------------------

    def _account_of(self, key: str | None) -> str:
        """Return the account of a key (the primary key's by default)."""
        return self._keys[self._api_key if key is None else key]

    def seed_project(
        self,
        name: str = "Seeded project",
        *,
        chapters: int = 1,
        ready: bool = True,
        description: str | None = None,
        key: str | None = None,
    ) -> str:
        """
        Create a project directly in the simulator's state.

        Args:
            name: The project name (not validated).
            chapters: Number of chapters, named ``"Chapter 1"``, ``"Chapter 2"``...
            ready: When true each chapter has one completed prompt, so an export
                can start at once; when false each has a prompt still processing.
            description: The project description.
            key: Owner key (its account owns the project); default :attr:`api_key`.

        Returns:
            The project id.
        """
        now = self._clock()
        project = self._store.add_project(self._account_of(key), name, description, None, now)
        for number in range(1, chapters + 1):
            chapter = self._store.add_chapter(project, f"Chapter {number}", None, now)
            submitted = now - self.prompt_seconds if ready else now
            self._store.add_prompt(
                chapter, f"Scene {number}", submitted, seconds=self.prompt_seconds
            )
        return project.id

    def seed_asset(
        self,
        content_type: str = "image/png",
        data: bytes = b"\x00" * 1024,
        *,
        ready: bool = True,
        key: str | None = None,
    ) -> str:
        """
        Create an asset directly in the simulator's state.

        Args:
            content_type: Its MIME type (not validated).
            data: Its bytes (only their size, hash and header are kept).
            ready: When true it is ready at once; otherwise it is processing for
                :attr:`asset_seconds`.
            key: Owner key; default :attr:`api_key`.

        Returns:
            The asset id.
        """
        now = self._clock()
        width, height, duration = media_facts(content_type, len(data), data[:32])
        asset = Asset(
            id=self._store.new_id("ast_"),
            account=self._account_of(key),
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=now,
            ready_at=now if ready else now + self.asset_seconds,
            width=width,
            height=height,
            duration=duration,
        )
        return self._store.add_asset(asset).id

    def asset_sha256(self, asset_id: str) -> str:
        """
        Return the SHA-256 of an uploaded asset's bytes, to check an upload arrived intact.

        Args:
            asset_id: The asset id.

        Returns:
            The hex digest.

        Raises:
            LookupError: For an unknown asset.
        """
        return self._asset(asset_id).sha256

    def asset_size(self, asset_id: str) -> int:
        """
        Return the number of bytes received for an uploaded asset.

        Args:
            asset_id: The asset id.

        Returns:
            The size in bytes.

        Raises:
            LookupError: For an unknown asset.
        """
        return self._asset(asset_id).size

    def _asset(self, asset_id: str) -> Asset:
        """Find an asset of any account."""
        try:
            return self._store.assets[asset_id]
        except KeyError:
            raise LookupError(f"unknown asset {asset_id!r}") from None

    def _project(self, project_id: str) -> Project:
        """Find a project of any account."""
        try:
            return self._store.projects[project_id]
        except KeyError:
            raise LookupError(f"unknown project {project_id!r}") from None

    def _video_export(self, project_id: str, generation: int | None) -> Export:
        """Find the export whose video is asked about."""
        exports = self._project(project_id).exports
        if generation is not None:
            if not 1 <= generation <= len(exports) or exports[generation - 1].failed_chapter:
                raise LookupError(f"project {project_id!r} has no video for export {generation}")
            return exports[generation - 1]
        for export in reversed(exports):
            if export.failed_chapter is None:
                return export
        raise LookupError(f"project {project_id!r} has no export that succeeds")

    def video_bytes(self, project_id: str, *, generation: int | None = None) -> bytes:
        """
        Return the whole video of an export (use with small ``video_size``).

        Args:
            project_id: The project id.
            generation: Which export (1 for the first); default: the latest one
                that does not fail, even if it is still running.

        Returns:
            The bytes the download URL serves once that export completes.

        Raises:
            LookupError: For an unknown project or export.
        """
        return self._video_export(project_id, generation).content.read()

    def video_sha256(self, project_id: str, *, generation: int | None = None) -> str:
        """
        Return the SHA-256 of an export's video, computed without holding it.

        Args:
            project_id: The project id.
            generation: As for :meth:`video_bytes`.

        Returns:
            The hex digest.

        Raises:
            LookupError: For an unknown project or export.
        """
        return self._video_export(project_id, generation).content.sha256()

    def video_size(self, project_id: str, *, generation: int | None = None) -> int:
        """
        Return the size of an export's video.

        Args:
            project_id: The project id.
            generation: As for :meth:`video_bytes`.

        Returns:
            The size in bytes.

        Raises:
            LookupError: For an unknown project or export.
        """
        return self._video_export(project_id, generation).content.size

    def video_etag(self, project_id: str, *, generation: int | None = None) -> str:
        """
        Return the quoted strong ``ETag`` the asset origin sends for an export.

        Args:
            project_id: The project id.
            generation: As for :meth:`video_bytes`.

        Returns:
            The entity tag, quotes included.

        Raises:
            LookupError: For an unknown project or export.
        """
        return self._video_export(project_id, generation).content.etag

    def finish_export(self, project_id: str, *, failed: bool | None = None) -> None:
        """
        Complete a project's latest export now instead of waiting.

        Args:
            project_id: The project id.
            failed: Force the outcome (failed exports report chapter 1); ``None``
                keeps the outcome drawn when the export started.

        Raises:
            LookupError: For an unknown project or one never exported.
        """
        export = self._project(project_id).export
        if export is None:
            raise LookupError(f"project {project_id!r} has no export")
        now = self._clock()
        export.queued_until = min(export.queued_until, now)
        export.done_at = min(export.done_at, now)
        if failed is not None:
            export.failed_chapter = 1 if failed else None

    def expire_all_urls(self) -> None:
        """Invalidate every download URL issued so far (later ones work)."""
        self._url_secret = self._token_rng.randbytes(32)

    def download_url(self, project_id: str) -> str:
        """
        Sign a fresh download URL for a project, as GET export does.

        Args:
            project_id: The project id (whether or not an export completed).

        Returns:
            ``<asset_base_url>/exports/<project_id>.mp4?token=...&expires=...``,
            valid for :attr:`url_ttl` seconds.
        """
        expires = _format_seconds(self._clock() + self._wall_offset + self.url_ttl)
        nonce = f"{self._token_rng.getrandbits(64):016x}"
        token = nonce + self._signature(project_id, expires, nonce)
        query = urllib.parse.urlencode({"token": token, "expires": expires})
        return f"{self.asset_base_url}/exports/{urllib.parse.quote(project_id)}.mp4?{query}"

    def _signature(self, project_id: str, expires: str, nonce: str) -> str:
        """Compute a download URL's HMAC."""
        message = f"{project_id}\n{expires}\n{nonce}".encode()
        return hmac.new(self._url_secret, message, hashlib.sha256).hexdigest()[:32]

    # Request pipeline --------------------------------------------------------------------

    def _chance(self, rate: float) -> bool:
        """Draw a seeded event of probability ``rate``."""
        return rate > 0 and self._rng.random() < rate

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
        self._requests.append(record)
        limit = self.record_limit
        if limit is not None and len(self._requests) > 2 * limit:
            del self._requests[: len(self._requests) - limit]
        return record

    def _complete(
        self, record: RecordedRequest, context: _RequestContext, response: web.StreamResponse | None
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
        )
        for index in range(len(self._requests) - 1, -1, -1):
            if self._requests[index] is record:
                self._requests[index] = final
                break
        _logger.info("%s %s %s -> %s", record.origin, record.method, record.path, status)

    async def _handle(
        self, origin: Origin, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Record a request, run its origin's pipeline and complete the record."""
        record = self._record(origin, request)
        context = _RequestContext()
        token = _CONTEXT.set(context)
        response: web.StreamResponse | None = None
        try:
            if origin == "api":
                response = await self._api_pipeline(request, handler, context)
            else:
                response = await self._asset_pipeline(request, handler, context)
            return response
        finally:
            _CONTEXT.reset(token)
            self._complete(record, context, response)

    def _drop(self, request: web.Request, context: _RequestContext) -> web.StreamResponse:
        """Close the connection; the response returned is never sent."""
        context.dropped = True
        _close_connection(request)
        return web.Response(status=500)

    async def _injected(
        self, origin: Origin, request: web.Request, path: str, context: _RequestContext
    ) -> web.StreamResponse | None:
        """Answer with the first matching injection, if any."""
        for injection in self._injections:
            if injection.matches(origin, request.method, path):
                break
        else:
            return None
        injection.consume()
        self._injections = [pending for pending in self._injections if pending.active]
        if injection.delay > 0:
            await asyncio.sleep(injection.delay)
        if injection.drop:
            return self._drop(request, context)
        headers = dict(injection.headers)
        has_type = any(name.lower() == "content-type" for name in headers)
        if injection.json is not None:
            body = json.dumps(injection.json).encode()
            if not has_type:
                headers["Content-Type"] = "application/json"
        elif injection.body is not None:
            body = injection.body
            if not has_type:
                headers["Content-Type"] = "application/octet-stream"
        elif origin == "api" and injection.status >= 400:
            code = _STATUS_CODES.get(
                injection.status, "INTERNAL_ERROR" if injection.status >= 500 else "ERROR"
            )
            message = web.Response(status=injection.status).reason
            body = json.dumps({"error": message, "code": code}).encode()
            if not has_type:
                headers["Content-Type"] = "application/json"
        else:
            body = b""
        return web.Response(status=injection.status, body=body, headers=headers)

    def _authenticate(self, request: web.Request) -> str:
        """Check the bearer key and return it."""
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Unauthorized - Invalid API key",
                "Send your key as Authorization: Bearer sk-bab-...",
            )
        if not key.startswith(_KEY_PREFIX):
            raise ApiError(401, "INVALID_API_KEY_FORMAT", "Invalid API key format")
        if key in self._expired:
            raise ApiError(401, "API_KEY_EXPIRED", "API key has expired")
        if key not in self._keys:
            raise ApiError(401, "UNAUTHORIZED", "Unauthorized - Invalid API key")
        return key

    def _bucket_wait(self, key: str, now: float) -> float | None:
        """Take a token from a key's bucket; return the wait when it is empty."""
        if self._rate_limit is None:
            return None
        rate, burst = self._rate_limit
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return math.ceil((1 - bucket.tokens) / rate * 1000) / 1000

    def _rate_limited(self, wait: float) -> ApiError:
        """Build a 429 with ``Retry-After`` in the configured form."""
        form = self.faults.retry_after_form
        headers: dict[str, str] = {}
        if form == "seconds":
            headers["Retry-After"] = _format_seconds(wait)
        elif form == "http-date":
            moment = math.ceil(self._clock() + self._wall_offset + wait)
            headers["Retry-After"] = email.utils.formatdate(moment, usegmt=True)
        hint = "Retry after the delay in the Retry-After header" if headers else None
        return ApiError(429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded", hint, headers)

    def _server_error(self, status: int) -> web.Response:
        """Build a random server error (JSON, or HTML from a 'proxy')."""
        message = _SERVER_MESSAGES.get(status, "Server error")
        if self.faults.html_errors and status in (502, 503):
            html = (
                f"<html><head><title>{status} {message}</title></head>"
                f"<body><center><h1>{status} {message}</h1></center></body></html>"
            )
            return web.Response(status=status, text=html, content_type="text/html")
        return _error_response(ApiError(status, "INTERNAL_ERROR", message))

    async def _api_pipeline(
        self, request: web.Request, handler: Handler, context: _RequestContext
    ) -> web.StreamResponse:
        """Apply faults, injections and auth, then run the endpoint."""
        faults = self.faults
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        path = request.path
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        injected = await self._injected("api", request, relative, context)
        if injected is not None:
            return injected
        if self._chance(faults.drop_api_rate):
            return self._drop(request, context)
        try:
            self._admit(request, relative == path, context)
            if self._chance(faults.server_error_rate):
                return self._server_error(self._rng.choice(faults.server_error_statuses))
            return await handler(request)
        except ApiError as error:
            return _error_response(error)
        except web.HTTPException as error:
            headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            code = _STATUS_CODES.get(error.status, "ERROR")
            return _error_response(ApiError(error.status, code, error.reason, headers=headers))
        except Exception:
            _logger.exception("FakeBabou failed on %s %s", request.method, path)
            return _error_response(ApiError(500, "INTERNAL_ERROR", "Internal server error"))

    def _admit(self, request: web.Request, outside: bool, context: _RequestContext) -> None:
        """Authenticate and rate-limit an API request; raise the error answer if any."""
        if outside:
            raise ApiError(404, "NOT_FOUND", "Not found")
        key = self._authenticate(request)
        context.account = self._keys[key]
        wait = self._bucket_wait(key, self._clock())
        if wait is not None:
            raise self._rate_limited(wait)
        if self._chance(self.faults.rate_limit_rate):
            raise self._rate_limited(self.faults.retry_after)

    async def _asset_pipeline(
        self, request: web.Request, handler: Handler, context: _RequestContext
    ) -> web.StreamResponse:
        """Apply injections, then serve the download."""
        injected = await self._injected("asset", request, request.path, context)
        if injected is not None:
            return injected
        try:
            return await handler(request)
        except web.HTTPException as error:
            code = "NoSuchKey" if error.status == 404 else "MethodNotAllowed"
            return _s3_error(error.status, code, error.reason)

    # Apps -----------------------------------------------------------------------------------

    def _build_api_app(self) -> web.Application:
        """Create the API application."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._handle("api", request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=_JSON_LIMIT)
        prefix = API_PREFIX
        router = app.router
        router.add_post(f"{prefix}/projects", self._create_project)
        router.add_get(f"{prefix}/projects", self._list_projects, allow_head=False)
        router.add_get(f"{prefix}/projects/{{project_id}}", self._get_project, allow_head=False)
        chapters = f"{prefix}/projects/{{project_id}}/chapters"
        router.add_post(chapters, self._create_chapter)
        router.add_get(chapters, self._list_chapters, allow_head=False)
        router.add_get(f"{chapters}/{{chapter_id}}", self._get_chapter, allow_head=False)
        router.add_post(f"{chapters}/{{chapter_id}}/prompt", self._submit_prompt)
        router.add_post(f"{prefix}/assets", self._upload_asset)
        router.add_get(f"{prefix}/assets", self._list_assets, allow_head=False)
        router.add_get(f"{prefix}/assets/{{asset_id}}", self._get_asset, allow_head=False)
        export = f"{prefix}/projects/{{project_id}}/export"
        router.add_post(export, self._start_export)
        router.add_get(export, self._export_status, allow_head=False)
        return app

    def _build_asset_app(self) -> web.Application:
        """Create the download origin's application."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._handle("asset", request, handler)

        app = web.Application(middlewares=[middleware])
        app.router.add_get("/exports/{project_id}.mp4", self._download)
        return app

    # API endpoints ------------------------------------------------------------------------

    def _json(self, data: Any, status: int = 200) -> web.Response:
        """Build a JSON response."""
        return web.json_response(data, status=status)

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        """Read and decode a JSON object body (an empty body reads as ``{}``)."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(
                413, "FILE_TOO_LARGE", "Request body too large", "JSON bodies are limited to 1 MiB"
            ) from None
        _CONTEXT.get().body_size = len(raw)
        if not raw.strip():
            return {}
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Content-Type must be application/json",
                "Send the body as JSON with Content-Type: application/json",
            )
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(
                400, "VALIDATION_ERROR", "Invalid JSON in request body", "Send a JSON object"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(
                400, "VALIDATION_ERROR", "Validation failed", "Request body must be a JSON object"
            )
        return data

    @property
    def _now(self) -> float:
        """The clock's current value."""
        return self._clock()

    async def _create_project(self, request: web.Request) -> web.StreamResponse:
        """POST /projects (section 6.1)."""
        body = await self._read_json(request)
        project = self._store.create_project(_CONTEXT.get().account, body, self._now)
        return self._json(project.to_json(self._now, self._wall_offset), self.create_status)

    async def _list_projects(self, request: web.Request) -> web.StreamResponse:
        """GET /projects (section 6.2, shape undocumented)."""
        account = _CONTEXT.get().account
        now = self._now
        query = dict(request.query)
        if self.list_projects_shape == "bare" and "limit" not in query and "offset" not in query:
            projects, _ = self._store.list_projects(account, len(self._store.projects), 0)
            return self._json([project.to_json(now, self._wall_offset) for project in projects])
        limit, offset = parse_page(query)
        page, total = self._store.list_projects(account, limit, offset)
        items = [project.to_json(now, self._wall_offset) for project in page]
        if self.list_projects_shape == "bare":
            return self._json(items)
        return self._json(
            {"projects": items, "pagination": {"limit": limit, "offset": offset, "total": total}}
        )

    async def _get_project(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId} (section 6.3)."""
        project = self._store.get_project(_CONTEXT.get().account, request.match_info["project_id"])
        return self._json(project.to_json(self._now, self._wall_offset))

    async def _create_chapter(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/chapters (section 6.4)."""
        project_id = request.match_info["project_id"]
        account = _CONTEXT.get().account
        self._store.get_project(account, project_id)
        body = await self._read_json(request)
        chapter = self._store.create_chapter(account, project_id, body, self._now)
        return self._json(
            chapter.to_json(self._now, self._wall_offset, "created"), self.create_status
        )

    async def _list_chapters(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/chapters (section 6.5)."""
        project = self._store.get_project(_CONTEXT.get().account, request.match_info["project_id"])
        now = self._now
        chapters = [
            chapter.to_json(now, self._wall_offset, "listed") for chapter in project.chapters
        ]
        return self._json({"project_id": project.id, "chapters": chapters})

    async def _get_chapter(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/chapters/{chapterId} (section 6.6)."""
        chapter = self._store.get_chapter(
            _CONTEXT.get().account,
            request.match_info["project_id"],
            request.match_info["chapter_id"],
        )
        return self._json(
            chapter.to_json(
                self._now, self._wall_offset, "full", prompt_status=self.prompt_status_field
            )
        )

    async def _submit_prompt(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/chapters/{chapterId}/prompt (section 6.7)."""
        account = _CONTEXT.get().account
        project_id = request.match_info["project_id"]
        chapter_id = request.match_info["chapter_id"]
        self._store.get_chapter(account, project_id, chapter_id)
        body = await self._read_json(request)
        prompt = self._store.submit_prompt(
            account,
            project_id,
            chapter_id,
            body,
            self._now,
            seconds=self.prompt_seconds,
            decide_failure=lambda: self._chance(self.faults.prompt_fail_rate),
        )
        return self._json(
            {
                "prompt_id": prompt.id,
                "status": "processing",
                "message": "Prompt processing started",
                "estimated_time": estimate(self.prompt_seconds, 3),
            },
            self.accepted_status,
        )

    def _too_large(self) -> ApiError:
        """Build the 413 of an oversized upload."""
        limit = self.max_upload_bytes
        shown = f"{limit // _MIB}MB" if limit % _MIB == 0 else f"{limit} bytes"
        return ApiError(
            413,
            "FILE_TOO_LARGE",
            f"File size exceeds maximum allowed size of {shown}",
            "Compress or split the file before uploading",
        )

    async def _upload_asset(self, request: web.Request) -> web.StreamResponse:
        """POST /assets (section 6.8): a raw body, streamed and hashed."""
        context = _CONTEXT.get()
        raw_type = request.headers.get("Content-Type", "").strip()
        if not raw_type:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Content-Type header is required",
                "Set Content-Type to the file's MIME type, such as video/mp4",
            )
        content_type = raw_type.split(";")[0].strip().lower()
        if content_type not in ALLOWED_MIME_TYPES:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Unsupported content type: {content_type}",
                "Supported types: " + ", ".join(ALLOWED_MIME_TYPES),
            )
        declared = request.content_length
        if declared is not None and declared > self.max_upload_bytes:
            raise self._too_large()
        digest = hashlib.sha256()
        size = 0
        head = b""
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            context.body_size = size
            if size > self.max_upload_bytes:
                raise self._too_large()
            digest.update(chunk)
            if len(head) < 32:
                head += chunk[: 32 - len(head)]
        context.body_size = size
        if size == 0:
            raise ApiError(
                400, "VALIDATION_ERROR", "File is empty", "Send the file's bytes as the body"
            )
        if self._chance(self.faults.upload_fail_rate):
            raise ApiError(500, "UPLOAD_FAILED", "Failed to upload file to storage")
        now = self._now
        width, height, duration = media_facts(content_type, size, head)
        asset = Asset(
            id=self._store.new_id("ast_"),
            account=context.account,
            content_type=content_type,
            size=size,
            sha256=digest.hexdigest(),
            created_at=now,
            ready_at=now + self.asset_seconds,
            fails=self._chance(self.faults.asset_fail_rate),
            width=width,
            height=height,
            duration=duration,
        )
        self._store.add_asset(asset)
        return self._json(asset.to_json(now, self._wall_offset), self.create_status)

    async def _list_assets(self, request: web.Request) -> web.StreamResponse:
        """GET /assets (section 6.9)."""
        now = self._now
        page, total, limit, offset = self._store.list_assets(
            _CONTEXT.get().account, dict(request.query), now
        )
        return self._json(
            {
                "assets": [asset.to_json(now, self._wall_offset) for asset in page],
                "pagination": {"limit": limit, "offset": offset, "total": total},
            }
        )

    async def _get_asset(self, request: web.Request) -> web.StreamResponse:
        """GET /assets/{assetId} (section 6.10)."""
        asset = self._store.get_asset(_CONTEXT.get().account, request.match_info["asset_id"])
        return self._json(asset.to_json(self._now, self._wall_offset))

    def _export_outcome(self, project: Project, completed: list[int]) -> int | None:
        """Decide whether a new export fails, and at which chapter."""
        faults = self.faults
        if project.id in faults.fail_exports or self._chance(faults.export_fail_rate):
            return self._rng.choice(completed)
        return None

    def _size_for(self, project_id: str) -> int:
        """Return the video size of a new export."""
        size = self.export_video_size
        return size(project_id) if callable(size) else size

    async def _start_export(self, request: web.Request) -> web.StreamResponse:
        """POST /projects/{projectId}/export (section 6.11)."""
        now = self._now
        project_id = request.match_info["project_id"]
        processing = self.export_processing_seconds
        if callable(processing):
            processing = processing(project_id)
        export = self._store.start_export(
            _CONTEXT.get().account,
            project_id,
            now,
            queued_seconds=self.export_queued_seconds,
            processing_seconds=processing,
            size=self._size_for,
            decide_failure=self._export_outcome,
        )
        total = self.export_queued_seconds + processing
        return self._json(
            {
                "status": export.status(now),
                "message": "Export started",
                "estimated_time": estimate(total, 2.5),
            },
            self.accepted_status,
        )

    async def _export_status(self, request: web.Request) -> web.StreamResponse:
        """GET /projects/{projectId}/export (section 6.12)."""
        project_id = request.match_info["project_id"]
        export = self._store.export_of(_CONTEXT.get().account, project_id)
        status = export.status(self._now)
        if status == "completed":
            return self._json(
                {
                    "status": status,
                    "download_url": self.download_url(project_id),
                    "duration_seconds": export.duration_seconds,
                }
            )
        if status == "failed":
            return self._json(
                {"status": status, "error": f"Failed to render chapter {export.failed_chapter}"}
            )
        return self._json({"status": status, "download_url": None})

    # Asset origin ----------------------------------------------------------------------------

    def _url_problem(self, project_id: str, query: Mapping[str, str], now: float) -> str | None:
        """Check a download URL's signature and expiry; return what is wrong, if anything."""
        token = query.get("token", "")
        expires = query.get("expires", "")
        nonce, signature = token[:16], token[16:]
        expected = self._signature(project_id, expires, nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return "Invalid or missing signature"
        if now + self._wall_offset >= float(expires):
            return "Request has expired"
        return None

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """GET/HEAD /exports/{projectId}.mp4 on the asset origin."""
        project_id = request.match_info["project_id"]
        now = self._now
        faults = self.faults
        problem = self._url_problem(project_id, request.query, now)
        if problem is not None:
            return _s3_error(faults.expired_status, "AccessDenied", problem)
        project = self._store.projects.get(project_id)
        export = None if project is None else project.served_export(now)
        if export is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        content = export.content
        size = content.size
        last_modified = email.utils.formatdate(export.done_at + self._wall_offset, usegmt=True)
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": content.etag,
            "Last-Modified": last_modified,
            "Content-Type": "video/mp4",
        }
        start, end = 0, size
        partial = False
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if (
            range_header is not None
            and not faults.ignore_range
            and if_range
            in (
                None,
                content.etag,
                last_modified,
            )
        ):
            parsed = _parse_range(range_header, size)
            if parsed == "unsatisfiable":
                return _s3_error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
                )
            if parsed is not None:
                start, end = parsed
                partial = True
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response = web.StreamResponse(status=206 if partial else 200, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        cut: int | None = None
        if end > start and self._chance(faults.drop_rate):
            cut = start + int(self._rng.random() * (end - start))
        throttle = faults.slow_bytes_per_second
        chunk_size = _CHUNK if throttle is None else max(1, min(_CHUNK, int(throttle / 20)))
        for chunk in content.iter_range(start, end if cut is None else cut, chunk_size):
            if throttle is not None:
                await asyncio.sleep(len(chunk) / throttle)
            await response.write(chunk)
        if cut is not None:
            context = _CONTEXT.get()
            context.dropped = context.partial = True
            _close_connection(request)
        return response
