"""
The ``babou`` command line (``pip install 'babou_async[cli]'``).

Parsing is done by click and the terminal by rich; both are imported lazily, here only,
so that the library imports without them. Without them :func:`main` prints one line
telling how to install them and exits 2.

Output:

* on a terminal, a live display (an overall line with counts per status, one bar per
  active download with bytes and speed) and one line per finished project;
* off a terminal, one plain line per event;
* with ``--json``, one JSON object per line (``"type": "result"`` per project, then
  ``"type": "summary"``); notes and warnings then go to standard error.

Everything printed goes through a writer thread, so a slow or full pipe never stalls the
event loop (and the downloads with it).

Exit codes: 0 all ok, 1 some projects failed (or any API error), 2 usage or configuration
error, 130 interrupted by Ctrl-C (143 by SIGTERM), after a summary of what finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import attrs

from . import _protocol as proto
from ._batch import ExportEvent
from ._config import PollPolicy
from ._exceptions import (
    BabouError,
    ConfigurationError,
    NotFoundError,
    ValidationError,
)
from ._models import DownloadResult, Export, ExportResult
from ._version import __version__

if TYPE_CHECKING:
    import click
    from rich.console import Console, RenderableType
    from rich.progress import Progress, TaskID

    from ._session import BabouSession

__all__ = ["main"]

INSTALL_HINT = (
    "babou: the command line needs click and rich; install them with: "
    "pip install 'babou_async[cli]'"
)
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
_KEY_RE = re.compile(r"sk-bab-[A-Za-z0-9_\-]+")
_log = logging.getLogger("babou_async")


def _redact(text: str) -> str:
    """Hide anything that looks like an API key."""
    return _KEY_RE.sub("sk-bab-[REDACTED]", text)


def _human_bytes(n: float) -> str:
    """``4200000`` -> ``"4.2 MB"`` (decimal units, like rich's download column)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error_text(error: BaseException | None) -> str | None:
    return _redact(str(error)) if error is not None else None


def _exit_code_for(error: BabouError) -> int:
    """2 for configuration errors and input rejected before sending, 1 otherwise."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, ValidationError) and error.status is None:
        return EXIT_USAGE
    return EXIT_FAILED


# -- output -------------------------------------------------------------------------------


def _write_line(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


class _Writer:
    """
    Prints from a daemon thread, in order, so that the event loop never waits on a pipe.

    A closed pipe (``babou export ... | head``) silences further output instead of failing.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="babou-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._broken:
                continue
            try:
                job()
            except BrokenPipeError:
                self._broken = True
                with contextlib.suppress(OSError, ValueError):
                    # As the Python docs advise: point stdout at devnull so that the
                    # interpreter's final flush does not complain.
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())

    def call(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the writer thread, after everything queued before it."""
        self._jobs.put(job)

    def out(self, text: str) -> None:
        """Print a line on standard output."""
        self.call(lambda: _write_line(sys.stdout, text))

    def err(self, text: str) -> None:
        """Print a line on standard error."""
        self.call(lambda: _write_line(sys.stderr, text))

    def close(self) -> None:
        """Flush everything queued and stop the thread (call outside the event loop)."""
        self._jobs.put(None)
        self._thread.join()


@attrs.frozen(kw_only=True)
class _Outcome:
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
    def of_export(cls, result: ExportResult) -> _Outcome:
        """Build from an :class:`ExportResult`."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status=str(result.status) if result.status is not None else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=_error_text(result.error),
            error_type=type(result.error).__name__ if result.error is not None else None,
            started_at=_iso(result.started_at),
            completed_at=_iso(result.completed_at),
            downloaded_at=_iso(result.downloaded_at),
        )

    @classmethod
    def of_download(cls, result: DownloadResult) -> _Outcome:
        """Build from a :class:`DownloadResult`."""
        return cls(
            project_id=result.project_id,
            ok=result.ok,
            skipped=result.skipped,
            status="completed" if result.ok else None,
            path=str(result.path) if result.path is not None else None,
            bytes=result.bytes,
            error=_error_text(result.error),
            error_type=type(result.error).__name__ if result.error is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line of this result."""
        return {"type": "result", **attrs.asdict(self)}


@attrs.frozen(kw_only=True)
class _Summary:
    ok: int
    failed: int
    skipped: int
    bytes: int
    elapsed: float
    interrupted: bool = False
    unfinished: int = 0
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": "summary", **attrs.asdict(self)}

    def text(self) -> str:
        head = "Interrupted" if self.interrupted else "Done"
        parts = [f"{self.ok} ok", f"{self.failed} failed", f"{self.skipped} skipped"]
        if self.unfinished:
            parts.append(f"{self.unfinished} unfinished")
        line = f"{head}: {', '.join(parts)} · {_human_bytes(self.bytes)} in {self.elapsed:.1f}s"
        if self.where:
            line += f" · videos in {self.where}"
        return line

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


#: The live phases of a project, in display order.
_PHASES = ("queued", "processing", "completed", "downloading", "unknown")


class _Tally:
    """What a batch did so far; shared by the event loop and a display thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.phase: dict[str, str] = {}
        self.outcomes: dict[str, _Outcome] = {}
        self.activity = ""

    def counts(self) -> Counter[str]:
        with self.lock:
            # Live phases only: a "failed" status is counted once, by its outcome.
            counts = Counter(p for p in self.phase.values() if p in _PHASES)
            for outcome in self.outcomes.values():
                counts["skipped" if outcome.skipped else "ok" if outcome.ok else "failed"] += 1
            # Bytes transferred by this run: files skipped as already complete do not count.
            counts["bytes"] = sum(o.bytes for o in self.outcomes.values() if o.ok and not o.skipped)
            return counts

    def summary(
        self, *, interrupted: bool = False, expected: int | None = None, where: str | None = None
    ) -> _Summary:
        counts = self.counts()
        done = counts["ok"] + counts["failed"] + counts["skipped"]
        with self.lock:
            seen = len(self.phase) + len(self.outcomes)
        unfinished = max(seen, expected or 0) - done if interrupted else 0
        return _Summary(
            ok=counts["ok"],
            failed=counts["failed"],
            skipped=counts["skipped"],
            bytes=counts["bytes"],
            elapsed=time.monotonic() - self.started,
            interrupted=interrupted,
            unfinished=unfinished,
            where=where,
        )


class _Display:
    """
    Progress of a batch (export, download, demo); this base prints plain lines.

    The ``on_*`` methods are called from the event loop and never block: they update the
    tally under a short lock and queue output on the writer thread.
    """

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.tally = _Tally()

    # lifecycle (called outside the event loop)
    def start(self) -> None:
        """Start drawing."""

    def stop(self) -> None:
        """Stop drawing and flush every queued line."""
        self.writer.close()

    # events (called from the event loop)
    def on_event(self, event: ExportEvent) -> None:
        """Receive an :class:`ExportEvent` of ``export_many``."""
        pid = event.project_id
        if event.kind == "status" and event.status is not None:
            with self.tally.lock:
                self.tally.phase[pid] = event.status.value
            self.status_changed(pid, event.status.value)
        elif event.kind == "download":
            self.on_bytes(pid, event.bytes_done, event.bytes_total)
        elif event.kind == "done" and event.result is not None:
            self.on_outcome(_Outcome.of_export(event.result))

    def on_bytes(self, project_id: str, done: int, total: int | None) -> None:
        """Receive download progress (a ``ProgressCallback``)."""
        with self.tally.lock:
            if project_id in self.tally.outcomes:
                return
            first = self.tally.phase.get(project_id) != "downloading"
            self.tally.phase[project_id] = "downloading"
        if first:
            self.download_started(project_id, total)
        self.download_progress(project_id, done, total)

    def on_outcome(self, outcome: _Outcome) -> None:
        """Record a project's final result."""
        with self.tally.lock:
            self.tally.phase.pop(outcome.project_id, None)
            self.tally.outcomes[outcome.project_id] = outcome
        self.finished(outcome)

    def note(self, text: str) -> None:
        """A milestone worth a line."""
        self.writer.out(text)

    def stage(self, text: str) -> None:
        """What is going on now (shown on the live line only)."""
        with self.tally.lock:
            self.tally.activity = text

    def warn(self, text: str) -> None:
        """A warning (the library's log records)."""
        self.writer.err(f"warning: {text}")

    def show_summary(self, summary: _Summary) -> None:
        """Print the summary (after :meth:`stop`)."""
        _write_line(sys.stdout, summary.text())

    # rendering hooks
    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.tally.started:6.1f}s]"

    def status_changed(self, project_id: str, status: str) -> None:
        self.writer.out(f"{self._stamp()} {project_id} {status}")

    def download_started(self, project_id: str, total: int | None) -> None:
        size = f" ({_human_bytes(total)})" if total is not None else ""
        self.writer.out(f"{self._stamp()} {project_id} downloading{size}")

    def download_progress(self, project_id: str, done: int, total: int | None) -> None:
        """Plain output prints no line per chunk."""

    def finished(self, outcome: _Outcome) -> None:
        pid = outcome.project_id
        if outcome.skipped:
            text = f"skipped, already complete: {outcome.path}"
        elif outcome.ok:
            text = f"ok {_human_bytes(outcome.bytes)} -> {outcome.path}"
        else:
            text = f"FAILED: {outcome.error}"
        self.writer.out(f"{self._stamp()} {pid} {text}")


