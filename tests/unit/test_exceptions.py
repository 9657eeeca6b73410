"""Tests of the exception tree: bases, attributes, str/repr and pickling."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import pytest

import babou_async
from babou_async import (
    APIError,
    AuthenticationError,
    BabouError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    DownloadError,
    ExportError,
    ExportFailedError,
    ExportNotReadyError,
    ExportTimeoutError,
    IntegrityError,
    JournalLockedError,
    NotFoundError,
    PayloadTooLargeError,
    RangeNotSatisfiableError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
    _exceptions,
)

# --------------------------------------------------------------------------------------
# Hierarchy
# --------------------------------------------------------------------------------------

EXPECTED_BASES: dict[type[BaseException], set[type[BaseException]]] = {
    BabouError: {Exception},
    ConfigurationError: {BabouError},
    APIError: {BabouError},
    ValidationError: {APIError, ValueError},
    AuthenticationError: {APIError},
    NotFoundError: {APIError},
    ConflictError: {APIError},
    PayloadTooLargeError: {APIError},
    RateLimitError: {APIError},
    ServerError: {APIError},
    TransportError: {BabouError},
    RequestTimeoutError: {TransportError, TimeoutError},
    DecodeError: {BabouError},
    WaitTimeoutError: {BabouError, TimeoutError},
    ExportError: {BabouError},
    ExportFailedError: {ExportError},
    ExportTimeoutError: {ExportError, WaitTimeoutError},
    ExportNotReadyError: {ExportError},
    DownloadError: {BabouError},
    IntegrityError: {DownloadError},
    RangeNotSatisfiableError: {DownloadError},
    JournalLockedError: {BabouError},
}


def defined_exceptions() -> set[type[BaseException]]:
    """Every exception class defined in babou_async._exceptions."""
    return {
        obj
        for obj in vars(_exceptions).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == _exceptions.__name__
    }


def test_tree_is_complete() -> None:
    """The table below covers every exception class, and all are exported at the top."""
    assert (set(EXPECTED_BASES), set(_exceptions.__all__)) == (
        defined_exceptions(),
        {cls.__name__ for cls in defined_exceptions()},
    )
    assert all(getattr(babou_async, cls.__name__) is cls for cls in EXPECTED_BASES)


@pytest.mark.parametrize(("cls", "bases"), EXPECTED_BASES.items())
def test_direct_bases(cls: type[BaseException], bases: set[type[BaseException]]) -> None:
    """Each class has exactly the documented direct bases."""
    assert bases == set(cls.__bases__)


@pytest.mark.parametrize("cls", list(EXPECTED_BASES))
def test_everything_is_a_babou_error(cls: type[BaseException]) -> None:
    """One root: catching BabouError catches everything the library raises."""
    assert issubclass(cls, BabouError)


@pytest.mark.parametrize(
    ("stdlib", "expected"),
    [
        (ValueError, {ValidationError}),
        (TimeoutError, {RequestTimeoutError, WaitTimeoutError, ExportTimeoutError}),
    ],
)
def test_stdlib_bases_only_where_meaning_matches(
    stdlib: type[BaseException], expected: set[type[BaseException]]
) -> None:
    """Only validation errors are ValueErrors; only the three timeouts are TimeoutErrors."""
    assert expected == {cls for cls in EXPECTED_BASES if issubclass(cls, stdlib)}


@pytest.mark.parametrize(
    ("error", "stdlib"),
    [
        (RequestTimeoutError("slow", method="GET", url="https://api/x"), TimeoutError),
        (
            WaitTimeoutError("late", resource_id="ast_x", last_status=None, timeout=1.0),
            TimeoutError,
        ),
        (ExportTimeoutError("prj_x", "processing", 600.0), TimeoutError),
        (ValidationError("bad", field="name"), ValueError),
    ],
)
def test_caught_by_stdlib_handlers(error: BabouError, stdlib: type[Exception]) -> None:
    """``except TimeoutError`` and ``except ValueError`` catch the library's instances."""
    with pytest.raises(stdlib) as exc_info:
        raise error

    assert error is exc_info.value


# --------------------------------------------------------------------------------------
# Attributes, str and repr
# --------------------------------------------------------------------------------------


def full_api_error(cls: type[APIError] = NotFoundError) -> APIError:
    """An API error with every attribute set."""
    return cls(
        "Project not found",
        status=404,
        code="NOT_FOUND",
        hint="Check the ID",
        request_id="req-1",
        method="GET",
        path="/projects/prj_x",
        headers={"x-request-id": "req-1"},
        retry_after=3.0,
    )


