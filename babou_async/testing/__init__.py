"""
Test kit: a local, scriptable simulator of Babou's API and its download origin.

:class:`~babou_async.testing.FakeBabou` serves every documented endpoint under ``/api/v1`` on a
loopback port, plus a separate origin serving finished exports through signed,
expiring URLs (with ``Range`` support), so an application using Babou can be
tested end to end without the network.
Jobs complete after configurable, short durations; :class:`~babou_async.testing.Faults` and
:meth:`~babou_async.testing.FakeBabou.inject` add rate limits, server errors, dropped connections,
failed exports and cut downloads, deterministically for a given seed.

Example::

    import aiohttp
    from babou_async.testing import FakeBabou, Faults

    async def test_export_download() -> None:
        async with FakeBabou(seed=1, video_size=4096) as fake:
            project_id = fake.seed_project(chapters=2)
            headers = {"Authorization": f"Bearer {fake.api_key}"}
            async with aiohttp.ClientSession(headers=headers) as session:
                url = f"{fake.base_url}/projects/{project_id}/export"
                async with session.post(url) as response:
                    assert (await response.json())["status"] == "queued"
                fake.finish_export(project_id)
                async with session.get(url) as response:
                    download_url = (await response.json())["download_url"]
                async with session.get(download_url) as response:
                    assert await response.read() == fake.video_bytes(project_id)
            assert [r.status for r in fake.requests] == [200, 200, 200]

Run ``python -m babou_async.testing --port 8080`` for a standalone simulator
that prints ``BABOU_BASE_URL=...`` and ``BABOU_API_KEY=...`` lines.
"""

from __future__ import annotations

from babou_async._clock import Clock as Clock

from ._cli import main as main
from ._cli import serve_forever as serve_forever
from ._fake import FakeBabou as FakeBabou
from ._faults import Faults as Faults
from ._faults import Injection as Injection
from ._records import RecordedRequest as RecordedRequest

__all__ = [
    "Clock",
    "FakeBabou",
    "Faults",
    "Injection",
    "RecordedRequest",
    "main",
    "serve_forever",
]
