"""
The exception tree of babou_async.

Every exception the library raises on purpose derives from :class:`BabouError`;
nothing from aiohttp, cattrs or the operating system escapes a public call.

::

    BabouError
    ├── ConfigurationError            bad session set-up (no API key, bad base URL, ...)
    ├── APIError                      the API answered with an error envelope
    │   ├── ValidationError           400, or bad input caught before any request (also ValueError)
    │   ├── AuthenticationError       401: UNAUTHORIZED, INVALID_API_KEY_FORMAT, API_KEY_EXPIRED
    │   ├── NotFoundError             404 (missing, or not visible to this key)
    │   ├── ConflictError             409 (a prompt or export already in progress)
    │   ├── PayloadTooLargeError      413
    │   ├── RateLimitError            429, with ``retry_after``
    │   └── ServerError               5xx
    ├── TransportError                the request did not complete (connection refused, reset, ...)
    │   └── RequestTimeoutError       ... because it took too long (also TimeoutError)
    ├── DecodeError                   a response we cannot make sense of (not JSON, wrong types)
    ├── WaitTimeoutError              a wait_for_* deadline passed (also TimeoutError)
    ├── ExportError                   an export did not produce a video
    │   ├── ExportFailedError         the server reported ``failed``, with its error text
    │   ├── ExportTimeoutError        the deadline passed first (also WaitTimeoutError)
    │   └── ExportNotReadyError       a download was asked of an export that is not completed
    ├── DownloadError                 a finished video could not be saved
    │   ├── IntegrityError            the bytes received do not match what the server announced
    │   └── RangeNotSatisfiableError  a byte range outside the video (HTTP 416), with its ``size``
    └── JournalLockedError            another batch is using the destination directory

Callers branch on the class or on :attr:`APIError.code`, never on message text, as the
Babou error-handling guide advises (https://docs.babou.ai/guides/error-handling).

Texts that come from the server and are kept on an exception (an export's ``error``, a raw
status) have anything shaped like a Babou key (``sk-bab-...``) hidden and are clipped to
:data:`MAX_SERVER_TEXT` characters; the session has already hidden its own key, in every
spelling, from the whole response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, overload

from ._redaction import Redactor

__all__ = [
    "APIError",
    "AuthenticationError",
    "BabouError",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "DownloadError",
    "ExportError",
    "ExportFailedError",
    "ExportNotReadyError",
    "ExportTimeoutError",
    "IntegrityError",
    "JournalLockedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
]


#: The longest server text kept on an exception, in characters.
MAX_SERVER_TEXT: Final = 1000
_ANONYMOUS: Final = Redactor()


@overload
def server_text(text: str) -> str: ...
@overload
def server_text(text: str | None) -> str | None: ...
def server_text(text: str | None) -> str | None:
    """A text from the server fit for an exception: key-shaped strings hidden, clipped."""
    if text is None:
        return None
    text = _ANONYMOUS(text)  # before clipping: a key cut in two is still a key
    return text if len(text) <= MAX_SERVER_TEXT else text[:MAX_SERVER_TEXT] + "..."


class BabouError(Exception):
    """
    Root of every error raised by babou_async.

    Catch this to handle any failure of the library in one place.
    """


class ConfigurationError(BabouError):
    """
    The session cannot be used as configured.

    Raised when a :class:`~babou_async.BabouSession` is built, not on the first request:
    a missing API key, a malformed base URL, a nonsensical option.
    """


class APIError(BabouError):
    """
    The Babou API answered with an error.

    Attributes:
        status: The HTTP status, or ``None`` when the error was detected client-side
            before anything was sent (see :class:`ValidationError`).
        code: The machine-readable ``code`` of the error envelope (for example
            ``"NOT_FOUND"``), or ``None`` when the body carried none.
        message: The human-readable ``error`` text of the envelope.
        hint: The envelope's optional ``hint``.
        request_id: A request identifier from the response headers when the server sent one
            (``X-Request-Id`` and friends), for support tickets.
        method: The HTTP method of the failed request.
        path: The API path of the failed request (relative to the base URL, no query).
        headers: The response headers (lower-cased names).
        retry_after: Seconds the server asked us to wait (``Retry-After``), if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.hint = hint
        self.request_id = request_id
        self.method = method
        self.path = path
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.method and self.path:
            text += f" ({self.method} {self.path})"
        if self.hint:
            text += f"; hint: {self.hint}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, hint={self.hint!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[BabouError], message: str, state: dict[str, Any]) -> BabouError:
    """Unpickle an exception whose ``__init__`` takes keyword-only arguments."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class ValidationError(APIError, ValueError):
    """
    The request was rejected as invalid.

    Either the server said so (HTTP 400), or, before anything was sent, the client's own
    checks of the documented limits did.

    A client-side rejection has ``status=None`` and ``code="VALIDATION_ERROR"``.

    Attributes:
        field: The offending argument, for client-side rejections (``None`` otherwise).
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("code", "VALIDATION_ERROR")
        super().__init__(message, **kwargs)
        self.field = field


class AuthenticationError(APIError):
    """The API key is missing, malformed (``INVALID_API_KEY_FORMAT``) or expired (HTTP 401)."""


