"""
Downloading finished exports: resumable, atomic, never blocking the event loop.

Guarantees of every download to disk:

* the video streams to ``<final>.<random>.part`` beside the target (a name of its own, created
  exclusively, so two downloads to one target never mix), in chunks, written by a worker
  thread; memory use is bounded by two write buffers whatever the file size;
* the ``.part`` file is renamed to the final path only once complete and checked against
  ``Content-Length``; on failure or cancellation it is deleted, so nobody ever sees a
  half-written file at the final path;
* an existing file is never clobbered unless ``overwrite=True`` (a complete one is skipped);
* a dropped connection resumes with ``Range`` (and ``If-Range`` on a strong ``ETag``), or
  restarts when the server ignores ``Range``; an expired URL (403/404/410 from the asset
  host) is replaced by a fresh one from ``get_export``;
* the API key is never sent to the download host.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.to_thread

from . import _protocol as proto
from ._config import RetryPolicy
from ._exceptions import (
    BabouError,
    DownloadError,
    ExportFailedError,
    ExportNotReadyError,
    IntegrityError,
    TransportError,
    ValidationError,
)
from ._models import DownloadResult, Export, ExportStatus
from ._transport import SendFailure, strip_query

if TYPE_CHECKING:
    from ._session import BabouSession

__all__ = [
    "ProgressCallback",
    "ResultCallback",
    "download_export",
    "download_exports",
    "iter_export_bytes",
]

log = logging.getLogger("babou_async")


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


READ_CHUNK = 256 * 1024
WRITE_BUFFER = 1024 * 1024
# What a signed URL's host answers once the URL expired: S3 403, others 404/410, Google
# Cloud Storage 400 (ExpiredToken). Each refresh is bounded by the retry policy.
_EXPIRED_STATUSES = frozenset({400, 401, 403, 404, 410})
_UNSATISFIED_RE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


#: A download slower than this over a whole ``Timeouts.read`` window is dropped and resumed
#: (a "low-speed limit", as curl has): a host trickling bytes just inside the read timeout
#: would otherwise keep a download alive forever.
MIN_DOWNLOAD_BYTES_PER_SECOND = 1024


class _TooSlowError(TransportError):
    """The download host trickles: the connection is dropped and the download resumed."""


class _LowSpeedWatchdog:
    """Counts bytes per window of ``window`` seconds; raises when a window was too slow."""

    def __init__(self, window: float | None, url: str) -> None:
        self.window = window
        self.url = strip_query(url)
        self.start = time.monotonic()
        self.received = 0

    def check(self, size: int) -> None:
        if self.window is None:
            return
        self.received += size
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.window:
            return
        slow = self.received < MIN_DOWNLOAD_BYTES_PER_SECOND * elapsed
        self.start, self.received = now, 0
        if slow:
            raise _TooSlowError(
                f"download of {self.url} below {MIN_DOWNLOAD_BYTES_PER_SECOND} bytes/s",
                method="GET",
                url=self.url,
            )


class _Fetcher:
    """
    The bytes of one export, as a resumable stream of ``(position, chunk)`` pairs.

    ``position`` is the offset of ``chunk`` in the file. It only ever goes back to 0, when
    the content changed under us (a new ``ETag``) and the consumer must start over.
    """

    def __init__(
        self,
        session: BabouSession,
        project_id: str,
        url: str,
        retry: RetryPolicy,
        before_body: Callable[[int | None], bool] | None = None,
    ) -> None:
        self.session = session
        self.project_id = project_id
        self.url = url
        self.retry = retry
        self.before_body = before_body
        self.total: int | None = None
        self.etag: str | None = None
        self.stopped = False

    def _fail(self, message: str) -> DownloadError:
        return DownloadError(
            f"download of {self.project_id} failed: {message}", project_id=self.project_id
        )

    async def _refresh_url(self) -> None:
        self.url = await _download_url(self.session, self.project_id, self.retry)

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        transport = self.session._transport  # noqa: SLF001 - same package
        offset = 0
        failures = 0
        refreshes = 0
        slow = 0  # connections dropped for trickling; never reset by the trickle itself
        first = True
        while True:
            # Byte offsets must be the file's own: ask for no content coding.
            headers: dict[str, str] = {"Accept-Encoding": "identity"}
            if offset > 0:
                headers["Range"] = f"bytes={offset}-"
                if self.etag is not None:
                    headers["If-Range"] = self.etag
            error: BabouError
            retry_after: float | None = None
            try:
                async with transport.stream(self.url, headers=headers) as resp:
                    status = resp.status
                    if status in _EXPIRED_STATUSES:
                        refreshes += 1
                        if refreshes > self.retry.attempts:
                            raise self._fail(
                                f"download URL refused with HTTP {status} even after "
                                f"{refreshes - 1} refreshes"
                            )
                        log.info(
                            "download URL for %s refused (HTTP %d): fetching a fresh one",
                            self.project_id,
                            status,
                        )
                        if refreshes > 1:
                            # Storage may lag the "completed" status: back off between
                            # refreshes as for any other failure (the first is immediate).
                            await self.session._sleep(  # noqa: SLF001
                                proto.backoff_delay(
                                    self.retry,
                                    refreshes - 1,
                                    self.session._random(),  # noqa: SLF001
                                )
                            )
                        await self._refresh_url()
                        continue
                    if status == 416:
                        # "bytes */N" names the full size: a chunked body may have been cut
                        # after its last byte, in which case we already have everything.
                        unsatisfied = _UNSATISFIED_RE.match(resp.headers.get("content-range", ""))
                        if unsatisfied is not None:
                            self.total = int(unsatisfied[1])
                        if self.total is not None and offset == self.total:
                            return
                    if status in (200, 206):
                        skip, offset = self._accept(resp.status, resp.headers, offset)
                        if first:
                            first = False
                            if self.before_body is not None and not self.before_body(self.total):
                                self.stopped = True
                                return
                        watchdog = _LowSpeedWatchdog(self.session.timeouts.read, self.url)
                        async for chunk in resp.iter_chunks(READ_CHUNK):
                            watchdog.check(len(chunk))
                            if skip:
                                if len(chunk) <= skip:
                                    skip -= len(chunk)
                                    continue
                                chunk = chunk[skip:]  # noqa: PLW2901
                                skip = 0
                            yield offset, chunk
                            offset += len(chunk)
                            # Progress: the retry budget is per stall, not per file
                            # (a trickle does not count as progress: see `slow`).
                            failures = refreshes = 0
                        if self.total is None or offset == self.total:
                            return
                        if offset > self.total:
                            raise IntegrityError(
                                f"download of {self.project_id}: received {offset} bytes, "
                                f"server announced {self.total}",
                                project_id=self.project_id,
                            )
                        error = TransportError(
                            f"body of {strip_query(self.url)} ended at {offset} of "
                            f"{self.total} bytes",
                            method="GET",
                            url=strip_query(self.url),
                        )
                    elif status == 416 or (status == 429 or status >= 500):
                        if status == 416:  # our offset is past a changed file: start over
                            offset, self.etag = 0, None
                        error = self._fail(f"HTTP {status} from the download host")
                        retry_after = proto.parse_retry_after(
                            resp.headers.get("retry-after"), now=dt.datetime.now(dt.timezone.utc)
                        )
                    else:
                        raise self._fail(f"HTTP {status} from the download host")
            except SendFailure as failure:
                error = failure.error
            except TransportError as exc:
                error = exc
                if isinstance(exc, _TooSlowError):
                    slow += 1
            failures += 1
            if max(failures, slow) >= self.retry.attempts:
                attempts = max(failures, slow)
                raise self._fail(f"giving up after {attempts} attempts: {error}") from error
            delay = proto.backoff_delay(self.retry, failures, self.session._random())  # noqa: SLF001
            if retry_after is not None:
                if retry_after > self.retry.max_retry_after:
                    raise self._fail(f"server asked to wait {retry_after:g}s") from error
                delay = retry_after
            log.warning(
                "download of %s interrupted at %d bytes (%s); resuming in %.2fs",
                self.project_id,
                offset,
                error,
                delay,
            )
            await self.session._sleep(delay)  # noqa: SLF001

    def _accept(self, status: int, headers: Mapping[str, str], offset: int) -> tuple[int, int]:
        """
        Read a 200/206 response's headers; return ``(bytes to skip, position of body)``.

        A 206 must start where we asked; a 200 is the whole file again, either because the
        server ignores ``Range`` (skip what we have, if the content is unchanged) or because
        ``If-Range`` found a new ``ETag`` (start over at 0).
        """
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # We asked for identity; a coded body would be saved as a corrupt video, and
            # Range offsets would not be the file's.
            raise self._fail(f"the download host sent Content-Encoding {encoding!r}")
        etag = headers.get("etag")
        strong_etag = etag if etag and not etag.startswith("W/") else None
        changed = self.etag is not None and strong_etag is not None and strong_etag != self.etag
        if status == 206:
            match = _CONTENT_RANGE_RE.match(headers.get("content-range", ""))
            if match is None or int(match[1]) != offset:
                raise self._fail(
                    f"server answered Range {offset}- with Content-Range "
                    f"{headers.get('content-range')!r}"
                )
            if match[3] != "*":
                self.total = int(match[3])
            self.etag = strong_etag or self.etag
            return 0, offset
        length = headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self.etag = strong_etag
        if offset == 0 or changed:
            return 0, 0
        return offset, offset


def _completed_url(export: Export) -> str | None:
    """The export's download URL; ``None`` if completed without one (yet)."""
    if export.status is ExportStatus.FAILED:
        raise ExportFailedError(export.project_id, export.error)
    if export.status is not ExportStatus.COMPLETED:
        raise ExportNotReadyError(export.project_id, export.status_raw)
    return export.download_url


