"""
The standalone simulator: ``python -m babou_async.testing``.

It prints ``BABOU_BASE_URL=...`` and ``BABOU_API_KEY=...`` lines on standard output
once both origins listen (the download origin needs no line: the API hands out its
URLs), then serves until SIGINT or SIGTERM and exits 0.
:func:`~babou_async.testing.main` is reusable by another command line (``babou simulate``), and
:func:`~babou_async.testing.serve_forever` by code that builds its own
:class:`~babou_async.testing.FakeBabou`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TextIO

from ._fake import FakeBabou
from ._faults import Faults

__all__ = ["build_parser", "fake_from_args", "main", "serve_forever"]


def _seed(value: str) -> int | None:
    """Parse ``--seed``: an integer, or ``random``."""
    if value == "random":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer or 'random'") from None


def _rate_limit(value: str) -> tuple[float, int]:
    """Parse ``--rate-limit RATE:BURST``."""
    rate, _, burst = value.partition(":")
    try:
        parsed = (float(rate), int(burst) if burst else max(1, round(float(rate))))
    except ValueError:
        raise argparse.ArgumentTypeError("expected RATE[:BURST], such as 5:10") from None
    if parsed[0] <= 0 or parsed[1] < 1:
        raise argparse.ArgumentTypeError("the rate must be positive and the burst at least 1")
    return parsed


def build_parser(prog: str = "python -m babou_async.testing") -> argparse.ArgumentParser:
    """
    Build the simulator's argument parser.

    Args:
        prog: The program name shown in help and errors.

    Returns:
        The parser; pass its result to ``fake_from_args``.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a fake Babou API (and its download origin) on this machine.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=8080, help="API port, 0 for any (default: %(default)s)")
    add("--asset-port", type=int, default=0, help="download-origin port, 0 for any (default)")
    add("--seed", type=_seed, default=0, help="integer seed, or 'random' (default: 0)")
    add("--api-key", default=None, help="the valid key (default: a seeded sk-bab-... key)")
    add("--prompt-seconds", type=float, default=3.0, help="prompt duration (default: 3)")
    add("--asset-seconds", type=float, default=1.0, help="asset processing time (default: 1)")
    add("--export-queued-seconds", type=float, default=1.0, help="export queue time (default: 1)")
    add("--export-seconds", type=float, default=3.0, help="export processing time (default: 3)")
    add("--video-size", type=int, default=8 * 1024 * 1024, help="bytes per export (default: 8 MiB)")
    add("--url-ttl", type=float, default=300.0, help="download URL lifetime (default: 300 s)")
    add("--list-projects-shape", choices=("envelope", "bare"), default="envelope")
    add("--create-status", type=int, choices=(200, 201), default=201)
    add("--rate-limit", type=_rate_limit, default=None, metavar="RATE[:BURST]")
    add("--max-upload-bytes", type=int, default=100 * 1024 * 1024)
    add("--record-limit", type=int, default=10_000, help="requests kept in memory")
    faults = parser.add_argument_group("faults")
    fadd = faults.add_argument
    fadd("--latency", type=float, default=0.0, help="seconds added to each API request")
    fadd("--server-error-rate", type=float, default=0.0)
    fadd("--rate-limit-rate", type=float, default=0.0, help="probability of a random 429")
    fadd("--retry-after", type=float, default=1.0)
    fadd("--retry-after-form", choices=("seconds", "http-date", "none"), default="seconds")
    fadd("--html-errors", action="store_true", help="502/503 with HTML bodies")
    fadd("--drop-api-rate", type=float, default=0.0, help="probability of a closed connection")
    fadd("--drop-rate", type=float, default=0.0, help="probability of a cut download")
    fadd("--export-fail-rate", type=float, default=0.0)
    fadd("--prompt-fail-rate", type=float, default=0.0)
    fadd("--upload-fail-rate", type=float, default=0.0)
    fadd("--asset-fail-rate", type=float, default=0.0)
    fadd("--ignore-range", action="store_true", help="answer every download with 200")
    fadd("--expired-status", type=int, choices=(403, 404, 410), default=403)
    fadd("--slow-bytes-per-second", type=float, default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request")
    return parser


def fake_from_args(args: argparse.Namespace) -> FakeBabou:
    """
    Build a simulator from parsed arguments.

    Args:
        args: The result of ``build_parser().parse_args()``.

    Returns:
        A :class:`~babou_async.testing.FakeBabou`, not started yet.

    Raises:
        ValueError: For an invalid value (a fault rate outside [0, 1]...).
    """
    faults = Faults(
        latency=args.latency,
        server_error_rate=args.server_error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        retry_after_form=args.retry_after_form,
        html_errors=args.html_errors,
        drop_api_rate=args.drop_api_rate,
        drop_rate=args.drop_rate,
        export_fail_rate=args.export_fail_rate,
        prompt_fail_rate=args.prompt_fail_rate,
        upload_fail_rate=args.upload_fail_rate,
        asset_fail_rate=args.asset_fail_rate,
        ignore_range=args.ignore_range,
        expired_status=args.expired_status,
        slow_bytes_per_second=args.slow_bytes_per_second,
    )
    return FakeBabou(
        api_key=args.api_key,
        seed=args.seed,
        host=args.host,
        port=args.port,
        asset_port=args.asset_port,
        prompt_seconds=args.prompt_seconds,
        asset_seconds=args.asset_seconds,
        export_queued_seconds=args.export_queued_seconds,
        export_processing_seconds=args.export_seconds,
        video_size=args.video_size,
        url_ttl=args.url_ttl,
        list_projects_shape=args.list_projects_shape,
        faults=faults,
        rate_limit=args.rate_limit,
        max_upload_bytes=args.max_upload_bytes,
        create_status=args.create_status,
        record_limit=args.record_limit,
    )


async def serve_forever(
    fake: FakeBabou,
    *,
    stop: asyncio.Event | None = None,
    announce: TextIO | None = None,
) -> None:
    """
    Run a simulator until SIGINT or SIGTERM (or until ``stop`` is set), then close it.

    Signal handlers are installed only where the loop supports them (the main
    thread on Unix) and removed on return.

    Args:
        fake: The simulator; started here if it is not running yet.
        stop: An event that ends serving when set.
        announce: Where to print the ``BABOU_BASE_URL=...`` lines once serving.
    """
    stop = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - platform
            continue
        installed.append(signum)
    try:
        await fake.start()
        if announce is not None:
            announce.write(f"BABOU_BASE_URL={fake.base_url}\nBABOU_API_KEY={fake.api_key}\n")
            announce.flush()
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    """
    Run the standalone simulator.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after SIGINT or SIGTERM, 1 when a port cannot be bound,
        2 for invalid arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        fake = fake_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        asyncio.run(serve_forever(fake, announce=sys.stdout))
    except KeyboardInterrupt:  # pragma: no cover - only where signal handlers are unsupported
        return 0
    except OSError as error:
        sys.stderr.write(f"error: cannot serve: {error}\n")
        return 1
    return 0