class _JsonDisplay(_Display):
    """``--json``: one JSON object per result on stdout; notes and warnings on stderr."""

    def note(self, text: str) -> None:
        self.writer.err(text)

    def status_changed(self, project_id: str, status: str) -> None:
        pass

    def download_started(self, project_id: str, total: int | None) -> None:
        pass

    def finished(self, outcome: _Outcome) -> None:
        self.writer.out(json.dumps(outcome.to_json()))

    def show_summary(self, summary: _Summary) -> None:
        _write_line(sys.stdout, json.dumps(summary.to_json()))


class _OverallLine:
    """The live line: counts per status, bytes, elapsed time (rendered by rich's thread)."""

    def __init__(self, tally: _Tally, total: int | None) -> None:
        self.tally = tally
        self.total = total

    def __rich__(self) -> RenderableType:
        from rich.text import Text  # noqa: PLC0415 - rich is optional

        counts = self.tally.counts()
        with self.tally.lock:
            activity = self.tally.activity
        line = Text()
        seen = sum(counts[p] for p in _PHASES) + counts["ok"] + counts["failed"]
        seen += counts["skipped"]
        if self.total is not None:
            line.append(f"{self.total} projects", style="bold")
        else:
            line.append(f"{seen} projects", style="bold")
        styles = {
            "queued": "yellow",
            "processing": "cyan",
            "completed": "blue",
            "downloading": "magenta",
            "unknown": "dim",
        }
        for phase in _PHASES:
            if counts[phase]:
                line.append("  ")
                # "completed" on the server, not downloaded yet: "ready" (to download).
                label = "ready" if phase == "completed" else phase
                line.append(f"{label} {counts[phase]}", style=styles[phase])
        line.append("  ")
        line.append(f"ok {counts['ok']}", style="green")
        if counts["failed"]:
            line.append("  ")
            line.append(f"failed {counts['failed']}", style="bold red")
        if counts["skipped"]:
            line.append("  ")
            line.append(f"skipped {counts['skipped']}", style="dim")
        line.append(f"  {_human_bytes(counts['bytes'])}", style="dim")
        line.append(f"  {time.monotonic() - self.tally.started:.1f}s", style="dim")
        if activity:
            line.append(f"  · {activity}", style="italic")
        return line


