"""
Proxies: HTTP(S)_PROXY / NO_PROXY by default, ``proxy=`` to override, for the API and downloads.

Every test runs FakeBabou (API and asset host, both on loopback) behind a small forwarding
HTTP proxy on 127.0.0.1 that counts what it forwards.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest
import yarl
from aiohttp import web

from babou_async import BabouSession, ConfigurationError, TransportError
from babou_async._proxy import Proxy, ProxyRoutes, check_proxy
from babou_async.testing import FakeBabou

from ..support import FAST_POLL, fast_retry

pytestmark = pytest.mark.anyio

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "request_method")


class ForwardingProxy:
    """A plain-HTTP forward proxy on loopback that records each request it forwards."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str, dict[str, str]]] = []  # method, URL, headers
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._client = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def urls(self) -> list[str]:
        """The URLs forwarded, in order."""
        return [url for _, url, _ in self.forwarded]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        if not target.startswith("http://"):  # origin-form: not a proxy request
            return web.Response(status=400, text="not a proxy request")
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        self.forwarded.append((request.method, target, dict(request.headers)))
        body = await request.read()
        async with self._client.request(
            request.method,
            yarl.URL(target, encoded=True),
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            response = web.StreamResponse(status=upstream.status, headers=kept)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without proxy variables, in either case."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardingProxy]:
    """A running forwarding proxy."""
    running = ForwardingProxy()
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_on(fake: FakeBabou, **options: object) -> BabouSession:
    """A fast session on ``fake`` with ``options``."""
    return BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        retry=fast_retry(),
        poll=FAST_POLL,
        **options,  # type: ignore[arg-type]
    )


async def export_and_download(babou: BabouSession, fake: FakeBabou, dest: Path) -> str:
    """Export a seeded project and download it; return its ID (the video is checked)."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    await babou.wait_for_export(pid, timeout=30)
    result = await babou.download_export(pid, dest)
    assert result.path is not None
    assert fake.video_bytes(pid) == await anyio.Path(result.path).read_bytes()
    return pid


async def test_http_proxy_variable_carries_api_calls_and_downloads(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With HTTP_PROXY set, every API call and every download request goes through it."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with session_on(fake) as babou:
        await export_and_download(babou, fake, tmp_path)
    urls = proxy.urls()
    assert any(url.startswith(fake.base_url + "/projects/") for url in urls)
    assert any(url.startswith(fake.asset_base_url) for url in urls)
    assert len(fake.requests) == len(proxy.forwarded)  # nothing went direct


async def test_key_goes_to_the_proxy_only_in_api_requests(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """
    Plain-HTTP API requests are forwarded with their Authorization (as HTTP proxies work).

    Download requests carry no key, and no request carries a Proxy-Authorization made of it.
    """
    monkeypatch.setenv("http_proxy", proxy.url)
    async with session_on(fake) as babou:
        await export_and_download(babou, fake, tmp_path)
    for _, url, headers in proxy.forwarded:
        lowered = {name.lower(): value for name, value in headers.items()}
        assert "proxy-authorization" not in lowered
        if url.startswith(fake.asset_base_url):
            assert "authorization" not in lowered
            assert fake.api_key not in url
        else:
            assert f"Bearer {fake.api_key}" == lowered["authorization"]


async def test_no_proxy_sends_loopback_direct(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """NO_PROXY=127.0.0.1 exempts the simulator: nothing reaches the proxy."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    async with session_on(fake) as babou:
        await export_and_download(babou, fake, tmp_path)
    assert [] == proxy.forwarded


