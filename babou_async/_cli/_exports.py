"""The batch commands: ``export``, ``download`` and ``status``."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import attrs
import click

from babou_async import BabouError, BabouSession, DownloadResult, ValidationError
from babou_async import _protocol as proto

from ._display import Display, make_display, print_rows, status_live
from ._input import read_ids
from ._options import (
    Settings,
    checked_ids,
    concurrency_option,
    global_options,
    json_option,
    out_option,
    overwrite_option,
    pass_settings,
    project_ids_argument,
    timeout_option,
)
from ._output import Writer, fail
from ._results import EXIT_FAILED, EXIT_OK, Outcome, describe_error
from ._rows import (
    STATUS_COLUMNS,
    StatusRow,
    failed_status_row,
    pending_status_row,
    status_detail,
    status_row,
)
from ._running import Interrupt, interruptible, run, showing

__all__ = ["download_cmd", "export_cmd", "status_cmd"]

#: Statuses after which ``status`` exits 1 (``…``: never heard of, e.g. interrupted).
_BAD_STATUSES = ("failed", "error", "none", "…")


def _display(settings: Settings, as_json: bool, total: int | None) -> Display:
    """The batch's display, as the global options (key to hide, base URL, quiet) make it."""
    return make_display(
        as_json, total, secret=settings.api_key, base_url=settings.base_url, quiet=settings.quiet
    )


async def _ids_then_file(
    ids: Sequence[str], from_file: str | None, problems: list[str], display: Display
) -> AsyncIterator[str]:
    """
    The IDs of the command line, then those of ``--from-file``.

    A malformed ID of the file fails alone: it is reported as that project's result
    (the command line's own IDs were checked before the batch began).
    """
    for pid in ids:
        yield pid
    if from_file is None:
        return
    async for pid in read_ids(from_file, problems):
        try:
            proto.check_project_id(pid)
        except ValidationError as exc:
            error = describe_error(exc, display.secret)
            display.on_outcome(
                Outcome(project_id=pid, ok=False, error=error, error_type=type(exc).__name__)
            )
            continue
        yield pid


@click.command("export")
@project_ids_argument(required=False)
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, allow_dash=True, exists=True),
    metavar="FILE|-",
    help="Also read project IDs from FILE ('-' for stdin), one or more per line.",
)
@out_option()
@concurrency_option("--concurrency", default=32, text="Exports followed at once.")
@concurrency_option("--download-concurrency", default=4, text="Downloads at once.")
@timeout_option(default=900.0, text="Per-project deadline (seconds) for the export to finish.")
@click.option("--no-start", is_flag=True, help="Only follow exports started elsewhere.")
@click.option(
    "--reuse-completed",
    is_flag=True,
    help="Download completed exports this batch did not start, instead of rendering anew "
    "(they may predate the latest chapters).",
)
@overwrite_option("Download again and replace existing videos.")
@json_option
@global_options
@pass_settings
def export_cmd(
    settings: Settings,
    project_ids: tuple[str, ...],
    from_file: str | None,
    out: Path,
    concurrency: int,
    download_concurrency: int,
    timeout: float,
    no_start: bool,
    reuse_completed: bool,
    overwrite: bool,
    as_json: bool,
) -> int:
    """
    Export projects and download each video as soon as it is ready.

    A re-run in the same --out directory does only what is left, even after a crash: it
    keeps a journal there (.babou-journal.sqlite3), never renders again an export it
    started, and resumes partial downloads.
    """
    if not project_ids and from_file is None:
        raise click.UsageError("give at least one project ID, or --from-file")
    ids = checked_ids(project_ids)
    session = settings.session()
    total = None if from_file is not None else len(dict.fromkeys(ids))
    display = _display(settings, as_json, total)
    interrupt = Interrupt()
    problems: list[str] = []

    async def body() -> None:
        async with session:
            with interruptible(interrupt):
                await session.export_many(
                    _ids_then_file(ids, from_file, problems, display),
                    out,
                    start=not no_start,
                    reuse="completed" if reuse_completed else None,
                    concurrency=concurrency,
                    download_concurrency=download_concurrency,
                    timeout=timeout,
                    overwrite=overwrite,
                    progress=display.on_event,
                )

    with showing(display, settings.verbose):
        run(body)
    summary = display.tally.summary(interrupted=interrupt.happened, expected=total, where=str(out))
    display.show_summary(summary)
    for problem in problems:
        fail(problem, settings.api_key)
    if interrupt.happened:
        return interrupt.exit_code
    return EXIT_FAILED if problems else summary.exit_code


