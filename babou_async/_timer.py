"""
The time limit of a watch's looks: one timer per watch, not one per look.

A watch bounds each look (a status request, with its retries and its wait in the budget) by
what is left of its deadline. ``asyncio.timeout`` would do it with a ``Timeout``, a timer
handle (with a copy of the context) and a push to the loop's heap on every poll, and
anyio's cancel scope with more; 10,000 watches poll thousands of times a second. This timer
is armed once for the deadline and moved only when the limit changes (the last look, with
its grace); between looks it stays where it is.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

__all__ = ["LookTimer"]

#: A limit this close to the armed one keeps the timer where it is (seconds).
_SLACK = 0.001


class LookTimer:
    """
    Cuts the running look of one watch when its limit passes, by cancelling its task.

    Call :meth:`start` right before awaiting the look and :meth:`stop` right after, in every
    case; after a ``CancelledError`` from the look, :meth:`expired` says whether it was this
    timer's doing (and, on Python 3.11+, takes back its cancellation, so that a task group
    or ``asyncio.timeout`` around the watch still sees its own). The task is looked up at
    each start: an async generator may be iterated from different tasks.
    """

    __slots__ = ("_at", "_cancelling", "_fired", "_handle", "_task")

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._fired = False

    def start(self, seconds: float) -> None:
        """A look begins; cut it if it is still running ``seconds`` from now."""
        loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        if self._handle is None or abs(at - self._at) > _SLACK:
            self.close()
            self._handle = loop.call_at(at, self._fire)
            self._at = at
        task = asyncio.current_task()
        self._task = task
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        self._cancelling = 0 if cancelling is None else cancelling()
        self._fired = False

    def stop(self) -> None:
        """The look ended, one way or another."""
        self._task = None

    def expired(self) -> bool:
        """After a ``CancelledError`` from the look: whether this timer cut it (alone)."""
        if not self._fired:
            return False
        task = asyncio.current_task()
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() <= self._cancelling

    def close(self) -> None:
        """Disarm the timer (the watch ended)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._at = math.inf

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        # Only while a look runs: its task is then suspended inside the look, so the
        # cancellation lands there (no look returns normally after it).
        if self._task is not None:
            self._fired = True
            self._task.cancel()
