"""BabouSession against FakeBabou over real loopback sockets: endpoints, errors, retries."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from babou_async import (
    AdaptiveBudget,
    APIError,
    AssetState,
    AuthenticationError,
    BabouSession,
    ChapterStatus,
    ConfigurationError,
    ConflictError,
    DecodeError,
    NotFoundError,
    PayloadTooLargeError,
    PollPolicy,
    RateLimit,
    RateLimitError,
    RequestPriority,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)
from babou_async.testing import Clock, FakeBabou

from ..support import FAST_RETRY

pytestmark = pytest.mark.anyio


class Sleeps:
    """A recording replacement for the session's sleep: records delays, waits ~nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def sleeps() -> Sleeps:
    """The recording sleep of the ``quick`` session."""
    return Sleeps()


@pytest.fixture
async def quick(fake: FakeBabou, sleeps: Sleeps) -> AsyncIterator[BabouSession]:
    """
    A session on the fake whose sleeps are recorded, not slept (through its Clock).

    Without a request budget, so that the sleeps recorded are the retries' alone.
    """
    async with BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        retry=FAST_RETRY,
        poll=PollPolicy.fast(),
        rate_limit=RateLimit.unlimited(),
        clock=Clock(sleep=sleeps),
    ) as session:
        yield session


async def one_chunk() -> AsyncIterator[bytes]:
    yield b"x"


def api_requests(fake: FakeBabou, method: str | None = None) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.find_requests(origin="api", method=method)]


# -- configuration ------------------------------------------------------------------------


async def test_missing_key_is_a_configuration_error_naming_the_variable() -> None:
    """No key anywhere: a ConfigurationError at construction that names BABOU_API_KEY."""
    with pytest.raises(ConfigurationError, match="BABOU_API_KEY"):
        BabouSession()


