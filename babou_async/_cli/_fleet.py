"""
The fleet commands: ``enqueue`` (export jobs into a queue) and ``worker`` (run them).

Both need the ``saq`` extra (SAQ and redis-py); without it they say how to install it.
``enqueue`` needs no API key: jobs carry project IDs and options only, and each worker
reads the key from its own environment.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import attrs
import click

from babou_async import ConfigurationError, ExportEvent, ExportStatus, RateLimit

from ._display import Display, make_display
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
from ._output import Writer, fail, write_line
from ._results import EXIT_FAILED, EXIT_OK, Outcome, plural
from ._running import Interrupt, interruptible, run, showing

__all__ = ["enqueue_cmd", "worker_cmd"]

F = TypeVar("F", bound=Callable[..., object])

INSTALL_HINT = "the fleet commands need SAQ and redis: pip install 'babou_async[saq]'"

#: What a job's SAQ status means on the live line: waiting for a worker, or on one.
_PHASES = {"queued": ExportStatus.QUEUED, "active": ExportStatus.PROCESSING}
_OUTCOME_FIELDS = frozenset(attrs.fields_dict(Outcome))


def _fleet() -> ModuleType:
    """The SAQ integration, or a configuration error naming the extra to install."""
    try:
        from babou_async.contrib import saq  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise ConfigurationError(INSTALL_HINT) from None
    return saq


def queue_option(func: F) -> F:
    """``--queue URL`` (or ``BABOU_QUEUE_URL``): the fleet's Redis."""
    return click.option(
        "--queue",
        "queue_url",
        envvar="BABOU_QUEUE_URL",
        required=True,
        metavar="URL",
        help="The queue's Redis: redis://host:port/db or unix:///path/redis.sock "
        "(env BABOU_QUEUE_URL).",
    )(func)


def outcome_of(result: dict[str, Any]) -> Outcome:
    """The :class:`Outcome` of a job's result (the ``--json`` line of ``babou export``)."""
    return Outcome(**{k: v for k, v in result.items() if k in _OUTCOME_FIELDS})


async def _all_ids(ids: Sequence[str], from_file: str | None, problems: list[str]) -> list[str]:
    found = list(ids)
    if from_file is not None:
        found += [pid async for pid in read_ids(from_file, problems)]
    return list(dict.fromkeys(checked_ids(found)))


@attrs.define
class _EnqueueRun:
    """One ``enqueue``: what was read, what was enqueued, what came back."""

    queue_url: str
    options: dict[str, Any]
    wait: bool
    display: Display | None
    interrupt: Interrupt = attrs.field(factory=Interrupt)
    ids: list[str] = attrs.field(factory=list)
    states: list[Any] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    async def __call__(self, ids: Sequence[str], from_file: str | None) -> None:
        saq = _fleet()
        queue = saq.open_queue(self.queue_url)
        self.ids = await _all_ids(ids, from_file, self.problems)
        await queue.connect()
        try:
            self.states = await saq.enqueue_exports(queue, self.ids, **self.options)
            if self.display is not None:
                with interruptible(self.interrupt):
                    await saq.wait_for_results(
                        queue, self.ids, on_result=self.on_result, on_status=self.on_status
                    )
        finally:
            await queue.disconnect()

    def on_result(self, result: dict[str, Any]) -> None:
        """A project is done: its line, as ``babou export`` prints it."""
        if self.display is not None:
            self.display.on_outcome(outcome_of(result))

    def on_status(self, project_id: str, status: str) -> None:
        """A job moved (queued, active): the live line counts it."""
        phase = _PHASES.get(status)
        if self.display is not None and phase is not None:
            self.display.on_event(ExportEvent(project_id=project_id, kind="status", status=phase))


def _print_enqueued(states: Sequence[Any], as_json: bool) -> None:
    """Without ``--wait``: one JSON line per project, or one sentence."""
    if as_json:
        for state in states:
            line = {"type": "enqueued", "project_id": state.project_id, "state": state.state}
            write_line(sys.stdout, json.dumps(line))
        return
    counts = {s: sum(1 for x in states if x.state == s) for s in ("queued", "pending", "done")}
    write_line(
        sys.stdout,
        f"Enqueued {plural(counts['queued'], 'export')}; {counts['pending']} already queued "
        f"or running, {counts['done']} already done.",
    )


