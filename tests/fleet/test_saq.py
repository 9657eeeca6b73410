"""
The SAQ integration in one process: a real Redis, an in-process worker, FakeBabou on port 0.

What the fleet relies on is checked here against SAQ itself: one job per project, results in
``babou export --json``'s shape, failures reported, nothing secret in Redis, the knobs the
recovery rests on (heartbeat, sweep, retries) and the lease that keeps two attempts of one
project from running side by side.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from saq import Worker
from saq.job import Job, Status

from babou_async import BabouSession, ConfigurationError, ExportEvent, ExportResult, PollPolicy
from babou_async._cli._results import Outcome
from babou_async._project import shared_download_slots
from babou_async.contrib import saq as fleet
from babou_async.contrib._saq_job import Keys, result_dict
from babou_async.testing import FakeBabou, Faults

from ..support import fast_retry

pytestmark = pytest.mark.anyio

KIB = 1024


@pytest.fixture
async def fake() -> AsyncIterator[FakeBabou]:
    """A simulator with quick renders and small videos."""
    async with FakeBabou(
        seed=11,
        export_queued_seconds=0.05,
        export_processing_seconds=0.2,
        video_size=96 * KIB,
    ) as server:
        yield server


@asynccontextmanager
async def running_worker(
    redis_url: str, fake: FakeBabou, out: Path, **options: Any
) -> AsyncIterator[Worker[Any]]:
    """A worker of the fleet in this process, stopped (and drained) on exit."""
    worker = fleet.make_worker(
        redis_url,
        out,
        api_key=fake.api_key,
        base_url=fake.base_url,
        shared_budget=False,
        poll=PollPolicy.fast(),
        retry=fast_retry(6, base_delay=0.01, max_delay=0.1),
        shutdown_grace=0,  # stopped once its jobs are done: no need to wait for them
        **options,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(fleet.run_worker, worker)
        try:
            yield worker
        finally:
            await worker.stop()


async def stored_job(queue: fleet.FleetQueue, pid: str) -> Job:
    """The project's job as stored in Redis."""
    job = await queue.job(fleet.job_key(pid))
    assert job is not None
    return job


async def wait(queue: fleet.FleetQueue, ids: list[str]) -> list[dict[str, Any]]:
    """The projects' results, with a generous deadline."""
    with anyio.fail_after(30):
        return await fleet.wait_for_results(queue, ids, poll_interval=0.05)


async def test_jobs_export_each_project_once_in_the_cli_shape(
    redis_url: str, fake: FakeBabou, queue: fleet.FleetQueue, tmp_path: Path
) -> None:
    """Every project is exported once, byte-identical, its result a `babou export --json` line."""
    ids = [fake.seed_project(f"P{i}") for i in range(5)]
    seen: list[str] = []
    async with running_worker(
        redis_url, fake, tmp_path, on_result=lambda r: seen.append(r["project_id"])
    ):
        enqueued = await fleet.enqueue_exports(queue, [*ids, ids[0]])
        results = await wait(queue, ids)
    assert [(pid, "queued") for pid in ids] == [(e.project_id, e.state) for e in enqueued]
    assert ids == [r["project_id"] for r in results]
    assert sorted(ids) == sorted(seen)
    shape = Outcome.of_export(ExportResult(project_id=ids[0], ok=True)).to_json()
    for result in results:
        assert set(shape) == set(result)
        assert (True, False, "completed") == (result["ok"], result["skipped"], result["status"])
        data = await anyio.Path(result["path"]).read_bytes()
        assert fake.video_bytes(result["project_id"]) == data
        assert len(data) == result["bytes"]
    assert dict.fromkeys(ids, 1) == {pid: fake.renders(pid) for pid in ids}


async def test_enqueue_is_idempotent_while_queued_running_and_done(
    redis_url: str, fake: FakeBabou, queue: fleet.FleetQueue, tmp_path: Path
) -> None:
    """A second enqueue adds nothing; after the export, none runs again, on any worker."""
    ids = [fake.seed_project(f"I{i}") for i in range(3)]
    first = await fleet.enqueue_exports(queue, ids)
    second = await fleet.enqueue_exports(queue, ids)
    assert ["queued"] * 3 == [e.state for e in first]
    assert ["pending"] * 3 == [e.state for e in second]
    assert 3 == await queue.count("queued")
    async with running_worker(redis_url, fake, tmp_path / "a"):
        before = await wait(queue, ids)
    queued = await queue.count("queued")  # 0, or a duplicate SAQ's sweep queued (saq#124)
    third = await fleet.enqueue_exports(queue, ids)
    assert ["done"] * 3 == [e.state for e in third]
    assert queued == await queue.count("queued")
    # Even a job that slipped in (enqueued by hand, as a racing enqueuer might) on a worker
    # with another disk costs no request: the recorded result is the answer.
    fake.requests.clear()
    await queue.enqueue(
        fleet.JOB_FUNCTION, key=fleet.job_key(ids[0]), kwargs={"project_id": ids[0]}
    )
    async with running_worker(redis_url, fake, tmp_path / "b"):
        again = await wait(queue, ids)
    assert [] == fake.requests
    assert dict.fromkeys(ids, 1) == {pid: fake.renders(pid) for pid in ids}
    assert before == again


