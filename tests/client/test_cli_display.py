"""
The terminal side of ``babou``: the overall progress row, log lines counted, the spinner.

Rendered in process on rich Consoles forced to a terminal at fixed widths (80 and 140
columns), and asserted on the text; nothing here starts a subprocess.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from babou_async import (
    ConflictError,
    ExportEvent,
    ExportFailedError,
    ExportResult,
    ExportStatus,
    NotFoundError,
    ValidationError,
)
from babou_async._cli._display import (
    Display,
    JsonDisplay,
    RichDisplay,
    Waiter,
    make_display,
    make_waiter,
)
from babou_async._cli._output import Writer
from babou_async._cli._results import Tally, describe_error, plural
from babou_async._cli._running import log_kind, showing
from babou_async._cli._simulate import one_line_disconnects

WIDTHS = [80, 140]
PIDS = [f"prj_{chr(ord('a') + i) * 21}" for i in range(12)]
MB = 1_000_000


def _result(pid: str, *, ok: bool = True, skipped: bool = False) -> ExportResult:
    """A final export result: saved (2.5 MB), skipped, or failed with `render crashed`."""
    return ExportResult(
        project_id=pid,
        status=ExportStatus.COMPLETED if ok else ExportStatus.FAILED,
        path=Path(f"out/{pid}.mp4") if ok else None,
        bytes=2_500_000 if ok else 0,
        ok=ok,
        skipped=skipped,
        error=None if ok else ExportFailedError(pid, "render crashed in chapter 2 of 3"),
    )


def _status(display: Display, pid: str, status: ExportStatus) -> None:
    display.on_event(ExportEvent(project_id=pid, kind="status", status=status))


def _done(display: Display, pid: str, **kwargs: bool) -> None:
    display.on_event(ExportEvent(project_id=pid, kind="done", result=_result(pid, **kwargs)))


class Clock:
    """A settable clock for rich's speed estimates."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A clock at 0 s."""
    return Clock()


