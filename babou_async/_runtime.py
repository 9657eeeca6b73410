"""
The runtime: the one seam between the public session and the outside world.

A :class:`Runtime` owns everything a request needs: the transport (the only aiohttp user),
the request budget, the :class:`~babou_async._clock.Clock` (time, sleep, randomness), the
base URL, the headers with the API key, and the key's redaction. :meth:`Runtime.send` is
the request loop: budget, send, classify, retry with logging, all decisions taken by the
sans-I/O core (:mod:`babou_async._protocol`).

Exports, polling, uploads, downloads and batches are functions of a runtime, in modules of
their own; none of them imports the session, and none reads another's private state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from . import _protocol as proto
from ._clock import Clock
from ._config import PollPolicy, RateLimit, RetryPolicy, Timeouts, to_seconds
from ._exceptions import APIError, ConfigurationError
from ._hooks import Hooks, Observer, Probe
from ._protocol import FailureKind, RawResponse, RequestSpec
from ._ratelimit import AdaptiveBudget, RequestBudget, RequestPriority, _LocalBudget
from ._redaction import Redactor
from ._transport import SendFailure, StreamResponse, Transport

__all__ = ["Estimates", "Runtime", "Secret", "budget_of", "timeouts_of"]

log = logging.getLogger("babou_async.http")

_E = TypeVar("_E", bound=BaseException)

#: Content types that need no redaction (the common answers), checked by a set lookup.
_PLAIN_CONTENT_TYPES = frozenset(
    {None, "application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)

#: What an upload body may be: bytes, or a factory of a fresh async iterator per attempt.
Body = bytes | Callable[[], AsyncIterable[bytes]] | None


def budget_of(rate_limit: RateLimit | RequestBudget, clock: Clock) -> RequestBudget:
    """The session's budget: the default one built from a RateLimit on ``clock``, or the given."""
    if isinstance(rate_limit, RateLimit):
        return AdaptiveBudget(
            rate_limit, monotonic=clock.monotonic, sleep=clock.sleep, random=clock.random
        )
    return rate_limit


def timeouts_of(timeout: float | dt.timedelta | Timeouts) -> Timeouts:
    """:class:`Timeouts` from seconds, a timedelta, or themselves."""
    if isinstance(timeout, Timeouts):
        return timeout
    try:
        return Timeouts(total=to_seconds(timeout))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad timeout: {exc}") from None


class Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the ``Authorization`` header only."""
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


class Estimates:
    """
    What the server said about how long each project's export takes, and since when.

    ``start_export`` (and any status response carrying ``estimated_time``) records it; a
    later watch of the same project uses it, so that ``start_export(pid)`` then
    ``wait_for_export(pid)`` polls as well as passing ``estimate=`` by hand. Bounded: the
    oldest entries go first beyond ``maxsize``.
    """

    __slots__ = ("_entries", "maxsize")

    def __init__(self, maxsize: int = 10_000) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[str, tuple[tuple[float, float], float]] = OrderedDict()

    def remember(self, project_id: str, estimate: tuple[float, float], since: float) -> None:
        """Record that ``project_id``'s export, started at ``since``, takes ``estimate``."""
        self._entries[project_id] = (estimate, since)
        self._entries.move_to_end(project_id)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def recall(self, project_id: str) -> tuple[tuple[float, float], float] | None:
        """``(estimate, since)`` for ``project_id``, if known."""
        return self._entries.get(project_id)

    def forget(self, project_id: str) -> None:
        """Drop what is known of ``project_id`` (its export ended)."""
        self._entries.pop(project_id, None)

    def __len__(self) -> int:
        return len(self._entries)


