"""
Exports on a fleet of workers, through the SAQ job queue (``pip install 'babou_async[saq]'``).

One job per project (key ``export:<project_id>``, so enqueueing twice is harmless), run by
any worker of the fleet with :meth:`BabouSession.export_project
<babou_async.BabouSession.export_project>`, which adopts the export an earlier attempt
started instead of paying for a second render. Each worker process holds one
:class:`~babou_async.BabouSession` (made by the start-up hook, closed by the shut-down
hook), spending one request budget shared by the whole fleet through Redis
(:class:`~babou_async.contrib.redis.RedisBudget`) unless told otherwise.

On the enqueueing side::

    from babou_async.contrib.saq import enqueue_exports, open_queue, wait_for_results

    queue = open_queue("redis://localhost:6379/0")
    await queue.connect()
    await enqueue_exports(queue, ["prj_a", "prj_b"])
    for result in await wait_for_results(queue, ["prj_a", "prj_b"]):
        print(result["project_id"], result["ok"], result["path"])
    await queue.disconnect()

On each worker machine (the API key comes from its own ``BABOU_API_KEY``)::

    from babou_async.contrib.saq import make_worker, run_worker

    await run_worker(make_worker("redis://localhost:6379/0", "videos/"))

or ``babou worker --queue redis://localhost:6379/0 --out videos/`` (see ``docs/fleet.md``).

Why SAQ: it is asyncio-native and its Redis queue sweeps the jobs of dead workers by
heartbeat, so a ``kill -9``'d worker's projects are running elsewhere within seconds; arq,
the other asyncio-native candidate, is maintenance-only and has no heartbeat. The knobs
this module sets (and ``tests/fleet`` checks) are pinned to SAQ 0.26 by the ``saq`` extra.

.. versionadded:: 0.2
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
import redis
import redis.asyncio
from saq import Worker
from saq.job import Job, Status
from saq.queue.redis import RedisQueue

from babou_async import BabouSession, ConfigurationError, PollPolicy, RateLimit, RetryPolicy
from babou_async._project import checked_options
from babou_async._redaction import redact
from babou_async._validation import check_api_key, check_project_id

from ._saq_job import (
    HEARTBEAT,
    JOB_FUNCTION,
    JobContext,
    Keys,
    ResultDict,
    WorkerState,
    export_job,
    job_key,
    stored_result,
)

try:
    from redis.driver_info import DriverInfo
except ImportError:  # pragma: no cover - redis < 7 reads its version once, at import
    _DRIVER: dict[str, Any] = {}
else:
    # redis 7 looks its version up in the package metadata (a blocking stat) for each new
    # connection, in the event loop: tell it once, here.
    _DRIVER = {"driver_info": DriverInfo(lib_version=redis.__version__)}

__all__ = [
    "ABORT_WAIT",
    "HEARTBEAT",
    "JOB_FUNCTION",
    "KEEP_RESULTS",
    "QUEUE_NAME",
    "RETRIES",
    "SWEEP",
    "Enqueued",
    "FleetQueue",
    "ResultDict",
    "enqueue_exports",
    "export_job",
    "job_key",
    "make_worker",
    "open_queue",
    "run_worker",
    "settings",
    "wait_for_results",
]

#: The SAQ queue's default name (its Redis keys start with ``saq:babou:``).
QUEUE_NAME = "babou"
#: Attempts of a job (SAQ's ``retries``): each worker death or hand-back uses one.
RETRIES = 10
#: Seconds between two sweeps for abandoned jobs (one sweeper at a time, fleet-wide).
SWEEP = 2
#: Seconds the sweep waits for an abandoned job's worker to acknowledge (a dead one never does).
ABORT_WAIT = 2.0
#: Seconds that results (and the "done" of each project) are kept: a week.
KEEP_RESULTS = 7 * 24 * 3600
_CHUNK = 500
_SCHEMES = ("redis", "rediss", "unix")


class FleetQueue(RedisQueue):
    """
    SAQ's Redis queue, with a quicker sweep that is never left half done.

    * The sweep asks a stuck job's worker to abort it, then waits before it retries the job
      elsewhere; a worker that was killed never answers, so the wait (5 s in SAQ) only
      delays recovery: here it is :data:`ABORT_WAIT`.
    * A sweep cancelled between its abort and its retry (its worker stopping) would strand
      the job, out of every list and "aborting" for ever; so a cancelled sweep finishes
      first (in SAQ 0.26 the worker gives its tasks ``cancellation_hard_deadline_s``).
    """

    async def sweep(self, lock: int = 60, abort: float = ABORT_WAIT) -> list[str]:
        """Retry (or abort) the jobs whose heartbeat stopped; see SAQ's ``RedisQueue.sweep``."""
        task = asyncio.ensure_future(super().sweep(lock, abort))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.shield(task)  # SAQ cancels once; a second cancel leaves it running
            raise


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("no queue URL: pass --queue URL or set BABOU_QUEUE_URL")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES or (scheme == "unix" and not urllib.parse.urlsplit(url).path):
        raise ConfigurationError(
            f"bad queue URL {_shown(url)!r}: expected redis://host:port/db, rediss://... "
            "or unix:///path/to/redis.sock"
        )
    return url


