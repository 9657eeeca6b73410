"""
Tests of the simulator itself (babou_async.testing), through a plain aiohttp client.

They do not use the babou_async client: the simulator must stand on its own, so that
the client's tests can trust it. Most tests drive time with an injected clock; a few
use real (short) sleeps to check the default monotonic clock.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import importlib
import io
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from multidict import CIMultiDictProxy

from babou_async.testing import FakeBabou, Faults, Injection, RecordedRequest, serve_forever
from babou_async.testing import _cli as cli
from babou_async.testing._endpoints import too_large
from babou_async.testing._entities import estimate, iso8601
from babou_async.testing._fake import _url_host
from babou_async.testing._origin import parse_range
from babou_async.testing._state import Store
from babou_async.testing._video import BLOCK_SIZE, VideoContent

pytestmark = pytest.mark.anyio

EPOCH = 1_764_669_600.0  # 2025-12-02T10:00:00Z
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Reply:
    """What a test needs of a response."""

    status: int
    data: Any
    headers: CIMultiDictProxy[str]
    raw: bytes


class Api:
    """Calls the fake's API with the primary key unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeBabou) -> None:
        self.session = session
        self.fake = fake

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = "key",
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        sent = dict(headers or {})
        if auth == "key":
            sent["Authorization"] = f"Bearer {self.fake.api_key}"
        elif auth is not None:
            sent["Authorization"] = auth
        url = path if path.startswith("http") else self.fake.base_url + path
        return await fetch(self.session, method, url, headers=sent, **kwargs)


async def fetch(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Reply:
    """Send a request and read the whole response."""
    async with session.request(method, url, **kwargs) as response:
        raw = await response.read()
        data: Any = raw
        if raw and response.content_type == "application/json":
            data = json.loads(raw)
        return Reply(response.status, data, response.headers, raw)


def fast(**kwargs: Any) -> dict[str, Any]:
    """Constructor arguments for a fake driven by an injected clock."""
    options: dict[str, Any] = {
        "seed": 7,
        "epoch": EPOCH,
        "prompt_seconds": 1.0,
        "asset_seconds": 1.0,
        "export_queued_seconds": 1.0,
        "export_processing_seconds": 2.0,
        "video_size": 100_000,
    }
    options.update(kwargs)
    return options


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[FakeBabou]:
    async with FakeBabou(**fast(clock=clock)) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def api(session: aiohttp.ClientSession, sim: FakeBabou) -> Api:
    return Api(session, sim)


async def make_project(api: Api, name: str = "Demo") -> str:
    """Create a project through the API and return its id."""
    reply = await api("POST", "/projects", json={"name": name})
    assert reply.status == 201
    project_id: str = reply.data["id"]
    return project_id


async def exported(api: Api, clock: Clock, project_id: str) -> str:
    """Start an export, let it complete, and return its download URL."""
    assert (await api("POST", f"/projects/{project_id}/export")).status == 200
    clock.advance(3)
    reply = await api("GET", f"/projects/{project_id}/export")
    assert reply.data["status"] == "completed"
    url: str = reply.data["download_url"]
    return url


def running(fake: FakeBabou) -> bool:
    """Read fake.started through a call, so that mypy does not narrow it."""
    return fake.started


# Lifecycle ------------------------------------------------------------------------------


async def test_lifecycle_urls_and_idempotent_start_close() -> None:
    """Both origins bind loopback ports; start and close are idempotent; URLs need a start."""
    fake = FakeBabou()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with pytest.raises(RuntimeError):
        _ = fake.asset_base_url
    assert not running(fake)
    await fake.start()
    await fake.start()
    assert running(fake)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", fake.base_url)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.asset_base_url)
    assert not fake.base_url.startswith(fake.asset_base_url + "/")
    assert re.fullmatch(r"sk-bab-[A-Za-z0-9]{32}", fake.api_key)
    await fake.close()
    await fake.close()
    assert not running(fake)
    async with fake as again:
        assert again is fake
        assert running(again)
    assert not running(fake)


async def test_start_failure_releases_the_first_port() -> None:
    """When the second origin cannot bind, start() raises and frees the first one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fake = FakeBabou(asset_port=taken.getsockname()[1])
        with pytest.raises(OSError):
            await fake.start()
        assert not fake.started


async def test_seed_makes_keys_and_ids_repeatable() -> None:
    """The same seed gives the same key and ids; seed=None and api_key= differ."""
    ids = []
    for _ in range(2):
        async with FakeBabou(seed=3) as fake:
            ids.append((fake.api_key, fake.seed_project(), fake.seed_asset()))
    assert ids[0] == ids[1]
    assert re.fullmatch(r"prj_[A-Za-z0-9]{21}", ids[0][1])
    assert re.fullmatch(r"ast_[A-Za-z0-9]{21}", ids[0][2])
    assert FakeBabou(seed=None).api_key != FakeBabou(seed=None).api_key
    assert FakeBabou(api_key="sk-bab-mine").api_key == "sk-bab-mine"
    with pytest.raises(ValueError, match="sk-bab-"):
        FakeBabou(api_key="not-a-key")


def test_host_forms_of_the_base_url() -> None:
    """Wildcard bind addresses are advertised as loopback; IPv6 hosts get brackets."""
    assert _url_host("0.0.0.0") == "127.0.0.1"  # noqa: S104 - a string, nothing is bound
    assert _url_host("") == "127.0.0.1"
    assert _url_host("::") == "[::1]"
    assert _url_host("::1") == "[::1]"
    assert _url_host("localhost") == "localhost"


# Authentication -------------------------------------------------------------------------


async def test_auth_error_codes(api: Api, sim: FakeBabou) -> None:
    """Missing, malformed, unknown, expired and revoked keys give the three 401 codes."""
    cases = [
        (None, "UNAUTHORIZED"),
        ("Basic abc", "UNAUTHORIZED"),
        ("Bearer ", "UNAUTHORIZED"),
        ("Bearer abc123", "INVALID_API_KEY_FORMAT"),
        ("Bearer sk-bab-unknown", "UNAUTHORIZED"),
    ]
    for header, code in cases:
        reply = await api("GET", "/projects", auth=header)
        assert (reply.status, reply.data["code"]) == (401, code), header
    missing = await api("GET", "/projects", auth=None)
    assert missing.data["error"] == "Unauthorized - Invalid API key"
    assert "Bearer" in missing.data["hint"]
    invalid = await api("GET", "/projects", auth="Bearer abc")
    assert invalid.data == {"error": "Invalid API key format", "code": "INVALID_API_KEY_FORMAT"}

    other = sim.add_key()
    assert other != sim.api_key
    assert (await api("GET", "/projects", auth=f"bearer {other}")).status == 200
    sim.expire_key(other)
    expired = await api("GET", "/projects", auth=f"Bearer {other}")
    assert (expired.status, expired.data["code"]) == (401, "API_KEY_EXPIRED")
    assert expired.data["error"] == "API key has expired"
    sim.expire_key()
    assert (await api("GET", "/projects")).data["code"] == "API_KEY_EXPIRED"
    sim.add_key(sim.api_key)
    assert (await api("GET", "/projects")).status == 200
    sim.revoke_key()
    assert (await api("GET", "/projects")).data["code"] == "UNAUTHORIZED"
    with pytest.raises(ValueError, match="sk-bab-"):
        sim.add_key("nope")


async def test_accounts_isolate_resources(api: Api, sim: FakeBabou) -> None:
    """A key of another account gets 404 for projects and assets it does not own."""
    project_id = await make_project(api)
    asset_id = sim.seed_asset()
    same = sim.add_key()
    stranger = sim.add_key(account="other")
    assert (await api("GET", f"/projects/{project_id}", auth=f"Bearer {same}")).status == 200
    reply = await api("GET", f"/projects/{project_id}", auth=f"Bearer {stranger}")
    assert (reply.status, reply.data["error"]) == (404, "Project not found")
    assert (await api("GET", f"/assets/{asset_id}", auth=f"Bearer {stranger}")).status == 404
    listed = await api("GET", "/projects", auth=f"Bearer {stranger}")
    assert listed.data["projects"] == []
    seeded = sim.seed_project(key=stranger)
    assert (await api("GET", f"/projects/{seeded}", auth=f"Bearer {stranger}")).status == 200
    assert (await api("GET", f"/projects/{seeded}")).status == 404


# Routing --------------------------------------------------------------------------------


async def test_unknown_route_and_wrong_method(api: Api, sim: FakeBabou) -> None:
    """Unknown paths give a 404 envelope, wrong methods a 405 envelope with Allow."""
    unknown = await api("GET", "/nothing/here")
    assert (unknown.status, unknown.data["code"]) == (404, "NOT_FOUND")
    assert (await api("GET", "/nothing/here", auth=None)).status == 401
    outside = await api("GET", sim.base_url.removesuffix("/api/v1") + "/elsewhere", auth=None)
    assert (outside.status, outside.data["code"]) == (404, "NOT_FOUND")
    wrong = await api("DELETE", "/projects")
    assert (wrong.status, wrong.data["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert set(wrong.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_unexpected_handler_error_is_a_500_envelope(
    api: Api, sim: FakeBabou, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in an endpoint answers 500 INTERNAL_ERROR and is logged."""
    sim.export_video_size = lambda _: 1 // 0
    project_id = sim.seed_project()
    reply = await api("POST", f"/projects/{project_id}/export")
    assert (reply.status, reply.data["code"]) == (500, "INTERNAL_ERROR")
    assert "FakeBabou failed" in caplog.text


# Projects -------------------------------------------------------------------------------


async def test_create_project_and_get_it(api: Api, sim: FakeBabou) -> None:
    """POST /projects answers 201 with the documented object; GET returns it."""
    reply = await api(
        "POST",
        "/projects",
        json={"name": "Launch", "description": "A video", "settings": {"fps": 30}},
    )
    assert reply.status == 201
    project = reply.data
    assert re.fullmatch(r"prj_[A-Za-z0-9]{21}", project["id"])
    assert project == {
        "id": project["id"],
        "name": "Launch",
        "description": "A video",
        "settings": {"fps": 30},
        "active_export_id": None,
        "created_at": "2025-12-02T10:00:00Z",
    }
    fetched = await api("GET", f"/projects/{project['id']}")
    assert (fetched.status, fetched.data) == (200, project)
    minimal = await api("POST", "/projects", json={"name": "x"})
    assert minimal.data["description"] is None
    assert minimal.data["settings"] is None
    missing = await api("GET", "/projects/prj_missing")
    assert (missing.status, missing.data) == (
        404,
        {"error": "Project not found", "code": "NOT_FOUND"},
    )


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({}, "Name must be between 1 and 30 characters"),
        ({"name": ""}, "Name must be between 1 and 30 characters"),
        ({"name": "x" * 31}, "Name must be between 1 and 30 characters"),
        ({"name": 5}, "Name must be between 1 and 30 characters"),
        ({"name": "ok", "description": "d" * 1001}, "Description must be at most 1000 characters"),
        ({"name": "ok", "description": 3}, "Description must be at most 1000 characters"),
        ({"name": "ok", "settings": [1]}, "Settings must be an object"),
    ],
)
async def test_create_project_validation(api: Api, body: dict[str, Any], hint: str) -> None:
    """Invalid project bodies give 400 VALIDATION_ERROR with the matching hint."""
    reply = await api("POST", "/projects", json=body)
    assert reply.status == 400
    assert reply.data == {"error": "Validation failed", "code": "VALIDATION_ERROR", "hint": hint}


