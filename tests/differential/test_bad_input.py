"""
Careless callers: every bad argument of every public entry point is refused before a request.

The table is generated: for each public method of :class:`~babou_async.BabouSession` and each
of its arguments, a family of bad values of the argument's kind (wrong types, unhashable
values, empty and oversized strings, path and control characters, out-of-range numbers), the
other arguments left valid. Each case asserts the error class, that the message names the
argument (or the problem), and that the simulator saw no request at all. The constructor gets
the same treatment (``ConfigurationError``, nothing to send to).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs
import pytest

from babou_async import (
    BabouSession,
    ConfigurationError,
    PollPolicy,
    RateLimit,
    RetryPolicy,
    Timeouts,
    ValidationError,
)
from babou_async.testing import FakeBabou

KEY = "sk-bab-BadInputSECRETkey0123456789"

# --------------------------------------------------------------------------------------
# Bad values by kind of argument
# --------------------------------------------------------------------------------------

NOT_STRINGS: list[object] = [None, 123, 1.5, True, b"prj_abc", ["prj_abc"], [["prj_abc"]]]
NOT_STRINGS += [{"id": "prj_abc"}, {"prj_abc"}, object()]


def bad_ids(prefix: str) -> list[object]:
    """Values no ``<prefix>...`` ID parameter may accept."""
    other = "cht_abc" if prefix != "cht_" else "prj_abc"
    return [
        *NOT_STRINGS,
        "",
        prefix,
        other,
        prefix.upper() + "abc",
        f"{prefix}a/b",
        f"{prefix}a?x=1",
        f"{prefix}a#f",
        f"{prefix}a b",
        f"{prefix}a\r\nX-Injected: 1",
        f"{prefix}../../x",
        f"{prefix}a%2Fb",
        f"{prefix}é",
        " " + prefix + "abc",
        prefix + "a" * 300,
        KEY,
    ]


def bad_texts(high: int, *, optional: bool = False) -> list[object]:
    """Values a text parameter of 1 to ``high`` characters may not take."""
    values: list[object] = [v for v in NOT_STRINGS if not (optional and v is None)]
    return [*values, "x" * (high + 1), "x" * (high * 10)] + ([] if optional else [""])


BAD_BOOLS: list[object] = [None, 0, 1, "yes", "true", "", [], 1.0]
BAD_POSITIVE: list[object] = [0, -1, -(10**30), True, False, 1.5, "5", None, [], math.nan]
BAD_TIMEOUTS: list[object] = [0, -1, -0.5, math.nan, "soon", "10", None, [], True]
BAD_TIMEOUTS += [dt.timedelta(seconds=-1), dt.timedelta(0)]
BAD_POLLS: list[object] = [5, "fast", {}, RetryPolicy(), Timeouts()]
BAD_RETRIES: list[object] = [3, "twice", {}, PollPolicy(), Timeouts()]
BAD_CALLBACKS: list[object] = [5, "print", [], object()]
BAD_ESTIMATES: list[object] = [5, "2-5 minutes", (1,), (1, 2, 3), ("a", "b"), (-1, 5)]
BAD_ESTIMATES += [(math.nan, 1.0), [1, 2, 3]]
_A_MAPPING, _AN_OBJECT = {"prj_abc": 1}, object()
BAD_ID_LISTS: list[object] = [None, 123, "prj_abc", b"prj_abc", _A_MAPPING, _AN_OBJECT]
BAD_ID_LISTS += [[["prj_abc"]], [{"a": 1}], ["bad"], [None], ["prj_abc", 5], [""]]
BAD_CONTENT_TYPES: list[object] = [123, ["image/png"], "text/plain", "", "video/", "image/bmp"]
BAD_PATHS: list[object] = [None, 123, 1.5, [], {}, b"\x00"]

# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------

Call = Callable[[BabouSession, Path], object]


@attrs.frozen
class Case:
    """One bad call: the method, the bad argument and value, what must be raised."""

    method: str
    argument: str
    value: object
    call: Call
    error: type[Exception] = ValidationError
    mentions: str = ""  # a word the message must contain; the argument's name by default

    @property
    def id(self) -> str:
        """A stable test ID."""
        return f"{self.method}-{self.argument}-{shown(self.value)}"


def shown(value: object) -> str:
    """``value`` for a test ID: short, and the same on every run (no addresses)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))[:40]


