"""
Fault knobs and scripted one-shot responses for the Babou simulator.

Nothing here does I/O: :class:`~babou_async.testing.Faults` is a bag of mutable settings that
:class:`~babou_async.testing.FakeBabou` reads on every request,
:class:`~babou_async.testing.Injection` is the record kept for each
:meth:`~babou_async.testing.FakeBabou.inject` call, and :class:`Draws` is the one seeded
stream every fault decision comes from.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeVar

import attrs

__all__ = ["Draws", "Faults", "Injection", "Origin", "RetryAfterForm"]

_T = TypeVar("_T")

Origin = Literal["api", "asset"]
"""Which of the simulator's two HTTP origins a request reached."""

RetryAfterForm = Literal["seconds", "http-date", "none"]
"""How a 429 response spells its ``Retry-After`` header (or leaves it out)."""


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    """Check that a probability lies in [0, 1]."""
    del instance
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    """Check that a duration is not negative."""
    del instance
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _error_status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    """Check that a status is a client or server error status."""
    del instance
    if not 400 <= value <= 599:
        raise ValueError(f"{attribute.name} must be an HTTP error status, got {value!r}")


def _server_statuses(
    instance: object, attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]
) -> None:
    """Check the statuses a random server error may take."""
    del instance
    if not value or any(not 500 <= status <= 599 for status in value):
        raise ValueError(f"{attribute.name} must be a non-empty tuple of 5xx statuses")


