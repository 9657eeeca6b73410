"""
Running a command's async code: the event loop, Ctrl-C and SIGTERM, and where log records go.

* :func:`run` runs a coroutine function on asyncio (aiohttp needs it);
* :func:`interruptible` turns SIGINT/SIGTERM into a clean cancellation;
* :func:`warnings_to_stderr` (every command) and :func:`showing` (batch commands) route the
  library's log records: to ``warning: ...`` lines, or to the live display.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import anyio
import attrs

from babou_async import BabouSession
from babou_async._redaction import redact

from ._display import Display
from ._output import Writer

__all__ = [
    "Interrupt",
    "interruptible",
    "library_log",
    "log_kind",
    "run",
    "run_session",
    "showing",
    "silenced",
    "warnings_to_stderr",
]

T = TypeVar("T")

#: The library's logger: retries, resumed downloads, followed exports.
library_log = logging.getLogger("babou_async")


def run(func: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function on asyncio (aiohttp needs it)."""

    async def call() -> T:
        return await func()

    return anyio.run(call, backend="asyncio")


def run_session(session: BabouSession, func: Callable[[BabouSession], Awaitable[T]]) -> T:
    """Run ``func(session)`` on asyncio, the session open around it."""

    async def call() -> T:
        async with session:
            return await func(session)

    return run(call)


@attrs.define
class Interrupt:
    """Which signal stopped the run, if one did (filled in by :func:`interruptible`)."""

    signum: int | None = None

    @property
    def happened(self) -> bool:
        """Whether a signal stopped the run."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def interruptible(state: Interrupt) -> Iterator[Interrupt]:
    """
    Let SIGINT/SIGTERM cancel the ``with`` body cleanly instead of raising a traceback.

    Cancellation unwinds normally: downloads delete their ``.part`` files (shielded
    clean-up) and the body's partial results stay available to print a summary. The signal
    received is recorded in ``state``. Call it from the event loop.
    """
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:

        def on_signal(signum: int) -> None:
            if state.signum is None:
                state.signum = signum
                scope.cancel()

        installed: list[int] = []
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue
            installed.append(signum)
        try:
            yield state
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


class _StderrLogHandler(logging.Handler):
    """
    Log lines of commands without a live display, one each, prefixed with their level.

    ``warning: ...`` (and ``error: ...``) need a look; with ``-v``, ``info: ...`` lines say
    what the library rode through on its own (a retry, a resume); ``-vv`` adds ``debug: ...``.
    """

    def __init__(self, writer: Writer, secret: Callable[[], str | None]) -> None:
        super().__init__()
        self.writer = writer
        self.secret = secret

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        self.writer.err(f"{level}: {redact(record.getMessage(), self.secret())}")


def log_kind(record: logging.LogRecord) -> str | None:
    """``"retry"`` for a retried request or poll, ``"cut"`` for a resumed download, else None."""
    message = str(record.msg)  # the format, stable whatever the arguments
    if message.startswith(("retrying ", "poll failed")):
        return "retry"
    if message.startswith("download of ") and "interrupted" in message:
        return "cut"
    return None


class _DisplayLogHandler(logging.Handler):
    """Routes the library's log records (retries, resumed downloads) to the display."""

    def __init__(self, display: Display) -> None:
        super().__init__(logging.INFO)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact(record.getMessage(), self.display.secret)
            self.display.on_log(record.levelno, log_kind(record), text)
        except Exception:  # noqa: BLE001 - a log record must never break a batch
            self.handleError(record)


@contextlib.contextmanager
def warnings_to_stderr(secret: Callable[[], str | None]) -> Iterator[None]:
    """
    Print the library's warnings on stderr for the ``with`` body (flushed on exit).

    ``secret`` returns the API key to hide: it is only known once the options are parsed.
    Batch commands swap the handler for their display while they run (:func:`showing`);
    ``-v`` lowers the level to INFO.
    """
    handler = _StderrLogHandler(Writer(), secret)
    level = library_log.level
    library_log.addHandler(handler)
    library_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        library_log.removeHandler(handler)
        library_log.setLevel(level)
        handler.writer.close()


@contextlib.contextmanager
def showing(display: Display, verbose: int) -> Iterator[Display]:
    """
    Run a display (and route the library's log records to it) for the ``with`` body.

    Informational records reach the display even without ``-v``: it counts the retries
    and the cut downloads, and shows only the lines that ``verbose`` (or a warning) asks for.
    """
    handler = _DisplayLogHandler(display)
    handler.setLevel(min(_level(verbose), logging.INFO))
    display.verbose = verbose
    previous = (library_log.level, library_log.propagate, list(library_log.handlers))
    library_log.handlers = [handler]
    library_log.setLevel(handler.level)
    library_log.propagate = False
    display.start()
    try:
        yield display
    finally:
        display.stop()
        library_log.handlers = previous[2]
        library_log.setLevel(previous[0])
        library_log.propagate = previous[1]


def _level(verbose: int) -> int:
    """The library's log level for ``-v`` given ``verbose`` times: info, then debug."""
    return logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING


@contextlib.contextmanager
def silenced(name: str) -> Iterator[None]:
    """Drop the records of logger ``name`` below CRITICAL for the ``with`` body."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