def _absolute_url(base_url: str, project_id: str, url: str) -> str:
    try:
        absolute = urljoin(base_url + "/", url)
        parts = urlsplit(absolute)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        valid = False
    if not valid:
        raise DownloadError(
            f"the server gave an unusable download URL for {project_id}: {strip_query(url)!r}",
            project_id=project_id,
        )
    return absolute


async def _download_url(
    session: BabouSession, project_id: str, retry: RetryPolicy, export: Export | None = None
) -> str:
    """
    Get a completed export's download URL, absolute.

    "completed" with no URL yet is retried (backing off) within ``retry``: the status and
    the URL may not be published at the same instant. A relative URL is resolved against
    the API's base URL (the docs only show absolute ones).
    """
    for attempt in range(1, retry.attempts + 1):
        if export is None:
            export = await session.get_export(project_id, retry=retry)
        url = _completed_url(export)
        if url:
            return _absolute_url(session.base_url, project_id, url)
        if attempt < retry.attempts:
            await session._sleep(proto.backoff_delay(retry, attempt, session._random()))  # noqa: SLF001
        export = None
    raise ExportNotReadyError(project_id, "completed (no download_url)")


def _call_progress(
    progress: ProgressCallback | None, project_id: str, done: int, total: int | None
) -> None:
    if progress is None:
        return
    try:
        progress(project_id, done, total)
    except Exception:
        log.exception("progress callback raised; ignored")


