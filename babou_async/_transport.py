"""
The only module that talks to aiohttp.

It sends requests and hands back plain data (:class:`~babou_async._protocol.RawResponse`)
or, for downloads, a chunk stream; every aiohttp or OS error is translated here into a
:class:`~babou_async.TransportError`, tagged with whether the request provably never left
(which decides if a create may be retried).

What it guarantees about the API key and other credentials:

* a third-party exception never reaches the caller, not even as a chained cause: aiohttp's
  hold the request they failed on (``request_info``, with the ``Authorization`` header).
  Its place in the chain is taken by an :class:`UpstreamError`, a text-only copy of its
  type and message (and of its own causes), and it is raised outside the ``except`` block
  so that it is not even the ``__context__``;
* every text taken from a third-party exception or a response is redacted with the
  credentials this transport was asked to send (learned from the ``Authorization``
  headers it is given): the key in any spelling (:class:`~babou_async._redaction.Redactor`);
* URL userinfo is never turned into an ``Authorization`` header (aiohttp would): it is
  stripped from download URLs and their redirects, and redirects are followed here, one by
  one, so that none leads to a URL carrying a credential or to a non-HTTP scheme;
* an API body is read up to :data:`MAX_API_BODY` bytes, decompressed size included;
* proxies are chosen per request by :class:`~babou_async._proxy.ProxyRoutes`, never by
  aiohttp's ``trust_env`` (which would also send ``~/.netrc`` credentials to the download
  host); a proxy's own credentials come from its URL, as ``Proxy-Authorization``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
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
from ._proxy import Proxy, ProxyRoutes, ProxySetting
from ._redaction import Redactor
from ._version import __version__

__all__ = ["SendFailure", "StreamResponse", "Transport", "UpstreamError", "strip_query"]

# API responses are small JSON documents (a page of 100 assets is ~30 KB; an upload's
# answer is one asset): refuse to buffer a runaway one, or a compression bomb.
MAX_API_BODY = 4 * 1024 * 1024
UPLOAD_FLOOR_BYTES_PER_SECOND = 64 * 1024
#: Redirects of a download followed at most (aiohttp's default too).
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_ANONYMOUS = Redactor()
_CAUSE_DEPTH = 4  # how many nested causes of a third-party exception are copied


class SendFailure(Exception):  # noqa: N818 - internal signal, never escapes the package
    """A request failed without a response; carries the public error and its retry class."""

    def __init__(self, error: BabouError, kind: FailureKind) -> None:
        super().__init__(str(error))
        self.error = error
        self.kind = kind


class UpstreamError(Exception):
    """
    A text-only copy of a third-party exception, chained in its place.

    Keeps what helps a reader (the original's type name and message, redacted, and the same
    for its own causes) and drops what may hold a credential (aiohttp's ``request_info``
    with the request headers, frames, arguments).

    Attributes:
        kind: The qualified name of the original exception's type.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


def sanitized(
    exc: BaseException, redact: Callable[[str], str] = _ANONYMOUS, depth: int = 0
) -> UpstreamError:
    """The :class:`UpstreamError` copy of ``exc`` and of its causes (a few levels deep)."""
    cls = type(exc)
    copy = UpstreamError(f"{cls.__module__}.{cls.__qualname__}", _safe_text(str(exc), redact))
    inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if inner is not None and depth < _CAUSE_DEPTH:
        copy.__cause__ = sanitized(inner, redact, depth + 1)
    return copy


def _safe_text(text: str, redact: Callable[[str], str]) -> str:
    """A third-party message fit for ours: no query strings, no credentials, not huge."""
    words = [strip_query(word) if "://" in word else word for word in text.split(" ")]
    return redact(" ".join(words))[:500]


def strip_query(url: str) -> str:
    """
    A URL fit for a message: without its query, fragment and userinfo.

    Signed download URLs carry their signature in the query; userinfo is a password.
    """
    url = url.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def translate_error(
    exc: BaseException, method: str, url: str, redact: Callable[[str], str] = _ANONYMOUS
) -> SendFailure:
    """
    Map an aiohttp/OS exception to a :class:`SendFailure` (raise it outside the handler).

    The public error's message is redacted with ``redact``, and both it and the failure
    are chained to a :func:`sanitized` copy of ``exc``, never ``exc`` itself.
    """
    failure = _translate(exc, method, redact(strip_query(url)), redact)
    failure.error.__cause__ = failure.__cause__ = sanitized(exc, redact)
    return failure


