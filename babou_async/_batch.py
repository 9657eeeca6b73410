"""
The batch pipeline: start, watch and download many exports, each as soon as it is ready.

Shape: ``concurrency`` watcher tasks pull project IDs from the input one at a time, start
and follow each export; a completed one is handed over a small bounded channel to
``download_concurrency`` downloader tasks. Tasks and memory are bounded by the two limits,
not by the number of IDs (the result list aside), and downloads of early finishers overlap
with the watching of the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _protocol as proto
from ._config import PollPolicy
from ._download import _existing_size_sync, download_export
from ._exceptions import BabouError, ConflictError, ExportFailedError
from ._models import Export, ExportResult, ExportStatus

if TYPE_CHECKING:
    from ._session import BabouSession

__all__ = ["ExportEvent", "export_many"]

log = logging.getLogger("babou_async")


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.define
class _Job:
    index: int
    project_id: str
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    export: Export | None = None


async def _iterate(ids: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(ids, AsyncIterable):
        async for pid in ids:
            yield pid
    else:
        for pid in ids:
            yield pid


async def export_many(
    session: BabouSession,
    project_ids: Iterable[str] | AsyncIterable[str],
    dest_dir: str | os.PathLike[str],
    *,
    start: bool = True,
    concurrency: int = 32,
    download_concurrency: int = 4,
    timeout: float | dt.timedelta = 900.0,
    poll: PollPolicy | None = None,
    overwrite: bool = False,
    progress: EventCallback | None = None,
) -> list[ExportResult]:
    """
    Implement :meth:`BabouSession.export_many` (its docstring is the contract).

    The shape of the pipeline is in this module's docstring.
    """
    proto.check_positive_int(concurrency, "concurrency")
    proto.check_positive_int(download_concurrency, "download_concurrency")
    seconds = session._timeout_seconds(timeout)  # noqa: SLF001 - same package
    directory = Path(os.fspath(dest_dir))
    await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))

    slots: list[ExportResult | None] = []
    positions: dict[str, list[int]] = {}  # where each in-flight ID appears in the input
    finished: dict[str, ExportResult] = {}
    source = _iterate(project_ids)
    lock = anyio.Lock()
    input_error: Exception | None = None

    def emit(event: ExportEvent) -> None:
        if progress is None:
            return
        try:
            progress(event)
        except Exception:
            log.exception("progress callback raised; ignored")

    def finish(job: _Job, result: ExportResult) -> None:
        finished[job.project_id] = result
        for index in positions.pop(job.project_id):
            slots[index] = result
        emit(ExportEvent(project_id=job.project_id, kind="done", result=result))

    async def next_job() -> _Job | None:
        # Input is read lazily, one ID per idle watcher, so 10,000 IDs cost no tasks.
        nonlocal input_error
        async with lock:
            try:
                return await read_job()
            except Exception as exc:  # noqa: BLE001 - the caller's iterable failed: re-raised after the batch stops
                input_error = input_error or exc
                return None

    async def read_job() -> _Job | None:
        if input_error is not None:
            return None
        async for pid in source:
            index = len(slots)
            slots.append(finished.get(pid))
            if pid in finished:
                continue
            if pid in positions:
                positions[pid].append(index)
                continue
            positions[pid] = [index]
            return _Job(index=index, project_id=pid)
        return None

    def failed(job: _Job, error: BabouError) -> None:
        finish(
            job,
            ExportResult(
                project_id=job.project_id,
                status=job.export.status if job.export else None,
                ok=False,
                error=error,
                started_at=job.started_at,
                completed_at=job.completed_at,
            ),
        )

    async def watch(job: _Job, send: MemoryObjectSendStream[_Job]) -> None:
        pid = job.project_id
        proto.check_project_id(pid)
        final = directory / f"{pid}.mp4"
        if not overwrite:
            size = await anyio.to_thread.run_sync(_existing_size_sync, final)
            if size is not None:
                finish(
                    job,
                    ExportResult(
                        project_id=pid,
                        status=ExportStatus.COMPLETED,
                        path=final,
                        bytes=size,
                        ok=True,
                        skipped=True,
                    ),
                )
                return
        job.started_at = _now()
        estimate = None
        if start:
            try:
                started = await session.start_export(pid)
                estimate = started.estimated_seconds
            except ConflictError:
                log.info("export of %s already in progress: following it", pid)
        async for export in session.watch_export(
            pid, timeout=seconds, poll=poll, estimate=estimate
        ):
            job.export = export
            emit(ExportEvent(project_id=pid, kind="status", status=export.status))
        job.completed_at = _now()
        assert job.export is not None  # noqa: S101 - a watch yields before it ends
        if job.export.status is ExportStatus.FAILED:
            failed(job, ExportFailedError(pid, job.export.error))
            return
        await send.send(job)

    async def watcher(send: MemoryObjectSendStream[_Job]) -> None:
        async with send:
            while (job := await next_job()) is not None:
                try:
                    await watch(job, send)
                except BabouError as exc:  # noqa: PERF203 - one result per job
                    failed(job, exc)

    async def downloader(receive: MemoryObjectReceiveStream[_Job]) -> None:
        async with receive:
            async for job in receive:
                pid = job.project_id

                def on_bytes(_pid: str, done: int, total: int | None, pid: str = pid) -> None:
                    emit(
                        ExportEvent(
                            project_id=pid, kind="download", bytes_done=done, bytes_total=total
                        )
                    )

                try:
                    download = await download_export(
                        session,
                        pid,
                        directory,
                        overwrite=overwrite,
                        progress=on_bytes,
                        export=job.export,
                    )
                except BabouError as exc:
                    failed(job, exc)
                    continue
                finish(
                    job,
                    ExportResult(
                        project_id=pid,
                        status=ExportStatus.COMPLETED,
                        path=download.path,
                        bytes=download.bytes,
                        ok=True,
                        skipped=download.skipped,
                        started_at=job.started_at,
                        completed_at=job.completed_at,
                        downloaded_at=_now(),
                    ),
                )

    send, receive = anyio.create_memory_object_stream[_Job](download_concurrency)
    async with anyio.create_task_group() as tg:
        for _ in range(download_concurrency):
            tg.start_soon(downloader, receive.clone())
        for _ in range(concurrency):
            tg.start_soon(watcher, send.clone())
        send.close()
        receive.close()
    if input_error is not None:
        raise input_error
    results = [slot for slot in slots if slot is not None]
    assert len(results) == len(slots)  # noqa: S101 - every job ends in finish()
    return results
