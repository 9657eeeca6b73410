"""
The fleet-wide request budget (babou_async.contrib.redis) against a real Redis server.

Several budgets (several clients, or several processes) share one API key's state; the
assertions count grants and 429s, with bounds loose enough for a busy two-core machine.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import redis.asyncio
from redis.driver_info import DriverInfo

from babou_async import (
    BabouError,
    BabouSession,
    ConfigurationError,
    RateLimit,
    RequestBudget,
    RequestPriority,
)
from babou_async.contrib._redis_script import budget_key, parse_reply
from babou_async.contrib.redis import BudgetUnavailableError, RedisBudget, RedisBudgetState
from babou_async.testing import FakeBabou

from ..support import FAST_POLL, fast_retry
from .budget_worker import API_KEY, hammer
from .conftest import _start as start_redis

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("budget_worker.py")


def plain_client(socket: Path) -> redis.asyncio.Redis:
    """A client of the test's own (telling redis-py its version: no blocking lookup)."""
    return redis.asyncio.Redis(
        unix_socket_path=str(socket), driver_info=DriverInfo(lib_version=redis.__version__)
    )


@pytest.fixture
async def budgets(redis_url: str) -> AsyncIterator[list[RedisBudget]]:
    """Three budgets on three clients of their own, for the same key; closed afterwards."""
    made: list[RedisBudget] = []
    yield made
    for budget in made:
        await budget.aclose()


def fleet(
    made: list[RedisBudget], url: str, rate_limit: RateLimit | None, count: int = 3
) -> list[RedisBudget]:
    """``count`` budgets of one key, each on its own client (as separate workers would be)."""
    new = [RedisBudget.from_url(url, api_key=API_KEY, rate_limit=rate_limit) for _ in range(count)]
    made.extend(new)
    return new


def most_in_a_second(times: list[float]) -> int:
    """The most grants within any window of one second."""
    ordered = sorted(times)
    return max(bisect.bisect_right(ordered, t + 1.0) - i for i, t in enumerate(ordered))


def forms(secret: str) -> list[bytes]:
    """The spellings of ``secret`` that must appear nowhere in Redis."""
    raw = secret.encode()
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        base64.b64encode(raw).rstrip(b"="),
        raw[7:],  # without the sk-bab- prefix
    ]


# -- the rate holds --------------------------------------------------------------------------


async def test_rate_holds_across_budgets_in_one_process(
    redis_url: str, budgets: list[RedisBudget]
) -> None:
    """Three budgets hammering one key get rate x time + burst grants, never more per second."""
    rate, burst, seconds = 40.0, 4, 2.0
    members = fleet(budgets, redis_url, RateLimit(requests_per_second=rate, burst=burst))
    results: list[list[float]] = []

    async def run(budget: RedisBudget) -> None:
        results.append(await hammer(budget, seconds))

    async with anyio.create_task_group() as group:
        for budget in members:
            group.start_soon(run, budget)
    times = [t for result in results for t in result]
    assert all(result for result in results)  # every member got its share of grants
    assert most_in_a_second(times) <= rate + burst
    span = max(times) - min(times)
    assert len(times) <= burst + rate * span + 1
    assert len(times) >= 0.9 * rate * span


