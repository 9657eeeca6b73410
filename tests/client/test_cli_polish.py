"""
The command line's conventions: errors in its own terms, ``--quiet``, spinners, ``simulate``.

Off a terminal the CLI runs as a subprocess (``python -m babou_async``) against FakeBabou
in this process, as in ``test_cli.py``; on a "terminal" it runs in process, against a
simulator served by a thread of its own, with ``isatty`` patched.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from babou_async import BabouSession, PollPolicy
from babou_async._cli import main
from babou_async._cli._display import Display
from babou_async._cli._output import Writer
from babou_async._cli._simulate import print_demo_text
from babou_async._demo import DemoReport
from babou_async.testing import FakeBabou

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


def _command(*args: str) -> list[str]:
    """``python -m babou_async ARGS`` (coverage follows it: ``patch = ["subprocess"]``)."""
    return [sys.executable, "-m", "babou_async", *args]


def _env(fake: FakeBabou | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for the CLI: no BABOU_* of the developer, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if fake is not None:
        env["BABOU_BASE_URL"] = fake.base_url
        env["BABOU_API_KEY"] = fake.api_key
    env.update(extra)
    return env


async def babou(*args: str, fake: FakeBabou, **extra: str) -> tuple[int, str, str]:
    """Run the CLI with fast polls; return its exit status, stdout and stderr."""
    done = await anyio.run_process(
        _command("--poll-interval", "0.05", *args), env=_env(fake, **extra), check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _plain(text: str) -> str:
    """Strip terminal escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# -- errors in the command line's terms ------------------------------------------------------


async def test_status_of_a_never_exported_project_suggests_babou_export(
    fake: FakeBabou, tmp_path: Path
) -> None:
    """`status` and `download` say to run `babou export PRJ`, not to POST to the API."""
    pid = fake.seed_project("Never exported")
    code, out, err = await babou("status", pid, fake=fake)
    assert code == 1, err
    assert out == (
        f"{pid}\tnone\t404 NOT_FOUND: No export found for this project; "
        f"start one with `babou export {pid} --out DIR`\n"
    )
    assert "POST /api/v1" not in out
    code, out, _ = await babou("download", pid, "--out", str(tmp_path), fake=fake)
    assert code == 1
    assert f"babou export {pid} --out DIR" in out
    assert "POST /api/v1" not in out


async def test_a_base_url_without_api_v1_suggests_it(fake: FakeBabou) -> None:
    """A 404 from the API root itself: the error line says /api/v1 is missing."""
    root = fake.base_url.removesuffix("/api/v1")
    code, out, err = await babou("projects", "list", fake=fake, BABOU_BASE_URL=root)
    assert code == 1
    assert out == ""
    assert err.startswith("babou: error: 404 NOT_FOUND")
    assert f"try --base-url {root}/api/v1" in err
    assert err.count("\n") == 1
    pid = fake.seed_project("Wrong root")
    code, out, _ = await babou("status", pid, "--base-url", root + "/", fake=fake)
    assert code == 1
    assert f"try --base-url {root}/api/v1" in out
    assert "babou export" not in out  # the root is wrong, not the project


# -- --quiet ---------------------------------------------------------------------------------


async def test_quiet_prints_results_and_errors_only(fake: FakeBabou, tmp_path: Path) -> None:
    """`--quiet`, before or after the command: no transition, note or retry line."""
    fake.faults.rate_limit_rate = 0.3  # retries, which would print warning lines
    fake.faults.retry_after = 0.01
    pids = [fake.seed_project(f"Quiet {i}") for i in range(2)]
    code, out, err = await babou(
        "export", *pids, "--out", str(tmp_path / "a"), "--quiet", fake=fake
    )
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 3
    assert sorted(line.split()[3] for line in lines[:2]) == ["ok", "ok"]
    assert lines[-1].startswith("Done: 2 ok, 0 failed, 0 skipped")

    code, out, err = await babou("-q", "status", *pids, "--watch", fake=fake)
    assert code == 0, err
    assert err == ""
    assert sorted(out.splitlines()) == sorted(
        f"{pid}\tcompleted\tready to download" for pid in pids
    )

    code, out, _ = await babou("-q", "projects", "list", fake=fake)
    assert code == 0
    assert all(pid in out for pid in pids)


