"""Constants shared by the test layers, defined once (conftest.py's fixtures use them too)."""

from __future__ import annotations

from babou_async import PollPolicy, RetryPolicy

#: Polls every 50 ms, up to 0.5 s: for simulators that finish jobs in tenths of a second.
FAST_POLL = PollPolicy.fast()


def fast_retry(
    attempts: int = 4, *, base_delay: float = 0.001, max_delay: float = 0.01
) -> RetryPolicy:
    """A retry policy with millisecond backoff; ``attempts`` is what tests count against."""
    return RetryPolicy(attempts=attempts, base_delay=base_delay, max_delay=max_delay)


#: The default fast retry policy of the suite.
FAST_RETRY = fast_retry()
