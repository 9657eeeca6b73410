"""
The ``babou`` command line, run as a real subprocess against FakeBabou in this process.

Subprocesses are driven with ``anyio.run_process`` / ``anyio.open_process`` so that the
event loop serving the simulator is never blocked while the CLI talks to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream
from anyio.from_thread import BlockingPortal, start_blocking_portal
from rich.console import Console

from babou_async import (
    BabouSession,
    PollPolicy,
    __version__,
)
from babou_async._cli import main
from babou_async._cli._display import StatusBoard
from babou_async._cli._output import Writer
from babou_async._cli._rows import StatusRow
from babou_async.testing import FakeBabou

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
SCALED = ["--time-scale", "0.1"]  # the demo's durations, tenfold shorter


def _command(*args: str) -> list[str]:
    """``python -m babou_async ARGS`` (coverage follows it: ``patch = ["subprocess"]``)."""
    return [sys.executable, "-m", "babou_async", *args]


def _env(fake: FakeBabou | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for the CLI: no BABOU_* of the developer, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "120"
    if fake is not None:
        env["BABOU_BASE_URL"] = fake.base_url
        env["BABOU_API_KEY"] = fake.api_key
    env.update(extra)
    return env


class Run:
    """The outcome of one CLI run, decoded."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout = stdout.decode()
        self.stderr = stderr.decode()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line of stdout, parsed as JSON."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def results(self) -> dict[str, dict[str, Any]]:
        """The ``"type": "result"`` lines, by project ID."""
        return {r["project_id"]: r for r in self.json_lines() if r.get("type") == "result"}

    def summary(self) -> dict[str, Any]:
        """The one ``"type": "summary"`` line."""
        (summary,) = [r for r in self.json_lines() if r.get("type") == "summary"]
        return summary