class Runtime:
    """
    Transport, budget, clock, base URL, headers and redaction of one session.

    Attributes:
        base_url: The API root, without a trailing slash.
        timeouts: Network limits.
        retry: The default retry policy.
        poll: The default poll policy.
        clock: Time, sleep and randomness.
        transport: The HTTP transport.
        budget: The session-wide request budget.
        redact: Hides the key (in every spelling) in a text.
        estimates: The server's estimates of running exports, for later watches.
        observer: The hooks, the request log and the tracer (:mod:`babou_async._hooks`).
    """

    __slots__ = (
        "_api_headers",
        "_json_headers",
        "_key",
        "_local",
        "base_url",
        "budget",
        "clock",
        "estimates",
        "observer",
        "poll",
        "redact",
        "retry",
        "timeouts",
        "transport",
    )

    def __init__(
        self,
        *,
        key: Secret,
        base_url: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        poll: PollPolicy,
        budget: RequestBudget,
        transport: Transport,
        clock: Clock,
        hooks: Hooks | None = None,
    ) -> None:
        self._key = key
        self.base_url = base_url
        self.timeouts = timeouts
        self.retry = retry
        self.poll = poll
        self.budget = budget
        # The in-process budgets answer without awaiting: called directly on every request
        # (two coroutines fewer), unless a subclass changed how they acquire or record.
        self._local: _LocalBudget | None = None
        if isinstance(budget, _LocalBudget) and (
            type(budget).acquire is _LocalBudget.acquire
            and type(budget).on_response is _LocalBudget.on_response
        ):
            self._local = budget
        self.transport = transport
        self.clock = clock
        self.estimates = Estimates()
        self.redact = Redactor([key.reveal()])
        self.observer = Observer(hooks, clock=clock, redact=self.redact, base_url=base_url)
        self._api_headers = {
            "Authorization": f"Bearer {key.reveal()}",
            "Accept": "application/json",
            "User-Agent": transport.user_agent,
        }
        self._json_headers = {**self._api_headers, "Content-Type": "application/json"}

    def api_headers(self, content_type: str | None = None) -> dict[str, str]:
        """The headers of an API request (a fresh copy), with ``content_type`` if given."""
        headers = dict(self._api_headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        project_id: str | None = None,
        attempt: int = 1,
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """Open a streaming GET on the download host (never with the API key), observed."""
        opened = self.transport.stream(url, headers=headers)
        return self.observer.download(opened, url, attempt, project_id)

    async def aclose(self) -> None:
        """Close the transport (idempotent)."""
        await self.transport.aclose()

    def retry_policy(self, retry: RetryPolicy | None) -> RetryPolicy:
        """A call's ``retry=`` (checked: a falsy wrong value must not pass), or the session's."""
        if retry is None:
            return self.retry
        proto.check_retry(retry)
        return retry

    async def send(  # noqa: C901 - the one request loop: retries, budget, observers, adoption
        self,
        spec: RequestSpec,
        *,
        retry: RetryPolicy | None = None,
        data: Body = None,
        headers: dict[str, str] | None = None,
        conflict_after_ambiguous_ok: bool = False,
        after_ambiguous: Callable[[], Awaitable[RawResponse | None]] | None = None,
        upload_size: int | None = None,
        decode: bool = True,
        priority: RequestPriority = RequestPriority.PROGRESS,
    ) -> tuple[RawResponse, Any]:
        """
        Send ``spec`` with retries; return the 2xx response and its JSON body (or ``None``).

        With ``conflict_after_ambiguous_ok``, a 409 that follows an ambiguous failure (one
        the server may have acted on) is returned rather than raised: it means our own
        earlier attempt took effect. ``after_ambiguous``, when given, is asked before each
        attempt that follows an ambiguous failure: a response it returns is the answer (it
        found that the earlier attempt took effect), ``None`` means send again. ``priority``
        tells the budget whether the request moves work forward or is a speculative poll.

        Raises:
            BabouError: The request failed for good (the subclass says why).
        """
        policy = self.retry_policy(retry)
        url = self.base_url + spec.path
        if headers is None:
            headers = self._json_headers if spec.json is not None else self._api_headers
        if spec.json is not None:
            data = json.dumps(spec.json, ensure_ascii=False).encode()
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            if ambiguous and after_ambiguous is not None:
                found = await after_ambiguous()
                if found is not None:
                    return found, None
            body = data() if callable(data) else data
            if self._local is None or not self._local.try_acquire():
                await self.budget.acquire(priority)
            probe = self.observer.request(spec.method, spec.path, attempt)  # None: unwatched
            try:
                if probe is not None:
                    await probe.sent()
                raw = await self.transport.send(
                    spec.method,
                    url,
                    headers=headers,
                    params=spec.params,
                    data=body,
                    upload_size=upload_size,
                )
            except SendFailure as failure:
                delay, reason = await self._failed(spec, policy, attempt, failure, probe)
                ambiguous = ambiguous or failure.kind is FailureKind.AMBIGUOUS
            except BaseException:
                await self._cancelled(probe)
                raise
            else:
                local = self._local
                raw = (
                    self._received_now(local, raw)
                    if local is not None and probe is None
                    else await self._received(raw, probe)
                )
                if 200 <= raw.status < 300:
                    return raw, proto.parse_json(raw) if decode else None
                if raw.status == 409 and ambiguous and conflict_after_ambiguous_ok:
                    return raw, None
                delay, reason = self._after_error(spec, policy, attempt, raw)
                ambiguous = ambiguous or raw.status >= 500
            await self.observer.api_retry(spec.method, spec.path, attempt, delay, reason)
            await self.clock.sleep(delay)

    async def _failed(
        self,
        spec: RequestSpec,
        policy: RetryPolicy,
        attempt: int,
        failure: SendFailure,
        probe: Probe | None,
    ) -> tuple[float, str]:
        """No response arrived: feed the budget, tell the probe, decide (raises if final)."""
        await self.budget.on_response(0, None)
        if probe is not None:
            await probe.failed(failure.error)
        return self._after_failure(spec, policy, attempt, failure)

    async def _cancelled(self, probe: Probe | None) -> None:
        """Cancelled (or failed on a bug) before an answer."""
        await self.budget.on_response(0, None)  # no answer
        if probe is not None:
            probe.abandoned()

    async def _received(self, raw: RawResponse, probe: Probe | None) -> RawResponse:
        """Feed the budget; scrub the key from a body that echoes it; tell the probe."""
        if self._local is not None:
            raw = self._received_now(self._local, raw)
        else:
            await self.budget.on_response(raw.status, self._retry_after(raw))
            raw = self._scrubbed(raw)
        if probe is not None:
            await probe.received(raw.status, raw.headers)
        return raw

    def _received_now(self, local: _LocalBudget, raw: RawResponse) -> RawResponse:
        """:meth:`_received` without a coroutine: an in-process budget, and no probe."""
        local.record_response(raw.status, self._retry_after(raw))
        return self._scrubbed(raw)

    def _retry_after(self, raw: RawResponse) -> float | None:
        if raw.status in (429, 503) and "retry-after" in raw.headers:
            return proto.parse_retry_after(raw.headers.get("retry-after"), now=self.clock.wall())
        return None

    def _scrubbed(self, raw: RawResponse) -> RawResponse:
        """``raw`` without the key, in any spelling, in its body or content type."""
        # A proxy or debug page echoing our headers: the key, in any spelling (a JSON escape
        # would otherwise become the key itself once decoded), must not travel on into a
        # DecodeError's excerpt, a log, a model or an ExportFailedError.
        body = self.redact.redact_bytes(raw.body)
        if body is not raw.body:
            raw = raw._replace(body=body)
        # The content type travels into a DecodeError; an unusual one may echo the key.
        content_type = raw.headers.get("content-type")
        if content_type not in _PLAIN_CONTENT_TYPES and self.redact.contains(content_type or ""):
            headers = {name.lower(): value for name, value in raw.headers.items()}
            headers["content-type"] = self.redact(content_type or "")
            raw = raw._replace(headers=headers)
        return raw

    def _after_failure(
        self, spec: RequestSpec, policy: RetryPolicy, attempt: int, failure: SendFailure
    ) -> tuple[float, str]:
        """The delay before retrying after no response arrived, and why; raises if not."""
        decision = proto.decide_retry(
            policy=policy,
            mode=spec.retry_mode,
            attempt=attempt,
            rand=self.clock.random(),
            failure=failure.kind,
        )
        if not decision.retry:
            raise failure.error from failure.__cause__
        self._log_retry(spec, attempt, decision.delay, decision.reason)
        return decision.delay, decision.reason

    def _after_error(
        self, spec: RequestSpec, policy: RetryPolicy, attempt: int, raw: RawResponse
    ) -> tuple[float, str]:
        """The delay before retrying after an error response, and why; raises if not."""
        error = self._error(spec, raw)
        decision = proto.decide_retry(
            policy=policy,
            mode=spec.retry_mode,
            attempt=attempt,
            rand=self.clock.random(),
            error=error,
        )
        if not decision.retry:
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                error.message += f" (server asked to wait {error.retry_after:g}s)"
                error.args = (error.message,)
            raise error
        self._log_retry(spec, attempt, decision.delay, decision.reason)
        return decision.delay, decision.reason

    def _error(self, spec: RequestSpec, raw: RawResponse) -> APIError:
        error = proto.error_from_response(
            raw,
            method=spec.method,
            path=spec.path,
            now=self.clock.wall(),
            secret=self._key.reveal(),
            redactor=self.redact,
        )
        if 300 <= raw.status < 400:
            error.message = (
                f"unexpected redirect (HTTP {raw.status}); not followed so that the API "
                "key only ever goes to the API's origin"
            )
            error.args = (error.message,)
        return error

    def scrub(self, error: _E) -> _E:
        """
        Hide the key, in every spelling, in ``error`` and its chain; return ``error``.

        For errors whose text quotes what a host sent (a ``Content-Range``, an ``ETag``, a
        URL): their ``args`` and text attributes are redacted in place, and so are those of
        each chained cause and context.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            current.args = tuple(
                self.redact(arg) if isinstance(arg, str) else arg for arg in current.args
            )
            for name, value in list(vars(current).items()):
                if isinstance(value, str):
                    setattr(current, name, self.redact(value))
            current = current.__cause__ or current.__context__
        return error

    def _log_retry(self, spec: RequestSpec, attempt: int, delay: float, reason: str) -> None:
        log.info(
            "retrying %s %s (attempt %d failed: %s) in %.2fs",
            spec.method,
            spec.path,
            attempt,
            reason,
            delay,
            extra={
                "babou_method": spec.method,
                "babou_path": spec.path,
                "babou_attempt": attempt,
                "babou_delay": delay,
                "babou_reason": reason,
            },
        )