def test_api_error_attributes() -> None:
    """APIError keeps every structured attribute; headers are copied."""
    headers = {"x-request-id": "req-1"}
    error = NotFoundError(
        "Project not found",
        status=404,
        code="NOT_FOUND",
        hint="h",
        request_id="req-1",
        method="GET",
        path="/projects/prj_x",
        headers=headers,
        retry_after=2.5,
    )
    headers["x-request-id"] = "changed"

    assert (
        "Project not found",
        404,
        "NOT_FOUND",
        "h",
        "req-1",
        "GET",
        "/projects/prj_x",
        {"x-request-id": "req-1"},
        2.5,
        ("Project not found",),
    ) == (
        error.message,
        error.status,
        error.code,
        error.hint,
        error.request_id,
        error.method,
        error.path,
        error.headers,
        error.retry_after,
        error.args,
    )


def test_api_error_defaults() -> None:
    """Only the message is required; the rest defaults to None or empty."""
    error = APIError("boom")

    assert (None, None, None, None, None, None, {}, None) == (
        error.status,
        error.code,
        error.hint,
        error.request_id,
        error.method,
        error.path,
        error.headers,
        error.retry_after,
    )


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            full_api_error(),
            (
                "404 NOT_FOUND: Project not found (GET /projects/prj_x); hint: Check the ID "
                "[request id req-1]"
            ),
        ),
        (APIError("boom"), "boom"),
        (APIError("boom", status=500), "500: boom"),
        (APIError("boom", code="X"), "X: boom"),
        (APIError("boom", method="GET"), "boom"),
        (APIError("boom", path="/x"), "boom"),
        (APIError("boom", status=502, method="POST", path="/assets"), "502: boom (POST /assets)"),
        (APIError("boom", code="", hint="", request_id=""), "boom"),
        (ValidationError("name too long", field="name"), "VALIDATION_ERROR: name too long"),
        (ValidationError("bad", status=400, code=None), "400: bad"),
    ],
)
def test_api_error_str(error: APIError, text: str) -> None:
    """str() shows status, code, message, request, hint and request ID when known."""
    assert text == str(error)


def test_api_error_repr() -> None:
    """repr() names the class and the fields a support ticket needs."""
    assert (
        "NotFoundError(message='Project not found', status=404, code='NOT_FOUND', "
        "hint='Check the ID', request_id='req-1')"
    ) == repr(full_api_error())


def test_client_side_validation_error() -> None:
    """A client-side ValidationError has no status, code VALIDATION_ERROR and a field."""
    error = ValidationError("name must be between 1 and 30 characters, got 31", field="name")

    assert (None, "VALIDATION_ERROR", "name") == (error.status, error.code, error.field)


def test_server_validation_error_keeps_its_code() -> None:
    """A code given explicitly (even None) is not replaced by the default."""
    assert (None, "OTHER") == (
        ValidationError("x", code=None).code,
        ValidationError("x", code="OTHER").code,
    )


def test_transport_error() -> None:
    """TransportError carries the method and URL; str() is the message."""
    error = RequestTimeoutError("read timed out", method="GET", url="https://api.babou.ai/x")

    assert ("read timed out", "GET", "https://api.babou.ai/x") == (
        str(error),
        error.method,
        error.url,
    )


def test_decode_error_str_and_excerpt() -> None:
    """DecodeError's str() says status, content type and how the body starts (200 bytes)."""
    error = DecodeError(
        "response body is not valid JSON",
        status=502,
        content_type="text/html",
        body_excerpt=b"<html>" + b"x" * 300,
    )

    assert (
        200,
        (
            "response body is not valid JSON (HTTP 502, content type 'text/html', "
            f"body starts {b'<html>' + b'x' * 194!r})"
        ),
    ) == (len(error.body_excerpt), str(error))


def test_wait_timeout_error() -> None:
    """WaitTimeoutError names what was waited for, the last status and the deadline."""
    error = WaitTimeoutError(
        "asset not ready after 60s", resource_id="ast_x", last_status="processing", timeout=60.0
    )

    assert ("asset not ready after 60s", "ast_x", "processing", 60.0) == (
        str(error),
        error.resource_id,
        error.last_status,
        error.timeout,
    )


