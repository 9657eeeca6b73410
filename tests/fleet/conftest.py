"""
A real Redis server for the fleet tests: one per session, on a unix socket, no TCP, no persistence.

Tests that need it skip with the reason when no ``redis-server`` binary is found (``.ci/run``
installs Debian's, so CI runs them).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from babou_async.contrib.saq import FleetQueue


def _start(directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "no redis-server on PATH (apt-get install -y redis-server); .ci/run installs it"
        )
    sock = directory / "redis.sock"
    proc = subprocess.Popen(  # noqa: S603
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():  # a fixture outside any event loop: a plain wait is fine here
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"redis-server did not start (exit code {proc.poll()})")
        time.sleep(0.01)
    return proc, sock


@pytest.fixture(scope="session")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The unix socket of a Redis server that lives for the whole test session."""
    proc, sock = _start(tmp_path_factory.mktemp("redis"))
    try:
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_url(redis_socket: Path) -> str:
    """A ``unix://`` URL of an emptied Redis database (flushed before each test)."""
    import redis

    client = redis.Redis(unix_socket_path=str(redis_socket))
    client.flushall()
    client.close()
    return f"unix://{redis_socket}"


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[FleetQueue]:
    """The fleet's queue on the test Redis, connected (to watch the jobs from the test)."""
    from babou_async.contrib import saq

    q = saq.open_queue(redis_url)
    await q.connect()
    try:
        yield q
    finally:
        await q.disconnect()
