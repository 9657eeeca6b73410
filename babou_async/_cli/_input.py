"""Project IDs read from a file or standard input, on a daemon thread (``export --from-file``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

__all__ = ["read_ids"]

_SEPARATORS = re.compile(r"[\s,]+")


async def read_ids(path: str, problems: list[str]) -> AsyncIterator[str]:
    """
    Yield the project IDs of a file (or ``-`` for stdin), read by a daemon thread.

    A daemon thread rather than a worker thread: a read blocked on a terminal or a silent
    pipe must neither stall the event loop nor keep the process alive after Ctrl-C.
    One ID or more per line (separated by spaces or commas); blank lines and ``#``
    comments are skipped. A read error ends the IDs and is appended to ``problems``
    (raising here would surface inside ``export_many``'s task group).
    """
    loop = asyncio.get_running_loop()
    send, receive = anyio.create_memory_object_stream[str](256)
    problem: list[BaseException] = []

    def read() -> None:
        try:
            if path == "-":
                for line in sys.stdin:
                    asyncio.run_coroutine_threadsafe(send.send(line), loop).result()
            else:
                with Path(path).open(encoding="utf-8", errors="replace") as f:
                    for line in f:
                        asyncio.run_coroutine_threadsafe(send.send(line), loop).result()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            return  # the consumer went away (cancelled run, closed loop)
        except OSError as exc:
            problem.append(exc)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(send.close)

    threading.Thread(target=read, name="babou-read-ids", daemon=True).start()
    async with receive:
        async for line in receive:
            for token in _SEPARATORS.split(line.split("#", 1)[0]):
                if token:
                    yield token
    problems.extend(f"cannot read {path}: {exc}" for exc in problem)
