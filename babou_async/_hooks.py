"""
Observability hooks: what a session tells the application, and how it tells it.

The public part is :class:`Hooks` and its five event types, a stable interface (see
``docs/observability.md``). The private part is :class:`Observer`, one per session, which
watches every request for the hooks, the ``babou_async.http`` DEBUG line and the
OpenTelemetry spans (:mod:`babou_async._otel`) at once, and costs one check per request
when none of them is wanted.

A hook is any callable taking the event: a plain function, or an ``async def`` (its
awaitable is awaited where the event happens, so that a hook sees events in order; keep it
short). What a hook raises is logged on ``babou_async.callbacks`` and ignored: a hook
never breaks a request. Events carry no API key, and URLs no query: a download URL's query
is its signature.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from . import _otel as otel
from ._callbacks import call_quietly
from ._clock import Clock
from ._exceptions import BabouError, ConfigurationError
from ._logging import callbacks_log as log
from ._logging import http_log
from ._models import Asset, Chapter, Export
from ._protocol import request_id_of
from ._redaction import Redactor
from ._transport import SendFailure, StreamResponse, strip_query

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.trace import Span

__all__ = [
    "DownloadProgressEvent",
    "Hooks",
    "Meter",
    "Observer",
    "Probe",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "StatusChangeEvent",
]

_E = TypeVar("_E")

#: Where a request went: the API, or the download (asset) host.
Origin = Literal["api", "download"]

#: Download progress is reported at most once per this many bytes (and at the end).
PROGRESS_STEP = 1024 * 1024


@attrs.frozen(kw_only=True)
class RequestEvent:
    """
    A request is about to be sent (each attempt: a retry is a new request).

    .. versionadded:: 0.2

    Attributes:
        method: ``GET``, ``POST``...
        url: The URL without its query (API requests: the base URL and path).
        attempt: 1 for the first try, 2 for the first retry...
        origin: ``"api"``, or ``"download"`` for the download host.
        project_id: The project the request is about, when there is one.
    """

    method: str
    url: str
    attempt: int
    origin: Literal["api", "download"]
    project_id: str | None = None


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """
    A request ended: with a response (``status``), or without one (``error``).

    .. versionadded:: 0.2

    Attributes:
        method: As in :class:`RequestEvent`.
        url: As in :class:`RequestEvent`.
        attempt: As in :class:`RequestEvent`.
        origin: As in :class:`RequestEvent`.
        project_id: As in :class:`RequestEvent`.
        status: The HTTP status; ``None`` when no response arrived.
        elapsed: Seconds from sending to the response's headers (downloads: before the
            body), on the session's clock.
        request_id: The server's request ID (``X-Request-Id`` and friends), if any.
        error: Why no response arrived (a :class:`TransportError`), else ``None``.
    """

    method: str
    url: str
    attempt: int
    origin: Literal["api", "download"]
    project_id: str | None = None
    status: int | None = None
    elapsed: float = 0.0
    request_id: str | None = None
    error: BabouError | None = None


@attrs.frozen(kw_only=True)
class RetryEvent:
    """
    A failed request will be retried, or an interrupted download resumed, after ``delay``.

    .. versionadded:: 0.2

    Attributes:
        method: As in :class:`RequestEvent`.
        url: As in :class:`RequestEvent`.
        attempt: The attempt that failed.
        origin: As in :class:`RequestEvent`.
        project_id: As in :class:`RequestEvent`.
        delay: Seconds until the next attempt.
        reason: Why, in words (``"HTTP 503"``, ``"connection dropped"``...).
    """

    method: str
    url: str
    attempt: int
    origin: Literal["api", "download"]
    project_id: str | None = None
    delay: float = 0.0
    reason: str = ""


@attrs.frozen(kw_only=True)
class StatusChangeEvent:
    """
    A watched job entered a new status (each status a watch or wait yields).

    .. versionadded:: 0.2

    Attributes:
        kind: ``"export"``, ``"chapter"`` or ``"asset"``.
        resource_id: The export's project ID, the chapter's or the asset's ID.
        project_id: The project, when the job belongs to one.
        status: The server's status string (``"processing"``, ``"completed"``...).
        previous_status: The status seen before, ``None`` for the first one.
        terminal: Whether the job is over (the watch ends).
    """

    kind: Literal["export", "chapter", "asset"]
    resource_id: str
    project_id: str | None
    status: str
    previous_status: str | None
    terminal: bool


@attrs.frozen(kw_only=True)
class DownloadProgressEvent:
    """
    Bytes of a video arrived from the download host (at most once per MiB, and at the end).

    Sent for every download: to disk, and :meth:`BabouSession.iter_export_bytes`.

    .. versionadded:: 0.2

    Attributes:
        project_id: The project.
        url: The download URL without its query.
        bytes_done: Bytes of the video received so far (a resume counts what it kept).
        bytes_total: The video's size, once the host announced it.
    """

    project_id: str
    url: str
    bytes_done: int
    bytes_total: int | None


def _callables(value: object) -> tuple[Callable[[Any], object], ...]:
    """A tuple of the hooks given (a list, a tuple...), each checked to be callable."""
    if callable(value) or isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        msg = f"expected a sequence of callables (e.g. [hook]), got {type(value).__name__}"
        raise TypeError(msg)
    hooks = tuple(value)
    for hook in hooks:
        if not callable(hook):
            msg = f"a hook must be callable, got {type(hook).__name__}"
            raise TypeError(msg)
    return hooks


def _field() -> Any:
    return attrs.field(default=(), converter=_callables)


@attrs.frozen(kw_only=True)
class Hooks:
    """
    Callables the session calls as things happen: a stable interface for metrics and tracing.

    Each field is a sequence of hooks, each called with one event: plain functions, or
    ``async def`` functions (awaited where the event happens; keep them short). What a hook
    raises is logged (``babou_async.callbacks``) and ignored. With no hooks, nothing is
    built or called. See ``docs/observability.md``::

        def count(event: babou_async.ResponseEvent) -> None:
            metrics.histogram("babou.request", event.elapsed, status=event.status)

        BabouSession(hooks=babou_async.Hooks(on_response=[count]))

    .. versionadded:: 0.2

    Attributes:
        on_request: :class:`RequestEvent`: a request is about to be sent.
        on_response: :class:`ResponseEvent`: it was answered, or failed without an answer.
        on_retry: :class:`RetryEvent`: a retry (or a download resume) is scheduled.
        on_status_change: :class:`StatusChangeEvent`: a watched job changed status.
        on_download_progress: :class:`DownloadProgressEvent`: video bytes arrived.
    """

    on_request: Sequence[Callable[[RequestEvent], object]] = _field()
    on_response: Sequence[Callable[[ResponseEvent], object]] = _field()
    on_retry: Sequence[Callable[[RetryEvent], object]] = _field()
    on_status_change: Sequence[Callable[[StatusChangeEvent], object]] = _field()
    on_download_progress: Sequence[Callable[[DownloadProgressEvent], object]] = _field()


async def emit(name: str, hooks: Sequence[Callable[[_E], object]], event: _E) -> None:
    """Call each hook with ``event``, awaiting what it returns if awaitable; never raise."""
    for hook in hooks:
        result = call_quietly(name, hook, event, what="hook")
        if inspect.isawaitable(result):
            try:
                await result
            except Exception:  # noqa: BLE001 - logged: a hook never breaks a request
                log.exception("%s hook raised; ignored", name)


def _project_of(path: str) -> str | None:
    """The project ID of an API path (``/projects/prj_x/...``), if it names one."""
    parts = path.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[1] == "projects" else None


class Observer:
    """
    The hooks, the request log and the tracer of one session, behind one cheap check.

    Raises:
        ConfigurationError: ``hooks`` is not a :class:`Hooks` or ``None``.
    """

    __slots__ = ("_api_base", "_watching", "clock", "hooks", "redact", "tracing")

    def __init__(self, hooks: object, *, clock: Clock, redact: Redactor, base_url: str) -> None:
        if hooks is not None and not isinstance(hooks, Hooks):
            raise ConfigurationError(
                f"hooks must be a babou_async.Hooks or None, got {type(hooks).__name__}"
            )
        self.hooks = hooks or Hooks()
        self._watching = bool(self.hooks.on_request or self.hooks.on_response)
        self.tracing = otel.Tracing()
        self.clock = clock
        self.redact = redact
        self._api_base = redact(base_url)

    def request(self, method: str, path: str, attempt: int) -> Probe | None:
        """A probe for one API request, or ``None`` when nothing watches requests."""
        tracing = self.tracing
        tracer = tracing.current
        if tracer is None:
            quiet = not self._watching and not http_log.isEnabledFor(logging.DEBUG)
            if quiet and (tracing.off or tracing.monotonic() < tracing.next_look):
                return None  # the hot path when nothing watches: no call but the log's
            tracer = tracing.tracer()
            if quiet and tracer is None:
                return None
        url = self._api_base + path
        span = None if tracer is None else otel.request_span(tracer, method, url, attempt)
        return Probe(self, method, url, path, attempt, "api", _project_of(path), span)

    def download(
        self,
        opened: AbstractAsyncContextManager[StreamResponse],
        url: str,
        attempt: int,
        project_id: str | None,
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """``opened``, watched like a request when anything watches requests."""
        if not self._watching and not http_log.isEnabledFor(logging.DEBUG):
            return opened
        shown = self.redact(strip_query(url))
        where = shown.partition("://")[2] or shown  # host and path, for the log line
        probe = Probe(self, "GET", shown, where, attempt, "download", project_id, None)
        return probe.around(opened)

    async def api_retry(
        self, method: str, path: str, attempt: int, delay: float, reason: str
    ) -> None:
        """Tell the ``on_retry`` hooks that an API request will be retried."""
        if self.hooks.on_retry:
            event = RetryEvent(
                method=method,
                url=self._api_base + path,
                attempt=attempt,
                origin="api",
                project_id=_project_of(path),
                delay=delay,
                reason=self.redact(reason),
            )
            await emit("on_retry", self.hooks.on_retry, event)

    async def download_retry(
        self, project_id: str, url: str, attempt: int, delay: float, reason: str
    ) -> None:
        """Tell the ``on_retry`` hooks that a download resumes (or refreshes its URL)."""
        if self.hooks.on_retry:
            event = RetryEvent(
                method="GET",
                url=self.redact(strip_query(url)),
                attempt=attempt,
                origin="download",
                project_id=project_id,
                delay=delay,
                reason=self.redact(reason),
            )
            await emit("on_retry", self.hooks.on_retry, event)

    async def status_changed(
        self, item: object, status: str, previous: str | None, end: bool
    ) -> None:
        """Tell the ``on_status_change`` hooks that a watched job entered ``status``."""
        if not self.hooks.on_status_change:
            return
        kind: Literal["export", "chapter", "asset"]
        project: str | None
        if isinstance(item, Export):
            kind, resource, project = "export", item.project_id, item.project_id
        elif isinstance(item, Chapter):
            kind, resource, project = "chapter", item.id, item.project_id
        elif isinstance(item, Asset):
            kind, resource, project = "asset", item.id, None
        else:  # pragma: no cover - only these three are watched
            return
        event = StatusChangeEvent(
            kind=kind,
            resource_id=resource,
            project_id=project,
            status=self.redact(status),
            previous_status=previous if previous is None else self.redact(previous),
            terminal=end,
        )
        await emit("on_status_change", self.hooks.on_status_change, event)

    def meter(self, project_id: str, url: str) -> Meter | None:
        """Download progress reporting for the hooks, or ``None`` when none listens."""
        if not self.hooks.on_download_progress:
            return None
        return Meter(self.hooks, project_id, self.redact(strip_query(url)))


class Meter:
    """Reports a download's bytes to the ``on_download_progress`` hooks, about once a MiB."""

    __slots__ = ("_hooks", "_last", "_project_id", "_url")

    def __init__(self, hooks: Hooks, project_id: str, url: str) -> None:
        self._hooks = hooks
        self._project_id = project_id
        self._url = url
        self._last = -1

    async def advance(self, done: int, total: int | None, *, final: bool = False) -> None:
        """``done`` bytes of ``total`` have arrived; report if a MiB passed, or at the end."""
        if done == self._last or (
            not final and done != total and done - self._last < PROGRESS_STEP
        ):
            return
        self._last = done
        event = DownloadProgressEvent(
            project_id=self._project_id, url=self._url, bytes_done=done, bytes_total=total
        )
        await emit("on_download_progress", self._hooks.on_download_progress, event)


