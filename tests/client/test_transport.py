"""The transport against a hand-written aiohttp server: bodies that arrive in pieces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web

from babou_async import BabouSession, DecodeError, RetryPolicy, _transport
from babou_async._protocol import RequestSpec

from ..support import serve

pytestmark = pytest.mark.anyio

PROJECT = {
    "id": "prj_split",
    "name": "Split body",
    "description": "x" * 500,
    "settings": None,
    "active_export_id": None,
    "created_at": "2025-12-02T10:00:00Z",
}


async def split_body(request: web.Request) -> web.StreamResponse:
    """Send the JSON in two writes 50 ms apart, with or without Content-Length."""
    body = json.dumps(PROJECT).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if request.query.get("length") == "1":
        response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:100])
    await anyio.sleep(0.05)
    await response.write(body[100:])
    await response.write_eof()
    return response


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serve([("GET", "/api/v1/projects/{pid}", split_body)]) as origin:
        yield f"{origin}/api/v1"


@pytest.mark.parametrize("length", ["1", "0"])
async def test_body_arriving_in_pieces_is_read_whole(base_url: str, length: str) -> None:
    """A body split across TCP segments is read to its end, with or without Content-Length."""
    spec = RequestSpec(method="GET", path="/projects/prj_split", params={"length": length})
    async with BabouSession("sk-bab-test", base_url=base_url) as babou:
        raw, _ = await babou._rt.send(spec)
        project = await babou.get_project("prj_split")
    assert PROJECT == json.loads(raw.body)
    assert PROJECT["description"] == project.description


async def test_oversized_body_is_refused(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body beyond the API size cap is a DecodeError, not an unbounded buffer."""
    monkeypatch.setattr(_transport, "MAX_API_BODY", 150)
    async with BabouSession(
        "sk-bab-test", base_url=base_url, retry=RetryPolicy.disabled()
    ) as babou:
        with pytest.raises(DecodeError, match="larger than 150 bytes") as info:
            await babou.get_project("prj_split")
    assert info.value.status == 200
    assert info.value.body_excerpt.startswith(b'{"id": "prj_split"')