async def test_key_and_base_url_come_from_the_environment(
    fake: FakeBabou, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BABOU_API_KEY and BABOU_BASE_URL are the defaults."""
    monkeypatch.setenv("BABOU_API_KEY", fake.api_key)
    monkeypatch.setenv("BABOU_BASE_URL", fake.base_url + "/")
    async with BabouSession() as babou:
        assert fake.base_url == babou.base_url
        project = await babou.create_project("From env")
    assert project.name == "From env"


def test_default_base_url_is_babou() -> None:
    """Without BABOU_BASE_URL the documented production URL is used."""
    assert BabouSession("sk-bab-x").base_url == "https://api.babou.ai/api/v1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "ftp://example.com"}, "http"),
        ({"base_url": "https://api.example.com/v1?x=1"}, "query"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, object], match: str) -> None:
    """Malformed options fail when the session is built."""
    with pytest.raises(ConfigurationError, match=match):
        BabouSession("sk-bab-x", **kwargs)  # type: ignore[arg-type]


def test_key_with_whitespace_is_rejected() -> None:
    """A key with inner whitespace cannot be a valid header value."""
    with pytest.raises(ConfigurationError, match="whitespace"):
        BabouSession("sk-bab-a b")


def test_timeouts_object_is_kept() -> None:
    """A Timeouts value is used as given; a number sets the total."""
    t = Timeouts(connect=1, read=2, total=3)
    assert BabouSession("sk-bab-x", timeout=t).timeouts is t
    assert BabouSession("sk-bab-x", timeout=dt.timedelta(seconds=5)).timeouts.total == 5.0


async def test_key_never_in_repr_logs_or_errors(
    fake: FakeBabou, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key appears in no repr, log record or exception text, even when echoed."""
    caplog.set_level(logging.DEBUG)
    key = fake.api_key
    fake.inject(
        "GET",
        "/projects/prj_echo",
        status=401,
        json={"error": f"bad key {key}", "code": "UNAUTHORIZED", "hint": f"key was {key}"},
    )
    fake.inject("GET", "/projects/prj_retry", status=503, times=1)
    async with BabouSession(key, base_url=fake.base_url, retry=FAST_RETRY) as babou:
        assert key not in repr(babou)
        assert key not in str(babou)
        with pytest.raises(AuthenticationError) as info:
            await babou.get_project("prj_echo")
        with pytest.raises(NotFoundError):
            await babou.get_project("prj_retry")
    texts = [str(info.value), repr(info.value), info.value.message, str(info.value.hint)]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    assert all(key not in text for text in texts)
    assert "[REDACTED]" in str(info.value)


# -- projects, chapters, prompts --------------------------------------------------------------


async def test_project_round_trip(babou: BabouSession) -> None:
    """create_project then get_project return the same, typed project."""
    created = await babou.create_project("Launch video", description="d", settings={"a": 1})
    fetched = await babou.get_project(created.id)
    assert created == fetched
    assert created.id.startswith("prj_")
    assert created.created_at is not None
    assert created.created_at.tzinfo is not None
    assert created.description == "d"


@pytest.mark.parametrize("shape", ["envelope", "bare"])
async def test_list_projects_pages_through_both_shapes(
    fake: FakeBabou, babou: BabouSession, shape: str
) -> None:
    """list_projects copes with a paginated envelope and with a bare list."""
    fake.list_projects_shape = shape  # type: ignore[assignment]
    ids = [fake.seed_project(f"P{i}") for i in range(7)]
    pager = babou.list_projects(page_size=3)
    listed = [p.id async for p in pager]
    assert sorted(ids) == sorted(listed)
    # A bare list carries no limit or total: a short page may be a server-side cap, so only
    # an empty page ends it (one more request).
    assert pager.pages_fetched == (3 if shape == "envelope" else 4)
    assert sorted(ids) == sorted(p.id for p in await babou.list_projects())


async def test_chapters_and_prompts(babou: BabouSession) -> None:
    """Chapters are listed in order; a prompt makes its chapter processing, then ready."""
    project = await babou.create_project("Chapters")
    first = await babou.create_chapter(project.id, "One", duration=4)
    second = await babou.create_chapter(project.id, "Two")
    assert first.duration == 4
    assert first.status is None
    submitted = await babou.submit_prompt(project.id, first.id, "A sunrise over hills")
    assert submitted.prompt_id.startswith("int_")
    assert submitted.estimated_seconds is not None
    with pytest.raises(ConflictError) as conflict:
        await babou.submit_prompt(project.id, first.id, "Again")
    assert conflict.value.code == "CONFLICT"
    assert conflict.value.hint
    forced = await babou.submit_prompt(project.id, first.id, "Forced", force=True)
    chapter = await babou.wait_for_chapter(
        project.id, first.id, timeout=5, estimate=forced.estimated_seconds
    )
    assert chapter.status is ChapterStatus.READY
    assert chapter.prompts[-1].is_done
    assert chapter.prompts[-1].content == "Forced"
    listed = await babou.list_chapters(project.id)
    assert [first.id, second.id] == [c.id for c in listed]
    assert listed[0].prompt_count is not None


async def test_wait_for_chapter_times_out(fake: FakeBabou, babou: BabouSession) -> None:
    """A chapter still processing at the deadline raises WaitTimeoutError with its status."""
    fake.prompt_seconds = 30
    project = await babou.create_project("Slow")
    chapter = await babou.create_chapter(project.id, "Slow")
    await babou.submit_prompt(project.id, chapter.id, "Takes ages")
    with pytest.raises(WaitTimeoutError) as info:
        await babou.wait_for_chapter(project.id, chapter.id, timeout=0.3)
    assert info.value.resource_id == chapter.id
    assert info.value.last_status == "processing"
    assert isinstance(info.value, TimeoutError)


# -- assets ---------------------------------------------------------------------------------


async def test_upload_from_path_bytes_and_stream(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Uploads from a path (type guessed), bytes and an async iterator all arrive intact."""
    payload = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "clip.MP4"
    await anyio.Path(path).write_bytes(payload)
    from_path = await babou.upload_asset(path)
    assert from_path.content_type == "video/mp4"
    assert fake.asset_size(from_path.id) == len(payload)

    from_bytes = await babou.upload_asset(b"GIF89a....", content_type="image/gif")
    assert fake.asset_size(from_bytes.id) == 10

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(4):
            yield payload[i * 1000 : (i + 1) * 1000]

    streamed = await babou.upload_asset(chunks(), content_type="audio/mpeg")
    assert fake.asset_size(streamed.id) == 4000
    ready = await babou.wait_for_asset(streamed.id, timeout=5)
    assert ready.state is AssetState.READY
    assert ready.url


async def test_upload_validation_sends_nothing(
    babou: BabouSession, fake: FakeBabou, tmp_path: Path
) -> None:
    """Unknown types, unsupported types, oversize files and directories never reach the wire."""
    odd = tmp_path / "notes.txt"
    await anyio.Path(odd).write_text("hello")
    big = tmp_path / "big.mp4"
    async with await anyio.open_file(big, "wb") as f:
        await f.truncate(100 * 1000 * 1000 + 1)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: babou.upload_asset(odd),
        lambda: babou.upload_asset(odd, content_type="text/plain"),
        lambda: babou.upload_asset(big),
        lambda: babou.upload_asset(tmp_path, content_type="video/mp4"),
        lambda: babou.upload_asset(tmp_path / "missing.mp4"),
        lambda: babou.upload_asset(b"x"),
        lambda: babou.upload_asset(one_chunk(), content_type="video/mp4", size=10**9),
        lambda: babou.upload_asset(12, content_type="video/mp4"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            await call()
    assert [] == api_requests(fake, "POST")


async def test_streamed_upload_is_cut_at_the_limit(babou: BabouSession) -> None:
    """An async iterator that exceeds 100 MB is aborted client-side."""

    async def endless() -> AsyncIterator[bytes]:
        block = b"\0" * (8 * 1024 * 1024)
        for _ in range(20):
            yield block

    with pytest.raises((ValidationError, TransportError)):
        await babou.upload_asset(endless(), content_type="video/mp4")


async def test_server_rejects_too_large(fake: FakeBabou, babou: BabouSession) -> None:
    """A 413 FILE_TOO_LARGE from the server is a PayloadTooLargeError."""
    fake.max_upload_bytes = 10
    with pytest.raises(PayloadTooLargeError) as info:
        await babou.upload_asset(b"x" * 11, content_type="image/png")
    assert info.value.code == "FILE_TOO_LARGE"


async def test_list_assets_pages_and_filters(fake: FakeBabou, babou: BabouSession) -> None:
    """list_assets follows limit/offset and passes contentType and state filters."""
    for i in range(5):
        await babou.upload_asset(b"p" * (i + 1), content_type="image/png")
    await babou.upload_asset(b"v", content_type="video/mp4")
    pager = babou.list_assets(content_type="image/png", page_size=2)
    pngs = await pager
    assert len(pngs) == 5
    assert {"image/png"} == {a.content_type for a in pngs}
    assert pager.pages_fetched == 3
    queries = [r.query for r in fake.find_requests(method="GET", path="/api/v1/assets")]
    assert {"contentType": "image/png", "limit": "2", "offset": "4"} in queries
    await anyio.sleep(0.1)
    ready = await babou.list_assets(state="ready")
    assert len(ready) == 6
    with pytest.raises(ValidationError):
        babou.list_assets(page_size=101)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "VALIDATION_ERROR", ValidationError),
        (401, "API_KEY_EXPIRED", AuthenticationError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "CONFLICT", ConflictError),
        (413, "FILE_TOO_LARGE", PayloadTooLargeError),
        (418, "TEAPOT", APIError),
        (422, "VALIDATION_ERROR", ValidationError),
    ],
)
async def test_error_statuses_map_to_classes(
    fake: FakeBabou, babou: BabouSession, status: int, code: str, cls: type[APIError]
) -> None:
    """Each documented status (and a known code on an unknown status) has its class."""
    fake.inject(
        "GET",
        "/projects/prj_err",
        status=status,
        json={"error": "boom", "code": code, "hint": "try again"},
        headers={"X-Request-Id": "req-1"},
    )
    with pytest.raises(cls) as info:
        await babou.get_project("prj_err")
    err = info.value
    assert type(err) is cls
    assert (status, code, "boom", "try again", "req-1") == (
        err.status,
        err.code,
        err.message,
        err.hint,
        err.request_id,
    )
    assert err.path == "/projects/prj_err"


async def test_nested_envelope_is_understood(fake: FakeBabou, babou: BabouSession) -> None:
    """A nested error envelope {error: {code, message}} is read too."""
    fake.inject(
        "GET",
        "/projects/prj_nested",
        status=404,
        json={"error": {"code": "NOT_FOUND", "message": "gone"}},
    )
    with pytest.raises(NotFoundError) as info:
        await babou.get_project("prj_nested")
    assert ("NOT_FOUND", "gone") == (info.value.code, info.value.message)


async def test_real_auth_errors(fake: FakeBabou) -> None:
    """Wrong, malformed and expired keys give AuthenticationError with the documented codes."""
    codes = []
    for key in ("sk-bab-wrong", "not-a-babou-key"):
        async with BabouSession(key, base_url=fake.base_url) as babou:
            with pytest.raises(AuthenticationError) as info:
                await babou.get_project("prj_x")
            codes.append(info.value.code)
    expired = fake.add_key()
    fake.expire_key(expired)
    async with BabouSession(expired, base_url=fake.base_url) as babou:
        with pytest.raises(AuthenticationError) as info:
            await babou.create_project("x")
        codes.append(info.value.code)
    assert ["UNAUTHORIZED", "INVALID_API_KEY_FORMAT", "API_KEY_EXPIRED"] == codes


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>oops</html>", "text/html"),
        (b'{"id": 123, "name": "x"}', "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
async def test_undecodable_success_is_decode_error(
    fake: FakeBabou, babou: BabouSession, body: bytes, content_type: str
) -> None:
    """A 200 that is not JSON, or JSON of the wrong shape, raises DecodeError with context."""
    fake.inject(
        "GET", "/projects/prj_bad", status=200, body=body, headers={"Content-Type": content_type}
    )
    with pytest.raises(DecodeError) as info:
        await babou.get_project("prj_bad")
    assert info.value.status == 200
    assert info.value.content_type is not None
    assert content_type in info.value.content_type
    assert body[:200] == info.value.body_excerpt


async def test_redirects_are_not_followed(fake: FakeBabou, babou: BabouSession) -> None:
    """A redirect from the API is an error, so the key never follows it to another host."""
    fake.inject(
        "GET",
        "/projects/prj_moved",
        status=302,
        body=b"",
        headers={"Location": fake.asset_base_url + "/elsewhere"},
    )
    with pytest.raises(APIError, match="redirect"):
        await babou.get_project("prj_moved")
    assert [] == fake.find_requests(origin="asset")


async def test_client_side_validation_sends_nothing(fake: FakeBabou, babou: BabouSession) -> None:
    """Every documented limit is checked before any request."""
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: babou.create_project(""),
        lambda: babou.create_project("x" * 31),
        lambda: babou.create_project("ok", description="d" * 1001),
        lambda: babou.create_project("ok", settings=["not", "a", "dict"]),  # type: ignore[arg-type]
        lambda: babou.create_project("ok", settings={"x": object()}),
        lambda: babou.create_project(None),  # type: ignore[arg-type]
        lambda: babou.get_project("cht_wrong_prefix"),
        lambda: babou.get_project("prj_../../admin"),
        lambda: babou.get_project("prj_a/b"),
        lambda: babou.get_project(""),
        lambda: babou.create_chapter("prj_ok", "n", duration=0),
        lambda: babou.create_chapter("prj_ok", "n", duration=2.5),  # type: ignore[arg-type]
        lambda: babou.create_chapter("prj_ok", "n", duration=True),
        lambda: babou.submit_prompt("prj_ok", "cht_ok", ""),
        lambda: babou.submit_prompt("prj_ok", "cht_ok", "x" * 5001),
        lambda: babou.submit_prompt("prj_ok", "cht_ok", "x", force="yes"),  # type: ignore[arg-type]
        lambda: babou.get_asset("prj_wrong"),
        lambda: babou.start_export("prj_"),
        lambda: babou.get_export("prj_ x"),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as info:
            await call()
        assert info.value.status is None
    assert [] == api_requests(fake)


async def test_boundary_values_are_accepted(babou: BabouSession) -> None:
    """The documented maxima themselves pass validation and the server accepts them."""
    project = await babou.create_project("p" * 30, description="d" * 1000)
    chapter = await babou.create_chapter(project.id, "c" * 30, duration=1)
    submitted = await babou.submit_prompt(project.id, chapter.id, "x" * 5000)
    assert (30, 1000, 30) == (len(project.name), len(project.description or ""), len(chapter.name))
    assert submitted.prompt_id.startswith("int_")


# -- retries ------------------------------------------------------------------------------


async def test_get_retries_429_honouring_retry_after_seconds(
    fake: FakeBabou, quick: BabouSession, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with Retry-After in seconds is waited out, then the GET succeeds; it is logged."""
    pid = fake.seed_project()
    fake.inject("GET", f"/projects/{pid}", status=429, headers={"Retry-After": "7"}, times=2)
    with caplog.at_level(logging.INFO, logger="babou_async"):
        project = await quick.get_project(pid)
    assert project.id == pid
    assert [7.0, 7.0] == sleeps.delays
    assert len(fake.find_requests(method="GET", path=f"/api/v1/projects/{pid}")) == 3
    record = next(r for r in caplog.records if r.name == "babou_async.http")
    assert (record.babou_method, record.babou_path, record.babou_attempt) == (  # type: ignore[attr-defined]
        "GET",
        f"/projects/{pid}",
        1,
    )
    assert "429" in record.getMessage()


async def test_retry_after_http_date_is_honoured(
    fake: FakeBabou, quick: BabouSession, sleeps: Sleeps
) -> None:
    """Retry-After as an HTTP-date becomes a delay relative to now."""
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20)
    fake.inject(
        "GET",
        "/projects/prj_date",
        status=429,
        headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)},
    )
    fake.inject(
        "GET", "/projects/prj_date", status=404, json={"error": "nope", "code": "NOT_FOUND"}
    )
    with pytest.raises(NotFoundError):
        await quick.get_project("prj_date")
    assert len(sleeps.delays) == 1
    assert 17 < sleeps.delays[0] <= 20


