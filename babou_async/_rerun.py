"""
What a (re-)run does for one project, decided from the journal, the disk and the server.

Pure functions, part of the sans-I/O core: the per-project job (:mod:`babou_async._project`)
asks :func:`first_step` before sending anything, and :func:`after_look` once it has the
export's status. The rules (the re-run contract, documented in ``docs/exports.md``):

* a finished file recorded in the journal, with the same size and mtime, is skipped with no
  request at all;
* any other file at the final path is verified against the server's size (one small probe)
  before it is called complete; a file that does not match is never reported ok;
* an export this batch started is looked at first (GET): running is followed, completed is
  downloaded, failed (or gone) is started again: never a second render of a good one;
* an export the batch did not start is started, unless the caller asked to reuse completed
  ones, or not to start at all.
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from ._journal import Entry
from ._models import Export, ExportStatus

__all__ = ["First", "OnDisk", "Reuse", "Then", "after_look", "first_step"]

#: What an existing export not started by this batch may be used for.
Reuse = Literal["completed"] | None


@attrs.frozen
class OnDisk:
    """A file at the final path: its size and modification time."""

    size: int
    mtime_ns: int


class First(enum.Enum):
    """The first step for a project."""

    SKIP = "skip"  #: the journal's finished file is there, unchanged: no request
    VERIFY = "verify"  #: a file the journal does not vouch for: check it with the server
    LOOK = "look"  #: look at the export first (GET): follow, download or start it
    START = "start"  #: start an export (POST)


class Then(enum.Enum):
    """What to do once the export's status is known."""

    WATCH = "watch"  #: running: follow it to a terminal status
    DOWNLOAD = "download"  #: completed: download it
    START = "start"  #: start a new export
    REPORT = "report"  #: nothing to do but report the status (failed, or not found)


def first_step(
    entry: Entry | None,
    on_disk: OnDisk | None,
    *,
    start: bool,
    reuse: Reuse,
    overwrite: bool,
) -> First:
    """The first step for a project (see the module docstring)."""
    if on_disk is not None and not overwrite:
        recorded = entry is not None and (entry.file_size, entry.file_mtime_ns) == (
            on_disk.size,
            on_disk.mtime_ns,
        )
        return First.SKIP if recorded else First.VERIFY
    if entry is not None and entry.started_here:
        return First.LOOK
    if not start or reuse == "completed":
        return First.LOOK
    return First.START


def after_look(export: Export | None, *, ours: bool, start: bool, reuse: Reuse) -> Then:
    """
    What to do with the export found by a look (``None``: the server has none).

    Args:
        export: The export's status.
        ours: This batch started (or adopted) it.
        start: The caller lets us start exports.
        reuse: Whether a completed export the batch did not start may be downloaded.
    """
    if export is None:
        return Then.START if start else Then.REPORT
    if not export.is_terminal:
        return Then.WATCH  # ours, or someone else's: following it costs no render
    if export.status is ExportStatus.COMPLETED:
        if ours or reuse == "completed" or not start:
            return Then.DOWNLOAD
        return Then.START
    return Then.START if start else Then.REPORT


#: ``before`` of :func:`took_effect` when nothing was looked at before the start.
UNKNOWN: Literal["unknown"] = "unknown"


def took_effect(before: Export | Literal["unknown"] | None, now: Export | None) -> bool:
    """
    Whether a start whose answer was lost (a dropped connection, a 5xx) started ``now``.

    Asked before sending the start again, since a second start after a finished export is a
    second render. ``before`` is the export seen just before the start (``None``: the server
    had none; :data:`UNKNOWN`: not looked at). A running export is always followed (a 409
    would say the same). A finished one is ours only when it differs from what was there:
    none before, or a failed one before and a completed one now. Otherwise (the same
    status as before) it cannot be told apart from the old one, and the start is sent again.
    """
    if now is None:
        return False
    if not now.is_terminal:
        return True
    if before == UNKNOWN:
        return False
    if before is None:
        return True
    return before.status is ExportStatus.FAILED and now.status is ExportStatus.COMPLETED
