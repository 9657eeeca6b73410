"""
What a batch command did: one :class:`Outcome` per project, a :class:`Tally`, a :class:`Summary`.

Plain values and a lock, no click and no rich: the displays render them, the commands turn
them into exit codes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import attrs

from babou_async import DownloadResult, ExportResult
from babou_async._redaction import redact

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PHASES",
    "Outcome",
    "Summary",
    "Tally",
    "error_text",
    "human_bytes",
    "iso",
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


def iso(value: dt.datetime | None) -> str | None:
    """A timestamp as ISO 8601 text, for JSON."""
    return value.isoformat() if value is not None else None


def error_text(error: BaseException | str | None, secret: str | None) -> str | None:
    """An error (or its message), with the key (``secret``) and anything key-shaped hidden."""
    return redact(str(error), secret) if error is not None else None


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
    def of_export(cls, result: ExportResult, *, secret: str | None = None) -> Outcome:
        """Build from an :class:`ExportResult`, hiding ``secret`` in its error."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status=str(result.status) if result.status is not None else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=error_text(result.error, secret),
            error_type=type(result.error).__name__ if result.error is not None else None,
            started_at=iso(result.started_at),
            completed_at=iso(result.completed_at),
            downloaded_at=iso(result.downloaded_at),
        )

    @classmethod
    def of_download(cls, result: DownloadResult, *, secret: str | None = None) -> Outcome:
        """Build from a :class:`DownloadResult`, hiding ``secret`` in its error."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status="completed" if result.ok else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=error_text(result.error, secret),
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


class Tally:
    """What a batch did so far; shared by the event loop and a display thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.phase: dict[str, str] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.activity = ""

    def counts(self) -> Counter[str]:
        """Projects per live phase and per verdict, plus ``"bytes"`` transferred."""
        with self.lock:
            # Live phases only: a "failed" status is counted once, by its outcome.
            counts = Counter(p for p in self.phase.values() if p in PHASES)
            counts.update(outcome.verdict for outcome in self.outcomes.values())
            # Bytes transferred by this run: files skipped as already complete do not count.
            counts["bytes"] = sum(o.bytes for o in self.outcomes.values() if o.ok and not o.skipped)
            return counts

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
