"""The public callback types of downloads and batches, and the one way they are called."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Protocol

import attrs

from ._models import DownloadResult, ExportResult, ExportStatus

__all__ = [
    "EventCallback",
    "ExportEvent",
    "ProgressCallback",
    "ResultCallback",
    "call_quietly",
]

log = logging.getLogger("babou_async.callbacks")


class ProgressCallback(Protocol):
    """
    Download progress: any callable ``progress(project_id, bytes_done, bytes_total)``.

    A plain function will do. It is called from the event loop, once with 0 bytes when the
    download starts, at most once per written buffer (about every MiB), and once at the
    end; it must not block. ``bytes_total`` is ``None`` when the server announced no size.
    Exceptions it raises are logged and ignored.
    """

    def __call__(self, project_id: str, bytes_done: int, bytes_total: int | None, /) -> object:
        """Report that ``bytes_done`` of ``bytes_total`` bytes of ``project_id`` are saved."""


class ResultCallback(Protocol):
    """
    Per-download results of ``download_exports``: any callable ``on_result(result)``.

    Called from the event loop as each download ends, ok or not; it must not block.
    Exceptions it raises are logged and ignored.
    """

    def __call__(self, result: DownloadResult, /) -> object:
        """Report one finished download."""


@attrs.frozen(kw_only=True)
class ExportEvent:
    """
    One step of :meth:`BabouSession.export_many`, for progress displays.

    Attributes:
        project_id: The project.
        kind: ``"status"`` (a new export status was seen), ``"download"`` (bytes were
            written), or ``"done"`` (the project's :class:`ExportResult` is final).
        status: The export status (``"status"`` events).
        bytes_done: Bytes written so far (``"download"`` events).
        bytes_total: Expected size, if known (``"download"`` events).
        result: The final result (``"done"`` events).
    """

    project_id: str
    kind: Literal["status", "download", "done"]
    status: ExportStatus | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    result: ExportResult | None = None


class EventCallback(Protocol):
    """
    Batch progress: any callable ``progress(event)`` taking an :class:`ExportEvent`.

    A plain function will do. It is called from the event loop and must not block.
    Exceptions it raises are logged and ignored.
    """

    def __call__(self, event: ExportEvent, /) -> object:
        """Report one step of the batch."""


def call_quietly(
    name: str, callback: Callable[..., object] | None, *args: object, what: str = "callback"
) -> object:
    """Call a user's callback (if any) and return its result; what it raises is logged."""
    if callback is None:
        return None
    try:
        return callback(*args)
    except Exception:
        log.exception("%s %s raised; ignored", name, what)
        return None
