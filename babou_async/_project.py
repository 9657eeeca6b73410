"""
The per-project job: export one project into a directory, safe to run again after any crash.

:func:`export_project` is what :func:`~babou_async._batch.export_many` runs for each ID,
and what a job queue runs on a fleet. It reads the directory's journal and the disk, asks
the pure rules of :mod:`babou_async._rerun` what to do, and records each step in the
journal before and after it happens, so that the next run (in this process or another,
after a ``kill -9`` at any instant) does only what is left: no second render of an export
it started, no second download of a finished file, a partial download resumed.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
from pathlib import Path
from typing import Literal

import anyio
import attrs

from . import _destinations as destinations
from . import _exports as exports
from . import _otel as otel
from . import _protocol as proto
from ._callbacks import EventCallback, ExportEvent, call_quietly
from ._config import PollPolicy
from ._download import probe_size, save_export
from ._exceptions import (
    BabouError,
    ConflictError,
    DownloadError,
    ExportFailedError,
    NotFoundError,
    ValidationError,
)
from ._journal import Journal
from ._models import Export, ExportResult, ExportStatus
from ._rerun import UNKNOWN, First, OnDisk, Reuse, Then, after_look, first_step
from ._runtime import Runtime

__all__ = ["ProjectOptions", "checked_options", "export_project", "shared_download_slots"]

log = logging.getLogger("babou_async.batch")

#: The download slots of the jobs of one process, when each runs on its own (a queue worker
#: sets it around its jobs); the ``download_slots`` argument of :func:`export_project` wins.
shared_download_slots: contextvars.ContextVar[anyio.Semaphore | None] = contextvars.ContextVar(
    "babou_download_slots", default=None
)


@attrs.frozen(kw_only=True)
class ProjectOptions:
    """How to export each project (the batch's options)."""

    start: bool = True
    reuse: Reuse = None
    timeout: float = 900.0
    poll: PollPolicy | None = None
    overwrite: bool = False


def checked_options(
    start: bool,
    reuse: Literal["completed"] | None,
    timeout: float | dt.timedelta,
    poll: PollPolicy | None,
    overwrite: bool,
) -> ProjectOptions:
    """The public batch options, checked (``ValidationError`` naming the argument)."""
    for name, value in (("start", start), ("overwrite", overwrite)):
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be a bool, got {value!r}", field=name)
    if reuse not in (None, "completed"):
        raise ValidationError(f"reuse must be None or 'completed', got {reuse!r}", field="reuse")
    if poll is not None and not isinstance(poll, PollPolicy):
        raise ValidationError("poll must be a PollPolicy", field="poll")
    return ProjectOptions(
        start=start,
        reuse=reuse,
        timeout=proto.check_timeout(timeout),
        poll=poll,
        overwrite=overwrite,
    )


def _on_disk_sync(path: Path) -> OnDisk | None:
    stat = destinations.stat_sync(path)
    return None if stat is None else OnDisk(size=stat.st_size, mtime_ns=stat.st_mtime_ns)


class _Job:
    """One project's run: its state, its journal entry and its events."""

    def __init__(
        self,
        rt: Runtime,
        project_id: str,
        directory: Path,
        journal: Journal,
        options: ProjectOptions,
        progress: EventCallback | None,
        download_slots: anyio.Semaphore | None,
    ) -> None:
        self.rt = rt
        self.pid = project_id
        self.final = destinations.in_directory(directory, project_id)
        self.directory = directory
        self.journal = journal
        self.options = options
        self.progress = progress
        self.slots = download_slots
        self.export: Export | None = None
        self.not_found: NotFoundError | None = None
        self.looked = False  # whether self.export is what the server said before a start
        self.started_at: dt.datetime | None = None
        self.completed_at: dt.datetime | None = None

    def now(self) -> str:
        return self.rt.clock.wall().isoformat()

    async def record(self, **fields: object) -> None:
        await self.journal.update(self.pid, self.now(), **fields)

    def emit(self, event: ExportEvent) -> None:
        call_quietly("progress", self.progress, event)

    async def seen(self, export: Export) -> None:
        """A status was observed: remember it, tell the display and the journal."""
        changed = self.export is None or self.export.status_raw != export.status_raw
        self.export = export
        if changed:
            self.emit(ExportEvent(project_id=self.pid, kind="status", status=export.status))
            await self.record(export_status=export.status_raw, export_error=export.error)

    def failed(self, error: BabouError) -> ExportResult:
        return ExportResult(
            project_id=self.pid,
            status=self.export.status if self.export else None,
            ok=False,
            error=error,
            started_at=self.started_at,
            completed_at=self.completed_at,
        )

    # -- the steps ------------------------------------------------------------------

    async def run(self) -> ExportResult:
        entry = await self.journal.get(self.pid)
        on_disk = await anyio.to_thread.run_sync(_on_disk_sync, self.final)
        options = self.options
        first = first_step(
            entry, on_disk, start=options.start, reuse=options.reuse, overwrite=options.overwrite
        )
        if first is First.SKIP:
            assert on_disk is not None  # noqa: S101 - SKIP needs a file
            return self.skipped(on_disk.size)
        if first is First.VERIFY:
            assert on_disk is not None  # noqa: S101 - VERIFY needs a file
            return await self.verify(on_disk)
        self.started_at = self.rt.clock.wall()
        then = Then.START
        if first is First.LOOK:
            ours = entry is not None and entry.started_here
            then = after_look(
                await self.look(), ours=ours, start=options.start, reuse=options.reuse
            )
            if then is Then.DOWNLOAD and not ours:
                await self.record(export_started_at=self.now())  # adopted: ours from now on
        return await self.carry_on(then)

    async def carry_on(self, then: Then) -> ExportResult:
        if then is Then.START:
            then = await self.start()
        if then is Then.WATCH:
            await self.watch()
        if self.export is None:
            assert self.not_found is not None  # noqa: S101 - only a 404 leaves no export
            raise self.not_found
        if self.export.status is ExportStatus.FAILED:
            raise ExportFailedError(self.pid, self.export.error)
        return await self.download()

    def skipped(self, size: int) -> ExportResult:
        return ExportResult(
            project_id=self.pid,
            status=ExportStatus.COMPLETED,
            path=self.final,
            bytes=size,
            ok=True,
            skipped=True,
        )

    async def look(self) -> Export | None:
        self.looked = True
        try:
            export = await exports.get_export(self.rt, self.pid, None)
        except NotFoundError as exc:
            self.not_found = exc
            return None
        await self.seen(export)
        return export

    async def start(self) -> Then:
        """Start the export: recorded first, so a crash mid-POST is not a second render."""
        await self.record(export_started_at=self.now(), export_status="starting", export_error=None)
        try:
            # What a look saw (None: no export), to tell our lost start's export apart.
            before = self.export if self.looked else UNKNOWN
            export = await exports.start_export(self.rt, self.pid, None, before=before)
        except ConflictError:
            log.info("export of %s already in progress: following it", self.pid)
            return Then.WATCH
        await self.seen(export)
        return Then.WATCH

    async def watch(self) -> None:
        estimate = self.export.estimated_seconds if self.export else None
        async for export in exports.watch_export(
            self.rt,
            self.pid,
            timeout=self.options.timeout,
            poll_policy=self.options.poll,
            retry=None,
            estimate=estimate,
            operation=None,  # export_project's own span covers the watch
        ):
            await self.seen(export)
        self.completed_at = self.rt.clock.wall()

    async def download(self) -> ExportResult:
        def on_bytes(_pid: str, done: int, total: int | None) -> None:
            self.emit(
                ExportEvent(
                    project_id=self.pid, kind="download", bytes_done=done, bytes_total=total
                )
            )

        async with self.slots if self.slots is not None else contextlib.nullcontext():
            download, saved = await save_export(
                self.rt,
                self.pid,
                self.directory,
                overwrite=self.options.overwrite,
                progress=on_bytes,
                retry=None,
                export=self.export,
            )
        if saved is not None:
            await self.record(
                file_size=saved.size, file_mtime_ns=saved.mtime_ns, file_sha256=saved.sha256
            )
        else:
            await self.record_file(download.bytes)
        return ExportResult(
            project_id=self.pid,
            status=ExportStatus.COMPLETED,
            path=download.path,
            bytes=download.bytes,
            ok=True,
            skipped=download.skipped,
            started_at=self.started_at,
            completed_at=self.completed_at,
            downloaded_at=self.rt.clock.wall(),
        )

    async def record_file(self, size: int) -> None:
        on_disk = await anyio.to_thread.run_sync(_on_disk_sync, self.final)
        if on_disk is not None and on_disk.size == size:
            await self.record(file_size=on_disk.size, file_mtime_ns=on_disk.mtime_ns)

    async def verify(self, on_disk: OnDisk) -> ExportResult:
        """A file the journal does not vouch for: one probe of the server's size decides."""
        export = await self.look()
        if export is None or export.status is not ExportStatus.COMPLETED:
            state = export.status_raw if export else "not found"
            raise DownloadError(
                f"{self.final} exists but cannot be checked against the server (export "
                f"{state}); pass overwrite=True to replace it",
                project_id=self.pid,
                path=str(self.final),
            )
        url = await exports.download_url(self.rt, self.pid, self.rt.retry, export)
        total = await probe_size(self.rt, self.pid, url, self.rt.retry)
        if not destinations.is_complete(on_disk.size, total):
            raise DownloadError(
                f"{self.final} exists ({on_disk.size} bytes) but the server's video has "
                f"{total} bytes; pass overwrite=True to replace it",
                project_id=self.pid,
                path=str(self.final),
            )
        await self.record(file_size=on_disk.size, file_mtime_ns=on_disk.mtime_ns)
        return self.skipped(on_disk.size)


async def export_project(
    rt: Runtime,
    project_id: str,
    directory: Path,
    *,
    journal: Journal,
    options: ProjectOptions,
    progress: EventCallback | None = None,
    download_slots: anyio.Semaphore | None = None,
) -> ExportResult:
    """
    Export one project into ``directory`` (see the module docstring); errors become results.

    A :class:`BabouError` ends as a failed :class:`ExportResult` carrying it (and is recorded
    in the journal); cancellation and other exceptions propagate.
    """
    slots = download_slots if download_slots is not None else shared_download_slots.get()
    job = _Job(rt, project_id, directory, journal, options, progress, slots)
    with otel.lifecycle(rt.observer.tracing, "export_project", project_id) as outcome:
        try:
            result = await job.run()
        except BabouError as exc:
            result = job.failed(exc)
        outcome.status = None if result.status is None else result.status.value
        outcome.error = result.error
    job.emit(ExportEvent(project_id=project_id, kind="done", result=result))
    return result
