"""
The soak: many exports through every fault at once, re-run until done, byte-identical.

Each round is one :meth:`~babou_async.BabouSession.export_many` into the same directory
against a simulator with all its faults on (random 429s and 5xx with HTML bodies, dropped
API connections, before and after a POST took effect, failed renders, cut, expired and
redirected downloads). A round ends with some projects failed (a failed render, a fault that
outlasted the retry policy); the next round, like a user's re-run, finishes them. When every
project is done:

* every video is byte-identical to the simulator's latest render of it;
* the directory holds the journal and one video per project, nothing else (no ``.part``);
* no project was rendered more than once per failed render seen (no render paid twice);
* every error a round reported is a :class:`~babou_async.BabouError`.

``python -m tests.differential.soak --exports 500 --seeds 10`` runs the full soak on both
simulators (FakeBabou and the independent one); the test suite runs a small one.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import anyio
import attrs

from babou_async import BabouError, BabouSession, ExportFailedError, PollPolicy, RetryPolicy
from babou_async.testing import FakeBabou, Faults

from .independent_sim import Faults as IndependentFaults
from .independent_sim import IndependentBabou

Simulator = Literal["fake", "independent"]
KEY = "sk-bab-soak0123456789abcdef"
#: Enough attempts that most faults are ridden out within a round, with millisecond backoff.
RETRY = RetryPolicy(attempts=6, base_delay=0.005, max_delay=0.05)
POLL = PollPolicy.fast()
MAX_ROUNDS = 12


@attrs.frozen(kw_only=True)
class SoakReport:
    """What one soak run did, and the checks it passed."""

    simulator: Simulator
    seed: int
    exports: int
    rounds: int
    renders: int
    failed_renders: int
    requests: int
    seconds: float

    def line(self) -> str:
        """One line for a terminal."""
        return (
            f"{self.simulator:<11} seed {self.seed:>2}: {self.exports} exports byte-identical in "
            f"{self.rounds} round(s), {self.renders} renders ({self.failed_renders} failed), "
            f"{self.requests} requests, {self.seconds:.1f} s"
        )


class SoakCheckError(AssertionError):
    """A soak check failed."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SoakCheckError(message)


async def _rounds(
    babou: BabouSession, pids: list[str], dest: Path, concurrency: int
) -> tuple[int, int]:
    """Run ``export_many`` until every project is done; return (rounds, failed renders seen)."""
    failed_renders = 0
    for round_number in range(1, MAX_ROUNDS + 1):
        results = await babou.export_many(pids, dest, concurrency=concurrency, poll=POLL)
        _check([r.project_id for r in results] == pids, "results out of order")
        for result in results:
            _check(
                result.ok or isinstance(result.error, BabouError),
                f"{result.project_id}: not a BabouError: {result.error!r}",
            )
            failed_renders += isinstance(result.error, ExportFailedError)
        if all(r.ok for r in results):
            return round_number, failed_renders
    raise SoakCheckError(f"not done after {MAX_ROUNDS} rounds")


async def _check_disk(dest: Path, pids: list[str], digest: Callable[[str], str]) -> None:
    names = sorted([p.name async for p in anyio.Path(dest).iterdir()])
    journal = [n for n in names if n.startswith(".babou-journal")]
    expected = sorted([*journal, *(f"{pid}.mp4" for pid in pids)])
    _check(names == expected, f"unexpected files: {sorted(set(names) - set(expected))}")
    for pid in pids:
        data = await anyio.Path(dest / f"{pid}.mp4").read_bytes()
        _check(hashlib.sha256(data).hexdigest() == digest(pid), f"{pid}: bytes differ")


@attrs.frozen
class Target:
    """The simulator a soak runs against, and how to check what it served."""

    simulator: Simulator
    seed: int
    base_url: str
    digest: Callable[[str], str]  # the SHA-256 of a project's latest render
    renders: Callable[[str], int]  # how many exports of a project were started