def _translate(
    exc: BaseException, method: str, safe_url: str, redact: Callable[[str], str]
) -> SendFailure:
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
        reason = _safe_text(str(exc.os_error), redact)
        err = TransportError(f"cannot connect for {where}: {reason}", method=method, url=safe_url)
        return SendFailure(err, FailureKind.NOT_SENT)
    if isinstance(exc, aiohttp.ClientPayloadError):
        err = TransportError(
            f"connection dropped mid-body during {where}", method=method, url=safe_url
        )
        return SendFailure(err, FailureKind.AMBIGUOUS)
    detail = _safe_text(str(exc), redact) or type(exc).__name__
    err = TransportError(f"connection failed during {where}: {detail}", method=method, url=safe_url)
    return SendFailure(err, FailureKind.AMBIGUOUS)


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def default_user_agent() -> str:
    """``babou_async/<version> Python/<version>``."""
    import platform  # noqa: PLC0415 - only needed once per session

    return f"babou_async/{__version__} Python/{platform.python_version()}"


def _proxy_args(proxy: Proxy | None, scheme: str) -> tuple[dict[str, Any], Mapping[str, str]]:
    """
    The ``proxy=`` and ``proxy_headers=`` of aiohttp for a ``scheme`` URL, and headers to add.

    aiohttp sends ``proxy_headers`` only on a tunnel's ``CONNECT`` (https): a plain-http
    request carries the proxy's ``Proxy-Authorization`` among its own headers (what
    aiohttp's ``proxy_auth=`` would do; it is deprecated).
    """
    if proxy is None:
        return {"proxy": None, "proxy_headers": None}, {}
    url = yarl.URL(proxy.url)
    if scheme == "http" and proxy.headers:
        return {"proxy": url, "proxy_headers": None}, proxy.headers
    return {"proxy": url, "proxy_headers": proxy.headers}, {}


async def _read_capped(resp: aiohttp.ClientResponse, redactor: Redactor = _ANONYMOUS) -> bytes:
    """
    Read a whole API response body of unknown or large size, up to ``MAX_API_BODY``.

    The limit counts decompressed bytes (aiohttp decompresses API bodies), so a small
    gzip bomb is refused too.
    (Not ``resp.content.read(n)``: it returns only what has arrived so far, so a body that
    comes in several TCP segments would be cut short.)
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_API_BODY:
            head = redactor.redact_bytes(b"".join(chunks)[:4096])
            content_type = resp.headers.get("Content-Type")
            raise DecodeError(
                f"response body larger than {MAX_API_BODY} bytes; refused",
                status=resp.status,
                content_type=None if content_type is None else redactor(content_type[:1000]),
                body_excerpt=head[:200],
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
    _redact: Callable[[str], str] = _ANONYMOUS

    async def read_chunk(self, size: int) -> bytes:
        """The next piece of the body, up to ``size`` bytes, as it arrives (``b""`` at the end)."""
        try:
            return await self._response.content.read(size)
        except _TRANSPORT_ERRORS as exc:
            failure = translate_error(exc, self._method, self._url, self._redact)
        raise failure.error  # outside the handler: the aiohttp error is not its context

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of up to ``size`` bytes as they arrive."""
        while chunk := await self.read_chunk(size):
            yield chunk


