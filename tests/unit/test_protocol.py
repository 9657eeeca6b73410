"""
Tests of the sans-I/O core (:mod:`babou_async._protocol`): no event loop, no sockets.

Response bodies are the examples of the Babou reference pages (docs.babou.ai), plus the
shapes the docs leave open (``shared/babou-api.md``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from babou_async import (
    APIError,
    Asset,
    AssetState,
    AuthenticationError,
    Chapter,
    ChapterStatus,
    ConflictError,
    DecodeError,
    Export,
    ExportStatus,
    NotFoundError,
    Page,
    PayloadTooLargeError,
    PollPolicy,
    Project,
    Prompt,
    PromptStatus,
    PromptSubmission,
    RateLimitError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from babou_async import _protocol as proto
from babou_async._protocol import FailureKind, RawResponse, RequestSpec, RetryMode

NOW = dt.datetime(2025, 12, 2, 10, 0, 0, tzinfo=dt.timezone.utc)
CREATED = dt.datetime(2025, 12, 2, 10, 0, 0, tzinfo=dt.timezone.utc)
PID = "prj_abc123xyz"
CID = "cht_def456uvw"
AID = "ast_abc123xyz456789012"
UUID = "123e4567-e89b-12d3-a456-426614174000"
KEY = "sk-bab-s3cretKEY"


def raw(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> RawResponse:
    """Build a response; ``body`` is JSON-encoded unless it is bytes."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawResponse(status=status, headers=headers or {}, body=data)


def err(
    status: int, body: Any = b"", headers: dict[str, str] | None = None, secret: str | None = None
) -> APIError:
    """Run error_from_response on a GET /projects/prj_x response."""
    return proto.error_from_response(
        raw(status, body, headers), method="GET", path="/projects/prj_x", now=NOW, secret=secret
    )


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def validation_field(exc_info: pytest.ExceptionInfo[ValidationError]) -> str | None:
    """The ``field`` of a raised ValidationError."""
    return exc_info.value.field


@pytest.mark.parametrize("name", ["a", "a" * 30, "é" * 30, " x "])
def test_project_name_within_limits_is_sent(name: str) -> None:
    """Project names of 1 to 30 characters (not bytes) are accepted and sent as given."""
    spec = proto.build_create_project(name)

    assert {"name": name} == spec.json


@pytest.mark.parametrize("name", ["", "a" * 31, None, 5, b"abc"])
def test_project_name_out_of_limits_is_refused(name: object) -> None:
    """Empty, over-long and non-string project names are refused before sending."""
    with pytest.raises(ValidationError) as exc_info:
        proto.build_create_project(name)

    assert "name" == validation_field(exc_info)
    assert exc_info.value.status is None
    assert "VALIDATION_ERROR" == exc_info.value.code


def test_project_name_error_names_the_limits() -> None:
    """The message of a length error names the limits and the actual length."""
    with pytest.raises(ValidationError, match=r"name must be between 1 and 30 characters, got 31"):
        proto.build_create_project("a" * 31)


@pytest.mark.parametrize("description", ["", "d", "d" * 1000])
def test_description_up_to_1000_characters_is_sent(description: str) -> None:
    """A description of 0 to 1000 characters is accepted."""
    spec = proto.build_create_project("n", description)

    assert {"name": "n", "description": description} == spec.json


@pytest.mark.parametrize("description", ["d" * 1001, 3, ["d"]])
def test_bad_description_is_refused(description: object) -> None:
    """A description over 1000 characters or of the wrong type is refused."""
    with pytest.raises(ValidationError) as exc_info:
        proto.build_create_project("n", description)

    assert "description" == validation_field(exc_info)


def test_create_project_request() -> None:
    """POST /projects with name, description and settings; a create is not blindly resent."""
    spec = proto.build_create_project("My video", "About cats", {"theme": "dark"})

    assert (
        RequestSpec(
            method="POST",
            path="/projects",
            json={"name": "My video", "description": "About cats", "settings": {"theme": "dark"}},
            retry_mode=RetryMode.CREATE,
        )
        == spec
    )


def test_create_project_omits_absent_optionals() -> None:
    """Description and settings left out are not sent as null."""
    assert {"name": "n"} == proto.build_create_project("n").json


def test_create_project_copies_settings() -> None:
    """The settings mapping is copied into a plain dict (a later mutation is not sent)."""
    settings = {"a": 1}
    spec = proto.build_create_project("n", settings=settings)
    settings["a"] = 2

    assert {"name": "n", "settings": {"a": 1}} == spec.json


@pytest.mark.parametrize("settings", [["a"], "theme", 3])
def test_settings_must_be_a_mapping(settings: object) -> None:
    """Settings that are not a mapping are refused."""
    with pytest.raises(ValidationError, match="settings must be a mapping") as exc_info:
        proto.build_create_project("n", settings=settings)

    assert "settings" == validation_field(exc_info)


@pytest.mark.parametrize("settings", [{"when": dt.date(2025, 1, 1)}, {"tags": {"a", "b"}}])
def test_settings_must_be_json_serialisable(settings: dict[str, object]) -> None:
    """Settings that cannot be sent as JSON are refused with the reason."""
    with pytest.raises(ValidationError, match="settings must be JSON-serialisable") as exc_info:
        proto.build_create_project("n", settings=settings)

    assert "settings" == validation_field(exc_info)


@pytest.mark.parametrize("duration", [None, 1, 30, 10**6])
def test_chapter_duration_positive_int_or_absent(duration: int | None) -> None:
    """A chapter's duration is a positive integer, or left out."""
    spec = proto.build_create_chapter(PID, "Intro", duration)

    expected: dict[str, object] = {"name": "Intro"}
    if duration is not None:
        expected["duration"] = duration
    assert (
        RequestSpec(
            method="POST",
            path=f"/projects/{PID}/chapters",
            json=expected,
            retry_mode=RetryMode.CREATE,
        )
        == spec
    )


@pytest.mark.parametrize("duration", [0, -1, True, False, 1.5, 10.0, "10"])
def test_chapter_duration_not_positive_int_is_refused(duration: object) -> None:
    """Zero, negative, boolean, float and string durations are refused."""
    with pytest.raises(ValidationError, match="duration must be a positive integer") as exc_info:
        proto.build_create_chapter(PID, "Intro", duration)

    assert "duration" == validation_field(exc_info)


@pytest.mark.parametrize("name", ["", "n" * 31])
def test_chapter_name_limits(name: str) -> None:
    """Chapter names follow the same 1-30 limit as project names."""
    with pytest.raises(ValidationError) as exc_info:
        proto.build_create_chapter(PID, name)

    assert "name" == validation_field(exc_info)


@pytest.mark.parametrize("content", ["x", "x" * 5000])
def test_prompt_content_within_limits(content: str) -> None:
    """Prompt content of 1 to 5000 characters is sent with force."""
    spec = proto.build_submit_prompt(PID, CID, content, force=True)

    assert (
        RequestSpec(
            method="POST",
            path=f"/projects/{PID}/chapters/{CID}/prompt",
            json={"content": content, "force": True},
            retry_mode=RetryMode.CREATE,
        )
        == spec
    )


def test_prompt_force_defaults_to_false() -> None:
    """Force is sent, false, when not given."""
    assert {"content": "c", "force": False} == proto.build_submit_prompt(PID, CID, "c").json


@pytest.mark.parametrize("content", ["", "x" * 5001, None, 1])
def test_prompt_content_out_of_limits(content: object) -> None:
    """Empty, over 5000 characters and non-string contents are refused."""
    with pytest.raises(ValidationError) as exc_info:
        proto.build_submit_prompt(PID, CID, content)

    assert "content" == validation_field(exc_info)


