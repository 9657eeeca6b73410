"""
A batch in a child process, for the crash tests: ``python durable_child.py SPEC``.

``SPEC`` is JSON: ``base_url``, ``api_key``, ``dest``, ``ids``, and optionally ``kill_on``
(an event kind: ``status``, ``download`` or ``done``) with ``kill_after`` (its count):
the process then kills itself with SIGKILL at that event, from inside the batch, so that
the crash lands exactly there. Without them the test process kills it at a time of its
choosing.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import anyio

from babou_async import BabouSession, ExportEvent, PollPolicy, RetryPolicy


async def main(spec: dict[str, object]) -> None:
    """Run the batch the spec describes; die where it says."""
    seen = 0
    kill_on = spec.get("kill_on")
    kill_after = int(spec.get("kill_after", 0))  # type: ignore[call-overload]

    def progress(event: ExportEvent) -> None:
        nonlocal seen
        if event.kind == kill_on:
            seen += 1
            if seen >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    async with BabouSession(
        str(spec["api_key"]),
        base_url=str(spec["base_url"]),
        poll=PollPolicy.fast(),
        retry=RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.1),
    ) as babou:
        await babou.export_many(
            list(spec["ids"]),  # type: ignore[call-overload]
            str(spec["dest"]),
            progress=progress,
            download_concurrency=2,
        )


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]))
