"""
Polling in real time: the default ``PollPolicy`` on real clocks, against the pure simulation.

The confirmation the polling figures ask for: a few hundred exports announced "2-5 minutes",
lasting what :func:`benchmarks._polling.durations` draws (120-300 s, with 5% early and 5%
late outliers up to 600 s), all started at once in one ``BabouSession`` against a FakeBabou
in its own process (``--durations`` gives each project its own) and followed with
``wait_for_export(pid, estimate=(120, 300))``, every sleep and request real. Measured: status
requests per export and the p95 detection delay, next to what the pure simulation of
``benchmarks._polling`` predicts for the same durations. About 10 minutes; not in the
default run (``python -m benchmarks --only polling-realtime``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from babou_async import BabouSession, ExportStatus, PollPolicy

from . import Options, Result, ServerProcess, check, ratio
from ._polling import ESTIMATE, durations, p95, simulate

NAME = "polling-realtime"
#: The real run may differ from the simulation by jitter and request latency, not more.
TOLERANCE = 0.15
QUEUED = 1.0  # seconds of the duration spent queued


async def _follow(server: ServerProcess, finish: dict[str, float]) -> dict[str, Any]:
    async with BabouSession(server.api_key, base_url=server.base_url) as babou:

        async def one(pid: str) -> float:
            await babou.start_export(pid)
            t0 = time.monotonic()
            export = await babou.wait_for_export(pid, timeout=1200, estimate=ESTIMATE)
            if export.status is not ExportStatus.COMPLETED:
                raise RuntimeError(f"{pid} ended {export.status_raw}")
            return time.monotonic() - (t0 + finish[pid])

        late = await asyncio.gather(*(one(pid) for pid in finish))
    return {"late": list(late)}


def run(opts: Options) -> list[Result]:
    count = opts.pick(300, 60, 4)
    scale = opts.pickf(1.0, 0.1, 0.01)  # quick and smoke runs shrink time, not the shape
    finish = [d * scale for d in durations(count, seed=31)]
    processing = ",".join(f"{d - QUEUED * scale:.3f}" for d in finish)
    args = ["--projects", str(count), "--queued", str(QUEUED * scale), "--durations", processing]
    with ServerProcess.run(opts, *args, "--record-limit", "-1") as server:
        by_pid = dict(zip(server.project_ids, finish, strict=True))
        got = asyncio.run(_follow(server, by_pid))
        stats = server.command("stats")
    polls = stats["by_route"].get("GET /projects/{id}/export", 0) / count
    expected = simulate(PollPolicy(), [d / scale for d in finish])
    real_p95 = p95(got["late"]) / scale
    details = {"exports": count, "scale": scale, "simulation": expected, "p95_real": real_p95}
    within = abs(polls / expected["requests"] - 1) <= TOLERANCE
    return [
        Result(
            "polling-realtime.requests",
            polls,
            expected["requests"],
            ratio(polls, expected["requests"]),
            f"within {TOLERANCE:.0%} of the simulation",
            check(within) if scale == 1.0 else "INFO",
            "requests",
            details,
        ),
        Result(
            "polling-realtime.p95",
            real_p95,
            expected["p95"],
            ratio(real_p95, expected["p95"]),
            "p95 <= 10 s",
            check(real_p95 <= 10.0) if scale == 1.0 else "INFO",
            "s",
            details,
        ),
    ]
