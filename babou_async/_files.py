"""
Saving a download to its final path atomically, resumably, and off the event loop.

Every blocking call runs in a worker thread. The bytes go to ``<final>.part`` beside the
target, a name any later process finds again, held under an exclusive lock (``flock``) so
that two processes never write one partial. The validator of its content (ETag or
Last-Modified) and the announced size sit beside it in ``<final>.part.json``, so that a
later download resumes it with ``Range``/``If-Range`` (and restarts it if the content
changed). Bytes are written in buffers of about 1 MiB, one write in flight while the next
buffer fills, and hashed (SHA-256) as they are written. The file is moved into place only
once complete, with the mode ``open()`` would give under the process umask; it never
replaces an existing file unless asked to.

An interrupted download (a failure, a cancellation, a killed process) keeps its partial
file for the next attempt, after the write in flight has really finished; a partial with
no bytes, or one whose bytes cannot be trusted, is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio
import anyio.to_thread
import attrs

from ._exceptions import DownloadError, IntegrityError

if sys.platform != "win32":
    import fcntl

__all__ = [
    "PART_SUFFIX",
    "WRITE_BUFFER",
    "Partial",
    "Saved",
    "commit_sync",
    "file_mode",
    "save",
    "write_sync",
]

WRITE_BUFFER: Final = 1024 * 1024
PART_SUFFIX: Final = ".part"
META_SUFFIX: Final = ".part.json"
_READ_BLOCK: Final = 1024 * 1024


def _read_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        status = Path("/proc/self/status").read_text(encoding="ascii")
        match = re.search(r"^Umask:\s*([0-7]+)", status, re.MULTILINE)
        if match:
            return int(match[1], 8)
    mask = os.umask(0o022)  # pragma: no cover - no /proc: read it by setting it back
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under 022)."""
    return 0o666 & ~_read_umask()


@attrs.frozen(kw_only=True)
class Saved:
    """
    A video moved into place.

    Attributes:
        size: Its size in bytes.
        mtime_ns: Its modification time.
        sha256: Its SHA-256, hex.
    """

    size: int
    mtime_ns: int
    sha256: str