async def test_a_failed_export_is_a_failed_result_and_can_be_enqueued_again(
    redis_url: str, fake: FakeBabou, queue: fleet.FleetQueue, tmp_path: Path
) -> None:
    """A failed render is reported (type, message) and the next enqueue queues it again."""
    good, bad = fake.seed_project("good"), fake.seed_project("bad")
    fake.faults = Faults(fail_exports={bad})
    async with running_worker(redis_url, fake, tmp_path):
        await fleet.enqueue_exports(queue, [good, bad])
        results = await wait(queue, [good, bad])
        assert [True, False] == [r["ok"] for r in results]
        assert "ExportFailedError" == results[1]["error_type"]
        assert "failed" == results[1]["status"]
        assert bad in results[1]["error"]
        fake.faults = Faults()
        again = await fleet.enqueue_exports(queue, [good, bad])
        assert ["done", "queued"] == [e.state for e in again]
        retried = await wait(queue, [bad])
    assert retried[0]["ok"]
    assert 2 == fake.renders(bad)


async def _every_value(redis_url: str) -> list[bytes]:
    import redis.asyncio
    from redis.driver_info import DriverInfo

    client = redis.asyncio.from_url(redis_url, driver_info=DriverInfo(lib_version="test"))
    values: list[bytes] = []
    try:
        async for key in client.scan_iter():
            values.append(key)
            kind = (await client.type(key)).decode()
            if kind == "string":
                values.append(await client.get(key))
            elif kind == "list":
                values += await client.lrange(key, 0, -1)  # type: ignore[misc]
            elif kind == "zset":
                values += await client.zrange(key, 0, -1)
            elif kind == "hash":
                for field, value in (await client.hgetall(key)).items():  # type: ignore[misc]
                    values += [field, value]
    finally:
        await client.aclose()
    return values


async def test_the_api_key_never_reaches_redis(
    redis_url: str, fake: FakeBabou, queue: fleet.FleetQueue, tmp_path: Path
) -> None:
    """Jobs, results, leases, worker info: no key (nor anything key-shaped) in any value."""
    ids = [fake.seed_project("k1"), fake.seed_project("k2")]
    fake.faults = Faults(fail_exports={ids[1]})
    async with running_worker(redis_url, fake, tmp_path):
        await fleet.enqueue_exports(queue, ids)
        await wait(queue, ids)
        values = await _every_value(redis_url)
    assert len(values) > 10  # jobs, results, SAQ's lists and stats were all scanned
    assert [] == [v for v in values if fake.api_key.encode() in v or b"sk-bab-" in v]
    job = json.loads(await queue.redis.get(queue.job_id(fleet.job_key(ids[0]))))
    assert {"project_id", "start", "reuse", "export_timeout", "overwrite"} == set(job["kwargs"])


async def test_the_knobs_recovery_rests_on(queue: fleet.FleetQueue, redis_url: str) -> None:
    """Jobs carry the heartbeat, retries and no deadline; workers sweep every SWEEP seconds."""
    await fleet.enqueue_exports(queue, ["prj_knobs"], timeout=60)
    job = await queue.job(fleet.job_key("prj_knobs"))
    assert job is not None
    assert (fleet.HEARTBEAT, fleet.RETRIES, 0) == (job.heartbeat, job.retries, job.timeout)
    assert 0 < fleet.HEARTBEAT <= 6
    assert job.kwargs == {
        "project_id": "prj_knobs",
        "start": True,
        "reuse": None,
        "export_timeout": 60.0,
        "overwrite": False,
    }
    options = fleet.settings(redis_url, "out", api_key="sk-bab-test")
    assert fleet.SWEEP == options["timers"]["sweep"]
    assert [(fleet.JOB_FUNCTION, fleet.export_job)] == options["functions"]
    await options["queue"].disconnect()


