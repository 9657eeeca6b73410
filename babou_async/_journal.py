"""
The batch journal: what a batch did per project, kept in its destination directory.

One SQLite database, ``<dest>/.babou-journal.sqlite3``, from the standard library. Why
SQLite rather than a JSON-lines file: every update is one atomic transaction, so a
``kill -9`` at any instant leaves either the old or the new row and never a torn line to
repair; a re-run reads one row per project without replaying a log; and SQLite's own file
locking gives the "one batch per directory" rule for free. The database runs in WAL mode
with ``synchronous=NORMAL``: a committed row survives the death of the process (it is in
the operating system's cache), and only a power cut can lose the last few, which costs a
re-run one status request per lost row, never a wrong file.

A batch opens it with ``exclusive=True``: SQLite's ``EXCLUSIVE`` locking mode holds the
database for the life of the connection, so a second batch on the same directory fails at
once with :class:`~babou_async.JournalLockedError` instead of interleaving with the first.

Every call runs in a worker thread; the connection is used by one thread at a time.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import attrs

from ._exceptions import JournalLockedError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["JOURNAL_NAME", "Entry", "Journal"]

#: The journal's file name inside a destination directory.
JOURNAL_NAME: Final = ".babou-journal.sqlite3"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS projects (
    project_id TEXT PRIMARY KEY,
    export_started_at TEXT,   -- ISO time this batch asked for the export (before the POST)
    export_status TEXT,       -- the last status seen
    export_error TEXT,        -- the server's text, when failed
    part_bytes INTEGER,       -- bytes of the partial download when last recorded
    part_validator TEXT,      -- its ETag or Last-Modified
    file_size INTEGER,        -- the finished video
    file_mtime_ns INTEGER,
    file_sha256 TEXT,
    updated_at TEXT NOT NULL
)
"""


@attrs.frozen(kw_only=True)
class Entry:
    """
    What the journal knows of one project.

    Attributes:
        project_id: The project.
        export_started_at: When this batch asked to start the export (ISO), if it did.
        export_status: The last export status seen.
        export_error: The server's failure text.
        part_bytes: Bytes of the partial download when last recorded.
        part_validator: The partial's ETag or Last-Modified.
        file_size: Size of the finished video.
        file_mtime_ns: Its modification time.
        file_sha256: Its SHA-256, hex.
    """

    project_id: str
    export_started_at: str | None = None
    export_status: str | None = None
    export_error: str | None = None
    part_bytes: int | None = None
    part_validator: str | None = None
    file_size: int | None = None
    file_mtime_ns: int | None = None
    file_sha256: str | None = None

    @property
    def started_here(self) -> bool:
        """Whether this batch asked for the export (it may have reached the server)."""
        return self.export_started_at is not None


#: The journal's columns, in the order of :class:`Entry`'s fields.
_COLUMNS: Final = tuple(field.name for field in attrs.fields(Entry))


class Journal:
    """
    The journal of one destination directory (see the module docstring).

    Open it with :meth:`open`, close it with :meth:`aclose` (or ``async with``).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    async def open(cls, directory: Path, *, exclusive: bool) -> Journal:
        """
        Open (or create) the journal of ``directory``.

        Raises:
            JournalLockedError: ``exclusive`` and another batch holds the directory.
            OSError: The directory cannot hold a database.
        """
        path = directory / JOURNAL_NAME
        # Processes (or jobs) opening a new journal at once race to switch it to WAL, which
        # SQLite refuses without waiting: a shared opener tries again, for about 10 s in all.
        deadline = anyio.current_time() + _SHARED_OPEN_SECONDS
        attempt = 0
        while True:
            last = exclusive or anyio.current_time() >= deadline
            connection = await anyio.to_thread.run_sync(_connect, path, exclusive, last)
            if connection is not None:
                return cls(connection, path)
            await anyio.sleep(min(0.25, 0.005 * 2**attempt))
            attempt += 1

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the database (releasing the directory), even when cancelled."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._db.close)

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock, self._db:
            return self._db.execute(sql, params).fetchall()

    async def _call(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(self._run, sql, params)

    async def get(self, project_id: str) -> Entry | None:
        """The entry of ``project_id``, if the journal has one."""
        rows = await self._call(
            f"SELECT {', '.join(_COLUMNS)} FROM projects WHERE project_id = ?",  # noqa: S608 - constant columns
            project_id,
        )
        if not rows:
            return None
        return Entry(**dict(zip(_COLUMNS, rows[0], strict=True)))

    async def update(self, project_id: str, now: str, **fields: object) -> None:
        """Set ``fields`` of ``project_id``'s entry (creating it), in one transaction."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise AssertionError(f"unknown journal fields {sorted(unknown)}")
        names = [*fields, "updated_at"]
        values = [*fields.values(), now]
        assignments = ", ".join(f"{name} = excluded.{name}" for name in names)
        await self._call(
            f"INSERT INTO projects (project_id, {', '.join(names)}) "  # noqa: S608 - constant names
            f"VALUES (?, {', '.join('?' * len(names))}) "
            f"ON CONFLICT(project_id) DO UPDATE SET {assignments}",
            project_id,
            *values,
        )


#: How long a shared (non-exclusive) open keeps trying while the journal is locked.
_SHARED_OPEN_SECONDS = 10.0
#: How long a shared writer waits for another's write (SQLite's busy timeout), once open.
_BUSY_MS = 10_000


def _connect(path: Path, exclusive: bool, last: bool) -> sqlite3.Connection | None:
    """The journal's connection; ``None`` when it is locked and this is not the ``last`` try."""
    # While opening, a short busy wait: the caller retries until its deadline.
    connection = sqlite3.connect(path, timeout=0 if exclusive else 1, check_same_thread=False)
    try:
        if exclusive:
            connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        with connection:
            connection.execute(_SCHEMA)
        if exclusive:
            # Take the lock now, not at the first write: a second batch fails at once.
            connection.execute("BEGIN EXCLUSIVE")
            connection.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        connection.close()
        if "locked" in str(exc) or "busy" in str(exc):
            if not last:
                return None
            raise JournalLockedError(
                f"another batch is writing to {path.parent} (its journal {path.name} is locked); "
                "wait for it to finish or use another directory",
                path=str(path),
            ) from None
        raise OSError(f"cannot use the journal {path}: {exc}") from exc
    if not exclusive:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
    return connection