class Probe:
    """One request, watched: its span, its DEBUG line and its two hook events."""

    __slots__ = (
        "_attempt",
        "_method",
        "_observer",
        "_origin",
        "_project_id",
        "_shown",
        "_span",
        "_started",
        "_url",
    )

    def __init__(
        self,
        observer: Observer,
        method: str,
        url: str,
        shown: str,
        attempt: int,
        origin: Origin,
        project_id: str | None,
        span: Span | None,
    ) -> None:
        self._observer = observer
        self._method = method
        self._url = url
        self._shown = shown  # what the log line shows: the API path, or host and path
        self._attempt = attempt
        self._origin: Origin = origin
        self._project_id = project_id
        self._span = span
        self._started = observer.clock.monotonic()

    async def sent(self) -> None:
        """The request is about to leave: tell the ``on_request`` hooks."""
        hooks = self._observer.hooks.on_request
        if hooks:
            event = RequestEvent(
                method=self._method,
                url=self._url,
                attempt=self._attempt,
                origin=self._origin,
                project_id=self._project_id,
            )
            await emit("on_request", hooks, event)

    async def received(self, status: int, headers: Mapping[str, str]) -> None:
        """A response arrived."""
        found = request_id_of(headers)
        request_id = None if found is None else self._observer.redact(found)[:200]
        await self._ended(status, request_id, None)

    async def failed(self, error: BabouError) -> None:
        """No response arrived."""
        await self._ended(None, None, error)

    def abandoned(self) -> None:
        """Cancelled (or a bug) before an answer: end the span, tell no hook."""
        if self._span is not None:
            otel.end_request(self._span, status=None, error="cancelled", request_id=None)

    async def _ended(
        self, status: int | None, request_id: str | None, error: BabouError | None
    ) -> None:
        observer = self._observer
        elapsed = observer.clock.monotonic() - self._started
        if self._span is not None:
            kind = None if error is None else type(error).__qualname__
            otel.end_request(self._span, status=status, error=kind, request_id=request_id)
        if http_log.isEnabledFor(logging.DEBUG):
            http_log.debug(
                "%s %s %s %.1fms%s",
                self._method,
                self._shown,
                status if status is not None else f"failed ({type(error).__name__})",
                elapsed * 1000,
                f" request_id={request_id}" if request_id else "",
            )
        hooks = observer.hooks.on_response
        if hooks:
            event = ResponseEvent(
                method=self._method,
                url=self._url,
                attempt=self._attempt,
                origin=self._origin,
                project_id=self._project_id,
                status=status,
                elapsed=elapsed,
                request_id=request_id,
                error=error,
            )
            await emit("on_response", hooks, event)

    @asynccontextmanager
    async def around(
        self, opened: AbstractAsyncContextManager[StreamResponse]
    ) -> AsyncIterator[StreamResponse]:
        """Watch a download request: sent, then its headers or its failure."""
        await self.sent()
        async with contextlib.AsyncExitStack() as stack:
            try:
                resp = await stack.enter_async_context(opened)
            except SendFailure as failure:  # no response
                await self.failed(failure.error)
                raise
            await self.received(resp.status, resp.headers)
            yield resp
