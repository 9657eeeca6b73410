"""The download-resume rules (the pure ResumeMachine): no sockets, no event loop."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from babou_async import RetryPolicy
from babou_async._resume import Action, LowSpeed, ResumeMachine, Step

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
POLICY = RetryPolicy(attempts=3, base_delay=1.0, max_delay=8.0, jitter=False)


def machine(**kwargs: object) -> ResumeMachine:
    """A fresh machine for prj_x with the test policy."""
    return ResumeMachine(project_id="prj_x", policy=POLICY, **kwargs)  # type: ignore[arg-type]


def respond(m: ResumeMachine, status: int, **headers: str) -> Step:
    """Feed a response with headers given as keyword arguments (``_`` for ``-``)."""
    lowered = {name.replace("_", "-").lower(): value for name, value in headers.items()}
    return m.on_response(status, lowered, now=NOW, rand=0.5)


# -- request headers ------------------------------------------------------------------


def test_first_request_asks_for_identity_and_no_range() -> None:
    """Offsets must be the file's own: no content coding, and no Range at offset 0."""
    assert {"Accept-Encoding": "identity"} == machine().request_headers()


def test_resume_sends_range_and_if_range_on_the_strong_etag() -> None:
    """After bytes arrived, the next request resumes at the offset, guarded by the ETag."""
    m = machine()
    assert Action.READ is respond(m, 200, content_length="10", etag='"v1"').action
    m.take(b"12345")
    assert {
        "Accept-Encoding": "identity",
        "Range": "bytes=5-",
        "If-Range": '"v1"',
    } == m.request_headers()


def test_last_modified_is_the_validator_without_an_etag() -> None:
    """A weak or missing ETag falls back to Last-Modified for If-Range."""
    m = machine()
    respond(m, 200, content_length="10", etag='W/"weak"', last_modified="Tue, 01 Dec 2026")
    m.take(b"abc")
    assert "Tue, 01 Dec 2026" == m.request_headers()["If-Range"]


def test_no_validator_means_a_plain_range() -> None:
    """Without any validator, Range goes alone."""
    m = machine()
    respond(m, 200, content_length="10")
    m.take(b"abc")
    assert "If-Range" not in m.request_headers()


# -- accepting bodies -----------------------------------------------------------------


def test_partial_content_must_start_where_we_asked() -> None:
    """A 206 starting elsewhere, or without Content-Range, fails naming the header."""
    m = machine(offset=10)
    step = respond(m, 206, content_range="bytes 5-9/100")
    assert (Action.FAIL, True) == (step.action, "Content-Range" in step.reason)
    assert Action.FAIL is respond(machine(offset=10), 206).action


def test_partial_content_with_unknown_total_keeps_reading() -> None:
    """``bytes 10-19/*`` is accepted; the total stays unknown."""
    m = machine(offset=10)
    assert Action.READ is respond(m, 206, content_range="bytes 10-19/*").action
    assert m.total is None
    assert (10, b"xy") == m.take(b"xy")


def test_server_ignoring_range_with_same_content_skips_what_we_have() -> None:
    """A 200 while resuming, same ETag: the bytes we hold are dropped from the body."""
    m = machine()
    respond(m, 200, content_length="10", etag='"a"')
    m.take(b"1234")
    assert Action.READ is respond(m, 200, content_length="10", etag='"a"').action
    assert m.take(b"12") is None
    assert (4, b"56") == m.take(b"3456")
    assert 6 == m.offset


def test_new_etag_starts_over_at_zero() -> None:
    """A 200 with another strong ETag is new content: position goes back to 0."""
    m = machine()
    respond(m, 200, content_length="10", etag='"a"')
    m.take(b"1234")
    respond(m, 200, content_length="12", etag='"b"')
    assert (0, b"new") == m.take(b"new")
    assert 12 == m.total


def test_changed_last_modified_starts_over() -> None:
    """Without an ETag, a new Last-Modified on a 200 also means new content."""
    m = machine()
    respond(m, 200, content_length="10", last_modified="one")
    m.take(b"1234")
    respond(m, 200, content_length="10", last_modified="two")
    assert (0, b"x") == m.take(b"x")


def test_content_coding_is_refused() -> None:
    """A gzip body would be saved as a corrupt video: fail with the coding named."""
    step = respond(machine(), 200, content_encoding="gzip")
    assert Action.FAIL is step.action
    assert "gzip" in step.reason


def test_bytes_reset_the_failure_counters() -> None:
    """Progress resets the per-stall budget (failures and refreshes), not the trickle count."""
    m = machine(failures=2, refreshes=2, slow=1)
    respond(m, 200, content_length="10")
    m.take(b"a")
    assert (0, 0, 1) == (m.failures, m.refreshes, m.slow)


# -- ends of bodies -------------------------------------------------------------------


def test_body_complete_is_done() -> None:
    """All announced bytes in: done; an unannounced size ends with the body."""
    m = machine()
    respond(m, 200, content_length="3")
    m.take(b"abc")
    assert Action.DONE is m.on_body_end("host/v", rand=0.5).action
    m2 = machine()
    respond(m2, 200)
    m2.take(b"abc")
    assert Action.DONE is m2.on_body_end("host/v", rand=0.5).action