def open_queue(url: str, *, name: str = QUEUE_NAME) -> FleetQueue:
    """
    The SAQ queue on the Redis at ``url`` (call ``await queue.connect()`` before use).

    Args:
        url: ``redis://host:port/db``, ``rediss://...`` (TLS) or ``unix:///path/redis.sock``.
        name: The queue's name: workers and enqueuers of one fleet use the same.

    Raises:
        ConfigurationError: The URL is not one of those.
    """
    return FleetQueue(redis.asyncio.from_url(_check_url(url), **_DRIVER), name=name)


@attrs.define(kw_only=True)
class _Fleet:
    """What the start-up and shut-down hooks of a worker need (the key never shown)."""

    url: str
    queue: FleetQueue
    out_dir: Path
    api_key: str = attrs.field(repr=False)
    base_url: str | None
    rate_limit: RateLimit | None
    shared_budget: bool
    poll: PollPolicy | None
    retry: RetryPolicy | None
    download_concurrency: int
    keep_results: int
    on_result: Callable[[ResultDict], object] | None

    async def startup(self, ctx: JobContext) -> None:
        """Open the worker's one session (and its fleet-wide budget)."""
        budget: Any = self.rate_limit
        closers: list[Callable[[], Any]] = []
        if self.shared_budget:
            from .redis import RedisBudget  # noqa: PLC0415 - only when asked for

            budget = RedisBudget.from_url(
                self.url, api_key=self.api_key, rate_limit=self.rate_limit
            )
            closers.append(budget.aclose)
        session = BabouSession(
            self.api_key,
            base_url=self.base_url,
            rate_limit=budget,
            poll=self.poll,
            retry=self.retry or RetryPolicy(attempts=RETRIES),
        )
        closers.insert(0, session.aclose)
        ctx["babou"] = WorkerState(
            session=session,
            out_dir=self.out_dir,
            redis=self.queue.redis,
            keys=Keys(self.queue.name),
            slots=anyio.Semaphore(self.download_concurrency),
            keep_results=self.keep_results,
            on_result=self.on_result,
            secret=self.api_key,
            closers=closers,
        )

    async def shutdown(self, ctx: JobContext) -> None:
        """Close the session, then the budget."""
        state = ctx.get("babou")
        for close in state.closers if state is not None else ():
            await close()


