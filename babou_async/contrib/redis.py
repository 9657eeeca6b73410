"""
A request budget shared by a fleet of workers through Redis.

Install the extra (``pip install 'babou_async[redis]'``) and pass a :class:`RedisBudget` as a
session's ``rate_limit``; every process that uses the same API key and Redis then spends one
budget. Nothing in the core of babou_async imports this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import random as _random_module
import time
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

try:
    from redis.driver_info import DriverInfo
except ImportError:  # pragma: no cover - redis < 7 reads its version once, at import
    _DRIVER: dict[str, Any] = {}
else:
    # redis 7 would look its version up in the package metadata (a blocking stat) for every
    # new connection, in the event loop: tell it once, here.
    _DRIVER = {"driver_info": DriverInfo(lib_version=redis.__version__)}

from babou_async._config import RateLimit
from babou_async._exceptions import BabouError, ConfigurationError
from babou_async._ratelimit import RequestPriority
from babou_async._transport import sanitized, strip_query

from ._redis_script import SCRIPT, Reply, arguments, budget_key, config_argument, parse_reply

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BudgetUnavailableError", "RedisBudget", "RedisBudgetState"]

_SCHEMES = ("redis", "rediss", "unix")
# A client made by from_url retries a failed command 3 times within about a second (a Redis
# restart or a fail-over), then the budget raises; redis-py's default waits up to 14 s.
_RETRY_BASE, _RETRY_CAP, _RETRIES = 0.05, 0.5, 3
_SOCKET_TIMEOUT = 5.0
#: The grant of the request the current task sent last: (the budget's token, its number).
_GRANT: contextvars.ContextVar[tuple[object, int]] = contextvars.ContextVar("babou_redis_grant")


class BudgetUnavailableError(BabouError):
    """
    The fleet's request budget cannot be reached: Redis is down, unreachable or refusing.

    No request is sent without the budget's permission, so the call that needed it fails
    with this error (a job queue retries the job later). The Redis client's error is chained
    as ``__cause__`` in the form of a text-only copy (type and message, without URL
    credentials).

    .. versionadded:: 0.2
    """


@attrs.frozen(kw_only=True)
class RedisBudgetState:
    """
    A snapshot of a fleet budget's shared state, as Redis holds it.

    Attributes:
        mode: ``"start"`` (slow start), ``"steady"`` (paced and adaptive), ``"fixed"``
            (a known rate) or ``"open"`` (not paced: no limit met yet).
        rate: The fleet's rate in requests per second (``inf`` while open).
        tokens: Requests that may go at once now.
        paused_for: Seconds left of a ``Retry-After`` pause every worker honours.
        cuts: Congestion events so far (each cut the rate once).
        throttled: 429s reported so far.
        answered: Answers reported so far.
        sent: Requests granted so far.
        noise: The share of 429s taken for background noise (not about our rate).

    .. versionadded:: 0.2
    """

    mode: str
    rate: float
    tokens: float
    paused_for: float
    cuts: int
    throttled: int
    answered: int
    sent: int
    noise: float


class _Waiter:
    """A caller queued for a token in this process; woken when it reaches the head."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()

    async def woken(self) -> None:
        await self.event.wait()
        self.event = anyio.Event()