@click.command("download")
@project_ids_argument(required=True)
@out_option()
@concurrency_option("--concurrency", default=4, text="Downloads at once.")
@overwrite_option("Replace existing videos.")
@json_option
@global_options
@pass_settings
def download_cmd(
    settings: Settings,
    project_ids: tuple[str, ...],
    out: Path,
    concurrency: int,
    overwrite: bool,
    as_json: bool,
) -> int:
    """Download the videos of completed exports."""
    ids = checked_ids(project_ids)
    session = settings.session()
    expected = len(dict.fromkeys(ids))
    display = _display(settings, as_json, expected)
    interrupt = Interrupt()

    def on_result(result: DownloadResult) -> None:
        # Reported as each download ends, so an interrupted run still knows exactly
        # what finished.
        display.on_outcome(
            Outcome.of_download(result, secret=settings.api_key, base_url=settings.base_url)
        )

    async def body() -> None:
        async with session:
            with interruptible(interrupt):
                await session.download_exports(
                    ids,
                    out,
                    concurrency=concurrency,
                    overwrite=overwrite,
                    progress=display.on_bytes,
                    on_result=on_result,
                )

    with showing(display, settings.verbose):
        run(body)
    summary = display.tally.summary(
        interrupted=interrupt.happened, expected=expected, where=str(out)
    )
    display.show_summary(summary)
    return interrupt.exit_code if interrupt.happened else summary.exit_code


@attrs.define(kw_only=True)
class _StatusRun:
    """
    One ``status`` run: the latest row of each project, read once or followed (``--watch``).

    Rows are replaced whole, under ``lock``, as rich's thread draws them on a terminal.
    Off a terminal, ``--watch`` prints each transition as a line (JSON with ``--json``).
    """

    session: BabouSession
    ids: list[str]
    watch: bool
    timeout: float
    as_json: bool
    lines: bool
    secret: str | None
    base_url: str | None = None
    writer: Writer = attrs.field(factory=Writer)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    rows: dict[str, StatusRow] = attrs.field()

    @rows.default
    def _pending(self) -> dict[str, StatusRow]:
        return {pid: pending_status_row(pid) for pid in self.ids}

    def update(self, row: StatusRow) -> None:
        """Record a project's new row (and print it, off a terminal with ``--watch``)."""
        with self.lock:
            self.rows[row["project_id"]] = row
        if not self.lines:
            return
        if self.as_json:
            self.writer.out(json.dumps({"type": "status", **row}))
        else:
            detail = status_detail(row)
            self.writer.out(
                f"{row['project_id']} {row['status']}" + (f": {detail}" if detail else "")
            )

    async def follow(self, pid: str, limiter: anyio.CapacityLimiter) -> None:
        """Read one project's export, or watch it until it is terminal."""
        async with limiter:
            try:
                if not self.watch:
                    self.update(status_row(pid, await self.session.get_export(pid), self.secret))
                    return
                async for export in self.session.watch_export(pid, timeout=self.timeout):
                    self.update(status_row(pid, export, self.secret))
            except BabouError as exc:
                self.update(failed_status_row(pid, exc, self.secret, self.base_url))

    async def follow_all(self, interrupt: Interrupt) -> None:
        """Follow every project, 64 at a time, until done or interrupted."""
        limiter = anyio.CapacityLimiter(64)
        async with self.session:
            with interruptible(interrupt):
                async with anyio.create_task_group() as tg:
                    for pid in self.ids:
                        tg.start_soon(self.follow, pid, limiter)

    def final(self) -> list[StatusRow]:
        """The last row of each project, in the order given."""
        return [self.rows[pid] for pid in self.ids]


@click.command("status")
@project_ids_argument(required=True)
@click.option("--watch", is_flag=True, help="Follow the transitions until all are terminal.")
@timeout_option(default=900.0, text="With --watch: per-project deadline in seconds.")
@json_option
@global_options
@pass_settings
def status_cmd(
    settings: Settings, project_ids: tuple[str, ...], watch: bool, timeout: float, as_json: bool
) -> int:
    """Show the export status of projects (a table; --watch follows it live)."""
    ids = list(dict.fromkeys(checked_ids(project_ids)))
    tty = sys.stdout.isatty() and not as_json
    status = _StatusRun(
        session=settings.session(),
        ids=ids,
        watch=watch,
        timeout=timeout,
        as_json=as_json,
        lines=watch and not tty and not settings.quiet,
        secret=settings.api_key,
        base_url=settings.base_url,
    )
    live = status_live(status.rows, status.lock) if watch and tty and not settings.quiet else None
    interrupt = Interrupt()
    if live is not None:
        live.start()
    try:
        run(lambda: status.follow_all(interrupt))
    finally:
        status.writer.close()
        if live is not None:
            live.stop()
    final = status.final()
    if not watch or settings.quiet:  # --watch printed (or drew) every transition already
        _print_status(final, as_json)
    if interrupt.happened:
        return interrupt.exit_code
    return EXIT_FAILED if any(r["status"] in _BAD_STATUSES for r in final) else EXIT_OK


def _print_status(rows: Sequence[StatusRow], as_json: bool) -> None:
    """The final table of ``status`` (without ``--watch``)."""
    if as_json:
        print_rows([{"type": "status", **r} for r in rows], STATUS_COLUMNS, as_json)
    else:
        print_rows([{**r, "detail": status_detail(r)} for r in rows], STATUS_COLUMNS, as_json)
