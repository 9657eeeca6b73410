"""
Downloading finished exports: resumable, atomic, never blocking the event loop.

Guarantees of every download to disk:

* the video streams to ``<final>.part`` beside the target, locked while written (two
  downloads to one target never mix), in chunks, written by a worker thread; memory use is
  bounded by two write buffers whatever the file size;
* the ``.part`` file is moved to the final path only once complete and checked against
  ``Content-Length``, so nobody ever sees a half-written file there; an interrupted
  download keeps it (with its validator beside it) for the next one, in any process, to
  resume (:mod:`babou_async._files`);
* a download that makes no progress for ``Timeouts.read``, or exceeds
  :data:`MAX_DOWNLOAD_BYTES`, ends;
* an existing file is never clobbered unless ``overwrite=True``; a complete one (checked
  with a one-byte probe) is skipped;
* a dropped connection resumes with ``Range`` (and ``If-Range`` on the validator), or
  restarts when the server ignores ``Range``; an expired URL (403/404/410 from the asset
  host) is replaced by a fresh one from ``get_export``;
* the API key is never sent to the download host.

The rules of resuming are the pure :class:`~babou_async._resume.ResumeMachine`; this module
is the I/O around it: connections, the disk, and the watchdogs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio

from . import _destinations as destinations
from . import _files as files
from . import _protocol as proto
from ._callbacks import ProgressCallback, ResultCallback, call_quietly
from ._config import RetryPolicy
from ._exceptions import BabouError, DownloadError, IntegrityError, TransportError
from ._exports import download_url
from ._hooks import Meter
from ._models import DownloadResult, Export
from ._protocol import check_positive_int
from ._resume import Action, LowSpeed, ResumeMachine, Step
from ._runtime import Runtime
from ._transport import SendFailure, StreamResponse, strip_query

__all__ = ["download_export", "download_exports", "iter_export_bytes"]

log = logging.getLogger("babou_async.download")

READ_CHUNK = 256 * 1024

#: The largest video a download accepts (16 GiB), announced or not: an endless body without
#: Content-Length must not fill the disk. A larger announced size is refused the same way.
MAX_DOWNLOAD_BYTES = 16 * 1024**3

#: A download slower than this over a whole ``Timeouts.read`` window is dropped and resumed
#: (a "low-speed limit", as curl has): a host trickling bytes just inside the read timeout
#: would otherwise keep a download alive forever.
MIN_DOWNLOAD_BYTES_PER_SECOND = 1024


class _TooSlowError(TransportError):
    """The download host trickles: the connection is dropped and the download resumed."""


class _Stream:
    """
    The bytes of one export, as a resumable stream of ``(position, chunk)`` pairs.

    ``position`` is the offset of ``chunk`` in the file. It only ever goes back to 0, when
    the content changed under us and the consumer must start over. ``on_accept`` is called
    after each accepted response, before its body (the validator and size may be new).
    ``machine`` may be seeded to resume a partial.
    """

    def __init__(
        self,
        rt: Runtime,
        project_id: str,
        url: str,
        policy: RetryPolicy,
        *,
        machine: ResumeMachine | None = None,
        on_accept: Callable[[ResumeMachine], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.rt = rt
        self.project_id = project_id
        self.url = url
        self.policy = policy
        self.machine = machine or ResumeMachine(project_id=project_id, policy=policy)
        self.on_accept = on_accept
        self.max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes

    @property
    def total(self) -> int | None:
        """The size announced by the download host, once known."""
        return self.machine.total

    def _error(self, step: Step, cause: BaseException | None) -> DownloadError:
        cls = IntegrityError if step.integrity else DownloadError
        error = cls(step.reason, project_id=self.project_id)
        error.__cause__ = cause
        # The reason may quote what the host sent (a Content-Range, an ETag): hide the key.
        return self.rt.scrub(error)

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        clock = self.rt.clock
        meter = self.rt.observer.meter(self.project_id, self.url)  # None: no progress hook
        attempt = 0
        while True:
            attempt += 1
            cause: BaseException | None = None
            headers = self.machine.request_headers()
            try:
                async with self.rt.stream(
                    self.url, headers=headers, project_id=self.project_id, attempt=attempt
                ) as resp:
                    step = self.machine.on_response(
                        resp.status, resp.headers, now=clock.wall(), rand=clock.random()
                    )
                    if step.action is Action.READ:
                        self._check_size(self.machine.total)
                        if self.machine.probe:
                            return
                        if self.on_accept is not None:
                            # No await between the headers and the body: aiohttp raises a
                            # drop before handing over bytes it has already buffered.
                            self.on_accept(self.machine)
                        async for piece in self._body(resp, meter):
                            yield piece
                        where = strip_query(self.url)
                        step = self.machine.on_body_end(where, rand=clock.random())
            except SendFailure as failure:
                cause = failure.error
                step = self.machine.on_failure(str(cause), rand=clock.random())
            except TransportError as exc:
                cause = exc
                step = self.machine.on_failure(
                    str(exc), rand=clock.random(), slow=isinstance(exc, _TooSlowError)
                )
            if step.action is Action.DONE:
                return
            await self._next(step, cause, attempt)

    def _check_size(self, size: int | None) -> None:
        if size is not None and size > self.max_bytes and not self.machine.probe:
            raise IntegrityError(
                f"download of {self.project_id} announces {size} bytes, over the "
                f"{self.max_bytes}-byte ceiling; refused",
                project_id=self.project_id,
            )

    async def _read(self, resp: StreamResponse, window: float | None) -> bytes:
        """
        The next piece of the body, within ``window`` seconds.

        The library's own watchdog, whatever state aiohttp's parser is in (its ``sock_read``
        timer does not fire on a malformed chunk size, for one): a silence as long as the
        read timeout drops the connection, to be resumed.
        """
        if window is None:
            return await resp.read_chunk(READ_CHUNK)
        with anyio.move_on_after(window) as scope:
            return await resp.read_chunk(READ_CHUNK)
        assert scope.cancelled_caught  # noqa: S101 - the only way out of the block
        where = strip_query(self.url)
        raise TransportError(
            f"download of {where} stalled: no byte for {window:g}s", method="GET", url=where
        )

    async def _body(
        self, resp: StreamResponse, meter: Meter | None
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The pieces of one response's body, reported to ``meter`` (if any) as they pass."""
        clock = self.rt.clock
        window = self.rt.timeouts.read
        speed = LowSpeed(
            window=window, min_rate=MIN_DOWNLOAD_BYTES_PER_SECOND, start=clock.monotonic()
        )
        while chunk := await self._read(resp, window):
            if self.machine.offset + len(chunk) > self.max_bytes:
                raise IntegrityError(
                    f"download of {self.project_id} exceeds {self.max_bytes} bytes; refused",
                    project_id=self.project_id,
                )
            if speed.too_slow(clock.monotonic(), len(chunk)):
                where = strip_query(self.url)
                raise _TooSlowError(
                    f"download of {where} below {MIN_DOWNLOAD_BYTES_PER_SECOND} bytes/s",
                    method="GET",
                    url=where,
                )
            piece = self.machine.take(chunk)
            if piece is not None:
                yield piece
                if meter is not None:
                    await meter.advance(self.machine.offset, self.machine.total)
        if meter is not None:  # the end of this response's body
            await meter.advance(self.machine.offset, self.machine.total, final=True)

    async def _next(self, step: Step, cause: BaseException | None, attempt: int) -> None:
        """Act on a RETRY, REFRESH or FAIL step (after ``attempt`` requests)."""
        if step.cause is not None:
            cause = DownloadError(step.cause, project_id=self.project_id)
        if step.action is Action.FAIL:
            raise self._error(step, cause)
        clock = self.rt.clock
        if step.action is Action.REFRESH:
            log.info(
                "download URL for %s refused (%s): fetching a fresh one",
                self.project_id,
                step.reason,
            )
            await self.rt.observer.download_retry(
                self.project_id, self.url, attempt, step.delay, f"URL refused ({step.reason})"
            )
            if step.delay:
                await clock.sleep(step.delay)
            self.url = await download_url(self.rt, self.project_id, self.policy)
            return
        log.info(
            "download of %s interrupted at %d bytes (%s); resuming in %.2fs",
            self.project_id,
            self.machine.offset,
            step.reason,
            step.delay,
        )
        await self.rt.observer.download_retry(
            self.project_id, self.url, attempt, step.delay, step.reason
        )
        await clock.sleep(step.delay)