#: For each method: (valid keyword arguments, how to call it with them).
Invoke = Callable[[BabouSession, Path, dict[str, Any]], object]


def _gen(items: AsyncIterable[object]) -> Awaitable[list[object]]:
    async def consume() -> list[object]:
        return [item async for item in items]

    return consume()


async def _opened(stream: AbstractAsyncContextManager[object]) -> None:
    async with stream:
        pass


METHODS: dict[str, tuple[dict[str, object], Invoke]] = {
    "create_project": ({"name": "Launch"}, lambda b, _, kw: b.create_project(**kw)),
    "list_projects": ({}, lambda b, _, kw: _gen(b.list_projects(**kw))),
    "get_project": ({"project_id": "prj_abc"}, lambda b, _, kw: b.get_project(**kw)),
    "create_chapter": (
        {"project_id": "prj_abc", "name": "Intro"},
        lambda b, _, kw: b.create_chapter(**kw),
    ),
    "list_chapters": ({"project_id": "prj_abc"}, lambda b, _, kw: b.list_chapters(**kw)),
    "get_chapter": (
        {"project_id": "prj_abc", "chapter_id": "cht_abc"},
        lambda b, _, kw: b.get_chapter(**kw),
    ),
    "submit_prompt": (
        {"project_id": "prj_abc", "chapter_id": "cht_abc", "content": "Hi"},
        lambda b, _, kw: b.submit_prompt(**kw),
    ),
    "wait_for_chapter": (
        {"project_id": "prj_abc", "chapter_id": "cht_abc"},
        lambda b, _, kw: b.wait_for_chapter(**kw),
    ),
    "upload_asset": (
        {"source": b"png", "content_type": "image/png"},
        lambda b, _, kw: b.upload_asset(**kw),
    ),
    "list_assets": ({}, lambda b, _, kw: _gen(b.list_assets(**kw))),
    "get_asset": ({"asset_id": "ast_abc"}, lambda b, _, kw: b.get_asset(**kw)),
    "wait_for_asset": ({"asset_id": "ast_abc"}, lambda b, _, kw: b.wait_for_asset(**kw)),
    "start_export": ({"project_id": "prj_abc"}, lambda b, _, kw: b.start_export(**kw)),
    "get_export": ({"project_id": "prj_abc"}, lambda b, _, kw: b.get_export(**kw)),
    "watch_export": ({"project_id": "prj_abc"}, lambda b, _, kw: _gen(b.watch_export(**kw))),
    "wait_for_export": ({"project_id": "prj_abc"}, lambda b, _, kw: b.wait_for_export(**kw)),
    "download_export": (
        {"project_id": "prj_abc"},
        lambda b, d, kw: b.download_export(**{"dest": d, **kw}),
    ),
    "iter_export_bytes": (
        {"project_id": "prj_abc"},
        lambda b, _, kw: _gen(b.iter_export_bytes(**kw)),
    ),
    "download_exports": (
        {"project_ids": ["prj_abc"]},
        lambda b, d, kw: b.download_exports(**{"dest_dir": d, **kw}),
    ),
    "export_many": (
        {"project_ids": ["prj_abc"]},
        lambda b, d, kw: b.export_many(**{"dest_dir": d, **kw}),
    ),
    "export_project": (
        {"project_id": "prj_abc"},
        lambda b, d, kw: b.export_project(**{"dest_dir": d, **kw}),
    ),
    "open_export": ({"project_id": "prj_abc"}, lambda b, _, kw: _opened(b.open_export(**kw))),
}

