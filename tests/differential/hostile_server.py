"""
A hostile HTTP server for the property tests: it answers whatever it is told, byte for byte.

One :class:`HostileServer` listens on ``127.0.0.1`` (port 0) for a whole test; each
Hypothesis example scripts it anew with :meth:`HostileServer.script`: a list of
:class:`Reply` for API requests (paths under ``/api/v1``) and one for everything else (the
"download host"), each request taking the next reply (the last one repeats). A reply is
written raw to the socket, so it may lie: a ``Content-Length`` longer or shorter than the
body, a malformed chunk size, a body that stalls, a connection dropped before the status
line. Every request is recorded, headers and target included, so that a test can check
where the API key went.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import attrs
from aiohttp import web

__all__ = ["Framing", "HostileServer", "Record", "Reply", "serve_hostile"]

#: How a reply's body is framed on the wire.
Framing = Literal[
    "length",  # an honest Content-Length
    "close",  # no length: the body ends when the connection closes
    "chunked",  # valid chunked transfer encoding
    "bad-chunk",  # a chunk size that is not hexadecimal
    "long-length",  # Content-Length beyond the body, then the connection closes
    "short-length",  # Content-Length short of the body (the rest is garbage)
    "stall",  # headers and half the body, then silence until the client gives up
    "chunk-stall",  # chunked: a chunk announced, part of it sent, then silence
    "drop",  # the connection closes before any byte of the response
]


@attrs.frozen
class Reply:
    """
    One scripted answer.

    Attributes:
        status: The status code written in the status line.
        headers: Extra header lines (written as given: they may repeat or lie).
        body: The body, before framing (and compression).
        framing: How the body is framed (see :data:`Framing`).
        gzip: Compress the body and say so (``Content-Encoding: gzip``).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes {b[:80]!r}>")
    framing: Framing = "length"
    gzip: bool = False

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # noqa: ARG002
        """Hypothesis prints failing examples with this: the body shortened."""
        printer.text(repr(self))

    def resolved(self, names: dict[str, str]) -> Reply:
        """This reply with each ``{name}`` placeholder in headers and body filled in."""
        body, headers = self.body, list(self.headers)
        for name, value in names.items():
            body = body.replace(f"{{{name}}}".encode(), value.encode())
            headers = [(k, v.replace(f"{{{name}}}", value)) for k, v in headers]
        return attrs.evolve(self, body=body, headers=tuple(headers))

    def head_and_body(self) -> tuple[bytes, bytes]:
        """The raw status line and headers, and the raw (framed) body."""
        body = gzip.compress(self.body, compresslevel=1) if self.gzip else self.body
        lines = [f"HTTP/1.1 {self.status} Hostile", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.gzip:
            lines.append("Content-Encoding: gzip")
        if self.framing in ("length", "stall"):
            lines.append(f"Content-Length: {len(body)}")
        elif self.framing == "long-length":
            lines.append(f"Content-Length: {len(body) + 1000}")
        elif self.framing == "short-length":
            lines.append(f"Content-Length: {max(0, len(body) // 2)}")
        elif self.framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
            chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
            body = chunk + b"0\r\n\r\n"
        elif self.framing == "chunk-stall":
            lines.append("Transfer-Encoding: chunked")
            body = f"{len(body) + 1:x}\r\n".encode() + body + body  # cut in half below
        elif self.framing == "bad-chunk":
            lines.append("Transfer-Encoding: chunked")
            body = b"zz;x\r\n" + body
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        return head, body


@attrs.frozen
class Record:
    """
    One request the server received.

    Attributes:
        origin: ``http://127.0.0.1:port`` of the server that received it.
        method: The method.
        target: The raw request target (path and query, as sent).
        headers: Every header line, as ``(name, value)`` pairs.
    """

    origin: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    @property
    def is_api(self) -> bool:
        """Whether the request went to the API's paths."""
        return self.target.startswith("/api/v1")

    def texts(self) -> list[str]:
        """Everything of the request that could carry a secret: target and headers."""
        return [self.target, *(f"{name}: {value}" for name, value in self.headers)]


@attrs.define
class HostileServer:
    """
    A scripted server on 127.0.0.1 (see the module docstring).

    Attributes:
        origin: ``http://127.0.0.1:port`` once started.
        records: The requests received since the last :meth:`script`.
    """

    origin: str = ""
    records: list[Record] = attrs.field(factory=list, repr=False)
    _api: list[Reply] = attrs.field(factory=lambda: [Reply()], repr=False)
    _other: list[Reply] = attrs.field(factory=lambda: [Reply()], repr=False)
    _served: dict[bool, int] = attrs.field(factory=lambda: {True: 0, False: 0}, repr=False)

    def script(
        self,
        api: list[Reply],
        other: list[Reply] | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        """
        Answer API requests with ``api`` and others with ``other``, in order; forget the past.

        ``{name}`` placeholders in the replies are filled in from ``names`` (the origins of
        the servers, which strategies cannot know in advance).
        """
        self._api = [reply.resolved(names or {}) for reply in api] or [Reply()]
        self._other = [reply.resolved(names or {}) for reply in other or []] or [Reply()]
        self._served = {True: 0, False: 0}
        self.records.clear()

    def _next(self, is_api: bool) -> Reply:
        replies = self._api if is_api else self._other
        index = self._served[is_api]
        self._served[is_api] += 1
        return replies[min(index, len(replies) - 1)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request, then write the scripted reply raw and close the connection."""
        record = Record(
            origin=self.origin,
            method=request.method,
            target=request.raw_path,
            headers=tuple(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in request.raw_headers
            ),
        )
        self.records.append(record)
        await request.read()
        reply = self._next(record.is_api)
        transport = request.transport
        if transport is None:  # the client went away already
            return web.Response()
        if reply.framing != "drop":
            head, body = reply.head_and_body()
            if reply.framing in ("stall", "chunk-stall"):
                transport.write(head + body[: len(body) // 2])
                await anyio.sleep(30)  # cancelled when the client closes or the test ends
            else:
                transport.write(head + body)
        transport.close()
        return web.Response()


@asynccontextmanager
async def serve_hostile() -> AsyncIterator[HostileServer]:
    """Run a :class:`HostileServer` on 127.0.0.1 (port 0) until the block ends."""
    server = HostileServer()
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()