def settings(
    url: str,
    out_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    rate_limit: RateLimit | None = None,
    shared_budget: bool = True,
    poll: PollPolicy | None = None,
    retry: RetryPolicy | None = None,
    concurrency: int = 16,
    download_concurrency: int = 4,
    shutdown_grace: float = 10.0,
    keep_results: int = KEEP_RESULTS,
    queue_name: str = QUEUE_NAME,
    on_result: Callable[[ResultDict], object] | None = None,
) -> dict[str, Any]:
    """
    The keyword arguments of a ``saq.Worker`` that exports projects (SAQ's settings dict).

    Args:
        url: The queue's Redis (see :func:`open_queue`).
        out_dir: Where this worker writes the videos (its local disk or a shared one).
        api_key: The key; default ``BABOU_API_KEY`` of this process (never sent to Redis).
        base_url: The API root; default ``BABOU_BASE_URL``, else production.
        rate_limit: The key's known limit; ``None`` lets the budget find it.
        shared_budget: Spend one budget for the whole fleet, kept in the same Redis
            (:class:`~babou_async.contrib.redis.RedisBudget`); ``False`` gives each worker
            its own (the limit is then per worker, not per key).
        poll: The session's poll policy.
        retry: The session's retry policy; default 10 attempts (rather than 5): while a
            fleet finds the key's limit, a request may meet several 429s, and a failed
            export is not retried by the queue.
        concurrency: Jobs (projects) this worker runs at once.
        download_concurrency: Downloads this worker runs at once.
        shutdown_grace: On SIGTERM, seconds the running jobs get to finish before they are
            cancelled and handed back to the queue (another worker adopts their exports).
        keep_results: Seconds that results, and the "done" of each project, are kept.
        queue_name: The queue's name.
        on_result: Called with each job's result in this worker.

    Raises:
        ConfigurationError: No API key, or a bad URL.
    """
    key = check_api_key(api_key if api_key is not None else os.environ.get("BABOU_API_KEY"))
    queue = open_queue(url, name=queue_name)
    fleet = _Fleet(
        url=url,
        queue=queue,
        out_dir=Path(os.fspath(out_dir)),
        api_key=key,
        base_url=base_url,
        rate_limit=rate_limit,
        shared_budget=shared_budget,
        poll=poll,
        retry=retry,
        download_concurrency=download_concurrency,
        keep_results=keep_results,
        on_result=on_result,
    )
    return {
        "queue": queue,
        "functions": [(JOB_FUNCTION, export_job)],
        "concurrency": concurrency,
        "startup": fleet.startup,
        "shutdown": fleet.shutdown,
        # Sweep often (the sweep holds a fleet-wide lock, so one worker sweeps at a time);
        # dequeue with a timeout so that an idle worker stops promptly on SIGTERM.
        "timers": {"sweep": SWEEP, "abort": 1, "schedule": 1, "worker_info": 2},
        "dequeue_timeout": 1.0,
        "shutdown_grace_period_s": max(0, round(shutdown_grace)),
        "cancellation_hard_deadline_s": 10.0,
    }


def make_worker(url: str, out_dir: str | os.PathLike[str], **options: Any) -> Worker[Any]:
    """A ``saq.Worker`` built from :func:`settings` (same arguments)."""
    return Worker(**settings(url, out_dir, **options))


async def run_worker(worker: Worker[Any]) -> None:
    """Connect the worker's queue, run jobs until SIGTERM, SIGINT or ``worker.stop()``."""
    await worker.queue.connect()
    try:
        await worker.start()
    finally:
        await worker.queue.disconnect()


@attrs.frozen
class Enqueued:
    """
    What :func:`enqueue_exports` did for one project.

    Attributes:
        project_id: The project.
        state: ``"queued"`` (a new job), ``"pending"`` (its job was already queued or
            running: nothing added) or ``"done"`` (exported already; its result is kept).
    """

    project_id: str
    state: Literal["queued", "pending", "done"]


def _unique(project_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(check_project_id(pid) for pid in project_ids))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


async def enqueue_exports(
    queue: RedisQueue,
    project_ids: Iterable[str],
    *,
    start: bool = True,
    reuse: Literal["completed"] | None = None,
    timeout: float | dt.timedelta = 900.0,
    overwrite: bool = False,
    keep_results: int = KEEP_RESULTS,
) -> list[Enqueued]:
    """
    Enqueue one export job per project; idempotent.

    A project whose job is queued or running gets no second job, and one already exported
    (its result is kept for ``keep_results`` seconds) none at all. A project whose last
    export failed is queued again.

    Args:
        queue: The fleet's queue (:func:`open_queue`, connected).
        project_ids: ``prj_...`` IDs; duplicates count once.
        start: Start the exports; ``False`` only follows exports started elsewhere.
        reuse: ``"completed"`` downloads a completed export not started by the fleet.
        timeout: Per-project deadline for the export to become terminal.
        overwrite: Replace videos already on the worker's disk.
        keep_results: Seconds that SAQ keeps each finished job.

    Returns:
        One :class:`Enqueued` per distinct project, in order.

    Raises:
        ValidationError: A bad project ID or option (before anything is enqueued).
    """
    ids = _unique(project_ids)
    options = checked_options(start, reuse, timeout, None, overwrite)
    kwargs: dict[str, Any] = {"start": options.start, "reuse": options.reuse}
    kwargs["overwrite"] = options.overwrite
    kwargs["export_timeout"] = options.timeout
    keys = Keys(queue.name)
    out: list[Enqueued] = []
    for chunk in _chunks(ids):
        stored = await queue.redis.mget([keys.result(pid) for pid in chunk])
        for pid, raw in zip(chunk, stored, strict=True):
            if raw is not None and json.loads(raw).get("ok") is True:
                out.append(Enqueued(pid, "done"))
                continue
            job = Job(
                function=JOB_FUNCTION,
                kwargs={"project_id": pid, **kwargs},
                key=job_key(pid),
                timeout=0,  # no job deadline: the export's own and the heartbeat bound it
                heartbeat=HEARTBEAT,
                retries=RETRIES,
                ttl=keep_results,
            )
            added = await queue.enqueue(job)
            out.append(Enqueued(pid, "queued" if added is not None else "pending"))
    return out


