"""
The batch pipeline: many projects, each one the per-project job, sharing one journal.

Shape: ``concurrency`` worker tasks pull project IDs from the input one at a time and run
:func:`~babou_async._project.export_project` for each: start (or adopt), watch, and
download as soon as the export completes, at most ``download_concurrency`` downloads at
once (a semaphore). Tasks and memory are bounded by the two limits, not by the number of
IDs (the result list aside), and downloads of early finishers overlap with the watching of
the rest.

The directory's journal is opened exclusively for the whole batch: a second batch on the
same directory is refused before it sends a request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable
from pathlib import Path

import anyio

from ._callbacks import EventCallback, ExportEvent, call_quietly
from ._exceptions import BabouError, JournalLockedError, ValidationError
from ._journal import Journal
from ._models import ExportResult
from ._project import ProjectOptions, export_project
from ._runtime import Runtime
from ._validation import (
    check_callback,
    check_id,
    check_path,
    check_project_id_source,
    check_project_ids,
)

__all__ = ["export_many", "open_destination"]

log = logging.getLogger("babou_async.batch")


async def _iterate(ids: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(ids, AsyncIterable):
        async for pid in ids:
            yield pid
    else:
        for pid in ids:
            yield pid


class _Inputs:
    """
    The input IDs, read lazily (one per idle worker), with their positions.

    Duplicates are exported once and reported at each of their positions; an error of the
    caller's iterable stops the reading and is re-raised after the batch.
    """

    def __init__(self, ids: Iterable[str] | AsyncIterable[str]) -> None:
        self.slots: list[ExportResult | None] = []
        self.positions: dict[str, list[int]] = {}  # where each in-flight ID appears
        self.finished: dict[str, ExportResult] = {}
        self.error: Exception | None = None
        self._source = _iterate(ids)
        self._lock = anyio.Lock()

    async def next_id(self) -> str | None:
        async with self._lock:
            try:
                return await self._read()
            except Exception as exc:  # noqa: BLE001 - the caller's iterable failed: re-raised after the batch stops
                self.error = self.error or exc
                return None

    async def _read(self) -> str | None:
        if self.error is not None:
            return None
        async for item in self._source:
            index = len(self.slots)
            # A lazy source's bad ID stops the reading like a failing iterable (a collection
            # was checked in full before the batch began).
            pid = check_id(item, "prj_", f"project_ids[{index}]")
            self.slots.append(self.finished.get(pid))
            if pid in self.finished:
                continue
            if pid in self.positions:
                self.positions[pid].append(index)
                continue
            self.positions[pid] = [index]
            return pid
        return None

    def finish(self, result: ExportResult) -> None:
        self.finished[result.project_id] = result
        for index in self.positions.pop(result.project_id):
            self.slots[index] = result

    def results(self) -> list[ExportResult]:
        if self.error is not None:
            raise self.error
        results = [slot for slot in self.slots if slot is not None]
        assert len(results) == len(self.slots)  # noqa: S101 - every ID ends in finish()
        return results


async def open_destination(
    dest_dir: str | os.PathLike[str], *, exclusive: bool = True
) -> tuple[Path, Journal]:
    """
    Create the directory if needed and open its journal (exclusively for a batch).

    Raises:
        ValidationError: The directory cannot be created or written (``dest_dir``).
        JournalLockedError: Another batch is using it.
    """
    directory = Path(check_path(dest_dir, "dest_dir"))
    try:
        await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))
        return directory, await Journal.open(directory, exclusive=exclusive)
    except JournalLockedError:
        raise
    except OSError as exc:
        raise ValidationError(
            f"dest_dir {os.fspath(dest_dir)!r} is not a writable directory: {exc.strerror or exc}",
            field="dest_dir",
        ) from None


class _Batch:
    """One run of :func:`export_many`."""

    def __init__(
        self,
        rt: Runtime,
        inputs: _Inputs,
        directory: Path,
        journal: Journal,
        options: ProjectOptions,
        progress: EventCallback | None,
        download_concurrency: int,
    ) -> None:
        self.rt = rt
        self.inputs = inputs
        self.directory = directory
        self.journal = journal
        self.options = options
        self.progress = progress
        self.slots = anyio.Semaphore(download_concurrency)

    async def one(self, pid: str) -> ExportResult:
        """One project's result; whatever it raises (but cancellation) is its failure."""
        try:
            return await export_project(
                self.rt,
                pid,
                self.directory,
                journal=self.journal,
                options=self.options,
                progress=self.progress,
                download_slots=self.slots,
            )
        except BabouError as exc:
            result = ExportResult(project_id=pid, ok=False, error=exc)
        except Exception as exc:
            log.exception("export of %s failed unexpectedly", pid)
            error = BabouError(f"export of {pid} failed unexpectedly: {type(exc).__name__}")
            error.__cause__ = exc
            result = ExportResult(project_id=pid, ok=False, error=error)
        call_quietly(
            "progress", self.progress, ExportEvent(project_id=pid, kind="done", result=result)
        )
        return result

    async def worker(self) -> None:
        while (pid := await self.inputs.next_id()) is not None:
            self.inputs.finish(await self.one(pid))


async def export_many(
    rt: Runtime,
    project_ids: Iterable[str] | AsyncIterable[str],
    dest_dir: str | os.PathLike[str],
    *,
    options: ProjectOptions,
    concurrency: int = 32,
    download_concurrency: int = 4,
    progress: EventCallback | None = None,
) -> list[ExportResult]:
    """
    Implement :meth:`BabouSession.export_many` (its docstring is the contract).

    The shape of the pipeline is in this module's docstring; arguments are checked by the
    session.
    """
    check_project_id_source(project_ids)
    if isinstance(project_ids, Collection):  # known in full: refuse a bad ID before any request
        project_ids = check_project_ids(project_ids)
    check_callback(progress, "progress")
    directory, journal = await open_destination(dest_dir)
    async with journal:
        inputs = _Inputs(project_ids)
        batch = _Batch(rt, inputs, directory, journal, options, progress, download_concurrency)
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(batch.worker)
    return inputs.results()
