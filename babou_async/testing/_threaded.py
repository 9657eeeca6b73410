"""
A FakeBabou served from a thread of its own, for sync tests and tests on any event loop.

The pytest plugin's ``babou_fake`` fixture is one of these. The simulator runs on an event
loop in a background thread, so a plain ``def test_...`` can use it (with ``requests``,
``httpx`` or a ``subprocess``), and so can an anyio or pytest-asyncio test on its own loop:
nothing ties the simulator to the test's loop, which each runner creates and closes per
test.

:class:`ThreadedFake` stands for the :class:`~babou_async.testing.FakeBabou` it serves,
with the same methods and attributes. Every method call, attribute read and attribute
write runs on the simulator's loop, between two requests, so the simulator's state is only
ever touched from its own thread: calls are thread-safe. A call waits for the simulator's
loop (microseconds, unless it is busy).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ._fake import FakeBabou

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ThreadedFake", "serve_in_thread"]

_T = TypeVar("_T")

#: The longest a call waits for the simulator's thread, in seconds.
CALL_TIMEOUT = 60.0


async def _await_result(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``function`` on the simulator's loop; await what it returns if it is awaitable."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _snapshot(fake: FakeBabou, name: str) -> Any:
    """Read ``fake.name``; a list (such as ``requests``) is copied, not shared."""
    value = getattr(fake, name)
    return list(value) if isinstance(value, list) else value


class ThreadedFake:
    """
    A :class:`~babou_async.testing.FakeBabou` on a background thread, used from any thread.

    Attribute reads, writes and method calls are forwarded to the simulator and run on its
    own event loop. Lists (:attr:`~babou_async.testing.FakeBabou.requests`) come back as
    copies.
    """

    def __init__(self, fake: FakeBabou) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="babou-fake", daemon=True)
        object.__setattr__(self, "_fake", fake)
        object.__setattr__(self, "_loop", loop)
        object.__setattr__(self, "_thread", thread)

    def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run ``function(*args)`` on the simulator's loop and return its result."""
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("the simulator's own thread cannot wait for itself")
        future = asyncio.run_coroutine_threadsafe(_await_result(function, args), self._loop)
        return future.result(CALL_TIMEOUT)  # type: ignore[no-any-return]

    # A context manager, not ``start``/``close`` methods: those are the simulator's own
    # names, forwarded like the rest.
    def __enter__(self) -> Self:
        """Start the thread, then the simulator on it."""
        self._thread.start()
        try:
            self._call(self._fake.start)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        """Stop the simulator, then its loop and thread."""
        try:
            self._call(self._fake.close)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CALL_TIMEOUT)
            self._loop.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._call(_snapshot, self._fake, name)
        if not inspect.ismethod(value):
            return value

        @functools.wraps(value)
        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(functools.partial(value, **kwargs), *args)

        return method

    def __setattr__(self, name: str, value: object) -> None:
        self._call(setattr, self._fake, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._fake)) | set(super().__dir__()))

    def __repr__(self) -> str:
        return f"<ThreadedFake of {self._fake!r}>"


@contextmanager
def serve_in_thread(**options: Any) -> Iterator[ThreadedFake]:
    """
    Serve ``FakeBabou(**options)`` from a background thread for the ``with`` block.

    Raises:
        TypeError: An option ``FakeBabou`` does not take.
    """
    with ThreadedFake(FakeBabou(**options)) as server:
        yield server
