"""
Benchmarks of babou_async, as ratios against baselines run side by side.

Run them with ``python -m benchmarks [--quick] [--json FILE] [--only NAME]`` (or
``nox -s bench``); ``benchmarks/README.md`` explains each target. Every figure here is
relative to a baseline measured in the same run on the same machine, never an absolute
timing: the machines these run on are shared and noisy.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Options",
    "Result",
    "RssSampler",
    "ServerProcess",
    "cpu_seconds",
    "median",
    "rss_bytes",
]

Status = Literal["PASS", "FAIL", "INFO", "ERROR", "SKIP"]

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    """
    How big and how long.

    Attributes:
        quick: Smaller sizes and fewer repetitions (``--quick``, under a minute in all).
        smoke: Tiny sizes and a single repetition, only to check that everything runs
            (the test suite's ``--smoke``); the figures mean nothing.
        python: The interpreter for child processes.
    """

    quick: bool = False
    smoke: bool = False
    python: str = sys.executable

    def pick(self, full: int, quick: int, smoke: int) -> int:
        """Choose a size by mode."""
        return smoke if self.smoke else quick if self.quick else full

    def pickf(self, full: float, quick: float, smoke: float) -> float:
        """Choose a duration by mode."""
        return smoke if self.smoke else quick if self.quick else full


@dataclass
class Result:
    """
    One row of the results table.

    Attributes:
        name: ``benchmark.figure``.
        ours: Our figure (``unit``).
        baseline: The baseline's figure, when there is one.
        ratio: ``ours / baseline`` (or as the benchmark defines it).
        target: The target in words, e.g. ``"ratio >= 0.90"``.
        status: ``PASS``/``FAIL`` against the target; ``INFO`` for a reported figure
            without a target; ``ERROR`` when the benchmark broke; ``SKIP`` when it could
            not run here (no curl).
        unit: Unit of ``ours`` and ``baseline``.
        details: Everything else measured (samples, CPU, request counts...).
    """

    name: str
    ours: float | None
    baseline: float | None
    ratio: float | None
    target: str
    status: Status
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def check(passed: bool) -> Status:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, baseline: float) -> float:
    """``ours / baseline`` without dividing by zero."""
    return ours / baseline if baseline else float("inf")


# -- process measurements (psutil when installed, /proc otherwise) ------------------------

_psutil: Any
try:
    _psutil = importlib.import_module("psutil")
except ImportError:  # psutil is in the bench extra, not in the tests one
    _psutil = None


def rss_bytes(pid: int | None = None) -> int:
    """Current resident set size of a process (this one by default)."""
    if _psutil is not None:
        return int(_psutil.Process(pid).memory_info().rss)
    statm = Path(f"/proc/{pid or 'self'}/statm").read_text().split()
    return int(statm[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads), this one by default."""
    if pid is None:
        return time.process_time()
    if _psutil is not None:
        times = _psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples this process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_bytes())


# -- the simulator in its own process -----------------------------------------------------


class ServerProcess:
    """
    A FakeBabou in a child process (``benchmarks._server``), announced by one JSON line.

    Attributes:
        info: The announcement: ``base_url``, ``api_key``, ``projects``...
    """

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The API root."""
        return str(self.info["base_url"])

    @property
    def api_key(self) -> str:
        """The simulator's key."""
        return str(self.info["api_key"])

    @property
    def project_ids(self) -> list[str]:
        """The seeded projects, in order."""
        return [str(p["id"]) for p in self.info["projects"]]

    def cpu(self) -> float:
        """CPU seconds the server process used so far."""
        return cpu_seconds(self.proc.pid)

    def command(self, line: str) -> dict[str, Any]:
        """Send a command (``stats``, ``clear``) and return its JSON answer."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer: dict[str, Any] = json.loads(_readline(self.proc, 30.0))
        return answer

    @classmethod
    @contextmanager
    def run(
        cls, opts: Options, *args: str, startup_timeout: float = 120.0
    ) -> Iterator[ServerProcess]:
        """Start the simulator with ``args``, yield it, and stop it."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [opts.python, "-m", "benchmarks._server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        try:
            info = json.loads(_readline(proc, startup_timeout))
            yield cls(proc, info)
        finally:
            _stop(proc)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """Read one line of the child's stdout, or fail after ``timeout`` seconds."""
    assert proc.stdout is not None
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not out or not out[0]:
        code = proc.poll()
        raise RuntimeError(f"benchmark server gave no answer (exit code {code})")
    return out[0]


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop our own child: close its stdin, then SIGTERM, then SIGKILL (by pid)."""
    if proc.stdin is not None:
        with suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


def timed(func: Callable[[], object]) -> float:
    """Wall-clock seconds of ``func()``."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
