"""
OpenTelemetry spans, when ``opentelemetry-api`` is importable and a tracer provider is set.

* one ``CLIENT`` span per API request (each attempt: a retry is a new span with
  ``http.request.resend_count``), with the attributes of the HTTP client semantic
  conventions (https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-client):
  ``http.request.method``, ``url.full`` (never the query: it is not sent to a tracer),
  ``server.address``, ``server.port``, ``http.response.status_code``, ``error.type``;
* one ``INTERNAL`` span per export lifecycle (``babou.watch_export``,
  ``babou.wait_for_export``, ``babou.export_project``), the parent of its requests.

Zero cost otherwise: without the package nothing is imported or called; with it but no
provider configured (the API's proxy or no-op provider), :meth:`Tracing.tracer` answers
``None`` from a cached check, redone at most once a second (a provider set later is picked
up), and no tracer is ever called. The key is never in a span: URLs are the base URL and
paths of IDs, and request IDs are redacted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._version import __version__

try:
    from opentelemetry import trace
except ImportError:  # pragma: no cover - the test extra installs it
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "Outcome",
    "Tracing",
    "current",
    "end_lifecycle",
    "end_request",
    "lifecycle",
    "lifecycle_span",
    "request_span",
]

#: How often a session without a tracer provider looks again (seconds).
RECHECK_SECONDS = 1.0
_SCOPE = "babou_async"


class Tracing:
    """
    The tracer of one session, if spans are wanted.

    ``current`` is the tracer once a real provider was seen (final: a provider is set once
    per process); until then, :meth:`tracer` looks again at most once a second, and
    callers on a hot path may test ``off`` and ``next_look`` first, without a call.
    ``monotonic`` is real time, not the session's clock: this is a cache, and a virtual
    clock that never moves would never look again.

    Attributes:
        current: The tracer, once found.
        off: opentelemetry-api is not importable: never any tracer.
        next_look: When (on ``monotonic``) to look for a provider again.
        monotonic: The clock of ``next_look``.
    """

    __slots__ = ("current", "monotonic", "next_look", "off")

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.current: Tracer | None = None
        self.off = trace is None
        self.next_look = 0.0
        self.monotonic = monotonic

    def tracer(self) -> Tracer | None:
        """The tracer, or ``None`` (cheaply) while no real provider is configured."""
        if self.current is not None or self.off:
            return self.current
        now = self.monotonic()
        if now < self.next_look:
            return None
        self.next_look = now + RECHECK_SECONDS
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        self.current = provider.get_tracer(_SCOPE, __version__)
        return self.current


def request_span(tracer: Tracer, method: str, url: str, attempt: int) -> Span:
    """Start the CLIENT span of one API request to ``url`` (which has no query)."""
    parts = urlsplit(url)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": url,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    return tracer.start_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes)


def end_request(
    span: Span, *, status: int | None, error: str | None, request_id: str | None
) -> None:
    """End a request span with its status code, or the type of the error it ended on."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            error = error or str(status)
    if request_id is not None:
        span.set_attribute("babou.request_id", request_id)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(trace.StatusCode.ERROR)
    span.end()


def lifecycle_span(tracing: Tracing, name: str | None, project_id: str) -> Span | None:
    """Start an export lifecycle's span (``None``: no tracer, or ``name`` is ``None``)."""
    tracer = tracing.tracer() if name is not None else None
    if tracer is None:
        return None
    return tracer.start_span(f"babou.{name}", attributes={"babou.project_id": project_id})


def end_lifecycle(span: Span | None, status: str | None, error: BaseException | None) -> None:
    """End a lifecycle span with the last export status seen, or the error it ended on."""
    if span is None:
        return
    kind = None if error is None else type(error).__qualname__
    if status is not None:
        span.set_attribute("babou.export.status", status)
        if status == "failed":
            kind = kind or "export_failed"
    if kind is not None:
        span.set_attribute("error.type", kind)
        span.set_status(trace.StatusCode.ERROR)
    span.end()


_UNTRACED: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def current(span: Span | None) -> contextlib.AbstractContextManager[None]:
    """
    Make ``span`` the current one for the ``with`` body (its requests become children).

    Never held across a ``yield`` of an async generator: the context is attached and
    detached in the same task, around one awaited step. Without a span, a shared no-op
    (no generator per poll).
    """
    return _UNTRACED if span is None else _using(span)


@contextlib.contextmanager
def _using(span: Span) -> Iterator[None]:
    # A failed step (a poll the watch rides through) is no failure of the lifecycle.
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        yield


class Outcome:
    """How a lifecycle ended, filled in by its body: the last status, or the error."""

    __slots__ = ("error", "status")

    def __init__(self) -> None:
        self.status: str | None = None
        self.error: BaseException | None = None


@contextlib.contextmanager
def lifecycle(tracing: Tracing, name: str, project_id: str) -> Iterator[Outcome]:
    """A lifecycle span around a coroutine's body (no ``yield`` inside), current within it."""
    span = lifecycle_span(tracing, name, project_id)
    outcome = Outcome()
    try:
        with current(span):
            yield outcome
    except BaseException as exc:
        outcome.error = exc
        raise
    finally:
        end_lifecycle(span, outcome.status, outcome.error)