@pytest.mark.parametrize(
    ("error", "text", "attributes"),
    [
        (
            ExportFailedError("prj_x", "Failed to render chapter 2"),
            "export of prj_x failed: Failed to render chapter 2",
            {"project_id": "prj_x", "error": "Failed to render chapter 2"},
        ),
        (
            ExportFailedError("prj_x", None),
            "export of prj_x failed: no reason given",
            {"project_id": "prj_x", "error": None},
        ),
        (
            ExportTimeoutError("prj_x", "processing", 600.0),
            "export of prj_x not finished after 600s (last status: processing)",
            {
                "project_id": "prj_x",
                "resource_id": "prj_x",
                "last_status": "processing",
                "timeout": 600.0,
            },
        ),
        (
            ExportTimeoutError("prj_x", None),
            "export of prj_x not finished after 0s (last status: none observed)",
            {"project_id": "prj_x", "resource_id": "prj_x", "last_status": None, "timeout": 0.0},
        ),
        (
            ExportNotReadyError("prj_x", "processing"),
            "export of prj_x is 'processing', not completed",
            {"project_id": "prj_x", "status": "processing"},
        ),
        (
            DownloadError("disk full", project_id="prj_x", path="/videos/prj_x.mp4"),
            "disk full",
            {"project_id": "prj_x", "path": "/videos/prj_x.mp4"},
        ),
        (
            IntegrityError("got 10 of 20 bytes", project_id="prj_x"),
            "got 10 of 20 bytes",
            {"project_id": "prj_x", "path": None},
        ),
    ],
)
def test_export_and_download_errors(
    error: BabouError, text: str, attributes: dict[str, Any]
) -> None:
    """Export and download errors explain themselves and carry the project."""
    assert (text, attributes) == (str(error), {k: getattr(error, k) for k in attributes})


# --------------------------------------------------------------------------------------
# Pickling (errors cross process boundaries: multiprocessing, concurrent.futures)
# --------------------------------------------------------------------------------------

ONE_OF_EACH: list[BabouError] = [
    BabouError("root"),
    ConfigurationError("no API key"),
    full_api_error(APIError),
    ValidationError("name too long", field="name", status=400, hint="1-30 characters"),
    ValidationError("client side", field="content"),
    full_api_error(AuthenticationError),
    full_api_error(NotFoundError),
    full_api_error(ConflictError),
    full_api_error(PayloadTooLargeError),
    full_api_error(RateLimitError),
    full_api_error(ServerError),
    TransportError("connection reset", method="POST", url="https://api.babou.ai/api/v1/x"),
    RequestTimeoutError("read timeout", method="GET", url="https://api.babou.ai/api/v1/y"),
    DecodeError("not JSON", status=200, content_type="text/html", body_excerpt=b"<html>"),
    WaitTimeoutError("late", resource_id="cht_x", last_status="processing", timeout=30.0),
    ExportError("export went wrong"),
    ExportFailedError("prj_x", "Failed to render chapter 2"),
    ExportTimeoutError("prj_x", "queued", 600.0),
    ExportNotReadyError("prj_x", "processing"),
    DownloadError("disk full", project_id="prj_x", path="/tmp/v.mp4"),  # noqa: S108
    IntegrityError("short", project_id="prj_x", path="/tmp/v.mp4"),  # noqa: S108
    RangeNotSatisfiableError("bytes=900-", size=800, project_id="prj_x"),
    JournalLockedError("another batch", path="/tmp/.babou-journal.sqlite3"),  # noqa: S108
]


def test_one_of_each_covers_every_class() -> None:
    """The pickling cases include every exception class."""
    assert defined_exceptions() == {type(e) for e in ONE_OF_EACH}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("error", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_pickle_round_trip(error: BabouError, protocol: int) -> None:
    """Unpickling gives the same class, message, str, repr and attributes."""
    clone = pickle.loads(pickle.dumps(error, protocol=protocol))  # noqa: S301

    assert (type(error), error.args, str(error), repr(error), vars(error)) == (
        type(clone),
        clone.args,
        str(clone),
        repr(clone),
        vars(clone),
    )


@pytest.mark.parametrize("error", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_copy_round_trip(error: BabouError) -> None:
    """copy.copy and copy.deepcopy, which use the same protocol, keep everything too."""
    for clone in (copy.copy(error), copy.deepcopy(error)):
        assert (type(error), str(error), vars(error)) == (type(clone), str(clone), vars(clone))
