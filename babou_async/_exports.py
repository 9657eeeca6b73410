"""
The export lifecycle as functions of a runtime: start, look, watch, wait, find the video.

The public methods of :class:`~babou_async.BabouSession` validate and document; these do
the work, so that downloads and batches can use them without a session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin, urlsplit

from . import _otel as otel
from . import _protocol as proto
from ._config import PollPolicy, RetryPolicy
from ._exceptions import (
    DownloadError,
    ExportFailedError,
    ExportNotReadyError,
    ExportTimeoutError,
    NotFoundError,
    WaitTimeoutError,
)
from ._models import Export, ExportStatus
from ._polling import poll
from ._protocol import RawResponse
from ._ratelimit import RequestPriority
from ._redaction import REDACTED, Redactor
from ._rerun import UNKNOWN, took_effect
from ._runtime import Runtime
from ._transport import strip_query

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "download_url",
    "get_export",
    "start_export",
    "wait_for_export",
    "watch_export",
]

log = logging.getLogger("babou_async.export")


async def start_export(
    rt: Runtime,
    project_id: str,
    retry: RetryPolicy | None,
    before: Export | Literal["unknown"] | None = UNKNOWN,
) -> Export:
    """
    Start an export; after our own ambiguous attempt, adopt the export it started.

    After an attempt whose answer was lost, the status is looked at before sending the
    start again (see :func:`took_effect`; ``before`` is the export seen before the start):
    a second start after a quickly finished export would be a second render. A 409 after
    such an attempt also means that it took effect.
    """
    spec = proto.build_start_export(project_id)
    adopted: list[Export] = []

    async def look() -> RawResponse | None:
        try:
            raw, payload = await rt.send(proto.build_get_export(project_id), retry=retry)
        except NotFoundError:
            return None
        export = proto.parse_export(raw, payload, project_id)
        if not took_effect(before, export):
            return None
        log.info("start_export %s: the lost attempt took effect (%s)", project_id, export.status)
        adopted.append(export)
        return raw

    raw, _ = await rt.send(
        spec, retry=retry, conflict_after_ambiguous_ok=True, after_ambiguous=look, decode=False
    )
    if adopted:
        return adopted[0]
    if raw.status == 409:
        # Our earlier attempt reached the server and started the export.
        log.info("start_export %s: 409 after an ambiguous failure, export was started", project_id)
        return await get_export(rt, project_id, retry)
    # An empty or status-less 2xx still means "started": the docs show "queued".
    payload = proto.parse_json(raw) if raw.body.strip() else {}
    export = proto.parse_export(raw, payload, project_id, default_status="queued")
    if export.estimated_seconds is not None:
        rt.estimates.remember(project_id, export.estimated_seconds, rt.clock.monotonic())
    return export


async def get_export(
    rt: Runtime,
    project_id: str,
    retry: RetryPolicy | None,
    priority: RequestPriority = RequestPriority.PROGRESS,
) -> Export:
    """One look at a project's export status (a watch's looks are polls)."""
    raw, payload = await rt.send(proto.build_get_export(project_id), retry=retry, priority=priority)
    return proto.parse_export(raw, payload, project_id)


class _ExportWatch:
    """
    One watch of an export: its looks, its lifecycle span, and its errors.

    An object whose methods :func:`poll` calls, rather than a generator around poll's:
    10,000 watches would hold 10,000 of each.
    """

    __slots__ = ("_operation", "_project_id", "_retry", "_rt", "_span", "_started", "_timeout")

    def __init__(
        self,
        rt: Runtime,
        project_id: str,
        retry: RetryPolicy | None,
        timeout: float,
        operation: str | None,
    ) -> None:
        self._rt = rt
        self._project_id = project_id
        self._retry = retry
        self._timeout = timeout
        self._operation = operation
        self._started = False
        self._span: Span | None = None

    async def fetch(self) -> tuple[Export, str, bool]:
        """One poll (the first one starts the lifecycle's span)."""
        rt, project_id = self._rt, self._project_id
        if not self._started:
            self._started = True
            self._span = otel.lifecycle_span(rt.observer.tracing, self._operation, project_id)
        # get_export's two lines, not a call to it: one coroutine less per waiting poll.
        with otel.current(self._span):  # each poll is a child of the lifecycle
            raw, payload = await rt.send(
                proto.build_get_export(project_id), retry=self._retry, priority=RequestPriority.POLL
            )
        export = proto.parse_export(raw, payload, project_id)
        terminal = export.is_terminal
        if terminal:
            rt.estimates.forget(project_id)
        return export, export.status_raw, terminal

    def timed_out(self, exc: WaitTimeoutError) -> ExportTimeoutError:
        """The error for a passed deadline."""
        return ExportTimeoutError(self._project_id, exc.last_status, self._timeout)

    def ended(self, status: str | None, error: BaseException | None) -> None:
        """End the lifecycle's span with the last status, or the error it ended on."""
        otel.end_lifecycle(self._span, status, error)


def watch_export(
    rt: Runtime,
    project_id: str,
    *,
    timeout: float,
    poll_policy: PollPolicy | None,
    retry: RetryPolicy | None,
    estimate: tuple[float, float] | None,
    operation: str | None = "watch_export",
) -> AsyncGenerator[Export, None]:
    """
    Yield each change of an export's status until a terminal one (see the session).

    ``operation`` names the lifecycle's span (``None``: the caller has its own).
    """
    since = None
    known = rt.estimates.recall(project_id) if estimate is None else None
    if known is not None:  # what start_export said, counted from when it said it
        estimate, since = known
    watch = _ExportWatch(rt, project_id, retry, timeout, operation)
    return poll(
        rt,
        watch.fetch,
        timeout,
        poll_policy,
        estimate,
        since,
        timed_out=watch.timed_out,
        ended=watch.ended,
    )


async def wait_for_export(
    rt: Runtime,
    project_id: str,
    *,
    timeout: float,
    poll_policy: PollPolicy | None,
    retry: RetryPolicy | None,
    estimate: tuple[float, float] | None,
) -> Export:
    """Wait for a terminal status; return a completed export, raise for a failed one."""
    final: Export | None = None
    async for export in watch_export(
        rt,
        project_id,
        timeout=timeout,
        poll_policy=poll_policy,
        retry=retry,
        estimate=estimate,
        operation="wait_for_export",
    ):
        final = export
    assert final is not None  # noqa: S101 - the watch always yields before it ends
    if final.status is ExportStatus.FAILED:
        raise ExportFailedError(project_id, final.error)
    return final


def completed_url(export: Export) -> str | None:
    """The export's download URL; ``None`` if completed without one (yet)."""
    if export.status is ExportStatus.FAILED:
        raise ExportFailedError(export.project_id, export.error)
    if export.status is not ExportStatus.COMPLETED:
        raise ExportNotReadyError(export.project_id, export.status_raw)
    return export.download_url


def absolute_url(base_url: str, project_id: str, url: str, redactor: Redactor | None = None) -> str:
    """
    Resolve a (possibly relative) download URL against the API; refuse unusable ones.

    A URL that carries the API key anywhere (host, userinfo, path, query or fragment; in any
    spelling ``redactor`` knows: literal, JSON-escaped, URL-encoded, HTML entities, base64)
    is refused before any request: the download host must never see the key. The session
    has already replaced the key with ``[REDACTED]`` in the response body, so a URL holding
    that marker is refused too: it is where the server put the key. Userinfo is dropped
    from the URL returned (an HTTP client would send it as ``Authorization``).

    Raises:
        DownloadError: The URL is unusable or carries the key.
    """
    shown = strip_query(url if redactor is None else redactor(url))
    if REDACTED in url or (redactor is not None and redactor.contains(url)):
        raise DownloadError(
            f"the server gave a download URL for {project_id} that carries the API key; "
            f"refused so that the key never reaches the download host: {shown!r}",
            project_id=project_id,
        )
    try:
        absolute = urljoin(base_url + "/", url)
        parts = urlsplit(absolute)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(ch.isspace() or not ch.isprintable() for ch in url)
        )
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        valid = False
    if not valid:
        raise DownloadError(
            f"the server gave an unusable download URL for {project_id}: {shown!r}",
            project_id=project_id,
        )
    if "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return absolute


async def download_url(
    rt: Runtime, project_id: str, retry: RetryPolicy, export: Export | None = None
) -> str:
    """
    Get a completed export's download URL, absolute.

    "completed" with no URL yet is retried (backing off) within ``retry``: the status and
    the URL may not be published at the same instant. A relative URL is resolved against
    the API's base URL (the docs only show absolute ones).
    """
    for attempt in range(1, retry.attempts + 1):
        if export is None:
            export = await get_export(rt, project_id, retry)
        url = completed_url(export)
        if url:
            return absolute_url(rt.base_url, project_id, url, rt.redact)
        if attempt < retry.attempts:
            await rt.clock.sleep(proto.backoff_delay(retry, attempt, rt.clock.random()))
        export = None
    raise ExportNotReadyError(project_id, "completed (no download_url)")