async def test_create_project_limits_are_inclusive(api: Api) -> None:
    """A 30-character name and a 1000-character description are accepted."""
    reply = await api("POST", "/projects", json={"name": "n" * 30, "description": "d" * 1000})
    assert reply.status == 201
    assert reply.data["name"] == "n" * 30


async def test_bad_request_bodies(api: Api) -> None:
    """Broken JSON, non-object JSON, a wrong Content-Type and huge bodies are rejected."""
    headers = {"Content-Type": "application/json"}
    broken = await api("POST", "/projects", data=b"{nope", headers=headers)
    assert (broken.status, broken.data["code"]) == (400, "VALIDATION_ERROR")
    assert broken.data["error"] == "Invalid JSON in request body"
    listed = await api("POST", "/projects", json=["name"])
    assert (listed.status, listed.data["hint"]) == (400, "Request body must be a JSON object")
    text = await api(
        "POST", "/projects", data=b'{"name": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert (text.status, text.data["error"]) == (400, "Content-Type must be application/json")
    vendor = await api(
        "POST",
        "/projects",
        data=b'{"name": "x"}',
        headers={"Content-Type": "application/vnd.babou+json; charset=utf-8"},
    )
    assert vendor.status == 201
    huge = await api(
        "POST", "/projects", data=io.BytesIO(b" " * (1024 * 1024 + 1)), headers=headers
    )
    assert (huge.status, huge.data["code"]) == (413, "FILE_TOO_LARGE")


async def test_create_status_option(session: aiohttp.ClientSession, clock: Clock) -> None:
    """create_status=200 and accepted_status=202 change the success statuses."""
    async with FakeBabou(**fast(clock=clock, create_status=200, accepted_status=202)) as fake:
        api = Api(session, fake)
        project = await api("POST", "/projects", json={"name": "p"})
        assert project.status == 200
        chapter = await api("POST", f"/projects/{project.data['id']}/chapters", json={"name": "c"})
        assert chapter.status == 200
        path = f"/projects/{project.data['id']}/chapters/{chapter.data['id']}/prompt"
        assert (await api("POST", path, json={"content": "go"})).status == 202


async def test_list_projects_envelope_and_pagination(api: Api, sim: FakeBabou) -> None:
    """GET /projects pages in creation order with limit/offset and a total."""
    ids = [sim.seed_project(f"P{number}") for number in range(25)]
    first = await api("GET", "/projects")
    assert first.status == 200
    assert [p["id"] for p in first.data["projects"]] == ids[:20]
    assert first.data["pagination"] == {"limit": 20, "offset": 0, "total": 25}
    rest = await api("GET", "/projects", params={"limit": "100", "offset": "20"})
    assert [p["id"] for p in rest.data["projects"]] == ids[20:]
    assert rest.data["pagination"] == {"limit": 100, "offset": 20, "total": 25}
    assert set(first.data["projects"][0]) == {
        "id",
        "name",
        "description",
        "settings",
        "active_export_id",
        "created_at",
    }
    for params in (
        {"limit": "101"},
        {"limit": "0"},
        {"limit": "x"},
        {"offset": "-1"},
        {"offset": "y"},
    ):
        bad = await api("GET", "/projects", params=params)
        assert (bad.status, bad.data["code"]) == (400, "VALIDATION_ERROR"), params


async def test_list_projects_bare_shape(session: aiohttp.ClientSession, clock: Clock) -> None:
    """list_projects_shape='bare' answers a plain list (paged only when asked)."""
    async with FakeBabou(**fast(clock=clock, list_projects_shape="bare")) as fake:
        api = Api(session, fake)
        ids = [fake.seed_project(f"P{number}") for number in range(25)]
        everything = await api("GET", "/projects")
        assert [p["id"] for p in everything.data] == ids
        page = await api("GET", "/projects", params={"limit": "5", "offset": "10"})
        assert [p["id"] for p in page.data] == ids[10:15]
        fake.list_projects_shape = "envelope"
        assert "pagination" in (await api("GET", "/projects")).data


# Chapters and prompts -------------------------------------------------------------------


async def test_chapters_create_list_get(api: Api) -> None:
    """Chapters are created, listed in order with status/prompt_count, and fetched."""
    project_id = await make_project(api)
    created = await api(
        "POST", f"/projects/{project_id}/chapters", json={"name": "Intro", "duration": 10}
    )
    assert created.status == 201
    assert re.fullmatch(r"cht_[A-Za-z0-9]{21}", created.data["id"])
    assert created.data == {
        "id": created.data["id"],
        "project_id": project_id,
        "name": "Intro",
        "duration": 10,
        "created_at": "2025-12-02T10:00:00Z",
    }
    second = await api("POST", f"/projects/{project_id}/chapters", json={"name": "n" * 30})
    assert second.data["duration"] is None
    listed = await api("GET", f"/projects/{project_id}/chapters")
    assert listed.data["project_id"] == project_id
    assert [c["id"] for c in listed.data["chapters"]] == [created.data["id"], second.data["id"]]
    assert listed.data["chapters"][0] == {**created.data, "status": "ready", "prompt_count": 0}
    got = await api("GET", f"/projects/{project_id}/chapters/{created.data['id']}")
    assert got.data == {**created.data, "status": "ready", "prompt_count": 0, "prompts": []}


async def test_chapter_errors(api: Api) -> None:
    """Chapter endpoints give 404s for unknown ids and 400s for bad names and durations."""
    project_id = await make_project(api)
    unknown = await api("POST", "/projects/prj_nope/chapters", json={"name": "c"})
    assert (unknown.status, unknown.data["error"]) == (404, "Project not found")
    assert (await api("GET", "/projects/prj_nope/chapters")).status == 404
    missing = await api("GET", f"/projects/{project_id}/chapters/cht_nope")
    assert (missing.status, missing.data["error"]) == (404, "Chapter not found")
    assert (await api("GET", "/projects/prj_nope/chapters/cht_nope")).data["error"] == (
        "Project not found"
    )
    for body in (
        {"name": ""},
        {"name": "x" * 31},
        {"name": "ok", "duration": 0},
        {"name": "ok", "duration": -3},
        {"name": "ok", "duration": 1.5},
        {"name": "ok", "duration": True},
        {"name": "ok", "duration": "10"},
    ):
        reply = await api("POST", f"/projects/{project_id}/chapters", json=body)
        assert (reply.status, reply.data["code"]) == (400, "VALIDATION_ERROR"), body


async def test_prompt_lifecycle_conflict_and_force(api: Api, clock: Clock) -> None:
    """A prompt processes, blocks a second one with 409, and force cancels it."""
    project_id = await make_project(api)
    chapter = await api("POST", f"/projects/{project_id}/chapters", json={"name": "c"})
    base = f"/projects/{project_id}/chapters/{chapter.data['id']}"
    submitted = await api("POST", f"{base}/prompt", json={"content": "A sunrise"})
    assert submitted.status == 200
    assert re.fullmatch(r"int_[A-Za-z0-9]{21}", submitted.data["prompt_id"])
    assert submitted.data == {
        "prompt_id": submitted.data["prompt_id"],
        "status": "processing",
        "message": "Prompt processing started",
        "estimated_time": "1-3 seconds",
    }
    running = await api("GET", base)
    assert (running.data["status"], running.data["prompt_count"]) == ("processing", 1)
    assert running.data["prompts"][0]["result"] is None
    assert running.data["prompts"][0]["content"] == "A sunrise"
    assert "status" not in running.data["prompts"][0]

    conflict = await api("POST", f"{base}/prompt", json={"content": "again"})
    assert conflict.status == 409
    assert conflict.data == {
        "error": "A prompt is already being processed for this chapter",
        "code": "CONFLICT",
        "hint": "Wait for the current prompt to complete or set force: true to override",
    }
    forced = await api("POST", f"{base}/prompt", json={"content": "again", "force": True})
    assert forced.status == 200
    after_force = await api("GET", base)
    assert [p["result"] for p in after_force.data["prompts"]] == ["Cancelled", None]
    assert after_force.data["status"] == "processing"

    clock.advance(1)
    done = await api("GET", base)
    assert done.data["status"] == "ready"
    assert done.data["prompts"][1]["result"] == "Chapter content generated successfully"
    listed = await api("GET", f"/projects/{project_id}/chapters")
    assert (listed.data["chapters"][0]["status"], listed.data["chapters"][0]["prompt_count"]) == (
        "ready",
        2,
    )
    assert (await api("POST", f"{base}/prompt", json={"content": "next"})).status == 200


async def test_prompt_validation_and_not_found(api: Api) -> None:
    """Prompt content is 1-5000 characters, force a boolean; unknown ids give 404."""
    project_id = await make_project(api)
    chapter = await api("POST", f"/projects/{project_id}/chapters", json={"name": "c"})
    path = f"/projects/{project_id}/chapters/{chapter.data['id']}/prompt"
    for body in ({"content": ""}, {"content": "c" * 5001}, {}, {"content": "ok", "force": "yes"}):
        reply = await api("POST", path, json=body)
        assert (reply.status, reply.data["code"]) == (400, "VALIDATION_ERROR"), body
    assert (await api("POST", path, json={"content": ""})).data["hint"] == (
        "Content must be between 1 and 5000 characters"
    )
    assert (await api("POST", path, json={"content": "c" * 5000})).status == 200
    missing = await api(
        "POST", f"/projects/{project_id}/chapters/cht_x/prompt", json={"content": "a"}
    )
    assert (missing.status, missing.data["error"]) == (404, "Chapter not found")
    assert (await api("POST", "/projects/prj_x/chapters/cht_x/prompt", json={})).status == 404


async def test_prompt_failure_and_status_field(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    """prompt_fail_rate=1 makes the chapter 'error'; prompt_status_field adds prompt status."""
    faults = Faults(prompt_fail_rate=1.0)
    async with FakeBabou(**fast(clock=clock, faults=faults, prompt_status_field=True)) as fake:
        api = Api(session, fake)
        project_id = await make_project(api)
        chapter = await api("POST", f"/projects/{project_id}/chapters", json={"name": "c"})
        base = f"/projects/{project_id}/chapters/{chapter.data['id']}"
        await api("POST", f"{base}/prompt", json={"content": "one"})
        assert (await api("GET", base)).data["prompts"][0]["status"] == "processing"
        await api("POST", f"{base}/prompt", json={"content": "two", "force": True})
        clock.advance(1)
        failed = await api("GET", base)
        assert failed.data["status"] == "error"
        assert [p["status"] for p in failed.data["prompts"]] == ["failed", "failed"]
        assert failed.data["prompts"][1]["result"].startswith("Error")
        export = await api("POST", f"/projects/{project_id}/export")
        assert (export.status, export.data["error"]) == (400, "Project has no completed chapters")
        fake.faults.prompt_fail_rate = 0.0
        await api("POST", f"{base}/prompt", json={"content": "three"})
        clock.advance(1)
        fixed = await api("GET", base)
        assert fixed.data["status"] == "ready"
        assert fixed.data["prompts"][-1]["status"] == "completed"


async def test_prompt_completes_with_the_real_clock(session: aiohttp.ClientSession) -> None:
    """With the default monotonic clock a prompt completes after prompt_seconds."""
    async with FakeBabou(prompt_seconds=0.3) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project(chapters=1, ready=False)
        chapters = await api("GET", f"/projects/{project_id}/chapters")
        assert chapters.data["chapters"][0]["status"] == "processing"
        await anyio.sleep(0.35)
        chapters = await api("GET", f"/projects/{project_id}/chapters")
        assert chapters.data["chapters"][0]["status"] == "ready"


# Exports ---------------------------------------------------------------------------------


async def test_export_lifecycle(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """An export goes queued, processing, completed; conflicts and restarts behave."""
    project_id = await make_project(api)
    status_path = f"/projects/{project_id}/export"
    never = await api("GET", status_path)
    assert never.status == 404
    assert never.data == {
        "error": "No export found for this project",
        "code": "NOT_FOUND",
        "hint": f"Start an export first using POST /api/v1/projects/{project_id}/export",
    }
    empty = await api("POST", status_path)
    assert empty.status == 400
    assert empty.data == {
        "error": "Project has no completed chapters",
        "code": "VALIDATION_ERROR",
        "hint": "Add chapters and submit prompts before exporting",
    }
    await api("POST", f"/projects/{project_id}/chapters", json={"name": "empty"})
    assert (await api("POST", status_path)).status == 400

    seeded = sim.seed_project(chapters=2)
    path = f"/projects/{seeded}/export"
    started = await api("POST", path)
    assert started.status == 200
    assert started.data == {
        "status": "queued",
        "message": "Export started",
        "estimated_time": "3-8 seconds",
    }
    project = await api("GET", f"/projects/{seeded}")
    assert re.fullmatch(r"exp_[A-Za-z0-9]{21}", project.data["active_export_id"])
    assert (await api("GET", path)).data == {"status": "queued", "download_url": None}
    conflict = await api("POST", path)
    assert conflict.status == 409
    assert conflict.data == {
        "error": "An export is already in progress for this project",
        "code": "CONFLICT",
        "hint": "Wait for the current export to complete or check its status",
    }
    clock.advance(1)
    assert (await api("GET", path)).data == {"status": "processing", "download_url": None}
    clock.advance(2)
    done = await api("GET", path)
    assert done.status == 200
    assert done.data["status"] == "completed"
    assert done.data["duration_seconds"] == 3.0
    assert done.data["download_url"].startswith(f"{sim.asset_base_url}/exports/{seeded}.mp4?token=")
    assert (await api("GET", f"/projects/{seeded}")).data["active_export_id"] is None

    again = await api("POST", path)
    assert (again.status, again.data["status"]) == (200, "queued")
    second_id = (await api("GET", f"/projects/{seeded}")).data["active_export_id"]
    assert second_id not in (None, project.data["active_export_id"])
    assert (await api("POST", "/projects/prj_missing/export")).data["error"] == "Project not found"
    assert (await api("GET", "/projects/prj_missing/export")).data["error"] == "Project not found"


async def test_export_with_real_sleeps(session: aiohttp.ClientSession) -> None:
    """With tiny durations and the real clock an export completes after anyio.sleep."""
    options: dict[str, Any] = {
        "export_queued_seconds": 0.1,
        "export_processing_seconds": 0.2,
        "video_size": 10,
    }
    async with FakeBabou(**options) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project()
        assert (await api("POST", f"/projects/{project_id}/export")).data["status"] == "queued"
        await anyio.sleep(0.15)
        assert (await api("GET", f"/projects/{project_id}/export")).data["status"] == "processing"
        await anyio.sleep(0.2)
        done = await api("GET", f"/projects/{project_id}/export")
        assert done.data["status"] == "completed"
        video = await fetch(session, "GET", done.data["download_url"])
        assert video.raw == fake.video_bytes(project_id)


async def test_failed_export_body(session: aiohttp.ClientSession, clock: Clock) -> None:
    """A failed export is HTTP 200 with 'error' naming a chapter and no download_url key."""
    async with FakeBabou(**fast(clock=clock)) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project(chapters=3)
        fake.faults.fail_exports.add(project_id)
        await api("POST", f"/projects/{project_id}/export")
        clock.advance(3)
        failed = await api("GET", f"/projects/{project_id}/export")
        assert failed.status == 200
        assert set(failed.data) == {"status", "error"}
        assert failed.data["status"] == "failed"
        assert re.fullmatch(r"Failed to render chapter [123]", failed.data["error"])
        assert (await api("GET", f"/projects/{project_id}")).data["active_export_id"] is None
        fake.faults = Faults(export_fail_rate=1.0)
        other = fake.seed_project()
        await api("POST", f"/projects/{other}/export")
        clock.advance(3)
        assert (await api("GET", f"/projects/{other}/export")).data == {
            "status": "failed",
            "error": "Failed to render chapter 1",
        }
        fake.faults = Faults()
        assert (await api("POST", f"/projects/{other}/export")).status == 200
        with pytest.raises(LookupError):
            fake.video_bytes(other, generation=1)
        assert len(fake.video_bytes(other)) == 100_000


async def test_finish_export_and_video_helpers(api: Api, sim: FakeBabou) -> None:
    """finish_export completes an export at once; the video helpers agree with downloads."""
    project_id = sim.seed_project()
    with pytest.raises(LookupError):
        sim.finish_export(project_id)
    with pytest.raises(LookupError):
        sim.finish_export("prj_unknown")
    with pytest.raises(LookupError):
        sim.video_bytes(project_id)
    await api("POST", f"/projects/{project_id}/export")
    sim.finish_export(project_id)
    done = await api("GET", f"/projects/{project_id}/export")
    assert done.data["status"] == "completed"
    assert done.data["duration_seconds"] == 0.0
    video = await fetch(api.session, "GET", done.data["download_url"])
    assert video.raw == sim.video_bytes(project_id)
    assert hashlib.sha256(video.raw).hexdigest() == sim.video_sha256(project_id)
    assert sim.video_size(project_id) == len(video.raw) == 100_000
    assert video.headers["ETag"] == sim.video_etag(project_id)
    await api("POST", f"/projects/{project_id}/export")
    sim.finish_export(project_id, failed=True)
    assert (await api("GET", f"/projects/{project_id}/export")).data["status"] == "failed"
    assert sim.video_bytes(project_id) == sim.video_bytes(project_id, generation=1)
    sim.finish_export(project_id, failed=False)
    assert (await api("GET", f"/projects/{project_id}/export")).data["status"] == "completed"
    assert sim.video_etag(project_id, generation=1) != sim.video_etag(project_id, generation=2)
    assert sim.video_bytes(project_id, generation=1) != sim.video_bytes(project_id, generation=2)
    with pytest.raises(LookupError):
        sim.video_size(project_id, generation=3)


async def test_video_size_callable_and_zero(session: aiohttp.ClientSession, clock: Clock) -> None:
    """video_size may be a callable of the project id; a 0-byte video downloads empty."""
    sizes = {"small": 0}
    async with FakeBabou(**fast(clock=clock, video_size=lambda pid: sizes.get(pid, 7))) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project()
        url = await exported(api, clock, project_id)
        assert (await fetch(session, "GET", url)).raw == fake.video_bytes(project_id)
        assert fake.video_size(project_id) == 7
        sizes[project_id] = 0
        url = await exported(api, clock, project_id)
        empty = await fetch(session, "GET", url)
        assert (empty.status, empty.raw, empty.headers["Content-Length"]) == (200, b"", "0")
        suffix = await fetch(session, "GET", url, headers={"Range": "bytes=-5"})
        assert suffix.status == 416
        sizes[project_id] = -1
        failed = await api("POST", f"/projects/{project_id}/export")
        assert failed.status == 500


# Downloads -------------------------------------------------------------------------------


async def test_download_full_and_head(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """The asset origin serves the export with length, ranges, ETag and MP4 headers."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    video = await fetch(api.session, "GET", url)
    assert video.status == 200
    assert video.raw == sim.video_bytes(project_id)
    assert video.raw[4:8] == b"ftyp"
    assert video.headers["Content-Length"] == "100000"
    assert video.headers["Accept-Ranges"] == "bytes"
    assert video.headers["Content-Type"] == "video/mp4"
    assert re.fullmatch(r'"[0-9a-f]{32}"', video.headers["ETag"])
    assert (
        email.utils.parsedate_to_datetime(video.headers["Last-Modified"]).timestamp() == EPOCH + 3
    )
    head = await fetch(api.session, "HEAD", url)
    assert (head.status, head.raw, head.headers["Content-Length"]) == (200, b"", "100000")
    assert head.headers["ETag"] == video.headers["ETag"]


async def test_download_url_is_fresh_on_every_get(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """Each GET export signs a new URL with a later expiry; both work until they expire."""
    project_id = sim.seed_project()
    first = await exported(api, clock, project_id)
    clock.advance(1.5)
    second = (await api("GET", f"/projects/{project_id}/export")).data["download_url"]
    assert first != second
    expiries = [float(re.search(r"expires=([0-9.]+)", url)[1]) for url in (first, second)]  # type: ignore[index]
    assert expiries[1] - expiries[0] == pytest.approx(1.5)
    assert expiries[0] == pytest.approx(EPOCH + 3 + 60)
    assert (await fetch(api.session, "GET", first)).status == 200
    clock.advance(59)
    expired = await fetch(api.session, "GET", first)
    assert expired.status == 403
    assert b"<Code>AccessDenied</Code>" in expired.raw
    assert b"expired" in expired.raw
    assert (await fetch(api.session, "GET", second)).status == 200


async def test_download_url_checks(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """Tampered, missing and revoked tokens fail with faults.expired_status."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    tampered = url.replace("token=", "token=0")
    assert (await fetch(api.session, "GET", tampered)).status == 403
    bare = url.split("?", 1)[0]
    missing = await fetch(api.session, "GET", bare)
    assert (missing.status, b"signature" in missing.raw) == (403, True)
    other = sim.seed_project()
    assert (await fetch(api.session, "GET", url.replace(project_id, other))).status == 403
    sim.faults.expired_status = 410
    assert (await fetch(api.session, "GET", tampered)).status == 410
    sim.faults.expired_status = 403
    sim.expire_all_urls()
    assert (await fetch(api.session, "GET", url)).status == 403
    fresh = (await api("GET", f"/projects/{project_id}/export")).data["download_url"]
    assert (await fetch(api.session, "GET", fresh)).status == 200
    not_exported = await fetch(api.session, "GET", sim.download_url(other))
    assert (not_exported.status, b"NoSuchKey" in not_exported.raw) == (404, True)
    unknown = await fetch(api.session, "GET", sim.download_url("prj_unknown"))
    assert unknown.status == 404
    wrong_path = await fetch(api.session, "GET", sim.asset_base_url + "/other/file.mp4")
    assert wrong_path.status == 404
    wrong_method = await fetch(api.session, "POST", url)
    assert (wrong_method.status, b"MethodNotAllowed" in wrong_method.raw) == (405, True)


async def test_url_ttl_zero_expires_at_once(session: aiohttp.ClientSession, clock: Clock) -> None:
    """url_ttl=0 hands out URLs that are already expired."""
    async with FakeBabou(**fast(clock=clock, url_ttl=0)) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project()
        url = await exported(api, clock, project_id)
        assert (await fetch(session, "GET", url)).status == 403
        fake.url_ttl = 5
        fresh = (await api("GET", f"/projects/{project_id}/export")).data["download_url"]
        assert (await fetch(session, "GET", fresh)).status == 200


async def test_download_ranges(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """Single byte ranges give 206 with Content-Range; odd ones fall back to 200 or 416."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    whole = sim.video_bytes(project_id)
    size = len(whole)
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=99990-": (99990, size),
        "bytes=-5": (size - 5, size),
        "bytes=-200000": (0, size),
        "bytes=70000-999999999": (70000, size),
        "BYTES = 5-5": (5, 6),
    }
    for header, (start, end) in cases.items():
        reply = await fetch(api.session, "GET", url, headers={"Range": header})
        assert reply.status == 206, header
        assert reply.raw == whole[start:end], header
        assert reply.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert reply.headers["Content-Length"] == str(end - start)
    for header in ("bytes=100000-", "bytes=200000-200010", "bytes=-0"):
        reply = await fetch(api.session, "GET", url, headers={"Range": header})
        assert reply.status == 416, header
        assert reply.headers["Content-Range"] == f"bytes */{size}"
    for header in ("bytes=0-1,5-6", "bytes=9-1", "items=0-1", "bytes=abc", "bytes=-", "bytes=1"):
        reply = await fetch(api.session, "GET", url, headers={"Range": header})
        assert (reply.status, len(reply.raw)) == (200, size), header
    head = await fetch(api.session, "HEAD", url, headers={"Range": "bytes=0-9"})
    assert (head.status, head.headers["Content-Length"], head.raw) == (206, "10", b"")


async def test_if_range_and_etag_change(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """If-Range honours the current ETag or date; a re-export changes the ETag."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    first = await fetch(api.session, "GET", url, headers={"Range": "bytes=0-99"})
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    matching = await fetch(
        api.session, "GET", url, headers={"Range": "bytes=0-99", "If-Range": etag}
    )
    assert matching.status == 206
    by_date = await fetch(
        api.session, "GET", url, headers={"Range": "bytes=0-99", "If-Range": modified}
    )
    assert by_date.status == 206
    weak = await fetch(
        api.session, "GET", url, headers={"Range": "bytes=0-99", "If-Range": "W/" + etag}
    )
    assert weak.status == 200

    # A new export replaces the object: same URL path, new content and ETag.
    second_url = await exported(api, clock, project_id)
    stale = await fetch(
        api.session, "GET", second_url, headers={"Range": "bytes=0-99", "If-Range": etag}
    )
    assert stale.status == 200
    assert stale.headers["ETag"] != etag
    assert stale.raw == sim.video_bytes(project_id)
    assert stale.raw != sim.video_bytes(project_id, generation=1)


async def test_old_export_is_served_while_a_new_one_runs(
    api: Api, sim: FakeBabou, clock: Clock
) -> None:
    """During a re-export the download URL still serves the previous completed video."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    await api("POST", f"/projects/{project_id}/export")
    during = await fetch(api.session, "GET", url)
    assert during.raw == sim.video_bytes(project_id, generation=1)


async def test_ignore_range_fault(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """With ignore_range the origin answers every range request with the whole file."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    sim.faults.ignore_range = True
    reply = await fetch(api.session, "GET", url, headers={"Range": "bytes=10-19"})
    assert (reply.status, len(reply.raw)) == (200, 100_000)
    assert "Content-Range" not in reply.headers


async def test_drop_fault_truncates_the_body(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """drop_rate=1 sends part of the body then closes: the client sees a payload error."""
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    sim.faults.drop_rate = 1.0
    for headers in ({}, {"Range": "bytes=50000-"}):
        with pytest.raises(aiohttp.ClientPayloadError):
            await fetch(api.session, "GET", url, headers=headers)
    records = sim.find_requests(origin="asset")
    assert [(r.status, r.dropped) for r in records] == [(200, True), (206, True)]
    sim.faults.drop_rate = 0.0
    assert len((await fetch(api.session, "GET", url)).raw) == 100_000


async def test_slow_download_throttle(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """slow_bytes_per_second paces the body and still delivers it intact."""
    sim.export_video_size = 20_000
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    sim.faults.slow_bytes_per_second = 200_000
    started = time.monotonic()
    reply = await fetch(api.session, "GET", url)
    assert time.monotonic() - started >= 0.08
    assert reply.raw == sim.video_bytes(project_id)


async def test_large_download_streams_intact(session: aiohttp.ClientSession) -> None:
    """A multi-block video streams intact and matches the hash computed without it."""
    size = 3 * 1024 * 1024 + 17
    async with FakeBabou(
        video_size=size, export_queued_seconds=0, export_processing_seconds=0
    ) as fake:
        api = Api(session, fake)
        project_id = fake.seed_project()
        assert (await api("POST", f"/projects/{project_id}/export")).data["status"] == "completed"
        url = (await api("GET", f"/projects/{project_id}/export")).data["download_url"]
        digest = hashlib.sha256()
        total = 0
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(1 << 16):
                digest.update(chunk)
                total += len(chunk)
        assert total == size
        assert digest.hexdigest() == fake.video_sha256(project_id)


def test_video_content_is_not_periodic() -> None:
    """Consecutive 64 KiB blocks differ, and ranges agree with the whole."""
    video = VideoContent(b"key", 3 * BLOCK_SIZE + 5)
    data = video.read()
    assert len(data) == video.size
    assert data[BLOCK_SIZE : 2 * BLOCK_SIZE] != data[2 * BLOCK_SIZE : 3 * BLOCK_SIZE]
    assert video.read(BLOCK_SIZE - 3, BLOCK_SIZE + 3) == data[BLOCK_SIZE - 3 : BLOCK_SIZE + 3]
    assert video.read(10, 10) == b""
    assert b"".join(video.iter_range(-5, 10**9, 1000)) == data
    assert VideoContent(b"key", 10).etag == VideoContent(b"key", 99).etag
    assert VideoContent(b"other", 10).etag != VideoContent(b"key", 10).etag


def test_parse_range_edges() -> None:
    """The Range parser returns (start, end), 'unsatisfiable' or None as RFC 9110 says."""
    assert parse_range("bytes=0-0", 10) == (0, 1)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=10-", 10) == "unsatisfiable"
    assert parse_range("bytes=-1", 0) == "unsatisfiable"
    assert parse_range("bytes=+1-2", 10) is None
    assert parse_range("bytes=1-x", 10) is None


# API faults ------------------------------------------------------------------------------


async def test_random_429_retry_after_forms(api: Api, sim: FakeBabou) -> None:
    """rate_limit_rate=1 gives 429 with Retry-After as seconds, an HTTP date, or none."""
    sim.faults.rate_limit_rate = 1.0
    limited = await api("GET", "/projects")
    assert (limited.status, limited.data["code"]) == (429, "RATE_LIMIT_EXCEEDED")
    assert limited.headers["Retry-After"] == "1"
    assert "Retry-After" in limited.data["hint"]
    sim.faults.retry_after = 0.25
    assert (await api("GET", "/projects")).headers["Retry-After"] == "0.25"
    sim.faults.retry_after = 2
    sim.faults.retry_after_form = "http-date"
    dated = await api("GET", "/projects")
    moment = email.utils.parsedate_to_datetime(dated.headers["Retry-After"])
    assert moment.timestamp() == EPOCH + 2
    sim.faults.retry_after_form = "none"
    bare = await api("GET", "/projects")
    assert bare.status == 429
    assert "Retry-After" not in bare.headers
    assert "hint" not in bare.data
    assert (await api("GET", "/projects", auth=None)).status == 401


async def test_server_error_faults(api: Api, sim: FakeBabou) -> None:
    """server_error_rate=1 answers 5xx INTERNAL_ERROR, with HTML bodies when asked."""
    sim.faults.server_error_rate = 1.0
    seen = set()
    for _ in range(12):
        reply = await api("GET", "/projects")
        assert reply.data["code"] == "INTERNAL_ERROR"
        seen.add(reply.status)
    assert seen == {500, 502, 503}
    sim.faults.server_error_statuses = (502,)
    sim.faults.html_errors = True
    html = await api("GET", "/projects")
    assert (html.status, html.headers["Content-Type"].split(";")[0]) == (502, "text/html")
    assert b"502 Bad gateway" in html.raw
    sim.faults.server_error_statuses = (500, 504, 599)
    statuses = {(await api("GET", "/projects")).status for _ in range(12)}
    assert statuses <= {500, 504, 599}
    assert 599 in statuses


async def test_latency_fault(api: Api, sim: FakeBabou) -> None:
    """The latency fault delays every API request."""
    sim.faults.latency = 0.05
    started = time.monotonic()
    assert (await api("GET", "/projects")).status == 200
    assert time.monotonic() - started >= 0.05


async def test_drop_api_fault(api: Api, sim: FakeBabou) -> None:
    """drop_api_rate=1 closes API connections without any response."""
    sim.faults.drop_api_rate = 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("GET", "/projects")
    record = sim.requests[-1]
    assert (record.status, record.dropped) == (None, True)


async def test_faults_are_deterministic_for_a_seed(session: aiohttp.ClientSession) -> None:
    """Two fakes with one seed fail the same requests of the same sequence."""
    runs = []
    for _ in range(2):
        async with FakeBabou(seed=11, faults=Faults(server_error_rate=0.5)) as fake:
            api = Api(session, fake)
            runs.append([(await api("GET", "/projects")).status for _ in range(16)])
    assert runs[0] == runs[1]
    assert 200 in runs[0]
    assert set(runs[0]) - {200}


def test_faults_validation() -> None:
    """Faults rejects out-of-range values at construction and on assignment."""
    with pytest.raises(ValueError, match="rate_limit_rate"):
        Faults(rate_limit_rate=1.5)
    faults = Faults()
    with pytest.raises(ValueError, match="drop_rate"):
        faults.drop_rate = -0.1
    with pytest.raises(ValueError, match="latency"):
        faults.latency = -1
    with pytest.raises(ValueError, match="expired_status"):
        faults.expired_status = 200
    with pytest.raises(ValueError, match="server_error_statuses"):
        faults.server_error_statuses = (404,)
    with pytest.raises(ValueError, match="server_error_statuses"):
        faults.server_error_statuses = ()
    with pytest.raises(ValueError, match="slow_bytes_per_second"):
        faults.slow_bytes_per_second = 0
    with pytest.raises(ValueError, match="retry_after_form"):
        Faults(retry_after_form="minutes")  # type: ignore[arg-type]
    assert Faults(fail_exports=["prj_a"]).fail_exports == {"prj_a"}


# Token bucket ---------------------------------------------------------------------------


async def test_rate_limit_token_bucket(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """A per-key bucket allows a burst, then 429s with the wait until the next token."""
    sim.rate_limit = (2.0, 2)
    assert sim.rate_limit == (2.0, 2)
    assert [(await api("GET", "/projects")).status for _ in range(2)] == [200, 200]
    limited = await api("GET", "/projects")
    assert (limited.status, limited.headers["Retry-After"]) == (429, "0.5")
    other = sim.add_key()
    assert (await api("GET", "/projects", auth=f"Bearer {other}")).status == 200
    clock.advance(0.25)
    assert (await api("GET", "/projects")).headers["Retry-After"] == "0.25"
    clock.advance(0.25)
    assert (await api("GET", "/projects")).status == 200
    clock.advance(10)
    assert [(await api("GET", "/projects")).status for _ in range(3)] == [200, 200, 429]
    sim.rate_limit = None
    assert (await api("GET", "/projects")).status == 200
    with pytest.raises(ValueError, match="rate_limit"):
        sim.rate_limit = (0, 1)
    with pytest.raises(ValueError, match="rate_limit"):
        sim.rate_limit = (1, 0)


# Injections -----------------------------------------------------------------------------


async def test_inject_exact_times_and_defaults(api: Api, sim: FakeBabou) -> None:
    """An injection answers the next N matching requests, before auth; then handling resumes."""
    injection = sim.inject("GET", "/projects", status=503, times=2)
    for _ in range(2):
        reply = await api("GET", "/projects", auth=None)
        assert reply.status == 503
        assert reply.data == {"error": "Service Unavailable", "code": "INTERNAL_ERROR"}
    assert (injection.hits, injection.active) == (2, False)
    assert (await api("GET", "/projects")).status == 200
    sim.inject("POST", "/api/v1/projects", status=429, headers={"Retry-After": "7"})
    limited = await api("POST", "/projects", json={"name": "x"})
    assert (limited.status, limited.headers["Retry-After"], limited.data["code"]) == (
        429,
        "7",
        "RATE_LIMIT_EXCEEDED",
    )
    sim.inject("get", "/projects", status=418)
    assert (await api("GET", "/projects")).data == {"error": "I'm a Teapot", "code": "ERROR"}
    assert (await api("POST", "/projects", json={"name": "x"})).status == 201


async def test_inject_bodies_patterns_and_cancel(api: Api, sim: FakeBabou) -> None:
    """Injections take JSON or raw bodies, globs and regexes, and can be cancelled."""
    sim.inject(
        "*", "/projects/*/export", status=200, json={"status": "processing", "download_url": None}
    )
    reply = await api("GET", "/projects/prj_any/export")
    assert reply.data == {"status": "processing", "download_url": None}
    sim.inject(
        "GET",
        re.compile(r"/assets/ast_\w+"),
        status=502,
        body=b"<html>bad</html>",
        headers={"Content-Type": "text/html"},
    )
    html = await api("GET", "/assets/ast_1")
    assert (html.status, html.raw, html.headers["Content-Type"]) == (
        502,
        b"<html>bad</html>",
        "text/html",
    )
    sim.inject("GET", "/assets", status=200, body=b"\x00\x01")
    raw = await api("GET", "/assets")
    assert (raw.raw, raw.headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
    sim.inject(
        "GET",
        "/assets",
        status=200,
        json={"x": 1},
        headers={"content-type": "application/problem+json"},
    )
    assert (await api("GET", "/assets")).headers["Content-Type"] == "application/problem+json"
    sim.inject("GET", "/assets", status=500, headers={"Content-Type": "application/problem+json"})
    problem = await api("GET", "/assets")
    assert (problem.status, problem.headers["Content-Type"]) == (500, "application/problem+json")
    assert json.loads(problem.raw)["code"] == "INTERNAL_ERROR"
    sim.inject("GET", "/assets", status=204)
    assert (await api("GET", "/assets")).raw == b""
    forever = sim.inject("GET", "/projects", status=500, times=None)
    for _ in range(3):
        assert (await api("GET", "/projects")).status == 500
    assert forever.hits == 3
    forever.cancel()
    assert (await api("GET", "/projects")).status == 200
    sim.inject("GET", "/projects", status=500)
    sim.clear_injections()
    assert (await api("GET", "/projects")).status == 200
    with pytest.raises(ValueError, match="json or body"):
        sim.inject("GET", "/x", status=200, json={}, body=b"")
    with pytest.raises(ValueError, match="remaining"):
        sim.inject("GET", "/x", status=200, times=0)


async def test_inject_drop_delay_and_asset_origin(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """Injections can drop the connection, wait first, or target the asset origin."""
    # aiohttp resends a GET once when a reused connection closes: drop both tries.
    dropping = sim.inject("GET", "/projects", status=200, drop=True, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("GET", "/projects")
    assert dropping.hits == 2
    assert [(r.status, r.dropped) for r in sim.requests] == [(None, True), (None, True)]
    sim.inject("POST", "/projects", status=200, drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("POST", "/projects", json={"name": "x"})
    sim.inject("GET", "/projects", status=200, json=[], delay=0.05)
    started = time.monotonic()
    assert (await api("GET", "/projects")).data == []
    assert time.monotonic() - started >= 0.05
    project_id = sim.seed_project()
    url = await exported(api, clock, project_id)
    sim.inject("GET", f"/exports/{project_id}.mp4", status=503, origin="asset")
    cdn = await fetch(api.session, "GET", url)
    assert (cdn.status, cdn.raw) == (503, b"")
    sim.inject("GET", "/exports/*", status=200, origin="asset", body=b"short")
    assert (await fetch(api.session, "GET", url)).raw == b"short"
    assert (await fetch(api.session, "GET", url)).status == 200


def test_injection_matching() -> None:
    """Injection.matches checks origin, method and the three path forms."""
    exact = Injection(method="GET", path="/projects", origin="api", status=500)
    assert exact.matches("api", "get", "/projects")
    assert not exact.matches("asset", "GET", "/projects")
    assert not exact.matches("api", "POST", "/projects")
    assert not exact.matches("api", "GET", "/projects/x")
    glob = Injection(method="*", path="/projects/[a-z]*", origin="api", status=500)
    assert glob.matches("api", "DELETE", "/projects/prj_1")
    regex = Injection(method="*", path=re.compile(r"/a+"), origin="asset", status=500)
    assert regex.matches("asset", "GET", "/aaa")
    assert not regex.matches("asset", "GET", "/aab")


# Recording ------------------------------------------------------------------------------


async def test_recording(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """Every request on both origins is recorded in order with headers, query and sizes."""
    project_id = sim.seed_project()
    await api("GET", "/projects", params={"limit": "5", "offset": "0"}, headers={"X-Trace": "t1"})
    await api("POST", "/projects", json={"name": "x"})
    url = await exported(api, clock, project_id)
    await fetch(api.session, "GET", url)
    records = sim.requests
    assert all(isinstance(record, RecordedRequest) for record in records)
    assert [(r.origin, r.method, r.path, r.status) for r in records] == [
        ("api", "GET", "/api/v1/projects", 200),
        ("api", "POST", "/api/v1/projects", 201),
        ("api", "POST", f"/api/v1/projects/{project_id}/export", 200),
        ("api", "GET", f"/api/v1/projects/{project_id}/export", 200),
        ("asset", "GET", f"/exports/{project_id}.mp4", 200),
    ]
    first = records[0]
    assert first.query == {"limit": "5", "offset": "0"}
    assert first.header("authorization") == f"Bearer {sim.api_key}"
    assert first.headers["X-Trace"] == "t1"
    assert first.header("x-missing") is None
    assert first.time == 1000.0
    assert records[1].body_size == len(b'{"name": "x"}')
    assert records[1].dropped is False
    download = records[-1]
    assert download.header("Authorization") is None
    assert download.body_size == 0
    assert set(download.query) == {"token", "expires"}
    assert sim.find_requests(method="post") == records[1:3]
    assert sim.find_requests(path="/api/v1/projects/*/export") == records[2:4]
    assert sim.find_requests(origin="asset") == [download]
    sim.clear_requests()
    assert sim.requests == []


async def test_record_limit_and_unread_bodies(session: aiohttp.ClientSession, clock: Clock) -> None:
    """record_limit trims old records; an unread body is recorded by its Content-Length."""
    async with FakeBabou(**fast(clock=clock, record_limit=3)) as fake:
        api = Api(session, fake)
        for _ in range(7):
            await api("GET", "/projects")
        assert 3 <= len(fake.requests) <= 6
        rejected = await api("POST", "/projects", auth=None, data=b"x" * 50)
        assert rejected.status == 401
        assert fake.requests[-1].body_size == 50


async def test_record_completes_after_clear(api: Api, sim: FakeBabou) -> None:
    """Clearing records while a request is in flight does not break its completion."""
    sim.faults.latency = 0.2
    async with anyio.create_task_group() as group:
        group.start_soon(api, "GET", "/projects")
        with anyio.fail_after(5):
            while not sim.requests:
                await anyio.sleep(0.005)
        assert sim.requests[-1].status is None
        sim.clear_requests()
    assert sim.requests == []


# Assets ------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A PNG signature and IHDR header of the given size."""
    return (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        + width.to_bytes(4, "big")
        + height.to_bytes(4, "big")
        + b"\x08\x02"
    )


async def test_upload_asset_and_poll(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """POST /assets returns a processing asset that becomes ready with a URL and dimensions."""
    data = png(640, 480) + b"\x00" * 100
    reply = await api("POST", "/assets", data=data, headers={"Content-Type": "image/png"})
    assert reply.status == 201
    asset = reply.data
    assert re.fullmatch(r"ast_[A-Za-z0-9]{21}", asset["id"])
    assert asset == {
        "id": asset["id"],
        "name": "uploaded-file",
        "url": None,
        "content_type": "image/png",
        "size": len(data),
        "state": "processing",
        "duration": None,
        "width": None,
        "height": None,
        "created_at": "2025-12-02T10:00:00Z",
    }
    assert sim.asset_sha256(asset["id"]) == hashlib.sha256(data).hexdigest()
    assert sim.asset_size(asset["id"]) == len(data)
    clock.advance(1)
    ready = await api("GET", f"/assets/{asset['id']}")
    assert ready.data["state"] == "ready"
    assert ready.data["url"] == f"s3://babou-assets/assets/{asset['id']}-original"
    assert (ready.data["width"], ready.data["height"], ready.data["duration"]) == (640, 480, None)
    missing = await api("GET", "/assets/ast_missing")
    assert (missing.status, missing.data) == (
        404,
        {"error": "Asset not found", "code": "NOT_FOUND"},
    )
    with pytest.raises(LookupError):
        sim.asset_sha256("ast_missing")


@pytest.mark.parametrize(
    ("content_type", "data", "facts"),
    [
        (
            "image/gif",
            b"GIF89a" + (320).to_bytes(2, "little") + (200).to_bytes(2, "little"),
            (320, 200, None),
        ),
        ("image/jpeg", b"\xff\xd8\xff" + b"\x00" * 40, (1280, 720, None)),
        ("image/svg+xml; charset=utf-8", b"<svg/>", (1280, 720, None)),
        ("video/mp4", b"\x00" * 250_000, (1920, 1080, 2.0)),
        ("audio/mpeg", b"\x00" * 32_000, (None, None, 2.0)),
    ],
)
async def test_upload_media_facts(
    api: Api, clock: Clock, content_type: str, data: bytes, facts: tuple[Any, ...]
) -> None:
    """Ready assets report plausible width, height and duration for their kind."""
    reply = await api("POST", "/assets", data=data, headers={"Content-Type": content_type})
    assert reply.status == 201
    assert reply.data["content_type"] == content_type.split(";", maxsplit=1)[0]
    clock.advance(1)
    ready = (await api("GET", f"/assets/{reply.data['id']}")).data
    assert (ready["width"], ready["height"], ready["duration"]) == facts


async def test_upload_errors(session: aiohttp.ClientSession, clock: Clock) -> None:
    """Uploads need a listed Content-Type, a body, and at most max_upload_bytes."""
    async with FakeBabou(**fast(clock=clock, max_upload_bytes=1000)) as fake:
        api = Api(session, fake)
        missing = await api("POST", "/assets", data=b"abc", headers={"Content-Type": ""})
        assert (missing.status, missing.data["error"]) == (400, "Content-Type header is required")
        assert missing.data["code"] == "VALIDATION_ERROR"
        unsupported = await api(
            "POST", "/assets", data=b"abc", headers={"Content-Type": "text/plain"}
        )
        assert (unsupported.status, unsupported.data["code"]) == (400, "VALIDATION_ERROR")
        assert "image/svg+xml" in unsupported.data["hint"]
        empty = await api("POST", "/assets", data=b"", headers={"Content-Type": "image/png"})
        assert (empty.status, empty.data["error"]) == (400, "File is empty")
        assert (
            await api("POST", "/assets", data=b"x" * 1000, headers={"Content-Type": "image/png"})
        ).status == 201
        too_big = await api(
            "POST", "/assets", data=b"x" * 1001, headers={"Content-Type": "image/png"}
        )
        assert too_big.status == 413
        assert too_big.data == {
            "error": "File size exceeds maximum allowed size of 1000 bytes",
            "code": "FILE_TOO_LARGE",
            "hint": "Compress or split the file before uploading",
        }

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"y" * 600

        streamed = await api(
            "POST", "/assets", data=chunks(), headers={"Content-Type": "video/mp4"}
        )
        assert (streamed.status, streamed.data["code"]) == (413, "FILE_TOO_LARGE")
        assert "100MB" in too_large(100 * 1024 * 1024).message


async def test_streamed_upload_arrives_intact(api: Api, sim: FakeBabou) -> None:
    """A chunked multi-megabyte upload is hashed on arrival and recorded with its size."""
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 3)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    reply = await api("POST", "/assets", data=chunks(), headers={"Content-Type": "video/webm"})
    assert reply.status == 201
    assert reply.data["size"] == len(data)
    assert sim.asset_sha256(reply.data["id"]) == hashlib.sha256(data).hexdigest()
    assert sim.requests[-1].body_size == len(data)


async def test_upload_and_asset_faults(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """upload_fail_rate gives 500 UPLOAD_FAILED; asset_fail_rate ends assets in 'error'."""
    sim.faults.upload_fail_rate = 1.0
    failed = await api("POST", "/assets", data=b"abc", headers={"Content-Type": "audio/wav"})
    assert (failed.status, failed.data["code"]) == (500, "UPLOAD_FAILED")
    assert failed.data["error"] == "Failed to upload file to storage"
    sim.faults = Faults(asset_fail_rate=1.0)
    reply = await api("POST", "/assets", data=b"abc", headers={"Content-Type": "audio/wav"})
    clock.advance(1)
    broken = (await api("GET", f"/assets/{reply.data['id']}")).data
    assert (broken["state"], broken["url"]) == ("error", None)


async def test_list_assets_pagination_and_filters(api: Api, sim: FakeBabou) -> None:
    """GET /assets pages with limit/offset and filters by contentType and state."""
    images = [sim.seed_asset("image/png") for _ in range(25)]
    videos = [sim.seed_asset("video/mp4", b"\x00" * 10, ready=False) for _ in range(3)]
    sim.faults.asset_fail_rate = 1.0
    await api("POST", "/assets", data=b"abc", headers={"Content-Type": "audio/ogg"})
    first = await api("GET", "/assets")
    assert [a["id"] for a in first.data["assets"]] == images[:20]
    assert first.data["pagination"] == {"limit": 20, "offset": 0, "total": 29}
    page = await api("GET", "/assets", params={"limit": "100", "offset": "20"})
    assert len(page.data["assets"]) == 9
    by_type = await api("GET", "/assets", params={"contentType": "VIDEO/MP4"})
    assert [a["id"] for a in by_type.data["assets"]] == videos
    processing = await api("GET", "/assets", params={"state": "processing"})
    assert processing.data["pagination"]["total"] == 4
    ready = await api("GET", "/assets", params={"state": "ready", "limit": "5"})
    assert (len(ready.data["assets"]), ready.data["pagination"]["total"]) == (5, 25)
    assert (await api("GET", "/assets", params={"state": "uploading"})).data["assets"] == []
    for params in ({"limit": "101"}, {"limit": "-1"}, {"offset": "-2"}, {"state": "gone"}):
        bad = await api("GET", "/assets", params=params)
        assert (bad.status, bad.data["code"]) == (400, "VALIDATION_ERROR"), params


async def test_failed_state_filter_alias(api: Api, sim: FakeBabou, clock: Clock) -> None:
    """state=failed is accepted as an alias of 'error'."""
    sim.faults.asset_fail_rate = 1.0
    reply = await api("POST", "/assets", data=b"abc", headers={"Content-Type": "audio/aac"})
    clock.advance(1)
    for state in ("failed", "error"):
        listed = await api("GET", "/assets", params={"state": state})
        assert [a["id"] for a in listed.data["assets"]] == [reply.data["id"]]


# Seeding ------------------------------------------------------------------------------------


async def test_seed_project_states(api: Api, sim: FakeBabou) -> None:
    """seed_project makes ready chapters by default, processing ones with ready=False."""
    ready = sim.seed_project("Ready", chapters=2, description="d")
    listed = await api("GET", f"/projects/{ready}/chapters")
    assert [(c["name"], c["status"], c["prompt_count"]) for c in listed.data["chapters"]] == [
        ("Chapter 1", "ready", 1),
        ("Chapter 2", "ready", 1),
    ]
    assert (await api("GET", f"/projects/{ready}")).data["description"] == "d"
    pending = sim.seed_project(ready=False)
    assert (await api("POST", f"/projects/{pending}/export")).status == 400
    empty = sim.seed_project(chapters=0)
    assert (await api("GET", f"/projects/{empty}/chapters")).data["chapters"] == []


def test_store_ids_never_repeat() -> None:
    """Store.new_id draws again on a collision, so ids stay unique."""
    store = Store(ids=random.Random(1), wall_offset=0.0, video_key=b"k")
    ids = {store.new_id("x_", length=1) for _ in range(62)}
    assert len(ids) == 62


async def test_concurrent_requests_complete_their_own_records(api: Api, sim: FakeBabou) -> None:
    """Records of overlapping requests are completed in place, in arrival order."""
    sim.faults.latency = 0.2
    async with anyio.create_task_group() as group:
        group.start_soon(api, "GET", "/projects")
        with anyio.fail_after(5):
            while not sim.requests:
                await anyio.sleep(0.005)
        group.start_soon(api, "GET", "/assets")
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/api/v1/projects", 200),
        ("/api/v1/assets", 200),
    ]


async def test_empty_json_body_reads_as_empty_object(api: Api) -> None:
    """A create call without a body fails validation on the missing name."""
    reply = await api("POST", "/projects")
    assert (reply.status, reply.data["hint"]) == (400, "Name must be between 1 and 30 characters")


def test_pure_helpers() -> None:
    """estimate() picks seconds or minutes; iso8601() matches the docs' form."""
    assert estimate(30, 3) == "30-90 seconds"
    assert estimate(120, 2.5) == "2-5 minutes"
    assert estimate(0.2, 3) == "1-2 seconds"
    assert iso8601(EPOCH + 0.9) == "2025-12-02T10:00:00Z"


# Standalone simulator --------------------------------------------------------------------


def test_cli_parser_and_fake_from_args() -> None:
    """The parser maps flags onto FakeBabou and Faults, and rejects bad values."""
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "--port",
            "0",
            "--seed",
            "random",
            "--rate-limit",
            "5:10",
            "--drop-rate",
            "0.5",
            "--ignore-range",
            "--export-seconds",
            "3",
            "--list-projects-shape",
            "bare",
        ]
    )
    fake = cli.fake_from_args(args)
    assert fake.rate_limit == (5.0, 10)
    assert fake.faults.drop_rate == 0.5
    assert fake.faults.ignore_range is True
    assert fake.export_processing_seconds == 3.0
    assert fake.list_projects_shape == "bare"
    assert parser.parse_args(["--rate-limit", "2.5"]).rate_limit == (2.5, 2)
    assert parser.parse_args(["--seed", "42"]).seed == 42
    for bad in (["--seed", "x"], ["--rate-limit", "a:b"], ["--rate-limit", "0:1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(SystemExit):
        cli.main(["--drop-rate", "2"])


async def test_serve_forever_until_stopped(session: aiohttp.ClientSession) -> None:
    """serve_forever starts the fake, announces its URLs, and closes it when stopped."""
    fake = FakeBabou(seed=5)
    stop = asyncio.Event()
    out = io.StringIO()
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve_forever(fake, stop=stop, announce=out))
        with anyio.fail_after(5):
            while not fake.started:
                await anyio.sleep(0.01)
        lines = dict(line.split("=", 1) for line in out.getvalue().splitlines())
        assert lines == {
            "BABOU_BASE_URL": fake.base_url,
            "BABOU_API_KEY": fake.api_key,
        }
        reply = await Api(session, fake)("GET", "/projects")
        assert reply.status == 200
        stop.set()
    assert not fake.started
    stop.clear()
    quiet = asyncio.Event()
    quiet.set()
    await serve_forever(fake, stop=quiet)
    assert not fake.started


def test_main_exits_zero_on_sigint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """main() serves until SIGINT, then returns 0; a busy port makes it return 1."""
    logging_calls: list[dict[str, Any]] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: logging_calls.append(kwargs))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pause = threading.Event()

    def interrupt_when_listening() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                pause.wait(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_when_listening)
    thread.start()
    assert cli.main(["--port", str(port), "--api-key", "sk-bab-cli", "-v"]) == 0
    thread.join()
    assert logging_calls[0]["level"] == logging.INFO
    out = capsys.readouterr().out
    assert f"BABOU_BASE_URL=http://127.0.0.1:{port}/api/v1" in out
    assert "BABOU_API_KEY=sk-bab-cli" in out

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert cli.main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot serve" in capsys.readouterr().err


async def test_python_dash_m_subprocess() -> None:
    """`python -m babou_async.testing --port 0` prints its URLs and exits 0 on SIGINT."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "babou_async.testing",
        "--port",
        "0",
        "--seed",
        "3",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        with anyio.fail_after(15):
            lines = [(await process.stdout.readline()).decode().strip() for _ in range(2)]
        values = dict(line.split("=", 1) for line in lines)
        assert values["BABOU_BASE_URL"].endswith("/api/v1")
        assert values["BABOU_API_KEY"].startswith("sk-bab-")
        async with aiohttp.ClientSession() as client_session:
            headers = {"Authorization": f"Bearer {values['BABOU_API_KEY']}"}
            reply = await fetch(
                client_session, "GET", values["BABOU_BASE_URL"] + "/projects", headers=headers
            )
            assert reply.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            _, stderr = await process.communicate()
    assert process.returncode == 0
    assert b"Traceback" not in stderr


def test_dunder_main_module_imports() -> None:
    """The __main__ module imports cleanly without running the server."""
    module = importlib.import_module("babou_async.testing.__main__")
    assert module.main is cli.main


def test_public_facade() -> None:
    """The facade's __all__ is sorted and names only documented objects."""
    from babou_async import testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name).__doc__, name