@pytest.mark.parametrize("force", [1, 0, "true", None])
def test_prompt_force_must_be_bool(force: object) -> None:
    """Force must be a real bool (not 1, "true" or None)."""
    with pytest.raises(ValidationError, match="force must be a bool") as exc_info:
        proto.build_submit_prompt(PID, CID, "c", force)

    assert "force" == validation_field(exc_info)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (proto.check_project_id, "prj_abc123xyz"),
        (proto.check_project_id, "prj_" + "A" * 21),
        (proto.check_project_id, "prj_" + "a" * 196),
        (proto.check_project_id, "prj_a-b_c"),
        (proto.check_chapter_id, "cht_def456uvw"),
        (proto.check_asset_id, AID),
        (proto.check_asset_id, UUID),
        (proto.check_asset_id, UUID.upper()),
    ],
)
def test_valid_ids_are_returned(check: Any, value: str) -> None:
    """IDs with their prefix (any length, as the docs' examples) or an asset UUID pass."""
    assert value == check(value)


@pytest.mark.parametrize(
    ("check", "value", "field"),
    [
        (proto.check_project_id, "", "project_id"),
        (proto.check_project_id, "prj_", "project_id"),
        (proto.check_project_id, "cht_abc", "project_id"),
        (proto.check_project_id, "PRJ_abc", "project_id"),
        (proto.check_project_id, "prj_" + "a" * 197, "project_id"),
        (proto.check_project_id, None, "project_id"),
        (proto.check_project_id, 12, "project_id"),
        (proto.check_chapter_id, "prj_abc", "chapter_id"),
        (proto.check_chapter_id, "cht_", "chapter_id"),
        (proto.check_asset_id, "ast_", "asset_id"),
        (proto.check_asset_id, "prj_abc", "asset_id"),
        (proto.check_asset_id, UUID.replace("-", ""), "asset_id"),
        (proto.check_asset_id, UUID + "0", "asset_id"),
        (proto.check_asset_id, None, "asset_id"),
    ],
)
def test_invalid_ids_are_refused(check: Any, value: object, field: str) -> None:
    """IDs without their prefix, empty after it, too long or not strings are refused."""
    with pytest.raises(ValidationError) as exc_info:
        check(value)

    assert field == validation_field(exc_info)


@pytest.mark.parametrize(
    "suffix", ["../x", "a/b", "a?b=1", "a#b", "a b", "a\n", "a%2F", "a.b", "é", "a\x00"]
)
@pytest.mark.parametrize(
    ("check", "prefix"),
    [
        (proto.check_project_id, "prj_"),
        (proto.check_chapter_id, "cht_"),
        (proto.check_asset_id, "ast_"),
    ],
)
def test_path_characters_in_ids_are_refused(check: Any, prefix: str, suffix: str) -> None:
    """An ID that could escape its path segment or add a query is refused."""
    with pytest.raises(ValidationError, match="may only contain letters, digits"):
        check(prefix + suffix)


def test_non_string_id_message_names_the_type() -> None:
    """A non-string ID's message says what was given."""
    with pytest.raises(ValidationError, match="project_id must be a string, got int"):
        proto.check_project_id(5)


@pytest.mark.parametrize(
    "build",
    [
        proto.build_get_project,
        proto.build_list_chapters,
        proto.build_start_export,
        proto.build_get_export,
        lambda pid: proto.build_create_chapter(pid, "n"),
        lambda pid: proto.build_get_chapter(pid, CID),
        lambda pid: proto.build_submit_prompt(pid, CID, "c"),
    ],
)
def test_every_project_builder_checks_the_project_id(build: Any) -> None:
    """Every request under /projects/{id} validates the project ID first."""
    with pytest.raises(ValidationError) as exc_info:
        build("prj_../../assets")

    assert "project_id" == validation_field(exc_info)


@pytest.mark.parametrize(
    "build",
    [
        lambda cid: proto.build_get_chapter(PID, cid),
        lambda cid: proto.build_submit_prompt(PID, cid, "c"),
    ],
)
def test_chapter_builders_check_the_chapter_id(build: Any) -> None:
    """Requests under a chapter validate the chapter ID."""
    with pytest.raises(ValidationError) as exc_info:
        build("cht_x/prompt")

    assert "chapter_id" == validation_field(exc_info)


@pytest.mark.parametrize("content_type", sorted(proto.ALLOWED_CONTENT_TYPES))
def test_allowed_content_types_pass(content_type: str) -> None:
    """Every MIME type of the upload page is accepted as is."""
    assert content_type == proto.normalise_content_type(content_type)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Video/MP4", "video/mp4"),
        ("video/mp4; codecs=avc1", "video/mp4"),
        ("  image/png ; q=1", "image/png"),
    ],
)
def test_content_type_is_normalised(given: str, expected: str) -> None:
    """Case and parameters are dropped from a content type."""
    assert expected == proto.normalise_content_type(given)


@pytest.mark.parametrize("content_type", [None, "", "   ", 5])
def test_missing_content_type_is_refused(content_type: object) -> None:
    """A missing content type is refused with a hint that it could not be guessed."""
    with pytest.raises(ValidationError, match="content_type is required") as exc_info:
        proto.normalise_content_type(content_type)

    assert "content_type" == validation_field(exc_info)


@pytest.mark.parametrize("content_type", ["application/pdf", "video/x-matroska", "audio/x-wav"])
def test_unsupported_content_type_is_refused(content_type: str) -> None:
    """A MIME type Babou does not list is refused, and the message lists the good ones."""
    with pytest.raises(ValidationError, match=r"is not accepted by Babou; use one of audio/aac"):
        proto.normalise_content_type(content_type)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("clip.mp4", "video/mp4"),
        ("clip.M4V", "video/mp4"),
        ("clip.MOV", "video/quicktime"),
        ("clip.qt", "video/quicktime"),
        ("old.avi", "video/x-msvideo"),
        ("web.webm", "video/webm"),
        ("logo.png", "image/png"),
        ("photo.jpg", "image/jpeg"),
        ("photo.JPEG", "image/jpeg"),
        ("anim.gif", "image/gif"),
        ("pic.webp", "image/webp"),
        ("icon.svg", "image/svg+xml"),
        ("song.mp3", "audio/mpeg"),
        ("sound.wav", "audio/wav"),
        ("sound.ogg", "audio/ogg"),
        ("sound.oga", "audio/ogg"),
        ("sound.aac", "audio/aac"),
        ("archive.tar.mp4", "video/mp4"),
        (".mp4", "video/mp4"),
        ("README", None),
        ("notes.txt", None),
        ("dir.v1/file", None),
        ("clip.", None),
    ],
)
def test_guess_content_type(filename: str, expected: str | None) -> None:
    """The content type is guessed from the last extension, case-insensitively."""
    assert expected == proto.guess_content_type(filename)


def test_guessed_types_are_all_accepted() -> None:
    """Every type the extension table can guess is one Babou accepts."""
    assert set(proto.EXTENSION_CONTENT_TYPES.values()) <= proto.ALLOWED_CONTENT_TYPES


@pytest.mark.parametrize("size", [None, 0, 1, 100_000_000])
def test_upload_size_up_to_100_mb_passes(size: int | None) -> None:
    """Sizes up to 100 MB (10**8 bytes, the stricter reading) and unknown sizes pass."""
    proto.check_upload_size(size)  # raises if refused


@pytest.mark.parametrize("size", [100_000_001, 100 * 1024 * 1024])
def test_upload_over_100_mb_is_refused(size: int) -> None:
    """An upload known to exceed 100 MB is refused before sending."""
    with pytest.raises(ValidationError, match=f"file is {size} bytes") as exc_info:
        proto.check_upload_size(size)

    assert "file" == validation_field(exc_info)