async def _soak(
    target: Target, pids: list[str], dest: Path, concurrency: int, requests: Callable[[], int]
) -> SoakReport:
    """Rounds until done, then every check; the report."""
    began = time.monotonic()
    async with BabouSession(KEY, base_url=target.base_url, retry=RETRY) as babou:
        rounds, failed = await _rounds(babou, pids, dest, concurrency)
    await _check_disk(dest, pids, target.digest)
    renders = sum(target.renders(pid) for pid in pids)
    exports = len(pids)
    _check(renders == exports + failed, f"{renders} renders for {exports} + {failed} failed")
    return SoakReport(
        simulator=target.simulator,
        seed=target.seed,
        exports=exports,
        rounds=rounds,
        renders=renders,
        failed_renders=failed,
        requests=requests(),
        seconds=time.monotonic() - began,
    )


def _fake_faults() -> Faults:
    return Faults(
        rate_limit_rate=0.03,
        retry_after=0.01,
        server_error_rate=0.03,
        html_errors=True,
        drop_api_rate=0.03,
        export_fail_rate=0.05,
        drop_rate=0.15,
    )


async def soak_fake(exports: int, seed: int, dest: Path, concurrency: int = 500) -> SoakReport:
    """The soak against :class:`~babou_async.testing.FakeBabou`."""
    async with FakeBabou(
        api_key=KEY,
        seed=seed,
        export_processing_seconds=0.2,
        video_size=64 * 1024,
        url_ttl=1.0,
        faults=_fake_faults(),
    ) as fake:
        pids = [fake.seed_project(f"Soak {i}") for i in range(exports)]
        return await _soak(
            Target("fake", seed, fake.base_url, fake.video_sha256, fake.renders),
            pids,
            dest,
            concurrency,
            requests=lambda: len(fake.requests),
        )


def _independent_faults() -> IndependentFaults:
    return IndependentFaults(
        rate_429=0.03,
        rate_5xx=0.03,
        rate_drop=0.03,
        methods=frozenset({"GET", "POST"}),
        retry_after="seconds",
        download_drop=0.15,
        download_5xx=0.05,
        expire_first_url=True,
        redirect=True,
        cdn_lag=0.1,
    )


async def soak_independent(
    exports: int, seed: int, dest: Path, concurrency: int = 500
) -> SoakReport:
    """The soak against the independent simulator (``independent_sim.py``)."""
    # Renders take longer than the client's retry of a lost start, as real ones (minutes)
    # do: a start that jumped straight in (no look first) cannot tell a render that finished
    # before its retry from an old one (see _rerun.took_effect). The retry can wait seconds
    # for the budget while random 429s slow it, so the renders here take ten.
    async with IndependentBabou(
        seed=seed,
        api_key=KEY,
        faults=_independent_faults(),
        video_size=(20_000, 80_000),
        export_processing_seconds=10.0,
    ) as sim:
        pids = [sim.add_project(f"Soak {i}") for i in range(exports)]

        def digest(pid: str) -> str:
            return hashlib.sha256(sim.video(pid)).hexdigest()

        return await _soak(
            Target("independent", seed, sim.base_url, digest, sim.renders),
            pids,
            dest,
            concurrency,
            requests=lambda: len(sim.requests),
        )


SOAKS = {"fake": soak_fake, "independent": soak_independent}


async def _main(exports: int, seeds: int, simulators: list[Simulator]) -> None:
    for simulator in simulators:
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as directory:
                report = await SOAKS[simulator](exports, seed, Path(directory))
            print(report.line(), flush=True)  # noqa: T201 - a command-line tool


def main() -> None:
    """``python -m tests.differential.soak [--exports N] [--seeds N] [--sim fake|independent]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sim", choices=sorted(SOAKS), action="append")
    args = parser.parse_args()
    anyio.run(_main, args.exports, args.seeds, args.sim or ["fake", "independent"])


if __name__ == "__main__":
    main()
