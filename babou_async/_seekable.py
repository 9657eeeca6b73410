"""
Seekable streaming: a finished export opened to answer an HTTP request, whole or one range.

A ``<video>`` tag seeks with ``Range`` requests and wants ``Content-Length`` up front.
:class:`ExportStream` learns the video's size, type and validator with a one-byte request
to the download host, before a single byte of body is sent, so that a web handler can
answer ``200`` with ``Content-Length``, ``206`` with ``Content-Range``, ``416`` for a range
outside the video, or ``HEAD`` with the same headers and no body. Its bytes then come with
``Range`` and ``If-Range`` on that validator: a video that changed since the headers went
out is an error, never a body that does not match them.

The resume rules are :class:`~babou_async._resume.ResumeMachine`'s, bounded to the range by
:class:`~babou_async._ranges.RangeMachine`; the I/O (watchdogs, URL refreshes, the size ceiling) is
:mod:`babou_async._download`'s. The API key never goes to the download host.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING

from . import _protocol as proto
from ._config import RetryPolicy
from ._download import MAX_DOWNLOAD_BYTES, ResumableStream
from ._exceptions import DownloadError, IntegrityError, RangeNotSatisfiableError, ValidationError
from ._exports import download_url
from ._ranges import RangeMachine, content_range, parse_range
from ._runtime import Runtime

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ByteRange", "ExportStream", "StreamingMixin"]

#: What :meth:`BabouSession.open_export` accepts as ``range``: a request's ``Range`` header
#: as sent (read with :func:`parse_range`), ``(first, last)`` byte offsets (both inclusive),
#: or ``None`` for the whole video.
ByteRange = tuple[int, int] | str | None

_DEFAULT_TYPE = "video/mp4"


def _check_range(value: object) -> ByteRange:
    """``range`` as given, if it is one of the accepted forms."""
    if value is None or isinstance(value, str):
        return value
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and value[0] <= value[1]
    ):
        return value[0], value[1]
    raise ValidationError(
        f"range must be a Range header, (first, last) offsets with 0 <= first <= last, "
        f"or None; got {value!r}",
        field="range",
    )


class ExportStream:
    """
    A completed export opened to answer an HTTP request: its headers first, then its bytes.

    Get one from :meth:`BabouSession.open_export` and use it as an async context manager.
    Entering it makes two small requests, nothing more: the export's status (for its signed
    URL) and one byte of the video (for its size, type and validator). The attributes are
    then known, so a handler can send its status and headers; :meth:`iter_bytes` streams
    the body, resuming after dropped connections within the range. A ``HEAD`` handler
    sends the headers and never iterates. Leaving the block closes any stream still open.

    ::

        async with babou.open_export(project_id, range=request.headers.get("Range")) as video:
            response = web.StreamResponse(status=video.status, headers=video.headers)
            await response.prepare(request)
            async for chunk in video.iter_bytes():
                await response.write(chunk)

    Attributes:
        project_id: The project.
        status: ``206`` when a range was asked and is served, else ``200``.
        size: The whole video's size in bytes.
        span: ``(first, last)``, the byte offsets served (both inclusive), or ``None`` for
            the whole video.
        content_type: What the download host calls the video (``video/mp4``).
        etag: The video's strong ``ETag`` on the download host, if it has one.
        last_modified: Its ``Last-Modified``, if the host sent one.

    Raises:
        RangeNotSatisfiableError: On entering, for a range outside the video (a ``416``;
            the error carries the ``size``).
        ExportNotReadyError: On entering, when the export is not completed.
        ExportFailedError: On entering, when the export failed.
        DownloadError: The download host cannot serve the video, or the video changed
            after its headers were read (from :meth:`iter_bytes`).

    .. versionadded:: 0.2
    """

    project_id: str
    status: int
    size: int
    span: tuple[int, int] | None
    content_type: str
    etag: str | None
    last_modified: str | None

    def __init__(
        self,
        rt: Runtime,
        project_id: str,
        *,
        range: ByteRange = None,  # noqa: A002 - the HTTP name, as the header says
        retry: RetryPolicy | None = None,
    ) -> None:
        self.project_id = proto.check_project_id(project_id)
        self._range = _check_range(range)
        self._rt = rt
        self._policy = rt.retry_policy(retry)
        self._url = ""
        self._open: list[AsyncGenerator[bytes, None]] = []

    def __repr__(self) -> str:
        return f"<ExportStream {self.project_id}>"

    async def __aenter__(self) -> Self:
        url = await download_url(self._rt, self.project_id, self._policy)
        probe = RangeMachine(project_id=self.project_id, policy=self._policy, probe=True)
        stream = ResumableStream(self._rt, self.project_id, url, self._policy, machine=probe)
        async for _ in stream:  # pragma: no cover - a probe yields no bytes
            pass
        self._url = stream.url  # it may have been refreshed
        if probe.total is None:
            raise DownloadError(
                f"the download host announced no size for {self.project_id}",
                project_id=self.project_id,
            )
        if probe.total > MAX_DOWNLOAD_BYTES:
            raise IntegrityError(
                f"the export of {self.project_id} announces {probe.total} bytes, over the "
                f"{MAX_DOWNLOAD_BYTES}-byte ceiling; refused",
                project_id=self.project_id,
            )
        self.size, self.etag, self.last_modified = probe.total, probe.etag, probe.last_modified
        self.content_type = probe.content_type or _DEFAULT_TYPE
        self.span = self._resolve(self.size)
        self.status = 200 if self.span is None else 206
        return self

    def _resolve(self, size: int) -> tuple[int, int] | None:
        """The span to serve of a ``size``-byte video, or ``None`` for all of it."""
        wanted = self._range
        if isinstance(wanted, tuple) and wanted[0] < size:
            return wanted[0], min(wanted[1], size - 1)
        try:
            if isinstance(wanted, tuple):
                wanted = f"bytes={wanted[0]}-{wanted[1]}"  # past the end: parse_range says so
            return parse_range(wanted, size)
        except RangeNotSatisfiableError as exc:
            exc.project_id = self.project_id
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the streams :meth:`iter_bytes` opened and that are still open."""
        chunks, self._open = self._open, []
        for generator in chunks:
            await generator.aclose()

    @property
    def content_length(self) -> int:
        """The number of bytes :meth:`iter_bytes` yields: the ``Content-Length`` to send."""
        if self.span is None:
            return self.size
        return self.span[1] - self.span[0] + 1

    @property
    def content_range(self) -> str | None:
        """The ``Content-Range`` to send with a ``206``, such as ``"bytes 0-99/8388608"``."""
        return content_range(self.span, self.size)

    @property
    def headers(self) -> dict[str, str]:
        """
        The response headers that go with :attr:`status`, for ``GET`` and ``HEAD`` alike.

        ``Content-Type``, ``Content-Length``, ``Accept-Ranges: bytes``, ``Content-Range``
        for a ``206``, and the ``ETag`` and ``Last-Modified`` of the download host.
        """
        headers = {
            "Content-Type": self.content_type,
            "Content-Length": str(self.content_length),
            "Accept-Ranges": "bytes",
        }
        optional = {
            "Content-Range": self.content_range,
            "ETag": self.etag,
            "Last-Modified": self.last_modified,
        }
        headers.update({name: value for name, value in optional.items() if value is not None})
        return headers

    def iter_bytes(self) -> AsyncGenerator[bytes, None]:
        """
        Yield the bytes of :attr:`span` (or of the whole video) in order, exactly once each.

        A connection dropped within the range is resumed where it stopped; an expired URL
        is refreshed. Nothing touches the disk.

        Raises:
            DownloadError: The video changed since it was opened, or could not be fetched.
        """
        generator = self._iterate()
        self._open.append(generator)
        return generator

    async def _iterate(self) -> AsyncGenerator[bytes, None]:
        first, last = self.span or (0, self.size - 1)
        if last < first:  # an empty video
            return
        machine = RangeMachine(
            project_id=self.project_id,
            policy=self._policy,
            offset=first,
            end=last,
            etag=self.etag,
            last_modified=self.last_modified,
            pinned=(self.size, self.etag, self.last_modified),
        )
        stream = ResumableStream(
            self._rt, self.project_id, self._url, self._policy, machine=machine
        )
        delivered = first
        async for position, chunk in stream:
            if position != delivered:
                raise DownloadError(
                    f"the export of {self.project_id} changed while streaming it",
                    project_id=self.project_id,
                )
            delivered += len(chunk)
            yield chunk