@pytest.mark.parametrize("limit", [1, 20, 100])
def test_page_size_within_limits(limit: int) -> None:
    """Page sizes from 1 to 100 pass."""
    assert limit == proto.check_limit(limit)


@pytest.mark.parametrize("limit", [0, -5, 101, True, 20.0, "20", None])
def test_page_size_out_of_limits(limit: object) -> None:
    """Page sizes outside 1-100, booleans, floats and strings are refused."""
    with pytest.raises(ValidationError, match="page_size must be an integer from 1 to 100"):
        proto.check_limit(limit)


def test_positive_int_without_maximum() -> None:
    """Without a maximum, any int >= 1 passes and the message says so."""
    assert 10**12 == proto.check_positive_int(10**12, "n")
    with pytest.raises(ValidationError, match=r"n must be an integer >= 1, got 0") as exc_info:
        proto.check_positive_int(0, "n")

    assert "n" == validation_field(exc_info)


# --------------------------------------------------------------------------------------
# Request builders
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            proto.build_list_projects(20, 40),
            RequestSpec(method="GET", path="/projects", params={"limit": "20", "offset": "40"}),
        ),
        (proto.build_get_project(PID), RequestSpec(method="GET", path=f"/projects/{PID}")),
        (
            proto.build_list_chapters(PID),
            RequestSpec(method="GET", path=f"/projects/{PID}/chapters"),
        ),
        (
            proto.build_get_chapter(PID, CID),
            RequestSpec(method="GET", path=f"/projects/{PID}/chapters/{CID}"),
        ),
        (proto.build_get_asset(AID), RequestSpec(method="GET", path=f"/assets/{AID}")),
        (proto.build_get_asset(UUID), RequestSpec(method="GET", path=f"/assets/{UUID}")),
        (
            proto.build_start_export(PID),
            RequestSpec(
                method="POST",
                path=f"/projects/{PID}/export",
                json=None,
                retry_mode=RetryMode.START_EXPORT,
            ),
        ),
        (proto.build_get_export(PID), RequestSpec(method="GET", path=f"/projects/{PID}/export")),
        (
            proto.build_list_assets(20, 0, None, None),
            RequestSpec(method="GET", path="/assets", params={"limit": "20", "offset": "0"}),
        ),
        (
            proto.build_list_assets(100, 200, "Video/MP4; x=y", "ready"),
            RequestSpec(
                method="GET",
                path="/assets",
                params={
                    "limit": "100",
                    "offset": "200",
                    "contentType": "video/mp4",
                    "state": "ready",
                },
            ),
        ),
    ],
)
def test_request_builders(spec: RequestSpec, expected: RequestSpec) -> None:
    """Each builder gives the documented method, path and query, and its retry mode."""
    assert expected == spec


def test_request_spec_defaults() -> None:
    """A spec defaults to no query, no body and an idempotent retry mode."""
    spec = RequestSpec(method="GET", path="/x")

    assert ({}, None, RetryMode.IDEMPOTENT) == (spec.params, spec.json, spec.retry_mode)


@pytest.mark.parametrize("state", ["", 5])
def test_list_assets_state_must_be_non_empty_string(state: Any) -> None:
    """An empty or non-string state filter is refused."""
    with pytest.raises(ValidationError, match="state must be a non-empty string") as exc_info:
        proto.build_list_assets(20, 0, None, state)

    assert "state" == validation_field(exc_info)


def test_list_assets_content_type_is_validated() -> None:
    """The contentType filter must be a type Babou accepts."""
    with pytest.raises(ValidationError) as exc_info:
        proto.build_list_assets(20, 0, "text/html", None)

    assert "content_type" == validation_field(exc_info)


# --------------------------------------------------------------------------------------
# Raw responses and JSON
# --------------------------------------------------------------------------------------


def test_raw_response_content_type() -> None:
    """content_type reads the lower-cased header, or None."""
    assert ("application/json", None) == (
        RawResponse(status=200, headers={"content-type": "application/json"}).content_type,
        RawResponse(status=200).content_type,
    )


def test_parse_json_success() -> None:
    """A JSON body is decoded whatever the content type says."""
    response = RawResponse(status=200, headers={"content-type": "text/plain"}, body=b'{"a": [1]}')

    assert {"a": [1]} == proto.parse_json(response)


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b"\xff\xfe", b'{"a": '])
def test_parse_json_failure_is_decode_error(body: bytes) -> None:
    """A body that is not JSON gives a DecodeError with status, content type and excerpt."""
    response = RawResponse(status=200, headers={"content-type": "text/html"}, body=body)

    with pytest.raises(DecodeError) as exc_info:
        proto.parse_json(response)

    assert (200, "text/html", body, "response body is not valid JSON") == (
        exc_info.value.status,
        exc_info.value.content_type,
        exc_info.value.body_excerpt,
        exc_info.value.args[0],
    )


def test_decode_error_keeps_only_200_bytes() -> None:
    """The body excerpt of a DecodeError is capped at 200 bytes."""
    error = proto.decode_error(RawResponse(status=502, body=b"x" * 1000), "bad")

    assert b"x" * 200 == error.body_excerpt


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

DOCUMENTED_ERRORS = [
    (401, "UNAUTHORIZED", "Unauthorized - Invalid API key", AuthenticationError),
    (401, "INVALID_API_KEY_FORMAT", "Invalid API key format", AuthenticationError),
    (401, "API_KEY_EXPIRED", "API key has expired", AuthenticationError),
    (400, "VALIDATION_ERROR", "Validation failed", ValidationError),
    (400, "VALIDATION_ERROR", "Project has no completed chapters", ValidationError),
    (400, "VALIDATION_ERROR", "Content-Type header is required", ValidationError),
    (404, "NOT_FOUND", "Project not found", NotFoundError),
    (404, "NOT_FOUND", "Chapter not found", NotFoundError),
    (404, "NOT_FOUND", "Asset not found", NotFoundError),
    (404, "NOT_FOUND", "No export found for this project", NotFoundError),
    (409, "CONFLICT", "A prompt is already being processed for this chapter", ConflictError),
    (409, "CONFLICT", "An export is already in progress for this project", ConflictError),
    (
        413,
        "FILE_TOO_LARGE",
        "File size exceeds maximum allowed size of 100MB",
        PayloadTooLargeError,
    ),
    (429, "RATE_LIMIT_EXCEEDED", "Too many requests", RateLimitError),
    (500, "UPLOAD_FAILED", "Failed to upload file to storage", ServerError),
    (500, "INTERNAL_ERROR", "Internal server error", ServerError),
]


@pytest.mark.parametrize(("status", "code", "message", "cls"), DOCUMENTED_ERRORS)
def test_documented_errors_flat_envelope(
    status: int, code: str, message: str, cls: type[APIError]
) -> None:
    """Each documented status and code, in the documented flat envelope, maps to its class."""
    error = err(status, {"error": message, "code": code, "hint": "Try again"})

    assert (cls, status, code, message, "Try again", "GET", "/projects/prj_x") == (
        type(error),
        error.status,
        error.code,
        error.message,
        error.hint,
        error.method,
        error.path,
    )


@pytest.mark.parametrize(("status", "code", "message", "cls"), DOCUMENTED_ERRORS)
def test_documented_errors_nested_envelope(
    status: int, code: str, message: str, cls: type[APIError]
) -> None:
    """The nested ``{"error": {"code", "message", "hint"}}`` shape is read the same way."""
    error = err(status, {"error": {"code": code, "message": message, "hint": "h"}})

    assert (cls, code, message, "h") == (type(error), error.code, error.message, error.hint)


def test_nested_envelope_falls_back_to_outer_fields() -> None:
    """In a nested envelope, ``error.error`` is a message and outer code/hint are used."""
    error = err(409, {"error": {"error": "Busy"}, "code": "CONFLICT", "hint": "wait"})

    assert ("Busy", "CONFLICT", "wait") == (error.message, error.code, error.hint)