async def test_https_proxy_variable_is_not_used_for_http_urls(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY is for https:// URLs: the plain-http simulator is reached directly."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with session_on(fake) as babou:
        assert [] == await babou.list_projects()
    assert [] == proxy.forwarded


async def test_proxy_argument_overrides_the_environment(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """proxy= wins over HTTP_PROXY (and ignores NO_PROXY), for downloads too."""
    other = ForwardingProxy()
    await other.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", other.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with session_on(fake, proxy=proxy.url) as babou:
            await export_and_download(babou, fake, tmp_path)
    finally:
        await other.close()
    assert [] == other.forwarded
    assert any(url.startswith(fake.asset_base_url) for url in proxy.urls())
    assert len(fake.requests) == len(proxy.forwarded)


@pytest.mark.parametrize("none", [False, ""])
async def test_proxy_false_ignores_the_environment(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, none: object
) -> None:
    """proxy=False (or "") goes direct whatever HTTP_PROXY says."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with session_on(fake, proxy=none) as babou:
        assert [] == await babou.list_projects()
    assert [] == proxy.forwarded


async def test_proxy_credentials_come_from_its_url_only(
    fake: FakeBabou, proxy: ForwardingProxy
) -> None:
    """user:password in the proxy URL become Proxy-Authorization; nothing else does."""
    port = yarl.URL(proxy.url).port
    async with session_on(fake, proxy=f"http://agent:p%40ss@127.0.0.1:{port}") as babou:
        await babou.list_projects()
    expected = "Basic " + base64.b64encode(b"agent:p@ss").decode()
    assert [expected] == [headers["Proxy-Authorization"] for _, _, headers in proxy.forwarded]
    assert all(r.header("proxy-authorization") is None for r in fake.requests)


async def test_an_unreachable_proxy_is_a_transport_error_without_its_password(
    fake: FakeBabou, closed_port: int
) -> None:
    """A proxy that refuses connections fails the call with a TransportError, password hidden."""
    babou = session_on(fake, proxy=f"http://agent:hunter2@127.0.0.1:{closed_port}")
    async with babou:
        with pytest.raises(TransportError) as caught:
            await babou.list_projects()
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(babou)
    assert [] == fake.requests


async def test_https_goes_through_a_connect_tunnel_that_never_sees_the_key() -> None:
    """
    An https:// API through a proxy: the proxy gets a CONNECT (with its own credentials).

    The key travels only inside the tunnel; this proxy refuses it, so nothing else is sent.
    """
    received: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = "sk-bab-" + "k" * 32
    try:
        async with BabouSession(
            key,
            base_url="https://api.babou.example/api/v1",
            proxy=f"http://agent:hunter2@127.0.0.1:{port}",
            retry=fast_retry(1),
        ) as babou:
            with pytest.raises(TransportError):
                await babou.list_projects()
    finally:
        server.close()
        await server.wait_closed()
    [head] = received
    assert head.startswith(b"CONNECT api.babou.example:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"agent:hunter2") in head
    assert key.encode() not in head
    assert b"authorization: bearer" not in head.lower()


async def test_an_injected_http_session_uses_an_explicit_proxy(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With http_session, proxy= still applies; the environment is that session's business."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with aiohttp.ClientSession() as http:
        async with session_on(fake, http_session=http) as babou:
            await babou.list_projects()
        assert [] == proxy.forwarded  # trust_env=False (aiohttp's default): not read
        async with session_on(fake, http_session=http, proxy=proxy.url) as babou:
            await babou.list_projects()
    assert 1 == len(proxy.forwarded)


async def test_a_proxy_variable_without_scheme_means_http(
    fake: FakeBabou, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY=host:port (no scheme), as curl and httpx accept it."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removeprefix("http://"))
    async with session_on(fake) as babou:
        await babou.list_projects()
    assert 1 == len(proxy.forwarded)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (8080, "must be a proxy URL"),
        (True, "must be a proxy URL"),
        ("socks5://127.0.0.1:1080", "scheme 'socks5'"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "malformed"),
        ("http://127.0.0.1:3128/path", "host[:port] only"),
        ("http://127.0.0.1:3128?x=1", "host[:port] only"),
        ("http://proxy .example:3128", "whitespace"),
    ],
)
def test_bad_proxy_arguments_are_refused_at_construction(value: object, words: str) -> None:
    """A bad proxy= is a ConfigurationError naming the argument, before anything is sent."""
    with pytest.raises(ConfigurationError, match="proxy") as caught:
        BabouSession("sk-bab-" + "k" * 32, proxy=value)  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_a_bad_proxy_variable_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy environment variable that cannot be used is named in the error."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY"):
        BabouSession("sk-bab-" + "k" * 32)


def test_routes_pick_the_variable_of_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """http:// URLs take HTTP_PROXY, https:// ones HTTPS_PROXY; NO_PROXY matches suffixes."""
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    routes = ProxyRoutes(None)
    assert routes.active
    assert Proxy(url="http://plain.example:3128") == routes.for_url("http://api.example/v1")
    assert Proxy(url="http://tls.example:3128") == routes.for_url("https://api.example/v1")
    assert routes.for_url("https://cdn.internal.example/video.mp4") is None
    assert routes.for_url("https://u:p@cdn.internal.example:8443/v") is None


def test_no_proxy_star_and_no_variables_mean_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY=* exempts every host; no variable at all means no proxy."""
    assert not ProxyRoutes(None).active
    assert ProxyRoutes(None).for_url("https://api.babou.ai/api/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.example:3128")
    monkeypatch.setenv("NO_PROXY", "*")
    assert ProxyRoutes(None).for_url("https://api.babou.ai/api/v1") is None


def test_routes_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are cached per origin, and the cache does not grow without bound."""
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:3128")
    routes = ProxyRoutes(None)
    for index in range(600):
        assert routes.for_origin("http", f"host{index}.example") is not None
    assert len(routes._cache) <= 256
    assert routes.for_origin("http", "host599.example") is routes.for_origin(
        "http", "host599.example"
    )


def test_a_proxy_repr_hides_its_credentials() -> None:
    """The Proxy-Authorization header is never in a repr; the URL keeps no userinfo."""
    proxy = check_proxy("https://agent:hunter2@proxy.example:8443/")
    assert "https://proxy.example:8443" == proxy.url
    assert "hunter2" not in repr(proxy)
    assert proxy.headers is not None
    assert "aHVudGVyMg" not in repr(proxy)