async def babou(
    *args: str, fake: FakeBabou | None = None, env: dict[str, str] | None = None, stdin: bytes = b""
) -> Run:
    """Run ``python -m babou_async --poll-interval 0.05 ARGS`` without blocking the loop."""
    done = await anyio.run_process(
        _command("--poll-interval", "0.05", *args),
        input=stdin,
        env=env if env is not None else _env(fake),
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def _sha256(path: Path) -> str:
    """The SHA-256 of a file, read without blocking the loop."""
    return hashlib.sha256(await anyio.Path(path).read_bytes()).hexdigest()


async def _parts(directory: Path) -> list[str]:
    """The `.part` files left in ``directory``."""
    return [p.name async for p in anyio.Path(directory).glob("*.part")]


async def _exported(fake: FakeBabou, *project_ids: str) -> None:
    """Start and finish the exports of ``project_ids`` on the simulator."""
    async with BabouSession(fake.api_key, base_url=fake.base_url) as session:
        for pid in project_ids:
            await session.start_export(pid)
            fake.finish_export(pid)


# -- parsing and configuration ---------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`babou --help` names every command of the contract and exits 0."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("export", "status", "download", "projects", "chapters", "prompt"):
        assert command in out
    for command in ("assets", "simulate", "demo"):
        assert command in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing --out, no project IDs, a malformed ID and an unknown command all exit 2."""
    assert main(["export", "prj_abc"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["--api-key", "sk-bab-x", "export", "--out", "d"]) == 2
    assert "project ID" in capsys.readouterr().err
    assert main(["--api-key", "sk-bab-x", "export", "prj_a/../b", "--out", "d"]) == 2
    assert "project_id" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`babou --version` prints the package version."""
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


async def test_missing_key_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    """Without a key: exit 2 and a single stderr line naming BABOU_API_KEY, no traceback."""
    run = await babou("export", "prj_abc", "--out", str(tmp_path), env=_env())
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "BABOU_API_KEY" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


def test_without_click_prints_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without click (or rich), `babou` prints one line telling how to install them, exit 2."""
    monkeypatch.setitem(sys.modules, "click", None)
    assert main(["--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'babou_async[cli]'" in err


async def test_library_imports_without_cli_extras() -> None:
    """`import babou_async` (and the CLI module itself) never needs click or rich."""
    code = (
        "import sys; sys.modules['click'] = None; sys.modules['rich'] = None\n"
        "import babou_async, babou_async._cli, babou_async._demo\n"
        "assert 'click' not in {m for m in sys.modules if sys.modules[m] is not None}\n"
    )
    done = await anyio.run_process(
        [sys.executable, "-c", code], env=_env(), check=False, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr.decode()


async def test_bad_key_error_never_echoes_it(fake: FakeBabou) -> None:
    """A rejected key is one error line, exit 1, and the key appears nowhere."""
    secret = "sk-bab-NotTheRightKeyAtAll1234567"
    run = await babou(
        "-v", "--api-key", secret, "projects", "list", env=_env(fake, BABOU_API_KEY="")
    )
    assert run.returncode == 1
    assert "401" in run.stderr
    assert "Traceback" not in run.stderr
    assert secret not in run.stdout + run.stderr
    assert "NotTheRightKey" not in run.stdout + run.stderr


async def test_global_options_after_the_command(fake: FakeBabou) -> None:
    """`--base-url` and `--api-key` work after the command and after a sub-group too."""
    pid = fake.seed_project("After")
    where = ("--base-url", fake.base_url, "--api-key", fake.api_key)
    after = await babou("projects", "list", *where, "--json", env=_env())
    assert after.returncode == 0, after.stderr
    assert pid in {p["id"] for p in after.json_lines()}
    between = await babou("projects", *where, "list", "--json", env=_env())
    assert between.returncode == 0, between.stderr
    assert pid in {p["id"] for p in between.json_lines()}


async def test_global_option_after_the_command_wins(fake: FakeBabou) -> None:
    """A value after the command beats one before it, which beats the environment."""
    wrong_key = "sk-bab-NotTheRightKeyAtAll1234567"
    wrong_url = "http://127.0.0.1:9/api/v1"
    later = await babou(
        "--api-key", wrong_key, "projects", "list", "--api-key", fake.api_key, fake=fake
    )
    assert later.returncode == 0, later.stderr
    over_env = await babou(
        *("--api-key", fake.api_key, "--base-url", fake.base_url, "projects", "list"),
        env=_env(BABOU_API_KEY=wrong_key, BABOU_BASE_URL=wrong_url),
    )
    assert over_env.returncode == 0, over_env.stderr
    rejected = await babou("projects", "list", "--api-key", wrong_key, fake=fake)
    assert rejected.returncode == 1
    assert "401" in rejected.stderr


async def test_verbose_after_the_command(tmp_path: Path) -> None:
    """`export PRJ -v` shows the informational lines that `export PRJ` alone does not."""
    async with FakeBabou(seed=7, export_queued_seconds=0.05, export_processing_seconds=60) as sim:
        pid = sim.seed_project("Verbose")
        async with BabouSession(sim.api_key, base_url=sim.base_url) as session:
            await session.start_export(pid)  # still processing when the CLI follows it
        command = ("export", pid, "--timeout", "1")
        # Two directories: a re-run in the same one would find its journal and not POST.
        quiet = await babou(*command, "--out", str(tmp_path / "a"), fake=sim)
        verbose = await babou(*command, "--out", str(tmp_path / "b"), "-v", fake=sim)
    assert "already in progress" not in quiet.stderr
    assert f"export of {pid} already in progress: following it" in verbose.stderr


# -- export ---------------------------------------------------------------------------------


async def test_export_json_reports_every_project(fake: FakeBabou, tmp_path: Path) -> None:
    """`export --json` with one failed render: exit 1, the failure reported, the rest saved."""
    good = [fake.seed_project(f"P{i}", chapters=2) for i in range(3)]
    bad = fake.seed_project("Bad")
    fake.faults.fail_exports = {bad}
    ids_file = tmp_path / "ids.txt"
    await anyio.Path(ids_file).write_text(f"{good[2]}\n{bad}\n")
    out = tmp_path / "videos"
    run = await babou(
        *("export", good[0], good[1], "--from-file", str(ids_file), "--out", str(out), "--json"),
        fake=fake,
    )
    assert run.returncode == 1, run.stderr
    results = run.results()
    assert sorted(results) == sorted([*good, bad])
    for pid in good:
        assert results[pid]["ok"] is True
        assert results[pid]["status"] == "completed"
        assert results[pid]["bytes"] == fake.video_size(pid)
        assert await _sha256(out / f"{pid}.mp4") == fake.video_sha256(pid)
    assert results[bad]["ok"] is False
    assert results[bad]["status"] == "failed"
    assert results[bad]["error_type"] == "ExportFailedError"
    assert "failed" in results[bad]["error"]
    assert not await anyio.Path(out / f"{bad}.mp4").exists()
    summary = run.summary()
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (3, 1, 0)
    assert summary["bytes"] == sum(fake.video_size(pid) for pid in good)
    assert await _parts(out) == []


async def test_export_plain_lines_and_rerun_skips(fake: FakeBabou, tmp_path: Path) -> None:
    """Off a terminal: one plain line per event and a summary; a re-run skips what is done."""
    pid = fake.seed_project("Plain")
    run = await babou("export", pid, "--out", str(tmp_path), fake=fake)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.endswith(f"{pid} queued") for line in lines)
    assert any(f"{pid} ok" in line for line in lines)
    assert lines[-1].startswith("Done: 1 ok, 0 failed, 0 skipped")
    assert "\x1b[" not in run.stdout  # no terminal escapes in a pipe

    again = await babou("export", pid, "--out", str(tmp_path), fake=fake)
    assert again.returncode == 0
    assert "skipped" in again.stdout
    assert again.stdout.splitlines()[-1].startswith("Done: 0 ok, 0 failed, 1 skipped")


async def test_export_reads_ids_from_stdin(fake: FakeBabou, tmp_path: Path) -> None:
    """`--from-file -`: comments, blanks, duplicates; a malformed ID fails alone (exit 1)."""
    ids = [fake.seed_project(f"S{i}") for i in range(2)]
    text = f"# batch\n{ids[0]}\n\n{ids[1]}, {ids[0]}\nnot-a-project\n".encode()
    run = await babou(
        "export", "--from-file", "-", "--out", str(tmp_path), "--json", fake=fake, stdin=text
    )
    assert run.returncode == 1, run.stderr
    results = run.results()
    assert sorted(results) == sorted([*ids, "not-a-project"])
    assert all(results[pid]["ok"] for pid in ids)
    assert results["not-a-project"]["error_type"] == "ValidationError"


@pytest.mark.parametrize("command", ["export", "download"])
async def test_sigint_stops_cleanly(fake: FakeBabou, tmp_path: Path, command: str) -> None:
    """Ctrl-C mid-download: exit 130, a summary, no traceback and no .part file left."""
    fake.export_video_size = 3_000_000
    fake.faults.slow_bytes_per_second = 400_000  # each download takes ~7 s
    ids = [fake.seed_project(f"Slow {i}") for i in range(3)]
    if command == "download":
        await _exported(fake, *ids)
    out = tmp_path / "videos"
    process = await anyio.open_process(
        _command("--poll-interval", "0.05", command, *ids, "--out", str(out)), env=_env(fake)
    )
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    async def drain(stream: ByteReceiveStream | None, key: str) -> None:
        assert stream is not None
        async for chunk in stream:
            chunks[key].append(chunk)

    async with process, anyio.create_task_group() as tg:
        tg.start_soon(drain, process.stdout, "out")
        tg.start_soon(drain, process.stderr, "err")
        with anyio.fail_after(15):  # wait until the downloads are under way
            while not (await anyio.Path(out).exists() and await _parts(out)):
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            returncode = await process.wait()
    stdout = b"".join(chunks["out"]).decode()
    stderr = b"".join(chunks["err"]).decode()
    assert returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    assert await _parts(out) == []
    assert stdout.splitlines()[-1].startswith(
        "Interrupted: 0 ok, 0 failed, 0 skipped, 3 unfinished"
    )


# -- status and download ---------------------------------------------------------------------


async def test_status_json_and_exit_codes(fake: FakeBabou) -> None:
    """`status --json`: the completed export is reported; a project never exported exits 1."""
    done, never = fake.seed_project("Done"), fake.seed_project("Never")
    await _exported(fake, done)
    ok = await babou("status", done, "--json", fake=fake)
    assert ok.returncode == 0, ok.stderr
    (row,) = ok.json_lines()
    assert row["type"] == "status"
    assert row["project_id"] == done
    assert row["status"] == "completed"
    assert row["download_url"].startswith(fake.asset_base_url)

    mixed = await babou("status", done, never, fake=fake)
    assert mixed.returncode == 1
    lines = dict(line.split("\t", 1) for line in mixed.stdout.splitlines())
    assert lines[done].startswith("completed")
    assert lines[never].startswith("none")


async def test_status_watch_follows_until_terminal(fake: FakeBabou) -> None:
    """`status --watch` prints each transition and ends once every export is terminal."""
    pid = fake.seed_project("Watched")
    async with BabouSession(fake.api_key, base_url=fake.base_url) as session:
        await session.start_export(pid)
    run = await babou("status", pid, "--watch", fake=fake)
    assert run.returncode == 0, run.stderr
    statuses = [line.split()[1].rstrip(":") for line in run.stdout.splitlines()]
    assert statuses[-1] == "completed"
    assert len(statuses) == len(set(statuses))  # one line per transition


async def test_download_command(fake: FakeBabou, tmp_path: Path) -> None:
    """`download`: a completed export is saved byte-identically; a missing one exits 1."""
    ready, missing = fake.seed_project("Ready"), fake.seed_project("Missing")
    await _exported(fake, ready)
    run = await babou("download", ready, "--out", str(tmp_path), "--json", fake=fake)
    assert run.returncode == 0, run.stderr
    assert run.results()[ready]["bytes"] == fake.video_size(ready)
    assert await _sha256(tmp_path / f"{ready}.mp4") == fake.video_sha256(ready)

    both = await babou("download", ready, missing, "--out", str(tmp_path), "--json", fake=fake)
    assert both.returncode == 1
    results = both.results()
    assert results[ready]["skipped"] is True
    assert results[missing]["ok"] is False
    assert both.summary()["failed"] == 1


# -- thin wrappers --------------------------------------------------------------------------


async def test_projects_create_and_list(fake: FakeBabou) -> None:
    """`projects create` returns the new project and `projects list` shows it."""
    created = await babou(
        "projects", "create", "From the CLI", "--description", "hello", "--json", fake=fake
    )
    assert created.returncode == 0, created.stderr
    (project,) = created.json_lines()
    assert project["id"].startswith("prj_")
    assert project["name"] == "From the CLI"

    listed = await babou("projects", "list", "--json", fake=fake)
    assert listed.returncode == 0
    assert {p["id"]: p["description"] for p in listed.json_lines()}[project["id"]] == "hello"
    plain = await babou("projects", "list", fake=fake)
    assert f"{project['id']}\tFrom the CLI" in plain.stdout


async def test_projects_create_rejects_bad_name(fake: FakeBabou) -> None:
    """A name over 30 characters is a usage error (2), caught before any request."""
    run = await babou("projects", "create", "x" * 31, fake=fake)
    assert run.returncode == 2
    assert "name" in run.stderr
    assert "Traceback" not in run.stderr


async def test_chapters_and_prompt_wait(fake: FakeBabou) -> None:
    """`chapters create`, `prompt --wait` and `chapters list` drive a chapter to ready."""
    pid = fake.seed_project("Chapters", chapters=0)
    created = await babou(
        "chapters", "create", pid, "Intro", "--duration", "5", "--json", fake=fake
    )
    assert created.returncode == 0, created.stderr
    chapter = created.json_lines()[0]["id"]
    prompt = await babou("prompt", pid, chapter, "A calm sea", "--wait", "--json", fake=fake)
    assert prompt.returncode == 0, prompt.stderr
    assert prompt.json_lines()[0]["chapter_status"] == "ready"
    listed = await babou("chapters", "list", pid, "--json", fake=fake)
    (row,) = listed.json_lines()
    assert (row["id"], row["name"], row["status"]) == (chapter, "Intro", "ready")


async def test_assets_upload_and_list(fake: FakeBabou, tmp_path: Path) -> None:
    """`assets upload --wait` streams a file and `assets list --state ready` lists it."""
    image = tmp_path / "frame.png"
    await anyio.Path(image).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    up = await babou("assets", "upload", str(image), "--wait", "--json", fake=fake)
    assert up.returncode == 0, up.stderr
    asset = up.json_lines()[0]
    assert (asset["content_type"], asset["state"], asset["size"]) == ("image/png", "ready", 72)
    listed = await babou("assets", "list", "--state", "ready", "--json", fake=fake)
    assert asset["id"] in {a["id"] for a in listed.json_lines()}


# -- demo and simulate ----------------------------------------------------------------------


@pytest.mark.slow
async def test_demo_end_to_end(tmp_path: Path) -> None:
    """`babou demo --projects 3` needs no key: 3 videos on disk, sizes as reported, exit 0."""
    out = tmp_path / "demo"
    with anyio.fail_after(40):
        run = await babou("demo", "--projects", "3", "--out", str(out), "--json", env=_env())
    assert run.returncode == 0, run.stderr
    results = run.results()
    assert len(results) == 3
    for result in results.values():
        assert result["ok"] is True
        assert 2_000_000 <= result["bytes"] <= 6_000_000
        assert (await anyio.Path(result["path"]).stat()).st_size == result["bytes"]
    summary = run.summary()
    assert (summary["ok"], summary["failed"], summary["files"]) == (3, 0, 3)
    assert summary["elapsed"] < 30
    assert sorted([p.name async for p in anyio.Path(out).iterdir()]) == sorted(
        [".babou-journal.sqlite3", *(f"{pid}.mp4" for pid in results)]
    )


async def test_simulate_serves_until_sigint() -> None:
    """`babou simulate --port 0` announces its URL and key, serves, and stops on SIGINT."""
    process = await anyio.open_process(
        _command("simulate", "--port", "0", "--seed", "3"), env=_env()
    )
    async with process:
        assert process.stdout is not None
        text = b""
        with anyio.fail_after(10):
            while b"BABOU_API_KEY=" not in text:
                text += await process.stdout.receive()
        env = dict(
            line.split("=", 1) for line in text.decode().splitlines() if line.startswith("BABOU_")
        )
        async with BabouSession(
            env["BABOU_API_KEY"], base_url=env["BABOU_BASE_URL"], poll=PollPolicy.fast()
        ) as session:
            project = await session.create_project("Over the wire")
        assert project.id.startswith("prj_")
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await process.wait() == 0


# -- in process: displays and error paths ---------------------------------------------------


def test_status_board_renders_a_table() -> None:
    """The `status --watch` board renders one row per project with its detail."""
    rows: dict[str, StatusRow] = {
        pid: {
            "project_id": pid,
            "status": status,
            "error": error,
            "download_url": None,
            "duration_seconds": None,
        }
        for pid, status, error in [
            ("prj_a", "completed", None),
            ("prj_b", "failed", "render crashed"),
        ]
    }
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(StatusBoard(rows, threading.Lock()))
    text = buffer.getvalue()
    assert "ready to download" in text
    assert "render crashed" in text


def test_writer_goes_quiet_on_a_closed_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    """After a BrokenPipeError (`babou ... | head`) the writer drops output instead of failing."""

    def broken() -> None:
        raise BrokenPipeError

    writer = Writer()
    writer.out("before")
    writer.call(broken)
    writer.out("after")
    writer.close()
    assert capsys.readouterr().out == "before\n"


def test_demo_text_output_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`babou demo` off a terminal: event lines, then where the videos are and how long."""
    code = main(["demo", "--projects", "2", "--out", str(tmp_path), "--seed", "8", *SCALED])
    out = capsys.readouterr().out
    assert code == 0
    assert "Simulator listening on http://127.0.0.1:" in out
    # One summary, saying where the videos are.
    (summary,) = [line for line in out.splitlines() if line.startswith("Done:")]
    assert summary.startswith("Done: 2 ok, 0 failed, 0 skipped")
    assert summary.endswith(f"videos in {tmp_path.resolve()}")
    assert "to create 2 projects and render" in out
    assert "Replay this run with: babou demo --seed 8" in out


def test_demo_json_output_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`babou demo --json`: result lines and a summary with the seed and the timings."""
    code = main(["demo", "--projects", "1", "--out", str(tmp_path), "--json", *SCALED])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 0
    assert [line["type"] for line in lines] == ["result", "summary"]
    assert lines[1]["files"] == 1
    assert isinstance(lines[1]["seed"], int)
    assert "Simulator listening" in captured.err  # notes go to stderr with --json


def test_unwritable_out_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An --out that cannot be created: one `babou: error:` line, exit 2 (usage), no traceback.

    The destination is checked before the first request (nothing is started for a batch
    that cannot be saved), so it is a usage error like any other bad argument.
    """
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    options = ["--api-key", "sk-bab-x", "--base-url", "http://127.0.0.1:9/api/v1"]
    code = main([*options, "export", "prj_abc", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("babou: error:")
    assert "Traceback" not in err


# -- in process, on a "terminal", against a simulator running in a background thread -------


def _plain(text: str) -> str:
    """Strip terminal escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@pytest.fixture
def threaded_fake() -> Iterator[tuple[FakeBabou, BlockingPortal]]:
    """A FakeBabou served by its own event loop thread, for in-process `main()` calls."""
    with start_blocking_portal() as portal:
        sim = FakeBabou(
            seed=99, prompt_seconds=0.05, export_queued_seconds=0.05, export_processing_seconds=0.1
        )
        portal.call(sim.start)
        try:
            yield sim, portal
        finally:
            portal.call(sim.close)


def test_terminal_mode_in_process(
    threaded_fake: tuple[FakeBabou, BlockingPortal],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a tty: export draws with rich, status prints a table, status --watch a live one."""
    sim, portal = threaded_fake
    pid = portal.call(lambda: sim.seed_project("Terminal"))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    options = ["--api-key", sim.api_key, "--base-url", sim.base_url, "--poll-interval", "0.05"]

    assert main([*options, "export", pid, "--out", str(tmp_path)]) == 0
    raw = capsys.readouterr().out
    assert "\x1b[" in raw  # drawn for a terminal
    out = _plain(raw)
    assert f"✓ {pid}" not in out  # a finished row collapses into the overall one
    assert "Done: 1 ok, 0 failed, 0 skipped" in out

    assert main([*options, "status", pid]) == 0
    out = _plain(capsys.readouterr().out)
    assert "┃ Project" in out
    assert "ready to download" in out

    assert main([*options, "status", pid, "--watch"]) == 0
    assert "completed" in capsys.readouterr().out

    assert main([*options, "projects", "list"]) == 0
    assert "Terminal" in capsys.readouterr().out


def test_status_watch_json_in_process(
    threaded_fake: tuple[FakeBabou, BlockingPortal], capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --watch --json`: one status object per transition, ending completed."""
    sim, portal = threaded_fake
    pid = portal.call(lambda: sim.seed_project("Watch JSON"))

    async def start() -> None:
        async with BabouSession(sim.api_key, base_url=sim.base_url) as session:
            await session.start_export(pid)

    portal.call(start)
    options = ["--api-key", sim.api_key, "--base-url", sim.base_url, "--poll-interval", "0.05"]
    assert main([*options, "status", pid, "--watch", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {row["type"] for row in rows} == {"status"}
    assert rows[-1]["status"] == "completed"
    statuses = [row["status"] for row in rows]
    assert len(statuses) == len(set(statuses))