class StreamingMixin:
    """:meth:`BabouSession.open_export`, kept beside the streams it opens."""

    _rt: Runtime

    def open_export(
        self,
        project_id: str,
        *,
        range: ByteRange = None,  # noqa: A002 - the HTTP name, as the header says
        retry: RetryPolicy | None = None,
    ) -> ExportStream:
        """
        Open a completed export to answer an HTTP request: whole, or one byte ``range``.

        The returned :class:`ExportStream` is an async context manager; inside it, its
        ``status``, ``headers``, ``size`` and ``content_range`` are known before any byte
        of the video is sent, and :meth:`ExportStream.iter_bytes` streams the bytes, with
        ``Range`` (and ``If-Range``) forwarded to the download host and drops resumed
        within the range. See :doc:`/web-apps`, and ``307`` redirects to the signed URL
        for the alternative.

        ::

            async with babou.open_export(project_id, range=request.headers.get("Range")) as v:
                ...  # answer v.status with v.headers, then the body from v.iter_bytes()

        Args:
            project_id: The project whose completed export to open.
            range: The request's ``Range`` header as sent (read with
                :func:`parse_range`: a malformed or multi-range header means the whole
                video), ``(first, last)`` byte offsets (inclusive; ``last`` past the end
                is clamped), or ``None`` for the whole video.
            retry: Overrides the session's :class:`RetryPolicy`.

        Raises:
            ValidationError: A malformed ``project_id`` or ``range``.

        .. versionadded:: 0.2
        """
        return ExportStream(self._rt, project_id, range=range, retry=retry)