@pytest.mark.slow
def test_rate_holds_across_processes(redis_url: str) -> None:
    """Three worker processes at 50 req/s in all: <= rate + burst in any second, ~50 req/s."""
    rate, burst, seconds = 50.0, 5, 3.0
    start_at = time.time() + 3.0  # after every worker has imported and connected
    command = [sys.executable, str(WORKER), redis_url, str(start_at), str(seconds)]
    procs = [
        subprocess.Popen(  # noqa: S603
            [*command, str(rate), str(burst)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [0, 0, 0] == [proc.returncode for proc in procs], [err for _, err in outputs]
    per_worker = [json.loads(out) for out, _ in outputs]
    times = [t for grants in per_worker for t in grants]
    assert all(len(grants) > 10 for grants in per_worker)
    assert most_in_a_second(times) <= rate + burst
    span = max(times) - min(times)
    measured = (len(times) - burst) / span
    assert 0.95 * rate <= measured <= 1.02 * rate


# -- the key -------------------------------------------------------------------------------


async def test_the_api_key_is_nowhere_in_redis(redis_url: str, redis_socket: Path) -> None:
    """No key name, value or command argument holds the API key in any spelling."""
    client = plain_client(redis_socket)
    seen: list[bytes] = []

    async def watch() -> None:
        async with client.monitor() as monitor:
            async for command in monitor.listen():
                seen.append(str(command["command"]).encode())  # noqa: PERF401 - until cancelled

    config = RateLimit(requests_per_second=100.0, burst=5)
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await anyio.sleep(0.2)  # the monitor is on
        async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
            for _ in range(3):
                await budget.acquire()
                await budget.on_response(200, None)
            await budget.on_response(429, 1.0)
            await budget.acquire(RequestPriority.POLL)
            await budget.state()
        await anyio.sleep(0.2)
        group.cancel_scope.cancel()
    stored: list[bytes] = []
    inspect = plain_client(redis_socket)
    async for name in inspect.scan_iter():
        stored += [name, await inspect.dump(name) or b"", await inspect.get(name) or b""]
        assert 0 < await inspect.ttl(name) <= 900
    await inspect.aclose()
    await client.aclose()
    assert len(stored) == 3  # one key per API key
    assert any(b"EVALSHA" in command.upper() for command in seen)
    for form in forms(API_KEY):
        assert not [text for text in stored + seen if form in text]


async def test_one_key_per_api_key_and_namespace(redis_url: str, redis_socket: Path) -> None:
    """Budgets of two keys, or two namespaces, keep apart; the repr shows only the hash."""
    config = RateLimit(requests_per_second=1.0, burst=1, adaptive=False)
    a = RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config)
    b = RedisBudget.from_url(redis_url, api_key=API_KEY + "x", rate_limit=config)
    c = RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config, namespace="other")
    for budget in (a, b, c):
        await budget.acquire()  # each has its own full bucket: none waits
        await budget.aclose()
    assert API_KEY not in repr(a)
    assert "babou:budget:v1:" in repr(a)
    client = plain_client(redis_socket)
    names = sorted([name async for name in client.scan_iter()])
    await client.aclose()
    assert 3 == len(names)
    assert [b"babou", b"babou", b"other"] == [name.split(b":")[0] for name in names]


# -- 429s ------------------------------------------------------------------------------------


async def test_a_burst_of_429s_seen_by_every_budget_cuts_once(
    redis_url: str, budgets: list[RedisBudget]
) -> None:
    """Fifteen 429s answering requests granted before the cut, over three budgets: one cut."""
    members = fleet(budgets, redis_url, RateLimit(requests_per_second=100.0, burst=20))
    answered = anyio.Event()
    granted = 0

    async def request(budget: RedisBudget) -> None:
        nonlocal granted
        await budget.acquire()
        granted += 1
        if granted == 15:
            answered.set()
        await answered.wait()  # the burst is out; now its answers come back
        await budget.on_response(429, None)

    async with anyio.create_task_group() as group:
        for budget in members:
            for _ in range(5):
                group.start_soon(request, budget)
    state = await members[0].state()
    assert 1 == state.cuts
    assert 15 == state.throttled
    assert 15 == state.sent
    assert 0.5 <= state.rate <= 70.0 + 1e-6  # backoff_factor 0.7 of at most 100


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
async def test_retry_after_pauses_every_budget(
    redis_url: str, budgets: list[RedisBudget], adaptive: bool
) -> None:
    """One worker's 429 with Retry-After: 1 s pauses the others too."""
    config = RateLimit(requests_per_second=100.0, burst=10, adaptive=adaptive)
    first, second = fleet(budgets, redis_url, config, 2)
    await first.acquire()
    await first.on_response(429, 1.0)
    state = await second.state()
    assert 0.5 < state.paused_for <= 1.0
    # The pause, plus (adaptive: after the cut emptied the bucket) a poll's token and its
    # reserve at the cut rate, times the jitter's 1.5 at most.
    assert 0.0 < second.suggested_poll_delay() <= 1.5 * (1.0 + (1 + 10 // 4) / state.rate)
    started = time.monotonic()
    await second.acquire()
    assert time.monotonic() - started >= 0.5


async def test_429s_without_retry_after_on_a_fixed_rate_change_nothing(redis_url: str) -> None:
    """A fixed rate does not adapt: a 429 with no Retry-After needs no round trip at all."""
    config = RateLimit(requests_per_second=100.0, burst=10, adaptive=False)
    async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
        await budget.acquire()
        await budget.on_response(429, None)
        await budget.on_response(503, 2.0)  # only a 429's Retry-After pauses
        state = await budget.state()
    assert (0, 0.0, 100.0) == (state.throttled, state.paused_for, state.rate)


async def drive(
    members: list[RedisBudget], answers: int, share_429: float, *, seed: int = 7
) -> None:
    """Send ``answers`` requests through ``members`` (2 tasks each), ``share_429`` of them 429."""
    draws = random.Random(seed)
    left = answers

    async def worker(budget: RedisBudget) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await budget.acquire()
            await budget.on_response(429 if draws.random() < share_429 else 200, None)

    async with anyio.create_task_group() as group:
        for budget in members:
            for _ in range(2):
                group.start_soon(worker, budget)


@pytest.mark.slow
async def test_random_429s_do_not_collapse_the_rate(
    redis_url: str, budgets: list[RedisBudget]
) -> None:
    """An overloaded server's 10 % of random 429s: taken for noise, the rate stays up."""
    rate = 200.0
    members = fleet(budgets, redis_url, RateLimit(requests_per_second=rate, burst=20), 2)
    await drive(members, 700, 0.1)
    state = await members[0].state()
    assert state.throttled > 30
    assert state.noise > 0.02  # recognised as background noise
    assert state.rate > 0.4 * rate  # a halving per 429 would have reached the floor


async def test_recovery_after_a_cut(redis_url: str, budgets: list[RedisBudget]) -> None:
    """After a cut, answers without 429 bring the shared rate back up along the curve."""
    (budget,) = fleet(budgets, redis_url, RateLimit(requests_per_second=100.0, burst=10), 1)
    await hammer(budget, 0.5, tasks=2)  # the fleet sends at its rate...
    await budget.acquire()
    await budget.on_response(429, None)  # ... when the 429 comes
    cut = await budget.state()
    assert 1 == cut.cuts
    assert 20.0 <= cut.rate <= 70.0 + 1e-6
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        await budget.acquire()
        await budget.on_response(200, None)
    await budget.on_response(200, None)
    recovered = await budget.state()
    assert recovered.rate > cut.rate * 1.05
    assert 1 == recovered.cuts


async def test_unknown_limit_slow_start_then_one_cut(
    redis_url: str, budgets: list[RedisBudget]
) -> None:
    """Without a known limit: slow start grows the rate; a run of 429s ends it, once."""
    (budget,) = fleet(budgets, redis_url, None, 1)
    assert "start" == (await budget.state()).mode
    await drive([budget], 20, 0.0)
    grown = await budget.state()
    assert "start" == grown.mode
    assert grown.rate > 16.0
    for _ in range(4):
        await budget.acquire()
    for _ in range(4):
        await budget.on_response(429, 0.2)
    after = await budget.state()
    assert ("steady", 1) == (after.mode, after.cuts)
    assert RateLimit().min_rate <= after.rate < grown.rate


async def test_slow_start_opens_when_no_limit_is_met(redis_url: str) -> None:
    """A key that never answers 429 ends unpaced (open), then one 429 starts pacing at once."""
    config = RateLimit(burst=50)
    async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
        await drive([budget], 400, 0.0)
        opened = await budget.state()
        assert ("open", float("inf")) == (opened.mode, opened.rate)
        assert 0.0 == budget.suggested_poll_delay()
        await budget.acquire()
        await budget.on_response(429, None)
        paced = await budget.state()
    assert ("steady", 1) == (paced.mode, paced.cuts)
    assert paced.rate < float("inf")


# -- priorities and poll delays ----------------------------------------------------------


async def test_progress_goes_before_polls_across_the_fleet(
    redis_url: str, budgets: list[RedisBudget]
) -> None:
    """One worker's polls wait while another's progress requests queue for the same key."""
    config = RateLimit(requests_per_second=20.0, burst=4)
    progress, polls = fleet(budgets, redis_url, config, 2)
    order: list[str] = []

    async def take(budget: RedisBudget, priority: RequestPriority) -> None:
        await budget.acquire(priority)
        order.append(priority.name)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(take, progress, RequestPriority.PROGRESS)
        await anyio.sleep(0.05)  # the bucket is empty, progress requests wait
        for _ in range(4):
            group.start_soon(take, polls, RequestPriority.POLL)
    assert ["PROGRESS"] * 8 + ["POLL"] * 4 == order


async def test_progress_goes_before_polls_in_one_process(redis_url: str) -> None:
    """Within a budget, waiting callers are released progress first."""
    config = RateLimit(requests_per_second=20.0, burst=2)
    order: list[str] = []
    async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
        for _ in range(2):
            await budget.acquire()  # the bucket is empty

        async def take(priority: RequestPriority) -> None:
            await budget.acquire(priority)
            order.append(priority.name)

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(take, RequestPriority.POLL)
            await anyio.sleep(0.01)
            for _ in range(3):
                group.start_soon(take, RequestPriority.PROGRESS)
    assert ["PROGRESS"] * 3 == order[1:4] or ["PROGRESS"] * 3 == order[:3]


async def test_suggested_poll_delay(redis_url: str) -> None:
    """0 before any call and while the bucket is full; > 0 once it is spent."""
    config = RateLimit(requests_per_second=10.0, burst=8)
    async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
        assert 0.0 == budget.suggested_poll_delay()
        await budget.acquire()
        assert 0.0 == budget.suggested_poll_delay()
        for _ in range(7):
            await budget.acquire()
        delays = {budget.suggested_poll_delay() for _ in range(10)}
    assert all(0.0 < delay < 1.0 for delay in delays)
    assert len(delays) > 1  # jittered


async def test_cancelled_waiters_leave_the_queue(redis_url: str) -> None:
    """Callers cancelled while waiting leave; the next ones still get their tokens."""
    config = RateLimit(requests_per_second=20.0, burst=1)
    async with RedisBudget.from_url(redis_url, api_key=API_KEY, rate_limit=config) as budget:
        await budget.acquire()
        with anyio.move_on_after(0.01):
            async with anyio.create_task_group() as group:
                for priority in (RequestPriority.POLL, RequestPriority.PROGRESS):
                    for _ in range(3):
                        group.start_soon(budget.acquire, priority)
        assert 0 == budget._waiting
        with anyio.fail_after(5):
            await budget.acquire()
            await budget.acquire(RequestPriority.POLL)


# -- set-up, closing, failures -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6390/3", {"host": "localhost", "port": 6390, "db": 3}),
        ("rediss://cache.example:6380/1", {"host": "cache.example", "port": 6380, "db": 1}),
        ("unix:///run/redis/redis.sock?db=2", {"path": "/run/redis/redis.sock", "db": 2}),
    ],
)
async def test_from_url_forms(url: str, expected: dict[str, object]) -> None:
    """redis://, rediss:// (TLS) and unix:// URLs make the matching client; nothing connects."""
    budget = RedisBudget.from_url(url, api_key=API_KEY)
    pool = budget._client.connection_pool
    assert expected == {name: pool.connection_kwargs.get(name) for name in expected}
    assert isinstance(budget, RequestBudget)
    kind = {"redis": "Connection", "rediss": "SSLConnection", "unix": "UnixDomainSocketConnection"}
    assert kind[url.partition(":")[0]] == pool.connection_class.__name__
    await budget.aclose()


@pytest.mark.parametrize("url", ["http://localhost:6379", "localhost:6379", "redis://host:port"])
def test_from_url_refuses_what_is_not_a_redis_url(url: str) -> None:
    """A wrong scheme or a bad port is a ConfigurationError, without the URL's password."""
    with pytest.raises(ConfigurationError) as info:
        RedisBudget.from_url(url.replace("//", "//user:hunter2@"), api_key=API_KEY)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in str(info.value.__cause__)


def test_the_pure_helpers() -> None:
    """The key name is a stable one-way hash; a reply that is not the script's is refused."""
    assert budget_key("babou", API_KEY) == budget_key("babou", API_KEY)
    assert budget_key("babou", API_KEY) != budget_key("babou2", API_KEY)
    assert 16 * 2 == len(budget_key("babou", API_KEY).rsplit(":", 1)[1])
    reply = "1 0 7 2.5 10 0 4 steady 1 2 3 0.125 1700000000.5 0"
    assert parse_reply(reply) == parse_reply(reply.encode())
    parsed = parse_reply(reply)
    assert (True, 7, 2.5, "steady", 0.125) == (
        parsed.granted,
        parsed.seq,
        parsed.tokens,
        parsed.mode,
        parsed.noise,
    )
    with pytest.raises(ValueError, match="unexpected reply"):
        parse_reply(b"OK")


def test_an_api_key_is_required() -> None:
    """A budget without a key would share nothing meaningful."""
    with pytest.raises(ConfigurationError):
        RedisBudget.from_url("redis://localhost", api_key="")


async def test_aclose_closes_only_an_owned_client(redis_url: str, redis_socket: Path) -> None:
    """from_url's client is closed on exit; a given client stays open for its owner."""
    given = plain_client(redis_socket)

    async def clients() -> int:
        listed = await given.client_list()
        return len(listed)

    async with RedisBudget(given, api_key=API_KEY) as budget:
        await budget.acquire()
    await budget.aclose()
    assert await given.client_list()  # still open
    alone = await clients()
    owned = RedisBudget.from_url(redis_url, api_key=API_KEY)
    await owned.acquire()
    assert alone + 1 == await clients()
    await owned.aclose()
    await owned.aclose()  # twice is fine
    assert alone == await clients()
    await given.aclose()


async def test_a_client_that_decodes_responses(redis_url: str, redis_socket: Path) -> None:
    """A given client with decode_responses=True (answers as str) works the same."""
    client = redis.asyncio.Redis(
        unix_socket_path=str(redis_socket),
        decode_responses=True,
        driver_info=DriverInfo(lib_version=redis.__version__),
    )
    budget = RedisBudget(client, api_key=API_KEY, rate_limit=RateLimit(requests_per_second=5.0))
    await budget.acquire()
    assert 1 == (await budget.state()).sent
    await client.aclose()


async def test_redis_down_is_a_clear_error(tmp_path: Path) -> None:
    """No server: acquire fails with BudgetUnavailableError, the client's error text-only."""
    url = f"unix://{tmp_path / 'absent.sock'}"
    async with RedisBudget.from_url(url, api_key=API_KEY) as budget:
        with pytest.raises(BudgetUnavailableError) as info:
            await budget.acquire()
        with pytest.raises(BudgetUnavailableError):
            await budget.on_response(429, None)
        await budget.on_response(200, None)  # counted here, nothing sent
    error = info.value
    assert isinstance(error, BabouError)
    assert "unavailable" in str(error)
    assert API_KEY not in str(error)
    assert error.__context__ is None
    cause = error.__cause__
    assert cause is not None
    assert "redis.exceptions" in str(cause)
    assert not isinstance(cause, redis.exceptions.RedisError)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Redis server of this test's own, which the test may stop: (process, URL)."""
    proc, sock = start_redis(tmp_path)
    yield proc, f"unix://{sock}"
    proc.kill()
    proc.wait()


async def test_redis_going_away_mid_run(own_redis: tuple[subprocess.Popen[bytes], str]) -> None:
    """Redis stops while a cut is judged: a success is kept quietly, the next acquire fails."""
    proc, url = own_redis
    config = RateLimit(requests_per_second=100.0, burst=10)
    async with RedisBudget.from_url(url, api_key=API_KEY, rate_limit=config) as budget:
        await hammer(budget, 0.2, tasks=1)
        await budget.acquire()
        await budget.on_response(429, None)
        assert 1 == (await budget.state()).cuts  # a cut: answers are now reported at once
        await budget.acquire()
        await budget.on_response(200, None)
        assert 0 == budget._successes
        await anyio.to_thread.run_sync(proc.kill)
        await anyio.to_thread.run_sync(proc.wait)
        await budget.on_response(200, None)  # not reported, not raised: kept for later
        assert 1 == budget._successes
        with pytest.raises(BudgetUnavailableError):
            await budget.acquire()


async def test_unlimited_never_calls_redis(tmp_path: Path) -> None:
    """RateLimit.unlimited(): no pacing and no round trip, so even a missing server is fine."""
    url = f"unix://{tmp_path / 'absent.sock'}"
    budget = RedisBudget.from_url(url, api_key=API_KEY, rate_limit=RateLimit.unlimited())
    async with budget:
        for _ in range(100):
            await budget.acquire(RequestPriority.POLL)
            await budget.on_response(429, 5.0)
    assert 0.0 == budget.suggested_poll_delay()


# -- end to end --------------------------------------------------------------------------


async def run_fleet_against(
    fake: FakeBabou, redis_url: str, rate_limit: RateLimit
) -> tuple[float, RedisBudgetState]:
    """Two sessions with fleet budgets fetch a project 60 times each: the share of 429s."""
    project = fake.seed_project()
    async with (
        RedisBudget.from_url(redis_url, api_key=fake.api_key, rate_limit=rate_limit) as a,
        RedisBudget.from_url(redis_url, api_key=fake.api_key, rate_limit=rate_limit) as b,
    ):
        sessions = [
            BabouSession(
                fake.api_key,
                base_url=fake.base_url,
                rate_limit=budget,
                retry=fast_retry(20),
                poll=FAST_POLL,
            )
            for budget in (a, b)
        ]
        async with sessions[0], sessions[1], anyio.create_task_group() as group:
            for session in sessions:
                for _ in range(60):
                    group.start_soon(session.get_project, project)
        state = await a.state()
    statuses = [r.status for r in fake.requests if r.path.endswith(project)]
    assert 120 == statuses.count(200)
    assert statuses.count(429) == state.throttled  # every 429 reached the shared state
    return statuses.count(429) / len(statuses), state


@pytest.mark.slow
async def test_two_sessions_share_a_known_limit_without_429s(redis_url: str) -> None:
    """Two sessions, a key limited to 25 req/s (bursts of 5): a shared budget a little below."""
    async with FakeBabou(seed=5, rate_limit=(25.0, 5)) as fake:
        share, state = await run_fleet_against(
            fake, redis_url, RateLimit(requests_per_second=20.0, burst=2)
        )
    assert share <= 0.01, state


@pytest.mark.slow
async def test_two_sessions_find_an_unknown_limit_together(redis_url: str) -> None:
    """Without a known limit the shared adaptive rate finds the server's: few 429s."""
    async with FakeBabou(seed=5, rate_limit=(25.0, 5)) as fake:
        share, state = await run_fleet_against(fake, redis_url, RateLimit())
    assert share <= 0.2, state
    assert state.cuts >= 1
    assert RateLimit().min_rate < state.rate <= 25.0


@pytest.mark.slow
async def test_a_start_burst_against_an_unknown_limit_does_not_collapse(redis_url: str) -> None:
    """
    48 requests at once from three budgets, a key limited to 20 req/s: settles near it.

    The regression of issue #10's fleet benchmark: the end of the slow start was cut from its
    own rate (8 times what the fleet sent), probations judged on three or four answers took
    the limit for noise and went back to the slow start, and the fleet fell to its floor.
    """
    limit, seconds = 20.0, 6.0
    async with FakeBabou(seed=5, rate_limit=(limit, 20)) as fake:
        project = fake.seed_project()
        members = [RedisBudget.from_url(redis_url, api_key=fake.api_key) for _ in range(3)]
        sessions = [
            BabouSession(
                fake.api_key,
                base_url=fake.base_url,
                rate_limit=budget,
                retry=fast_retry(20),
                poll=FAST_POLL,
            )
            for budget in members
        ]
        done = 0

        async def job(session: BabouSession) -> None:
            nonlocal done
            while True:
                await session.get_project(project)
                done += 1

        async with sessions[0], sessions[1], sessions[2], anyio.create_task_group() as group:
            for session in sessions:
                for _ in range(16):
                    group.start_soon(job, session)
            await anyio.sleep(seconds)
            group.cancel_scope.cancel()
        state = await members[0].state()
        for budget in members:
            await budget.aclose()
    statuses = [r.status for r in fake.requests if r.path.endswith(project)]
    # Measured: 3-5 % of 429s (up to 16 % on a loaded machine), 15-22 req/s. Before the fix,
    # 4 runs in 5: the floor (1.6 req/s), or 6.5 with the start's burst taken for 25 % noise.
    assert statuses.count(429) <= 0.25 * len(statuses), state
    assert state.rate >= 0.25 * limit, state
    assert state.noise == 0.0, state
    assert done >= 0.2 * limit * seconds, state