# -- files (every blocking call runs in a worker thread) --------------------------------


def _resolve_target_sync(dest: Path, project_id: str, as_dir: bool) -> Path:
    if as_dir or dest.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return dest / f"{project_id}.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def _existing_size_sync(path: Path) -> int | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size


def _commit_sync(part: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        part.replace(final)
        return
    try:
        # link() fails if ``final`` exists: an atomic "rename unless it exists".
        os.link(part, final)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: check, then rename (a tiny race remains).
        if final.exists():
            raise FileExistsError(str(final)) from None
        part.replace(final)
    else:
        part.unlink()


def _open_part(final: Path) -> tuple[BinaryIO, Path]:
    # A fresh, exclusively created name per download: two downloads to the same target
    # (two processes, a re-run) can never write into each other's file.
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=final.name + ".", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def _write_sync(f: BinaryIO, position: int, chunks: list[bytes]) -> None:
    # The chunks are written as they came: joining them would cost the event loop a copy.
    if f.tell() != position:
        f.seek(position)
        f.truncate()
    f.writelines(chunks)


def _discard_sync(f: BinaryIO, part: Path) -> None:
    try:
        f.close()
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


async def resolve_target(dest: str | os.PathLike[str], project_id: str) -> Path:
    """The final path for ``project_id`` given a directory or file destination."""
    text = os.fspath(dest)
    as_dir = text.endswith(("/", os.sep))
    path = Path(text)
    return await anyio.to_thread.run_sync(_resolve_target_sync, path, project_id, as_dir)


async def download_export(
    session: BabouSession,
    project_id: str,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    retry: RetryPolicy | None = None,
    export: Export | None = None,
) -> DownloadResult:
    """
    Download a completed export to disk (see the module docstring for the guarantees).

    Args:
        session: The session.
        project_id: ``prj_...``.
        dest: A directory (the file is ``<project_id>.mp4``) or a file path.
        overwrite: Replace an existing file (otherwise a complete one is skipped and a
            different one is an error).
        progress: ``progress(project_id, bytes_done, bytes_total)``.
        retry: Overrides the session's retry policy (attempts bound resumes and URL
            refreshes).
        export: An already fetched completed :class:`Export` (saves one status request).

    Raises:
        ExportNotReadyError: The export is not completed.
        ExportFailedError: The export failed.
        DownloadError: The video could not be saved.
    """
    proto.check_project_id(project_id)
    if not isinstance(overwrite, bool):
        raise ValidationError("overwrite must be a bool", field="overwrite")
    policy = retry or session.retry
    url = await _download_url(session, project_id, policy, export)
    try:
        final = await resolve_target(dest, project_id)
    except OSError as exc:
        raise DownloadError(
            f"cannot use destination {os.fspath(dest)!r}: {exc.strerror or exc}",
            project_id=project_id,
            path=os.fspath(dest),
        ) from exc
    existing = None if overwrite else await anyio.to_thread.run_sync(_existing_size_sync, final)

    def before_body(total: int | None) -> bool:
        if existing is None:
            _call_progress(progress, project_id, 0, total)  # a display can show it started
            return True
        if total is not None and total == existing:
            return False  # already complete: skip
        raise DownloadError(
            f"{final} exists ({existing} bytes, server has {total}); pass overwrite=True "
            "to replace it",
            project_id=project_id,
            path=str(final),
        )

    fetcher = _Fetcher(session, project_id, url, policy, before_body)
    try:
        f, part = await anyio.to_thread.run_sync(_open_part, final)
    except OSError as exc:
        raise DownloadError(
            f"cannot write in {final.parent}: {exc.strerror or exc}",
            project_id=project_id,
            path=str(final),
        ) from exc
    committed = False
    written = 0
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    try:
        buf: list[bytes] = []
        buf_start = 0
        buffered = 0
        async for position, chunk in fetcher:
            if position != buf_start + buffered:  # content changed: start over at position
                buf, buffered, buf_start = [], 0, position
            buf.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_BUFFER:
                if pending is not None:
                    await pending
                # One write in flight while the next buffer fills: disk and network overlap.
                pending = loop.run_in_executor(None, _write_sync, f, buf_start, buf)
                buf_start += buffered
                written = buf_start
                buf, buffered = [], 0
                _call_progress(progress, project_id, written, fetcher.total)
        if pending is not None:
            await pending
            pending = None
        if fetcher.stopped:  # the finally clause removes the unused .part file
            _call_progress(progress, project_id, existing or 0, fetcher.total)
            return DownloadResult(
                project_id=project_id, path=final, bytes=existing or 0, ok=True, skipped=True
            )
        if buf:
            await loop.run_in_executor(None, _write_sync, f, buf_start, buf)
        written = buf_start + buffered
        await anyio.to_thread.run_sync(f.flush)
        await anyio.to_thread.run_sync(f.close)
        try:
            await anyio.to_thread.run_sync(_commit_sync, part, final, overwrite)
        except FileExistsError:
            raise DownloadError(
                f"{final} appeared while downloading; not replaced (overwrite=False)",
                project_id=project_id,
                path=str(final),
            ) from None
        committed = True
        _call_progress(progress, project_id, written, fetcher.total or written)
        return DownloadResult(project_id=project_id, path=final, bytes=written, ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot write {part}: {exc.strerror or exc}", project_id=project_id, path=str(final)
        ) from exc
    except DownloadError as exc:
        if exc.path is None:
            exc.path = str(final)
        raise
    finally:
        if not committed:
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    with contextlib.suppress(Exception):
                        await pending
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(_discard_sync, f, part)


async def iter_export_bytes(
    session: BabouSession, project_id: str, *, retry: RetryPolicy | None = None
) -> AsyncGenerator[bytes, None]:
    """
    Yield a completed export's bytes in order, resuming after drops; nothing touches disk.

    Raises:
        ExportNotReadyError: The export is not completed.
        ExportFailedError: The export failed.
        DownloadError: The content changed mid-stream or could not be fetched.
    """
    proto.check_project_id(project_id)
    policy = retry or session.retry
    fetcher = _Fetcher(
        session, project_id, await _download_url(session, project_id, policy), policy
    )
    delivered = 0
    async for position, chunk in fetcher:
        if position != delivered:
            raise DownloadError(
                f"the export of {project_id} changed while streaming it",
                project_id=project_id,
            )
        delivered += len(chunk)
        yield chunk


async def download_exports(
    session: BabouSession,
    project_ids: Sequence[str],
    dest_dir: str | os.PathLike[str],
    *,
    concurrency: int = 4,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    on_result: ResultCallback | None = None,
    retry: RetryPolicy | None = None,
) -> list[DownloadResult]:
    """
    Download many exports, at most ``concurrency`` at a time; results in input order.

    Errors are collected per item (``ok=False``, ``error`` set), never raised, except bad
    arguments. A duplicate ID is downloaded once and reported at each of its positions.
    Memory and tasks are bounded by ``concurrency``, not by the number of IDs.
    """
    proto.check_positive_int(concurrency, "concurrency")
    ids = list(project_ids)
    for pid in ids:
        proto.check_project_id(pid)
    directory = os.fspath(dest_dir)
    if not directory.endswith(("/", os.sep)):
        directory += os.sep
    unique = list(dict.fromkeys(ids))
    results: dict[str, DownloadResult] = {}
    queue = iter(unique)

    async def one(pid: str) -> DownloadResult:
        try:
            return await download_export(
                session, pid, directory, overwrite=overwrite, progress=progress, retry=retry
            )
        except BabouError as exc:
            path = getattr(exc, "path", None)
            return DownloadResult(
                project_id=pid, path=Path(path) if path else None, ok=False, error=exc
            )

    async def worker() -> None:
        for pid in queue:  # the shared iterator hands each ID to exactly one worker
            results[pid] = result = await one(pid)
            if on_result is not None:
                try:
                    on_result(result)
                except Exception:
                    log.exception("on_result callback raised; ignored")

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, len(unique))):
            tg.start_soon(worker)
    return [results[pid] for pid in ids]