class _Slots:
    """
    The pool's connections as slots for API calls, handed over in arrival order.

    Callers beyond the pool's size wait here, for one future each, rather than inside
    aiohttp: it builds the whole request (headers, URL, timers, six coroutines: about 8 KiB)
    before it waits for a pooled connection, and 10,000 calls may come at once.
    """

    __slots__ = ("_free", "_waiting")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots nobody holds."""
        return self._free

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return sum(not handed.done() for handed in self._waiting)

    def take(self) -> asyncio.Future[None] | None:
        """A slot now (``None``), or a future that resolves when one is handed over."""
        if self._free > 0:  # never while a caller waits: a freed slot goes to the first
            self._free -= 1
            return None
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        return handed

    def abandon(self, handed: asyncio.Future[None]) -> None:
        """A waiting caller was cancelled: give back the slot if one was handed over."""
        if not handed.cancelled():
            self.give_back()

    def give_back(self) -> None:
        """Free a slot: to the first caller still waiting, else to the pool."""
        while self._waiting:
            handed = self._waiting.popleft()
            if not handed.done():  # a cancelled caller's future stays queued until here
                handed.set_result(None)
                return
        self._free += 1


class Transport:
    """
    Sends requests through one ``aiohttp.ClientSession``, owned or injected.

    An injected session is used as is and never closed; an owned one is created lazily on
    first use (inside the running loop) with a bounded connection pool, and closed by
    :meth:`aclose`.

    ``proxy`` is the session's setting (:class:`~babou_async._proxy.ProxyRoutes`); with an
    injected session, ``None`` and ``False`` leave proxies to that session's own settings.
    ``api_base`` is the origin of every :meth:`send`, whose proxy is looked up once.

    Raises:
        ConfigurationError: A bad ``http_session``, ``proxy`` or proxy environment variable.
    """

    def __init__(
        self,
        *,
        http_session: aiohttp.ClientSession | None,
        max_connections: int,
        timeouts: Timeouts,
        user_agent: str | None = None,
        proxy: ProxySetting = None,
        api_base: str = "",
    ) -> None:
        if http_session is not None and not isinstance(http_session, aiohttp.ClientSession):
            raise ConfigurationError(
                "http_session must be an aiohttp.ClientSession or None, "
                f"got {type(http_session).__name__}"
            )
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
        self.user_agent = user_agent or default_user_agent()
        self._closed = False
        proxies = ProxyRoutes(proxy) if http_session is None or proxy else None
        self._proxies = proxies if proxies is not None and proxies.active else None
        self._api_proxy, self._api_extra = _proxy_args(
            None if proxies is None else proxies.for_url(api_base), api_base.partition(":")[0]
        )
        # The credentials this transport has been asked to send, and their redaction.
        self._credentials: frozenset[str] = frozenset()
        self._redactor = _ANONYMOUS
        # Made with the session, in its loop; None for a pool without a limit.
        self._slots: _Slots | None = None

    @property
    def redactor(self) -> Redactor:
        """Hides every credential this transport has sent (and anything key-shaped)."""
        return self._redactor

    def _learn(self, headers: Mapping[str, str]) -> None:
        """Remember the credential of an ``Authorization`` header, to redact it everywhere."""
        auth = headers.get("Authorization") or headers.get("authorization")
        if not auth or auth in self._credentials:
            return
        token = auth.partition(" ")[2].strip() or auth
        self._credentials |= {auth}
        self._redactor = Redactor({token, *(c.partition(" ")[2] for c in self._credentials)})

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
                # Proxies come from ProxyRoutes, per request: trust_env would also send
                # ~/.netrc credentials to the download host (see babou_async._proxy).
                trust_env=False,
            )
            self._slots = _Slots(self._max_connections)
        elif self._session.closed:
            raise ConfigurationError("the aiohttp.ClientSession given to BabouSession is closed")
        elif self._slots is None and not self._owned:
            limit = getattr(self._session.connector, "limit", 0)
            self._slots = _Slots(limit) if isinstance(limit, int) and limit > 0 else None
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
        session = self._http()  # makes the pool (and its slots) on first use
        self._learn(headers)
        slots = self._slots
        handed = None if slots is None else slots.take()
        if slots is not None and handed is not None:
            try:
                await handed  # not in a helper coroutine: its frame is memory too
            except BaseException:
                slots.abandon(handed)
                raise
        try:
            if handed is not None:
                session = self._http()  # closed while this call waited for a slot?
            async with session.request(
                method,
                url,
                params=params or None,
                data=data,
                headers={**headers, **self._api_extra} if self._api_extra else headers,
                allow_redirects=False,
                timeout=self._api_timeout
                if upload_size is None
                else self._upload_timeout(upload_size),
                raise_for_status=False,
                **self._api_proxy,
            ) as resp:
                length = resp.content_length
                if (
                    length is not None
                    and length <= MAX_API_BODY
                    and "Content-Encoding" not in resp.headers
                ):
                    body = await resp.read()
                else:
                    body = await _read_capped(resp, self._redactor)
                # resp.headers is case-insensitive already: no lower-cased copy needed.
                return RawResponse(status=resp.status, headers=resp.headers, body=body)
        except _TRANSPORT_ERRORS as exc:
            failure = translate_error(exc, method, url, self._redactor)
        finally:
            if slots is not None:
                slots.give_back()
        raise failure  # outside the handler: the aiohttp error is not even the context

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

        Redirects are followed (storage often redirects to a CDN), here rather than by
        aiohttp, at most :data:`MAX_REDIRECTS`: userinfo is stripped from every URL (aiohttp
        would send it as Basic auth), credential headers are dropped on a change of origin,
        and a URL carrying a credential this transport has sent, or not HTTP(S), is refused
        (as are headers carrying one, such as an ``If-Range`` echoing a hostile ``ETag``).
        Bodies are not decompressed, so byte counts and ``Range`` offsets stay exact.

        Raises:
            SendFailure: When no response arrived, or the URL or a redirect was refused.
        """
        session = self._http()
        if any(self._redactor.contains(value) for value in headers.values()):
            # An If-Range echoing a validator the host made of the key, for one.
            error = TransportError(
                "refused to send a download request whose headers carry a credential",
                method="GET",
                url=self._redactor(strip_query(url)),
            )
            raise SendFailure(error, FailureKind.NOT_SENT)
        resp = await self._follow(session, self._target(url), dict(headers))
        try:
            yield StreamResponse(
                status=resp.status,
                headers=resp.headers,
                response=resp,
                method="GET",
                url=url,
                redact=self._redactor,
            )
        finally:
            # Release returns a fully read connection to the pool; a partly read one is
            # closed, which is what we want after an abandoned download.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    def _target(self, url: str, base: yarl.URL | None = None) -> yarl.URL:
        """
        A download URL (or redirect ``Location``) to request: absolute, HTTP(S), no userinfo.

        Raises:
            SendFailure: The URL is unusable or carries a credential (nothing is sent).
        """
        where = self._redactor(strip_query(url))
        problem = None
        if self._redactor.contains(url):
            problem = "it carries a credential"
        elif any(ch.isspace() or not ch.isprintable() for ch in url):
            problem = "it contains whitespace or control characters"
        else:
            try:
                # encoded=True: a signed URL must reach the origin byte for byte; re-quoting
                # it (yarl's default) would turn %2F into / and break the signature.
                # A URL that is not ASCII was not percent-encoded: yarl encodes it then.
                target = yarl.URL(url, encoded=url.isascii())
                if base is not None:
                    target = base.join(target)
                if target.scheme in ("http", "https") and target.raw_host:
                    return target.with_user(None)  # also drops the password
                problem = "it is not an absolute http(s) URL"
            except (ValueError, TypeError):
                problem = "it is malformed"
        what = "redirect to" if base is not None else "download URL"
        error = TransportError(f"refused the {what} {where}: {problem}", method="GET", url=where)
        raise SendFailure(error, FailureKind.NOT_SENT)

    async def _follow(
        self, session: aiohttp.ClientSession, target: yarl.URL, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """GET ``target``, following redirects one by one (see :meth:`stream`)."""
        kwargs: dict[str, Any] = {
            "timeout": self._stream_timeout,
            "raise_for_status": False,
            "auto_decompress": False,
            "allow_redirects": False,
            # aiohttp pauses the socket when its buffer passes twice this; the default
            # 64 KiB throttles fast downloads, 1 MiB keeps up with loopback and LAN speeds.
            "read_bufsize": 1024 * 1024,
        }
        for _ in range(MAX_REDIRECTS + 1):
            failure = None
            sent = headers
            if self._proxies is not None:  # each hop may be another host (NO_PROXY)
                route = self._proxies.for_origin(target.scheme, target.raw_authority)
                args, extra = _proxy_args(route, target.scheme)
                kwargs.update(args)
                sent = {**headers, **extra}
            try:
                resp = await session.get(target, headers=sent, **kwargs)
            except _TRANSPORT_ERRORS as exc:
                failure = translate_error(exc, "GET", str(target), self._redactor)
            if failure is not None:
                raise failure  # outside the handler: the aiohttp error is not the context
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECT_STATUSES or location is None:
                return resp
            resp.release()
            following = self._target(location, base=target)
            if following.origin() != target.origin():
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            target = following
        where = self._redactor(strip_query(str(target)))
        error = TransportError(
            f"more than {MAX_REDIRECTS} redirects for GET {where}", method="GET", url=where
        )
        raise SendFailure(error, FailureKind.AMBIGUOUS)

    async def aclose(self) -> None:
        """Close the owned aiohttp session (an injected one is left open)."""
        self._closed = True
        if self._owned and self._session is not None:
            await self._session.close()