def _terminal(width: int) -> tuple[Console, io.StringIO]:
    """A console that believes it is a terminal of ``width`` columns, writing to a buffer."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=width, color_system=None)
    return console, buffer


def _render(renderable: object, width: int) -> list[str]:
    """The lines of ``renderable`` drawn on a terminal ``width`` columns wide."""
    console = Console(
        file=io.StringIO(), force_terminal=True, width=width, record=True, color_system=None
    )
    console.print(renderable)
    return console.export_text().splitlines()


def _busy_batch(width: int, clock: Clock) -> RichDisplay:
    """Twelve projects mid-batch: two downloading, one saved, one failed, retries, a cut."""
    console, _ = _terminal(width)
    display = RichDisplay(Writer(), console, total=12)
    display.progress.get_time = clock
    for pid in PIDS[:6]:
        _status(display, pid, ExportStatus.QUEUED)
    _status(display, PIDS[2], ExportStatus.PROCESSING)
    display.on_bytes(PIDS[3], 0, 4 * MB)
    display.on_bytes(PIDS[4], 0, 2 * MB)
    _done(display, PIDS[0])
    _status(display, PIDS[1], ExportStatus.FAILED)
    _done(display, PIDS[1], ok=False)
    display.overall.sync()
    clock.now = 2.0
    display.on_bytes(PIDS[3], 3 * MB, 4 * MB)
    display.on_bytes(PIDS[4], 1 * MB, 2 * MB)
    for _ in range(2):
        display.on_log(logging.INFO, "retry", "retrying GET /projects/x/export (attempt 1)")
    display.on_log(logging.WARNING, "cut", f"download of {PIDS[3]} interrupted; resuming")
    display.stage("exporting 12 projects")
    return display


@pytest.mark.parametrize("width", WIDTHS)
def test_overall_row_counts_bytes_in_flight_speed_and_eta(width: int, clock: Clock) -> None:
    """The overall row: done/total, failed, bytes saved plus in flight, throughput, ETA."""
    display = _busy_batch(width, clock)
    text = "\n".join(_render(display.overall, width))
    assert "2/12 done (1 failed)" in text
    # 2.5 MB saved + 3 + 1 MB in flight; 8.5 MB known over 3 projects, 8 to come at the mean.
    assert "6.5 MB/~31.2 MB" in text
    assert "2.0 MB/s" in text  # 4 MB in 2 s
    assert "0:00:13" in text  # (31.2 - 6.5) MB at 2 MB/s, rounded up
    assert "12 projects" in text
    assert "queued 1" in text
    assert "processing 1" in text
    assert "downloading 2" in text
    assert "2 retries" in text
    assert "1 cut download" in text
    assert "exporting 12 projects" in text
    assert f"{PIDS[3]}" in text
    assert "3.0 MB/4.0 MB" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_breaks_mid_word_at_80_and_140_columns(width: int, clock: Clock) -> None:
    """Every line fits the width, and every word of the display stays whole on one line."""
    display = _busy_batch(width, clock)
    lines = _render(display.overall, width)
    assert all(len(line) <= width for line in lines)
    words = {w for line in lines for w in line.split()}
    for whole in [*PIDS[3:5], "projects", "processing", "downloading", "retries", "download"]:
        assert whole in words, (whole, lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_finished_rows_collapse_and_failures_stay(width: int, clock: Clock) -> None:
    """A saved or skipped project leaves no line and no bar; a failure is printed, whole."""
    display = _busy_batch(width, clock)
    console, buffer = _terminal(width)
    display.console = console
    display.start()
    _done(display, PIDS[3])
    _done(display, PIDS[4], skipped=True)
    _done(display, PIDS[5], ok=False)
    display.stop()
    assert display.bars == {}
    assert [task.description for task in display.progress.tasks] == [
        display.overall.task.description
    ]
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    printed = [line for line in out.splitlines() if line.strip().startswith("✗")]
    assert len(printed) == 1
    assert PIDS[5] in printed[0]
    assert "render crashed in chapter 2 of 3" in " ".join(out.split())  # wrapped by word
    assert "✓" not in out
    assert "↷" not in out
    # The retries and the cut download were counted, not printed between the bars.
    assert "retrying" not in out
    assert "interrupted" not in out


def test_verbose_shows_the_counted_lines_too() -> None:
    """With -v a retry is still counted and also shown, dimmed, above the display."""
    console, buffer = _terminal(100)
    display = RichDisplay(Writer(), console, total=1)
    display.verbose = 1
    display.on_log(logging.INFO, "retry", "retrying GET /projects")
    display.on_log(logging.WARNING, None, "the journal was locked")
    display.stop()
    out = buffer.getvalue()
    assert "↻ retrying GET /projects" in out
    assert "! the journal was locked" in out
    assert display.tally.retries == 1


def test_plain_display_prints_warnings_and_info_only_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Off a terminal each warning is a line on stderr; info lines need -v; all are counted."""
    display = Display(Writer())
    display.on_log(logging.INFO, "retry", "retrying GET /projects")
    display.on_log(logging.WARNING, "cut", "download of prj_a interrupted")
    display.verbose = 1
    display.on_log(logging.INFO, None, "following an export")
    display.stop()
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: download of prj_a interrupted", "info: following an export"]
    assert (display.tally.retries, display.tally.cut_downloads) == (1, 1)


def test_quiet_displays_print_results_only(capsys: pytest.CaptureFixture[str]) -> None:
    """--quiet: no transition, download, note or log line; results and the summary stay."""
    plain = make_display(as_json=False, total=1, quiet=True)
    assert type(plain) is Display
    _status(plain, "prj_a", ExportStatus.QUEUED)
    plain.on_bytes("prj_a", 10, 100)
    plain.note("a milestone")
    plain.on_log(logging.WARNING, None, "something to look at")
    _done(plain, "prj_a")
    plain.stop()
    captured = capsys.readouterr()
    assert captured.err == ""
    (line,) = captured.out.splitlines()
    assert line.endswith("prj_a ok 2.5 MB -> out/prj_a.mp4")

    as_json = make_display(as_json=True, total=1, quiet=True)
    assert isinstance(as_json, JsonDisplay)
    as_json.note("a milestone")
    _done(as_json, "prj_a")
    as_json.stop()
    captured = capsys.readouterr()
    assert captured.err == ""
    assert '"type": "result"' in captured.out


