"""
Printing without blocking the event loop: the writer thread, and the one-line error.

Everything a command prints while its event loop runs goes through a :class:`Writer`, so
that a slow or full pipe never stalls the downloads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import IO

from babou_async._redaction import redact

__all__ = ["Writer", "fail", "write_line"]


def write_line(stream: IO[str], text: str) -> None:
    """Write one line and flush it (outside the event loop, or on the writer thread)."""
    stream.write(text + "\n")
    stream.flush()


def fail(message: str, secret: str | None = None) -> None:
    """Print ``babou: error: MESSAGE`` on standard error, the key (``secret``) hidden."""
    write_line(sys.stderr, f"babou: error: {redact(message, secret)}")


class Writer:
    """
    Prints from a daemon thread, in order, so that the event loop never waits on a pipe.

    A closed pipe (``babou export ... | head``) silences further output instead of failing.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="babou-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._broken:
                continue
            try:
                job()
            except BrokenPipeError:
                self._broken = True
                with contextlib.suppress(OSError, ValueError):
                    # As the Python docs advise: point stdout at devnull so that the
                    # interpreter's final flush does not complain.
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())

    def call(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the writer thread, after everything queued before it."""
        self._jobs.put(job)

    def out(self, text: str) -> None:
        """Print a line on standard output."""
        self.call(lambda: write_line(sys.stdout, text))

    def err(self, text: str) -> None:
        """Print a line on standard error."""
        self.call(lambda: write_line(sys.stderr, text))

    def close(self) -> None:
        """Flush everything queued and stop the thread (call outside the event loop)."""
        self._jobs.put(None)
        self._thread.join()
