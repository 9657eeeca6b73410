"""
A fleet of ``babou worker`` processes against one simulator: throughput and the shared budget.

``python -m benchmarks --only fleet`` (needs ``redis-server`` on PATH and the ``saq`` extra;
SKIP rows otherwise). Each run starts a Redis server on a unix socket, serves FakeBabou from
this process (the workers are separate processes, so the server's CPU is not theirs) and
starts the workers as real subprocesses (``python -m babou_async worker``), waits until each
listens, then enqueues the projects and times from the enqueue to the last result.

Every download is capped at 2 MiB/s by the simulator (``Faults.slow_bytes_per_second``,
per connection) and each worker downloads 2 at once, so one worker's bandwidth is about
4 MiB/s: more workers really add bandwidth, as more machines would.

* ``fleet.throughput``: 60 projects (2 MiB videos, 0.5-1.5 s renders) on 3 workers
  against 1 worker. Target: >= 2.5x.
* ``fleet.known_limit.share_429``: the simulator limits the key to 20 requests/s (burst
  20); the 3 workers are told (``--rate-limit 20``) and share one RedisBudget. Renders of
  3-5 s and 256 KiB videos, so that the requests (mostly polls of 24 exports at once, far
  more than 20/s wanted) are the bottleneck. Target: <= 1% of the fleet's API requests
  answered 429.
* ``fleet.unknown_limit.share_429`` and ``fleet.unknown_limit.wall``: the same limit, not
  told: the shared adaptive budget must find it. Targets: <= 5% 429s, wall <= 1.3x the
  known-limit run.

The budget runs export 120 projects (16 at once per worker). ``--quick`` halves both
counts, ``--smoke`` runs 6 (figures meaningless).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from . import ROOT, Options, Result, check, ratio

NAME = "fleet"
MIB = 1024 * 1024
LIMIT = (20.0, 20)
TARGET_SPEEDUP = 2.5
TARGET_KNOWN_SHARE = 0.01
TARGET_UNKNOWN_SHARE = 0.05
TARGET_UNKNOWN_WALL = 1.3


def _crc(pid: str) -> int:
    return zlib.crc32(pid.encode())


@contextmanager
def _redis(directory: Path) -> Any:
    """A throw-away Redis server on a unix socket; its ``unix://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    sock = directory / "redis.sock"
    args = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _environ(fake: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(BABOU_API_KEY=fake.api_key, BABOU_BASE_URL=fake.base_url)
    return env


@asynccontextmanager
async def _worker(
    opts: Options, fake: Any, url: str, out: Path, extra: list[str]
) -> AsyncIterator[None]:
    """One ``babou worker`` subprocess, ready for jobs; SIGTERM'd on exit."""
    proc = await asyncio.create_subprocess_exec(
        opts.python,
        *("-m", "babou_async", "worker", "--queue", url, "--out", str(out)),
        *("--concurrency", "16", "--download-concurrency", "2", "--poll-interval", "0.25"),
        *extra,
        env=_environ(fake),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if b"waiting for jobs" not in line:
        raise RuntimeError(f"worker did not start: {line!r}")
    drain = asyncio.ensure_future(proc.stdout.read())
    try:
        yield
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
        await drain


async def _run(
    opts: Options, count: int, workers: int, *, limit: bool, told: bool
) -> dict[str, Any]:
    """One fleet run: ``workers`` workers export ``count`` projects; wall and request counts."""
    from babou_async.contrib import saq as fleet
    from babou_async.testing import FakeBabou, Faults

    with tempfile.TemporaryDirectory() as tmp, _redis(Path(tmp)) as url:
        async with FakeBabou(
            seed=3,
            export_queued_seconds=0.1,
            # Short renders and big videos when downloads are measured; renders of a few
            # seconds and small videos when the budget is: its polls are the requests.
            export_processing_seconds=lambda pid: (3.0 if limit else 0.4) + (_crc(pid) % 5) * 0.5,
            video_size=256 * 1024 if limit else 2 * MIB,
            faults=Faults(slow_bytes_per_second=2 * MIB),
            rate_limit=LIMIT if limit else None,
            url_ttl=3600.0,
        ) as fake:
            ids = [fake.seed_project(f"F{i}") for i in range(count)]
            extra = ["--rate-limit", str(LIMIT[0])] if told else []
            queue = fleet.open_queue(url)
            await queue.connect()
            async with AsyncExitStack() as stack:
                for index in range(workers):
                    out = Path(tmp) / f"w{index}"
                    await stack.enter_async_context(_worker(opts, fake, url, out, extra))
                fake.requests.clear()
                start = time.perf_counter()
                await fleet.enqueue_exports(queue, ids)
                arrivals: list[float] = []
                results = await fleet.wait_for_results(
                    queue,
                    ids,
                    poll_interval=0.05,
                    on_result=lambda _: arrivals.append(time.perf_counter() - start),
                )
                wall = time.perf_counter() - start
            failed = [r for r in results if not r["ok"]]
            await queue.disconnect()
            api = [r for r in fake.requests if r.origin == "api"]
            first = api[0].time if api else 0.0
            renders = {pid: fake.renders(pid) for pid in ids}
    return {
        "workers": workers,
        "projects": count,
        "wall_s": wall,
        "api_requests": len(api),
        "answered_429": sum(1 for r in api if r.status == 429),
        "rendered_twice": sum(1 for n in renders.values() if n > 1),
        "failed": len(failed),
        "first_error": failed[0]["error"] if failed else None,
        "api_rps": len(api) / wall,
        "done_at_s": [round(arrivals[int(q * (len(arrivals) - 1))], 1) for q in (0.5, 0.9, 1)],
        "api_429_at_s": [round(r.time - first, 1) for r in api if r.status == 429][:50],
    }


def _share(figures: dict[str, Any]) -> float:
    return float(figures["answered_429"] / max(1, figures["api_requests"]))


def _skip(reason: str) -> list[Result]:
    names = ("throughput", "known_limit.share_429", "unknown_limit.share_429", "unknown_limit.wall")
    return [Result(f"{NAME}.{n}", None, None, None, reason, "SKIP") for n in names]


def run(opts: Options) -> list[Result]:
    """The four figures (see the module docstring)."""
    if shutil.which("redis-server") is None:
        return _skip("needs redis-server")
    try:
        import saq  # noqa: F401
    except ImportError:
        return _skip("needs the saq extra")
    count, budget_count = opts.pick(60, 30, 6), opts.pick(120, 60, 6)
    runs = {
        "one": (count, 1, False, False),
        "three": (count, 3, False, False),
        "known": (budget_count, 3, True, True),
        "unknown": (budget_count, 3, True, False),
    }
    figures = {
        name: asyncio.run(_run(opts, n, workers, limit=limit, told=told))
        for name, (n, workers, limit, told) in runs.items()
    }
    one, three, known, unknown = (figures[n] for n in ("one", "three", "known", "unknown"))
    speedup = ratio(one["wall_s"], three["wall_s"])
    wall = ratio(unknown["wall_s"], known["wall_s"])
    common = {
        "projects": count,
        "budget_projects": budget_count,
        "limit": LIMIT,
        "figures": figures,
    }
    # Every run must export every project exactly once for its figure to count.
    twice = sum(f["rendered_twice"] + f["failed"] for f in figures.values())
    return [
        Result(
            f"{NAME}.throughput",
            three["wall_s"],
            one["wall_s"],
            speedup,
            f"1 worker's wall / 3 workers' >= {TARGET_SPEEDUP}",
            check(speedup >= TARGET_SPEEDUP and twice == 0),
            "s",
            common,
        ),
        Result(
            f"{NAME}.known_limit.share_429",
            _share(known),
            None,
            None,
            f"429s <= {TARGET_KNOWN_SHARE:.0%} of the fleet's requests",
            check(_share(known) <= TARGET_KNOWN_SHARE and not known["failed"]),
            "share",
            {"known": known},
        ),
        Result(
            f"{NAME}.unknown_limit.share_429",
            _share(unknown),
            None,
            None,
            f"429s <= {TARGET_UNKNOWN_SHARE:.0%} of the fleet's requests",
            check(_share(unknown) <= TARGET_UNKNOWN_SHARE and not unknown["failed"]),
            "share",
            {"unknown": unknown},
        ),
        Result(
            f"{NAME}.unknown_limit.wall",
            unknown["wall_s"],
            known["wall_s"],
            wall,
            f"unknown-limit wall / known-limit <= {TARGET_UNKNOWN_WALL}",
            check(wall <= TARGET_UNKNOWN_WALL and not unknown["failed"]),
            "s",
            {"unknown": unknown, "known": known},
        ),
    ]


if __name__ == "__main__":
    print(run(Options(quick="--quick" in sys.argv, smoke="--smoke" in sys.argv)))
