"""
API calls beyond the connection pool wait in the session, not half-built inside aiohttp.

aiohttp builds a whole request (about 8 KiB of headers, URL, timers and coroutines) before it
waits for a pooled connection; 10,000 calls at once held 10,000 of those (issue #9: 10.9 KiB
per watch). The transport hands the pool's connections out as slots, in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from aiohttp import web

from babou_async import BabouSession, RateLimit, _transport

from ..support import serve

pytestmark = pytest.mark.anyio

PROJECT = {"id": "prj_slots", "name": "Slots", "created_at": "2025-12-02T10:00:00Z"}


class Gate:
    """A server whose answers wait for :attr:`open`; counts the requests it holds."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inside = 0
        self.most = 0

    async def handle(self, request: web.Request) -> web.Response:
        del request
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await self.open.wait()
        finally:
            self.inside -= 1
        return web.json_response(PROJECT)


@pytest.fixture
async def gate() -> AsyncIterator[tuple[Gate, str]]:
    held = Gate()
    async with serve([("GET", "/api/v1/projects/{pid}", held.handle)]) as origin:
        try:
            yield held, f"{origin}/api/v1"
        finally:
            held.open.set()


async def _until(condition: object, what: str) -> None:
    with anyio.fail_after(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)
    assert condition(), what  # type: ignore[operator]


async def test_calls_beyond_the_pool_wait_in_the_session(gate: tuple[Gate, str]) -> None:
    """With 2 connections, 10 calls: 2 reach the server, 8 wait as futures in the session."""
    held, base_url = gate
    async with BabouSession(
        "sk-bab-test", base_url=base_url, max_connections=2, rate_limit=RateLimit.unlimited()
    ) as babou:
        calls = [asyncio.ensure_future(babou.get_project("prj_slots")) for _ in range(10)]
        await _until(lambda: held.inside == 2, "two requests at the server")
        slots = babou._rt.transport._slots
        assert slots is not None
        assert slots.waiting == 8
        connector = babou._rt.transport._http().connector
        assert connector is not None
        # Nothing queued inside aiohttp: no request object was built for the 8.
        assert sum(len(w) for w in connector._waiters.values()) == 0
        held.open.set()
        projects = await asyncio.gather(*calls)
        assert [p.id for p in projects] == ["prj_slots"] * 10
        assert held.most == 2
        assert slots.waiting == 0
        assert slots.free == 2


async def test_cancelled_waiting_calls_lose_no_slot(gate: tuple[Gate, str]) -> None:
    """Calls cancelled while they wait leave the queue; the pool keeps both its slots."""
    held, base_url = gate
    async with BabouSession(
        "sk-bab-test", base_url=base_url, max_connections=2, rate_limit=RateLimit.unlimited()
    ) as babou:
        calls = [asyncio.ensure_future(babou.get_project("prj_slots")) for _ in range(6)]
        await _until(lambda: held.inside == 2, "two requests at the server")
        for call in calls[2:5]:
            call.cancel()
        held.open.set()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(d).__name__ for d in done] == [
            "Project",
            "Project",
            "CancelledError",
            "CancelledError",
            "CancelledError",
            "Project",
        ]
        slots = babou._rt.transport._slots
        assert slots is not None
        assert (slots.free, slots.waiting) == (2, 0)
        again = await asyncio.gather(*(babou.get_project("prj_slots") for _ in range(4)))
        assert len(again) == 4


async def test_a_slot_handed_to_a_cancelled_caller_goes_to_the_next() -> None:
    """Handed over, then cancelled before it ran: the slot passes on, in arrival order."""
    slots = _transport._Slots(1)
    assert slots.take() is None  # the only slot
    first, second, third = slots.take(), slots.take(), slots.take()
    assert first is not None
    assert second is not None
    assert third is not None
    assert slots.waiting == 3
    second.cancel()  # cancelled while waiting: skipped
    slots.give_back()
    assert first.done()
    assert not first.cancelled()
    assert not third.done()
    slots.abandon(first)  # cancelled after it was handed the slot: the slot moves on
    assert third.done()
    assert third.result() is None
    slots.abandon(second)  # cancelled while waiting: nothing to give back
    slots.give_back()  # third's call ends
    assert (slots.free, slots.waiting) == (1, 0)


async def test_an_injected_session_is_gated_by_its_own_pool(gate: tuple[Gate, str]) -> None:
    """The pool size comes from the injected session's connector; no limit means no gate."""
    _, base_url = gate
    for limit, expected in ((3, 3), (0, None)):
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit)) as http,
            BabouSession("sk-bab-test", base_url=base_url, http_session=http) as babou,
        ):
            babou._rt.transport._http()
            slots = babou._rt.transport._slots
            assert (None if slots is None else slots.free) == expected