def _throttle(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    """Check a bytes-per-second throttle."""
    del instance
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


def _to_set(value: Iterable[str]) -> set[str]:
    """Accept any iterable of project ids."""
    return set(value)


@attrs.define(kw_only=True)
class Faults:
    """
    Mutable fault-injection settings of a :class:`~babou_async.testing.FakeBabou`.

    Every probability is drawn from the simulator's seeded random generator, so a
    given ``seed`` and the same sequence of requests always produce the same faults.
    Change fields at any time (``fake.faults.drop_rate = 0.5``) or replace the whole
    object (``fake.faults = Faults(...)``); the next request sees the new values.
    Values are validated on assignment.

    Order of the API-origin pipeline, per request: record, ``latency``, scripted
    :meth:`~babou_async.testing.FakeBabou.inject` responses, ``drop_api_rate``,
    authentication, the real token bucket (``rate_limit=`` of the fake),
    ``rate_limit_rate``, ``server_error_rate``, then the endpoint itself.

    Attributes:
        rate_limit_rate: Probability that an authenticated API request is answered
            429 ``RATE_LIMIT_EXCEEDED`` instead of being handled.
        retry_after: Seconds advertised by ``Retry-After`` on the random 429s.
            Fractions are written as decimals (``"0.25"``), which is not strict
            RFC 9110 but keeps tests fast; use whole numbers for strict output.
        retry_after_form: ``"seconds"`` (delta seconds), ``"http-date"`` (an IMF
            date, rounded up to the next whole second) or ``"none"`` (no header).
            Applies to every 429, including the token bucket's.
        server_error_rate: Probability that an authenticated API request fails with
            one of ``server_error_statuses`` and code ``INTERNAL_ERROR``.
        server_error_statuses: The statuses a random server error is drawn from.
        html_errors: When true, random 502 and 503 errors carry an HTML body (as a
            proxy or load balancer would send) instead of the JSON envelope.
        latency: Seconds slept before handling each API request.
        drop_api_rate: Probability that an API request's connection is closed with
            no response at all (the client sees a disconnect).
        export_fail_rate: Probability that a started export ends ``failed``.
            Decided when the export starts.
        fail_exports: Project ids whose next exports always fail.
            Checked when an export starts.
        prompt_fail_rate: Probability that a submitted prompt fails (its chapter
            then reports ``status: "error"``). Decided at submission.
        asset_fail_rate: Probability that an uploaded asset ends in state
            ``"error"`` instead of ``"ready"``. Decided at upload.
        upload_fail_rate: Probability that an upload is answered 500
            ``UPLOAD_FAILED`` after its body was read.
        drop_rate: Probability that a download from the asset origin is cut: the
            headers promise the full length, a random part of the body is sent, and
            the connection is closed.
        ignore_range: When true the asset origin ignores ``Range`` and always
            answers 200 with the whole file.
        expired_status: Status of the asset origin's answer to an expired or
            invalid download URL (403 like S3, or 404/410 like other CDNs).
        slow_bytes_per_second: When set, the asset origin throttles bodies to about
            this many bytes per second.
    """

    rate_limit_rate: float = attrs.field(default=0.0, validator=_rate)
    retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    retry_after_form: RetryAfterForm = attrs.field(
        default="seconds", validator=attrs.validators.in_(("seconds", "http-date", "none"))
    )
    server_error_rate: float = attrs.field(default=0.0, validator=_rate)
    server_error_statuses: tuple[int, ...] = attrs.field(
        default=(500, 502, 503), converter=tuple, validator=_server_statuses
    )
    html_errors: bool = False
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    drop_api_rate: float = attrs.field(default=0.0, validator=_rate)
    export_fail_rate: float = attrs.field(default=0.0, validator=_rate)
    fail_exports: set[str] = attrs.field(factory=set, converter=_to_set)
    prompt_fail_rate: float = attrs.field(default=0.0, validator=_rate)
    asset_fail_rate: float = attrs.field(default=0.0, validator=_rate)
    upload_fail_rate: float = attrs.field(default=0.0, validator=_rate)
    drop_rate: float = attrs.field(default=0.0, validator=_rate)
    ignore_range: bool = False
    expired_status: int = attrs.field(default=403, validator=_error_status)
    slow_bytes_per_second: float | None = attrs.field(default=None, validator=_throttle)


def _positive_times(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Check an injection's repeat count."""
    del instance
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1 or None, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class Injection:
    """
    A scripted response registered with :meth:`~babou_async.testing.FakeBabou.inject`.

    Keep the returned object to see how often it fired (``hits``) or to withdraw it
    early with :meth:`cancel`.

    Attributes:
        method: HTTP method to match, upper case, or ``"*"`` for any.
        path: What the request path is matched against.
            A plain string matches exactly; a string containing ``*``, ``?`` or
            ``[`` is a ``fnmatch`` glob; a compiled ``re.Pattern`` must
            match the whole path. On the API origin the path is taken relative to
            ``/api/v1`` (``"/projects"``); on the asset origin it is the full path
            (``"/exports/prj_x.mp4"``). The query string is never part of it.
        origin: ``"api"`` or ``"asset"``.
        status: Status of the scripted response.
        json: JSON body to send, or ``None``.
        body: Raw body to send, or ``None``.
        headers: Extra response headers.
        remaining: How many more requests it will answer; ``None`` means until
            cancelled.
        drop: When true, matching requests get their connection closed with no
            response instead.
        delay: Seconds to wait before answering (or dropping).
        hits: How many requests it has answered so far.
    """

    method: str
    path: str | re.Pattern[str]
    origin: Origin
    status: int
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    remaining: int | None = attrs.field(
        default=1, validator=_positive_times, on_setattr=attrs.setters.NO_OP
    )
    drop: bool = False
    delay: float = attrs.field(default=0.0, validator=_non_negative)
    hits: int = 0

    @property
    def active(self) -> bool:
        """Whether the injection will still answer a matching request."""
        return self.remaining is None or self.remaining > 0

    def cancel(self) -> None:
        """Withdraw the injection so that it answers no further requests."""
        self.remaining = 0

    def matches(self, origin: Origin, method: str, path: str) -> bool:
        """
        Tell whether a request is one this injection answers.

        Args:
            origin: The origin the request reached.
            method: The request method.
            path: The path as described for :attr:`path`.

        Returns:
            True when the injection is active and the request matches it.
        """
        if not self.active or origin != self.origin:
            return False
        if self.method not in ("*", method.upper()):
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(path) is not None
        if any(char in self.path for char in "*?["):
            return fnmatch.fnmatchcase(path, self.path)
        return path == self.path

    def consume(self) -> None:
        """Count one answered request."""
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1


@attrs.define
class Draws:
    """
    The simulator's seeded stream of fault decisions.

    The gate, the API endpoints and the asset origin draw from one shared stream, so a
    given seed and the same sequence of requests always give the same faults.

    Args:
        rng: The seeded generator.
    """

    rng: random.Random

    def chance(self, rate: float) -> bool:
        """Draw an event of probability ``rate`` (no draw at all when it is 0)."""
        return rate > 0 and self.rng.random() < rate

    def choice(self, options: Sequence[_T]) -> _T:
        """Draw one of ``options``."""
        return self.rng.choice(options)

    def fraction(self) -> float:
        """Draw a number in [0, 1)."""
        return self.rng.random()
