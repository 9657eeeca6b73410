"""
An independent simulator of the Babou API, written only from ``shared/babou-api.md``.

It exists so that the client is tested against a second reading of Babou's documentation,
not only against the project's own simulator (``babou_async.testing``, which this module
deliberately does not use or mirror). Wherever the docs leave room for two readings, this
simulator takes the less obvious plausible one:

* creates answer ``200`` (not ``201``); ``GET /projects`` is a bare JSON list that still
  honours ``limit``/``offset`` (``projects_shape="envelope"`` gives the other shape);
* names are measured in UTF-16 code units, as a JavaScript backend would;
* ``NOT_FOUND`` for chapters and assets, ``CONFLICT`` for prompts and 429 bodies use a
  nested envelope ``{"error": {"code", "message", "hint"}}``; the rest use the flat one;
* chapter status is ``"completed"`` (the MCP page's word) for some chapters and ``"ready"``
  for others; prompts carry a ``status`` field (the docs' sample code reads one);
  a forced prompt cancels the one in flight (the MCP reading), which becomes ``failed``;
* a failed asset's state is ``"failed"`` (the list filter's word), not ``"error"``;
* asset IDs may be bare UUIDs (``asset_ids="uuid"``), as the Get Asset page says;
* ``estimated_time`` uses an en dash (``"0.25\u20130.5 seconds"``, scaled down);
* a failed export has no ``download_url`` key; completed ones sometimes carry
  ``duration_seconds``; ``active_export_id`` stays set after the export ends;
* downloads come from a second origin (another port) with ``Range`` support, a weak ETag
  by default, and S3-style presigned URLs (``%2F``, ``%2B``, ``%3D`` escapes in the query)
  that expire (403 with an XML body, or 410); optionally chunked bodies, one-time URLs,
  a 302 to a CDN path, or storage that lags the ``completed`` status (404);
* ``Retry-After`` is sent as delay-seconds or as an HTTP-date; a 502 has an HTML body;
  a 5xx or a dropped connection may come after the request took effect (``*-after``).

Fault injection: random faults drawn from a seeded :class:`random.Random` (see
:class:`Faults`), and scripted one-shot faults (:meth:`IndependentBabou.inject`).
Every request to either origin is recorded in :attr:`IndependentBabou.requests`.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import random
import re
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Faults", "IndependentBabou", "Recorded"]

API_PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOWED_TYPES = frozenset(
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
_ALNUM = string.ascii_letters + string.digits


@dataclass
class Recorded:
    """One request as the simulator saw it (``status`` is ``None`` for a dropped one)."""

    origin: Literal["api", "asset"]
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_size: int = 0
    status: int | None = None
    fault: str | None = None
    bytes_sent: int = 0

    @property
    def dropped(self) -> bool:
        """Whether the origin cut this download on purpose."""
        return self.fault is not None and self.fault.startswith("drop")


@dataclass
class Faults:
    """
    Random faults, drawn from the simulator's seeded generator.

    Attributes:
        rate_429: Probability that an API request (any method) is answered 429.
        rate_5xx: Probability that an API request in ``methods`` gets a 500/502/503.
        rate_drop: Probability that an API request in ``methods`` has its connection closed
            before any response (for a POST, half the time after it took effect).
        methods: Methods subject to ``rate_5xx`` and ``rate_drop`` (429 hits every method).
        retry_after: Form of ``Retry-After`` on random 429s.
        download_drop: Probability that a download response is cut mid-body.
        download_5xx: Probability that a download request is answered 503 (or 429).
        ignore_range: The download origin ignores ``Range`` (always a full 200).
        etag: The ETag the download origin sends.
        url_ttl: Lifetime of a download URL, in seconds.
        expire_first_url: The first download URL minted per project is already expired.
        content_length: Send ``Content-Length`` on downloads (otherwise the body is
            chunked, as when storage streams it).
        exact_query: The download origin checks the URL's query byte for byte (as an
            origin that signs the raw query does), not after decoding (as S3 does).
        cdn_lag: For this long after an export completes, its file is not yet on the
            download origin (404 ``NoSuchKey``), as with storage that propagates slowly.
        redirect: The download URL answers 302 to a CDN path (same query) on its origin.
        url_uses: How many requests one download URL serves (``None``: unlimited), as
            with one-time signed links.
        expired_status: What an expired download URL gets.
        bytes_per_second: Throttle of each download body (``None``: as fast as possible).
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    methods: frozenset[str] = frozenset({"GET"})
    retry_after: Literal["seconds", "date", "mixed", "none"] = "mixed"
    download_drop: float = 0.0
    download_5xx: float = 0.0
    ignore_range: bool = False
    etag: Literal["weak", "strong", "none"] = "weak"
    url_ttl: float = 60.0
    expire_first_url: bool = False
    expired_status: Literal[403, 410] = 403
    url_uses: int | None = None
    content_length: bool = True
    exact_query: bool = False
    bytes_per_second: float | None = None
    redirect: bool = False
    cdn_lag: float = 0.0


