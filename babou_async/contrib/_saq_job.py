"""
The SAQ job that exports one project, and what it keeps in Redis next to SAQ's own keys.

A job runs :meth:`BabouSession.export_project <babou_async.BabouSession.export_project>`
for one project ID. Around it:

* **a heartbeat**: every :data:`BEAT` seconds the job touches its SAQ record (SAQ's
  ``job.update()``), so that the sweep of a live worker's queue retries it once
  :data:`HEARTBEAT` seconds pass without one: a ``kill -9``'d worker's jobs are back in the
  queue within seconds, not after a job timeout;
* **a lease per project** (``SET NX PX``, renewed with each beat): SAQ's Redis sweep can
  retry a job that is still running (a job swept between its dequeue and its ``ACTIVE``
  status: tobymao/saq#124, #277), so two attempts of one project may run at once; the
  second waits for the first's lease (or its expiry, if it died) instead of exporting
  alongside it;
* **the last result of each project** (``result:<project_id>``): "done" is recorded where
  every worker sees it, so a job for a project already exported returns its result
  without a request, whichever worker and disk did the work.

Only project IDs, options and results go to Redis: never the API key (the workers read it
from their own environment), and every error text is redacted before it is stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, cast

import anyio
import attrs
from redis.asyncio import Redis
from saq.job import Job
from saq.types import Context

from babou_async import BabouSession, ExportResult
from babou_async._project import shared_download_slots
from babou_async._redaction import redact

__all__ = [
    "BEAT",
    "HEARTBEAT",
    "JOB_FUNCTION",
    "JobContext",
    "Keys",
    "ResultDict",
    "WorkerState",
    "export_job",
    "job_key",
    "result_dict",
]

log = logging.getLogger("babou_async")

#: The name the job function is registered under (what a job's ``function`` says).
JOB_FUNCTION = "babou.export_project"
#: Seconds between two heartbeats of a running job (and renewals of its lease).
BEAT = 1.0
#: Seconds without a heartbeat after which SAQ's sweep hands the job to another worker.
HEARTBEAT = 5

#: A project's result as JSON: the ``"type": "result"`` line of ``babou export --json``.
ResultDict = dict[str, Any]

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def job_key(project_id: str) -> str:
    """The SAQ job key of a project's export: ``export:<project_id>``, one job per project."""
    return f"export:{project_id}"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def result_dict(result: ExportResult, *, secret: str | None) -> ResultDict:
    """A project's result as the ``--json`` line of ``babou export`` (``secret`` hidden)."""
    error = result.error
    return {
        "type": "result",
        "project_id": result.project_id,
        "ok": result.ok,
        "skipped": result.skipped,
        "status": str(result.status) if result.status is not None else None,
        "path": str(result.path) if result.path is not None else None,
        "bytes": result.bytes,
        "error": redact(str(error), secret) if error is not None else None,
        "error_type": type(error).__name__ if error is not None else None,
        "started_at": _iso(result.started_at),
        "completed_at": _iso(result.completed_at),
        "downloaded_at": _iso(result.downloaded_at),
    }


@attrs.frozen
class Keys:
    """The integration's own Redis keys of a queue: ``babou:saq:<queue>:...``."""

    queue_name: str

    def lease(self, project_id: str) -> str:
        """Held by the one attempt exporting the project now."""
        return f"babou:saq:{self.queue_name}:lease:{project_id}"

    def result(self, project_id: str) -> str:
        """The project's last result (JSON)."""
        return f"babou:saq:{self.queue_name}:result:{project_id}"

    def started(self, project_id: str) -> str:
        """Set before the fleet's first attempt at a project: its exports are the fleet's."""
        return f"babou:saq:{self.queue_name}:started:{project_id}"


async def stored_result(redis: Redis, keys: Keys, project_id: str) -> ResultDict | None:
    """The project's last recorded result, if any."""
    raw = await redis.get(keys.result(project_id))
    if raw is None:
        return None
    data: ResultDict = json.loads(raw)
    return data


@attrs.define(kw_only=True)
class WorkerState:
    """What a worker process holds for its jobs: one session, the disk, Redis, the slots."""

    session: BabouSession
    out_dir: Path
    redis: Redis
    keys: Keys
    slots: anyio.Semaphore
    keep_results: int
    on_result: Callable[[ResultDict], object] | None = None
    secret: str | None = attrs.field(default=None, repr=False)
    closers: list[Callable[[], Any]] = attrs.field(factory=list, repr=False)

    async def first_attempt(self, project_id: str) -> bool:
        """
        Whether no attempt of the fleet went before at this project (and remember this one).

        Recorded before the export starts, as the journal records a start before the POST:
        a later attempt, on any worker and disk, then knows that a completed export of the
        project is the fleet's own, to download rather than render again.
        """
        key = self.keys.started(project_id)
        ttl = self.keep_results if self.keep_results > 0 else None
        return bool(await self.redis.set(key, "1", nx=True, ex=ttl))

    async def record(self, data: ResultDict) -> None:
        """Keep the project's result where every worker (and ``wait_for_results``) sees it."""
        payload = json.dumps(data)
        key = self.keys.result(str(data["project_id"]))
        if self.keep_results > 0:
            await self.redis.set(key, payload, ex=self.keep_results)
        else:
            await self.redis.set(key, payload)