def _failed(project_id: str, error: str, error_type: str) -> ResultDict:
    """A failed result for a job that ended without one (swept for good, or missing)."""
    return {
        "type": "result",
        "project_id": project_id,
        "ok": False,
        "skipped": False,
        "status": None,
        "path": None,
        "bytes": 0,
        "error": redact(error),
        "error_type": error_type,
        "started_at": None,
        "completed_at": None,
        "downloaded_at": None,
    }


async def _final(queue: RedisQueue, project_id: str, job: Job | None) -> ResultDict | None:
    """The project's result if its job is over, else ``None``."""
    if job is not None and job.status is Status.COMPLETE and isinstance(job.result, dict):
        return job.result
    if job is None or job.status is Status.COMPLETE:
        stored = await stored_result(queue.redis, Keys(queue.name), project_id)
        if stored is not None:
            return stored
        if job is None:
            return _failed(project_id, "no export job for this project", "JobNotFound")
        return _failed(project_id, "the job finished without a result", "JobError")
    if job.status is Status.FAILED or (job.status is Status.ABORTED and _given_up(job)):
        last = (job.error or job.status.value).strip().splitlines() or [job.status.value]
        return _failed(project_id, f"job {job.status.value}: {last[-1]}", "JobError")
    return None


def _given_up(job: Job) -> bool:
    """
    Whether an aborted job stays so: SAQ's sweep retries a job it aborted, once acknowledged.

    "aborted" is how a sweep's job looks for a moment (tobymao/saq#124: even a job swept
    while it was starting): it is final only without attempts left, or once it has stayed
    so longer than a sweep takes.
    """
    settled = time.time() - job.completed / 1000 > ABORT_WAIT + SWEEP + 3
    return not job.retryable or settled


async def wait_for_results(
    queue: RedisQueue,
    project_ids: Iterable[str],
    *,
    poll_interval: float = 0.5,
    on_result: Callable[[ResultDict], object] | None = None,
    on_status: Callable[[str, str], object] | None = None,
) -> list[ResultDict]:
    """
    Follow the projects' jobs to the end; their results, as ``babou export --json`` prints.

    Args:
        queue: The fleet's queue (connected).
        project_ids: The projects (duplicates count once).
        poll_interval: Seconds between two looks at the jobs.
        on_result: Called with each result as it arrives.
        on_status: ``on_status(project_id, status)`` when a job's SAQ status changes
            (``"queued"``, ``"active"``...).

    Returns:
        One result per distinct project, in order: ``{"type": "result", "project_id",
        "ok", "skipped", "status", "path", "bytes", "error", "error_type", "started_at",
        "completed_at", "downloaded_at"}``; ``path`` is on the disk of the worker that
        exported it. A job that SAQ gave up on is a failed result (``"JobError"``).
    """
    ids = _unique(project_ids)
    results: dict[str, ResultDict] = {}
    seen: dict[str, str] = {}
    while remaining := [pid for pid in ids if pid not in results]:
        for chunk in _chunks(remaining):
            for pid, job in zip(chunk, await queue.jobs(map(job_key, chunk)), strict=True):
                final = await _final(queue, pid, job)
                if final is not None:
                    results[pid] = final
                    if on_result is not None:
                        on_result(final)
                elif job is not None and seen.get(pid) != job.status.value:
                    seen[pid] = job.status.value
                    if on_status is not None:
                        on_status(pid, job.status.value)
        if len(results) < len(ids):
            await anyio.sleep(poll_interval)
    return [results[pid] for pid in ids]