@dataclass
class _Prompt:
    id: str
    content: str
    submitted: float
    seconds: float
    created_at: str
    cancelled: bool = False

    def state(self, now: float) -> str:
        if self.cancelled:
            return "failed"
        if now < self.submitted + self.seconds:
            return "processing"
        return "failed" if "FAIL_PROMPT" in self.content else "completed"

    def result(self, now: float) -> str | None:
        state = self.state(now)
        if state == "processing":
            return None
        if self.cancelled:
            return "Cancelled: superseded by a forced prompt"
        if state == "failed":
            return "Error: could not generate this scene"
        return f"Created a scene for: {self.content[:40]}"


@dataclass
class _Chapter:
    id: str
    project_id: str
    name: str
    duration: int | None
    created_at: str
    done_word: str
    prompt_status_field: bool
    prompts: list[_Prompt] = field(default_factory=list)

    def status(self, now: float) -> str:
        states = [p.state(now) for p in self.prompts]
        if "processing" in states:
            return "processing"
        live = [s for p, s in zip(self.prompts, states, strict=True) if not p.cancelled]
        if live and live[-1] == "failed":
            return "error"
        return self.done_word

    def completed(self, now: float) -> bool:
        states = [p.state(now) for p in self.prompts]
        return "completed" in states and "processing" not in states


@dataclass
class _Export:
    id: str
    started: float
    queued_s: float
    processing_s: float
    error: str | None
    duration_seconds: float | None

    @property
    def finished(self) -> float:
        return self.started + self.queued_s + self.processing_s

    def status(self, now: float) -> str:
        elapsed = now - self.started
        if elapsed < self.queued_s:
            return "queued"
        if elapsed < self.queued_s + self.processing_s:
            return "processing"
        return "failed" if self.error is not None else "completed"


@dataclass
class _Project:
    id: str
    owner: str
    name: str
    description: str | None
    settings: dict[str, Any] | None
    created_at: str
    chapters: list[_Chapter] = field(default_factory=list)
    export: _Export | None = None
    urls_minted: int = 0
    renders: int = 0  # exports started: each POST after a terminal one renders anew


@dataclass
class _Asset:
    id: str
    owner: str
    content_type: str
    size: int
    created_at: str
    uploaded: float
    seconds: float
    broken: bool
    sha256: str

    def state(self, now: float) -> str:
        if now < self.uploaded + self.seconds:
            return "processing"
        return "failed" if self.broken else "ready"