@click.command("enqueue")
@project_ids_argument(required=False)
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, allow_dash=True, exists=True),
    metavar="FILE|-",
    help="Also read project IDs from FILE ('-' for stdin), one or more per line.",
)
@queue_option
@click.option("--wait", is_flag=True, help="Follow the jobs to the end, one line per project.")
@timeout_option(default=900.0, text="Per-project deadline (seconds) for the export to finish.")
@click.option("--no-start", is_flag=True, help="Only follow exports started elsewhere.")
@click.option(
    "--reuse-completed",
    is_flag=True,
    help="Download completed exports the fleet did not start, instead of rendering anew.",
)
@overwrite_option("Download again and replace videos on the workers' disks.")
@json_option
@global_options
@pass_settings
def enqueue_cmd(
    settings: Settings,
    project_ids: tuple[str, ...],
    from_file: str | None,
    queue_url: str,
    wait: bool,
    timeout: float,
    no_start: bool,
    reuse_completed: bool,
    overwrite: bool,
    as_json: bool,
) -> int:
    """
    Enqueue export jobs for a fleet of `babou worker`s (idempotent).

    A project whose job is queued or running gets no second one; one already exported is
    not exported again. With --wait, follow the jobs and print one line per project, as
    `babou export` does, and exit 0 / 1 like it.
    """
    if not project_ids and from_file is None:
        raise click.UsageError("give at least one project ID, or --from-file")
    checked_ids(project_ids)
    _fleet()
    total = None if from_file is not None else len(dict.fromkeys(project_ids))
    options = {
        "start": not no_start,
        "reuse": "completed" if reuse_completed else None,
        "timeout": timeout,
        "overwrite": overwrite,
    }
    display = make_display(as_json, total, secret=settings.api_key) if wait else None
    job = _EnqueueRun(queue_url, options, wait, display)
    if display is None:
        run(lambda: job(project_ids, from_file))
        _print_enqueued(job.states, as_json)
        return _problems(job.problems, settings)
    with showing(display, settings.verbose):
        run(lambda: job(project_ids, from_file))
    summary = display.tally.summary(interrupted=job.interrupt.happened, expected=len(job.ids))
    display.show_summary(summary)
    if job.interrupt.happened:
        return job.interrupt.exit_code
    return _problems(job.problems, settings) or summary.exit_code


def _problems(problems: list[str], settings: Settings) -> int:
    for problem in problems:
        fail(problem, settings.api_key)
    return EXIT_FAILED if problems else EXIT_OK


@attrs.define
class _WorkerRun:
    """One ``worker``: its display and its count of jobs."""

    display: Display
    started: float = attrs.field(factory=time.monotonic)

    def on_result(self, result: dict[str, Any]) -> None:
        """A job ended on this worker: its line."""
        self.display.on_outcome(outcome_of(result))


async def _serve(worker: Any, note: Callable[[str], None]) -> None:
    saq = _fleet()
    note(f"worker {worker.id} waiting for jobs (SIGTERM or Ctrl-C to stop)")
    await saq.run_worker(worker)


@click.command("worker")
@queue_option
@out_option()
@concurrency_option("--concurrency", default=16, text="Jobs (projects) run at once.")
@concurrency_option("--download-concurrency", default=4, text="Downloads at once.")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="RPS",
    help="The API key's request limit, for the whole fleet (shared through the queue's "
    "Redis); without it the fleet finds the limit.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, time the running jobs get to finish before they go back to the queue.",
)
@global_options
@pass_settings
def worker_cmd(
    settings: Settings,
    queue_url: str,
    out: Path,
    concurrency: int,
    download_concurrency: int,
    rate_limit: float | None,
    grace: float,
) -> int:
    """
    Run export jobs from the queue until SIGTERM or Ctrl-C, videos into --out.

    On SIGTERM the running jobs get --grace seconds to finish; the others go back to the
    queue, and another worker adopts their exports (no second render). A worker that dies
    (kill -9, power loss) has its jobs picked up by the others within seconds.
    """
    saq = _fleet()
    session = settings.session()  # checks the key (and the options) before anything runs
    poll = session.poll if settings.poll_interval is not None else None
    display = Display(Writer(), secret=settings.api_key)
    state = _WorkerRun(display)
    worker = saq.make_worker(
        queue_url,
        out,
        api_key=settings.api_key,
        base_url=settings.base_url,
        rate_limit=RateLimit(requests_per_second=rate_limit) if rate_limit else None,
        poll=poll,
        concurrency=concurrency,
        download_concurrency=download_concurrency,
        shutdown_grace=grace,
        on_result=state.on_result,
    )
    with showing(display, settings.verbose):
        run(lambda: _serve(worker, display.note))
    summary = display.tally.summary(where=str(out))
    display.show_summary(summary)
    return EXIT_OK
