"""Tests of the domain models and of the package's cattrs converter (no I/O, no event loop)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest

from babou_async import (
    Asset,
    AssetState,
    Chapter,
    ChapterStatus,
    DownloadResult,
    Export,
    ExportResult,
    ExportStatus,
    Page,
    Project,
    Prompt,
    PromptStatus,
    PromptSubmission,
)
from babou_async import _serialization as ser

UTC = dt.timezone.utc

# --------------------------------------------------------------------------------------
# Tolerant enums
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum_cls", "raw", "expected"),
    [
        # documented values
        (ExportStatus, "queued", ExportStatus.QUEUED),
        (ExportStatus, "processing", ExportStatus.PROCESSING),
        (ExportStatus, "completed", ExportStatus.COMPLETED),
        (ExportStatus, "failed", ExportStatus.FAILED),
        (ChapterStatus, "ready", ChapterStatus.READY),
        (ChapterStatus, "processing", ChapterStatus.PROCESSING),
        (ChapterStatus, "error", ChapterStatus.ERROR),
        (PromptStatus, "processing", PromptStatus.PROCESSING),
        (PromptStatus, "completed", PromptStatus.COMPLETED),
        (PromptStatus, "failed", PromptStatus.FAILED),
        (AssetState, "uploading", AssetState.UPLOADING),
        (AssetState, "processing", AssetState.PROCESSING),
        (AssetState, "ready", AssetState.READY),
        (AssetState, "error", AssetState.ERROR),
        # synonyms the docs use across resources
        (ExportStatus, "error", ExportStatus.FAILED),
        (ExportStatus, "ready", ExportStatus.COMPLETED),
        (ExportStatus, "complete", ExportStatus.COMPLETED),
        (ChapterStatus, "completed", ChapterStatus.READY),
        (ChapterStatus, "failed", ChapterStatus.ERROR),
        (PromptStatus, "error", PromptStatus.FAILED),
        (PromptStatus, "ready", PromptStatus.COMPLETED),
        (AssetState, "failed", AssetState.ERROR),
        (AssetState, "completed", AssetState.READY),
        # case and whitespace
        (ExportStatus, " Completed ", ExportStatus.COMPLETED),
        (ChapterStatus, "READY", ChapterStatus.READY),
        (AssetState, "Failed\n", AssetState.ERROR),
        # unknown values
        (ExportStatus, "archiving", ExportStatus.UNKNOWN),
        (ChapterStatus, "rendering", ChapterStatus.UNKNOWN),
        (PromptStatus, "queued", PromptStatus.UNKNOWN),
        (AssetState, "queued", AssetState.UNKNOWN),
        (ExportStatus, "", ExportStatus.UNKNOWN),
        (ExportStatus, None, ExportStatus.UNKNOWN),
        (ExportStatus, 3, ExportStatus.UNKNOWN),
        (ExportStatus, "unknown", ExportStatus.UNKNOWN),
        # a synonym of one resource is not one of another
        (ChapterStatus, "complete", ChapterStatus.UNKNOWN),
        (AssetState, "complete", AssetState.UNKNOWN),
    ],
)
def test_tolerant_enum_parse(enum_cls: Any, raw: object, expected: Any) -> None:
    """Exact values, then per-resource synonyms, then UNKNOWN: parsing never fails."""
    assert expected is enum_cls.parse(raw)


@pytest.mark.parametrize("enum_cls", [ExportStatus, ChapterStatus, PromptStatus, AssetState])
def test_enum_members_are_their_strings(enum_cls: Any) -> None:
    """Members compare equal to, print as and parse back from their lower-case value."""
    for member in enum_cls:
        assert (member.value, member.value, member.value, member) == (
            member,
            str(member),
            f"{member}",
            enum_cls.parse(member.value),
        )


@pytest.mark.parametrize(
    ("member", "terminal"),
    [
        (ExportStatus.QUEUED, False),
        (ExportStatus.PROCESSING, False),
        (ExportStatus.COMPLETED, True),
        (ExportStatus.FAILED, True),
        (ExportStatus.UNKNOWN, False),
        (ChapterStatus.READY, True),
        (ChapterStatus.PROCESSING, False),
        (ChapterStatus.ERROR, True),
        (ChapterStatus.UNKNOWN, False),
        (AssetState.UPLOADING, False),
        (AssetState.PROCESSING, False),
        (AssetState.READY, True),
        (AssetState.ERROR, True),
        (AssetState.UNKNOWN, False),
    ],
)
def test_is_terminal(member: Any, terminal: bool) -> None:
    """Only completed/failed (exports) and ready/error (chapters, assets) are terminal."""
    assert terminal is member.is_terminal


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("queued", False),
        ("processing", False),
        ("completed", True),
        ("failed", True),
        ("error", True),
        ("mystery", False),
    ],
)
def test_export_is_terminal(status: str, terminal: bool) -> None:
    """Export.is_terminal follows its parsed status."""
    export = Export(project_id="prj_x", status=ExportStatus.parse(status), status_raw=status)

    assert terminal is export.is_terminal


# --------------------------------------------------------------------------------------
# Prompt and Chapter properties
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "result", "done"),
    [
        (None, None, False),  # processing: no result yet
        (None, "Intro created", True),
        (None, "", True),  # an empty result is still a result
        ("processing", None, False),
        ("processing", "partial", False),  # an explicit status wins over result
        ("completed", None, True),
        ("failed", None, True),
        ("error", None, True),  # synonym of failed
        ("ready", None, True),  # synonym of completed
        ("mystery", "x", False),
    ],
)
def test_prompt_is_done(status: str | None, result: str | None, done: bool) -> None:
    """A prompt is done when a terminal status is sent, else when a result arrived."""
    assert done is Prompt(id="int_x", status=status, result=result).is_done


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        (None, False),
        (ChapterStatus.READY, True),
        (ChapterStatus.PROCESSING, False),
        (ChapterStatus.ERROR, False),
        (ChapterStatus.UNKNOWN, False),
    ],
)
def test_chapter_is_ready(status: ChapterStatus | None, ready: bool) -> None:
    """A chapter is ready only with the READY status."""
    assert ready is Chapter(id="cht_x", status=status).is_ready


def test_model_defaults() -> None:
    """Optional model fields default to None / empty, as a create response leaves them."""
    assert (
        Chapter(id="cht_x", project_id=None, name="", duration=None, status=None, prompts=()),
        PromptSubmission(prompt_id="int_x", status=PromptStatus.UNKNOWN),
        Asset(id="ast_x", state=AssetState.UNKNOWN),
        Page(limit=None, offset=None, total=None),
        DownloadResult(project_id="prj_x", path=None, bytes=0, ok=False, skipped=False),
        ExportResult(project_id="prj_x", status=None, ok=False, bytes=0),
    ) == (
        Chapter(id="cht_x"),
        PromptSubmission(prompt_id="int_x"),
        Asset(id="ast_x"),
        Page(),
        DownloadResult(project_id="prj_x", path=None),
        ExportResult(project_id="prj_x"),
    )


@pytest.mark.parametrize(
    "instance",
    [
        Project(id="prj_x", name="n"),
        Chapter(id="cht_x"),
        Prompt(id="int_x"),
        PromptSubmission(prompt_id="int_x"),
        Asset(id="ast_x"),
        Export(project_id="prj_x", status=ExportStatus.QUEUED, status_raw="queued"),
        Page(),
        DownloadResult(project_id="prj_x", path=Path("v.mp4")),
        ExportResult(project_id="prj_x"),
    ],
)
def test_models_are_frozen(instance: Any) -> None:
    """Models are immutable; variants are made with attrs.evolve."""
    first = attrs.fields(type(instance))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, "changed")

    assert "changed" == getattr(attrs.evolve(instance, **{first: "changed"}), first)


def test_models_are_keyword_only() -> None:
    """Models cannot be built positionally (field order is not part of the API)."""
    with pytest.raises(TypeError):
        Project("prj_x", "n")  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------
# The converter's hooks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cls", "expected"),
    [
        ("text", str, "text"),
        ("", str, ""),
        (3, int, 3),
        (-7, int, -7),
        (3.0, int, 3),
        (3, float, 3.0),
        (2.5, float, 2.5),
        (True, bool, True),
        (False, bool, False),
        ({"a": [1]}, dict[str, Any], {"a": [1]}),
        ("ready", ChapterStatus, ChapterStatus.READY),
        ("failed", AssetState, AssetState.ERROR),
        ("brand-new", ExportStatus, ExportStatus.UNKNOWN),
        ("completed", PromptStatus, PromptStatus.COMPLETED),
    ],
)
def test_strict_scalar_hooks_accept(value: object, cls: Any, expected: object) -> None:
    """Strings, numbers, booleans, objects and statuses of the right JSON type are accepted."""
    result = ser.structure(value, cls)

    assert (expected, type(expected)) == (result, type(result))


@pytest.mark.parametrize(
    ("value", "cls", "message"),
    [
        (123, str, "expected a string, got int"),
        (None, str, "expected a string, got NoneType"),
        (["a"], str, "expected a string, got list"),
        ("3", int, "expected an integer, got '3'"),
        (3.5, int, "expected an integer, got 3.5"),
        (True, int, "expected an integer, got a boolean"),
        (None, int, "expected an integer, got None"),
        ("2.5", float, "expected a number, got '2.5'"),
        (True, float, "expected a number, got True"),
        ("true", bool, "expected a boolean, got 'true'"),
        (1, bool, "expected a boolean, got 1"),
        (["a"], dict[str, Any], "expected an object, got list"),
        ("x", dict[str, Any], "expected an object, got str"),
        (1, ChapterStatus, "expected a string, got int"),
    ],
)
def test_strict_scalar_hooks_refuse(value: object, cls: Any, message: str) -> None:
    """No silent coercion: "3" is not an int, 1 is not a bool, a number is not a status."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        ser.structure(value, cls)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-12-02T10:00:00Z", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("2025-12-02T10:00:00z", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("2025-12-02T10:00:00.123Z", dt.datetime(2025, 12, 2, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2025-12-02T10:00:00+00:00", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("2025-12-02T10:00:00", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("2025-12-02 10:00:00", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("  2025-12-02T10:00:00Z\n", dt.datetime(2025, 12, 2, 10, tzinfo=UTC)),
        ("2025-12-02", dt.datetime(2025, 12, 2, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(value: str, expected: dt.datetime) -> None:
    """``Z``, ``+00:00`` and naive timestamps all become aware UTC datetimes."""
    parsed = ser.parse_timestamp(value)

    assert (expected, dt.timedelta(0)) == (parsed, parsed.utcoffset())


def test_timestamp_with_offset_is_aware_and_exact() -> None:
    """A timestamp with an offset keeps the same instant, normalised to UTC."""
    parsed = ser.parse_timestamp("2025-12-02T12:00:00+02:00")

    assert (dt.datetime(2025, 12, 2, 10, tzinfo=UTC), dt.timedelta(0)) == (
        parsed,
        parsed.utcoffset(),
    )


@pytest.mark.parametrize("value", ["yesterday", "", "2025-13-01T00:00:00Z", "2025-12-02T25:00Z"])
def test_bad_timestamp_strings(value: str) -> None:
    """Strings that are not ISO 8601 timestamps raise ValueError."""
    with pytest.raises(ValueError, match=r"Invalid isoformat string|must be in"):
        ser.parse_timestamp(value)


@pytest.mark.parametrize(("value", "name"), [(1733133600, "int"), (None, "NoneType")])
def test_timestamp_must_be_a_string(value: object, name: str) -> None:
    """Epoch numbers and null are not timestamps."""
    with pytest.raises(TypeError, match=f"expected an ISO 8601 string, got {name}"):
        ser.parse_timestamp(value)


def test_structure_timestamp_field() -> None:
    """Timestamps inside models go through the same hook."""
    project = ser.structure(
        {"id": "prj_x", "name": "n", "created_at": "2025-12-02T10:00:00Z"}, Project
    )

    assert dt.datetime(2025, 12, 2, 10, tzinfo=UTC) == project.created_at


def test_structure_ignores_unknown_fields() -> None:
    """Unknown response fields are ignored rather than refused."""
    asset = ser.structure({"id": "ast_x", "new_field": {"deep": [1]}, "size": 5}, Asset)

    assert Asset(id="ast_x", size=5) == asset


def test_structure_nested_prompts() -> None:
    """Lists of prompts become tuples of Prompt."""
    chapter = ser.structure(
        {"id": "cht_x", "prompts": [{"id": "int_1", "content": "c", "result": None}]}, Chapter
    )

    assert (Prompt(id="int_1", content="c"),) == chapter.prompts


def test_structure_error_lists_every_bad_field_with_its_path() -> None:
    """A failing structure names each bad field by its path, nested ones included."""
    with pytest.raises(ValueError, match=r"expected str @ \$\.id") as exc_info:
        ser.structure(
            {"id": 1, "prompts": [{"id": "int_1"}, {"content": "no id"}], "prompt_count": "2"},
            Chapter,
        )

    message = str(exc_info.value)
    assert ["$.id", "$.prompt_count", "$.prompts[1].id"] == sorted(
        part.rsplit("@ ", 1)[1] for part in message.split("; ")
    )
    assert isinstance(exc_info.value.__cause__, cattrs.ClassValidationError)


def test_describe_error_plain_exceptions() -> None:
    """Exceptions other than cattrs' are described by their text, else their type."""
    assert ("boom", "KeyError") == (
        ser.describe_error(RuntimeError("boom")),
        ser.describe_error(KeyError()),
    )


def test_make_converter_builds_independent_converters() -> None:
    """Each make_converter() call gives a fresh converter configured like the package one."""
    fresh = ser.make_converter()

    assert fresh is not ser.converter
    assert (ChapterStatus.ERROR, 3) == (
        fresh.structure("failed", ChapterStatus),
        fresh.structure(3.0, int),
    )
    with pytest.raises(TypeError, match="expected an integer, got a boolean"):
        fresh.structure(True, int)  # noqa: FBT003


def test_nanosecond_timestamps_parse_on_every_python() -> None:
    """Nine fractional digits (valid ISO 8601) are cut to microseconds, even on 3.10."""
    parsed = ser.parse_timestamp("2025-12-02T10:00:00.123456789+05:30")
    assert dt.datetime(2025, 12, 2, 4, 30, 0, 123456, tzinfo=dt.timezone.utc) == parsed


def test_timestamps_are_parsed_once_and_long_texts_never_kept() -> None:
    """A repeated short timestamp comes from the cache; a padded one is parsed, not kept."""
    short = "2026-03-04T05:06:07Z"
    assert ser.parse_timestamp(short) is ser.parse_timestamp(short)
    before = ser._parse_iso.cache_info().currsize
    padded = " " * 10_000 + "2026-03-04T05:06:07Z"
    assert ser.parse_timestamp(padded) == ser.parse_timestamp(short)
    assert ser._parse_iso.cache_info().currsize == before