#: The resumable stream, for the other drivers of the download host (:mod:`._seekable`).
ResumableStream = _Stream


async def download_export(
    rt: Runtime,
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

    ``export`` is an already fetched completed :class:`Export` (saves one status request).

    Raises:
        ExportNotReadyError: The export is not completed.
        ExportFailedError: The export failed.
        DownloadError: The video could not be saved.
    """
    result, _ = await save_export(
        rt, project_id, dest, overwrite=overwrite, progress=progress, retry=retry, export=export
    )
    return result


async def save_export(
    rt: Runtime,
    project_id: str,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool,
    progress: ProgressCallback | None,
    retry: RetryPolicy | None,
    export: Export | None,
) -> tuple[DownloadResult, files.Saved | None]:
    """:func:`download_export`, also returning what was saved (``None`` when skipped)."""
    proto.check_path(dest, "dest")
    proto.check_callback(progress, "progress")
    policy = rt.retry_policy(retry)
    url = await download_url(rt, project_id, policy, export)
    final = await _final_path(dest, project_id)
    existing = None if overwrite else await destinations.existing_size(final)
    if existing is not None:
        # A file is there: one small probe for the size, never a full download start.
        total = await probe_size(rt, project_id, url, policy)
        if not destinations.is_complete(existing, total):
            raise DownloadError(
                f"{final} exists ({existing} bytes, server has {total}); pass overwrite=True "
                "to replace it",
                project_id=project_id,
                path=str(final),
            )
        await anyio.to_thread.run_sync(files.discard_partial_sync, final)
        call_quietly("progress", progress, project_id, existing, total)
        result = DownloadResult(
            project_id=project_id, path=final, bytes=existing, ok=True, skipped=True
        )
        return result, None
    saved = await _save(rt, project_id, url, policy, final, overwrite, progress)
    call_quietly("progress", progress, project_id, saved.size, saved.size)
    return DownloadResult(project_id=project_id, path=final, bytes=saved.size, ok=True), saved


async def probe_size(rt: Runtime, project_id: str, url: str, policy: RetryPolicy) -> int | None:
    """The size of the video at ``url``, from a one-byte ``Range`` request."""
    stream = _Stream(
        rt,
        project_id,
        url,
        policy,
        machine=ResumeMachine(project_id=project_id, policy=policy, probe=True),
    )
    async for _ in stream:  # pragma: no cover - a probe yields no bytes
        pass
    return stream.total


async def _save(
    rt: Runtime,
    project_id: str,
    url: str,
    policy: RetryPolicy,
    final: Path,
    overwrite: bool,
    progress: ProgressCallback | None,
) -> files.Saved:
    partial = await files.open_partial(final, project_id)
    meta = partial.meta
    machine = ResumeMachine(
        project_id=project_id,
        policy=policy,
        offset=partial.size,
        total=meta.get("total"),
        etag=meta.get("etag"),
        last_modified=meta.get("last_modified"),
    )
    if partial.size:
        log.info("resuming the download of %s at %d bytes", project_id, partial.size)

    started = False

    def on_accept(state: ResumeMachine) -> None:
        nonlocal started
        if not started:  # a display can show the download began (and where it resumed)
            started = True
            call_quietly("progress", progress, project_id, state.offset, state.total)
        known = {"etag": state.etag, "last_modified": state.last_modified, "total": state.total}
        # Written by the writer thread just before the bytes it describes.
        partial.pending_meta = {name: value for name, value in known.items() if value is not None}

    stream = _Stream(rt, project_id, url, policy, machine=machine, on_accept=on_accept)
    return await files.save(
        stream,
        partial,
        project_id=project_id,
        overwrite=overwrite,
        progress=_progress_of(progress, project_id, stream),
    )


def _progress_of(
    progress: ProgressCallback | None, project_id: str, stream: _Stream
) -> Callable[[int], None]:
    def report(written: int) -> None:
        call_quietly("progress", progress, project_id, written, stream.total)

    return report


async def _final_path(dest: str | os.PathLike[str], project_id: str) -> Path:
    try:
        return await destinations.final_path(dest, project_id)
    except OSError as exc:
        raise DownloadError(
            f"cannot use destination {os.fspath(dest)!r}: {exc.strerror or exc}",
            project_id=project_id,
            path=os.fspath(dest),
        ) from exc


async def iter_export_bytes(
    rt: Runtime, project_id: str, *, retry: RetryPolicy | None = None
) -> AsyncGenerator[bytes, None]:
    """
    Yield a completed export's bytes in order, resuming after drops; nothing touches disk.

    Raises:
        ExportNotReadyError: The export is not completed.
        ExportFailedError: The export failed.
        DownloadError: The content changed mid-stream or could not be fetched.
    """
    policy = rt.retry_policy(retry)
    stream = _Stream(rt, project_id, await download_url(rt, project_id, policy), policy)
    delivered = 0
    async for position, chunk in stream:
        if position != delivered:
            raise DownloadError(
                f"the export of {project_id} changed while streaming it",
                project_id=project_id,
            )
        delivered += len(chunk)
        yield chunk


async def download_exports(
    rt: Runtime,
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
    arguments (checked by the caller). A duplicate ID is downloaded once and reported at
    each of its positions. Memory and tasks are bounded by ``concurrency``, not by the
    number of IDs.
    """
    check_positive_int(concurrency, "concurrency")
    ids = proto.check_project_ids(project_ids)
    directory = proto.check_path(dest_dir, "dest_dir")
    proto.check_callback(progress, "progress")
    proto.check_callback(on_result, "on_result")
    rt.retry_policy(retry)  # checked before any request
    if not directory.endswith(("/", os.sep)):
        directory += os.sep  # one rule for destinations: a trailing separator means "a directory"
    unique = list(dict.fromkeys(ids))
    results: dict[str, DownloadResult] = {}
    queue = iter(unique)

    async def one(pid: str) -> DownloadResult:
        try:
            return await download_export(
                rt, pid, directory, overwrite=overwrite, progress=progress, retry=retry
            )
        except BabouError as exc:
            path = getattr(exc, "path", None)
            return DownloadResult(
                project_id=pid, path=Path(path) if path else None, ok=False, error=exc
            )

    async def worker() -> None:
        for pid in queue:  # the shared iterator hands each ID to exactly one worker
            results[pid] = result = await one(pid)
            call_quietly("on_result", on_result, result)

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, len(unique))):
            tg.start_soon(worker)
    return [results[pid] for pid in ids]