def test_quiet_demo_prints_its_summary_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`babou demo --quiet`: the project's result and the summary, nothing else."""
    args = ["demo", "--projects", "1", "--out", str(tmp_path), "--seed", "4", "--quiet"]
    assert main([*args, "--time-scale", "0.1"]) == 0
    captured = capsys.readouterr()
    result, summary = captured.out.splitlines()
    assert " ok " in result
    assert summary.startswith("Done: 1 ok, 0 failed, 0 skipped")
    assert captured.err == ""


# -- waits -----------------------------------------------------------------------------------


@pytest.fixture
def threaded_fake() -> Iterator[tuple[FakeBabou, BlockingPortal]]:
    """A FakeBabou served by its own event loop thread, for in-process `main()` calls."""
    with start_blocking_portal() as portal:
        sim = FakeBabou(
            seed=98, prompt_seconds=0.4, export_queued_seconds=0.05, export_processing_seconds=0.1
        )
        portal.call(sim.start)
        try:
            yield sim, portal
        finally:
            portal.call(sim.close)


def _options(sim: FakeBabou) -> list[str]:
    return ["--api-key", sim.api_key, "--base-url", sim.base_url, "--poll-interval", "0.05"]


def test_prompt_wait_shows_a_spinner_on_a_terminal(
    threaded_fake: tuple[FakeBabou, BlockingPortal],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`prompt --wait` on a terminal: spinner and time elapsed on stderr, the row on stdout."""
    sim, portal = threaded_fake
    pid = portal.call(lambda: sim.seed_project("Spinner", chapters=0))

    async def chapter() -> str:
        async with BabouSession(sim.api_key, base_url=sim.base_url) as session:
            return (await session.create_chapter(pid, "Intro")).id

    cht = portal.call(chapter)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*_options(sim), "prompt", pid, cht, "A calm sea", "--wait"]) == 0
    captured = capsys.readouterr()
    err = _plain(captured.err)
    assert "rendering the prompt, estimated " in err
    assert re.search(r"\d:\d\d:\d\d", err)
    assert captured.out.splitlines()[-1].endswith("\tready")
    assert "rendering" not in captured.out
    # Without --wait there is nothing to wait for: no spinner.
    assert main([*_options(sim), "prompt", pid, cht, "A stormy sea", "--force"]) == 0
    assert capsys.readouterr().err == ""


async def test_prompt_wait_off_a_terminal_adds_nothing(fake: FakeBabou) -> None:
    """Piped: `prompt --wait` prints its row and nothing else, on either stream."""
    pid = fake.seed_project("Piped", chapters=0)
    async with BabouSession(fake.api_key, base_url=fake.base_url) as session:
        cht = (await session.create_chapter(pid, "Intro")).id
    code, out, err = await babou("prompt", pid, cht, "A calm sea", "--wait", fake=fake)
    assert code == 0, err
    assert err == ""
    (line,) = out.splitlines()
    assert line.endswith("\tready")


def test_upload_wait_shows_a_spinner_on_a_terminal(
    threaded_fake: tuple[FakeBabou, BlockingPortal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`assets upload --wait` on a terminal waits with a spinner too."""
    sim, _ = threaded_fake
    image = tmp_path / "frame.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*_options(sim), "assets", "upload", str(image), "--wait"]) == 0
    err = _plain(capsys.readouterr().err)
    assert "processing frame.png" in err


def test_terminal_export_counts_cut_downloads_on_the_overall_line(
    threaded_fake: tuple[FakeBabou, BlockingPortal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a terminal, the library's cut downloads are counted, never printed as lines."""
    sim, portal = threaded_fake
    sim.faults.drop_rate = 0.5
    sim.faults.slow_bytes_per_second = 20_000_000
    pids = portal.call(lambda: [sim.seed_project(f"Cut {i}") for i in range(3)])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*_options(sim), "export", *pids, "--out", str(tmp_path)]) == 0
    out = _plain(capsys.readouterr().out)
    assert re.search(r"\b\d+ cut downloads?\b", out)
    assert "interrupted at" not in out
    assert "3 projects" in out
    assert "Done: 3 ok, 0 failed, 0 skipped" in out


# -- simulate --------------------------------------------------------------------------------


async def test_simulate_logs_a_disconnect_in_one_line(tmp_path: Path) -> None:
    """A client hanging up mid-download: one stderr line, no traceback; no asset URL printed."""
    process = await anyio.open_process(
        _command(
            *("simulate", "--port", "0", "--seed", "5", "--slow-bytes-per-second", "200000"),
            *("--export-queued-seconds", "0.05", "--export-seconds", "0.1"),
        ),
        env=_env(),
    )
    async with process:
        assert process.stdout is not None
        assert process.stderr is not None
        text = b""
        with anyio.fail_after(10):
            while b"BABOU_API_KEY=" not in text:
                text += await process.stdout.receive()
        lines = dict(line.split("=", 1) for line in text.decode().splitlines())
        assert set(lines) == {"BABOU_BASE_URL", "BABOU_API_KEY"}
        async with BabouSession(
            lines["BABOU_API_KEY"], base_url=lines["BABOU_BASE_URL"], poll=PollPolicy.fast()
        ) as session:
            project = await session.create_project("Hang up")
            chapter = await session.create_chapter(project.id, "Only")
            await session.submit_prompt(project.id, chapter.id, "Waves on a beach")
            await session.wait_for_chapter(project.id, chapter.id, timeout=20)
            await session.start_export(project.id)
            export = await session.wait_for_export(project.id, timeout=20)
        assert export.download_url is not None
        async with aiohttp.ClientSession() as http, http.get(export.download_url) as response:
            await response.content.readexactly(1000)  # then hang up mid-body
        err = b""
        with anyio.move_on_after(3):
            while b"disconnected" not in err:
                err += await process.stderr.receive()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await process.wait() == 0
    lines_err = err.decode().splitlines()
    assert [line for line in lines_err if "disconnected" in line] == [
        next(line for line in lines_err if line.startswith("client 127.0.0.1 disconnected"))
    ]
    assert "Traceback" not in err.decode()


def test_quiet_silences_the_library_warnings_of_thin_commands(
    threaded_fake: tuple[FakeBabou, BlockingPortal],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`-q projects list`: the rows, and not the library's warning (which `-v` would show)."""
    sim, portal = threaded_fake
    pid = portal.call(lambda: sim.seed_project("Warned"))
    listing = BabouSession.list_projects

    def warned(self: BabouSession, **kwargs: object) -> object:
        logging.getLogger("babou_async.http").warning("something worth a look")
        return listing(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BabouSession, "list_projects", warned)
    assert main([*_options(sim), "projects", "list"]) == 0
    assert "warning: something worth a look" in capsys.readouterr().err
    assert main([*_options(sim), "projects", "list", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert pid in captured.out


def test_demo_epilogue_names_what_it_rode_through(capsys: pytest.CaptureFixture[str]) -> None:
    """After the one summary: the timings, the faults ridden through (plurals right), the seed."""
    report = DemoReport(
        out_dir=Path("/videos"),
        seed=12,
        base_url="http://127.0.0.1:1/api/v1",
        projects=("prj_a",),
        chapters=1,
        results=(),
        setup_seconds=1.0,
        export_seconds=2.0,
        elapsed=3.2,
        dropped_downloads=1,
        rate_limited=2,
    )
    display = Display(Writer())
    display.stop()
    print_demo_text(report, display.tally.summary(where="/videos"), display)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Done: 0 ok, 0 failed, 0 skipped · 0 B in 3.2s · videos in /videos",
        "Took 3.2s: 1.0s to create 1 project and render 1 prompt, 2.0s to export and download it.",
        "Rode through 1 cut download (resumed with Range) and 2 rate limits (429, retried).",
        "Replay this run with: babou demo --seed 12",
    ]
