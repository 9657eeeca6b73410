"""
The rendering: progress of a batch (plain lines, JSON lines, or rich's live display) and tables.

The displays are called from the event loop and never block: they update a
:class:`~._results.Tally` under a short lock and queue their output on the
:class:`~._output.Writer` thread; rich redraws the live parts from its own thread.

On a terminal a batch is one :class:`rich.progress.Progress`: an overall row (projects
done and failed, bytes including the downloads in flight, throughput, time remaining)
under a line of counts per status, retries and cut downloads, and one row per active
download. A finished download's row disappears into the overall one; a failure is printed
as a line above the display, and stays.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from babou_async import ExportEvent

from ._output import Writer, write_line
from ._results import PHASES, Outcome, Snapshot, Summary, Tally, human_bytes, plural
from ._rows import Columns, StatusRow, status_detail

__all__ = [
    "Display",
    "JsonDisplay",
    "OverallProgress",
    "RichDisplay",
    "StatusBoard",
    "Waiter",
    "make_display",
    "make_waiter",
    "print_rows",
    "status_live",
]

_PHASE_STYLES = {
    "queued": "yellow",
    "processing": "cyan",
    "completed": "blue",
    "downloading": "magenta",
    "unknown": "dim",
}
_STATUS_STYLES = {"completed": "green", "failed": "red", "error": "red", "none": "dim"}


class Display:
    """
    Progress of a batch (export, download, demo); this base prints plain lines.

    The ``on_*`` methods are called from the event loop and never block: they update the
    tally under a short lock and queue output on the writer thread. With ``quiet`` only the
    results are printed: no transition, no note, no log line.
    """

    def __init__(
        self,
        writer: Writer,
        *,
        secret: str | None = None,
        total: int | None = None,
        quiet: bool = False,
    ) -> None:
        self.writer = writer
        self.tally = Tally(total)
        #: The API key, hidden in every error and warning shown.
        self.secret = secret
        #: The API root, to phrase a 404 (see :func:`~._results.describe_error`).
        self.base_url: str | None = None
        self.quiet = quiet
        #: ``-v``: show the library's informational log lines too.
        self.verbose = 0

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
            self.on_outcome(
                Outcome.of_export(event.result, secret=self.secret, base_url=self.base_url)
            )

    def on_bytes(self, project_id: str, done: int, total: int | None) -> None:
        """Receive download progress (a ``ProgressCallback``)."""
        with self.tally.lock:
            phase = self.tally.phase.get(project_id)
            if project_id in self.tally.outcomes or phase == "failed":
                return  # a late chunk of a download already over
            first = phase != "downloading"
            self.tally.phase[project_id] = "downloading"
            self.tally.inflight[project_id] = (done, total)
        if first:
            self.download_started(project_id, total)
        self.download_progress(project_id, done, total)

    def on_outcome(self, outcome: Outcome) -> None:
        """Record a project's final result."""
        with self.tally.lock:
            self.tally.phase.pop(outcome.project_id, None)
            self.tally.inflight.pop(outcome.project_id, None)
            self.tally.outcomes[outcome.project_id] = outcome
        self.finished(outcome)

    def on_log(self, level: int, kind: str | None, text: str) -> None:
        """
        Receive one of the library's log records (already redacted).

        ``kind`` is ``"retry"`` (a request or a poll retried) or ``"cut"`` (a download
        interrupted and resumed): those are counted. The line is shown if it is a warning,
        or with ``-v``, and never with ``--quiet``.
        """
        with self.tally.lock:
            if kind == "retry":
                self.tally.retries += 1
            elif kind == "cut":
                self.tally.cut_downloads += 1
        if not self.quiet and (level >= logging.WARNING or self.verbose):
            self.show_log(level, kind, text)

    def show_log(self, level: int, kind: str | None, text: str) -> None:
        """Show a log line: plain output prints each one on stderr, prefixed with its level."""
        del kind
        self.writer.err(f"{logging.getLevelName(level).lower()}: {text}")

    def note(self, text: str) -> None:
        """A milestone worth a line."""
        if not self.quiet:
            self.writer.out(text)

    def stage(self, text: str) -> None:
        """What is going on now (shown on the live line only)."""
        with self.tally.lock:
            self.tally.activity = text

    def show_summary(self, summary: Summary) -> None:
        """Print the summary (after :meth:`stop`)."""
        write_line(sys.stdout, summary.text())

    def epilogue(self, text: str) -> None:
        """A line after the summary (after :meth:`stop`)."""
        write_line(sys.stdout, text)

    # rendering hooks
    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.tally.started:6.1f}s]"

    def status_changed(self, project_id: str, status: str) -> None:
        """A project's export entered ``status``."""
        if not self.quiet:
            self.writer.out(f"{self._stamp()} {project_id} {status}")

    def download_started(self, project_id: str, total: int | None) -> None:
        """A project's download began (``total`` bytes, if known)."""
        if not self.quiet:
            size = f" ({human_bytes(total)})" if total is not None else ""
            self.writer.out(f"{self._stamp()} {project_id} downloading{size}")

    def download_progress(self, project_id: str, done: int, total: int | None) -> None:
        """Plain output prints no line per chunk."""

    def finished(self, outcome: Outcome) -> None:
        """A project is done, one way or another."""
        pid = outcome.project_id
        if outcome.skipped:
            text = f"skipped, already complete: {outcome.path}"
        elif outcome.ok:
            text = f"ok {human_bytes(outcome.bytes)} -> {outcome.path}"
        else:
            text = f"FAILED: {outcome.error}"
        self.writer.out(f"{self._stamp()} {pid} {text}")


