"""
Durable batches: after a crash or a cancellation, a re-run finishes every project exactly.

Exactly: byte-identical, with no second render, no second download and nothing left over.

The crash tests run the batch in a child process (``durable_child.py``) and kill it with
SIGKILL at seeded times and at chosen batch events; FakeBabou, in this process, starts a
new render for every POST after a terminal export, so a re-render would show.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from babou_async import BabouSession, ExportEvent, JournalLockedError, PollPolicy
from babou_async._files import WRITE_BUFFER
from babou_async.testing import FakeBabou, Faults

from ..differential.independent_sim import Faults as IndependentFaults
from ..differential.independent_sim import IndependentBabou
from ..support import fast_retry

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).with_name("durable_child.py")
JOURNAL = ".babou-journal.sqlite3"
MIB = 1024 * 1024
FAST_RETRY = fast_retry(6, base_delay=0.01, max_delay=0.1)


def sizes(pid: str) -> int:
    """Videos of 2-3.5 MiB: several write buffers each, so kills land mid-file."""
    return 2 * MIB + (zlib.crc32(pid.encode()) % 3) * 768 * 1024


class Sim:
    """What the crash tests need of a simulator: both FakeBabou and the independent one."""

    def __init__(self, name: str, server: Any) -> None:
        self.name = name
        self.server = server
        self.base_url: str = server.base_url
        self.api_key: str = server.api_key

    def seed(self, name: str) -> str:
        """A project ready to export."""
        if self.name == "fake":
            return str(self.server.seed_project(name))
        return str(self.server.add_project(name))

    def renders(self, pid: str) -> int:
        """Exports started for ``pid`` (each a render paid for)."""
        return int(self.server.renders(pid))

    def first_video(self, pid: str) -> bytes:
        """The bytes of the project's first render."""
        if self.name == "fake":
            return bytes(self.server.video_bytes(pid, generation=1))
        return bytes(self.server.video(pid, 1))

    def drops(self, pid: str) -> int:
        """Downloads of ``pid`` the origin cut on purpose since the last clear."""
        requests = self.server.requests
        return sum(1 for r in requests if r.origin == "asset" and pid in r.path and r.dropped)

    def asset_bytes(self, pid: str) -> int:
        """Video bytes the download origin sent for ``pid`` since the last clear."""
        requests = self.server.requests
        return sum(r.bytes_sent for r in requests if r.origin == "asset" and pid in r.path)

    def request_count(self) -> int:
        """Requests received since the last clear."""
        return len(self.server.requests)

    def clear(self) -> None:
        """Forget the requests received so far."""
        self.server.requests.clear()