class _RichDisplay(_Display):
    """The terminal display: a live overall line and one bar per active download."""

    def __init__(self, writer: _Writer, console: Console, total: int | None) -> None:
        from rich.console import Group  # noqa: PLC0415
        from rich.live import Live  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__(writer)
        self.console = console
        self.progress: Progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=None),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            expand=False,
        )
        self.bars: dict[str, TaskID] = {}
        self.live = Live(
            Group(_OverallLine(self.tally, total), self.progress),
            console=console,
            refresh_per_second=10,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.writer.close()
        self.live.stop()

    def _print(self, markup: str) -> None:
        console = self.console
        self.writer.call(lambda: console.print(markup, highlight=False, soft_wrap=True))

    def note(self, text: str) -> None:
        from rich.markup import escape  # noqa: PLC0415

        self._print(f"[bold cyan]•[/] {escape(text)}")

    def warn(self, text: str) -> None:
        from rich.markup import escape  # noqa: PLC0415

        self._print(f"[yellow dim]↻ {escape(text)}[/]")

    def show_summary(self, summary: _Summary) -> None:
        style = "bold red" if summary.failed else "yellow" if summary.interrupted else "bold green"
        self.console.print(summary.text(), style=style, highlight=False)

    def status_changed(self, project_id: str, status: str) -> None:
        if status == "failed":
            self._drop_bar(project_id)

    def download_started(self, project_id: str, total: int | None) -> None:
        self.bars[project_id] = self.progress.add_task(project_id, total=total)

    def download_progress(self, project_id: str, done: int, total: int | None) -> None:
        task = self.bars.get(project_id)
        if task is not None:
            self.progress.update(task, completed=done, total=total)

    def _drop_bar(self, project_id: str) -> None:
        task = self.bars.pop(project_id, None)
        if task is not None:
            self.progress.remove_task(task)

    def finished(self, outcome: _Outcome) -> None:
        from rich.markup import escape  # noqa: PLC0415

        self._drop_bar(outcome.project_id)
        pid = escape(outcome.project_id)
        if outcome.skipped:
            self._print(f"[dim]↷ {pid}  already complete  {escape(str(outcome.path))}[/]")
        elif outcome.ok:
            self._print(
                f"[green]✓[/] {pid}  {_human_bytes(outcome.bytes):>8}  "
                f"[dim]{escape(str(outcome.path))}[/]"
            )
        else:
            self._print(f"[bold red]✗[/] {pid}  [red]{escape(outcome.error or 'failed')}[/]")


def _make_display(as_json: bool, total: int | None = None) -> _Display:
    """Pick the display: JSON, rich on a terminal, plain lines otherwise."""
    writer = _Writer()
    if as_json:
        return _JsonDisplay(writer)
    if sys.stdout.isatty():
        from rich.console import Console  # noqa: PLC0415

        return _RichDisplay(writer, Console(), total)
    return _Display(writer)


class _DisplayLogHandler(logging.Handler):
    """Routes the library's log records (retries, resumed downloads) to the display."""

    def __init__(self, display: _Display) -> None:
        super().__init__(logging.WARNING)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.warn(_redact(record.getMessage()))
        except Exception:  # noqa: BLE001 - a log record must never break a batch
            self.handleError(record)


@contextlib.contextmanager
def _showing(display: _Display, verbose: int) -> Iterator[_Display]:
    """Run a display (and route the library's warnings to it) for the ``with`` body."""
    handler = _DisplayLogHandler(display)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    previous = (_log.level, _log.propagate, list(_log.handlers))
    _log.handlers = [handler]
    _log.setLevel(handler.level)
    _log.propagate = False
    display.start()
    try:
        yield display
    finally:
        display.stop()
        _log.handlers = previous[2]
        _log.setLevel(previous[0])
        _log.propagate = previous[1]


# -- running async code -------------------------------------------------------------------


@attrs.define
class _Interrupt:
    """Which signal stopped the run, if one did."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def _interruptible() -> Iterator[_Interrupt]:
    """
    Let SIGINT/SIGTERM cancel the ``with`` body cleanly instead of raising a traceback.

    Cancellation unwinds normally: downloads delete their ``.part`` files (shielded
    clean-up) and the body's partial results stay available to print a summary.
    """
    import anyio  # noqa: PLC0415

    state = _Interrupt()
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:

        def on_signal(signum: int) -> None:
            if state.signum is None:
                state.signum = signum
                scope.cancel()

        installed: list[int] = []
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue
            installed.append(signum)
        try:
            yield state
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def _run(func: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function on asyncio (aiohttp needs it)."""
    import anyio  # noqa: PLC0415

    async def call() -> T:
        return await func()

    return anyio.run(call, backend="asyncio")


@attrs.define
class _Config:
    """The global options, shared by every command through click's context."""

    base_url: str | None
    api_key: str | None
    poll_interval: float | None
    verbose: int

    def session(self) -> BabouSession:
        """Build the session, or fail with one line naming BABOU_API_KEY."""
        from ._session import BabouSession  # noqa: PLC0415

        if not self.api_key or not self.api_key.strip():
            raise ConfigurationError(
                "no API key: set the BABOU_API_KEY environment variable or pass --api-key"
            )
        poll = None
        if self.poll_interval is not None:
            poll = PollPolicy(
                initial_delay=self.poll_interval,
                max_delay=max(self.poll_interval, PollPolicy().max_delay),
            )
        return BabouSession(api_key=self.api_key, base_url=self.base_url, poll=poll)


def _check_ids(project_ids: Sequence[str]) -> list[str]:
    """Validate project IDs given on the command line (a bad one is a usage error)."""
    for pid in project_ids:
        proto.check_project_id(pid)
    return list(project_ids)


async def _lines_from_thread(path: str, problems: list[str]) -> AsyncIterator[str]:
    """
    Yield the project IDs of a file (or ``-`` for stdin), read by a daemon thread.

    A daemon thread rather than a worker thread: a read blocked on a terminal or a silent
    pipe must neither stall the event loop nor keep the process alive after Ctrl-C.
    One ID or more per line (separated by spaces or commas); blank lines and ``#``
    comments are skipped. A read error ends the IDs and is appended to ``problems``
    (raising here would surface inside ``export_many``'s task group).
    """
    import anyio  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    send, receive = anyio.create_memory_object_stream[str](256)
    problem: list[BaseException] = []

    def read() -> None:
        try:
            if path == "-":
                for line in sys.stdin:
                    asyncio.run_coroutine_threadsafe(send.send(line), loop).result()
            else:
                with Path(path).open(encoding="utf-8", errors="replace") as f:
                    for line in f:
                        asyncio.run_coroutine_threadsafe(send.send(line), loop).result()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            return  # the consumer went away (cancelled run, closed loop)
        except OSError as exc:
            problem.append(exc)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(send.close)

    threading.Thread(target=read, name="babou-read-ids", daemon=True).start()
    async with receive:
        async for line in receive:
            for token in re.split(r"[\s,]+", line.split("#", 1)[0]):
                if token:
                    yield token
    problems.extend(f"cannot read {path}: {exc}" for exc in problem)


# -- the commands ---------------------------------------------------------------------------


def _print_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], as_json: bool
) -> None:
    """Print records: JSON lines, a rich table on a terminal, or tab-separated lines."""
    if as_json:
        for row in rows:
            _write_line(sys.stdout, json.dumps(row, default=str))
        return
    if sys.stdout.isatty():
        from rich.console import Console  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        table = Table(*(title for _, title in columns), header_style="bold")
        for row in rows:
            table.add_row(*("" if row.get(k) is None else str(row[k]) for k, _ in columns))
        Console().print(table)
        return
    for row in rows:
        _write_line(
            sys.stdout, "\t".join("" if row.get(k) is None else str(row[k]) for k, _ in columns)
        )