class JsonDisplay(Display):
    """``--json``: one JSON object per result on stdout; notes and warnings on stderr."""

    def note(self, text: str) -> None:
        """Notes go to stderr, so that stdout stays parseable."""
        if not self.quiet:
            self.writer.err(text)

    def status_changed(self, project_id: str, status: str) -> None:
        """No line per transition."""

    def download_started(self, project_id: str, total: int | None) -> None:
        """No line per download."""

    def finished(self, outcome: Outcome) -> None:
        """One ``"type": "result"`` line."""
        self.writer.out(json.dumps(outcome.to_json()))

    def show_summary(self, summary: Summary) -> None:
        """One ``"type": "summary"`` line."""
        write_line(sys.stdout, json.dumps(summary.to_json()))


class _BytesColumn(ProgressColumn):
    """``2.1 MB/4.0 MB``; ``~`` marks an estimated total (the overall row's)."""

    def render(self, task: Task) -> Text:
        done = human_bytes(task.completed)
        if task.total is None:
            return Text(done, style="progress.download")
        approx = "~" if task.fields.get("approx") else ""
        return Text(f"{done}/{approx}{human_bytes(task.total)}", style="progress.download")


def batch_progress(console: Console) -> Progress:
    """The rows of a batch on a terminal: the overall one first, then one per download."""
    return Progress(
        TextColumn("{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None),
        _BytesColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        expand=False,
        speed_estimate_period=10,
    )


class OverallProgress:
    """
    The overall row of a batch (a task of ``progress``) and the line of counts above it.

    Rendered by rich's thread, which is also the only one to move the overall task: on
    each refresh it reads a :class:`~._results.Snapshot` of the tally.
    """

    def __init__(self, tally: Tally, progress: Progress) -> None:
        self.tally = tally
        self.progress = progress
        self.task_id = progress.add_task("", total=None)
        self.task = progress.tasks[-1]

    def sync(self) -> Snapshot:
        """Move the overall task to the tally's figures; return them."""
        snap = self.tally.snapshot()
        counts = snap.counts
        description = f"[bold]{snap.done}/{snap.total}[/] done"
        if counts["failed"]:
            description += f" ([bold red]{counts['failed']} failed[/])"
        expected = snap.bytes_expected
        if expected is not None and expected != self.task.total:
            # Set directly: Progress.update(total=...) would forget the speed samples,
            # and the estimate changes with every size learned.
            self.task.total = max(expected, snap.bytes_done)
            if snap.bytes_done < self.task.total:
                self.task.finished_time = None
        self.progress.update(
            self.task_id,
            completed=snap.bytes_done,
            description=description,
            approx=not snap.bytes_exact,
        )
        return snap

    def counts_line(self, snap: Snapshot) -> Text:
        """``12 projects  queued 2  processing 3 ... 2 retries  1 cut download  4.2s``."""
        line = Text()
        line.append(plural(snap.total, "project"), style="bold")
        for phase in PHASES:
            # "completed" on the server, not downloaded yet: "ready" (to download).
            label = "ready" if phase == "completed" else phase
            self._count(line, f"{label} {snap.counts[phase]}", snap.counts[phase], phase)
        if snap.counts["skipped"]:
            self._count(line, f"{snap.counts['skipped']} already saved", 1, "unknown")
        self._count(line, plural(snap.retries, "retry", "retries"), snap.retries, "queued")
        self._count(line, plural(snap.cut_downloads, "cut download"), snap.cut_downloads, "queued")
        line.append(f"  {time.monotonic() - self.tally.started:.1f}s", style="dim")
        if snap.activity:
            line.append(f"  · {snap.activity}", style="italic")
        return line

    @staticmethod
    def _count(line: Text, text: str, count: int, phase: str) -> None:
        """Append ``text`` to the line, unless ``count`` is zero."""
        if count:
            line.append("  ")
            line.append(text, style=_PHASE_STYLES[phase])

    def __rich__(self) -> RenderableType:
        return Group(self.counts_line(self.sync()), self.progress)


class RichDisplay(Display):
    """The terminal display: a line of counts, an overall row, and one row per download."""

    def __init__(
        self, writer: Writer, console: Console, total: int | None, *, secret: str | None = None
    ) -> None:
        super().__init__(writer, secret=secret, total=total)
        self.console = console
        self.progress = batch_progress(console)
        self.overall = OverallProgress(self.tally, self.progress)
        self.bars: dict[str, TaskID] = {}
        self.live = Live(
            self.overall,
            console=console,
            refresh_per_second=10,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        """Start the live display."""
        self.live.start()

    def stop(self) -> None:
        """Flush every queued line, then take the live display down."""
        self.writer.close()
        self.live.stop()

    def _print(self, markup: str) -> None:
        console = self.console
        # Wrapped by rich at word boundaries, above the live display.
        self.writer.call(lambda: console.print(markup, highlight=False))

    def note(self, text: str) -> None:
        """A milestone, bulleted."""
        self._print(f"[bold cyan]•[/] {escape(text)}")

    def show_log(self, level: int, kind: str | None, text: str) -> None:
        """
        A log line, dimmed, above the display: the library rides through most of them.

        Retries and cut downloads are counted on the overall line instead (shown with
        ``-v``), so that they do not pile up between the bars.
        """
        if kind is None or self.verbose:
            mark = "↻" if level < logging.WARNING else "!"
            self._print(f"[yellow dim]{mark} {escape(text)}[/]")

    def show_summary(self, summary: Summary) -> None:
        """The summary, red if anything failed."""
        style = "bold red" if summary.failed else "yellow" if summary.interrupted else "bold green"
        self.console.print(summary.text(), style=style, highlight=False)

    def epilogue(self, text: str) -> None:
        """A line after the summary, wrapped at word boundaries."""
        self.console.print(text, highlight=False, markup=False)

    def status_changed(self, project_id: str, status: str) -> None:
        """A failed export loses its bar."""
        if status == "failed":
            self._drop_bar(project_id)

    def download_started(self, project_id: str, total: int | None) -> None:
        """A new bar."""
        self.bars[project_id] = self.progress.add_task(f"  {escape(project_id)}", total=total)

    def download_progress(self, project_id: str, done: int, total: int | None) -> None:
        """Move the project's bar."""
        task = self.bars.get(project_id)
        if task is not None:
            self.progress.update(task, completed=done, total=total)

    def _drop_bar(self, project_id: str) -> None:
        task = self.bars.pop(project_id, None)
        if task is not None:
            self.progress.remove_task(task)

    def finished(self, outcome: Outcome) -> None:
        """Drop the bar into the overall row; a failure is printed, and stays."""
        self._drop_bar(outcome.project_id)
        if not outcome.ok:
            pid = escape(outcome.project_id)
            self._print(f"[bold red]✗[/] {pid}  [red]{escape(outcome.error or 'failed')}[/]")


def make_display(
    as_json: bool,
    total: int | None = None,
    *,
    secret: str | None = None,
    base_url: str | None = None,
    quiet: bool = False,
) -> Display:
    """Pick the display: JSON, rich on a terminal, plain lines otherwise (or with ``quiet``)."""
    writer = Writer()
    display: Display
    if as_json:
        display = JsonDisplay(writer, secret=secret, total=total, quiet=quiet)
    elif sys.stdout.isatty() and not quiet:
        display = RichDisplay(writer, Console(), total, secret=secret)
    else:
        display = Display(writer, secret=secret, total=total, quiet=quiet)
    display.base_url = base_url
    return display


class Waiter:
    """
    A spinner with the elapsed time while a command waits (``prompt --wait``...).

    Drawn by rich on standard error when it is a terminal (``console``); without a
    console it draws nothing, so that a pipe or a log gets no extra line.
    """

    def __init__(self, console: Console | None, text: str) -> None:
        self.progress: Progress | None = None
        if console is not None:
            self.progress = Progress(
                SpinnerColumn(),
                # Cut short rather than wrapped: the spinner and the time stay on one line.
                TextColumn("{task.description}", table_column=Column(no_wrap=True)),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                # Log lines (stderr) go above the spinner; stdout is for the results only.
                redirect_stdout=False,
            )
            self.task_id = self.progress.add_task(text, total=None)

    def show(self, text: str) -> None:
        """Say what is awaited now (thread-safe: call it from the event loop)."""
        if self.progress is not None:
            self.progress.update(self.task_id, description=text)

    def __enter__(self) -> None:
        if self.progress is not None:
            self.progress.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.stop()


def make_waiter(text: str, *, quiet: bool = False) -> Waiter:
    """A :class:`Waiter` on standard error if it is a terminal (and not ``quiet``)."""
    console = Console(stderr=True) if sys.stderr.isatty() and not quiet else None
    return Waiter(console, text)


class StatusBoard:
    """The ``status --watch`` table, rendered live by rich's thread."""

    def __init__(self, rows: Mapping[str, StatusRow], lock: threading.Lock) -> None:
        self.rows = rows
        self.lock = lock

    def __rich__(self) -> RenderableType:
        table = Table("Project", "Status", "Detail", header_style="bold")
        with self.lock:
            rows = list(self.rows.values())
        for row in rows:
            status = row["status"]
            table.add_row(
                row["project_id"],
                f"[{_STATUS_STYLES.get(status, 'yellow')}]{status}[/]",
                status_detail(row),
            )
        return table


def status_live(rows: Mapping[str, StatusRow], lock: threading.Lock) -> Live:
    """The live ``status --watch`` board on the terminal (not started)."""
    return Live(StatusBoard(rows, lock), console=Console(), refresh_per_second=8)


def print_rows(rows: Sequence[Mapping[str, object]], columns: Columns, as_json: bool) -> None:
    """Print records: JSON lines, a rich table on a terminal, or tab-separated lines."""
    if as_json:
        for row in rows:
            write_line(sys.stdout, json.dumps(row, default=str))
        return
    cells = [["" if row.get(k) is None else str(row[k]) for k, _ in columns] for row in rows]
    if sys.stdout.isatty():
        table = Table(*(title for _, title in columns), header_style="bold")
        for line in cells:
            table.add_row(*line)
        Console().print(table)
        return
    for line in cells:
        write_line(sys.stdout, "\t".join(line))
