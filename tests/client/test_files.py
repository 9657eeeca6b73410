"""The partial files of downloads, on a real disk: names, locks, sidecars, restarts, clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from babou_async import DownloadError
from babou_async._files import Partial, discard_partial_sync, file_mode

pytestmark = pytest.mark.anyio


def open_sync(final: Path) -> Partial:
    """Open ``final``'s partial (in a worker thread when called through ``run``)."""
    return Partial.open_sync(final, "prj_x")


async def run(function: object, *args: object) -> object:
    """Run a blocking helper off the event loop."""
    return await anyio.to_thread.run_sync(function, *args)  # type: ignore[arg-type]


async def names(directory: Path) -> list[str]:
    """The sorted names in ``directory``."""
    return sorted([p.name async for p in anyio.Path(directory).iterdir()])


async def test_stale_random_partials_are_cleaned_and_ours_is_kept(tmp_path: Path) -> None:
    """Older versions' ``<video>.<random>.part`` files go; the predictable partial stays."""
    final = tmp_path / "v.mp4"
    await anyio.Path(tmp_path / "v.mp4.abc123.part").write_bytes(b"old")
    await anyio.Path(tmp_path / "other.mp4.zz.part").write_bytes(b"not ours")
    partial = await run(open_sync, final)
    assert isinstance(partial, Partial)
    await run(lambda: partial.close_sync(keep=False))
    assert ["other.mp4.zz.part"] == await names(tmp_path)


async def test_a_partial_resumes_only_with_its_sidecar(tmp_path: Path) -> None:
    """Bytes with a sidecar are resumed (and hashed); bytes without one start over."""
    final = tmp_path / "v.mp4"
    await anyio.Path(tmp_path / "v.mp4.part").write_bytes(b"12345")
    partial = await run(open_sync, final)
    assert isinstance(partial, Partial)
    assert 0 == partial.size  # no sidecar: the content is unknown
    await run(lambda: partial.close_sync(keep=True))
    assert [] == await names(tmp_path)  # nothing worth keeping

    await anyio.Path(tmp_path / "v.mp4.part").write_bytes(b"12345")
    await anyio.Path(tmp_path / "v.mp4.part.json").write_text(json.dumps({"total": 10}))
    partial = await run(open_sync, final)
    assert isinstance(partial, Partial)
    assert (5, {"total": 10}) == (partial.size, partial.meta)
    partial.pending_meta = {"total": 10, "etag": '"a"'}
    await run(partial.write_sync, 0, [b"ab"])  # a restart truncates and rewrites the sidecar
    saved = await run(lambda: partial.commit_sync(overwrite=False))
    assert b"ab" == await anyio.Path(final).read_bytes()
    assert ["v.mp4"] == await names(tmp_path)
    assert saved.size == 2  # type: ignore[attr-defined]
    assert await run(file_mode) == (await anyio.Path(final).stat()).st_mode & 0o777


async def test_a_locked_partial_is_refused_and_discarding_spares_it(tmp_path: Path) -> None:
    """A second opener is refused while the first holds the lock; discard leaves it alone."""
    final = tmp_path / "v.mp4"
    first = await run(open_sync, final)
    assert isinstance(first, Partial)
    with pytest.raises(DownloadError, match="another process"):
        await run(open_sync, final)
    await run(discard_partial_sync, final)
    assert ["v.mp4.part"] == await names(tmp_path)
    await run(lambda: first.close_sync(keep=True))  # nothing in it: removed
    await anyio.Path(tmp_path / "v.mp4.part.json").write_text("{}")
    await run(discard_partial_sync, final)  # an orphaned sidecar goes too
    assert [] == await names(tmp_path)
    await anyio.Path(tmp_path / "v.mp4.part").write_bytes(b"x")
    await anyio.Path(tmp_path / "v.mp4.part.json").write_text("{}")
    await run(discard_partial_sync, final)
    assert [] == await names(tmp_path)


async def test_an_unreadable_sidecar_counts_as_none(tmp_path: Path) -> None:
    """A torn or foreign sidecar is ignored: the partial starts over rather than mixing."""
    final = tmp_path / "v.mp4"
    await anyio.Path(tmp_path / "v.mp4.part").write_bytes(b"12345")
    await anyio.Path(tmp_path / "v.mp4.part.json").write_text("[1, 2")
    partial = await run(open_sync, final)
    assert isinstance(partial, Partial)
    assert (0, {}) == (partial.size, partial.meta)
    await run(lambda: partial.close_sync(keep=False))