class RedisBudget:
    """
    A :class:`~babou_async.RequestBudget` shared by every worker of a fleet, in Redis.

    Babou limits requests per API key (``shared/babou-api.md`` section 3), so workers on
    several machines that use one key share one limit. A budget per process cannot hold it:
    the processes' rates drift apart and a dead worker's share is wasted. This budget keeps
    the state in Redis instead, and a session uses it unchanged::

        budget = RedisBudget.from_url("redis://localhost:6379/0", api_key=key)
        async with budget, BabouSession(key, rate_limit=budget) as babou:
            ...

    **Design.** One Redis key per API key holds a token bucket and the adaptive law of
    :class:`~babou_async.AdaptiveBudget` (MessagePack-encoded, written only by the script);
    one Lua script, loaded once and then called by ``EVALSHA``, takes a token, records
    answers and adapts the rate, atomically, on the Redis server's clock (``TIME``), so the
    workers' clocks do not matter. A request costs one round trip: successful answers are
    counted in the process and reported with its next call; a 429 is reported at once. When
    no token is free the script answers how long to wait, and :meth:`acquire` sleeps that long
    (an async sleep) and asks again.

    * With ``rate_limit.requests_per_second`` the fleet holds that rate, with bursts of up to
      ``rate_limit.burst`` (never more than rate + burst requests in any second), and, if
      ``adaptive``, still backs off below it on 429s.
    * Without it, the fleet finds the key's limit: a slow start, then one cut per congestion
      event, whoever saw the 429s (the answers to requests granted before the cut, by any
      worker, are ignored), a ``Retry-After`` pause that every worker honours, a cubic
      recovery and never less than ``rate_limit.min_rate``. 429s that persist as the rate
      falls are taken for an overloaded server's noise and the cut is undone, so that random
      429s cannot drive the fleet to the floor.
    * Progress before polls: a poll takes a token only while the bucket keeps a reserve (a
      quarter of it) and no progress request of the fleet waits; within a process, waiting
      callers are served progress first, in order, one of them talking to Redis at a time.

    **The key.** The Redis key is ``{namespace}:budget:v1:`` and the first 128 bits of the
    SHA-256 of the namespace and the API key: one-way, so neither Redis nor anyone who reads
    it learns the key. The API key itself is never stored, sent to Redis (not even as a
    script argument) nor kept by this object (its ``repr`` shows the hash). The key expires
    15 minutes after its last use (a minute after the end of a longer ``Retry-After`` pause),
    so nothing lingers; a fleet that comes back later starts afresh.

    **A Redis outage fails, it does not block.** Sending without the budget could break the
    fleet's limit, and waiting silently could hang every worker on a wrong URL; so when Redis
    cannot be reached (after the client's own retries: a client made by :meth:`from_url`
    retries three times within about a second), :meth:`acquire` raises
    :class:`BudgetUnavailableError` and the request is not sent. A job queue, itself on
    Redis, retries the job once Redis is back.

    **Sizing.** Give every worker the same :class:`~babou_async.RateLimit`. With a known
    limit, set ``requests_per_second`` a little below it (the whole fleet's, not a worker's)
    and ``burst`` a little below what the server tolerates at once (the server's bucket
    starts when the first request arrives, a little after ours); with an unknown limit
    leave both unset. Redis is not the bottleneck: a grant costs one round trip (a few
    hundred microseconds, of which Redis spends a few tens), so one Redis serves thousands of
    requests per second; the session does not close the budget, its owner does.

    Args:
        client: An asyncio Redis client; left open by :meth:`aclose` (its owner closes it).
        api_key: The API key whose limit is shared; only its hash is used.
        rate_limit: The budget's configuration; default :class:`~babou_async.RateLimit()`
            (adaptive, limit unknown). ``RateLimit.unlimited()`` never waits nor calls Redis.
        namespace: Prefix of the Redis key, to separate applications sharing a server.

    Raises:
        ConfigurationError: ``api_key`` is empty.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        api_key: str,
        rate_limit: RateLimit | None = None,
        namespace: str = "babou",
    ) -> None:
        if not api_key:
            raise ConfigurationError("RedisBudget needs the API key whose limit it shares")
        self._client = client
        self._owns_client = False
        self._config = rate_limit or RateLimit()
        self._config_arg = config_argument(self._config)
        self._namespace = namespace
        self._key = budget_key(namespace, api_key)
        self._script = client.register_script(SCRIPT)
        self._passive = self._config.requests_per_second is None and not self._config.adaptive
        self._token = object()  # tells this budget's grants from another's in _GRANT
        self._successes = 0  # answers not yet reported
        self._queues: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._last: Reply | None = None
        self._last_at = 0.0
        self._random = _random_module.random

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        api_key: str,
        rate_limit: RateLimit | None = None,
        namespace: str = "babou",
    ) -> RedisBudget:
        """
        Make a budget on a Redis client of its own, closed by :meth:`aclose`.

        Args:
            url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` (TLS) or
                ``unix:///path/redis.sock[?db=N]``. Nothing is connected yet.
            api_key: The API key whose limit is shared; only its hash is used.
            rate_limit: The budget's configuration (see :class:`RedisBudget`).
            namespace: Prefix of the Redis key.

        Raises:
            ConfigurationError: The URL is not a Redis URL.
        """
        if url.partition("://")[0].lower() not in _SCHEMES:
            raise ConfigurationError(
                f"not a Redis URL (redis://, rediss:// or unix://): {strip_query(url)!r}"
            )
        retry = Retry(ExponentialWithJitterBackoff(base=_RETRY_BASE, cap=_RETRY_CAP), _RETRIES)
        error = None
        try:
            client = redis.asyncio.Redis.from_url(
                url,
                retry=retry,
                socket_timeout=_SOCKET_TIMEOUT,
                socket_connect_timeout=_SOCKET_TIMEOUT,
                **_DRIVER,
            )
        except ValueError as exc:
            error = ConfigurationError(f"bad Redis URL {strip_query(url)!r}")
            error.__cause__ = sanitized(exc)
        if error is not None:
            raise error
        budget = cls(client, api_key=api_key, rate_limit=rate_limit, namespace=namespace)
        budget._owns_client = True
        return budget

    def __repr__(self) -> str:
        return f"RedisBudget(key={self._key!r}, rate_limit={self._config!r})"

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it; leave a given one open."""
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the RequestBudget protocol ------------------------------------------------------

    async def acquire(self, priority: RequestPriority = RequestPriority.PROGRESS) -> None:
        """
        Wait until the fleet's budget lets one request go, and count it as sent.

        Sleeps (never blocking the event loop) for the delay the script answers, then asks
        again. Cancelling it is safe: at worst the token it had just been granted is lost
        to the fleet, which only makes it more careful.

        Args:
            priority: :attr:`~babou_async.RequestPriority.PROGRESS` requests go before polls.

        Raises:
            BudgetUnavailableError: Redis cannot be reached; the request must not be sent.
        """
        if self._passive:
            return
        if not self._waiting:
            wait = await self._take(priority)
            if wait is None:
                return
        else:
            wait = 0.0
        await self._queue(priority, wait)

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """
        Record the answer to a request that :meth:`acquire` let through.

        A 429 is reported to Redis at once (it may cut the fleet's rate, and its
        ``Retry-After`` pauses every worker); other answers are counted here and reported
        with the next call, so they cost no round trip, except while a cut is being judged
        on them.

        Args:
            status: The HTTP status; ``0`` when no answer came.
            retry_after: The server's ``Retry-After`` in seconds, or ``None``.

        Raises:
            BudgetUnavailableError: Redis cannot be reached to report a 429.
        """
        if self._passive:
            return
        if status != 429:
            self._successes += 1
            if status and self._last is not None and self._last.probing:
                await self._report()
            return
        if not self._config.adaptive and retry_after is None:
            return  # a fixed rate does not adapt, and there is no pause to share
        grant = _GRANT.get(None)
        seq = grant[1] if grant is not None and grant[0] is self._token else None
        await self._call("r", throttled=True, retry_after=retry_after, request_seq=seq)

    async def _report(self) -> None:
        """Report the answers counted so far now: a cut is being judged on them."""
        # On failure the answers are kept for the next call, which raises if Redis is away.
        with contextlib.suppress(BudgetUnavailableError):
            await self._call("r")

    def suggested_poll_delay(self) -> float:
        """
        Seconds a poller should add to its next delay, 0 when the budget is not tight.

        Estimated from the shared state as last seen (no round trip): the time until the
        bucket holds a poll's token and its reserve for this process's waiting callers, plus
        any ``Retry-After`` pause; times a uniform draw in ``[0.5, 1.5)``.
        """
        last = self._last
        if last is None:
            return 0.0
        elapsed = time.monotonic() - self._last_at
        backlog = max(0.0, last.pause - elapsed)
        if math.isfinite(last.rate):
            tokens = min(last.capacity, last.tokens + elapsed * last.rate)
            need = 1.0 + math.floor(last.capacity / 4.0) + self._waiting
            backlog += max(0.0, need - tokens) / last.rate
        return backlog * (0.5 + self._random()) if backlog > 0.0 else 0.0

    async def state(self) -> RedisBudgetState:
        """
        Read the fleet's shared state (for statistics, tests and operators).

        Raises:
            BudgetUnavailableError: Redis cannot be reached.
        """
        reply = await self._call("s")
        return RedisBudgetState(
            mode=reply.mode,
            rate=reply.rate,
            tokens=reply.tokens,
            paused_for=reply.pause,
            cuts=reply.cuts,
            throttled=reply.throttled,
            answered=reply.answered,
            sent=reply.seq,
            noise=reply.noise,
        )

    # -- waiting ------------------------------------------------------------------------

    @property
    def _waiting(self) -> int:
        return len(self._queues[0]) + len(self._queues[1])

    def _head(self) -> _Waiter | None:
        for queue in self._queues:
            if queue:
                return queue[0]
        return None

    async def _queue(self, priority: RequestPriority, wait: float) -> None:
        """Wait in line (progress first); the head sleeps ``wait`` and asks Redis again."""
        waiter = _Waiter()
        queue = self._queues[priority]
        queue.append(waiter)
        try:
            while True:
                if self._head() is not waiter:
                    await waiter.woken()
                    wait = 0.0  # the one before got its token: maybe there are more
                    continue
                if wait > 0.0:
                    await anyio.sleep(wait)
                    if self._head() is not waiter:  # a progress request came first
                        continue
                next_wait = await self._take(priority)
                if next_wait is None:
                    return
                wait = next_wait
        finally:
            queue.remove(waiter)
            head = self._head()
            if head is not None:
                head.event.set()

    async def _take(self, priority: RequestPriority) -> float | None:
        """Ask the script for a token: ``None`` if granted, else the seconds to wait."""
        reply = await self._call("a", priority=priority)
        if reply.granted:
            _GRANT.set((self._token, reply.seq))
            return None
        return reply.wait

    async def _call(
        self,
        op: str,
        *,
        priority: RequestPriority = RequestPriority.PROGRESS,
        throttled: bool = False,
        retry_after: float | None = None,
        request_seq: int | None = None,
    ) -> Reply:
        """Run the script once, reporting the answers counted since the last call."""
        successes = 0
        if op != "s":  # a read of the state records nothing
            successes, self._successes = self._successes, 0
        args = arguments(
            op,
            self._config_arg,
            priority=priority,
            successes=successes,
            throttled=throttled,
            retry_after=retry_after,
            request_seq=request_seq,
        )
        error = None
        try:
            raw = await self._script(keys=[self._key], args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            self._successes += successes
            error = BudgetUnavailableError(
                f"the fleet's request budget in Redis is unavailable ({type(exc).__name__})"
            )
            error.__cause__ = sanitized(exc)
        if error is not None:
            raise error  # outside the handler: the client's exception is not even the context
        reply = parse_reply(raw)
        self._last, self._last_at = reply, time.monotonic()
        return reply
