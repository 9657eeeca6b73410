"""The pure rule for a start whose answer was lost: adopt what it started, never render twice."""

from __future__ import annotations

import pytest

from babou_async import Export, ExportStatus
from babou_async._rerun import UNKNOWN, took_effect


def export(status: ExportStatus) -> Export:
    return Export(project_id="prj_a", status=status, status_raw=status.value)


QUEUED, DONE, FAILED = (
    export(s) for s in (ExportStatus.QUEUED, ExportStatus.COMPLETED, ExportStatus.FAILED)
)


@pytest.mark.parametrize(
    ("before", "now", "ours"),
    [
        (UNKNOWN, None, False),  # nothing there: the lost start did not take effect
        (None, None, False),
        (UNKNOWN, QUEUED, True),  # running: followed, as a 409 would say
        (DONE, QUEUED, True),
        (None, DONE, True),  # none before, finished now: ours, finished before the retry
        (None, FAILED, True),
        (FAILED, DONE, True),
        (FAILED, FAILED, False),  # cannot be told from the old one: start again
        (DONE, DONE, False),
        (UNKNOWN, DONE, False),
        (UNKNOWN, FAILED, False),
    ],
)
def test_took_effect(before: Export | str | None, now: Export | None, ours: bool) -> None:
    """Each (before, now) pair: adopted only when the export cannot be the old one."""
    assert ours is took_effect(before, now)  # type: ignore[arg-type]