class JobContext(Context, total=False):
    """SAQ's context of a job, with the worker's :class:`WorkerState` under ``"babou"``."""

    babou: WorkerState


@attrs.define
class _Lease:
    """One attempt's hold on a project (renewed by the heartbeat while held)."""

    redis: Redis
    key: str
    token: str = attrs.field(factory=lambda: secrets.token_hex(8))
    held: bool = False

    async def take(self) -> bool:
        self.held = bool(await self.redis.set(self.key, self.token, nx=True, px=HEARTBEAT * 1000))
        return self.held

    async def renew(self) -> None:
        if self.held and not await _eval(
            self.redis, _RENEW, self.key, self.token, HEARTBEAT * 1000
        ):
            log.warning("the lease on %s was lost: another attempt may run it too", self.key)

    async def release(self) -> None:
        if self.held:
            self.held = False
            with anyio.CancelScope(shield=True):
                await _eval(self.redis, _RELEASE, self.key, self.token)


async def _eval(redis: Redis, script: str, key: str, *args: str | int) -> Any:
    """Run a Lua script on one key (redis-py's types allow a sync answer: not ours)."""
    return await cast("Awaitable[Any]", redis.eval(script, 1, key, *args))


async def _beat(job: Job, lease: _Lease) -> None:
    """The heartbeat: touch the SAQ job and renew the lease, every :data:`BEAT` seconds."""
    while True:
        await anyio.sleep(BEAT)
        try:
            await job.update()
            await lease.renew()
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
            log.warning("heartbeat of %s failed: %s", job.key, type(exc).__name__)


@contextlib.asynccontextmanager
async def _heartbeat(job: Job, lease: _Lease) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_beat, job, lease)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
            await lease.release()


async def _export(state: WorkerState, project_id: str, options: dict[str, Any]) -> ResultDict:
    if options["start"] and options["reuse"] is None and not await state.first_attempt(project_id):
        # An earlier attempt (maybe on another machine, whose journal is not here) may have
        # started the export: adopt a completed one instead of paying for a second render.
        log.info("export of %s: adopting the export an earlier attempt started", project_id)
        options = {**options, "reuse": "completed"}
    token = shared_download_slots.set(state.slots)
    try:
        result = await state.session.export_project(project_id, state.out_dir, **options)
    finally:
        shared_download_slots.reset(token)
    data = result_dict(result, secret=state.secret)
    await state.record(data)
    return data


async def _run(
    state: WorkerState, lease: _Lease, project_id: str, options: dict[str, Any]
) -> tuple[ResultDict, bool]:
    """
    Wait for the project's lease (unless it is done already), then export it.

    Returns:
        The result, and whether this attempt did the export (not another one before it).
    """
    while True:
        done = await stored_result(state.redis, state.keys, project_id)
        if done is not None and done.get("ok"):
            return done, False
        if await lease.take():
            # Checked again under the lease: another attempt may have finished meanwhile.
            done = await stored_result(state.redis, state.keys, project_id)
            if done is not None and done.get("ok"):
                return done, False
            return await _export(state, project_id, options), True
        await anyio.sleep(BEAT)


async def export_job(
    ctx: JobContext,
    *,
    project_id: str,
    start: bool = True,
    reuse: Literal["completed"] | None = None,
    export_timeout: float = 900.0,
    overwrite: bool = False,
) -> ResultDict:
    """
    The SAQ job: export one project into the worker's directory; its result as JSON.

    A project already exported (by any worker) is not exported again: its recorded result
    is returned. A failure is a result (``"ok": false``), not an exception.
    """
    state = ctx["babou"]
    job = ctx["job"]
    options: dict[str, Any] = {
        "start": start,
        "reuse": reuse,
        "timeout": export_timeout,
        "overwrite": overwrite,
    }
    lease = _Lease(state.redis, state.keys.lease(project_id))
    async with _heartbeat(job, lease):
        data, fresh = await _run(state, lease, project_id, options)
    if fresh and state.on_result is not None:
        try:
            state.on_result(data)
        except Exception:
            log.exception("on_result failed for %s", project_id)
    return data
