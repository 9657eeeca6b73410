"""
Deterministic, streamable content for the simulator's exported videos.

A video is never held in memory.
It is made of 64 KiB blocks, each a rotation of one pseudo-random block derived
from a key with SHAKE-256, so byte ``i`` can be located in O(1) and a range is
served as a few slices of one cached buffer (no per-byte Python work).
Block ``k`` is rotated by ``k * 40503 mod 65536``; since 40503 is odd, no two of
the first 65536 blocks (4 GiB) are alike, so a resume at a wrong offset changes
the file's hash.
The first bytes are an MP4 ``ftyp`` box so that tools sniffing the type see
``video/mp4``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator

import attrs

__all__ = ["BLOCK_SIZE", "VideoContent"]

BLOCK_SIZE = 64 * 1024
"""Size of the pseudo-random block that videos are made of."""

_STRIDE = 40503
_FTYP = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


@functools.lru_cache(maxsize=32)
def _blocks(key: bytes) -> tuple[memoryview, memoryview]:
    """
    Build the buffers a video is sliced from.

    Args:
        key: The video's identity.

    Returns:
        The pseudo-random block twice in a row (so any rotation is one slice) and
        the first block with the ``ftyp`` header in front.
    """
    block = hashlib.shake_256(b"babou-video\x00" + key).digest(BLOCK_SIZE)
    first = _FTYP + block[len(_FTYP) :]
    return memoryview(block + block), memoryview(first)


@attrs.frozen
class VideoContent:
    """
    The bytes of one export, computed on demand.

    Attributes:
        key: What the content is derived from (seed, project id, generation).
        size: Length of the video in bytes.
    """

    key: bytes
    size: int

    @property
    def etag(self) -> str:
        """A strong entity tag, quoted, that changes whenever the key does."""
        return '"' + hashlib.sha256(b"etag\x00" + self.key).hexdigest()[:32] + '"'

    def _block(self, index: int) -> memoryview:
        """Return block ``index`` (always ``BLOCK_SIZE`` bytes long)."""
        doubled, first = _blocks(self.key)
        if index == 0:
            return first
        start = (index * _STRIDE) % BLOCK_SIZE
        return doubled[start : start + BLOCK_SIZE]

    def iter_range(self, start: int, end: int, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """
        Yield the bytes ``start`` to ``end`` (exclusive) in chunks.

        Args:
            start: First byte offset.
            end: Offset one past the last byte; clamped to :attr:`size`.
            chunk_size: Largest chunk to yield.

        Yields:
            Consecutive chunks of at most ``chunk_size`` bytes.
        """
        end = min(end, self.size)
        position = max(start, 0)
        while position < end:
            stop = min(position + chunk_size, end)
            parts: list[memoryview] = []
            cursor = position
            while cursor < stop:
                index, offset = divmod(cursor, BLOCK_SIZE)
                take = min(BLOCK_SIZE - offset, stop - cursor)
                parts.append(self._block(index)[offset : offset + take])
                cursor += take
            yield b"".join(parts)
            position = stop

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """
        Return a range of the video as one bytes object.

        Args:
            start: First byte offset.
            end: Offset one past the last byte; the end of the video when ``None``.

        Returns:
            The requested bytes.
        """
        return b"".join(self.iter_range(start, self.size if end is None else end))

    def sha256(self) -> str:
        """
        Hash the whole video without holding it in memory.

        Returns:
            The hex SHA-256 digest of the content.
        """
        digest = hashlib.sha256()
        for chunk in self.iter_range(0, self.size, 1024 * 1024):
            digest.update(chunk)
        return digest.hexdigest()