def test_flat_envelope_with_message_field() -> None:
    """An envelope with ``message`` and no ``error`` still yields its message."""
    error = err(404, {"message": "gone", "code": "NOT_FOUND"})

    assert ("gone", "NOT_FOUND", None) == (error.message, error.code, error.hint)


def test_non_string_envelope_fields_become_text() -> None:
    """Non-string ``error`` or ``code`` values are kept as JSON text, never dropped."""
    error = err(400, {"error": ["name too long", "bad duration"], "code": 42})

    assert ('["name too long", "bad duration"]', "42") == (error.message, error.code)


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            502,
            b"<html><body>502 Bad Gateway</body></html>",
            ServerError,
            "HTTP 502 from the Babou API (the body is not a JSON error envelope)",
        ),
        (500, b"", ServerError, "HTTP 500 from the Babou API"),
        (
            404,
            b"\xff\xfe",
            NotFoundError,
            "HTTP 404 from the Babou API (the body is not a JSON error envelope)",
        ),
        (
            401,
            b"null",
            AuthenticationError,
            "HTTP 401 from the Babou API (the body is not a JSON error envelope)",
        ),
        (400, b"[1, 2]", ValidationError, "HTTP 400 from the Babou API"),
        (409, b'{"error": "", "code": "CONFLICT"}', ConflictError, "HTTP 409 from the Babou API"),
        (413, b'{"other": 1}', PayloadTooLargeError, "HTTP 413 from the Babou API"),
    ],
)
def test_error_without_usable_message(
    status: int, body: bytes, cls: type[APIError], message: str
) -> None:
    """HTML, empty, undecodable and envelope-less bodies still give the class of their status."""
    error = err(status, body)

    assert (cls, message, status) == (type(error), error.message, error.status)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (418, None, APIError),
        (418, "TEAPOT", APIError),
        (403, None, APIError),
        (302, None, APIError),
        (422, "VALIDATION_ERROR", ValidationError),
        (403, "UNAUTHORIZED", AuthenticationError),
        (403, "INVALID_API_KEY_FORMAT", AuthenticationError),
        (403, "API_KEY_EXPIRED", AuthenticationError),
        (410, "NOT_FOUND", NotFoundError),
        (423, "CONFLICT", ConflictError),
        (400, "FILE_TOO_LARGE", ValidationError),
        (411, "FILE_TOO_LARGE", PayloadTooLargeError),
        (420, "RATE_LIMIT_EXCEEDED", RateLimitError),
        (420, "RATE_LIMITED", RateLimitError),
        (420, "TOO_MANY_REQUESTS", RateLimitError),
        (429, "SOMETHING_NEW", RateLimitError),
        (404, "CONFLICT", NotFoundError),
        (500, "VALIDATION_ERROR", ServerError),
        (501, None, ServerError),
        (502, None, ServerError),
        (503, "RATE_LIMIT_EXCEEDED", ServerError),
        (504, None, ServerError),
        (599, None, ServerError),
    ],
)
def test_error_class_choice(status: int, code: str | None, cls: type[APIError]) -> None:
    """A listed status decides; else 5xx is ServerError; else a known code; else APIError."""
    assert cls is proto.error_class(status, code)
    body = {"error": "x"} if code is None else {"error": "x", "code": code}
    assert cls is type(err(status, body))


def test_secret_is_redacted_from_message_and_hint() -> None:
    """The API key echoed in a message or hint never reaches the exception."""
    error = err(
        401,
        {
            "error": f"Invalid API key format: {KEY}",
            "code": "INVALID_API_KEY_FORMAT",
            "hint": f"'{KEY}' must start with sk-bab-",
        },
        secret=KEY,
    )

    assert (
        "Invalid API key format: [REDACTED]",
        "'[REDACTED]' must start with sk-bab-",
    ) == (error.message, error.hint)
    assert KEY not in str(error)
    assert KEY not in repr(error)


def test_secret_is_redacted_from_nested_and_non_string_messages() -> None:
    """Redaction applies to nested envelopes and JSON-encoded messages as well."""
    error = err(400, {"error": {"message": [KEY]}, "hint": {"key": KEY}}, secret=KEY)

    assert ('["[REDACTED]"]', '{"key": "[REDACTED]"}') == (error.message, error.hint)


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_leaves_text_alone(secret: str | None) -> None:
    """Without a secret to scrub, the texts are kept as sent."""
    error = err(401, {"error": f"bad key {KEY}", "hint": "h"}, secret=secret)

    assert (f"bad key {KEY}", "h") == (error.message, error.hint)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "req-1"}, "req-1"),
        ({"request-id": "req-2"}, "req-2"),
        ({"x-amzn-requestid": "req-3"}, "req-3"),
        ({"cf-ray": "8a1b2c3d4e5f-CDG"}, "8a1b2c3d4e5f-CDG"),
        ({"cf-ray": "ray", "x-request-id": "first"}, "first"),
        ({"x-other": "nope"}, None),
    ],
)
def test_request_id_from_headers(headers: dict[str, str], expected: str | None) -> None:
    """The request ID is taken from the first known header present."""
    error = err(500, {"error": "boom"}, headers)

    assert expected == error.request_id
    assert headers == dict(error.headers)


def test_rate_limit_error_carries_retry_after() -> None:
    """A 429's Retry-After is parsed onto the exception."""
    error = err(429, {"error": "slow down"}, {"retry-after": "7"})

    assert (RateLimitError, 7.0) == (type(error), error.retry_after)


def test_error_without_retry_after() -> None:
    """Without the header, retry_after is None."""
    assert err(503, {"error": "down"}).retry_after is None


def test_server_error_retry_after_http_date() -> None:
    """An HTTP-date Retry-After on a 503 is measured from the given ``now``."""
    later = email.utils.format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True)

    assert 90.0 == err(503, {"error": "down"}, {"retry-after": later}).retry_after


def test_error_str_names_status_code_request_and_hint() -> None:
    """str() of a parsed error is a useful one-line summary."""
    error = err(
        404,
        {"error": "Project not found", "code": "NOT_FOUND", "hint": "Check the ID"},
        {"x-request-id": "r1"},
    )

    assert (
        "404 NOT_FOUND: Project not found (GET /projects/prj_x); hint: Check the ID [request id r1]"
    ) == str(error)


# --------------------------------------------------------------------------------------
# Retry-After
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        ("-5", 0.0),
        ("-0.5", 0.0),
        ("inf", None),
        ("-inf", None),
        ("Infinity", None),
        ("nan", None),
        ("1e400", None),
        ("soon", None),
        ("5 seconds", None),
        ("0x10", None),
        ("Wed, 02 Dec 2025 10:01:00 GMT", 60.0),
        ("Wed, 02 Dec 2025 10:00:00 GMT", 0.0),
        ("Tue, 02 Dec 2025 09:00:00 GMT", 0.0),
        ("Wed, 02 Dec 2025 11:00:30 +0100", 30.0),
        ("Wed, 02 Dec 2025 10:00:05 -0000", 5.0),
        ("Wed, 02 Dec 2025 10:00:05", 5.0),
        ("Wed, 32 Dec 2025 10:00:00 GMT", None),
        ("Wed, 02 Foo 2025 10:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Seconds (never negative, finite) or an HTTP-date relative to ``now``; else None."""
    assert expected == proto.parse_retry_after(value, now=NOW)


def test_parse_retry_after_needs_the_time_from_the_caller() -> None:
    """The core reads no clock: ``now`` is a required argument, a past date gives zero."""
    with pytest.raises(TypeError):
        proto.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT")  # type: ignore[call-arg]
    assert 0.0 == proto.parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=NOW)


