"""
Byte ranges as a web server sees them: the ``Range`` header of a request (part of the pure core).

A web app that streams videos answers ``Range: bytes=0-99`` with ``206 Partial Content``
and a ``Content-Range``, and a range outside the video with ``416``
(https://www.rfc-editor.org/rfc/rfc9110#section-14.2). :func:`parse_range` is that decision,
with no I/O: a header and a size in, the byte span to send (or ``None``: the whole video)
out. :class:`RangeMachine` is the download-resume machine bounded to one such span, for
:mod:`babou_async._seekable` to drive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from ._exceptions import RangeNotSatisfiableError
from ._resume import Action, ResumeMachine, Step

__all__ = ["RangeMachine", "content_range", "parse_range"]


def _bounds(header: str) -> tuple[str, str] | None:
    """The two digit strings of ``bytes=first-last`` (either may be empty), or ``None``."""
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (part.strip() for part in spec.strip().partition("-"))
    # At most 19 digits (a 64-bit offset): a longer number is malformed, not a long int.
    digits = all(
        not part or (len(part) <= 19 and part.isascii() and part.isdigit())
        for part in (first, last)
    )
    if not dash or not digits or not (first or last):
        return None
    return first, last


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """
    Read a request's ``Range`` header for a video of ``size`` bytes.

    The forms of RFC 9110 (section 14.1.2) are understood: ``bytes=0-99``, ``bytes=100-``
    (to the end) and ``bytes=-500`` (the last 500 bytes); a last byte past the end is
    clamped to it. A header that is absent, malformed, of another unit or asking for several
    ranges is ignored, as the RFC allows: the answer is then the whole video (``200``).

    ::

        try:
            span = babou_async.parse_range(request.headers.get("Range"), size)
        except babou_async.RangeNotSatisfiableError as exc:
            ...  # answer 416 with Content-Range: bytes */{exc.size}

    Args:
        header: The ``Range`` header's value, or ``None``.
        size: The video's full size in bytes.

    Returns:
        ``(first, last)``, both inclusive, for one satisfiable range; ``None`` for the
        whole video.

    Raises:
        RangeNotSatisfiableError: The range starts past the end (or asks for zero bytes):
            the answer is ``416``.

    .. versionadded:: 0.2
    """
    if header is None:
        return None
    bounds = _bounds(header)
    if bounds is None:
        return None
    first, last = bounds
    if not first:  # a suffix: the last N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiableError(f"{header!r} asks for no bytes", size=size)
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid (last before first): ignored
    if start >= size:
        raise RangeNotSatisfiableError(
            f"{header!r} starts past the end of a {size}-byte video", size=size
        )
    return start, min(int(last), size - 1) if last else size - 1


def content_range(span: tuple[int, int] | None, size: int) -> str | None:
    """The ``Content-Range`` of a ``206`` for ``span`` (inclusive) of ``size`` bytes."""
    if span is None:
        return None
    return f"bytes {span[0]}-{span[1]}/{size}"


@attrs.define
class RangeMachine(ResumeMachine):
    """
    :class:`ResumeMachine` for the bytes up to ``end`` (inclusive), of pinned content.

    Every request carries ``Range: bytes=<offset>-<end>`` and ``If-Range``; ``pinned`` is
    the ``(size, etag, last_modified)`` the headers already sent announced, which every
    response must match. ``content_type`` is what the host said the video is.
    """

    end: int | None = None
    pinned: tuple[int, str | None, str | None] | None = None
    content_type: str | None = None

    def request_headers(self) -> dict[str, str]:
        """The base headers, with the range bounded at ``end``."""
        headers = super().request_headers()
        if self.end is not None:
            headers["Range"] = f"bytes={self.offset}-{self.end}"
            if self.validator is not None:
                headers["If-Range"] = self.validator
        return headers

    def on_response(
        self, status: int, headers: Mapping[str, str], *, now: dt.datetime, rand: float
    ) -> Step:
        """The base decision, refusing content other than the pinned one."""
        step = super().on_response(status, headers, now=now, rand=rand)
        if step.action is not Action.READ:
            return step
        self.content_type = headers.get("content-type") or self.content_type
        if self.pinned is None:
            return step
        size, etag, modified = self.pinned
        if (
            self.total != size
            or (etag is not None and self.etag != etag)
            or (etag is None and modified is not None and self.last_modified != modified)
        ):
            return Step(
                Action.FAIL,
                reason=f"the export of {self.project_id} changed since it was opened",
            )
        return step

    def take(self, chunk: bytes) -> tuple[int, bytes] | None:
        """The base bytes, cut at ``end`` (a host ignoring ``Range`` sends them all)."""
        piece = super().take(chunk)
        if piece is None or self.end is None:
            return piece
        position, data = piece
        keep = max(0, self.end + 1 - position)
        if keep >= len(data):
            return piece
        self.offset = position + keep
        return (position, data[:keep]) if keep else None

    def on_body_end(self, where: str, *, rand: float) -> Step:
        """Done once ``end`` is in; else the base rules (resume a short body)."""
        if self.end is not None and self.offset > self.end:
            return Step(Action.DONE)
        return super().on_body_end(where, rand=rand)
