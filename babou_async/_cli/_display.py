"""
The rendering: progress of a batch (plain lines, JSON lines, or rich's live display) and tables.

The displays are called from the event loop and never block: they update a
:class:`~._results.Tally` under a short lock and queue their output on the
:class:`~._output.Writer` thread; rich redraws the live parts from its own thread.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from babou_async import ExportEvent

from ._output import Writer, write_line
from ._results import PHASES, Outcome, Summary, Tally, human_bytes
from ._rows import Columns, StatusRow, status_detail

__all__ = [
    "Display",
    "JsonDisplay",
    "OverallLine",
    "RichDisplay",
    "StatusBoard",
    "make_display",
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
    tally under a short lock and queue output on the writer thread.
    """

    def __init__(self, writer: Writer, *, secret: str | None = None) -> None:
        self.writer = writer
        self.tally = Tally()
        #: The API key, hidden in every error and warning shown.
        self.secret = secret

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
            self.on_outcome(Outcome.of_export(event.result, secret=self.secret))

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

    def on_outcome(self, outcome: Outcome) -> None:
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

    def show_summary(self, summary: Summary) -> None:
        """Print the summary (after :meth:`stop`)."""
        write_line(sys.stdout, summary.text())

    # rendering hooks
    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.tally.started:6.1f}s]"

    def status_changed(self, project_id: str, status: str) -> None:
        """A project's export entered ``status``."""
        self.writer.out(f"{self._stamp()} {project_id} {status}")

    def download_started(self, project_id: str, total: int | None) -> None:
        """A project's download began (``total`` bytes, if known)."""
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


class OverallLine:
    """The live line: counts per status, bytes, elapsed time (rendered by rich's thread)."""

    def __init__(self, tally: Tally, total: int | None) -> None:
        self.tally = tally
        self.total = total

    def __rich__(self) -> RenderableType:
        counts = self.tally.counts()
        with self.tally.lock:
            activity = self.tally.activity
        seen = sum(counts[p] for p in PHASES) + counts["ok"] + counts["failed"]
        seen += counts["skipped"]
        line = Text()
        line.append(f"{self.total if self.total is not None else seen} projects", style="bold")
        for phase in PHASES:
            # "completed" on the server, not downloaded yet: "ready" (to download).
            label = "ready" if phase == "completed" else phase
            self._count(line, label, counts[phase], _PHASE_STYLES[phase])
        line.append("  ")
        line.append(f"ok {counts['ok']}", style="green")
        self._count(line, "failed", counts["failed"], "bold red")
        self._count(line, "skipped", counts["skipped"], "dim")
        line.append(f"  {human_bytes(counts['bytes'])}", style="dim")
        line.append(f"  {time.monotonic() - self.tally.started:.1f}s", style="dim")
        if activity:
            line.append(f"  · {activity}", style="italic")
        return line

    @staticmethod
    def _count(line: Text, label: str, count: int, style: str) -> None:
        """Append ``label count`` to the line, unless the count is zero."""
        if count:
            line.append("  ")
            line.append(f"{label} {count}", style=style)


class RichDisplay(Display):
    """The terminal display: a live overall line and one bar per active download."""

    def __init__(
        self, writer: Writer, console: Console, total: int | None, *, secret: str | None = None
    ) -> None:
        super().__init__(writer, secret=secret)
        self.console = console
        self.progress = Progress(
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
            Group(OverallLine(self.tally, total), self.progress),
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
        self.writer.call(lambda: console.print(markup, highlight=False, soft_wrap=True))

    def note(self, text: str) -> None:
        """A milestone, bulleted."""
        self._print(f"[bold cyan]•[/] {escape(text)}")

    def warn(self, text: str) -> None:
        """A warning, dimmed: the library rides through most of them."""
        self._print(f"[yellow dim]↻ {escape(text)}[/]")

    def show_summary(self, summary: Summary) -> None:
        """The summary, red if anything failed."""
        style = "bold red" if summary.failed else "yellow" if summary.interrupted else "bold green"
        self.console.print(summary.text(), style=style, highlight=False)

    def status_changed(self, project_id: str, status: str) -> None:
        """A failed export loses its bar."""
        if status == "failed":
            self._drop_bar(project_id)

    def download_started(self, project_id: str, total: int | None) -> None:
        """A new bar."""
        self.bars[project_id] = self.progress.add_task(project_id, total=total)

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
        """Drop the bar and print the project's line."""
        self._drop_bar(outcome.project_id)
        pid = escape(outcome.project_id)
        if outcome.skipped:
            self._print(f"[dim]↷ {pid}  already complete  {escape(str(outcome.path))}[/]")
        elif outcome.ok:
            self._print(
                f"[green]✓[/] {pid}  {human_bytes(outcome.bytes):>8}  "
                f"[dim]{escape(str(outcome.path))}[/]"
            )
        else:
            self._print(f"[bold red]✗[/] {pid}  [red]{escape(outcome.error or 'failed')}[/]")


def make_display(as_json: bool, total: int | None = None, *, secret: str | None = None) -> Display:
    """Pick the display: JSON, rich on a terminal, plain lines otherwise."""
    writer = Writer()
    if as_json:
        return JsonDisplay(writer, secret=secret)
    if sys.stdout.isatty():
        return RichDisplay(writer, Console(), total, secret=secret)
    return Display(writer, secret=secret)


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