def _export_row(project_id: str, export: Export | None, error: BabouError | None) -> dict[str, Any]:
    if export is None:
        status = "none" if isinstance(error, NotFoundError) else "error"
        return {
            "project_id": project_id,
            "status": status,
            "error": _error_text(error),
            "download_url": None,
            "duration_seconds": None,
        }
    return {
        "project_id": project_id,
        "status": export.status_raw or str(export.status),
        "error": export.error,
        "download_url": export.download_url,
        "duration_seconds": export.duration_seconds,
    }


def _status_detail(row: dict[str, Any]) -> str:
    if row["error"]:
        return str(row["error"])
    if row["status"] == "completed":
        return "ready to download"
    return ""


class _StatusBoard:
    """The ``status --watch`` table, rendered live by rich's thread."""

    def __init__(self, rows: dict[str, dict[str, Any]], lock: threading.Lock) -> None:
        self.rows = rows
        self.lock = lock

    def __rich__(self) -> RenderableType:
        from rich.table import Table  # noqa: PLC0415

        styles = {"completed": "green", "failed": "red", "error": "red", "none": "dim"}
        table = Table("Project", "Status", "Detail", header_style="bold")
        with self.lock:
            rows = [dict(r) for r in self.rows.values()]
        for row in rows:
            status = str(row["status"])
            table.add_row(
                row["project_id"],
                f"[{styles.get(status, 'yellow')}]{status}[/]",
                _status_detail(row),
            )
        return table