_PROJECT = bad_ids("prj_")
#: For each method: each argument and its bad values.
ARGUMENTS: dict[str, dict[str, list[object]]] = {
    "create_project": {
        "name": bad_texts(30),
        "description": bad_texts(1000, optional=True),
        "settings": [5, "x", ["a"]],
    },
    "list_projects": {"page_size": [*BAD_POSITIVE, 101, 10**6]},
    "get_project": {"project_id": _PROJECT},
    "create_chapter": {
        "project_id": _PROJECT,
        "name": bad_texts(30),
        "duration": [0, -1, True, 1.5, "5", [], math.nan],
    },
    "list_chapters": {"project_id": _PROJECT},
    "get_chapter": {"project_id": _PROJECT, "chapter_id": bad_ids("cht_")},
    "submit_prompt": {
        "project_id": _PROJECT,
        "chapter_id": bad_ids("cht_"),
        "content": bad_texts(5000),
        "force": BAD_BOOLS,
    },
    "wait_for_chapter": {
        "project_id": _PROJECT,
        "chapter_id": bad_ids("cht_"),
        "timeout": BAD_TIMEOUTS,
    },
    "upload_asset": {"content_type": BAD_CONTENT_TYPES},
    "list_assets": {
        "page_size": [*BAD_POSITIVE, 101],
        "content_type": BAD_CONTENT_TYPES,
        "state": [123, "", [], b"ready"],
    },
    "get_asset": {"asset_id": bad_ids("ast_")},
    "wait_for_asset": {"asset_id": bad_ids("ast_"), "timeout": BAD_TIMEOUTS},
    "start_export": {"project_id": _PROJECT},
    "get_export": {"project_id": _PROJECT},
    "watch_export": {"project_id": _PROJECT, "timeout": BAD_TIMEOUTS},
    "wait_for_export": {"project_id": _PROJECT, "timeout": BAD_TIMEOUTS},
    "download_export": {"project_id": _PROJECT, "overwrite": BAD_BOOLS},
    "iter_export_bytes": {"project_id": _PROJECT},
    "download_exports": {
        "project_ids": BAD_ID_LISTS,
        "concurrency": BAD_POSITIVE,
    },
    "export_many": {
        "project_ids": BAD_ID_LISTS,
        "concurrency": BAD_POSITIVE,
        "download_concurrency": BAD_POSITIVE,
        "start": BAD_BOOLS,
        "overwrite": BAD_BOOLS,
        "reuse": ["yes", True, 1, "Completed", ""],
        "timeout": BAD_TIMEOUTS,
        "poll": BAD_POLLS,
    },
    "open_export": {
        "project_id": _PROJECT,
        "range": [5, 1.5, b"bytes=0-1", (1,), (1, 2, 3), (-1, 5), (5, 2), ("a", "b"), [0, 1]],
    },
    "export_project": {
        "project_id": _PROJECT,
        "start": BAD_BOOLS,
        "overwrite": BAD_BOOLS,
        "reuse": ["yes", True, 1],
        "timeout": BAD_TIMEOUTS,
        "poll": BAD_POLLS,
    },
}

#: Per-call options shared by several methods: each method's bad values of each.
PER_CALL: dict[str, list[object]] = {
    "retry": BAD_RETRIES,
    "poll": BAD_POLLS,
    "estimate": BAD_ESTIMATES,
    "progress": BAD_CALLBACKS,
    "on_result": BAD_CALLBACKS,
    "dest": BAD_PATHS,
    "dest_dir": BAD_PATHS,
    "size": [-1, 0.5, "10", True],
}
PER_CALL_IN: dict[str, tuple[str, ...]] = {
    "retry": ("get_project", "create_project", "download_export", "start_export", "open_export"),
    "poll": ("wait_for_chapter", "wait_for_asset", "wait_for_export", "watch_export"),
    "estimate": ("wait_for_chapter", "wait_for_export", "watch_export"),
    "progress": ("download_export", "download_exports", "export_many"),
    "on_result": ("download_exports",),
    "dest": ("download_export",),
    "dest_dir": ("download_exports", "export_many", "export_project"),
    "size": ("upload_asset",),
}

