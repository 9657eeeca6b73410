"""Constants shared by the test layers, defined once (conftest.py's fixtures use them too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from babou_async import PollPolicy, RetryPolicy

#: Polls every 50 ms, up to 0.5 s: for simulators that finish jobs in tenths of a second.
FAST_POLL = PollPolicy.fast()


def fast_retry(
    attempts: int = 4, *, base_delay: float = 0.001, max_delay: float = 0.01
) -> RetryPolicy:
    """A retry policy with millisecond backoff; ``attempts`` is what tests count against."""
    return RetryPolicy(attempts=attempts, base_delay=base_delay, max_delay=max_delay)


#: The default fast retry policy of the suite.
FAST_RETRY = fast_retry()


#: An aiohttp request handler, as :func:`serve` takes them.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: list[tuple[str, str, Handler]]) -> AsyncIterator[str]:
    """Serve ``(method, path, handler)`` routes on 127.0.0.1; yield ``http://host:port``."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