async def test_too_long_retry_after_raises_at_once(
    fake: FakeBabou, quick: BabouSession, sleeps: Sleeps
) -> None:
    """A Retry-After beyond max_retry_after raises RateLimitError instead of sleeping."""
    fake.inject("GET", "/projects/prj_rl", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError) as info:
        await quick.get_project("prj_rl")
    assert info.value.retry_after == 3600
    assert [] == sleeps.delays


async def test_get_retries_5xx_and_drops_then_gives_up(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """GETs retry 5xx and dropped connections; after the last attempt the error surfaces."""
    pid = fake.seed_project()
    fake.inject("GET", f"/projects/{pid}", status=502, body=b"<html>bad gateway</html>")
    fake.inject("GET", f"/projects/{pid}", status=0, drop=True)
    assert (await babou.get_project(pid)).id == pid
    fake.inject("GET", f"/projects/{pid}", status=500, times=None)
    with pytest.raises(ServerError) as info:
        await babou.get_project(pid)
    assert info.value.status == 500
    assert len(fake.find_requests(method="GET", path=f"/api/v1/projects/{pid}")) == 3 + 4


async def test_creates_retry_429_but_not_ambiguous_failures(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A refused create (429) is resent; a create that may have reached the server is not."""
    fake.inject("POST", "/projects", status=429, headers={"Retry-After": "0"})
    assert (await babou.create_project("After 429")).name == "After 429"
    fake.inject("POST", "/projects", status=500)
    with pytest.raises(ServerError):
        await babou.create_project("After 500")
    fake.inject("POST", "/projects", status=0, drop=True)
    with pytest.raises(TransportError):
        await babou.create_project("After drop")
    assert len(api_requests(fake, "POST")) == 4


async def test_connection_refused_is_retried_even_for_creates() -> None:
    """Nothing listening: the failure provably precedes sending, so creates retry too."""
    sleeps = Sleeps()
    async with BabouSession(
        "sk-bab-x",
        base_url="http://127.0.0.1:9/api/v1",
        retry=FAST_RETRY,
        clock=Clock(sleep=sleeps),
    ) as babou:
        with pytest.raises(TransportError) as info:
            await babou.create_project("Nobody home")
    assert len(sleeps.delays) == 3
    assert "127.0.0.1:9" in str(info.value)


async def test_request_timeout_is_a_timeout_error(fake: FakeBabou) -> None:
    """A server slower than the total timeout gives RequestTimeoutError, a TimeoutError."""
    fake.inject("GET", "/projects/prj_slow", status=200, json={}, delay=2, times=None)
    async with BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        timeout=0.2,
        retry=RetryPolicy(attempts=2, base_delay=0.001),
    ) as babou:
        with pytest.raises(RequestTimeoutError) as info:
            await babou.get_project("prj_slow")
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, TransportError)


async def test_rate_budget_backs_off_after_429(fake: FakeBabou, babou: BabouSession) -> None:
    """A lone 429 is noise; a run of them is congestion: the shared rate is cut, and paced."""
    pid = fake.seed_project()
    for _ in range(20):
        await babou.get_project(pid)
    budget = babou._rt.budget
    assert isinstance(budget, AdaptiveBudget)
    state = budget.state
    assert state is not None
    fake.inject("GET", f"/projects/{pid}", status=429, headers={"Retry-After": "0"})
    await babou.get_project(pid)
    assert (1, 0) == (state.throttled, state.cuts)
    fake.inject("GET", f"/projects/{pid}", status=429, headers={"Retry-After": "0"}, times=3)
    await babou.get_project(pid)
    assert state.cuts >= 1
    assert state.rate < float("inf")


async def test_unlimited_budget_never_engages(fake: FakeBabou) -> None:
    """RateLimit.unlimited() keeps no state and never delays."""
    async with BabouSession(
        fake.api_key, base_url=fake.base_url, rate_limit=RateLimit.unlimited()
    ) as babou:
        fake.inject("GET", "/projects/prj_x", status=429, headers={"Retry-After": "0"})
        fake.inject("GET", "/projects/prj_x", status=404)
        with pytest.raises(NotFoundError):
            await babou.get_project("prj_x")
        budget = babou._rt.budget
        assert isinstance(budget, AdaptiveBudget)
        assert budget.state is None


async def test_a_budget_subclass_that_overrides_its_hooks_is_awaited(fake: FakeBabou) -> None:
    """The in-process budgets are called without awaiting, unless a subclass changed them."""
    seen: list[tuple[str, object]] = []

    class Watched(AdaptiveBudget):
        async def acquire(self, priority: RequestPriority = RequestPriority.PROGRESS) -> None:
            seen.append(("acquire", priority))
            await super().acquire(priority)

        async def on_response(self, status: int, retry_after: float | None) -> None:
            seen.append(("answer", status))
            await super().on_response(status, retry_after)

    pid = fake.seed_project()
    async with BabouSession(fake.api_key, base_url=fake.base_url, rate_limit=Watched()) as babou:
        await babou.get_project(pid)
    assert seen == [("acquire", RequestPriority.PROGRESS), ("answer", 200)]


# -- HTTP sessions ---------------------------------------------------------------------------


async def test_injected_http_session_is_used_and_left_open(fake: FakeBabou) -> None:
    """A caller's aiohttp session is used as is and not closed by the BabouSession."""
    async with aiohttp.ClientSession() as http:
        async with BabouSession(fake.api_key, base_url=fake.base_url, http_session=http) as babou:
            await babou.create_project("Shared")
        assert not http.closed
        async with http.get(fake.base_url + "/projects") as resp:
            assert resp.status == 401


async def test_owned_session_is_closed_and_unusable_after(fake: FakeBabou) -> None:
    """aclose() closes the session we created; later calls fail clearly."""
    babou = BabouSession(fake.api_key, base_url=fake.base_url)
    await babou.create_project("Owned")
    http = babou._rt.transport._session
    assert http is not None
    await babou.aclose()
    await babou.aclose()
    assert http.closed
    with pytest.raises(ConfigurationError, match="closed"):
        await babou.get_project("prj_x")


async def test_closed_injected_session_is_reported(fake: FakeBabou) -> None:
    """Using a BabouSession whose injected aiohttp session was closed is a clear error."""
    http = aiohttp.ClientSession()
    await http.close()
    babou = BabouSession(fake.api_key, base_url=fake.base_url, http_session=http)
    with pytest.raises(ConfigurationError, match="closed"):
        await babou.get_project("prj_x")


async def test_thousand_concurrent_calls_share_one_session(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """One session serves many concurrent tasks over a bounded pool."""
    pid = fake.seed_project()
    results: list[str] = []

    async def one() -> None:
        results.append((await babou.get_project(pid)).id)

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(one)
    assert [pid] * 300 == results