async def test_saq_sweeps_a_job_whose_heartbeat_stopped(queue: fleet.FleetQueue) -> None:
    """A job taken by a worker that then died goes back to the queue at the next sweep."""
    await fleet.enqueue_exports(queue, ["prj_dead"])
    job = await queue.dequeue()  # a worker takes it ...
    assert job is not None
    await job.update(status=Status.ACTIVE, started=1, attempts=1)
    assert [] == await queue.sweep(lock=1)  # ... and beats: not stuck
    await queue.redis.delete(queue.namespace("sweep"))  # the sweep's lock (SAQ 0.26's key)
    stale = await stored_job(queue, "prj_dead")
    assert Status.ACTIVE == stale.status
    stale.touched = int((time.time() - fleet.HEARTBEAT - 1) * 1000)  # ... then dies
    await queue.redis.set(stale.id, queue.serialize(stale))
    started = time.monotonic()
    swept = await queue.sweep(lock=1)
    assert [stale.id] == swept
    assert time.monotonic() - started < fleet.ABORT_WAIT + 2  # not SAQ's default 5 s wait
    back = await queue.job(job.key)
    assert back is not None
    assert (Status.QUEUED, 1) == (back.status, await queue.count("queued"))


async def test_a_second_attempt_waits_for_the_first_and_takes_its_result(
    redis_url: str, fake: FakeBabou, queue: fleet.FleetQueue, tmp_path: Path
) -> None:
    """Two attempts of one project (a sweep retrying a live job): the second does no work."""
    pid = fake.seed_project("twice")
    keys = Keys(queue.name)
    await queue.redis.set(keys.lease(pid), "another-attempt", px=60_000)
    async with running_worker(redis_url, fake, tmp_path):
        await fleet.enqueue_exports(queue, [pid])
        with anyio.fail_after(10):
            while (job := await stored_job(queue, pid)).status is not Status.ACTIVE:
                await anyio.sleep(0.05)
        await anyio.sleep(2.5)
        later = await stored_job(queue, pid)
        # The waiting attempt beats, so no sweep takes it for dead.
        assert (Status.ACTIVE, True) == (later.status, later.touched > job.touched)
        elsewhere = result_dict(ExportResult(project_id=pid, ok=True, bytes=7), secret=None)
        await queue.redis.set(keys.result(pid), json.dumps(elsewhere))
        await queue.redis.delete(keys.lease(pid))
        results = await wait(queue, [pid])
    assert 0 == fake.renders(pid)
    assert elsewhere == results[0]
    assert await queue.redis.get(keys.lease(pid)) is None


async def test_wait_reports_jobs_that_ended_without_a_result(queue: fleet.FleetQueue) -> None:
    """A project never enqueued, and a job SAQ gave up on, are failed results."""
    await fleet.enqueue_exports(queue, ["prj_gone"])
    job = await queue.job(fleet.job_key("prj_gone"))
    assert job is not None
    await queue.finish(job, Status.ABORTED, error="swept")  # retryable: maybe a sweep's
    results = await fleet.wait_for_results(queue, ["prj_never"])
    with anyio.move_on_after(0.3):
        results += await fleet.wait_for_results(queue, ["prj_gone"])
    assert 1 == len(results)  # "aborted" but retryable: not final yet
    job.attempts = job.retries  # no attempt left: final
    await queue.finish(job, Status.ABORTED, error="swept")
    results += await fleet.wait_for_results(queue, ["prj_gone"])
    assert [("JobNotFound", False), ("JobError", False)] == [
        (r["error_type"], r["ok"]) for r in results
    ]
    assert "job aborted: swept" == results[1]["error"]


async def test_a_worker_downloads_at_most_download_concurrency_at_once(
    fake: FakeBabou, tmp_path: Path
) -> None:
    """The worker's slots bound the downloads of jobs that each run export_project alone."""
    fake.export_video_size = 512 * KIB
    fake.faults = Faults(slow_bytes_per_second=2 * 1024 * KIB)
    ids = [fake.seed_project(f"D{i}") for i in range(4)]
    active: set[str] = set()
    most = 0

    def progress(event: ExportEvent) -> None:
        nonlocal most
        if event.kind != "download":
            return
        if event.bytes_done == event.bytes_total:  # the last chunk: the slot is free
            active.discard(event.project_id)
        else:
            active.add(event.project_id)
            most = max(most, len(active))

    async def one(babou: BabouSession, pid: str) -> None:
        await babou.export_project(pid, tmp_path, poll=PollPolicy.fast(), progress=progress)

    token = shared_download_slots.set(anyio.Semaphore(1))
    try:
        async with (
            BabouSession(fake.api_key, base_url=fake.base_url) as babou,
            anyio.create_task_group() as tg,
        ):
            for pid in ids:
                tg.start_soon(one, babou, pid)
    finally:
        shared_download_slots.reset(token)
    assert 1 == most
    assert all(fake.renders(pid) == 1 for pid in ids)


def test_bad_queue_urls_and_a_missing_key_are_configuration_errors(tmp_path: Path) -> None:
    """Only redis://, rediss:// and unix:// are queues; a worker without a key does not start."""
    for url in ("http://localhost", "unix://", "", "http://me:hunter2@host:1/0"):
        with pytest.raises(ConfigurationError, match="queue URL") as caught:
            fleet.open_queue(url)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="API key"):
        fleet.settings("redis://localhost:6379/0", tmp_path)


