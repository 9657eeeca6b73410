"""
The scripts in ``examples/`` and the README's example run as written, and say what they should.

Each runs as a subprocess (``anyio.run_process``, so the event loop never blocks) in a
temporary directory, with no ``BABOU_*`` variable: the scripts then use the bundled
simulator, offline.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: Each example and patterns its standard output must match (``re.MULTILINE``).
EXPECTED: dict[str, list[str]] = {
    "quickstart.py": [
        r"^No BABOU_API_KEY: using the simulator at http://127\.0\.0\.1:\d+/api/v1$",
        r"^Chapter 'Opening' is ready$",
        r"^  export is completed$",
        r"^Saved 262,144 bytes to videos/prj_\w+\.mp4$",
    ],
    "batch_export.py": [
        r"^No BABOU_API_KEY: exporting 6 projects from a simulator$",
        r"^  prj_\w+: FAILED \(export of prj_\w+ failed: Failed to render chapter \d\)$",
        r"^5 of 6 videos in videos/$",
        r"^failed: prj_\w+: ExportFailedError: ",
    ],
    "aiohttp_streaming.py": [
        r"^GET /videos/prj_\w+: 200, 3,000,000 bytes$",
        r"^GET /videos/prj_unknown: 404$",
        r"^Identical to the export: True \(after [1-9]\d* cut connections\)$",
    ],
    "lifespan.py": [
        r"^GET /exports/prj_\w+ -> 200 completed$",
        r"^GET /exports/prj_\w+ -> 200 (queued|processing|completed)$",
        r"^GET /exports/prj_doesnotexist -> 404 no export for prj_doesnotexist$",
        r"^HTTP session open while serving: True; closed after: True$",
    ],
    "testing_with_fake.py": [
        r"^ok  test_publish_survives_faults: ",
        r"^ok  test_publish_reports_failed_render: ",
        r"^ok  test_publish_retries_a_scripted_outage: ",
        r"^3 passed$",
    ],
}

#: The web apps serve until stopped: tests/web/test_example_apps.py runs them over HTTP.
SERVED = ("aiohttp_app.py", "fastapi_app.py")

#: The README's two set-up commands: CI and users run them, so they must stay verbatim.
README_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install '.[cli]' && .venv/bin/babou demo",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[tests]' && .venv/bin/pytest",
)


def _env() -> dict[str, str]:
    """The test environment without BABOU_* variables, with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


async def _run(script: Path, cwd: Path) -> str:
    """Run ``python script`` in ``cwd``; return its standard output, failing on exit != 0."""
    with anyio.fail_after(120):
        done = await anyio.run_process(
            [sys.executable, str(script)], cwd=cwd, env=_env(), check=False
        )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"{script.name} exited {done.returncode}:\n{stdout}\n{stderr}"
    return stdout


def _readme_python_block(readme: str) -> str:
    """The first fenced ```python block of the README."""
    match = re.search(r"^```python\n(.*?)^```$", readme, re.DOTALL | re.MULTILINE)
    assert match is not None, "README.md has no ```python block"
    return match[1]


def test_every_example_is_tested() -> None:
    """Each script in examples/ has expectations here, and each expectation a script."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted([*EXPECTED, *SERVED])


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_example_runs_offline(name: str, tmp_path: Path) -> None:
    """The example exits 0 on the simulator and prints what it promises."""
    stdout = await _run(EXAMPLES / name, tmp_path)

    for pattern in EXPECTED[name]:
        assert re.search(pattern, stdout, re.MULTILINE), f"{pattern!r} not in:\n{stdout}"
    assert [p.name async for p in anyio.Path(tmp_path).rglob("*.part")] == []


@pytest.mark.anyio
@pytest.mark.slow
async def test_example_downloads_are_complete(tmp_path: Path) -> None:
    """The batch example leaves exactly the five successful videos, complete, on disk."""
    await _run(EXAMPLES / "batch_export.py", tmp_path)

    sizes = {
        p.name: (await p.stat()).st_size
        async for p in anyio.Path(tmp_path, "videos").iterdir()
        if p.suffix == ".mp4"  # the batch's journal sits beside the videos
    }
    assert len(sizes) == 5
    assert set(sizes.values()) == {2_000_000}


@pytest.mark.anyio
@pytest.mark.slow
async def test_readme_example_runs_verbatim(tmp_path: Path) -> None:
    """The README's ```python block, run as is, exports and downloads one video."""
    readme = await anyio.Path(REPO / "README.md").read_text(encoding="utf-8")
    script = tmp_path / "readme_example.py"
    await anyio.Path(script).write_text(_readme_python_block(readme), encoding="utf-8")

    stdout = await _run(script, tmp_path)

    assert re.search(r"^export is completed$", stdout, re.MULTILINE), stdout
    match = re.search(r"^saved ([\d,]+) bytes to (videos/prj_\w+\.mp4)$", stdout, re.MULTILINE)
    assert match is not None, stdout
    video = await anyio.Path(tmp_path / match[2]).stat()
    assert video.st_size == int(match[1].replace(",", ""))


def test_readme_keeps_the_two_setup_commands() -> None:
    """The README shows the main-job and test commands verbatim (CI runs the second)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    for command in README_COMMANDS:
        assert f"\n{command}\n" in readme
