"""
What a batch command did: one :class:`Outcome` per project, a :class:`Tally`, a :class:`Summary`.

Plain values and a lock, no click and no rich: the displays render them, the commands turn
them into exit codes.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import attrs

from babou_async import APIError, DownloadResult, ExportResult, NotFoundError
from babou_async._redaction import redact

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PHASES",
    "Outcome",
    "Snapshot",
    "Summary",
    "Tally",
    "describe_error",
    "error_text",
    "human_bytes",
    "iso",
    "plural",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The live phases of a project, in display order.
PHASES = ("queued", "processing", "completed", "downloading", "unknown")


def human_bytes(n: float) -> str:
    """``4200000`` -> ``"4.2 MB"`` (decimal units, like rich's download column)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 project``, ``2 projects`` (``many``: the plural, when it is not ``noun + "s"``)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def iso(value: dt.datetime | None) -> str | None:
    """A timestamp as ISO 8601 text, for JSON."""
    return value.isoformat() if value is not None else None


def error_text(error: BaseException | str | None, secret: str | None) -> str | None:
    """An error (or its message), with the key (``secret``) and anything key-shaped hidden."""
    return redact(str(error), secret) if error is not None else None


#: An API hint that names an HTTP request (``POST /api/v1/...``): meaningless at a prompt.
_HTTP_HINT = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE) /\S*")
#: The path of a project's export, as the API reports it on an error.
_EXPORT_PATH = re.compile(r"/projects/([^/]+)/export$")


def describe_error(
    error: BaseException | str | None, secret: str | None, base_url: str | None = None
) -> str | None:
    """
    An error in the command line's terms: what to type next rather than which request to send.

    * a 404 on a project's export (it was never exported) suggests ``babou export PRJ``;
    * any other 404 from a ``base_url`` whose path has no ``/api/v...`` suggests adding it;
    * other API hints that name an HTTP request are dropped.

    The key (``secret``) and anything key-shaped are hidden, as in :func:`error_text`.
    """
    if not isinstance(error, APIError) or error.status is None:
        return error_text(error, secret)
    hint = error.hint
    if hint and _HTTP_HINT.search(hint):
        hint = None
    request = f" ({error.method} {error.path})" if error.method and error.path else ""
    if isinstance(error, NotFoundError):
        if (root := _missing_api_root(error, base_url)) is not None:
            hint = f"is /api/v1 missing from the base URL? try --base-url {root}/api/v1"
        elif (pid := _never_exported(error)) is not None:
            # Which request failed is no news to someone who typed `babou status PRJ`.
            hint, request = f"start one with `babou export {pid} --out DIR`", ""
    head = f"{error.status} {error.code}" if error.code else str(error.status)
    text = f"{head}: {error.message}{request}"
    if hint:
        text += f"; {hint}"
    if error.request_id:
        text += f" [request id {error.request_id}]"
    return redact(text, secret)


def _missing_api_root(error: APIError, base_url: str | None) -> str | None:
    """The base URL, if this 404 most likely came from a root without ``/api/v1``."""
    # A hinted 404 (the API's "start an export first") proves the base URL right.
    if base_url and "/api/v" not in urlsplit(base_url).path and not error.hint:
        return base_url.rstrip("/")
    return None


def _never_exported(error: APIError) -> str | None:
    """The project ID, if this 404 is the one of a project that has no export yet."""
    export = _EXPORT_PATH.search(error.path or "")
    return export[1] if export and error.method == "GET" else None


@attrs.frozen(kw_only=True)
class Outcome:
    """The final state of one project, whatever the command (export or download)."""

    project_id: str
    ok: bool
    skipped: bool = False
    status: str | None = None
    path: str | None = None
    bytes: int = 0
    error: str | None = None
    error_type: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    downloaded_at: str | None = None

    @classmethod
    def of_export(
        cls, result: ExportResult, *, secret: str | None = None, base_url: str | None = None
    ) -> Outcome:
        """Build from an :class:`ExportResult`, hiding ``secret`` in its error."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status=str(result.status) if result.status is not None else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=describe_error(result.error, secret, base_url),
            error_type=type(result.error).__name__ if result.error is not None else None,
            started_at=iso(result.started_at),
            completed_at=iso(result.completed_at),
            downloaded_at=iso(result.downloaded_at),
        )

    @classmethod
    def of_download(
        cls, result: DownloadResult, *, secret: str | None = None, base_url: str | None = None
    ) -> Outcome:
        """Build from a :class:`DownloadResult`, hiding ``secret`` in its error."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status="completed" if result.ok else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=describe_error(result.error, secret, base_url),
            error_type=type(result.error).__name__ if result.error is not None else None,
        )

    @property
    def verdict(self) -> str:
        """``"ok"``, ``"failed"`` or ``"skipped"``: the column it is counted in."""
        return "skipped" if self.skipped else "ok" if self.ok else "failed"

    def to_json(self) -> dict[str, object]:
        """The ``--json`` line of this result."""
        return {"type": "result", **attrs.asdict(self)}