def _build_cli() -> click.Group:
    """Declare the click command tree (click is imported here, lazily)."""
    import anyio  # noqa: PLC0415
    import click  # noqa: PLC0415

    pass_config = click.make_pass_decorator(_Config)
    json_option = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object per line."
    )

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.option(
        "--base-url",
        envvar="BABOU_BASE_URL",
        metavar="URL",
        help="API root (env BABOU_BASE_URL; default https://api.babou.ai/api/v1).",
    )
    @click.option(
        "--api-key",
        envvar="BABOU_API_KEY",
        metavar="KEY",
        help="API key (env BABOU_API_KEY); never printed.",
    )
    @click.option(
        "--poll-interval",
        type=click.FloatRange(min=0.01),
        metavar="SECONDS",
        help="First delay between status polls (default 2; lower for a local simulator).",
    )
    @click.option("-v", "--verbose", count=True, help="Also show informational log lines.")
    @click.version_option(__version__, "--version", prog_name="babou")
    @click.pass_context
    def cli(
        ctx: click.Context,
        base_url: str | None,
        api_key: str | None,
        poll_interval: float | None,
        verbose: int,
    ) -> None:
        """Babou's video API from the command line: export, follow and download videos."""
        ctx.obj = _Config(
            base_url=base_url, api_key=api_key, poll_interval=poll_interval, verbose=verbose
        )
        if verbose:
            _log.setLevel(logging.INFO)

    # -- export -------------------------------------------------------------------------

    @cli.command("export")
    @click.argument("project_ids", nargs=-1, metavar="PRJ...")
    @click.option(
        "--from-file",
        type=click.Path(dir_okay=False, allow_dash=True, exists=True),
        metavar="FILE|-",
        help="Also read project IDs from FILE ('-' for stdin), one or more per line.",
    )
    @click.option(
        "--out",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory for the videos (<project_id>.mp4).",
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help="Exports followed at once.",
    )
    @click.option(
        "--download-concurrency",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        help="Downloads at once.",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=900.0,
        show_default=True,
        help="Per-project deadline (seconds) for the export to finish.",
    )
    @click.option("--no-start", is_flag=True, help="Only follow exports started elsewhere.")
    @click.option("--overwrite", is_flag=True, help="Re-export and replace existing videos.")
    @json_option
    @pass_config
    def export_cmd(
        config: _Config,
        project_ids: tuple[str, ...],
        from_file: str | None,
        out: Path,
        concurrency: int,
        download_concurrency: int,
        timeout: float,
        no_start: bool,
        overwrite: bool,
        as_json: bool,
    ) -> int:
        """Export projects and download each video as soon as it is ready."""
        if not project_ids and from_file is None:
            raise click.UsageError("give at least one project ID, or --from-file")
        ids = _check_ids(project_ids)
        session = config.session()
        total = None if from_file is not None else len(dict.fromkeys(ids))
        display = _make_display(as_json, total)
        interrupt = _Interrupt()
        problems: list[str] = []

        async def source() -> AsyncIterator[str]:
            for pid in ids:
                yield pid
            if from_file is not None:
                async for pid in _lines_from_thread(from_file, problems):
                    yield pid

        async def body() -> None:
            nonlocal interrupt
            async with session:
                with _interruptible() as interrupt:
                    await session.export_many(
                        source(),
                        out,
                        start=not no_start,
                        concurrency=concurrency,
                        download_concurrency=download_concurrency,
                        timeout=timeout,
                        overwrite=overwrite,
                        progress=display.on_event,
                    )

        with _showing(display, config.verbose):
            _run(body)
        summary = display.tally.summary(
            interrupted=interrupt.signum is not None, expected=total, where=str(out)
        )
        display.show_summary(summary)
        for problem in problems:
            _fail(problem)
        if interrupt.signum is not None:
            return interrupt.exit_code
        return EXIT_FAILED if problems else summary.exit_code

    # -- download -----------------------------------------------------------------------

    @cli.command("download")
    @click.argument("project_ids", nargs=-1, required=True, metavar="PRJ...")
    @click.option(
        "--out",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory for the videos (<project_id>.mp4).",
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        help="Downloads at once.",
    )
    @click.option("--overwrite", is_flag=True, help="Replace existing videos.")
    @json_option
    @pass_config
    def download_cmd(
        config: _Config,
        project_ids: tuple[str, ...],
        out: Path,
        concurrency: int,
        overwrite: bool,
        as_json: bool,
    ) -> int:
        """Download the videos of completed exports."""
        ids = _check_ids(project_ids)
        session = config.session()
        display = _make_display(as_json, len(dict.fromkeys(ids)))
        interrupt = _Interrupt()
        finished: dict[str, DownloadResult] = {}

        def on_result(result: DownloadResult) -> None:
            # Reported as each download ends, so an interrupted run still knows exactly
            # what finished.
            finished[result.project_id] = result
            display.on_outcome(_Outcome.of_download(result))

        async def body() -> list[DownloadResult]:
            nonlocal interrupt
            async with session:
                with _interruptible() as interrupt:
                    await session.download_exports(
                        ids,
                        out,
                        concurrency=concurrency,
                        overwrite=overwrite,
                        progress=display.on_bytes,
                        on_result=on_result,
                    )
            return list(finished.values())

        with _showing(display, config.verbose):
            _run(body)
        summary = display.tally.summary(
            interrupted=interrupt.signum is not None,
            expected=len(dict.fromkeys(ids)),
            where=str(out),
        )
        display.show_summary(summary)
        return interrupt.exit_code if interrupt.signum is not None else summary.exit_code

    # -- status -------------------------------------------------------------------------

    @cli.command("status")
    @click.argument("project_ids", nargs=-1, required=True, metavar="PRJ...")
    @click.option("--watch", is_flag=True, help="Follow the transitions until all are terminal.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=900.0,
        show_default=True,
        help="With --watch: per-project deadline in seconds.",
    )
    @json_option
    @pass_config
    def status_cmd(
        config: _Config,
        project_ids: tuple[str, ...],
        watch: bool,
        timeout: float,
        as_json: bool,
    ) -> int:
        """Show the export status of projects (a table; --watch follows it live)."""
        ids = list(dict.fromkeys(_check_ids(project_ids)))
        session = config.session()
        lock = threading.Lock()
        rows: dict[str, dict[str, Any]] = {pid: _export_row(pid, None, None) for pid in ids}
        for row in rows.values():
            row["status"] = "…"
        writer = _Writer()
        live = None
        tty = sys.stdout.isatty() and not as_json
        if watch and tty:
            from rich.console import Console  # noqa: PLC0415
            from rich.live import Live  # noqa: PLC0415

            live = Live(_StatusBoard(rows, lock), console=Console(), refresh_per_second=8)

        def update(row: dict[str, Any]) -> None:
            with lock:
                rows[row["project_id"]] = row
            if not watch or tty:
                return
            if as_json:
                writer.out(json.dumps({"type": "status", **row}))
            else:
                detail = _status_detail(row)
                writer.out(
                    f"{row['project_id']} {row['status']}" + (f": {detail}" if detail else "")
                )

        async def follow(pid: str, limiter: anyio.CapacityLimiter) -> None:
            async with limiter:
                try:
                    if not watch:
                        update(_export_row(pid, await session.get_export(pid), None))
                        return
                    async for export in session.watch_export(pid, timeout=timeout):
                        update(_export_row(pid, export, None))
                except BabouError as exc:
                    update(_export_row(pid, None, exc))

        interrupt = _Interrupt()

        async def body() -> None:
            nonlocal interrupt
            limiter = anyio.CapacityLimiter(64)
            async with session:
                with _interruptible() as interrupt:
                    async with anyio.create_task_group() as tg:
                        for pid in ids:
                            tg.start_soon(follow, pid, limiter)

        if live is not None:
            live.start()
        try:
            _run(body)
        finally:
            writer.close()
            if live is not None:
                live.stop()
        final = [rows[pid] for pid in ids]
        if not watch:  # --watch printed (or drew) every transition already
            _print_rows(
                [{"type": "status", **r} for r in final]
                if as_json
                else [{**r, "detail": _status_detail(r)} for r in final],
                [("project_id", "Project"), ("status", "Status"), ("detail", "Detail")],
                as_json,
            )
        if interrupt.signum is not None:
            return interrupt.exit_code
        bad = [r for r in final if r["status"] in ("failed", "error", "none", "…")]
        return EXIT_FAILED if bad else EXIT_OK

    # -- demo ---------------------------------------------------------------------------

    @cli.command("demo")
    @click.option("--projects", type=click.IntRange(1, 1000), default=12, show_default=True)
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("babou-demo"),
        show_default=True,
        help="Directory for the videos.",
    )
    @click.option("--seed", type=int, help="Replay a run (the seed is printed).")
    @click.option(
        "--faults/--no-faults",
        default=True,
        show_default=True,
        help="Inject a light, recoverable fault mix (cut downloads, 429s).",
    )
    @click.option("--time-scale", type=click.FloatRange(min=0.01), default=1.0, hidden=True)
    @json_option
    @pass_config
    def demo_cmd(
        config: _Config,
        projects: int,
        out: Path,
        seed: int | None,
        faults: bool,
        time_scale: float,
        as_json: bool,
    ) -> int:
        """Run the whole job on a bundled simulator: no key, no network needed."""
        from ._demo import DemoReport, DemoTimings, run_demo  # noqa: PLC0415

        display = _make_display(as_json, projects)
        interrupt = _Interrupt()
        report: DemoReport | None = None

        async def body() -> None:
            nonlocal interrupt, report
            with _interruptible() as interrupt:
                report = await run_demo(
                    projects=projects,
                    out_dir=out,
                    seed=seed,
                    faults=faults,
                    timings=DemoTimings().scaled(time_scale),
                    progress=display.on_event,
                    note=display.note,
                    stage=display.stage,
                )

        aiohttp_log = logging.getLogger("aiohttp")
        level = aiohttp_log.level
        aiohttp_log.setLevel(logging.CRITICAL)  # the simulator's own cut connections
        try:
            with _showing(display, config.verbose):
                _run(body)
        finally:
            aiohttp_log.setLevel(level)
        if report is None:
            summary = display.tally.summary(interrupted=True, expected=projects, where=str(out))
            display.show_summary(summary)
            return interrupt.exit_code
        summary = display.tally.summary(where=str(report.out_dir))
        if as_json:
            data = summary.to_json()
            data.update(
                seed=report.seed,
                out_dir=str(report.out_dir),
                files=len(report.files),
                elapsed=report.elapsed,
                setup_seconds=report.setup_seconds,
                export_seconds=report.export_seconds,
                dropped_downloads=report.dropped_downloads,
                rate_limited=report.rate_limited,
            )
            _write_line(sys.stdout, json.dumps(data))
            return summary.exit_code
        display.show_summary(attrs.evolve(summary, elapsed=report.elapsed))
        lines = [
            f"{len(report.files)} videos, {_human_bytes(report.bytes)}, in {report.out_dir}",
            (
                f"Took {report.elapsed:.1f}s: {report.setup_seconds:.1f}s to create "
                f"{len(report.projects)} projects and render {report.chapters} prompts, "
                f"{report.export_seconds:.1f}s to export and download them all."
            ),
        ]
        if report.dropped_downloads or report.rate_limited:
            lines.append(
                f"Rode through {report.dropped_downloads} cut download(s) (resumed with Range) "
                f"and {report.rate_limited} rate limit(s) (429, retried)."
            )
        lines.append(f"Replay this run with: babou demo --seed {report.seed}")
        for line in lines:
            _write_line(sys.stdout, line)
        return summary.exit_code

    # -- simulate -----------------------------------------------------------------------

    @cli.command(
        "simulate",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
    @click.option("--seed", default="0", show_default=True, help="An integer, or 'random'.")
    @click.pass_context
    def simulate_cmd(ctx: click.Context, port: int, seed: str) -> int:
        """
        Serve the Babou simulator on this machine until Ctrl-C.

        It prints BABOU_BASE_URL=... and BABOU_API_KEY=... to point babou (or your code)
        at it. Further options (fault rates, timings...) are passed to the simulator:
        see `python -m babou_async.testing --help`.
        """
        from .testing import main as simulator_main  # noqa: PLC0415

        return simulator_main(["--port", str(port), "--seed", seed, *ctx.args])

    # -- thin wrappers of the rest of the API ------------------------------------------

    @cli.group("projects")
    def projects_group() -> None:
        """List and create projects."""

    @projects_group.command("list")
    @json_option
    @pass_config
    def projects_list(config: _Config, as_json: bool) -> int:
        """List the projects of this key."""
        session = config.session()

        async def body() -> list[dict[str, Any]]:
            async with session:
                return [
                    {
                        "id": p.id,
                        "name": p.name,
                        "description": p.description,
                        "active_export_id": p.active_export_id,
                        "created_at": _iso(p.created_at),
                    }
                    async for p in session.list_projects()
                ]

        rows = _run(body)
        _print_rows(
            rows,
            [
                ("id", "ID"),
                ("name", "Name"),
                ("created_at", "Created"),
                ("active_export_id", "Export"),
            ],
            as_json,
        )
        return EXIT_OK

    @projects_group.command("create")
    @click.argument("name")
    @click.option("--description", help="At most 1000 characters.")
    @json_option
    @pass_config
    def projects_create(config: _Config, name: str, description: str | None, as_json: bool) -> int:
        """Create a project and print its ID."""
        session = config.session()

        async def body() -> dict[str, Any]:
            async with session:
                p = await session.create_project(name, description=description)
            return {
                "id": p.id,
                "name": p.name,
                "description": p.description,
                "created_at": _iso(p.created_at),
            }

        _print_rows([_run(body)], [("id", "ID"), ("name", "Name")], as_json)
        return EXIT_OK

    @cli.group("chapters")
    def chapters_group() -> None:
        """List and create the chapters of a project."""

    def chapter_row(c: Any) -> dict[str, Any]:
        return {
            "id": c.id,
            "project_id": c.project_id,
            "name": c.name,
            "status": c.status_raw or (str(c.status) if c.status_raw is not None else None),
            "prompt_count": c.prompt_count,
            "duration": c.duration,
            "created_at": _iso(c.created_at),
        }

    chapter_columns = [
        ("id", "ID"),
        ("name", "Name"),
        ("status", "Status"),
        ("prompt_count", "Prompts"),
        ("duration", "Duration"),
    ]

    @chapters_group.command("list")
    @click.argument("project_id", metavar="PRJ")
    @json_option
    @pass_config
    def chapters_list(config: _Config, project_id: str, as_json: bool) -> int:
        """List a project's chapters with their status."""
        proto.check_project_id(project_id)
        session = config.session()

        async def body() -> list[dict[str, Any]]:
            async with session:
                return [chapter_row(c) for c in await session.list_chapters(project_id)]

        _print_rows(_run(body), chapter_columns, as_json)
        return EXIT_OK

    @chapters_group.command("create")
    @click.argument("project_id", metavar="PRJ")
    @click.argument("name")
    @click.option("--duration", type=click.IntRange(min=1), help="Seconds.")
    @json_option
    @pass_config
    def chapters_create(
        config: _Config, project_id: str, name: str, duration: int | None, as_json: bool
    ) -> int:
        """Add a chapter to a project and print its ID."""
        proto.check_project_id(project_id)
        session = config.session()

        async def body() -> dict[str, Any]:
            async with session:
                return chapter_row(
                    await session.create_chapter(project_id, name, duration=duration)
                )

        _print_rows([_run(body)], chapter_columns[:2], as_json)
        return EXIT_OK

    @cli.command("prompt")
    @click.argument("project_id", metavar="PRJ")
    @click.argument("chapter_id", metavar="CHT")
    @click.argument("text")
    @click.option("--force", is_flag=True, help="Replace a prompt still processing.")
    @click.option("--wait", is_flag=True, help="Wait until the chapter is ready.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=600.0,
        show_default=True,
        help="With --wait: deadline in seconds.",
    )
    @json_option
    @pass_config
    def prompt_cmd(
        config: _Config,
        project_id: str,
        chapter_id: str,
        text: str,
        force: bool,
        wait: bool,
        timeout: float,
        as_json: bool,
    ) -> int:
        """Submit a prompt to a chapter (and optionally wait for it)."""
        proto.check_project_id(project_id)
        proto.check_chapter_id(chapter_id)
        session = config.session()

        async def body() -> dict[str, Any]:
            async with session:
                sub = await session.submit_prompt(project_id, chapter_id, text, force=force)
                row: dict[str, Any] = {
                    "prompt_id": sub.prompt_id,
                    "status": sub.status_raw or str(sub.status),
                    "estimated_time": sub.estimated_time,
                }
                if wait:
                    chapter = await session.wait_for_chapter(
                        project_id, chapter_id, timeout=timeout, estimate=sub.estimated_seconds
                    )
                    row["chapter_status"] = chapter.status_raw or str(chapter.status)
                return row

        row = _run(body)
        columns = [("prompt_id", "Prompt"), ("status", "Status"), ("estimated_time", "Estimate")]
        if wait:
            columns.append(("chapter_status", "Chapter"))
        _print_rows([row], columns, as_json)
        return EXIT_FAILED if row.get("chapter_status") in ("error", "failed") else EXIT_OK

    @cli.group("assets")
    def assets_group() -> None:
        """Upload and list media assets."""

    def asset_row(a: Any) -> dict[str, Any]:
        return {
            "id": a.id,
            "name": a.name,
            "content_type": a.content_type,
            "size": a.size,
            "state": a.state_raw or str(a.state),
            "url": a.url,
            "created_at": _iso(a.created_at),
        }

    asset_columns = [
        ("id", "ID"),
        ("name", "Name"),
        ("content_type", "Type"),
        ("size", "Bytes"),
        ("state", "State"),
    ]

    @assets_group.command("upload")
    @click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
    @click.option("--content-type", help="MIME type (guessed from the extension by default).")
    @click.option("--wait", is_flag=True, help="Wait until the asset is ready.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=600.0,
        show_default=True,
        help="With --wait: deadline in seconds.",
    )
    @json_option
    @pass_config
    def assets_upload(
        config: _Config,
        file: Path,
        content_type: str | None,
        wait: bool,
        timeout: float,
        as_json: bool,
    ) -> int:
        """Upload a media file (streamed from disk)."""
        session = config.session()

        async def body() -> dict[str, Any]:
            async with session:
                asset = await session.upload_asset(file, content_type=content_type)
                if wait:
                    asset = await session.wait_for_asset(asset.id, timeout=timeout)
                return asset_row(asset)

        row = _run(body)
        _print_rows([row], asset_columns, as_json)
        return EXIT_FAILED if row["state"] in ("error", "failed") else EXIT_OK

    @assets_group.command("list")
    @click.option("--state", help="uploading, processing, ready or error.")
    @click.option("--content-type", help="Only this MIME type.")
    @json_option
    @pass_config
    def assets_list(
        config: _Config, state: str | None, content_type: str | None, as_json: bool
    ) -> int:
        """List uploaded assets."""
        session = config.session()

        async def body() -> list[dict[str, Any]]:
            async with session:
                return [
                    asset_row(a)
                    async for a in session.list_assets(state=state, content_type=content_type)
                ]

        _print_rows(_run(body), asset_columns, as_json)
        return EXIT_OK

    return cli


def _fail(message: str) -> None:
    sys.stderr.write(f"babou: error: {_redact(message)}\n")
    sys.stderr.flush()


class _StderrLogHandler(logging.Handler):
    """Warnings of commands without a live display: one ``warning: ...`` line each."""

    def __init__(self, writer: _Writer) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        self.writer.err(f"warning: {_redact(record.getMessage())}")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``babou`` command line.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 all ok, 1 some projects failed or an API error, 2 usage or
        configuration error, 130 interrupted.
    """
    try:
        import click  # noqa: PLC0415
        import rich  # noqa: F401, PLC0415
    except ImportError:
        sys.stderr.write(INSTALL_HINT + "\n")
        return EXIT_USAGE
    try:
        result = _invoke(argv)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("babou: interrupted\n")
        return EXIT_INTERRUPTED
    except BabouError as exc:
        _fail(str(exc) or type(exc).__name__)
        return _exit_code_for(exc)
    except OSError as exc:
        _fail(str(exc))
        return EXIT_FAILED
    return result if isinstance(result, int) else EXIT_OK


def _invoke(argv: Sequence[str] | None) -> object:
    """Run the click command tree with the library's warnings on stderr (flushed on return)."""
    handler = _StderrLogHandler(_Writer())
    level = _log.level
    _log.addHandler(handler)  # batch commands swap it for their display while they run
    _log.setLevel(logging.WARNING)  # -v lowers it to INFO
    try:
        cli = _build_cli()
        return cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="babou",
            standalone_mode=False,
        )
    finally:
        _log.removeHandler(handler)
        _log.setLevel(level)
        handler.writer.close()
