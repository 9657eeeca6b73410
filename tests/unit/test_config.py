"""Tests of the option bundles: validation, durations, immutability."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs
import pytest

from babou_async import PollPolicy, RateLimit, RetryPolicy, Timeouts
from babou_async._config import to_seconds

BUNDLES = [RetryPolicy, PollPolicy, RateLimit, Timeouts]


def as_dict(obj: Any) -> dict[str, Any]:
    """The fields of an attrs instance."""
    return attrs.asdict(obj)


def test_defaults() -> None:
    """The documented defaults."""
    assert (
        {
            "attempts": 5,
            "base_delay": 0.5,
            "max_delay": 30.0,
            "max_retry_after": 120.0,
            "jitter": True,
        },
        {
            "initial_delay": 2.0,
            "multiplier": 1.5,
            "max_delay": 30.0,
            "jitter": 0.1,
            "use_estimate": True,
            "window_fraction": 0.055,
            "overdue_multiplier": 1.02,
        },
        {
            "requests_per_second": None,
            "burst": 20,
            "adaptive": True,
            "min_rate": 0.5,
            "backoff_factor": 0.7,
            "slow_start": True,
        },
        {"connect": 10.0, "read": 30.0, "total": 60.0},
    ) == tuple(as_dict(cls()) for cls in BUNDLES)


def test_named_constructors() -> None:
    """disabled(), fast() and unlimited() give the documented variants."""
    assert (
        RetryPolicy(attempts=1),
        PollPolicy(initial_delay=0.05, multiplier=1.5, max_delay=0.5),
        RateLimit(requests_per_second=None, adaptive=False),
    ) == (RetryPolicy.disabled(), PollPolicy.fast(), RateLimit.unlimited())


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (RetryPolicy, "base_delay"),
        (RetryPolicy, "max_delay"),
        (RetryPolicy, "max_retry_after"),
        (PollPolicy, "initial_delay"),
        (PollPolicy, "max_delay"),
        (Timeouts, "connect"),
        (Timeouts, "read"),
        (Timeouts, "total"),
    ],
)
@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (dt.timedelta(seconds=3), 3.0),
        (dt.timedelta(minutes=2, milliseconds=500), 120.5),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_durations_accept_seconds_or_timedelta(
    cls: Any, field: str, given: float | dt.timedelta, seconds: float
) -> None:
    """Every duration takes a number of seconds or a timedelta, and stores float seconds."""
    value = getattr(cls(**{field: given}), field)

    assert (seconds, float) == (value, type(value))


@pytest.mark.parametrize(
    ("cls", "field", "given"),
    [
        (RetryPolicy, "base_delay", "5"),
        (RetryPolicy, "max_retry_after", None),
        (PollPolicy, "max_delay", True),
        (PollPolicy, "initial_delay", None),
        (Timeouts, "read", [1]),
        (Timeouts, "connect", "10"),
    ],
)
def test_durations_refuse_other_types(cls: Any, field: str, given: object) -> None:
    """Strings, booleans and other objects are not durations; None only for timeouts."""
    with pytest.raises(TypeError, match=r"expected seconds \(a number\) or a timedelta"):
        cls(**{field: given})


@pytest.mark.parametrize("field", ["connect", "read", "total"])
def test_timeouts_none_disables(field: str) -> None:
    """A timeout of None means no limit."""
    assert getattr(Timeouts(**{field: None}), field) is None


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (RetryPolicy, {"attempts": 0}, "'attempts' must be >= 1"),
        (RetryPolicy, {"base_delay": -0.1}, "base_delay must be a finite number >= 0"),
        (RetryPolicy, {"max_delay": math.inf}, "max_delay must be a finite number >= 0"),
        (RetryPolicy, {"max_retry_after": math.nan}, "max_retry_after must be a finite number"),
        (RetryPolicy, {"max_delay": dt.timedelta(seconds=-1)}, "max_delay must be a finite"),
        (PollPolicy, {"initial_delay": 0}, "initial_delay must be a finite number > 0"),
        (PollPolicy, {"max_delay": -1}, "max_delay must be a finite number > 0"),
        (PollPolicy, {"max_delay": math.inf}, "max_delay must be a finite number > 0"),
        (PollPolicy, {"multiplier": 0.99}, "'multiplier' must be >= 1.0"),
        (PollPolicy, {"jitter": -0.01}, "'jitter' must be >= 0.0"),
        (PollPolicy, {"jitter": 1.0}, "'jitter' must be < 1.0"),
        (RetryPolicy, {"attempts": True}, "attempts must be an int"),
        (RetryPolicy, {"attempts": 2.5}, "attempts must be an int"),
        (RateLimit, {"requests_per_second": 0}, "requests_per_second must be a finite number > 0"),
        (RateLimit, {"requests_per_second": -5.0}, "requests_per_second must be a finite"),
        (RateLimit, {"requests_per_second": math.inf}, "requests_per_second must be a finite"),
        (RateLimit, {"burst": 0}, "'burst' must be >= 1"),
        (RateLimit, {"min_rate": 0.0}, "min_rate must be a finite number > 0"),
        (RateLimit, {"backoff_factor": 0.0}, "'backoff_factor' must be > 0.0"),
        (RateLimit, {"backoff_factor": 1.0}, "'backoff_factor' must be < 1.0"),
        (Timeouts, {"connect": 0}, "connect must be a finite number > 0 or None"),
        (Timeouts, {"read": -1}, "read must be a finite number > 0 or None"),
        (Timeouts, {"total": math.inf}, "total must be a finite number > 0 or None"),
        (Timeouts, {"total": dt.timedelta(0)}, "total must be a finite number > 0 or None"),
    ],
)
def test_invalid_values_are_refused(cls: Any, kwargs: dict[str, Any], message: str) -> None:
    """Out-of-range values are refused when the bundle is built, naming the field."""
    with pytest.raises((TypeError, ValueError), match=message.replace("(", r"\(")):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RetryPolicy, {"attempts": 1, "base_delay": 0, "max_delay": 0, "max_retry_after": 0}),
        (PollPolicy, {"multiplier": 1.0, "jitter": 0.0}),
        (PollPolicy, {"jitter": 0.999}),
        (RateLimit, {"requests_per_second": 0.001, "burst": 1, "min_rate": 1e-9}),
        (RateLimit, {"backoff_factor": 0.999}),
        (Timeouts, {"connect": 1e-6, "read": None, "total": dt.timedelta(hours=1)}),
    ],
)
def test_boundary_values_are_accepted(cls: Any, kwargs: dict[str, Any]) -> None:
    """Values at the edge of each range are accepted as given."""
    instance = cls(**kwargs)

    assert {k: to_seconds(v) if isinstance(v, dt.timedelta) else v for k, v in kwargs.items()} == {
        k: getattr(instance, k) for k in kwargs
    }


@pytest.mark.parametrize("cls", BUNDLES)
def test_bundles_are_frozen(cls: Any) -> None:
    """Bundles cannot be mutated."""
    instance = cls()
    name = attrs.fields(cls)[0].name

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, name, getattr(instance, name))


@pytest.mark.parametrize("cls", BUNDLES)
def test_bundles_are_keyword_only(cls: Any) -> None:
    """No option can be passed positionally."""
    with pytest.raises(TypeError, match="positional argument"):
        cls(1)


@pytest.mark.parametrize("cls", BUNDLES)
def test_bundles_are_values(cls: Any) -> None:
    """Equal options compare and hash equal, so they can be shared and cached."""
    assert (cls(), hash(cls())) == (cls(), hash(cls()))


def test_evolve_derives_a_variant() -> None:
    """attrs.evolve changes one option and keeps the rest."""
    base = RetryPolicy(base_delay=1.0)

    patient = attrs.evolve(base, attempts=10)

    assert (
        {**as_dict(base), "attempts": 10},
        5,
    ) == (as_dict(patient), base.attempts)


def test_evolve_converts_and_validates() -> None:
    """attrs.evolve() runs the converters (timedelta) and the validators, like the constructor."""
    assert 90.0 == attrs.evolve(Timeouts(), total=dt.timedelta(seconds=90)).total
    with pytest.raises(ValueError, match="jitter"):
        attrs.evolve(PollPolicy(), jitter=2.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.5, 2.5), (dt.timedelta(milliseconds=1), 0.001), (-1, -1.0)],
)
def test_to_seconds(value: float | dt.timedelta, expected: float) -> None:
    """to_seconds accepts ints, floats and timedeltas (range checks are the validators')."""
    assert expected == to_seconds(value)
