"""The commands that need no account: ``demo`` (the main job on a simulator) and ``simulate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from ._display import Display, make_display
from ._options import Settings, global_options, json_option, out_option, pass_settings
from ._output import write_line
from ._results import Summary, human_bytes
from ._running import Interrupt, interruptible, run, showing, silenced

if TYPE_CHECKING:
    from babou_async._demo import DemoReport

__all__ = ["demo_cmd", "simulate_cmd"]


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

    display = make_display(as_json, projects)
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
        _print_demo_text(report, summary, display)
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


def _print_demo_text(report: DemoReport, summary: Summary, display: Display) -> None:
    """The summary of ``demo``, then where the videos are, how long it took, how to replay."""
    display.show_summary(attrs.evolve(summary, elapsed=report.elapsed))
    lines = [
        f"{len(report.files)} videos, {human_bytes(report.bytes)}, in {report.out_dir}",
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
        write_line(sys.stdout, line)


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
    at it. Further options (fault rates, timings...) are passed to the simulator:
    see `python -m babou_async.testing --help`.
    """
    from babou_async.testing import main as simulator_main  # noqa: PLC0415 - as for demo

    return simulator_main(["--port", str(port), "--seed", seed, *ctx.args])
