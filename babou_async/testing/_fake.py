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

``FakeBabou`` holds the knobs, the lifecycle and the inspection methods; the work is done by
its parts, each reading the knobs live:

- ``_gate``: recording, injections, authentication, the token bucket and the
  request-level faults, as the middleware of both origins;
- ``_endpoints``: the API's handlers over the store of ``_state``;
- ``_origin``: URL signing, ``Range`` parsing and serving the downloads.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import re
import secrets
import time
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from ._endpoints import MIB, ApiEndpoints
from ._entities import Asset, Export, Project, media_facts
from ._faults import Draws, Faults, Injection, Origin
from ._gate import KEY_PREFIX, Gate, Keyring
from ._http import API_PREFIX
from ._origin import AssetOrigin
from ._records import RecordedRequest
from ._state import Store

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

__all__ = ["API_PREFIX", "FakeBabou"]

_SHUTDOWN_TIMEOUT = 0.5


def _url_host(host: str) -> str:
    """Turn a bind address into the host part of a URL."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - only compared, never bound here
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


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
        max_upload_bytes: int = 100 * MIB,
        create_status: int = 201,
        accepted_status: int = 200,
        prompt_status_field: bool = False,
        record_limit: int | None = None,
        clock: Callable[[], float] | None = None,
        epoch: float | None = None,
    ) -> None:
        if api_key is not None and not api_key.startswith(KEY_PREFIX):
            raise ValueError(f"api_key must start with {KEY_PREFIX!r}")
        label = secrets.token_hex(8) if seed is None else repr(seed)
        self._clock = time.monotonic if clock is None else clock
        now = self._clock()
        self._wall_offset = (time.time() if epoch is None else epoch) - now
        self._assemble(label, api_key)
        self.rate_limit = rate_limit
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

    def _assemble(self, label: str, api_key: str | None) -> None:
        """
        Build the store and the parts that serve it, each with its own seeded stream.

        The gate, the endpoints and the origin read this object's public knobs live,
        so that changing one while the server runs takes effect at the next request.
        They share one stream of fault draws, so that a seed fixes every fault.
        """
        # Seeded generators on purpose: the simulator must be reproducible, and
        # nothing here protects real secrets.
        keys = Keyring(random.Random(f"babou:{label}:keys"), api_key)  # noqa: S311
        draws = Draws(random.Random(f"babou:{label}:faults"))  # noqa: S311
        tokens = random.Random(f"babou:{label}:tokens")  # noqa: S311
        ids = random.Random(f"babou:{label}:ids")  # noqa: S311
        clock, wall_offset = self._clock, self._wall_offset
        self._store = Store(ids=ids, wall_offset=wall_offset, video_key=f"babou:{label}".encode())
        self._gate = Gate(self, clock=clock, wall_offset=wall_offset, keys=keys, draws=draws)
        self._endpoints = ApiEndpoints(
            self, store=self._store, clock=clock, wall_offset=wall_offset, draws=draws
        )
        self._origin = AssetOrigin(
            self,
            store=self._store,
            clock=clock,
            wall_offset=wall_offset,
            draws=draws,
            tokens=tokens,
        )

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
            api_app = self._endpoints.app(self._gate.middleware("api"))
            api_port = await self._serve(api_app, self._port)
            asset_app = self._origin.app(self._gate.middleware("asset"))
            asset_port = await self._serve(asset_app, self._asset_port)
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
        return self._gate.keys.primary

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
            key = self._gate.keys.new_key()
        elif not key.startswith(KEY_PREFIX):
            raise ValueError(f"key must start with {KEY_PREFIX!r}")
        self._gate.keys.add(key, account)
        return key

    def expire_key(self, key: str | None = None) -> None:
        """
        Make a key answer 401 ``API_KEY_EXPIRED`` from now on.

        Args:
            key: The key; default: :attr:`api_key`. It need not be a known key.
        """
        self._gate.keys.expire(self.api_key if key is None else key)

    def revoke_key(self, key: str | None = None) -> None:
        """
        Make a key invalid (401 ``UNAUTHORIZED``) from now on.

        Args:
            key: The key; default: :attr:`api_key`.
        """
        self._gate.keys.revoke(self.api_key if key is None else key)

    @property
    def rate_limit(self) -> tuple[float, int] | None:
        """``(requests_per_second, burst)`` of the per-key token bucket, or ``None``."""
        return self._gate.buckets.limit

    @rate_limit.setter
    def rate_limit(self, value: tuple[float, int] | None) -> None:
        self._gate.buckets.limit = value

    # Requests and injections -----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received on both origins, in arrival order (a live list)."""
        return self._gate.requests

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._gate.requests.clear()

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
            for record in self._gate.requests
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
        self._gate.injections.append(injection)
        return injection

    def clear_injections(self) -> None:
        """Withdraw every pending injection."""
        for injection in self._gate.injections:
            injection.cancel()
        self._gate.injections.clear()

    # Seeding and inspection ------------------------------------------------------------

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
        project = self._store.add_project(
            self._gate.keys.account_of(key), name, description, None, now
        )
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
            account=self._gate.keys.account_of(key),
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

    def renders(self, project_id: str) -> int:
        """
        Return how many exports of a project were started (each one a render paid for).

        Args:
            project_id: The project id.

        Returns:
            The number of exports started, failed ones included.

        Raises:
            LookupError: For an unknown project.
        """
        return len(self._project(project_id).exports)

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
        self._origin.signer.rotate()

    def download_url(self, project_id: str) -> str:
        """
        Sign a fresh download URL for a project, as GET export does.

        Args:
            project_id: The project id (whether or not an export completed).

        Returns:
            ``<asset_base_url>/exports/<project_id>.mp4?token=...&expires=...``,
            valid for :attr:`url_ttl` seconds.
        """
        expires_at = self._clock() + self._wall_offset + self.url_ttl
        path = self._origin.signed_path(project_id, expires_at)
        return f"{self.asset_base_url}{path}"