#: Where the message names something other than the argument itself.
MENTIONS: dict[str, str] = {"project_ids": "project_id"}  # project_ids[3] is named too


def _mention(argument: str) -> str:
    return MENTIONS.get(argument, argument)


def _case(method: str, argument: str, value: object) -> Case:
    valid, invoke = METHODS[method]

    def call(babou: BabouSession, dest: Path) -> object:
        return invoke(babou, dest, {**valid, argument: value})

    return Case(method, argument, value, call, mentions=_mention(argument))


def cases() -> Iterator[Case]:
    """Every (method, argument, bad value) of :data:`ARGUMENTS`."""
    for method, arguments in ARGUMENTS.items():
        for argument, values in arguments.items():
            for value in values:
                yield _case(method, argument, value)


def per_call_cases() -> Iterator[Case]:
    """The cases of :data:`PER_CALL`, in each method of :data:`PER_CALL_IN`."""
    for argument, values in PER_CALL.items():
        for method in PER_CALL_IN[argument]:
            for value in values:
                yield _case(method, argument, value)


CASES = [*cases(), *per_call_cases()]

# --------------------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the whole module, so that one simulator serves every case."""
    return "asyncio"


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[FakeBabou]:
    """A simulator shared by the module's cases (each case starts with no request recorded)."""
    async with FakeBabou(seed=5) as fake:
        yield fake


async def _run(call: Call, babou: BabouSession, dest: Path) -> None:
    result = call(babou, dest)
    if isinstance(result, Awaitable):
        await result


async def _check(case: Case, sim: FakeBabou, tmp_path: Path) -> None:
    sim.clear_requests()
    async with BabouSession(KEY, base_url=sim.base_url, retry=RetryPolicy.disabled()) as babou:
        with pytest.raises(case.error) as info:
            await _run(case.call, babou, tmp_path)
    message = str(info.value)
    assert case.mentions in message, message
    assert KEY not in message
    assert [] == [f"{r.method} {r.path}" for r in sim.requests]


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_argument_is_refused_before_any_request(
    case: Case, sim: FakeBabou, tmp_path: Path
) -> None:
    """The bad value raises ValidationError naming its argument, and nothing is sent."""
    await _check(case, sim, tmp_path)


# --------------------------------------------------------------------------------------
# The constructor
# --------------------------------------------------------------------------------------


class _SyncBudget:
    def acquire(self) -> None: ...
    def on_response(self, status: int, retry_after: float | None) -> None: ...
    def suggested_poll_delay(self) -> float:
        return 0.0


BAD_BASE_URLS: list[object] = [
    "",
    " ",
    123,
    b"https://api.babou.ai",
    ["https://api.babou.ai"],
    "api.babou.ai",
    "ftp://api.babou.ai",
    "https://",
    "https:///api/v1",
    "http://127.0.0.1:99999/api/v1",
    "http://127.0.0.1:0/api/v1",
    "http://127.0.0.1:-1/api/v1",
    "http://127.0.0.1:port/api/v1",
    "https://api.ba bou.ai/api/v1",
    "https://api.babou.ai/api/v1\r\nX-Injected: 1",
    "https://api.babou.ai/api/\nv1",
    "https://api.babou.ai/api/v1\x00",
    "https://api.babou.ai/api/v1\t",
    " https://api.babou.ai/api/v1",
    "https://user:pass@api.babou.ai/api/v1",
    f"https://{KEY}@api.babou.ai/api/v1",
    "https://api.babou.ai/api/v1?x=1",
    "https://api.babou.ai/api/v1#frag",
    "https://[zz]/api/v1",
    "https://[::1/api/v1",
    "https://-bad-.example/api/v1",
    "https://bad..example/api/v1",
    "https://bücher.example/api/v1",
    "http://api.babou.ai/api/v1",  # plain http to another machine
    "http://10.0.0.5:8080/api/v1",
    "http://[2001:db8::1]/api/v1",
]

