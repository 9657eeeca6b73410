"""
Smoke test of the benchmarks (``python -m benchmarks``).

Every benchmark runs once, in ``--smoke`` mode (``--quick`` with tiny sizes and a single
repetition), in a subprocess; the test checks that each one ran and produced well-formed
rows. It asserts nothing about speed: timings belong to ``nox -s bench``, never to tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_ROWS = {
    "download.throughput",
    "download.client_cpu",
    "memory.peak_rss",
    "overhead.sequential",
    "overhead.sequential.cpu",
    "overhead.sequential.unlimited",
    "overhead.sequential.unlimited.cpu",
    "overhead.concurrent",
    "overhead.concurrent.cpu",
    "overhead.concurrent.unlimited",
    "overhead.concurrent.unlimited.cpu",
    "watches.wall",
    "watches.completed",
    "watches.rss_per_watch",
    "watches.cpu_per_poll",
    "watches.requests_per_export",
    "watches.detection_latency",
    "polling.requests_per_export",
    "polling.detection_latency",
    "polling.no_estimate.requests",
    "polling.no_estimate.latency",
    "polling.vs_backoff",
    "polling.responsive",
    "polling.frugal",
    "polling.session",
    "budget.key_limit.wall",
    "budget.key_limit.share_429",
    "budget.random_429.wall",
    "budget.random_429.unlimited",
}


def _bench(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


Smoke = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = _bench("--smoke", "--json", str(out))
    assert out.exists(), done.stdout + done.stderr
    return done, json.loads(out.read_text())


def test_every_benchmark_runs(smoke: Smoke) -> None:
    """Smoke mode runs every benchmark to the end: no ERROR row, no traceback."""
    done, report = smoke
    # 0 or 1: tiny sizes may miss targets; 1 is also what a broken benchmark gives, hence:
    assert done.returncode in (0, 1), done.stderr
    errors = [r for r in report["results"] if r["status"] == "ERROR"]
    assert not errors, (errors, done.stderr)
    assert "Traceback" not in done.stderr
    assert report["mode"] == "smoke"
    assert set(report["seconds"]) == {
        "download",
        "memory",
        "overhead",
        "watches",
        "polling",
        "budget",
    }


def test_rows_are_well_formed(smoke: Smoke) -> None:
    """Every expected row is reported once, with a known status, a target and numeric figures."""
    _, report = smoke
    rows = {r["name"]: r for r in report["results"]}
    if rows.get("download.throughput", {}).get("status") == "SKIP":  # no curl here
        expected = EXPECTED_ROWS - {"download.client_cpu"}
    else:
        expected = EXPECTED_ROWS
    assert set(rows) == expected
    for row in rows.values():
        assert row["status"] in ("PASS", "FAIL", "INFO", "SKIP")
        assert isinstance(row["target"], str)
        assert row["target"]
        assert isinstance(row["details"], dict)
        for key in ("ours", "baseline", "ratio"):
            value = row[key]
            assert value is None or (isinstance(value, (int, float)) and not math.isnan(value))
        if row["status"] in ("PASS", "FAIL"):
            assert row["ours"] is not None


def test_table_printed_and_exit_code_matches(smoke: Smoke) -> None:
    """The table lists every row and the exit code says whether a target was missed."""
    done, report = smoke
    for row in report["results"]:
        assert row["name"] in done.stdout
    missed = [r for r in report["results"] if r["status"] in ("FAIL", "ERROR")]
    assert done.returncode == (1 if missed else 0)
    assert ("missed:" in done.stdout) == bool(missed)


def test_outcomes_the_figures_rest_on(smoke: Smoke) -> None:
    """The facts behind the figures hold: watches complete, no task leaks, requests are counted."""
    _, report = smoke
    rows = {r["name"]: r for r in report["results"]}
    # Every watch completed and nothing was left running (a correctness fact, not timing).
    assert rows["watches.completed"]["ours"] == rows["watches.completed"]["baseline"]
    assert rows["watches.wall"]["details"]["leftover_tasks"] == 0
    # Requests are counted, so each export needed at least its start and one poll.
    assert rows["watches.requests_per_export"]["ours"] >= 2
    assert rows["polling.requests_per_export"]["baseline"] >= 2
    if rows["download.throughput"]["status"] != "SKIP":
        details = rows["download.throughput"]["details"]
        assert len(details["samples"]["ours"]) == len(details["samples"]["curl"]) == 1


def test_only_and_usage() -> None:
    """An unknown --only name is a usage error (exit 2); --help documents --quick."""
    done = _bench("--only", "nope", timeout=60)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
    done = _bench("--help", timeout=60)
    assert done.returncode == 0
    assert "--quick" in done.stdout