def test_the_enqueue_command_in_plain_text_and_its_usage_errors(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain `babou enqueue` says what it did; bad input exits 2; without SAQ, the extra."""
    from babou_async._cli import main

    assert 0 == main(["enqueue", "prj_plain", "--queue", redis_url])
    assert 0 == main(["enqueue", "prj_plain", "--queue", redis_url])
    lines = capsys.readouterr().out.splitlines()
    assert [
        "Enqueued 1 export; 0 already queued or running, 0 already done.",
        "Enqueued 0 exports; 1 already queued or running, 0 already done.",
    ] == lines
    assert 2 == main(["enqueue", "prj_plain", "--queue", "http://nowhere"])
    assert 2 == main(["enqueue", "--queue", redis_url])
    assert 2 == main(["enqueue", "bad-id", "--queue", redis_url])
    import babou_async.contrib

    monkeypatch.setitem(sys.modules, "babou_async.contrib.saq", None)  # as if SAQ were missing
    monkeypatch.delattr(babou_async.contrib, "saq")
    assert 2 == main(["worker", "--queue", redis_url, "--out", "x"])
    assert "pip install 'babou_async[saq]'" in capsys.readouterr().err


async def _stuck_job(queue: fleet.FleetQueue, pid: str) -> Job:
    """A job that a worker took, then died with (its last heartbeat long ago)."""
    await fleet.enqueue_exports(queue, [pid])
    job = await queue.dequeue()
    assert job is not None
    await job.update(status=Status.ACTIVE, started=1, attempts=1)
    stale = await stored_job(queue, pid)
    stale.touched = int((time.time() - fleet.HEARTBEAT - 1) * 1000)
    await queue.redis.set(stale.id, queue.serialize(stale))
    return stale


async def test_a_sweep_cancelled_half_way_still_gives_the_job_back(
    queue: fleet.FleetQueue,
) -> None:
    """A stopping worker's sweep finishes: the job it aborted is queued again, not stranded."""
    import asyncio

    await _stuck_job(queue, "prj_halfway")
    sweep = asyncio.ensure_future(queue.sweep(lock=1))
    await anyio.sleep(0.3)  # the sweep has aborted the job, and waits ABORT_WAIT s for an answer
    sweep.cancel()  # as a stopping SAQ worker cancels its upkeep tasks
    with pytest.raises(asyncio.CancelledError):
        await sweep
    back = await stored_job(queue, "prj_halfway")
    assert (Status.QUEUED, 1) == (back.status, await queue.count("queued"))


async def test_results_without_a_job_result_come_from_the_record(
    queue: fleet.FleetQueue,
) -> None:
    """A job complete without a result (a racing attempt's write): the recorded one, or an error."""
    await fleet.enqueue_exports(queue, ["prj_a", "prj_b"])
    for pid in ("prj_a", "prj_b"):
        await queue.finish(await stored_job(queue, pid), Status.COMPLETE, result=None)
    recorded = result_dict(ExportResult(project_id="prj_a", ok=True, bytes=3), secret=None)
    await queue.redis.set(Keys(queue.name).result("prj_a"), json.dumps(recorded))
    first, second = await fleet.wait_for_results(queue, ["prj_a", "prj_b"])
    assert recorded == first
    assert ("JobError", "the job finished without a result") == (
        second["error_type"],
        second["error"],
    )


async def test_heartbeat_and_hook_failures_are_logged_not_fatal(
    redis_url: str,
    fake: FakeBabou,
    queue: fleet.FleetQueue,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing on_result, a lost lease, a failed beat: warnings, and the export still counts."""
    from babou_async.contrib import _saq_job

    pid = fake.seed_project("hooks")

    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("hook")

    async with running_worker(redis_url, fake, tmp_path, on_result=broken, keep_results=0):
        await fleet.enqueue_exports(queue, [pid])
        (result,) = await wait(queue, [pid])
    assert result["ok"]
    assert -1 == await queue.redis.ttl(Keys(queue.name).result(pid))  # kept for good
    lease = _saq_job._Lease(queue.redis, "babou:test:lease", held=True)
    await lease.renew()  # not ours any more
    job = await stored_job(queue, pid)
    job.queue = None  # its update() now fails

    async def run_beat() -> None:
        await _saq_job._beat(job, lease)

    with anyio.move_on_after(1.5):
        await run_beat()
    messages = [r.getMessage() for r in caplog.records]
    assert any("on_result failed" in m for m in messages)
    assert any("lease on babou:test:lease was lost" in m for m in messages)
    assert any("heartbeat of export:" in m for m in messages)
