"""
The only module that talks to aiohttp.

It sends requests and hands back plain data (:class:`~babou_async._protocol.RawResponse`)
or, for downloads, a chunk stream; every aiohttp or OS error is translated here into a
:class:`~babou_async.TransportError` (chained with ``raise ... from``), tagged with whether
the request provably never left (which decides if a create may be retried).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
import yarl

from ._config import Timeouts
from ._exceptions import (
    BabouError,
    ConfigurationError,
    DecodeError,
    RequestTimeoutError,
    TransportError,
)
from ._protocol import MAX_UPLOAD_BYTES, FailureKind, RawResponse

__all__ = ["SendFailure", "StreamResponse", "Transport", "strip_query"]

# API responses are small JSON documents; refuse to buffer a runaway one.
MAX_API_BODY = 16 * 1024 * 1024
UPLOAD_FLOOR_BYTES_PER_SECOND = 64 * 1024


class SendFailure(Exception):  # noqa: N818 - internal signal, never escapes the package
    """A request failed without a response; carries the public error and its retry class."""

    def __init__(self, error: BabouError, kind: FailureKind) -> None:
        super().__init__(str(error))
        self.error = error
        self.kind = kind


def strip_query(url: str) -> str:
    """Drop the query string: signed download URLs carry their signature there."""
    return url.split("?", 1)[0]


def translate_error(exc: BaseException, method: str, url: str) -> SendFailure:
    """Map an aiohttp/OS exception to a :class:`SendFailure`."""
    safe_url = strip_query(url)
    where = f"{method} {safe_url}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        err: BabouError = RequestTimeoutError(
            f"timed out connecting for {where}", method=method, url=safe_url
        )
        return SendFailure(err, FailureKind.NOT_SENT)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        err = RequestTimeoutError(f"timed out waiting for {where}", method=method, url=safe_url)
        return SendFailure(err, FailureKind.AMBIGUOUS)
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = TransportError(
            f"cannot connect for {where}: {exc.os_error}", method=method, url=safe_url
        )
        return SendFailure(err, FailureKind.NOT_SENT)
    if isinstance(exc, aiohttp.ClientPayloadError):
        err = TransportError(
            f"connection dropped mid-body during {where}", method=method, url=safe_url
        )
        return SendFailure(err, FailureKind.AMBIGUOUS)
    detail = str(exc) or type(exc).__name__
    err = TransportError(
        f"connection failed during {where}: {strip_query(detail)}", method=method, url=safe_url
    )
    return SendFailure(err, FailureKind.AMBIGUOUS)


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """
    Read a whole API response body of unknown or large size, up to ``MAX_API_BODY``.

    (Not ``resp.content.read(n)``: it returns only what has arrived so far, so a body that
    comes in several TCP segments would be cut short.)
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_API_BODY:
            raise DecodeError(
                f"response body larger than {MAX_API_BODY} bytes; refused",
                status=resp.status,
                content_type=resp.headers.get("Content-Type"),
                body_excerpt=chunks[0][:200],
            )
    return b"".join(chunks)


