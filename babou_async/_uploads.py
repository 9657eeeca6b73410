"""
Asset uploads as a function of a runtime: a path, bytes, or an async iterator, streamed.

A path is read in chunks by a worker thread; bytes are sent in slices (never handed to the
socket in one piece on the event loop); both can be replayed after a 429. An async
iterator cannot be replayed, so it is sent once, and cut at the documented 100 MB.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from functools import partial
from pathlib import Path

import anyio

from . import _protocol as proto
from ._config import RetryPolicy
from ._exceptions import ValidationError
from ._models import Asset
from ._protocol import RequestSpec, RetryMode
from ._runtime import Runtime

__all__ = ["Source", "upload_asset"]

_UPLOAD_CHUNK = 256 * 1024

#: What :meth:`BabouSession.upload_asset` accepts.
Source = str | os.PathLike[str] | bytes | AsyncIterable[bytes]

_Body = Callable[[], AsyncIterable[bytes]]


async def _file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    """
    Read ``size`` bytes of a file in chunks, in a worker thread (never blocking the loop).

    The file is closed before the last chunk is handed over: aiohttp stops iterating once
    ``Content-Length`` bytes are sent, without finishing the generator.
    """
    f = await anyio.open_file(path, "rb")
    try:
        remaining = size
        while remaining > 0:
            chunk = await f.read(min(_UPLOAD_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            if remaining <= 0:
                await f.aclose()
            yield chunk
    finally:
        await f.aclose()


async def _byte_chunks(payload: bytes) -> AsyncIterator[bytes]:
    view = memoryview(payload)
    for start in range(0, len(view), _UPLOAD_CHUNK):
        yield bytes(view[start : start + _UPLOAD_CHUNK])


async def _capped(source: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass chunks through, refusing to send more than ``limit`` bytes in total."""
    sent = 0
    async for chunk in source:
        sent += len(chunk)
        if sent > limit:
            raise ValidationError(f"upload exceeds {limit} bytes (100 MB); aborted", field="source")
        yield bytes(chunk)


async def _from_path(path: Path, content_type: str | None) -> tuple[str, int, _Body]:
    ctype = proto.normalise_content_type(content_type or proto.guess_content_type(path.name))
    try:
        stat = await anyio.Path(path).stat()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}", field="source") from None
    if not stat.st_mode & 0o170000 == 0o100000:
        raise ValidationError(f"{path} is not a regular file", field="source")
    proto.check_upload_size(stat.st_size)
    return ctype, stat.st_size, partial(_file_chunks, path, stat.st_size)


def _from_bytes(payload: bytes, content_type: str | None) -> tuple[str, int, _Body]:
    ctype = proto.normalise_content_type(content_type)
    proto.check_upload_size(len(payload))
    # Sent in slices (replayable: a new generator per attempt).
    return ctype, len(payload), partial(_byte_chunks, payload)


def _from_iterator(
    source: AsyncIterable[bytes], content_type: str | None, size: int | None
) -> tuple[str, int | None, _Body]:
    ctype = proto.normalise_content_type(content_type)
    proto.check_upload_size(size)
    stream = _capped(source, proto.MAX_UPLOAD_BYTES)
    used = False

    def once() -> AsyncIterable[bytes]:
        nonlocal used
        if used:
            raise ValidationError("an async iterator upload cannot be replayed", field="source")
        used = True
        return stream

    return ctype, size, once


async def upload_asset(
    rt: Runtime,
    source: Source,
    *,
    content_type: str | None,
    size: int | None,
    retry: RetryPolicy | None,
) -> Asset:
    """Upload ``source`` (see :meth:`BabouSession.upload_asset` for the contract)."""
    proto.check_upload_size(size)
    rt.retry_policy(retry)  # checked before the source is read
    length: int | None
    if isinstance(source, (str, os.PathLike)):
        ctype, length, data = await _from_path(Path(source), content_type)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        ctype, length, data = _from_bytes(bytes(source), content_type)
    elif isinstance(source, AsyncIterable):
        ctype, length, data = _from_iterator(source, content_type, size)
        retry = RetryPolicy.disabled()
    else:
        raise ValidationError(
            f"source must be a path, bytes or an async iterable of bytes, got "
            f"{type(source).__name__}",
            field="source",
        )
    headers = rt.api_headers(ctype)
    if length is not None:
        headers["Content-Length"] = str(length)
    spec = RequestSpec(method="POST", path="/assets", retry_mode=RetryMode.CREATE)
    raw, payload = await rt.send(
        spec,
        retry=retry,
        data=data,
        headers=headers,
        upload_size=length if length is not None else -1,
    )
    return proto.parse_asset(raw, payload)