CONSTRUCTOR: dict[str, list[object]] = {
    "api_key": [123, b"sk-bab-x", ["sk-bab-x"], "", "  ", "sk-bab-a b", "sk-bab-\x00x"],
    "base_url": BAD_BASE_URLS,
    "timeout": ["soon", -1, 0, math.nan, [], True, None, dt.timedelta(seconds=-5)],
    "retry": [3, "twice", {}, PollPolicy(), Timeouts()],
    "poll": [3, "fast", {}, RetryPolicy(), Timeouts()],
    "rate_limit": [10, 2.5, "fast", {}, object(), _SyncBudget(), RetryPolicy()],
    "http_session": [5, "session", object(), {}],
    "max_connections": [0, -1, True, 1.5, "10", None, []],
    "user_agent": [5, b"ua", "ua\r\nX-Injected: 1", "", "ua\x00", []],
    "clock": [5, "clock", object(), {}],
    "allow_insecure": ["yes", 1, None, []],
}
CONSTRUCTOR_CASES = [(name, value) for name, values in CONSTRUCTOR.items() for value in values]


@pytest.mark.parametrize(
    ("argument", "value"),
    CONSTRUCTOR_CASES,
    ids=[f"{name}-{shown(value)}" for name, value in CONSTRUCTOR_CASES],
)
def test_bad_constructor_argument_is_a_configuration_error(argument: str, value: object) -> None:
    """BabouSession refuses the bad option at construction, naming it."""
    kwargs: dict[str, Any] = {"api_key": KEY, argument: value}
    with pytest.raises(ConfigurationError) as info:
        BabouSession(**kwargs)
    message = str(info.value)
    names = ("api_key", "api key") if argument == "api_key" else (argument,)
    assert any(name in message.lower() for name in names), message
    assert KEY not in message


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.babou.ai/api/v1",
        "https://api.babou.ai/api/v1/",
        "http://127.0.0.1:8080/api/v1",
        "http://localhost:8080",
        "http://[::1]:8080/api/v1",
        "https://[2001:db8::1]/api/v1",
        "https://xn--bcher-kva.example/api/v1",
    ],
)
def test_good_base_urls_are_accepted(base_url: str) -> None:
    """Strict parsing still takes https anywhere and http to this machine."""
    assert base_url.rstrip("/") == BabouSession(KEY, base_url=base_url).base_url


def test_plain_http_elsewhere_needs_allow_insecure() -> None:
    """``allow_insecure=True`` lets a caller who means it use http:// to another host."""
    url = "http://10.0.0.5:8080/api/v1"
    assert url == BabouSession(KEY, base_url=url, allow_insecure=True).base_url


def test_an_empty_environment_variable_means_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BABOU_BASE_URL=""`` is unset (production); only an explicit ``base_url=""`` is refused."""
    monkeypatch.setenv("BABOU_BASE_URL", "")
    assert "https://api.babou.ai/api/v1" == BabouSession(KEY).base_url
    with pytest.raises(ConfigurationError, match="empty"):
        BabouSession(KEY, base_url="")


def test_a_budget_object_is_accepted() -> None:
    """Any object with async acquire/on_response and suggested_poll_delay is a budget."""

    class Budget:
        async def acquire(self, priority: object = None) -> None: ...
        async def on_response(self, status: int, retry_after: float | None) -> None: ...
        def suggested_poll_delay(self) -> float:
            return 0.0

    budget = Budget()
    assert budget is BabouSession(KEY, rate_limit=budget).rate_limit
    assert isinstance(BabouSession(KEY, rate_limit=RateLimit()).rate_limit, RateLimit)


def test_the_table_is_large_enough() -> None:
    """At least 500 bad inputs are checked, over every public method and the constructor."""
    assert len(CASES) + len(CONSTRUCTOR_CASES) >= 500
    assert set(METHODS) == set(ARGUMENTS)
    public = {
        name
        for name in dir(BabouSession)
        if not name.startswith("_") and callable(getattr(BabouSession, name))
    }
    assert public - {"aclose"} == set(METHODS)