@given(st.integers(min_value=0, max_value=10**9))
def test_parse_retry_after_integer_seconds(seconds: int) -> None:
    """Any delay-seconds value is read back exactly."""
    assert float(seconds) == proto.parse_retry_after(str(seconds), now=NOW)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_retry_after_float_seconds(seconds: float) -> None:
    """Fractional and negative seconds are read, negatives clamped to zero."""
    assert max(0.0, seconds) == proto.parse_retry_after(repr(seconds), now=NOW)


@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.just(dt.timezone.utc),
    ).map(lambda d: d.replace(microsecond=0))
)
def test_parse_retry_after_http_dates(when: dt.datetime) -> None:
    """An HTTP-date gives the seconds from ``now`` to it, zero when it is past."""
    value = email.utils.format_datetime(when, usegmt=True)

    assert max(0.0, (when - NOW).total_seconds()) == proto.parse_retry_after(value, now=NOW)


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    """Any header text gives None or a finite, non-negative number of seconds."""
    result = proto.parse_retry_after(value, now=NOW)

    assert result is None or (math.isfinite(result) and result >= 0.0)


# --------------------------------------------------------------------------------------
# estimated_time
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2-5 minutes", (120.0, 300.0)),
        ("30-90 seconds", (30.0, 90.0)),
        ("30\u201390 seconds", (30.0, 90.0)),
        ("2\u20145 min", (120.0, 300.0)),
        ("2 - 5 minutes", (120.0, 300.0)),
        ("2 to 5 minutes", (120.0, 300.0)),
        ("1 hour", (3600.0, 3600.0)),
        ("1.5h", (5400.0, 5400.0)),
        ("about 45 secs", (45.0, 45.0)),
        ("10s", (10.0, 10.0)),
        ("5-2 minutes", (120.0, 300.0)),
        ("2 Minutes", (120.0, 120.0)),
        ("1-2 hrs", (3600.0, 7200.0)),
        ("0.5-1 minute", (30.0, 60.0)),
        ("usually 2-5 minutes.", (120.0, 300.0)),
        ("a few minutes", None),
        ("soon", None),
        ("", None),
        ("500ms", None),
        ("5 milliseconds", None),
        ("5 days", None),
        (None, None),
        (120, None),
        (["2-5 minutes"], None),
    ],
)
def test_parse_estimated_time(value: object, expected: tuple[float, float] | None) -> None:
    """Estimates become (low, high) seconds; unknown forms and non-strings give None."""
    assert expected == proto.parse_estimated_time(value)


UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}


@given(
    low=st.integers(min_value=0, max_value=10_000),
    high=st.integers(min_value=0, max_value=10_000),
    separator=st.sampled_from(["-", " - ", "\u2013", " \u2014 ", " to "]),
    space=st.sampled_from(["", " "]),
    unit=st.sampled_from(sorted(UNITS)),
    upper=st.booleans(),
)
def test_parse_estimated_time_ranges(
    low: int, high: int, separator: str, space: str, unit: str, upper: bool
) -> None:
    """Any ``<low><sep><high> <unit>`` range is read in seconds, ordered low to high."""
    text = f"{low}{separator}{high}{space}{unit.upper() if upper else unit}"
    scale = UNITS[unit]

    assert (min(low, high) * scale, max(low, high) * scale) == proto.parse_estimated_time(text)


@given(st.text())
def test_parse_estimated_time_never_raises(value: str) -> None:
    """Any text gives None or an ordered, non-negative pair."""
    result = proto.parse_estimated_time(value)

    assert result is None or 0.0 <= result[0] <= result[1]


# --------------------------------------------------------------------------------------
# Payloads -> models
# --------------------------------------------------------------------------------------

PROJECT = {
    "id": "prj_abc123xyz",
    "name": "My Video Project",
    "description": "A project for creating marketing videos",
    "settings": None,
    "active_export_id": None,
    "created_at": "2025-12-02T10:00:00Z",
}
CHAPTER_CREATED = {
    "id": "cht_def456uvw",
    "project_id": PID,
    "name": "Introduction",
    "duration": 30,
    "created_at": "2025-12-02T10:00:00Z",
}
CHAPTER_LISTED = {**CHAPTER_CREATED, "status": "ready", "prompt_count": 2}
CHAPTER_FULL = {
    **CHAPTER_LISTED,
    "prompts": [
        {
            "id": "int_abc123xyz789",
            "content": "Create an intro",
            "result": "Intro created",
            "created_at": "2025-12-02T10:00:00Z",
        },
        {
            "id": "int_def456uvw012",
            "content": "Add music",
            "result": None,
            "created_at": "2025-12-02T10:00:00Z",
        },
    ],
}
ASSET = {
    "id": AID,
    "name": "uploaded-file",
    "url": None,
    "content_type": "video/mp4",
    "size": 1048576,
    "state": "processing",
    "duration": None,
    "width": None,
    "height": None,
    "created_at": "2025-12-02T10:00:00Z",
}


def test_parse_project_doc_example() -> None:
    """The documented project object becomes a Project with an aware created_at."""
    project = proto.parse_project(raw(), PROJECT)

    assert (
        Project(
            id="prj_abc123xyz",
            name="My Video Project",
            description="A project for creating marketing videos",
            settings=None,
            active_export_id=None,
            created_at=CREATED,
        )
        == project
    )


def test_parse_project_ignores_unknown_fields() -> None:
    """Fields the docs do not list are ignored, so the server may add some."""
    project = proto.parse_project(raw(), {**PROJECT, "chapters": [], "owner": {"id": 1}})

    assert (
        Project(
            id="prj_abc123xyz",
            name="My Video Project",
            description="A project for creating marketing videos",
            created_at=CREATED,
        )
        == project
    )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({**PROJECT, "id": 123}, "expected str @ $.id"),
        ({**PROJECT, "settings": ["x"]}, "@ $.settings"),
        ({**PROJECT, "name": 5}, "@ $.name"),
        ({"name": "no id"}, "required field missing @ $.id"),
    ],
)
def test_parse_project_wrong_types(payload: dict[str, Any], fragment: str) -> None:
    """Wrong field types or a missing id are a DecodeError naming the field and the response."""
    response = RawResponse(
        status=201, headers={"content-type": "application/json"}, body=b'{"id": 123}'
    )
    with pytest.raises(DecodeError, match="unexpected Project in response") as exc_info:
        proto.parse_project(response, payload)

    assert fragment in str(exc_info.value)
    assert (201, "application/json", b'{"id": 123}') == (
        exc_info.value.status,
        exc_info.value.content_type,
        exc_info.value.body_excerpt,
    )


@pytest.mark.parametrize("payload", [[PROJECT], "prj_x", None, 3])
def test_parse_project_not_an_object(payload: object) -> None:
    """A project that is not a JSON object is a DecodeError saying what it was."""
    with pytest.raises(DecodeError, match=r"expected a JSON object for a project, got"):
        proto.parse_project(raw(), payload)


def test_projects_page_bare_list() -> None:
    """GET /projects as a bare list: items parsed, no pagination known."""
    projects, page = proto.parse_projects_page(raw(), [PROJECT, {**PROJECT, "id": "prj_2"}])

    assert (["prj_abc123xyz", "prj_2"], Page()) == ([p.id for p in projects], page)


@pytest.mark.parametrize("key", ["projects", "data", "items", "results"])
def test_projects_page_envelope(key: str) -> None:
    """GET /projects as an envelope under any of the usual keys, with pagination."""
    payload = {key: [PROJECT], "pagination": {"limit": 20, "offset": 0, "total": 1}}

    projects, page = proto.parse_projects_page(raw(), payload)

    assert (["prj_abc123xyz"], Page(limit=20, offset=0, total=1)) == (
        [p.id for p in projects],
        page,
    )