def test_showing_routes_library_records_to_the_display(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The library's records, INFO included, reach the display and are classified."""
    display = Display(Writer())
    log = logging.getLogger("babou_async.http")
    with showing(display, verbose=0):
        log.info("retrying %s %s (attempt %d failed: %s) in %.2fs", "GET", "/p", 1, "503", 0.2)
        log.warning("poll failed, will poll again: %s", "reset")
        logging.getLogger("babou_async.download").warning(
            "download of %s interrupted at %d bytes (%s); resuming in %.2fs", "prj_a", 5, "x", 0.1
        )
    assert (display.tally.retries, display.tally.cut_downloads) == (2, 1)
    assert "retrying" not in capsys.readouterr().err  # info, without -v


def test_log_kind_reads_the_format_not_the_arguments() -> None:
    """Retries and polls are retries, interrupted downloads cuts, anything else nothing."""

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("babou_async", logging.INFO, __file__, 1, msg, (), None)

    assert log_kind(record("retrying %s %s in %.2fs")) == "retry"
    assert log_kind(record("poll failed, will poll again: %s")) == "retry"
    assert log_kind(record("download of %s interrupted at %d bytes")) == "cut"
    assert log_kind(record("resuming the download of %s at %d bytes")) is None


def test_tally_estimates_the_batch_bytes() -> None:
    """In-flight bytes count; the size of projects not downloading yet is the mean known."""
    tally = Tally(expected=4)
    assert tally.snapshot().bytes_expected is None
    tally.inflight["prj_a"] = (1 * MB, 2 * MB)
    tally.inflight["prj_b"] = (3 * MB, None)  # no size announced: what came so far
    snap = tally.snapshot()
    assert snap.bytes_done == 4 * MB
    assert snap.bytes_expected == 10 * MB  # 5 MB known over 2, and 2 projects to come
    assert not snap.bytes_exact
    tally.expected = 2
    tally.inflight["prj_b"] = (3 * MB, 3 * MB)
    assert tally.snapshot().bytes_exact


def test_plurals() -> None:
    """One of a thing is singular; the rest are not; irregular plurals are given."""
    assert plural(1, "project") == "1 project"
    assert plural(2, "project") == "2 projects"
    assert plural(0, "cut download") == "0 cut downloads"
    assert plural(1, "retry", "retries") == "1 retry"
    assert plural(3, "retry", "retries") == "3 retries"


def test_overall_line_of_one_project_is_singular(clock: Clock) -> None:
    """`1 project`, never `1 projects`."""
    console, _ = _terminal(80)
    display = RichDisplay(Writer(), console, total=1)
    display.progress.get_time = clock
    _status(display, PIDS[0], ExportStatus.QUEUED)
    display.on_log(logging.INFO, "retry", "retrying")
    text = "\n".join(_render(display.overall, 80))
    assert "1 project " in text + " "
    assert "1 projects" not in text
    assert "1 retry" in text
    assert "0/1 done" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_waiter_shows_a_spinner_with_the_elapsed_time(width: int) -> None:
    """On a terminal: what is awaited, and for how long; it is gone once the wait ends."""
    console, buffer = _terminal(width)
    waiter = Waiter(console, "submitting the prompt")
    with waiter:
        waiter.show("waiting for chapter cht_abc to be ready (estimated 30-90 seconds)")
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "waiting for chapter cht_abc to be ready (estimated 30-90 seconds)" in out
    assert "0:00:00" in out


def test_waiter_draws_nothing_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a terminal (or --quiet): no spinner, no line."""
    waiter = make_waiter("waiting")
    assert waiter.progress is None
    with waiter:
        waiter.show("still waiting")
    assert make_waiter("waiting", quiet=True).progress is None
    assert capsys.readouterr() == ("", "")


def _not_found(path: str, method: str = "GET", hint: str | None = None) -> NotFoundError:
    return NotFoundError(
        "Not found", status=404, code="NOT_FOUND", method=method, path=path, hint=hint
    )


def test_errors_are_phrased_for_the_command_line() -> None:
    """The API's hints about HTTP requests become commands; a 404 root suggests /api/v1."""
    never = _not_found(
        "/projects/prj_abc/export",
        hint="Start an export first using POST /api/v1/projects/prj_abc/export",
    )
    text = describe_error(never, None, "https://api.babou.ai/api/v1")
    assert text is not None
    assert "babou export prj_abc --out DIR" in text
    assert "POST /api/v1" not in text
    assert text == "404 NOT_FOUND: Not found; start one with `babou export prj_abc --out DIR`"

    root = describe_error(_not_found("/projects"), None, "http://127.0.0.1:8080/")
    assert root is not None
    assert "try --base-url http://127.0.0.1:8080/api/v1" in root
    # With /api/v1 in place, a 404 is just a 404.
    assert describe_error(_not_found("/projects/prj_x"), None, "http://h/api/v1") == (
        "404 NOT_FOUND: Not found (GET /projects/prj_x)"
    )
    # Other hints, errors without a status, and plain text pass through (the key hidden).
    hinted = NotFoundError("Gone", status=404, code="NOT_FOUND", hint="ask again", request_id="r1")
    assert describe_error(hinted, None) == "404 NOT_FOUND: Gone; ask again [request id r1]"
    assert describe_error(NotFoundError("Gone", status=404), None) == "404: Gone"
    local = ValidationError("name is too long", field="name")
    assert describe_error(local, None) == str(local)
    assert (
        describe_error("sk-bab-secretsecret rejected", "sk-bab-secretsecret")
        == "[REDACTED] rejected"
    )
    assert describe_error(None, None) is None


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """The records aiohttp's server logger emits, captured."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("aiohttp.server")
    handler = Keep()
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def test_simulator_disconnects_are_one_line(server_log: list[logging.LogRecord]) -> None:
    """A client hanging up mid-response: one line with the peer and the cause, no traceback."""
    log = logging.getLogger("aiohttp.server")
    error = ConnectionResetError("Cannot write to closing transport")
    with one_line_disconnects():
        log.error("Error handling request from %s", "127.0.0.1", exc_info=error)
        log.error("Error handling request from %s", "127.0.0.1", exc_info=ValueError("bug"))
    log.error("Error handling request from %s", "127.0.0.1", exc_info=error)
    cut, bug, outside = server_log
    formatted = logging.Formatter().format(cut)
    assert formatted == (
        "client 127.0.0.1 disconnected before the response ended "
        "(Cannot write to closing transport)"
    )
    assert bug.exc_info is not None  # a real bug keeps its traceback
    assert outside.exc_info is not None  # and so does everything outside `babou simulate`


@pytest.mark.parametrize("width", WIDTHS)
def test_notes_summary_and_epilogue_wrap_between_words(width: int) -> None:
    """Lines printed around the display wrap at word boundaries, whatever the width."""
    console, buffer = _terminal(width)
    display = RichDisplay(Writer(), console, total=2)
    note = (
        "Simulator listening on http://127.0.0.1:43210/api/v1 " + "(seed 5, light fault mix) " * 4
    )
    display.start()
    display.note(note)
    display.stop()
    display.show_summary(display.tally.summary(where="/a/rather/long/directory/for/videos"))
    epilogue = "Took 4.1s: 1.4s to create 4 projects and render 9 prompts, " * 3
    display.epilogue(epilogue)
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines)
    words = {w for line in lines for w in line.split()}
    assert set((note + epilogue).split()) <= words
    assert "/a/rather/long/directory/for/videos" in words


def test_late_and_odd_events_are_ignored() -> None:
    """Bytes after a result, bytes after a failed status, a `done` without result: no effect."""
    console, _ = _terminal(80)
    display = RichDisplay(Writer(), console, total=2)
    _done(display, PIDS[0])
    display.on_bytes(PIDS[0], 10, 100)  # the download was reported finished already
    assert display.tally.inflight == {}
    display.on_bytes(PIDS[1], 10, 100)
    _status(display, PIDS[1], ExportStatus.FAILED)  # its bar goes
    display.on_bytes(PIDS[1], 20, 100)  # a late chunk moves nothing
    display.download_progress(PIDS[1], 30, 100)  # nor does one without a bar
    display.on_event(ExportEvent(project_id=PIDS[1], kind="done"))
    display.stop()
    assert display.bars == {}
    assert PIDS[1] not in display.tally.outcomes


def test_other_api_errors_keep_their_text() -> None:
    """A non-404 error keeps its message and a hint that is no HTTP request."""
    conflict = ConflictError(
        "Export already in progress", status=409, code="CONFLICT", hint="wait for it"
    )
    assert describe_error(conflict, None, "http://h") == (
        "409 CONFLICT: Export already in progress; wait for it"
    )