class NotFoundError(APIError):
    """The resource does not exist or is not visible to this API key (HTTP 404)."""


class ConflictError(APIError):
    """The resource is busy: a prompt or an export is already in progress (HTTP 409)."""


class PayloadTooLargeError(APIError):
    """The upload exceeds the server's size limit (HTTP 413, ``FILE_TOO_LARGE``)."""


class RateLimitError(APIError):
    """
    The API key's rate limit was exceeded (HTTP 429) and retrying was not possible.

    Attributes:
        retry_after: Seconds the server asked us to wait (from ``Retry-After``), if any.
    """


class ServerError(APIError):
    """The server failed (HTTP 5xx), and retries, if allowed, did not help."""


class TransportError(BabouError):
    """
    The HTTP exchange did not complete: the connection was refused, reset or dropped.

    The underlying aiohttp or OS error is chained as ``__cause__`` in the form of a text-only
    copy (its type and redacted message): aiohttp's own exceptions hold the request headers,
    the API key among them, and never reach the caller.

    Attributes:
        method: The HTTP method.
        url: The URL without its query string (signed download URLs carry secrets there).
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class RequestTimeoutError(TransportError, TimeoutError):
    """A single HTTP request took longer than its timeout."""


class DecodeError(BabouError):
    """
    A response could not be understood: not JSON, or JSON of the wrong shape.

    Attributes:
        status: The HTTP status of the response.
        content_type: Its ``Content-Type`` header.
        body_excerpt: The first 200 bytes of the body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        content_type: str | None = None,
        body_excerpt: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.content_type = content_type
        self.body_excerpt = body_excerpt[:200]

    def __str__(self) -> str:
        return (
            f"{self.args[0]} (HTTP {self.status}, content type {self.content_type!r}, "
            f"body starts {self.body_excerpt!r})"
        )


class WaitTimeoutError(BabouError, TimeoutError):
    """
    A ``wait_for_*`` call reached its deadline before the job reached a terminal state.

    Attributes:
        resource_id: The ID of what was being waited for.
        last_status: The last status observed (a raw string), or ``None`` if none was.
        timeout: The deadline in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        resource_id: str,
        last_status: str | None,
        timeout: float,
    ) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.last_status = server_text(last_status)
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only arguments are required, so the default ``cls(*args)`` fails.
        return (_rebuild, (type(self), self.args[0], self.__dict__.copy()))


class ExportError(BabouError):
    """
    An export did not produce a downloadable video.

    Attributes:
        project_id: The project whose export this is.
    """

    project_id: str


class ExportFailedError(ExportError):
    """
    The server reported the export as ``failed``.

    Attributes:
        project_id: The project.
        error: The server's error text (for example ``"Failed to render chapter 2"``).
    """

    def __init__(self, project_id: str, error: str | None) -> None:
        error = server_text(error)
        super().__init__(f"export of {project_id} failed: {error or 'no reason given'}")
        self.project_id = project_id
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.project_id, self.error))


class ExportTimeoutError(ExportError, WaitTimeoutError):
    """
    The export was still not terminal when the deadline passed.

    Attributes:
        project_id: The project.
        last_status: The last status observed (raw string), or ``None``.
        timeout: The deadline in seconds.
    """

    def __init__(self, project_id: str, last_status: str | None, timeout: float = 0.0) -> None:
        last_status = server_text(last_status)
        WaitTimeoutError.__init__(
            self,
            f"export of {project_id} not finished after {timeout:g}s "
            f"(last status: {last_status or 'none observed'})",
            resource_id=project_id,
            last_status=last_status,
            timeout=timeout,
        )
        self.project_id = project_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.project_id, self.last_status, self.timeout))


class ExportNotReadyError(ExportError):
    """
    A download was requested for an export that has not completed.

    Attributes:
        project_id: The project.
        status: The export's current raw status.
    """

    def __init__(self, project_id: str, status: str) -> None:
        status = server_text(status)
        super().__init__(f"export of {project_id} is {status!r}, not completed")
        self.project_id = project_id
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.project_id, self.status))


class DownloadError(BabouError):
    """
    A finished export could not be downloaded and saved.

    Nothing is left at the final path when this is raised, and an existing file there is
    never replaced.

    Attributes:
        project_id: The project.
        path: The destination path, as a string, if one was chosen.
    """

    def __init__(self, message: str, *, project_id: str, path: str | None = None) -> None:
        super().__init__(message)
        self.project_id = project_id
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args[0], self.__dict__.copy()))


class IntegrityError(DownloadError):
    """The number of bytes received differs from what the server announced."""


class RangeNotSatisfiableError(DownloadError):
    """
    A byte range asked of a video lies outside it: a web app answers ``416``.

    Attributes:
        size: The video's full size in bytes, for ``Content-Range: bytes */<size>``.

    .. versionadded:: 0.2
    """

    def __init__(self, message: str, *, size: int, project_id: str = "") -> None:
        super().__init__(message, project_id=project_id)
        self.size = size


class JournalLockedError(BabouError):
    """
    Another batch is using the destination directory (its journal is locked).

    Two batches writing into one directory would start each other's exports and download
    the same files; the second one is refused before it sends anything.

    Attributes:
        path: The journal's path, as a string.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args[0], self.__dict__.copy()))