def test_projects_page_top_level_pagination() -> None:
    """Pagination fields at the top of the envelope are read; nulls are left out."""
    payload = {"projects": [], "limit": 10, "offset": 30, "total": None, "pagination": "n/a"}

    assert ([], Page(limit=10, offset=30)) == proto.parse_projects_page(raw(), payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"projects": None}, "no list of projects in response"),
        ({"count": 1}, "no list of projects in response"),
        ("nope", "expected a JSON object for projects, got str"),
        ({"projects": [], "pagination": {"total": "3"}}, "unexpected Page in response"),
        ({"projects": [{"id": 1, "name": "x"}]}, "unexpected Project in response"),
    ],
)
def test_projects_page_malformed(payload: object, message: str) -> None:
    """A page without a list, with bad pagination or bad items is a DecodeError."""
    with pytest.raises(DecodeError, match=message):
        proto.parse_projects_page(raw(), payload)


def test_parse_created_chapter_has_no_status() -> None:
    """The create-chapter answer has no status: status is None, prompts empty."""
    chapter = proto.parse_chapter(raw(), CHAPTER_CREATED, PID)

    assert (
        Chapter(id=CID, project_id=PID, name="Introduction", duration=30.0, created_at=CREATED)
        == chapter
    )
    assert chapter.status is None
    assert not chapter.is_ready


def test_parse_chapter_with_prompts() -> None:
    """GET chapter: status, prompt count and prompts are parsed."""
    chapter = proto.parse_chapter(raw(), CHAPTER_FULL, PID)

    assert (
        Chapter(
            id=CID,
            project_id=PID,
            name="Introduction",
            duration=30.0,
            status=ChapterStatus.READY,
            status_raw="ready",
            prompt_count=2,
            prompts=(
                Prompt(
                    id="int_abc123xyz789",
                    content="Create an intro",
                    result="Intro created",
                    created_at=CREATED,
                ),
                Prompt(id="int_def456uvw012", content="Add music", created_at=CREATED),
            ),
            created_at=CREATED,
        )
        == chapter
    )
    assert chapter.is_ready
    assert [True, False] == [p.is_done for p in chapter.prompts]


def test_parse_chapter_fills_project_id_and_keeps_unknown_status() -> None:
    """A missing project_id is filled in; an unknown status is UNKNOWN with the raw kept."""
    payload = {"id": CID, "name": "n", "status": "rendering", "prompts": None}

    chapter = proto.parse_chapter(raw(), payload, PID)

    assert (PID, ChapterStatus.UNKNOWN, "rendering", ()) == (
        chapter.project_id,
        chapter.status,
        chapter.status_raw,
        chapter.prompts,
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**CHAPTER_LISTED, "prompts": {"id": "int_x"}}, "chapter 'prompts' is not a list"),
        ({**CHAPTER_LISTED, "status": 3}, "unexpected Chapter in response"),
        ({**CHAPTER_LISTED, "prompts": [{"content": "no id"}]}, "unexpected Chapter"),
        ({**CHAPTER_LISTED, "duration": "30"}, "unexpected Chapter"),
        (["not", "a", "chapter"], "expected a JSON object for a chapter, got list"),
    ],
)
def test_parse_chapter_malformed(payload: object, message: str) -> None:
    """Wrong types in a chapter are a DecodeError."""
    with pytest.raises(DecodeError, match=message):
        proto.parse_chapter(raw(), payload, PID)


def test_parse_chapters_doc_example() -> None:
    """GET chapters: the documented envelope with project_id and chapters."""
    payload = {"project_id": PID, "chapters": [CHAPTER_LISTED, {**CHAPTER_LISTED, "id": "cht_2"}]}

    chapters = proto.parse_chapters(raw(), payload, PID)

    assert [(CID, ChapterStatus.READY, 2), ("cht_2", ChapterStatus.READY, 2)] == [
        (c.id, c.status, c.prompt_count) for c in chapters
    ]


@pytest.mark.parametrize("wrap", [lambda items: items, lambda items: {"data": items}])
def test_parse_chapters_bare_list_or_data(wrap: Any) -> None:
    """A bare list or a ``data`` envelope of chapters is accepted."""
    chapters = proto.parse_chapters(raw(), wrap([CHAPTER_CREATED]), "prj_other")

    assert [(CID, PID)] == [(c.id, c.project_id) for c in chapters]


def test_parse_chapters_without_list() -> None:
    """A chapters response without a list is a DecodeError."""
    with pytest.raises(DecodeError, match="no list of chapters"):
        proto.parse_chapters(raw(), {"project_id": PID}, PID)


def test_parse_prompt_submission_doc_example() -> None:
    """The documented submit answer, with its estimate parsed."""
    payload = {
        "prompt_id": "int_abc123xyz789",
        "status": "processing",
        "message": "Prompt processing started",
        "estimated_time": "30-90 seconds",
    }

    assert PromptSubmission(
        prompt_id="int_abc123xyz789",
        status=PromptStatus.PROCESSING,
        status_raw="processing",
        message="Prompt processing started",
        estimated_time="30-90 seconds",
        estimated_seconds=(30.0, 90.0),
    ) == proto.parse_prompt_submission(raw(), payload)


def test_parse_prompt_submission_tolerant() -> None:
    """``id`` stands in for prompt_id; no status is UNKNOWN; an odd estimate stays raw."""
    payload = {"id": "int_x", "estimated_time": "soon", "estimated_seconds": [1, 2]}

    assert PromptSubmission(
        prompt_id="int_x",
        status=PromptStatus.UNKNOWN,
        status_raw=None,
        estimated_time="soon",
        estimated_seconds=None,
    ) == proto.parse_prompt_submission(raw(), payload)


def test_parse_prompt_submission_prefers_prompt_id() -> None:
    """When both are present, prompt_id wins over id; a synonym status is mapped."""
    submission = proto.parse_prompt_submission(
        raw(), {"prompt_id": "int_a", "id": "int_b", "status": "error"}
    )

    assert ("int_a", PromptStatus.FAILED, "error") == (
        submission.prompt_id,
        submission.status,
        submission.status_raw,
    )


@pytest.mark.parametrize(
    "payload",
    [{"status": "processing"}, {"id": 5}, {"prompt_id": 60}, []],
)
def test_parse_prompt_submission_malformed(payload: object) -> None:
    """No usable prompt ID, or a non-string estimate, is a DecodeError."""
    with pytest.raises(DecodeError):
        proto.parse_prompt_submission(raw(), payload)


def test_parse_asset_doc_example() -> None:
    """The documented upload answer: processing, nulls kept."""
    assert Asset(
        id=AID,
        name="uploaded-file",
        url=None,
        content_type="video/mp4",
        size=1048576,
        state=AssetState.PROCESSING,
        state_raw="processing",
        created_at=CREATED,
    ) == proto.parse_asset(raw(), ASSET)


@pytest.mark.parametrize(
    ("changes", "state", "state_raw"),
    [
        ({"state": "ready"}, AssetState.READY, "ready"),
        ({"state": "failed"}, AssetState.ERROR, "failed"),
        ({"state": "quarantined"}, AssetState.UNKNOWN, "quarantined"),
        ({"state": None}, AssetState.UNKNOWN, None),
        ({"state": None, "status": "ready"}, AssetState.UNKNOWN, None),
    ],
)
def test_parse_asset_states(
    changes: dict[str, Any], state: AssetState, state_raw: str | None
) -> None:
    """Asset states: synonyms mapped, unknown kept raw, null is UNKNOWN."""
    asset = proto.parse_asset(raw(), {**ASSET, **changes})

    assert (state, state_raw) == (asset.state, asset.state_raw)


