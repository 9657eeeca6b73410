"""
The download-resume protocol as a pure state machine (part of the sans-I/O core).

:class:`ResumeMachine` is told what happened (a response's status and headers, body bytes,
the end of a body, a failed connection) and answers with a :class:`Step`: read the body,
reconnect with ``Range`` after a delay, fetch a fresh URL, done, or fail with a reason. It
keeps the offset, the size, the validator (a strong ``ETag``, else ``Last-Modified``) and
the attempt counters. It reads no clock and draws no randomness: the time and the draw are
arguments. The I/O driver (:mod:`babou_async._download`) is a thin loop around it.

Rules, in the order they apply to a response:

* 400/401/403/404/410 from the download host mean the signed URL expired: fetch a fresh
  one (the first refresh at once, later ones backing off), at most ``attempts`` times in a
  row without progress.
* 416 with ``Content-Range: bytes */N`` and ``N`` equal to our offset: we already have
  everything (a chunked body cut after its last byte). Any other 416: the file changed
  under our offset, start over from 0.
* 200/206 are read, refusing a content coding (offsets must be the file's own). A 206 must
  start where we asked. A 200 while resuming is the whole file again: the bytes we have are
  skipped if the validator did not change, else the download starts over at 0.
* 429 and 5xx are retried after the backoff delay, or ``Retry-After`` (refused beyond
  ``max_retry_after``); anything else fails at once.
* A body that ends short is resumed; one longer than announced is an integrity failure.

Every failure counts against ``attempts``; bytes received reset the count (the budget is per
stall, not per file), except for connections dropped for trickling, counted separately.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Final

import attrs

from . import _protocol as proto
from ._config import RetryPolicy

__all__ = ["Action", "LowSpeed", "ResumeMachine", "Step"]

#: What a signed URL's host answers once the URL expired: S3 403, others 404/410, Google
#: Cloud Storage 400 (ExpiredToken).
EXPIRED_STATUSES: Final = frozenset({400, 401, 403, 404, 410})
_UNSATISFIED_RE: Final = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
_CONTENT_RANGE_RE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class Action(enum.Enum):
    """What the driver does next."""

    READ = "read"  #: read this response's body, feeding it to :meth:`ResumeMachine.take`
    RETRY = "retry"  #: reconnect (with ``Range``) after ``delay``
    REFRESH = "refresh"  #: fetch a fresh download URL after ``delay``, then reconnect
    DONE = "done"  #: every byte is in
    FAIL = "fail"  #: give up: ``reason`` says why


@attrs.frozen
class Step:
    """
    One decision of the machine.

    Attributes:
        action: What to do.
        delay: Seconds to wait first (``RETRY`` and ``REFRESH``).
        reason: For ``FAIL``, the message; for ``RETRY``, what went wrong.
        cause: For a failure decided from a response, the text of the error it chains.
        integrity: ``FAIL`` because more bytes came than announced.
    """

    action: Action
    delay: float = 0.0
    reason: str = ""
    cause: str | None = None
    integrity: bool = False


_READ: Final = Step(Action.READ)
_DONE: Final = Step(Action.DONE)


def _strong_etag(headers: Mapping[str, str]) -> str | None:
    etag = headers.get("etag")
    return etag if etag and not etag.startswith("W/") else None


@attrs.define
class ResumeMachine:
    """
    The state of one download and the rules deciding its next step.

    Attributes:
        project_id: For messages.
        policy: ``attempts`` bounds failures (and URL refreshes) in a row;
            ``max_retry_after`` bounds a server-requested wait.
        offset: Bytes received so far, in order: where the next byte goes.
        total: The file's size, once a response announced it.
        etag: The strong ``ETag`` of the content we hold.
        last_modified: Its ``Last-Modified``, the validator used when there is no ETag.
        skip: Bytes still to drop from the current body (a 200 while resuming).
        probe: Ask for one byte only (``Range: bytes=0-0``): to learn the size.
    """

    project_id: str
    policy: RetryPolicy
    offset: int = 0
    total: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    skip: int = 0
    probe: bool = False
    failures: int = 0
    refreshes: int = 0
    slow: int = 0

    @property
    def validator(self) -> str | None:
        """What ``If-Range`` carries: the strong ETag, else the Last-Modified date."""
        return self.etag or self.last_modified

    def request_headers(self) -> dict[str, str]:
        """Headers of the next request: identity coding, and ``Range``/``If-Range`` to resume."""
        # Byte offsets must be the file's own: ask for no content coding.
        headers = {"Accept-Encoding": "identity"}
        if self.probe:
            headers["Range"] = "bytes=0-0"
        elif self.offset > 0:
            headers["Range"] = f"bytes={self.offset}-"
            if self.validator is not None:
                headers["If-Range"] = self.validator
        return headers

    def _fail_text(self, message: str) -> str:
        return f"download of {self.project_id} failed: {message}"

    def on_response(
        self, status: int, headers: Mapping[str, str], *, now: dt.datetime, rand: float
    ) -> Step:
        """Decide what to do with a response, from its status and headers."""
        if status in EXPIRED_STATUSES:
            return self._refresh(status, rand)
        if status == 416:
            return self._unsatisfiable(headers, now, rand)
        if status in (200, 206):
            return self._accept(status, headers)
        text = self._fail_text(f"HTTP {status} from the download host")
        if status == 429 or status >= 500:
            retry_after = proto.parse_retry_after(headers.get("retry-after"), now=now)
            return self.on_failure(text, rand=rand, retry_after=retry_after, from_response=True)
        return Step(Action.FAIL, reason=text)

    def _refresh(self, status: int, rand: float) -> Step:
        self.refreshes += 1
        if self.refreshes > self.policy.attempts:
            return Step(
                Action.FAIL,
                reason=self._fail_text(
                    f"download URL refused with HTTP {status} even after "
                    f"{self.refreshes - 1} refreshes"
                ),
            )
        # Storage may lag the "completed" status: back off between refreshes as for any
        # other failure (the first is immediate).
        delay = (
            proto.backoff_delay(self.policy, self.refreshes - 1, rand) if self.refreshes > 1 else 0
        )
        return Step(Action.REFRESH, delay=delay, reason=f"HTTP {status}")

    def _unsatisfiable(self, headers: Mapping[str, str], now: dt.datetime, rand: float) -> Step:
        # "bytes */N" names the full size: a chunked body may have been cut after its last
        # byte, in which case we already have everything.
        unsatisfied = _UNSATISFIED_RE.match(headers.get("content-range", ""))
        if unsatisfied is not None:
            self.total = int(unsatisfied[1])
        if self.total is not None and self.offset == self.total:
            return _DONE
        # Our offset is past a changed file: start over.
        self.offset, self.etag, self.last_modified = 0, None, None
        retry_after = proto.parse_retry_after(headers.get("retry-after"), now=now)
        text = self._fail_text("HTTP 416 from the download host")
        return self.on_failure(text, rand=rand, retry_after=retry_after, from_response=True)

    def _accept(self, status: int, headers: Mapping[str, str]) -> Step:
        """
        Take a 200/206's headers: where its body starts and how many bytes to drop.

        A 206 must start where we asked; a 200 is the whole file again, either because the
        server ignores ``Range`` (skip what we have, if the content is unchanged) or because
        ``If-Range`` found a new validator (start over at 0).
        """
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # We asked for identity; a coded body would be saved as a corrupt video, and
            # Range offsets would not be the file's.
            return Step(
                Action.FAIL,
                reason=self._fail_text(f"the download host sent Content-Encoding {encoding!r}"),
            )
        if status == 206:
            return self._partial(headers)
        etag, modified = _strong_etag(headers), headers.get("last-modified")
        changed = (self.etag is not None and etag is not None and etag != self.etag) or (
            self.etag is None
            and self.last_modified is not None
            and modified is not None
            and modified != self.last_modified
        )
        length = headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self.etag, self.last_modified = etag, modified
        if self.offset == 0 or changed:
            self.offset, self.skip = 0, 0
        else:
            self.skip = self.offset
        return _READ

    def _partial(self, headers: Mapping[str, str]) -> Step:
        content_range = headers.get("content-range", "")
        match = _CONTENT_RANGE_RE.match(content_range)
        if match is None or int(match[1]) != self.offset:
            return Step(
                Action.FAIL,
                reason=self._fail_text(
                    f"server answered Range {self.offset}- with Content-Range "
                    f"{headers.get('content-range')!r}"
                ),
            )
        if match[3] != "*":
            if self.total is not None and int(match[3]) != self.total and not self.probe:
                # Another size than the bytes we hold had: new content without a
                # validator to tell us (a partial from an earlier run). Start over.
                self.offset, self.total, self.etag, self.last_modified = 0, None, None, None
                return Step(Action.RETRY, reason="the content changed size; starting over")
            self.total = int(match[3])
        self.etag = _strong_etag(headers) or self.etag
        self.last_modified = headers.get("last-modified") or self.last_modified
        self.skip = 0
        return _READ

    def take(self, chunk: bytes) -> tuple[int, bytes] | None:
        """
        Feed body bytes; return ``(position, bytes)`` to keep, or ``None`` to drop them all.

        ``position`` is the offset of the kept bytes in the file; it only ever goes back to
        0, when the content changed under us and the consumer must start over.
        """
        if self.skip:
            if len(chunk) <= self.skip:
                self.skip -= len(chunk)
                return None
            chunk = chunk[self.skip :]
            self.skip = 0
        position = self.offset
        self.offset += len(chunk)
        # Progress: the retry budget is per stall, not per file (a trickle does not count
        # as progress: see ``slow``).
        self.failures = self.refreshes = 0
        return position, chunk

    def on_body_end(self, where: str, *, rand: float) -> Step:
        """The body ended: done, resume (a short body), or an integrity failure."""
        if self.total is None or self.offset == self.total:
            return _DONE
        if self.offset > self.total:
            return Step(
                Action.FAIL,
                reason=f"download of {self.project_id}: received {self.offset} bytes, "
                f"server announced {self.total}",
                integrity=True,
            )
        return self.on_failure(
            f"body of {where} ended at {self.offset} of {self.total} bytes", rand=rand
        )

    def on_failure(
        self,
        error: str,
        *,
        rand: float,
        slow: bool = False,
        retry_after: float | None = None,
        from_response: bool = False,
    ) -> Step:
        """
        A connection failed (or a response asked us to come back): retry, or give up.

        Args:
            error: What went wrong (for the messages).
            rand: A uniform draw in ``[0, 1)`` for the backoff jitter.
            slow: The connection was dropped for trickling (counted separately).
            retry_after: The server's ``Retry-After``, in seconds.
            from_response: The failure was decided from a response (its text is then the
                cause the driver chains).
        """
        cause = error if from_response else None
        self.slow += 1 if slow else 0
        self.failures += 1
        attempts = max(self.failures, self.slow)
        if attempts >= self.policy.attempts:
            reason = self._fail_text(f"giving up after {attempts} attempts: {error}")
            return Step(Action.FAIL, reason=reason, cause=cause)
        delay = proto.backoff_delay(self.policy, self.failures, rand)
        if retry_after is not None:
            if retry_after > self.policy.max_retry_after:
                reason = self._fail_text(f"server asked to wait {retry_after:g}s")
                return Step(Action.FAIL, reason=reason, cause=cause)
            delay = retry_after
        return Step(Action.RETRY, delay=delay, reason=error, cause=cause)


@attrs.define
class LowSpeed:
    """
    A low-speed limit, as curl has: bytes counted per window of ``window`` seconds.

    A host trickling bytes just inside the read timeout would otherwise keep a download
    alive forever; a window below ``min_rate`` bytes per second means "drop and resume".
    """

    window: float | None
    min_rate: float
    start: float
    received: int = 0

    def too_slow(self, now: float, size: int) -> bool:
        """Count ``size`` bytes received at ``now``; whether the window just ended too slow."""
        if self.window is None:
            return False
        self.received += size
        elapsed = now - self.start
        if elapsed < self.window:
            return False
        slow = self.received < self.min_rate * elapsed
        self.start, self.received = now, 0
        return slow