def test_short_body_is_resumed_after_backoff() -> None:
    """A body cut short is a failure to retry, naming where it ended."""
    m = machine()
    respond(m, 200, content_length="10")
    m.take(b"abc")
    step = m.on_body_end("host/v", rand=0.5)
    assert (Action.RETRY, 1.0) == (step.action, step.delay)
    assert "ended at 3 of 10 bytes" in step.reason


def test_long_body_is_an_integrity_failure() -> None:
    """More bytes than announced: fail as an integrity error."""
    m = machine()
    respond(m, 200, content_length="2")
    m.take(b"abc")
    step = m.on_body_end("host/v", rand=0.5)
    assert (Action.FAIL, True) == (step.action, step.integrity)


# -- statuses -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_expired_url_is_refreshed_first_at_once_then_backing_off(status: int) -> None:
    """An expired signed URL: refresh now, then with backoff, then give up."""
    m = machine()
    delays = [respond(m, status).delay for _ in range(3)]
    assert [0, 1.0, 2.0] == delays
    step = respond(m, status)
    assert Action.FAIL is step.action
    assert "even after 3 refreshes" in step.reason


def test_416_with_our_offset_as_size_means_done() -> None:
    """``bytes */N`` with N == offset: a chunked body cut after its last byte, complete."""
    assert Action.DONE is respond(machine(offset=10), 416, content_range="bytes */10").action


def test_other_416_starts_over() -> None:
    """A 416 past a changed file drops offset and validator, and retries."""
    m = machine(offset=10, etag='"a"')
    step = respond(m, 416, content_range="bytes */5")
    assert (Action.RETRY, 0, None) == (step.action, m.offset, m.etag)
    assert step.cause is not None


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_statuses_retry_honouring_retry_after(status: int) -> None:
    """429 and 5xx retry after Retry-After when given, else the backoff delay."""
    assert 7.0 == respond(machine(), status, retry_after="7").delay
    assert 1.0 == respond(machine(), status).delay


def test_retry_after_beyond_the_policy_fails() -> None:
    """A Retry-After longer than max_retry_after gives up with the wait named."""
    step = respond(machine(), 503, retry_after="100000")
    assert Action.FAIL is step.action
    assert "server asked to wait 100000s" in step.reason


def test_retry_after_as_http_date_uses_the_given_time() -> None:
    """The HTTP-date form is measured against the time passed in, not a clock."""
    step = respond(machine(), 503, retry_after="Thu, 01 Jan 2026 00:00:05 GMT")
    assert 5.0 == step.delay


@pytest.mark.parametrize("status", [301, 402, 405, 418])
def test_unexpected_status_fails_at_once(status: int) -> None:
    """Anything but the statuses above is not retried."""
    step = respond(machine(), status)
    assert Action.FAIL is step.action
    assert f"HTTP {status}" in step.reason


def test_failures_give_up_after_the_policy_attempts() -> None:
    """Connection failures in a row are bounded by attempts, with growing delays."""
    m = machine()
    steps = [m.on_failure("reset", rand=0.5) for _ in range(3)]
    assert [Action.RETRY, Action.RETRY, Action.FAIL] == [s.action for s in steps]
    assert [1.0, 2.0] == [s.delay for s in steps[:2]]
    assert "giving up after 3 attempts: reset" in steps[2].reason
    assert steps[2].cause is None  # a connection failure chains its own exception


def test_trickling_connections_are_counted_apart_from_progress() -> None:
    """Drops for slowness count even when bytes arrived in between."""
    m = machine()
    for _ in range(2):
        m.on_failure("slow", rand=0.5, slow=True)
        respond(m, 206, content_range=f"bytes {m.offset}-99/100")
        m.take(b"x")
    assert Action.FAIL is m.on_failure("slow", rand=0.5, slow=True).action


@given(
    size=st.integers(min_value=1, max_value=5000),
    cuts=st.lists(st.integers(min_value=1, max_value=700), max_size=30),
)
def test_resuming_after_any_cuts_delivers_each_byte_once_in_order(
    size: int, cuts: list[int]
) -> None:
    """Served by a Range-honouring host cut at arbitrary points, the bytes arrive exactly."""
    content = bytes(i % 251 for i in range(size))
    m = ResumeMachine(project_id="prj_x", policy=RetryPolicy(attempts=10_000))
    received = bytearray()
    cut_iter = iter(cuts)
    while True:
        start = m.offset
        if start == 0:
            step = respond(m, 200, content_length=str(size), etag='"e"')
        else:
            step = respond(m, 206, content_range=f"bytes {start}-{size - 1}/{size}", etag='"e"')
        assert Action.READ is step.action
        piece = content[start : start + next(cut_iter, size)]
        kept = m.take(piece)
        if kept is not None:
            assert len(received) == kept[0]
            received += kept[1]
        end = m.on_body_end("host/v", rand=0.5)
        if end.action is Action.DONE:
            break
        assert Action.RETRY is end.action
    assert content == bytes(received)


def test_low_speed_window_detects_a_trickle() -> None:
    """Below min_rate over a whole window is too slow; fast enough or no window is not."""
    speed = LowSpeed(window=10.0, min_rate=100.0, start=0.0)
    assert not speed.too_slow(5.0, 10)
    assert speed.too_slow(10.0, 10)
    assert not speed.too_slow(20.0, 5000)
    assert not LowSpeed(window=None, min_rate=100.0, start=0.0).too_slow(1e9, 0)