@pytest.fixture(params=["fake", "independent"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Sim]:
    """Each simulator, with downloads that take a few tenths of a second each."""
    if request.param == "fake":
        server: Any = FakeBabou(
            seed=7,
            export_queued_seconds=0.05,
            export_processing_seconds=lambda pid: 0.15 + (zlib.crc32(pid.encode()) % 5) * 0.05,
            video_size=sizes,
            faults=Faults(slow_bytes_per_second=12 * MIB),
        )
    else:
        server = IndependentBabou(
            seed=7,
            export_processing_seconds=0.3,
            video_size=(2 * MIB, 3 * MIB + MIB // 2),
            faults=IndependentFaults(
                bytes_per_second=12 * MIB,
                etag="strong",
                rate_429=0.03,
                rate_5xx=0.03,
                methods=frozenset({"GET", "POST"}),
                download_drop=0.1,
            ),
        )
    async with server:
        yield Sim(request.param, server)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBabou]:
    """FakeBabou alone, for the tests of one behaviour."""
    async with FakeBabou(
        seed=7,
        export_queued_seconds=0.05,
        export_processing_seconds=0.2,
        video_size=sizes,
        faults=Faults(slow_bytes_per_second=12 * MIB),
    ) as server:
        yield server


def session(server: Sim | FakeBabou) -> BabouSession:
    """A session on the simulator with fast polls and retries."""
    return BabouSession(
        server.api_key, base_url=server.base_url, poll=PollPolicy.fast(), retry=FAST_RETRY
    )


async def run_child(sim: Sim, dest: Path, ids: list[str], **kill: object) -> None:
    """Run the batch in a child; kill it after ``delay`` seconds, or let it kill itself."""
    spec: dict[str, object] = {
        "base_url": sim.base_url,
        "api_key": sim.api_key,
        "dest": str(dest),
        "ids": ids,
    }
    delay = kill.pop("delay", None)
    spec.update(kill)
    async with await anyio.open_process([sys.executable, str(CHILD), json.dumps(spec)]) as child:
        if delay is not None:
            with anyio.move_on_after(float(delay)):  # type: ignore[arg-type]
                await child.wait()
            if child.returncode is None:
                child.kill()
        await child.wait()


async def on_disk(dest: Path, pid: str) -> int:
    """Bytes of ``pid``'s video on disk: the whole file, the partial, or none."""
    for name in (f"{pid}.mp4", f"{pid}.mp4.part"):
        path = anyio.Path(dest / name)
        if await path.exists():
            return (await path.stat()).st_size
    return 0


async def listing(dest: Path) -> list[str]:
    """The names in ``dest``, sorted."""
    return sorted([p.name async for p in anyio.Path(dest).iterdir()])


async def finish_and_check(sim: Sim, dest: Path, ids: list[str]) -> None:
    """Re-run to the end; check renders, bytes, leftovers, and a third run that asks nothing."""
    held = {pid: await on_disk(dest, pid) for pid in ids}
    sim.clear()
    async with session(sim) as babou:
        results = await babou.export_many(ids, dest)
    assert [] == [(r.project_id, r.error) for r in results if not r.ok]
    assert dict.fromkeys(ids, 1) == {pid: sim.renders(pid) for pid in ids}
    for pid in ids:
        data = await anyio.Path(dest / f"{pid}.mp4").read_bytes()
        assert sim.first_video(pid) == data
        # What was missing, plus one buffer (and one per connection the origin cut).
        allowed = len(data) - held[pid] + WRITE_BUFFER * (1 + sim.drops(pid))
        assert sim.asset_bytes(pid) <= allowed, (pid, sim.asset_bytes(pid), held[pid])
    assert sorted([f"{pid}.mp4" for pid in ids] + [JOURNAL]) == await listing(dest)
    sim.clear()
    async with session(sim) as babou:
        third = await babou.export_many(ids, dest)
    assert all(r.ok and r.skipped for r in third)
    assert 0 == sim.request_count()


KILL_TIMES = [round(random.Random(8).uniform(0.4, 3.0), 2) for _ in range(10)]


@pytest.mark.parametrize("delay", KILL_TIMES)
async def test_sigkill_at_a_seeded_time_then_rerun(sim: Sim, tmp_path: Path, delay: float) -> None:
    """Killed at a random instant, a re-run re-renders nothing and re-sends <= 1 buffer."""
    ids = [sim.seed(f"K{i}") for i in range(5)]
    await run_child(sim, tmp_path, ids, delay=delay)
    await finish_and_check(sim, tmp_path, ids)


KILL_EVENTS = [
    ("status", 1),
    ("status", 4),
    ("download", 2),
    ("download", 9),
    ("done", 1),
    ("done", 3),
]


@pytest.mark.parametrize(("kind", "after"), KILL_EVENTS)
async def test_sigkill_at_a_batch_event_then_rerun(
    sim: Sim, tmp_path: Path, kind: str, after: int
) -> None:
    """Killed at the n-th status, download or done event, a re-run finishes it all exactly."""
    ids = [sim.seed(f"E{i}") for i in range(4)]
    await run_child(sim, tmp_path, ids, kill_on=kind, kill_after=after)
    await finish_and_check(sim, tmp_path, ids)


CANCEL_POINTS = [("time", round(random.Random(9).uniform(0.0, 1.6), 3)) for _ in range(60)] + [
    (kind, n) for kind in ("status", "download", "done") for n in range(1, 15)
]


@pytest.mark.parametrize(("kind", "point"), CANCEL_POINTS)
async def test_cancelling_at_any_point_leaves_nothing_and_resumes(
    tmp_path: Path, kind: str, point: float
) -> None:
    """Cancelled at a time or an event, nothing is left half-done and a re-run completes."""
    async with FakeBabou(
        seed=11,
        export_queued_seconds=0.02,
        export_processing_seconds=lambda pid: 0.05 + (zlib.crc32(pid.encode()) % 4) * 0.05,
        video_size=lambda pid: MIB + 512 * 1024 + zlib.crc32(pid.encode()) % 1000,
        faults=Faults(slow_bytes_per_second=10 * MIB),
    ) as fake:
        ids = [fake.seed_project(f"C{i}") for i in range(3)]
        async with session(fake) as babou:
            seen = 0
            with anyio.CancelScope() as scope:

                def progress(event: ExportEvent) -> None:
                    nonlocal seen
                    if event.kind == kind:
                        seen += 1
                        if seen >= point:
                            scope.cancel()

                if kind == "time":
                    scope.deadline = anyio.current_time() + point
                await babou.export_many(ids, tmp_path, progress=progress)
        names = await listing(tmp_path)
        assert all(n == JOURNAL or n.endswith((".mp4", ".part", ".part.json")) for n in names)
        await finish_and_check(Sim("fake", fake), tmp_path, ids)


async def test_a_second_batch_on_the_same_directory_is_refused(
    fake: FakeBabou, tmp_path: Path
) -> None:
    """While a batch holds a directory, another one fails at once and sends nothing."""
    ids = [fake.seed_project("L")]
    second = BabouSession(fake.api_key, base_url=fake.base_url, user_agent="second-batch")
    async with session(fake) as first, second, anyio.create_task_group() as tg:
        tg.start_soon(first.export_many, ids, tmp_path)
        await anyio.sleep(0.05)
        with pytest.raises(JournalLockedError, match="another batch"):
            await second.export_many(ids, tmp_path)
    assert [] == [r for r in fake.requests if r.header("User-Agent") == "second-batch"]


async def test_zero_byte_and_truncated_files_are_never_blessed(
    fake: FakeBabou, tmp_path: Path
) -> None:
    """A file the journal does not vouch for is probed; a wrong size is an error naming it."""
    empty, short = fake.seed_project("Empty"), fake.seed_project("Short")
    async with session(fake) as babou:
        for pid in (empty, short):
            await babou.start_export(pid)
            await babou.wait_for_export(pid, timeout=10)
        await anyio.Path(tmp_path / f"{empty}.mp4").write_bytes(b"")
        await anyio.Path(tmp_path / f"{short}.mp4").write_bytes(b"x" * 1000)
        fake.clear_requests()
        results = await babou.export_many([empty, short], tmp_path)
        assert [False, False] == [r.ok for r in results]
        assert all(f"{r.project_id}.mp4" in str(r.error) for r in results)
        probes = fake.find_requests(origin="asset")
        assert all(r.header("Range") == "bytes=0-0" for r in probes)
        assert sum(r.bytes_sent for r in probes) <= 2
        replaced = await babou.export_many(
            [empty, short], tmp_path, overwrite=True, reuse="completed"
        )
        assert [True, True] == [r.ok for r in replaced]
        assert {empty: 1, short: 1} == {pid: fake.renders(pid) for pid in (empty, short)}


async def test_a_complete_file_without_journal_costs_one_probe(
    fake: FakeBabou, tmp_path: Path
) -> None:
    """A correct file the journal does not know is verified by a one-byte probe, then trusted."""
    pid = fake.seed_project("Known")
    async with session(fake) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=10)
        await babou.download_export(pid, tmp_path)
        fake.clear_requests()
        (result,) = await babou.export_many([pid], tmp_path)
        assert (True, True) == (result.ok, result.skipped)
        assert [1] == [r.bytes_sent for r in fake.find_requests(origin="asset")]
        fake.clear_requests()
        await babou.export_many([pid], tmp_path)
        assert [] == fake.requests


