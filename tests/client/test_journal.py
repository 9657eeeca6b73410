"""The batch journal shared by concurrent jobs: opening a new one at once never fails."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from babou_async import JournalLockedError
from babou_async._journal import Journal

pytestmark = pytest.mark.anyio


async def _open_many(directory: Path, count: int) -> list[Journal]:
    opened: list[Journal] = []

    async def one() -> None:
        opened.append(await Journal.open(directory, exclusive=False))

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return opened


async def _race(tmp_path: Path, rounds: int) -> None:
    for index in range(rounds):
        opened = await _open_many(tmp_path / str(index), 16)
        for journal in opened:
            await journal.update("prj_a", "now", export_status="starting")
            await journal.aclose()


async def test_jobs_opening_a_new_journal_at_once_all_get_it(tmp_path: Path) -> None:
    """Sixteen shared openers of a fresh journal, ten times: every one opens and writes."""
    for index in range(10):
        await anyio.Path(tmp_path / str(index)).mkdir()
    await _race(tmp_path, 10)


async def test_an_exclusive_batch_still_refuses_a_second_one_at_once(tmp_path: Path) -> None:
    """The retry is for shared openers: a second exclusive batch fails without waiting."""
    first = await Journal.open(tmp_path, exclusive=True)
    try:
        with pytest.raises(JournalLockedError):
            await Journal.open(tmp_path, exclusive=True)
    finally:
        await first.aclose()


@pytest.mark.slow
async def test_a_job_beside_a_running_batch_is_refused_within_seconds(tmp_path: Path) -> None:
    """A shared opener of a journal a batch holds gives up after its deadline, not minutes."""
    first = await Journal.open(tmp_path, exclusive=True)
    try:
        with anyio.fail_after(30), pytest.raises(JournalLockedError):
            await Journal.open(tmp_path, exclusive=False)
    finally:
        await first.aclose()