@attrs.frozen(kw_only=True)
class Summary:
    """The last line of a batch command, and its exit status."""

    ok: int
    failed: int
    skipped: int
    bytes: int
    elapsed: float
    interrupted: bool = False
    unfinished: int = 0
    where: str | None = None

    def to_json(self) -> dict[str, object]:
        """The ``--json`` line of this summary."""
        return {"type": "summary", **attrs.asdict(self)}

    def text(self) -> str:
        """``Done: 3 ok, 1 failed, 0 skipped · 8.4 MB in 2.1s · videos in out``."""
        head = "Interrupted" if self.interrupted else "Done"
        parts = [f"{self.ok} ok", f"{self.failed} failed", f"{self.skipped} skipped"]
        if self.unfinished:
            parts.append(f"{self.unfinished} unfinished")
        line = f"{head}: {', '.join(parts)} · {human_bytes(self.bytes)} in {self.elapsed:.1f}s"
        if self.where:
            line += f" · videos in {self.where}"
        return line

    @property
    def exit_code(self) -> int:
        """130 if interrupted, else 1 if any project failed, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


@attrs.frozen(kw_only=True)
class Snapshot:
    """What the overall progress line shows, read at once from a :class:`Tally`."""

    #: Projects per live phase and per verdict (``"ok"``, ``"failed"``, ``"skipped"``).
    counts: Counter[str]
    #: Projects in the batch: as announced, else as seen so far.
    total: int
    #: Bytes saved by this run, finished downloads and the ones in flight.
    bytes_done: int
    #: The batch's bytes once done, estimated from the sizes known so far (None: none known).
    bytes_expected: float | None
    #: Whether ``bytes_expected`` is exact: every size is known.
    bytes_exact: bool
    retries: int
    cut_downloads: int
    activity: str

    @property
    def done(self) -> int:
        """Projects finished, one way or another."""
        return self.counts["ok"] + self.counts["failed"] + self.counts["skipped"]


class Tally:
    """What a batch did so far; shared by the event loop and a display thread."""

    def __init__(self, expected: int | None = None) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        #: How many projects the batch has, when known in advance.
        self.expected = expected
        self.phase: dict[str, str] = {}
        self.outcomes: dict[str, Outcome] = {}
        #: Downloads in flight: bytes so far and the size, if announced.
        self.inflight: dict[str, tuple[int, int | None]] = {}
        self.activity = ""
        self.retries = 0
        self.cut_downloads = 0

    def counts(self) -> Counter[str]:
        """Projects per live phase and per verdict, plus ``"bytes"`` transferred."""
        with self.lock:
            # Live phases only: a "failed" status is counted once, by its outcome.
            counts = Counter(p for p in self.phase.values() if p in PHASES)
            counts.update(outcome.verdict for outcome in self.outcomes.values())
            # Bytes transferred by this run: files skipped as already complete do not count.
            counts["bytes"] = sum(o.bytes for o in self.outcomes.values() if o.ok and not o.skipped)
            return counts

    def snapshot(self) -> Snapshot:
        """The overall progress so far (called by the display thread a few times a second)."""
        counts = self.counts()
        with self.lock:
            inflight = list(self.inflight.values())
            seen = len(self.phase) + len(self.outcomes)
            retries, cuts, activity = self.retries, self.cut_downloads, self.activity
        total = max(self.expected or 0, seen)
        # The bytes still to come: the sizes known (saved or announced), and for the projects
        # not downloading yet, the mean of those.
        sizes = [size if size is not None else done for done, size in inflight]
        known, sized = counts["bytes"] + sum(sizes), counts["ok"] + len(sizes)
        finished = counts["ok"] + counts["failed"] + counts["skipped"]
        left = max(0, total - finished - len(inflight))
        return Snapshot(
            counts=counts,
            total=total,
            bytes_done=counts["bytes"] + sum(done for done, _ in inflight),
            bytes_expected=known + left * known / sized if sized else None,
            bytes_exact=not left and all(size is not None for _, size in inflight),
            retries=retries,
            cut_downloads=cuts,
            activity=activity,
        )

    def summary(
        self, *, interrupted: bool = False, expected: int | None = None, where: str | None = None
    ) -> Summary:
        """The summary so far; an interrupted run counts what it saw but did not finish."""
        counts = self.counts()
        done = counts["ok"] + counts["failed"] + counts["skipped"]
        with self.lock:
            seen = len(self.phase) + len(self.outcomes)
        unfinished = max(seen, expected or 0) - done if interrupted else 0
        return Summary(
            ok=counts["ok"],
            failed=counts["failed"],
            skipped=counts["skipped"],
            bytes=counts["bytes"],
            elapsed=time.monotonic() - self.started,
            interrupted=interrupted,
            unfinished=unfinished,
            where=where,
        )
