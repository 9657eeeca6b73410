"""The commands that need no account: ``demo`` (the main job on a simulator) and ``simulate``."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from ._display import Display, make_display
from ._options import Settings, global_options, json_option, out_option, pass_settings
from ._output import write_line
from ._results import Summary, plural
from ._running import Interrupt, interruptible, run, showing, silenced

if TYPE_CHECKING:
    from babou_async._demo import DemoReport

__all__ = ["demo_cmd", "one_line_disconnects", "print_demo_text", "simulate_cmd"]


@click.command("demo")
@click.option("--projects", type=click.IntRange(1, 1000), default=12, show_default=True)
@out_option(default=Path("babou-demo"), text="Directory for the videos.")
@click.option("--seed", type=int, help="Replay a run (the seed is printed).")
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="Inject a light, recoverable fault mix (cut downloads, 429s).",
)
@click.option("--time-scale", type=click.FloatRange(min=0.01), default=1.0, hidden=True)
@json_option
@global_options
@pass_settings
def demo_cmd(
    settings: Settings,
    projects: int,
    out: Path,
    seed: int | None,
    faults: bool,
    time_scale: float,
    as_json: bool,
) -> int:
    """Run the whole job on a bundled simulator: no key, no network needed."""
    # The demo pulls in the simulator (and its aiohttp server): only this command needs it.
    from babou_async._demo import DemoTimings, run_demo  # noqa: PLC0415

    display = make_display(as_json, projects, quiet=settings.quiet)
    interrupt = Interrupt()
    report: DemoReport | None = None

    async def body() -> None:
        nonlocal report
        with interruptible(interrupt):
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

    # The simulator's own cut connections would be logged by aiohttp's server.
    with silenced("aiohttp"), showing(display, settings.verbose):
        run(body)
    if report is None:
        summary = display.tally.summary(interrupted=True, expected=projects, where=str(out))
        display.show_summary(summary)
        return interrupt.exit_code
    summary = display.tally.summary(where=str(report.out_dir))
    if as_json:
        _print_demo_json(report, summary)
    else:
        print_demo_text(report, summary, display, quiet=settings.quiet)
    return summary.exit_code


def _print_demo_json(report: DemoReport, summary: Summary) -> None:
    """The summary line of ``demo --json``, with the seed and the timings."""
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
    write_line(sys.stdout, json.dumps(data))


def print_demo_text(
    report: DemoReport, summary: Summary, display: Display, *, quiet: bool = False
) -> None:
    """
    The summary of ``demo`` (once: it says where the videos are), then how long, how to replay.

    With ``--quiet``, the summary only.
    """
    display.show_summary(attrs.evolve(summary, elapsed=report.elapsed))
    if quiet:
        return
    lines = [
        (
            f"Took {report.elapsed:.1f}s: {report.setup_seconds:.1f}s to create "
            f"{plural(len(report.projects), 'project')} and render "
            f"{plural(report.chapters, 'prompt')}, "
            f"{report.export_seconds:.1f}s to export and download "
            f"{'it' if len(report.projects) == 1 else 'them all'}."
        ),
    ]
    rode = [
        plural(report.dropped_downloads, "cut download") + " (resumed with Range)"
        if report.dropped_downloads
        else "",
        plural(report.rate_limited, "rate limit") + " (429, retried)"
        if report.rate_limited
        else "",
    ]
    if any(rode):
        lines.append(f"Rode through {' and '.join(text for text in rode if text)}.")
    lines.append(f"Replay this run with: babou demo --seed {report.seed}")
    for line in lines:
        display.epilogue(line)


# No global options here: everything after `simulate` that it does not know goes to the
# simulator, which has its own --api-key (the key it accepts) and -v (log each request).
@click.command(
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
    at it; a client that disconnects mid-response is logged in one line. Further options
    (fault rates, timings...) are passed to the simulator: see
    `python -m babou_async.testing --help`.
    """
    from babou_async.testing import main as simulator_main  # noqa: PLC0415 - as for demo

    with one_line_disconnects():
        return simulator_main(["--port", str(port), "--seed", seed, *ctx.args])


class _DisconnectFilter(logging.Filter):
    """
    A client that hangs up mid-response is one line, not aiohttp's traceback.

    Clients do that all the time (a cancelled download, Ctrl-C): it is worth a line in
    the simulator's log, never a stack of frames.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ConnectionError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.msg = "client %s disconnected before the response ended (%s)"
            record.args = (peer or "?", str(error) or type(error).__name__)
            record.exc_info = record.exc_text = None
        return True


@contextlib.contextmanager
def one_line_disconnects() -> Iterator[None]:
    """Log client disconnects in one line (see :class:`_DisconnectFilter`) in the body."""
    log = logging.getLogger("aiohttp.server")
    only = _DisconnectFilter()
    log.addFilter(only)
    try:
        yield
    finally:
        log.removeFilter(only)