def write_sync(f: BinaryIO, position: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` at ``position``, truncating whatever followed (a restart)."""
    # The chunks are written as they came: joining them would cost the event loop a copy.
    if f.tell() != position:
        f.seek(position)
        f.truncate()
    f.writelines(chunks)


def commit_sync(part: Path, final: Path, overwrite: bool) -> None:
    """Move ``part`` to ``final``; without ``overwrite``, never replace an existing file."""
    if overwrite:
        part.replace(final)
        return
    try:
        # link() fails if ``final`` exists: an atomic "rename unless it exists".
        os.link(part, final)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: check, then rename (a tiny race remains).
        if final.exists():
            raise FileExistsError(str(final)) from None
        part.replace(final)
    else:
        part.unlink()


def _lock(f: BinaryIO) -> bool:
    """Lock ``f`` exclusively for this process; ``False`` if another one holds it."""
    if sys.platform == "win32":  # pragma: no cover - no flock: the partial is not locked
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _clean_stale_sync(final: Path) -> None:
    """Remove the random-named partials of older versions (``<final>.<random>.part``)."""
    for stale in final.parent.glob(f"{glob_escape(final.name)}.*{PART_SUFFIX}"):
        if stale.name == final.name + PART_SUFFIX:
            continue
        with contextlib.suppress(OSError), stale.open("rb") as f:
            if _lock(f):  # nobody is writing it
                stale.unlink()


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


class Partial:
    """
    The locked partial download of one final path, and what is known of its content.

    Attributes:
        final: Where the video goes.
        path: The partial file, ``<final>.part``.
        size: Bytes in the partial file that can be resumed from.
        meta: Validator and size of the partial's content (``etag``, ``last_modified``,
            ``total``), from the sidecar file.
    """

    def __init__(self, final: Path, f: BinaryIO, meta: dict[str, Any], size: int) -> None:
        self.final = final
        self.path = final.with_name(final.name + PART_SUFFIX)
        self.meta_path = final.with_name(final.name + META_SUFFIX)
        self.f = f
        self.meta = meta
        #: What the next write's bytes are (validator and size), written just before them.
        self.pending_meta = meta
        self.size = size
        self._hash = hashlib.sha256()
        self._hashed = 0

    @classmethod
    def open_sync(cls, final: Path, project_id: str) -> Partial:
        """
        Open (or create) and lock the partial of ``final``; hash what it holds.

        Raises:
            DownloadError: Another process holds the partial.
            OSError: The directory refuses.
        """
        _clean_stale_sync(final)
        part = final.with_name(final.name + PART_SUFFIX)
        fd = os.open(part, os.O_RDWR | os.O_CREAT, file_mode())
        f = os.fdopen(fd, "r+b")
        if not _lock(f):
            f.close()
            raise DownloadError(
                f"another process is downloading {final} (its partial file is locked)",
                project_id=project_id,
                path=str(final),
            )
        meta = _read_meta(final.with_name(final.name + META_SUFFIX))
        size = os.fstat(fd).st_size if meta else 0
        partial = cls(final, f, meta, size)
        partial.truncate_sync(size)
        return partial

    def truncate_sync(self, size: int) -> None:
        """Keep the first ``size`` bytes (hashing them), drop the rest."""
        self.f.seek(0)
        self._hash, self._hashed = hashlib.sha256(), 0
        while self._hashed < size:
            block = self.f.read(min(_READ_BLOCK, size - self._hashed))
            if not block:
                break
            self._hash.update(block)
            self._hashed += len(block)
        self.size = self._hashed
        self.f.truncate(self.size)
        self.f.seek(self.size)

    def write_meta_sync(self, meta: dict[str, Any]) -> None:
        """Record the content's validator and size, atomically (temp file, then rename)."""
        if meta == self.meta:
            return
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        tmp.replace(self.meta_path)
        self.meta = meta

    def write_sync(self, position: int, chunks: list[bytes]) -> None:
        """Write ``chunks`` at ``position`` (0 restarts the file), hashing them."""
        if position != self._hashed:
            self.truncate_sync(position)
        # The sidecar always describes the bytes on disk: new content's is written only
        # once the old bytes are gone, and before the new ones.
        self.write_meta_sync(self.pending_meta)
        write_sync(self.f, position, chunks)
        for chunk in chunks:
            self._hash.update(chunk)
            self._hashed += len(chunk)

    def commit_sync(self, overwrite: bool) -> Saved:
        """Flush, set the mode, move into place; the partial and its sidecar are gone."""
        self.f.flush()
        os.fsync(self.f.fileno())
        os.fchmod(self.f.fileno(), file_mode())
        commit_sync(self.path, self.final, overwrite)
        with contextlib.suppress(FileNotFoundError):
            self.meta_path.unlink()
        stat = os.fstat(self.f.fileno())
        self.f.close()  # releases the lock, now that nothing is left to protect
        return Saved(size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=self._hash.hexdigest())

    def close_sync(self, *, keep: bool) -> None:
        """Close (unlocking); keep the partial for a later run, or remove it and its sidecar."""
        try:
            self.f.flush()
            keep = keep and self._hashed > 0 and bool(self.meta)
        finally:
            if not keep:
                for path in (self.path, self.meta_path):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            self.f.close()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def discard_partial_sync(final: Path) -> None:
    """Remove the partial of ``final`` (and its sidecar) unless another process holds it."""
    part = final.with_name(final.name + PART_SUFFIX)
    meta = final.with_name(final.name + META_SUFFIX)
    try:
        f = part.open("rb")
    except FileNotFoundError:  # an orphaned sidecar, at most
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        return
    with f:
        if _lock(f):
            part.unlink()
            with contextlib.suppress(FileNotFoundError):
                meta.unlink()


class _Writer:
    """Buffers chunks and writes them in a worker thread, one write in flight at a time."""

    def __init__(self, partial: Partial, progress: Callable[[int], None]) -> None:
        self.partial = partial
        self.progress = progress
        self.buf: list[bytes] = []
        self.start = partial.size  # file position of the buffer
        self.size = 0  # bytes in the buffer
        # A task, not a bare executor future: cancelling it waits for the thread to
        # finish, so a cancelled download never closes its file under a running write.
        self.pending: asyncio.Task[None] | None = None

    @property
    def written(self) -> int:
        """Bytes handed to the disk so far, buffered ones included."""
        return self.start + self.size

    async def add(self, position: int, chunk: bytes) -> None:
        if position != self.written:  # content changed: start over at position
            self.buf, self.size, self.start = [], 0, position
        self.buf.append(chunk)
        self.size += len(chunk)
        if self.size >= WRITE_BUFFER:
            await self.drain()
            self.pending = asyncio.ensure_future(
                anyio.to_thread.run_sync(self.partial.write_sync, self.start, self.buf)
            )
            self.start += self.size
            self.buf, self.size = [], 0
            self.progress(self.start)

    async def drain(self) -> None:
        """Wait for the write in flight; what it raised is raised here."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def finish(self) -> None:
        """Write what is left."""
        await self.drain()
        if self.buf:
            await anyio.to_thread.run_sync(self.partial.write_sync, self.start, self.buf)
            self.start += self.size
            self.buf, self.size = [], 0

    async def settle(self) -> None:
        """Wait for the write in flight to end, whatever happened (for clean-up)."""
        if self.pending is not None:
            await asyncio.wait([self.pending])
            if not self.pending.cancelled():
                self.pending.exception()  # retrieved: the main path reported it, or it is moot


async def open_partial(final: Path, project_id: str) -> Partial:
    """Open and lock ``final``'s partial in a worker thread, as a :class:`DownloadError`."""
    try:
        return await anyio.to_thread.run_sync(Partial.open_sync, final, project_id)
    except OSError as exc:
        raise DownloadError(
            f"cannot write in {final.parent}: {exc.strerror or exc}",
            project_id=project_id,
            path=str(final),
        ) from exc


async def save(
    chunks: AsyncIterable[tuple[int, bytes]],
    partial: Partial,
    *,
    project_id: str,
    overwrite: bool,
    progress: Callable[[int], None],
) -> Saved:
    """
    Write ``(position, chunk)`` pairs into ``partial`` and move it into place.

    On any failure the partial is kept for a later run if it holds bytes of known content,
    else removed.

    Raises:
        DownloadError: The disk refused, or the final path appeared meanwhile (no overwrite).
    """
    final = partial.final
    writer = _Writer(partial, progress)
    keep = True
    try:
        async for position, chunk in chunks:
            await writer.add(position, chunk)
        await writer.finish()
        return await _commit(partial, overwrite, project_id)
    except OSError as exc:
        raise DownloadError(
            f"cannot write {partial.path}: {exc.strerror or exc}",
            project_id=project_id,
            path=str(final),
        ) from exc
    except DownloadError as exc:
        keep = not isinstance(exc, IntegrityError)  # bytes past the announced size: untrusted
        if exc.path is None:
            exc.path = str(final)
        raise
    finally:
        if not partial.f.closed:
            with anyio.CancelScope(shield=True):
                await writer.settle()
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(lambda: partial.close_sync(keep=keep))


async def _commit(partial: Partial, overwrite: bool, project_id: str) -> Saved:
    try:
        return await anyio.to_thread.run_sync(partial.commit_sync, overwrite)
    except FileExistsError:
        await anyio.to_thread.run_sync(lambda: partial.close_sync(keep=False))
        raise DownloadError(
            f"{partial.final} appeared while downloading; not replaced (overwrite=False)",
            project_id=project_id,
            path=str(partial.final),
        ) from None
