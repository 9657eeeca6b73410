"""
Memory stays flat whatever the file size.

Each download runs in a fresh interpreter (``python -m benchmarks._memory child ...``)
that reports its peak resident set size (the kernel's high-water mark, ``VmHWM``: exact,
no sampling) after ``BabouSession.download_export`` of one export. A small and a large
export are downloaded alternately; the figure is the difference of the median peaks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import ROOT, MiB, Options, Result, ServerProcess, check, median, ratio, rss_bytes

NAME = "memory"
TARGET_MIB = 32.0


def _peak_rss() -> int:
    """
    Peak RSS of this process in bytes.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's
    own address space. Not ``ru_maxrss``, which after fork+exec also remembers the
    parent's RSS at the time of the fork (the benchmark runner's, tens of MiB).
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def _child(base_url: str, api_key: str, project_id: str, dest: str) -> dict[str, Any]:
    from babou_async import BabouSession

    async with BabouSession(api_key, base_url=base_url) as babou:
        await babou.get_project(project_id)  # warm: imports, connection, first request
        before = rss_bytes()
        peak_before = _peak_rss()
        start = time.perf_counter()
        result = await babou.download_export(project_id, dest, overwrite=True)
        seconds = time.perf_counter() - start
    return {
        "bytes": result.bytes,
        "ok": result.ok,
        "seconds": seconds,
        "rss_before": before,
        "peak_before": peak_before,
        "peak": _peak_rss(),
    }


def child_main(argv: list[str]) -> int:
    base_url, api_key, project_id, dest = argv
    report = asyncio.run(_child(base_url, api_key, project_id, dest))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


def _measure(opts: Options, server: ServerProcess, project_id: str, dest: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            opts.python,
            "-m",
            "benchmarks._memory",
            "child",
            server.base_url,
            server.api_key,
            project_id,
            str(dest),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed: {done.stderr.strip()[-800:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not report["ok"]:
        raise RuntimeError("memory child: download not ok")
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def run(opts: Options) -> list[Result]:
    small = opts.pick(32 * MiB, 8 * MiB, 1 * MiB)
    large = opts.pick(1024 * MiB, 64 * MiB, 4 * MiB)
    reps = opts.pick(3, 2, 1)
    peaks: dict[str, list[int]] = {"small": [], "large": []}
    reports: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    with (
        ServerProcess.run(
            opts, "--sizes", f"{small},{large}", "--start-exports", "--sha"
        ) as server,
        tempfile.TemporaryDirectory(prefix="babou-bench-") as tmp,
    ):
        projects = {"small": server.info["projects"][0], "large": server.info["projects"][1]}
        for rep in range(reps):
            order = ("small", "large") if rep % 2 == 0 else ("large", "small")
            for which in order:
                project = projects[which]
                dest = Path(tmp) / f"{which}.mp4"
                report = _measure(opts, server, str(project["id"]), dest)
                if report["bytes"] != project["size"]:
                    raise RuntimeError(f"{which}: got {report['bytes']} bytes")
                if rep == 0 and _sha256(dest) != project["sha256"]:
                    raise RuntimeError(f"{which}: the file differs from the server's video")
                dest.unlink()
                peaks[which].append(int(report["peak"]))
                reports[which].append(report)
    peak_small = median(peaks["small"]) / MiB
    peak_large = median(peaks["large"]) / MiB
    delta = peak_large - peak_small
    return [
        Result(
            "memory.peak_rss",
            peak_large,
            peak_small,
            ratio(peak_large, peak_small),
            f"large - small < {TARGET_MIB:g} MiB (got {delta:+.1f})",
            check(delta < TARGET_MIB),
            "MiB",
            {
                "small_mib": small / MiB,
                "large_mib": large / MiB,
                "delta_mib": delta,
                "runs": reports,
            },
        )
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(f"usage: python -m benchmarks._memory child BASE_URL KEY PROJECT_ID DEST {sys.argv}")
