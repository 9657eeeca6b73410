"""The record the Babou simulator keeps of every request it receives."""

from __future__ import annotations

import attrs

from ._faults import Origin

__all__ = ["RecordedRequest"]


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """
    One request received by :class:`~babou_async.testing.FakeBabou`, on either origin.

    Records are appended to :attr:`~babou_async.testing.FakeBabou.requests` when a
    request arrives, so they are in arrival order. Once the request is answered the
    record is replaced (in place, same position) by a copy with ``status``,
    ``body_size`` and ``dropped`` filled in.

    Attributes:
        origin: ``"api"`` for the API, ``"asset"`` for the download origin.
        method: The HTTP method, upper case.
        path: The full request path, without the query string (for example
            ``"/api/v1/projects"``).
        query: The query parameters; the first value wins when a name repeats.
        headers: The request headers as received (including ``Authorization``);
            repeated headers are joined with ``", "``.
            Use :meth:`header` for a case-insensitive lookup.
        body_size: Bytes of request body the simulator read. For a request whose
            body was never read (for example rejected before its handler) it is the
            declared ``Content-Length``, or 0 when there is none.
        time: The simulator's clock when the request arrived.
        status: The response status, or ``None`` while the request is in flight or
            when no response was sent (a dropped connection).
        dropped: True when the simulator closed the connection on purpose (a drop
            fault or a dropping injection), even after sending part of a body.
        bytes_sent: Bytes of video the download origin wrote for this request (0 on the
            API): what a download cost, even when the client went away mid-body.
    """

    origin: Origin
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_size: int
    time: float
    status: int | None = None
    dropped: bool = False
    bytes_sent: int = 0

    def header(self, name: str) -> str | None:
        """
        Look up a request header by name, ignoring case.

        Args:
            name: The header name, in any case.

        Returns:
            The header's value, or ``None`` when the request did not carry it.
        """
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None