def test_parse_asset_status_instead_of_state() -> None:
    """A server spelling the field ``status`` is understood."""
    payload = {k: v for k, v in ASSET.items() if k != "state"}

    asset = proto.parse_asset(raw(), {**payload, "status": "ready"})

    assert (AssetState.READY, "ready") == (asset.state, asset.state_raw)


def test_parse_asset_numbers() -> None:
    """Integral floats are accepted for integer fields; media dimensions are kept."""
    asset = proto.parse_asset(
        raw(), {**ASSET, "size": 2048.0, "duration": 12, "width": 1920, "height": 1080}
    )

    assert (2048, 12.0, 1920, 1080) == (asset.size, asset.duration, asset.width, asset.height)


@pytest.mark.parametrize(
    "changes", [{"size": "1MB"}, {"size": 1.5}, {"width": True}, {"url": 5}, {"state": 1}]
)
def test_parse_asset_wrong_types(changes: dict[str, Any]) -> None:
    """Wrong types in an asset are a DecodeError."""
    with pytest.raises(DecodeError, match="unexpected Asset in response"):
        proto.parse_asset(raw(), {**ASSET, **changes})


def test_parse_assets_page_doc_example() -> None:
    """GET /assets: the assets and the documented pagination object."""
    payload = {"assets": [ASSET], "pagination": {"limit": 20, "offset": 0, "total": 1}}

    assets, page = proto.parse_assets_page(raw(), payload)

    assert ([AID], Page(limit=20, offset=0, total=1)) == ([a.id for a in assets], page)


def test_parse_assets_page_without_list() -> None:
    """An assets page without a list is a DecodeError naming the keys looked for."""
    with pytest.raises(DecodeError, match=r"no list of assets in response \(looked for assets, "):
        proto.parse_assets_page(raw(), {"pagination": {}})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"status": "queued", "message": "Export started", "estimated_time": "2-5 minutes"},
            Export(
                project_id=PID,
                status=ExportStatus.QUEUED,
                status_raw="queued",
                message="Export started",
                estimated_time="2-5 minutes",
                estimated_seconds=(120.0, 300.0),
            ),
        ),
        (
            {"status": "processing", "download_url": None},
            Export(project_id=PID, status=ExportStatus.PROCESSING, status_raw="processing"),
        ),
        (
            {
                "status": "completed",
                "download_url": f"https://assets.babou.ai/exports/{PID}.mp4",
                "duration_seconds": 93.5,
            },
            Export(
                project_id=PID,
                status=ExportStatus.COMPLETED,
                status_raw="completed",
                download_url=f"https://assets.babou.ai/exports/{PID}.mp4",
                duration_seconds=93.5,
            ),
        ),
        (
            {"status": "failed", "error": "Failed to render chapter 2"},
            Export(
                project_id=PID,
                status=ExportStatus.FAILED,
                status_raw="failed",
                error="Failed to render chapter 2",
            ),
        ),
        (
            {"status": "failed", "error": {"code": "RENDER", "message": "Render crashed"}},
            Export(
                project_id=PID,
                status=ExportStatus.FAILED,
                status_raw="failed",
                error="Render crashed",
            ),
        ),
        (
            {"status": "failed", "error": {"error": "Out of memory"}},
            Export(
                project_id=PID,
                status=ExportStatus.FAILED,
                status_raw="failed",
                error="Out of memory",
            ),
        ),
        (
            {"status": "failed", "error": {"code": "RENDER"}},
            Export(project_id=PID, status=ExportStatus.FAILED, status_raw="failed"),
        ),
        (
            {"status": "error", "error": 500},
            Export(project_id=PID, status=ExportStatus.FAILED, status_raw="error", error="500"),
        ),
        (
            {"status": "ready", "url": "https://cdn/x.mp4", "download_url": ""},
            Export(
                project_id=PID,
                status=ExportStatus.COMPLETED,
                status_raw="ready",
                download_url="https://cdn/x.mp4",
            ),
        ),
        (
            {"status": "archiving", "estimated_time": "soon"},
            Export(
                project_id=PID,
                status=ExportStatus.UNKNOWN,
                status_raw="archiving",
                estimated_time="soon",
            ),
        ),
    ],
)
def test_parse_export(payload: dict[str, Any], expected: Export) -> None:
    """Start and status answers, including a failed export whose ``error`` is a status."""
    assert expected == proto.parse_export(raw(), payload, PID)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "export has no string 'status' field"),
        ({"status": None}, "export has no string 'status' field"),
        ({"status": 2}, "export has no string 'status' field"),
        ({"status": "completed", "download_url": ["x"]}, "unexpected Export in response"),
        ("completed", "expected a JSON object for an export, got str"),
    ],
)
def test_parse_export_malformed(payload: object, message: str) -> None:
    """An export without a string status, or with wrong types, is a DecodeError."""
    with pytest.raises(DecodeError, match=message):
        proto.parse_export(raw(), payload, PID)


# --------------------------------------------------------------------------------------
# Retry decisions
# --------------------------------------------------------------------------------------

NO_JITTER = RetryPolicy(
    attempts=4, base_delay=0.5, max_delay=30.0, max_retry_after=60.0, jitter=False
)


def api_error(cls: type[APIError], status: int, retry_after: float | None = None) -> APIError:
    """An API error as error_from_response would build it."""
    return cls("x", status=status, retry_after=retry_after)


@pytest.mark.parametrize("mode", list(RetryMode))
@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (api_error(RateLimitError, 429), None),
        (api_error(ServerError, 503), None),
        (None, FailureKind.NOT_SENT),
        (None, FailureKind.AMBIGUOUS),
    ],
)
def test_no_retry_when_attempts_are_used_up(
    mode: RetryMode, error: APIError | None, failure: FailureKind | None
) -> None:
    """The last attempt is never followed by another, whatever failed."""
    decision = proto.decide_retry(
        policy=NO_JITTER, mode=mode, attempt=4, rand=0.5, error=error, failure=failure
    )

    assert proto.RetryDecision(retry=False, reason="no attempts left") == decision


@pytest.mark.parametrize(
    ("mode", "error", "failure", "retry", "reason"),
    [
        (RetryMode.IDEMPOTENT, api_error(RateLimitError, 429), None, True, "rate limited (429)"),
        (RetryMode.CREATE, api_error(RateLimitError, 429), None, True, "rate limited (429)"),
        (RetryMode.START_EXPORT, api_error(RateLimitError, 429), None, True, "rate limited (429)"),
        (RetryMode.IDEMPOTENT, api_error(ServerError, 500), None, True, "server error (500)"),
        (RetryMode.START_EXPORT, api_error(ServerError, 502), None, True, "server error (502)"),
        (
            RetryMode.CREATE,
            api_error(ServerError, 500),
            None,
            False,
            "server error on a create: not resent",
        ),
        (RetryMode.IDEMPOTENT, api_error(ValidationError, 400), None, False, "not retryable (400)"),
        (
            RetryMode.IDEMPOTENT,
            api_error(AuthenticationError, 401),
            None,
            False,
            "not retryable (401)",
        ),
        (RetryMode.IDEMPOTENT, api_error(NotFoundError, 404), None, False, "not retryable (404)"),
        (RetryMode.START_EXPORT, api_error(ConflictError, 409), None, False, "not retryable (409)"),
        (
            RetryMode.CREATE,
            api_error(PayloadTooLargeError, 413),
            None,
            False,
            "not retryable (413)",
        ),
        (RetryMode.IDEMPOTENT, api_error(APIError, 418), None, False, "not retryable (418)"),
        (
            RetryMode.IDEMPOTENT,
            None,
            FailureKind.NOT_SENT,
            True,
            "connection failed before sending",
        ),
        (RetryMode.CREATE, None, FailureKind.NOT_SENT, True, "connection failed before sending"),
        (
            RetryMode.START_EXPORT,
            None,
            FailureKind.NOT_SENT,
            True,
            "connection failed before sending",
        ),
        (RetryMode.IDEMPOTENT, None, FailureKind.AMBIGUOUS, True, "connection lost or timed out"),
        (
            RetryMode.START_EXPORT,
            None,
            FailureKind.AMBIGUOUS,
            True,
            "connection lost or timed out",
        ),
        (
            RetryMode.CREATE,
            None,
            FailureKind.AMBIGUOUS,
            False,
            "request may have reached the server: a create is not resent",
        ),
        (RetryMode.IDEMPOTENT, None, None, False, "nothing to retry"),
    ],
)
def test_decide_retry_by_mode_and_failure(
    mode: RetryMode,
    error: APIError | None,
    failure: FailureKind | None,
    retry: bool,
    reason: str,
) -> None:
    """Reads retry every transient failure; creates only what provably did not act."""
    decision = proto.decide_retry(
        policy=NO_JITTER, mode=mode, attempt=2, rand=0.5, error=error, failure=failure
    )

    expected = proto.RetryDecision(retry=retry, delay=1.0 if retry else 0.0, reason=reason)
    assert expected == decision


