"""
The simulator's asset origin: finished exports served like a CDN or S3 bucket would.

:class:`UrlSigner` signs and checks the expiring download URLs that GET export hands out;
:func:`parse_range` reads a ``Range`` header (RFC 9110, section 14.2);
:class:`AssetOrigin` serves ``GET``/``HEAD /exports/{projectId}.mp4`` with ``ETag``,
``Last-Modified``, ``If-Range`` and single byte ranges, plus the origin's faults (cut
bodies, ignored ranges, throttling), answering errors in S3's XML.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import random
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from ._faults import Draws, Faults
from ._http import close_connection, current_context, format_seconds, s3_error
from ._state import Store
from ._video import VideoContent

__all__ = ["AssetOrigin", "OriginKnobs", "UrlSigner", "parse_range"]

_CHUNK = 256 * 1024

ByteRange = tuple[int, int] | Literal["unsatisfiable"] | None
"""What :func:`parse_range` makes of a header."""


def _single_range(header: str) -> tuple[str, str] | None:
    """Split ``bytes=first-last`` into its two (possibly empty) digit strings."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first and not last:
        return None
    return first, last


def _suffix_range(suffix: int, size: int) -> ByteRange:
    """Resolve ``bytes=-suffix``: the file's last ``suffix`` bytes."""
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size


def _bounded_range(start: int, last: str, size: int) -> ByteRange:
    """Resolve ``bytes=start-`` or ``bytes=start-last``."""
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    stop = int(last) if last else size - 1
    return start, min(stop, size - 1) + 1


def parse_range(header: str, size: int) -> ByteRange:
    """
    Interpret a ``Range`` header (RFC 9110, section 14.2) for a file of ``size`` bytes.

    Args:
        header: The header's value.
        size: Length of the representation.

    Returns:
        ``(start, end)`` with ``end`` exclusive for one satisfiable byte range,
        ``"unsatisfiable"`` for a range outside the file, or ``None`` when the
        header is to be ignored (malformed, other unit, or several ranges).
    """
    bounds = _single_range(header)
    if bounds is None:
        return None
    first, last = bounds
    if not first:
        return _suffix_range(int(last), size)
    return _bounded_range(int(first), last, size)


class UrlSigner:
    """
    Signs download URLs with an HMAC and checks them.

    Args:
        rng: Seeded generator for the secret and the per-URL nonces.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._secret = rng.randbytes(32)

    def rotate(self) -> None:
        """Draw a new secret, so that every URL signed so far stops working."""
        self._secret = self._rng.randbytes(32)

    def token(self, project_id: str, expires: str) -> str:
        """Sign a project's URL expiring at ``expires``: a nonce followed by the HMAC."""
        nonce = f"{self._rng.getrandbits(64):016x}"
        return nonce + self._signature(project_id, expires, nonce)

    def problem(self, project_id: str, query: Mapping[str, str], wall_now: float) -> str | None:
        """Check a download URL's signature and expiry; return what is wrong, if anything."""
        token = query.get("token", "")
        expires = query.get("expires", "")
        nonce, signature = token[:16], token[16:]
        expected = self._signature(project_id, expires, nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return "Invalid or missing signature"
        if wall_now >= float(expires):
            return "Request has expired"
        return None

    def _signature(self, project_id: str, expires: str, nonce: str) -> str:
        """Compute a download URL's HMAC."""
        message = f"{project_id}\n{expires}\n{nonce}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]


class OriginKnobs(Protocol):
    """The settings of :class:`~babou_async.testing.FakeBabou` the origin reads live."""

    faults: Faults


def _wanted_range(
    request: web.Request, faults: Faults, content: VideoContent, last_modified: str
) -> ByteRange:
    """Read the request's ``Range``, unless ignored or made stale by ``If-Range``."""
    range_header = request.headers.get("Range")
    if range_header is None or faults.ignore_range:
        return None
    if request.headers.get("If-Range") not in (None, content.etag, last_modified):
        return None
    return parse_range(range_header, content.size)


class AssetOrigin:
    """
    The download origin's handler and URL signing.

    Args:
        knobs: The simulator whose ``faults`` apply.
        store: The domain state.
        clock: The simulator's clock.
        wall_offset: Add to a clock value to get a Unix time.
        draws: The seeded stream of fault decisions.
        tokens: Seeded generator for the URL secret and nonces.
    """

    def __init__(
        self,
        knobs: OriginKnobs,
        *,
        store: Store,
        clock: Callable[[], float],
        wall_offset: float,
        draws: Draws,
        tokens: random.Random,
    ) -> None:
        self._knobs = knobs
        self._store = store
        self._clock = clock
        self._wall_offset = wall_offset
        self._draws = draws
        self.signer = UrlSigner(tokens)

    def app(self, middleware: Middleware) -> web.Application:
        """Create the download origin's application, behind ``middleware``."""
        app = web.Application(middlewares=[middleware])
        app.router.add_get("/exports/{project_id}.mp4", self._download)
        return app

    def signed_path(self, project_id: str, expires_at: float) -> str:
        """
        Sign the path and query of a project's download URL.

        Args:
            project_id: The project id.
            expires_at: Unix time at which the URL stops working.

        Returns:
            ``/exports/<project_id>.mp4?token=...&expires=...``.
        """
        expires = format_seconds(expires_at)
        token = self.signer.token(project_id, expires)
        query = urllib.parse.urlencode({"token": token, "expires": expires})
        return f"/exports/{urllib.parse.quote(project_id)}.mp4?{query}"

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """GET/HEAD /exports/{projectId}.mp4 on the asset origin."""
        project_id = request.match_info["project_id"]
        now = self._clock()
        faults = self._knobs.faults
        problem = self.signer.problem(project_id, request.query, now + self._wall_offset)
        if problem is not None:
            return s3_error(faults.expired_status, "AccessDenied", problem)
        project = self._store.projects.get(project_id)
        export = None if project is None else project.served_export(now)
        if export is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        content = export.content
        size = content.size
        last_modified = email.utils.formatdate(export.done_at + self._wall_offset, usegmt=True)
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": content.etag,
            "Last-Modified": last_modified,
            "Content-Type": "video/mp4",
        }
        wanted = _wanted_range(request, faults, content, last_modified)
        if wanted == "unsatisfiable":
            return s3_error(
                416,
                "InvalidRange",
                "The requested range is not satisfiable",
                {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
        start, end = (0, size) if wanted is None else wanted
        if wanted is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method != "HEAD":
            await self._send(request, response, content, (start, end), faults)
        return response

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        content: VideoContent,
        span: tuple[int, int],
        faults: Faults,
    ) -> None:
        """Write a span of the video, throttled or cut short as the faults say."""
        start, end = span
        cut: int | None = None
        if end > start and self._draws.chance(faults.drop_rate):
            cut = start + int(self._draws.fraction() * (end - start))
        throttle = faults.slow_bytes_per_second
        chunk_size = _CHUNK if throttle is None else max(1, min(_CHUNK, int(throttle / 20)))
        context = current_context()
        for chunk in content.iter_range(start, end if cut is None else cut, chunk_size):
            if throttle is not None:
                await asyncio.sleep(len(chunk) / throttle)
            await response.write(chunk)
            context.bytes_sent += len(chunk)
        if cut is not None:
            context.dropped = context.partial = True
            close_connection(request)
