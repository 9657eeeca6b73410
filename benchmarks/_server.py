"""
The benchmarks' simulator process: ``python -m benchmarks._server [options]``.

Runs :class:`~babou_async.testing.FakeBabou` in its own process, so that the server's
CPU never competes with the client inside the measured event loop. It seeds projects,
optionally starts their exports (and waits until they complete) and hashes their videos,
then prints one JSON line on standard output::

    {"base_url": ..., "api_key": ..., "asset_base_url": ..., "loop": "uvloop",
     "projects": [{"id": "prj_...", "size": 67108864, "sha256": "..."}, ...]}

and serves until standard input closes (or SIGTERM/SIGINT). Commands on standard input,
one per line, each answered with one JSON line:

* ``stats``: ``{"requests": n, "by_route": {"GET /projects/{id}/export": n, ...}}``
  (needs ``--record-limit -1``, otherwise only the last requests are counted);
* ``clear``: forget the recorded requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from typing import Any

import aiohttp

from babou_async.testing import FakeBabou, serve_forever

_ID_RE = re.compile(r"/(prj|cht|ast)_[A-Za-z0-9]+")


def _route(method: str, path: str) -> str:
    return f"{method} {_ID_RE.sub('/{id}', path)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._server")
    add = parser.add_argument
    add("--seed", type=int, default=7)
    add("--projects", type=int, default=1, help="projects to seed")
    add("--video-size", type=int, default=256 * 1024, help="bytes per export")
    add("--sizes", default=None, help="comma-separated sizes, one project each (overrides)")
    add("--queued", type=float, default=0.0, help="seconds an export stays queued")
    add("--processing", type=float, default=0.0, help="seconds an export is processing")
    add("--durations", default=None, help="comma-separated processing seconds, one per project")
    add("--url-ttl", type=float, default=3600.0)
    add("--start-exports", action="store_true", help="start every export and wait for it")
    add("--sha", action="store_true", help="include each video's SHA-256 (with --start-exports)")
    add("--record-limit", type=int, default=1000, help="requests kept; -1 keeps all")
    add("--no-uvloop", action="store_true", help="serve on the default asyncio loop")
    return parser


async def _start_exports(fake: FakeBabou, ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for pid in ids:
            async with http.post(f"{fake.base_url}/projects/{pid}/export") as resp:
                resp.raise_for_status()
        for pid in ids:
            for _ in range(2000):  # bounded: exports here take seconds at most
                async with http.get(f"{fake.base_url}/projects/{pid}/export") as resp:
                    resp.raise_for_status()
                    if (await resp.json())["status"] == "completed":
                        break
                await asyncio.sleep(0.01)
            else:
                raise RuntimeError(f"export of {pid} did not complete")


def _stats(fake: FakeBabou) -> dict[str, Any]:
    routes = Counter(_route(r.method, r.path.removeprefix("/api/v1")) for r in fake.requests)
    return {"requests": sum(routes.values()), "by_route": dict(routes)}


async def _commands(fake: FakeBabou, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:  # the parent went away: stop serving
            stop.set()
            return
        command = line.decode().strip()
        if command == "stats":
            answer: dict[str, Any] = _stats(fake)
        elif command == "clear":
            fake.clear_requests()
            answer = {"ok": True}
        else:
            answer = {"error": f"unknown command {command!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


async def amain(args: argparse.Namespace, loop_name: str) -> None:
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    else:
        sizes = [args.video_size] * args.projects
    size_of: dict[str, int] = {}
    processing = [float(s) for s in args.durations.split(",") if s] if args.durations else []
    processing_of: dict[str, float] = {}
    fake = FakeBabou(
        seed=args.seed,
        export_queued_seconds=args.queued,
        export_processing_seconds=lambda pid: processing_of.get(pid, args.processing),
        video_size=lambda pid: size_of.get(pid, args.video_size),
        url_ttl=args.url_ttl,
        record_limit=None if args.record_limit < 0 else args.record_limit,
    )
    await fake.start()
    try:
        projects: list[dict[str, Any]] = []
        for index, size in enumerate(sizes):
            pid = fake.seed_project(chapters=1)
            size_of[pid] = size
            if index < len(processing):
                processing_of[pid] = processing[index]
            projects.append({"id": pid, "size": size})
        if args.start_exports:
            await _start_exports(fake, [p["id"] for p in projects])
            if args.sha:
                for project in projects:
                    project["sha256"] = await asyncio.to_thread(fake.video_sha256, project["id"])
        fake.clear_requests()
        announce = {
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "asset_base_url": fake.asset_base_url,
            "loop": loop_name,
            "projects": projects,
        }
        sys.stdout.write(json.dumps(announce) + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        commands = asyncio.create_task(_commands(fake, stop))
        try:
            await serve_forever(fake, stop=stop)
        finally:
            commands.cancel()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(amain(args, "uvloop"))
            return 0
    asyncio.run(amain(args, "asyncio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