@pytest.mark.parametrize(
    ("cls", "status", "mode"),
    [
        (RateLimitError, 429, RetryMode.CREATE),
        (RateLimitError, 429, RetryMode.IDEMPOTENT),
        (ServerError, 503, RetryMode.IDEMPOTENT),
        (ServerError, 503, RetryMode.START_EXPORT),
    ],
)
@pytest.mark.parametrize("retry_after", [0.0, 12.5, 60.0])
def test_retry_after_is_honoured(
    cls: type[APIError], status: int, mode: RetryMode, retry_after: float
) -> None:
    """A Retry-After up to max_retry_after replaces the backoff, exactly."""
    decision = proto.decide_retry(
        policy=NO_JITTER,
        mode=mode,
        attempt=1,
        rand=0.9,
        error=api_error(cls, status, retry_after),
    )

    assert (True, retry_after) == (decision.retry, decision.delay)
    assert decision.reason.endswith(", Retry-After")


@pytest.mark.parametrize(("cls", "status"), [(RateLimitError, 429), (ServerError, 503)])
def test_retry_after_over_the_cap_is_not_slept(cls: type[APIError], status: int) -> None:
    """A Retry-After longer than max_retry_after stops the retries instead of sleeping."""
    decision = proto.decide_retry(
        policy=NO_JITTER,
        mode=RetryMode.IDEMPOTENT,
        attempt=1,
        rand=0.5,
        error=api_error(cls, status, 60.5),
    )

    assert (
        proto.RetryDecision(retry=False, reason="Retry-After 60.5s exceeds max_retry_after 60s")
        == decision
    )


def test_server_error_on_create_ignores_retry_after() -> None:
    """A 5xx on a create is not resent even when the server gave a Retry-After."""
    decision = proto.decide_retry(
        policy=NO_JITTER,
        mode=RetryMode.CREATE,
        attempt=1,
        rand=0.5,
        error=api_error(ServerError, 503, 1.0),
    )

    assert not decision.retry


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0)])
def test_backoff_grows_exponentially_up_to_max(attempt: int, delay: float) -> None:
    """Without jitter the delay is base * 2**(n-1), capped at max_delay."""
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=30.0, jitter=False)

    assert (
        delay
        == proto.decide_retry(
            policy=policy,
            mode=RetryMode.IDEMPOTENT,
            attempt=attempt,
            rand=0.0,
            failure=FailureKind.NOT_SENT,
        ).delay
    )


@pytest.mark.parametrize(("rand", "delay"), [(0.0, 0.0), (0.5, 1.0), (0.999, 1.998)])
def test_backoff_full_jitter(rand: float, delay: float) -> None:
    """With jitter the delay is the bound times the uniform draw."""
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=True)

    assert delay == pytest.approx(proto.backoff_delay(policy, 2, rand))


retry_policies = st.builds(
    RetryPolicy,
    attempts=st.integers(min_value=1, max_value=100),
    base_delay=st.floats(min_value=0.0, max_value=1e300),
    max_delay=st.floats(min_value=0.0, max_value=1e300),
    max_retry_after=st.floats(min_value=0.0, max_value=1e6),
    jitter=st.booleans(),
)
unit_draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(
    policy=retry_policies, retry_number=st.integers(min_value=1, max_value=10**30), rand=unit_draws
)
def test_backoff_delay_bounds(policy: RetryPolicy, retry_number: int, rand: float) -> None:
    """The backoff is between 0 and max_delay, even at huge retry numbers (no overflow)."""
    delay = proto.backoff_delay(policy, retry_number, rand)

    assert 0.0 <= delay <= policy.max_delay


@given(policy=retry_policies, retry_number=st.integers(min_value=1, max_value=10**6))
def test_backoff_without_jitter_is_monotonic(policy: RetryPolicy, retry_number: int) -> None:
    """Without jitter, a later retry never waits less than an earlier one."""
    policy = RetryPolicy(base_delay=policy.base_delay, max_delay=policy.max_delay, jitter=False)

    assert proto.backoff_delay(policy, retry_number, 0.3) <= proto.backoff_delay(
        policy, retry_number + 1, 0.3
    )


# --------------------------------------------------------------------------------------
# Poll delays
# --------------------------------------------------------------------------------------

poll_policies = st.builds(
    PollPolicy,
    initial_delay=st.floats(min_value=1e-3, max_value=1e3),
    multiplier=st.floats(min_value=1.0, max_value=1e6),
    max_delay=st.floats(min_value=1e-3, max_value=1e4),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    use_estimate=st.booleans(),
)
estimates = st.none() | st.tuples(
    st.floats(min_value=0.0, max_value=1e5), st.floats(min_value=0.0, max_value=1e5)
).map(lambda pair: (min(pair), max(pair)))
elapsed_times = st.floats(min_value=0.0, max_value=2e5)
poll_counts = st.integers(min_value=0, max_value=10**9)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"message": 1, "estimated_time": 180}, ("1", "180", (180.0, 180.0), None)),
        ({"duration_seconds": "93.5"}, (None, None, None, 93.5)),
        ({"duration_seconds": "soon", "message": ["x"]}, (None, None, None, None)),
        ({"duration_seconds": True, "estimated_time": -1}, (None, "-1", None, None)),
        ({"duration_seconds": "nan"}, (None, None, None, None)),
    ],
)
def test_parse_export_is_lenient_with_informational_fields(
    extra: dict[str, Any], expected: tuple[object, ...]
) -> None:
    """Odd message/estimate/duration values are coerced or dropped, never fatal."""
    export = proto.parse_export(raw(), {"status": "queued", **extra}, PID)
    assert expected == (
        export.message,
        export.estimated_time,
        export.estimated_seconds,
        export.duration_seconds,
    )


def test_unparseable_optional_timestamp_becomes_none() -> None:
    """An empty or nonsensical created_at is dropped, not a DecodeError."""
    for value in ("", "yesterday"):
        assert proto.parse_project(raw(), {**PROJECT, "created_at": value}).created_at is None


def test_parse_json_accepts_utf16_and_rejects_garbage() -> None:
    """JSON is UTF-8 on the wire, but a UTF-16 body is still understood; garbage is not."""
    body = json.dumps({"status": "queued"}).encode("utf-16")
    assert {"status": "queued"} == proto.parse_json(RawResponse(status=200, body=body))
    with pytest.raises(DecodeError):
        proto.parse_json(RawResponse(status=200, body=b"\xff\xfe\xfd not json"))
