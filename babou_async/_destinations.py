"""
Where a video goes, and whether it is already there: the one rule for downloads and batches.

* A destination is a directory when it is written with a trailing separator or is an
  existing directory; the video is then ``<project_id>.mp4`` inside it (created if needed).
  Anything else is the file path itself (its parent is created if needed).
* A file at the final path is complete when its size is the size the server announces.

The functions named ``*_sync`` block: call them from a worker thread
(``anyio.to_thread.run_sync``), or use their async forms.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio.to_thread

__all__ = [
    "existing_size",
    "final_path",
    "in_directory",
    "is_complete",
    "video_name",
]


def video_name(project_id: str) -> str:
    """The file name of a project's video inside a destination directory."""
    return f"{project_id}.mp4"


def in_directory(directory: Path, project_id: str) -> Path:
    """The final path of ``project_id``'s video in ``directory``."""
    return directory / video_name(project_id)


def _means_directory(dest: str | os.PathLike[str]) -> bool:
    return os.fspath(dest).endswith(("/", os.sep))


def final_path_sync(dest: str | os.PathLike[str], project_id: str) -> Path:
    """The final path of ``project_id``'s video for ``dest``, creating the directory it is in."""
    path = Path(os.fspath(dest))
    if _means_directory(dest) or path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return in_directory(path, project_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


async def final_path(dest: str | os.PathLike[str], project_id: str) -> Path:
    """:func:`final_path_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(final_path_sync, dest, project_id)


def stat_sync(path: Path) -> os.stat_result | None:
    """The file at ``path``, or ``None`` if there is none (blocking: call it in a thread)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def existing_size_sync(path: Path) -> int | None:
    """The size of the file at ``path``, or ``None`` if there is none."""
    stat = stat_sync(path)
    return None if stat is None else stat.st_size


async def existing_size(path: Path) -> int | None:
    """:func:`existing_size_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(existing_size_sync, path)


def is_complete(size_on_disk: int | None, expected: int | None) -> bool:
    """Whether a file of ``size_on_disk`` bytes is the complete video of ``expected`` bytes."""
    return size_on_disk is not None and expected is not None and size_on_disk == expected