async def test_reuse_completed_collects_without_rendering(fake: FakeBabou, tmp_path: Path) -> None:
    """reuse='completed' downloads an export the batch did not start; the default renders anew."""
    pid = fake.seed_project("Old")
    async with session(fake) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=10)
        (reused,) = await babou.export_many([pid], tmp_path / "a", reuse="completed")
        assert reused.ok
        assert 1 == fake.renders(pid)
        (fresh,) = await babou.export_many([pid], tmp_path / "b")
        assert fresh.ok
        assert 2 == fake.renders(pid)


async def test_videos_get_the_mode_of_the_umask(fake: FakeBabou, tmp_path: Path) -> None:
    """Saved videos are -rw-r--r-- under umask 022, not the -rw------- of a temp file."""
    pid = fake.seed_project("Mode")
    async with session(fake) as babou:
        (result,) = await babou.export_many([pid], tmp_path)
    assert result.path is not None
    assert 0o644 == (await anyio.Path(result.path).stat()).st_mode & 0o777


async def test_sigint_through_the_cli_then_rerun(fake: FakeBabou, tmp_path: Path) -> None:
    """Ctrl-C on `babou export`, then the same command again: every video once, no re-render."""
    ids = [fake.seed_project(f"I{i}") for i in range(4)]
    command = [sys.executable, "-m", "babou_async", "export", *ids, "--out", str(tmp_path)]
    env = {"BABOU_API_KEY": fake.api_key, "BABOU_BASE_URL": fake.base_url}
    for delay in (0.8, None):
        async with await anyio.open_process(command, env={**_environ(), **env}) as child:
            if delay is not None:
                await anyio.sleep(delay)
                child.send_signal(signal.SIGINT)
            await child.wait()
    assert dict.fromkeys(ids, 1) == {pid: fake.renders(pid) for pid in ids}
    for pid in ids:
        assert fake.video_bytes(pid) == await anyio.Path(tmp_path / f"{pid}.mp4").read_bytes()


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