@attrs.define
class StreamResponse:
    """
    An open streaming response (downloads).

    Attributes:
        status: HTTP status.
        headers: Headers, looked up by lower-case name (case-insensitive).
        response: The aiohttp response (private to the transport's users in this package).
    """

    status: int
    headers: Mapping[str, str]
    _response: aiohttp.ClientResponse
    _method: str
    _url: str

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of up to ``size`` bytes as they arrive."""
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except _TRANSPORT_ERRORS as exc:
            failure = translate_error(exc, self._method, self._url)
            raise failure.error from exc


class Transport:
    """
    Sends requests through one ``aiohttp.ClientSession``, owned or injected.

    An injected session is used as is and never closed; an owned one is created lazily on
    first use (inside the running loop) with a bounded connection pool, and closed by
    :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        http_session: aiohttp.ClientSession | None,
        max_connections: int,
        timeouts: Timeouts,
        user_agent: str,
    ) -> None:
        self._session = http_session
        self._owned = http_session is None
        self._max_connections = max_connections
        self._timeouts = timeouts
        # API calls are bounded by ``total`` alone: a per-read timer on every small JSON
        # response costs ~5 us of timer churn per call and adds nothing ``total`` lacks.
        # sock_connect, not connect: aiohttp's ``connect`` also counts the wait for a free
        # slot in the pool, which is no network failure (downloads may hold every slot).
        self._api_timeout = aiohttp.ClientTimeout(
            total=timeouts.total, sock_connect=timeouts.connect
        )
        # Downloads have no total limit (a large video may rightly take long); a stalled
        # one is caught by the per-read timeout.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        self.user_agent = user_agent
        self._closed = False

    @property
    def owns_session(self) -> bool:
        """Whether the aiohttp session is ours to close."""
        return self._owned

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError("this BabouSession is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._api_timeout,
                headers={"User-Agent": self.user_agent},
                # Cookies are never part of Babou's API; do not let a server plant one.
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
        elif self._session.closed:
            raise ConfigurationError("the aiohttp.ClientSession given to BabouSession is closed")
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: bytes | AsyncIterable[bytes] | None = None,
        upload_size: int | None = None,
    ) -> RawResponse:
        """
        Send one request and read its whole (small) body.

        ``upload_size`` marks a request with a large body (an asset upload, ``-1`` if its
        size is unknown, then taken as the 100 MB maximum): its total deadline grows with
        the size at a floor of 64 KiB/s, so a slow but progressing upload is not cut.

        Redirects are not followed: the ``Authorization`` header must only ever reach the
        API's origin, and Babou documents none.

        Raises:
            SendFailure: When no response arrived.
        """
        session = self._http()
        try:
            async with session.request(
                method,
                url,
                params=params or None,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=self._api_timeout
                if upload_size is None
                else self._upload_timeout(upload_size),
                raise_for_status=False,
            ) as resp:
                length = resp.content_length
                if length is not None and length <= MAX_API_BODY:
                    body = await resp.read()
                else:
                    body = await _read_capped(resp)
                # resp.headers is case-insensitive already: no lower-cased copy needed.
                return RawResponse(status=resp.status, headers=resp.headers, body=body)
        except _TRANSPORT_ERRORS as exc:
            raise translate_error(exc, method, url) from exc

    def _upload_timeout(self, size: int) -> aiohttp.ClientTimeout:
        # No per-read timer: the server answers only once it has read the whole body, so
        # "no data to read" is normal for as long as the upload lasts.
        total = self._timeouts.total
        if total is not None:
            total += (size if size >= 0 else MAX_UPLOAD_BYTES) / UPLOAD_FLOOR_BYTES_PER_SECOND
        return aiohttp.ClientTimeout(total=total, sock_connect=self._timeouts.connect)

    @asynccontextmanager
    async def stream(
        self, url: str, *, headers: Mapping[str, str]
    ) -> AsyncIterator[StreamResponse]:
        """
        Open a streaming GET (no ``Authorization``: callers pass only what they mean to).

        Redirects are followed (storage often redirects to a CDN); aiohttp drops the headers
        we gave it on a cross-origin redirect, and we never give it credentials anyway.
        Bodies are not decompressed, so byte counts and ``Range`` offsets stay exact.

        Raises:
            SendFailure: When no response arrived.
        """
        session = self._http()
        kwargs: dict[str, Any] = {
            "headers": headers,
            "timeout": self._stream_timeout,
            "raise_for_status": False,
            "auto_decompress": False,
            # aiohttp pauses the socket when its buffer passes twice this; the default
            # 64 KiB throttles fast downloads, 1 MiB keeps up with loopback and LAN speeds.
            "read_bufsize": 1024 * 1024,
        }
        try:
            # encoded=True: a signed URL must reach the origin byte for byte; re-quoting it
            # (yarl's default) would turn %2F into / and break the signature.
            resp = await session.get(yarl.URL(url, encoded=True), **kwargs)
        except _TRANSPORT_ERRORS as exc:
            raise translate_error(exc, "GET", url) from exc
        try:
            yield StreamResponse(
                status=resp.status,
                headers=resp.headers,
                response=resp,
                method="GET",
                url=url,
            )
        finally:
            # Release returns a fully read connection to the pool; a partly read one is
            # closed, which is what we want after an abandoned download.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    async def aclose(self) -> None:
        """Close the owned aiohttp session (an injected one is left open)."""
        self._closed = True
        if self._owned and self._session is not None:
            await self._session.close()
