"""
Download throughput: ``BabouSession.download_exports`` against ``curl --parallel``.

The simulator runs in its own process and serves N finished exports of S bytes each.
The signed URLs are fetched through the API first (they live for an hour), then, in
alternating order, curl and our client download all N to an empty directory with N
transfers in flight. Throughput is bytes over wall-clock seconds; the ratio of each
adjacent (ours, curl) pair is taken and the median of those ratios is the figure. Every
output file is checked against the server's SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from babou_async import BabouSession, RetryPolicy

from . import MiB, Options, Result, ServerProcess, check, median, ratio

NAME = "download"
TARGET = 0.90


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _signed_urls(server: ServerProcess, ids: list[str]) -> list[str]:
    async with BabouSession(server.api_key, base_url=server.base_url) as babou:
        urls: list[str] = []
        for pid in ids:
            export = await babou.get_export(pid)
            assert export.download_url is not None
            urls.append(export.download_url)
        return urls


def curl_command(curl: str, urls: list[str], dest: Path) -> list[str]:
    """The baseline: one curl process, every URL in flight at once."""
    command = [curl, "--parallel", "--parallel-max", str(len(urls)), "-s", "-S", "--fail"]
    for index, url in enumerate(urls):
        command += ["-o", str(dest / f"{index}.mp4"), url]
    return command


def _run_curl(curl: str, urls: list[str], dest: Path) -> tuple[float, float, list[Path]]:
    command = curl_command(curl, urls, dest)
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"curl exited {done.returncode}: {done.stderr.strip()[:500]}")
    return wall, _children_cpu() - cpu, [dest / f"{i}.mp4" for i in range(len(urls))]


async def _ours_async(server: ServerProcess, ids: list[str], dest: Path) -> tuple[float, float]:
    async with BabouSession(
        server.api_key, base_url=server.base_url, retry=RetryPolicy.disabled()
    ) as babou:
        cpu = time.process_time()
        start = time.perf_counter()
        results = await babou.download_exports(ids, dest, concurrency=len(ids))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"download failed: {failed[0].error}")
    return wall, cpu


def _run_ours(server: ServerProcess, ids: list[str], dest: Path) -> tuple[float, float, list[Path]]:
    wall, cpu = asyncio.run(_ours_async(server, ids, dest))
    return wall, cpu, [dest / f"{pid}.mp4" for pid in ids]


def run(opts: Options) -> list[Result]:
    count = opts.pick(8, 8, 2)
    size = opts.pick(64 * MiB, 8 * MiB, 256 * 1024)
    reps = opts.pick(9, 5, 1)
    warmups = opts.pick(1, 1, 0)
    name = "download.throughput"
    target = f"ours/curl >= {TARGET:.2f}"
    curl = shutil.which("curl")
    if curl is None:
        return [Result(name, None, None, None, target, "SKIP", details={"why": "no curl"})]
    total = count * size
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "curl": []}
    with (
        ServerProcess.run(
            opts,
            "--projects",
            str(count),
            "--video-size",
            str(size),
            "--start-exports",
            "--sha",
        ) as server,
        tempfile.TemporaryDirectory(prefix="babou-bench-") as tmp,
    ):
        ids = server.project_ids
        expected = [str(p["sha256"]) for p in server.info["projects"]]
        urls = asyncio.run(_signed_urls(server, ids))
        for rep in range(warmups + reps):
            # Alternate who goes first, so that drift (page cache, turbo, neighbours)
            # hurts both sides alike.
            order = ("curl", "ours") if rep % 2 == 0 else ("ours", "curl")
            for who in order:
                dest = Path(tmp) / who
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                server_cpu = server.cpu()
                if who == "curl":
                    wall, cpu, files = _run_curl(curl, urls, dest)
                else:
                    wall, cpu, files = _run_ours(server, ids, dest)
                server_cpu = server.cpu() - server_cpu
                got = [_sha256(f) for f in files]
                if got != expected:
                    raise RuntimeError(f"{who}: downloaded files differ from the server's videos")
                if rep >= warmups:
                    samples[who].append(
                        {
                            "seconds": wall,
                            "mib_per_s": total / wall / MiB,
                            "client_cpu_s": cpu,
                            "server_cpu_s": server_cpu,
                        }
                    )
                shutil.rmtree(dest, ignore_errors=True)
        loop = server.info["loop"]
    ours = median([s["mib_per_s"] for s in samples["ours"]])
    base = median([s["mib_per_s"] for s in samples["curl"]])
    pairs = [
        o["mib_per_s"] / c["mib_per_s"]
        for o, c in zip(samples["ours"], samples["curl"], strict=True)
    ]
    figure = median(pairs)
    gib = total / (1024 * MiB)
    ours_cpu = median([s["client_cpu_s"] for s in samples["ours"]]) / gib
    curl_cpu = median([s["client_cpu_s"] for s in samples["curl"]]) / gib
    details: dict[str, Any] = {
        "files": count,
        "file_mib": size / MiB,
        "repetitions": reps,
        "ratio_of_medians": ratio(ours, base),
        "paired_ratios": pairs,
        "samples": samples,
        "server_loop": loop,
        "curl_command": "curl --parallel --parallel-max N -s -S --fail -o FILE URL ...",
    }
    return [
        Result(name, ours, base, figure, target, check(figure >= TARGET), "MiB/s", details),
        Result(
            "download.client_cpu",
            ours_cpu,
            curl_cpu,
            ratio(ours_cpu, curl_cpu),
            "info (CPU s per GiB)",
            "INFO",
            "cpu-s/GiB",
            {"server_cpu_s_per_gib": [s["server_cpu_s"] / gib for s in samples["ours"]]},
        ),
    ]