def _iso(ts: float) -> str:
    """JavaScript's ``toISOString()``: milliseconds and a ``Z``."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int(ts * 1000) % 1000:03d}Z"


def _key(request: web.Request) -> str:
    """The (already authenticated) API key of a request."""
    return request.headers.get("Authorization", "").partition(" ")[2]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _json(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def _error(
    status: int,
    code: str,
    message: str,
    hint: str | None = None,
    *,
    nested: bool = False,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    if nested:
        inner: dict[str, str] = {"code": code, "message": message}
        if hint is not None:
            inner["hint"] = hint
        return _json({"error": inner}, status, headers)
    flat: dict[str, str] = {"error": message, "code": code}
    if hint is not None:
        flat["hint"] = hint
    return _json(flat, status, headers)


class IndependentBabou:
    """
    The simulator: an API app and a download ("asset") app on two loopback ports.

    ::

        async with IndependentBabou(seed=1) as sim:
            pid = sim.add_project(chapters=2)
            ...  # point a BabouSession at sim.base_url with sim.api_key

    Args:
        seed: Seeds every random choice (faults, IDs, videos, response variants).
        faults: Random fault rates; none by default.
        api_key: The key the simulator accepts (more with ``other_keys``).
        other_keys: Further valid keys; each sees only its own projects and assets.
        expired_keys: Well-formed keys answered 401 ``API_KEY_EXPIRED``.
        prompt_seconds: Time a prompt takes to process.
        asset_seconds: Time an upload takes to process.
        export_queued_seconds: Time an export stays ``queued``.
        export_processing_seconds: Time it then stays ``processing``.
        projects_shape: ``"list"`` (a bare JSON list, honouring limit/offset),
            ``"list-all"`` (a bare list of everything, limit/offset ignored) or
            ``"envelope"`` (``{"projects": [...], "pagination": {...}}``).
        asset_ids: ``"prefixed"`` (``ast_...``) or ``"uuid"`` (bare UUIDs).
        max_upload_bytes: The upload size limit (the docs' "100 MB", read as MiB).
        video_size: Range of sizes of the deterministic export videos, in bytes.
        require_length: Refuse uploads without ``Content-Length`` (411), as some gateways do.

    Attributes:
        max_downloads_in_flight: The most video bodies served at once so far.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        faults: Faults | None = None,
        api_key: str = "sk-bab-independent0123456789",
        other_keys: tuple[str, ...] = (),
        expired_keys: tuple[str, ...] = (),
        prompt_seconds: float = 0.1,
        asset_seconds: float = 0.1,
        export_queued_seconds: float = 0.05,
        export_processing_seconds: float = 0.2,
        projects_shape: Literal["list", "list-all", "envelope"] = "list",
        asset_ids: Literal["prefixed", "uuid"] = "prefixed",
        max_upload_bytes: int = 100 * 1024 * 1024,
        video_size: tuple[int, int] = (100_000, 600_000),
        require_length: bool = False,
    ) -> None:
        self.seed = seed
        self.faults = faults or Faults()
        self.api_key = api_key
        self.keys = {api_key, *other_keys}
        self.expired_keys = set(expired_keys)
        self.prompt_seconds = prompt_seconds
        self.asset_seconds = asset_seconds
        self.export_queued_seconds = export_queued_seconds
        self.export_processing_seconds = export_processing_seconds
        self.projects_shape = projects_shape
        self.asset_ids = asset_ids
        self.max_upload_bytes = max_upload_bytes
        self.video_size = video_size
        self.require_length = require_length
        self.downloads_in_flight = 0
        self.max_downloads_in_flight = 0
        self.rng = random.Random(seed)
        self.requests: list[Recorded] = []
        self.projects: dict[str, _Project] = {}
        self.assets: dict[str, _Asset] = {}
        self.uploads: dict[str, bytes] = {}
        self.failing: dict[str, str] = {}
        self.nested_failures: set[str] = set()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_uses: dict[str, int] = {}
        self._queries: dict[str, str] = {}
        self._videos: dict[str, bytes] = {}
        self._script: list[tuple[str, str, re.Pattern[str], str]] = []
        self._runners: list[web.AppRunner] = []
        self._chapters_made = 0
        self.base_url = ""
        self.asset_base_url = ""

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        api = web.Application(middlewares=[self._api_middleware], client_max_size=2**31)
        routes = [
            ("POST", "/projects", self._create_project),
            ("GET", "/projects", self._list_projects),
            ("GET", "/projects/{pid}", self._get_project),
            ("POST", "/projects/{pid}/chapters", self._create_chapter),
            ("GET", "/projects/{pid}/chapters", self._list_chapters),
            ("GET", "/projects/{pid}/chapters/{cid}", self._get_chapter),
            ("POST", "/projects/{pid}/chapters/{cid}/prompt", self._submit_prompt),
            ("POST", "/assets", self._upload_asset),
            ("GET", "/assets", self._list_assets),
            ("GET", "/assets/{aid}", self._get_asset),
            ("POST", "/projects/{pid}/export", self._start_export),
            ("GET", "/projects/{pid}/export", self._get_export),
        ]
        for method, path, handler in routes:
            api.router.add_route(method, API_PREFIX + path, handler)
        assets = web.Application()
        assets.router.add_get("/exports/{name}", self._download)
        assets.router.add_get("/cdn/exports/{name}", self._download)
        for app in (api, assets):
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
        api_port = self._runners[0].addresses[0][1]
        asset_port = self._runners[1].addresses[0][1]
        self.base_url = f"http://127.0.0.1:{api_port}{API_PREFIX}"
        self.asset_base_url = f"http://127.0.0.1:{asset_port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    # -- helpers for tests ------------------------------------------------------------

    def _id(self, prefix: str, length: int) -> str:
        return prefix + "".join(self.rng.choice(_ALNUM) for _ in range(length))

    def add_project(
        self,
        name: str = "Sim project",
        *,
        chapters: int = 2,
        ready: bool = True,
        owner: str | None = None,
    ) -> str:
        """Create a project directly; its chapters' prompts are already done if ``ready``."""
        now = time.monotonic()
        pid = self._new_project(owner or self.api_key, name, None, None)
        for i in range(chapters):
            chapter = self._new_chapter(self.projects[pid], f"Chapter {i + 1}", None)
            submitted = now - self.prompt_seconds - 1 if ready else now
            chapter.prompts.append(
                _Prompt(self._id("int_", 12), f"Scene {i + 1}", submitted, 0.0, _iso(time.time()))
            )
            if not ready:
                chapter.prompts[-1].seconds = 3600.0
        return pid

    def put_export(self, project_id: str, *, ago: float = 3600.0) -> None:
        """Give ``project_id`` an export started ``ago`` seconds ago (completed by default)."""
        self.projects[project_id].renders += 1
        self.projects[project_id].export = _Export(
            id=self._id("exp_", 12),
            started=time.monotonic() - ago,
            queued_s=self.export_queued_seconds,
            processing_s=self.export_processing_seconds,
            error=self.failing.get(project_id),
            duration_seconds=None,
        )

    def fail_render(
        self, project_id: str, error: str = "Failed to render chapter 2", *, nested: bool = False
    ) -> None:
        """Make every export of ``project_id`` fail with ``error`` (as an object if nested)."""
        self.failing[project_id] = error
        if nested:
            self.nested_failures.add(project_id)

    def video(self, project_id: str, render: int | None = None) -> bytes:
        """
        The deterministic MP4-ish bytes of a project's export.

        Each render has bytes of its own (``render``: 1 for the first; default the latest),
        so a client that renders twice downloads something else than the first video.
        """
        project = self.projects.get(project_id)
        if render is None:
            render = max(1, project.renders) if project is not None else 1
        key = project_id if render == 1 else f"{project_id}#{render}"
        if key not in self._videos:
            rng = random.Random(f"{self.seed}/{key}")
            size = rng.randint(*self.video_size)
            head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
            self._videos[key] = (head + rng.randbytes(size))[:size]
        return self._videos[key]

    def renders(self, project_id: str) -> int:
        """How many exports of ``project_id`` were started (each one a render)."""
        return self.projects[project_id].renders

    def inject(
        self, fault: str, *, method: str = "GET", path: str = ".*", origin: str = "api"
    ) -> None:
        """
        Queue a one-shot fault for the next matching request.

        API faults: ``"429"``, ``"429:<seconds>"``, ``"429-date:<seconds>"``,
        ``"429-none"``, ``"500"``, ``"502"``, ``"503"``, ``"drop"`` (no response),
        ``"drop-after"`` (the request takes effect, then the connection drops),
        ``"500-after"``/``"502-after"``/``"503-after"`` (it takes effect, then a 5xx),
        ``"slow:<seconds>"``. Download faults (``origin="asset"``, ``method="GET"``):
        ``"drop"`` (cut at a random point), ``"drop:<bytes>"``, ``"drop-at-end"`` (every
        byte sent, then the connection closes without ending the body), ``"stall:<seconds>"``
        (half the body, then silence, then the rest), ``"expire"``, ``"503"``,
        ``"429"``, ``"ignore-range"``.
        ``path`` is a regex searched in the path after ``/api/v1``.
        """
        self._script.append((origin, method.upper(), re.compile(path), fault))

    def _take_script(self, origin: str, method: str, path: str) -> str | None:
        for i, (o, m, pattern, fault) in enumerate(self._script):
            if o == origin and m == method and pattern.search(path):
                del self._script[i]
                return fault
        return None

    def api_requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded API requests, filtered by method and a path regex."""
        return [
            r
            for r in self.requests
            if r.origin == "api"
            and (method is None or r.method == method)
            and (path is None or re.search(path, r.path))
        ]

    def asset_requests(self) -> list[Recorded]:
        """Recorded requests to the download origin."""
        return [r for r in self.requests if r.origin == "asset"]

    # -- state builders -----------------------------------------------------------------

    def _new_project(
        self, owner: str, name: str, description: str | None, settings: dict[str, Any] | None
    ) -> str:
        pid = self._id("prj_", 9)
        self.projects[pid] = _Project(pid, owner, name, description, settings, _iso(time.time()))
        return pid

    def _new_chapter(self, project: _Project, name: str, duration: int | None) -> _Chapter:
        chapter = _Chapter(
            id=self._id("cht_", 9),
            project_id=project.id,
            name=name,
            duration=duration,
            created_at=_iso(time.time()),
            # Alternate deterministically so that every test meets both variants.
            done_word=("completed", "ready")[self._chapters_made % 2],
            prompt_status_field=(self._chapters_made // 2) % 2 == 0,
        )
        self._chapters_made += 1
        project.chapters.append(chapter)
        return chapter

    # -- the API origin -----------------------------------------------------------------

    def _retry_after(self, form: str, seconds: float) -> dict[str, str]:
        if form == "mixed":
            form = self.rng.choice(["seconds", "date"])
        if form == "seconds":
            return {"Retry-After": str(math.ceil(seconds))}
        if form == "date":
            return {"Retry-After": email.utils.formatdate(time.time() + seconds, usegmt=True)}
        return {}

    def _fault_response(self, fault: str) -> web.Response:
        kind, _, arg = fault.partition(":")
        seconds = float(arg) if arg else 0.0
        if kind == "429":
            headers = self._retry_after("seconds", seconds)
        elif kind == "429-date":
            headers = self._retry_after("date", seconds)
        elif kind == "429-none":
            headers = {}
        elif kind == "429-random":
            headers = self._retry_after(self.faults.retry_after, 0)
        elif kind == "500":
            return _error(500, "INTERNAL_ERROR", "Internal server error")
        elif kind == "502":
            html = "<html><head><title>502 Bad Gateway</title></head><body><center>"
            html += "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
            return web.Response(status=502, text=html, content_type="text/html")
        elif kind == "503":
            return web.Response(
                status=503,
                text="Service Unavailable",
                content_type="text/plain",
                headers={"Retry-After": "0"},
            )
        else:
            raise AssertionError(f"unknown fault {fault!r}")
        return _error(
            429,
            "RATE_LIMIT_EXCEEDED",
            "Too many requests",
            "Slow down and retry with exponential backoff",
            nested=True,
            headers=headers,
        )

    def _random_fault(self, method: str) -> str | None:
        f = self.faults
        if f.rate_429 and self.rng.random() < f.rate_429:
            return "429-random"
        if method in f.methods:
            if f.rate_5xx and self.rng.random() < f.rate_5xx:
                return self.rng.choice(["500", "502", "503"])
            if f.rate_drop and self.rng.random() < f.rate_drop:
                # A dropped POST may or may not have taken effect.
                return "drop" if method == "GET" or self.rng.random() < 0.5 else "drop-after"
        return None

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        record = Recorded(
            origin="api",
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        fault = self._take_script("api", request.method, path) or self._random_fault(request.method)
        record.fault = fault
        if fault is not None and fault.startswith("slow:"):
            await asyncio.sleep(float(fault.split(":", 1)[1]))
            fault = None
        if fault == "drop":
            await request.read()
            return self._drop(request)
        after = fault is not None and fault.endswith("-after")
        if fault is not None and not after:
            await request.read()
            refusal = self._fault_response(fault)
            record.status = refusal.status
            return refusal
        auth = self._authenticate(request)
        if auth is not None:
            record.status = auth.status
            return auth
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = _error(404, "NOT_FOUND", f"Route {request.method} {path} not found")
        except web.HTTPMethodNotAllowed:
            response = _error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
        record.body_size = request.content_length or 0
        if fault == "drop-after":
            return self._drop(request)
        if fault is not None and after:  # e.g. "502-after": it took effect, a proxy failed
            response = self._fault_response(fault.removesuffix("-after"))
        record.status = response.status
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(text="never sent")

    def _authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return _error(401, "UNAUTHORIZED", "Unauthorized - Invalid API key")
        if not key.startswith("sk-bab-"):
            return _error(
                401,
                "INVALID_API_KEY_FORMAT",
                "Invalid API key format",
                "API keys start with sk-bab-",
            )
        if key in self.expired_keys:
            return _error(401, "API_KEY_EXPIRED", "API key has expired")
        if key not in self.keys:
            return _error(401, "UNAUTHORIZED", "Unauthorized - Invalid API key")
        return None

    async def _json_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_type != "application/json":
            return _error(
                400,
                "VALIDATION_ERROR",
                "Validation failed",
                "Content-Type must be application/json",
            )
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "Invalid JSON body")
        if not isinstance(body, dict):
            return _error(400, "VALIDATION_ERROR", "Validation failed", "Body must be an object")
        return body

    def _project(self, request: web.Request) -> _Project | None:
        project = self.projects.get(request.match_info["pid"])
        if project is None or project.owner != _key(request):
            return None
        return project

    @staticmethod
    def _project_not_found() -> web.Response:
        return _error(404, "NOT_FOUND", "Project not found")

    @staticmethod
    def _bad_name(name: object, what: str) -> web.Response | None:
        if not isinstance(name, str) or not 1 <= _utf16_len(name) <= 30:
            return _error(
                400,
                "VALIDATION_ERROR",
                "Validation failed",
                f"{what} must be between 1 and 30 characters",
            )
        return None

    @staticmethod
    def _project_json(project: _Project) -> dict[str, Any]:
        return {
            "id": project.id,
            "name": project.name,
            "description": project.description,
            "settings": project.settings,
            "active_export_id": project.export.id if project.export else None,
            "created_at": project.created_at,
            "updated_at": project.created_at,
        }

    async def _create_project(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        bad = self._bad_name(body.get("name"), "Name")
        if bad is not None:
            return bad
        description = body.get("description")
        if description is not None and (
            not isinstance(description, str) or _utf16_len(description) > 1000
        ):
            return _error(
                400,
                "VALIDATION_ERROR",
                "Validation failed",
                "Description must be at most 1000 characters",
            )
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            return _error(
                400, "VALIDATION_ERROR", "Validation failed", "Settings must be an object"
            )
        pid = self._new_project(_key(request), body["name"], description, settings)
        return _json(self._project_json(self.projects[pid]))

    async def _list_projects(self, request: web.Request) -> web.StreamResponse:
        page = self._page_params(request)
        if isinstance(page, web.Response):
            return page
        limit, offset = page
        mine = [p for p in self.projects.values() if p.owner == _key(request)]
        if self.projects_shape == "list-all":
            return _json([self._project_json(p) for p in mine])
        items = [self._project_json(p) for p in mine[offset : offset + limit]]
        if self.projects_shape == "list":
            return _json(items)
        return _json(
            {
                "projects": items,
                "pagination": {"limit": limit, "offset": offset, "total": len(mine)},
            }
        )

    async def _get_project(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        return _json(self._project_json(project))

    @staticmethod
    def _chapter_json(chapter: _Chapter, now: float, *, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": chapter.id,
            "project_id": chapter.project_id,
            "name": chapter.name,
            "created_at": chapter.created_at,
        }
        if chapter.duration is not None:  # omitted, not null, when none was given
            data["duration"] = chapter.duration
        if not full:
            return data
        data["status"] = chapter.status(now)
        data["prompt_count"] = len(chapter.prompts)
        return data

    def _prompt_json(self, chapter: _Chapter, prompt: _Prompt, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": prompt.id,
            "content": prompt.content,
            "result": prompt.result(now),
            "created_at": prompt.created_at,
        }
        if chapter.prompt_status_field:
            data["status"] = prompt.state(now)
        return data

    async def _create_chapter(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        bad = self._bad_name(body.get("name"), "Name")
        if bad is not None:
            return bad
        duration = body.get("duration")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or duration <= 0
            or duration != int(duration)
        ):
            return _error(
                400, "VALIDATION_ERROR", "Validation failed", "Duration must be a positive integer"
            )
        chapter = self._new_chapter(
            project, body["name"], None if duration is None else int(duration)
        )
        return _json(self._chapter_json(chapter, time.monotonic(), full=False))

    async def _list_chapters(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        now = time.monotonic()
        return _json(
            {
                "project_id": project.id,
                "chapters": [self._chapter_json(c, now, full=True) for c in project.chapters],
            }
        )

    def _chapter(self, request: web.Request, project: _Project) -> _Chapter | None:
        cid = request.match_info["cid"]
        return next((c for c in project.chapters if c.id == cid), None)

    async def _get_chapter(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        chapter = self._chapter(request, project)
        if chapter is None:
            return _error(404, "NOT_FOUND", "Chapter not found", nested=True)
        now = time.monotonic()
        data = self._chapter_json(chapter, now, full=True)
        data["prompts"] = [self._prompt_json(chapter, p, now) for p in chapter.prompts]
        return _json(data)

    async def _submit_prompt(  # noqa: PLR0911 - the endpoint's checks in the docs' order
        self, request: web.Request
    ) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        chapter = self._chapter(request, project)
        if chapter is None:
            return _error(404, "NOT_FOUND", "Chapter not found", nested=True)
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        content = body.get("content")
        if not isinstance(content, str) or not 1 <= _utf16_len(content) <= 5000:
            return _error(
                400,
                "VALIDATION_ERROR",
                "Validation failed",
                "Content must be between 1 and 5000 characters",
            )
        force = body.get("force", False)
        if not isinstance(force, bool):
            return _error(400, "VALIDATION_ERROR", "Validation failed", "force must be a boolean")
        now = time.monotonic()
        in_flight = [p for p in chapter.prompts if p.state(now) == "processing"]
        if in_flight and not force:
            return _error(
                409,
                "CONFLICT",
                "A prompt is already being processed for this chapter",
                "Wait for the current prompt to complete or set force: true to override",
                nested=True,
            )
        for prompt in in_flight:  # the MCP reading of force: cancel and restart
            prompt.cancelled = True
        prompt = _Prompt(self._id("int_", 12), content, now, self.prompt_seconds, _iso(time.time()))
        chapter.prompts.append(prompt)
        low = self.prompt_seconds
        return _json(
            {
                "prompt_id": prompt.id,
                "status": "processing",
                "message": "Prompt processing started",
                "estimated_time": f"{low:g}\u2013{3 * low:g} seconds",
            }
        )

    # -- assets -------------------------------------------------------------------------

    def _asset_json(self, asset: _Asset, now: float) -> dict[str, Any]:
        state = asset.state(now)
        kind = asset.content_type.split("/", 1)[0]
        ready = state == "ready"
        return {
            "id": asset.id,
            "name": "uploaded-file",
            "url": f"s3://babou-assets/assets/{asset.id}-original" if ready else None,
            "content_type": asset.content_type,
            "size": asset.size,
            "state": state,
            "duration": 12.5 if ready and kind in ("audio", "video") else None,
            "width": 640 if ready and kind in ("image", "video") else None,
            "height": 480 if ready and kind in ("image", "video") else None,
            "created_at": asset.created_at,
        }

    async def _upload_asset(  # noqa: PLR0911 - the endpoint's checks in the docs' order
        self, request: web.Request
    ) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type")
        if not ctype:
            return _error(400, "VALIDATION_ERROR", "Content-Type header is required")
        base = ctype.split(";", 1)[0].strip().lower()
        if base not in ALLOWED_TYPES:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Unsupported content type: {base}",
                "See the list of supported formats",
            )
        too_large = _error(
            413,
            "FILE_TOO_LARGE",
            "File size exceeds maximum allowed size of 100MB",
            "Compress the file or split it",
        )
        if request.content_length is not None and request.content_length > self.max_upload_bytes:
            return too_large
        if self.require_length and request.content_length is None:
            return _error(411, "LENGTH_REQUIRED", "Content-Length header is required")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_upload_bytes:
                return too_large
            chunks.append(chunk)
        data = b"".join(chunks)
        if data.startswith(b"UPLOAD_FAIL"):
            return _error(500, "UPLOAD_FAILED", "Failed to upload file to storage")
        aid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if self.asset_ids == "prefixed":
            aid = self._id("ast_", 21)
        asset = _Asset(
            id=aid,
            owner=_key(request),
            content_type=base,
            size=len(data),
            created_at=_iso(time.time()),
            uploaded=time.monotonic(),
            seconds=self.asset_seconds,
            broken=data.startswith(b"BROKEN"),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.assets[aid] = asset
        self.uploads[aid] = data
        return _json(self._asset_json(asset, time.monotonic()))

    @staticmethod
    def _page_params(request: web.Request) -> tuple[int, int] | web.Response:
        try:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return _error(
                400, "VALIDATION_ERROR", "Validation failed", "limit/offset must be numbers"
            )
        if not 1 <= limit <= 100 or offset < 0:
            return _error(
                400, "VALIDATION_ERROR", "Validation failed", "limit must be between 1 and 100"
            )
        return limit, offset

    async def _list_assets(self, request: web.Request) -> web.StreamResponse:
        page = self._page_params(request)
        if isinstance(page, web.Response):
            return page
        limit, offset = page
        now = time.monotonic()
        ctype = request.query.get("contentType")
        state = request.query.get("state")
        if state == "error":  # the list filter's vocabulary says "failed"
            state = "failed"
        mine = [
            a
            for a in sorted(self.assets.values(), key=lambda a: a.uploaded, reverse=True)
            if a.owner == _key(request)
            and (ctype is None or a.content_type == ctype)
            and (state is None or a.state(now) == state)
        ]
        return _json(
            {
                "assets": [self._asset_json(a, now) for a in mine[offset : offset + limit]],
                "pagination": {"limit": limit, "offset": offset, "total": len(mine)},
            }
        )

    async def _get_asset(self, request: web.Request) -> web.StreamResponse:
        asset = self.assets.get(request.match_info["aid"])
        if asset is None or asset.owner != _key(request):
            return _error(404, "NOT_FOUND", "Asset not found", nested=True)
        return _json(self._asset_json(asset, time.monotonic()))

    # -- exports ------------------------------------------------------------------------

    async def _start_export(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        await request.read()
        now = time.monotonic()
        if project.export is not None and project.export.status(now) in ("queued", "processing"):
            return _error(
                409,
                "CONFLICT",
                "An export is already in progress for this project",
                "Wait for the current export to complete or check its status",
            )
        if not any(c.completed(now) for c in project.chapters):
            return _error(
                400,
                "VALIDATION_ERROR",
                "Project has no completed chapters",
                "Add chapters and submit prompts before exporting",
            )
        project.renders += 1
        project.export = _Export(
            id=self._id("exp_", 12),
            started=now,
            queued_s=self.export_queued_seconds,
            processing_s=self.export_processing_seconds,
            error=self.failing.get(project.id),
            duration_seconds=round(self.rng.uniform(5, 60), 1) if self.rng.random() < 0.5 else None,
        )
        low = self.export_queued_seconds + self.export_processing_seconds
        return _json(
            {
                "status": "queued",
                "message": "Export started",
                "estimated_time": f"{low:g}\u2013{2 * low:g} seconds",
            }
        )

    def _mint_url(self, project: _Project) -> str:
        """An S3-style presigned URL; the origin checks its query string byte for byte."""
        signature = "".join(self.rng.choice("0123456789abcdef") for _ in range(64))
        session_token = "".join(self.rng.choice(_ALNUM) for _ in range(24))
        now = time.monotonic()
        expires = now + self.faults.url_ttl
        if self.faults.expire_first_url and project.urls_minted == 0:
            expires = now - 1.0
        project.urls_minted += 1
        self._tokens[signature] = (project.id, expires)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential=AKIAEXAMPLE%2F{stamp[:8]}%2Fus-east-1%2Fs3%2Faws4_request"
            f"&X-Amz-Date={stamp}&X-Amz-Expires={max(1, math.ceil(self.faults.url_ttl))}"
            # Percent-escapes a client must pass through untouched (%2B is not a space).
            f"&X-Amz-Security-Token={session_token[:12]}%2B{session_token[12:]}%2F%3D%3D"
            f"&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
        )
        self._queries[signature] = query
        return f"{self.asset_base_url}/exports/{project.id}.mp4?{query}"

    async def _get_export(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        if project is None:
            return self._project_not_found()
        export = project.export
        if export is None:
            return _error(
                404,
                "NOT_FOUND",
                "No export found for this project",
                "Start an export first using POST /api/v1/projects/{projectId}/export",
            )
        status = export.status(time.monotonic())
        if status == "failed":
            error: Any = export.error
            if project.id in self.nested_failures:
                error = {"code": "RENDER_FAILED", "message": export.error}
            return _json({"status": "failed", "error": error})  # no download_url key
        if status != "completed":
            return _json({"status": status, "download_url": None})
        data: dict[str, Any] = {"status": "completed", "download_url": self._mint_url(project)}
        if export.duration_seconds is not None:
            data["duration_seconds"] = export.duration_seconds
        return _json(data)

    # -- the download origin ----------------------------------------------------------

    def _etag(self, project_id: str) -> str | None:
        digest = hashlib.sha256(self.video(project_id)).hexdigest()[:32]
        if self.faults.etag == "strong":
            return f'"{digest}"'
        if self.faults.etag == "weak":
            return f'W/"{digest}"'
        return None

    def _expired(self) -> web.Response:
        if self.faults.expired_status == 410:
            return web.Response(status=410, text="Gone: link expired", content_type="text/plain")
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            "<Message>Request has expired</Message></Error>"
        )
        return web.Response(status=403, text=xml, content_type="application/xml")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        record = Recorded(
            origin="asset",
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        f = self.faults
        token = request.query.get("X-Amz-Signature", "")
        entry = self._tokens.get(token)
        raw_query = request.rel_url.raw_query_string
        minted = self._queries.get(token, "")
        # S3 canonicalises the decoded parameters before checking a signature; an origin
        # that signs the raw query (exact_query) also tells %2F from "/".
        if entry is not None and (
            raw_query != minted if f.exact_query else parse_qsl(raw_query) != parse_qsl(minted)
        ):
            record.status, record.fault = 403, "bad-signature"
            return web.Response(
                status=403,
                text="<Error><Code>SignatureDoesNotMatch</Code></Error>",
                content_type="application/xml",
            )
        if (
            entry is None
            or f"{entry[0]}.mp4" != request.match_info["name"]
            or entry[1] < time.monotonic()
            or (f.url_uses is not None and self._token_uses.get(token, 0) >= f.url_uses)
        ):
            record.status = self._expired().status
            return self._expired()
        export = self.projects[entry[0]].export
        if export is not None and time.monotonic() < export.finished + f.cdn_lag:
            record.status = 404
            return web.Response(
                status=404,
                text="<Error><Code>NoSuchKey</Code></Error>",
                content_type="application/xml",
            )
        if f.redirect and request.path.startswith("/exports/"):
            record.status = 302
            location = f"{self.asset_base_url}/cdn{request.path}?{raw_query}"
            return web.Response(status=302, headers={"Location": location})
        # Faults apply to requests with a valid URL (an expired one never consumes one).
        fault = self._take_script("asset", request.method, request.path)
        if fault is None and f.download_5xx and self.rng.random() < f.download_5xx:
            fault = self.rng.choice(["503", "429"])
        record.fault = fault
        response: web.StreamResponse | None = None
        if fault == "503":
            response = web.Response(status=503, text="Slow Down", headers={"Retry-After": "0"})
        elif fault == "429":
            response = web.Response(status=429, text="Too Many Requests")
        elif fault == "expire":
            response = self._expired()
        if response is not None:
            record.status = response.status
            return response
        self._token_uses[token] = self._token_uses.get(token, 0) + 1
        return await self._serve_video(request, record, entry[0], fault)

    async def _serve_video(  # noqa: C901, PLR0912, PLR0915 - one response, read top to bottom
        self, request: web.Request, record: Recorded, project_id: str, fault: str | None
    ) -> web.StreamResponse:
        body = self.video(project_id)
        total = len(body)
        etag = self._etag(project_id)
        start = 0
        ranged = False
        range_header = request.headers.get("Range")
        ignore = self.faults.ignore_range or fault == "ignore-range"
        if range_header and not ignore:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if_range = request.headers.get("If-Range")
            honour = if_range is None or (
                etag is not None and not etag.startswith("W/") and if_range == etag
            )
            if match and honour:
                start = int(match[1])
                end = int(match[2]) if match[2] else total - 1
                if start >= total:
                    record.status = 416
                    return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
                body = body[start : min(end, total - 1) + 1]
                ranged = True
        response = web.StreamResponse(status=206 if ranged else 200)
        response.content_type = "video/mp4"
        if self.faults.content_length:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        if ranged:
            response.headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{total}"
        if not ignore:
            response.headers["Accept-Ranges"] = "bytes"
        if etag is not None:
            response.headers["ETag"] = etag
        record.status = response.status
        drop = fault == "drop" or (
            self.faults.download_drop > 0 and self.rng.random() < self.faults.download_drop
        )
        cut = self.rng.randint(1, len(body) - 1) if drop and len(body) > 1 else len(body)
        if fault is not None and fault.startswith("drop:"):  # cut after exactly N bytes
            cut = min(int(fault.split(":", 1)[1]), len(body) - 1)
        self.downloads_in_flight += 1
        self.max_downloads_in_flight = max(self.max_downloads_in_flight, self.downloads_in_flight)
        try:
            await response.prepare(request)
            sent = 0
            stall_at = len(body) // 2 if fault is not None and fault.startswith("stall:") else -1
            throttle = self.faults.bytes_per_second
            while sent < cut:
                chunk = body[sent : min(cut, sent + 65536)]
                await response.write(chunk)
                # Let concurrent downloads interleave (and throttle, when asked).
                await asyncio.sleep(len(chunk) / throttle if throttle else 0)
                sent += len(chunk)
                record.bytes_sent = sent
                if fault is not None and 0 <= stall_at < sent:
                    stall_at = -1
                    await asyncio.sleep(float(fault.split(":", 1)[1]))
            if cut < len(body) or fault == "drop-at-end":
                record.fault = record.fault or "drop"
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
            return response
        finally:
            self.downloads_in_flight -= 1
