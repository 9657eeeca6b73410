""":class:`BabouSession`: the public client, composing the sans-I/O core with the transport."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Sequence,
)
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

import anyio

from . import _protocol as proto
from ._config import PollPolicy, RateLimit, RetryPolicy, Timeouts, to_seconds
from ._exceptions import (
    BabouError,
    ConfigurationError,
    DecodeError,
    ExportFailedError,
    ExportTimeoutError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)
from ._models import (
    Asset,
    Chapter,
    ChapterStatus,
    Export,
    ExportStatus,
    Page,
    Project,
    PromptSubmission,
)
from ._protocol import FailureKind, RawResponse, RequestSpec, RetryMode
from ._ratelimit import RequestBudget
from ._transport import SendFailure, Transport
from ._version import __version__

if TYPE_CHECKING:
    import aiohttp
    from typing_extensions import Self

    from ._batch import EventCallback
    from ._download import ProgressCallback, ResultCallback
    from ._models import DownloadResult, ExportResult

__all__ = ["AsyncPager", "BabouSession"]

log = logging.getLogger("babou_async")

T = TypeVar("T")
_UPLOAD_CHUNK = 256 * 1024


class _Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


class AsyncPager(Generic[T]):
    """
    The result of a ``list_*`` call: iterate it, or await it for a list of everything.

    ::

        async for asset in babou.list_assets(state="ready"):
            ...
        everything = await babou.list_assets()

    Pages are fetched lazily, ``page_size`` items at a time, following ``limit``/``offset``
    until ``total`` is reached or a short page arrives. A server that answers with a bare
    list, or ignores ``offset``, is handled too: items already seen are dropped, and a page
    with nothing new ends the listing.

    Attributes:
        pages_fetched: Requests made so far.
    """

    def __init__(
        self,
        fetch: Callable[[int], Awaitable[tuple[list[T], Page]]],
        page_size: int,
        key: Callable[[T], str],
    ) -> None:
        self._fetch = fetch
        self._page_size = page_size
        self._key = key
        self.pages_fetched = 0

    async def __aiter__(self) -> AsyncIterator[T]:
        offset = 0
        seen: set[str] = set()
        while True:
            items, page = await self._fetch(offset)
            self.pages_fetched += 1
            fresh = [item for item in items if self._key(item) not in seen]
            for item in fresh:
                seen.add(self._key(item))
                yield item
            if not fresh:
                return
            offset += len(items)
            if page.total is not None:
                if offset >= page.total:
                    return
            elif page.limit is not None and len(items) < page.limit:
                return
            # Neither total nor limit (a bare list): the server may cap pages below our
            # page_size, so only an empty page or one with nothing new ends the listing.

    async def collect(self) -> list[T]:
        """Fetch every page and return all items."""
        return [item async for item in self]

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.collect().__await__()


def _item_id(item: Project | Asset) -> str:
    return item.id


def _default_user_agent() -> str:
    import platform  # noqa: PLC0415 - only needed once per session

    return f"babou_async/{__version__} Python/{platform.python_version()}"


class BabouSession:
    """
    An asynchronous client of the Babou API.

    Create one per application and share it between tasks: it is safe to use from
    thousands of concurrent tasks, keeps a bounded connection pool and shares one request
    budget between all of them.

    ::

        async with BabouSession() as babou:          # key from BABOU_API_KEY
            project = await babou.create_project(name="Launch video")

    Args:
        api_key: The ``sk-bab-...`` key; defaults to the ``BABOU_API_KEY`` environment
            variable. It is sent only to ``base_url``'s origin, and never appears in a repr,
            a log record or an exception message.
        base_url: The API root; defaults to ``BABOU_BASE_URL``, else
            ``https://api.babou.ai/api/v1``.
        timeout: Per-request limits: seconds (the total for one API request) or a
            :class:`Timeouts`.
        retry: The default :class:`RetryPolicy` (every retrying method accepts one per call).
        poll: The default :class:`PollPolicy` for waits and watches.
        rate_limit: The session-wide request budget (:class:`RateLimit`).
        http_session: An ``aiohttp.ClientSession`` owned by the caller (for example a web
            app's), used as is and never closed here. Without one, the session creates its
            own on first use and closes it in :meth:`aclose`.
        max_connections: Size of the owned connection pool.
        user_agent: Overrides the ``User-Agent`` header.

    Raises:
        ConfigurationError: No API key, or a malformed base URL or option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | dt.timedelta | Timeouts = 60.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        rate_limit: RateLimit | None = None,
        http_session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("BABOU_API_KEY")
        if not key or not key.strip():
            raise ConfigurationError(
                "no Babou API key: pass api_key=... or set the BABOU_API_KEY environment variable"
            )
        key = key.strip()
        if any(ch.isspace() for ch in key) or not key.isprintable():
            raise ConfigurationError("the API key contains whitespace or control characters")
        self._key = _Secret(key)
        self._key_bytes = key.encode()
        self.base_url = self._check_base_url(
            base_url or os.environ.get("BABOU_BASE_URL") or proto.DEFAULT_BASE_URL
        )
        if isinstance(timeout, Timeouts):
            self.timeouts = timeout
        else:
            try:
                self.timeouts = Timeouts(total=to_seconds(timeout))
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"bad timeout: {exc}") from None
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigurationError("max_connections must be an int")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.rate_limit = rate_limit or RateLimit()
        self._transport = Transport(
            http_session=http_session,
            max_connections=max_connections,
            timeouts=self.timeouts,
            user_agent=user_agent or _default_user_agent(),
        )
        self._api_headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": self._transport.user_agent,
        }
        self._json_headers = {**self._api_headers, "Content-Type": "application/json"}
        self._budget = RequestBudget(self.rate_limit)
        # Seams for tests: time, sleeping and randomness are injected, never read globally.
        self._clock: Callable[[], float] = anyio.current_time
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep
        self._random: Callable[[], float] = random.random

    @staticmethod
    def _check_base_url(url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"base_url must be an http(s) URL, got {url!r}")
        if parts.query or parts.fragment:
            raise ConfigurationError("base_url must not have a query or fragment")
        return url.strip().rstrip("/")

    def __repr__(self) -> str:
        return f"<BabouSession base_url={self.base_url!r} api_key=<redacted>>"

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session if this object created it (idempotent)."""
        await self._transport.aclose()

    # -- the request loop ------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._key.reveal(), "[REDACTED]")

    async def _request(
        self,
        spec: RequestSpec,
        *,
        retry: RetryPolicy | None = None,
        data: bytes | Callable[[], AsyncIterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        conflict_after_ambiguous_ok: bool = False,
        upload_size: int | None = None,
        decode: bool = True,
    ) -> tuple[RawResponse, Any]:
        """
        Send ``spec`` with retries.

        Returns the 2xx response and, with ``decode``, its JSON body (else ``None``).

        With ``conflict_after_ambiguous_ok``, a 409 that follows an ambiguous failure (one
        the server may have acted on) is returned rather than raised: it means our own
        earlier attempt took effect.
        """
        policy = retry or self.retry
        url = self.base_url + spec.path
        if headers is None:
            headers = self._json_headers if spec.json is not None else self._api_headers
        if spec.json is not None:
            data = json.dumps(spec.json, ensure_ascii=False).encode()
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            body = data() if callable(data) else data
            # The budget is checked synchronously: no coroutine per request when, as
            # almost always, there is nothing to wait for.
            delay = self._budget.reserve()
            if delay > 0:
                await self._budget.acquire_after(delay)
            try:
                raw = await self._transport.send(
                    spec.method,
                    url,
                    headers=headers,
                    params=spec.params,
                    data=body,
                    upload_size=upload_size,
                )
            except SendFailure as failure:
                decision = proto.decide_retry(
                    policy=policy,
                    mode=spec.retry_mode,
                    attempt=attempt,
                    rand=self._random(),
                    failure=failure.kind,
                )
                if not decision.retry:
                    raise failure.error from failure.__cause__
                ambiguous = ambiguous or failure.kind is FailureKind.AMBIGUOUS
                self._log_retry(spec, attempt, decision.delay, decision.reason)
                await self._sleep(decision.delay)
                continue
            self._budget.record(throttled=raw.status == 429)
            if self._key_bytes in raw.body:
                # A proxy or debug page echoing our headers: the key must not travel on
                # into a DecodeError's excerpt, a log or a model.
                raw = raw._replace(body=raw.body.replace(self._key_bytes, b"[REDACTED]"))
            if 200 <= raw.status < 300:
                return raw, proto.parse_json(raw) if decode else None
            if raw.status == 409 and ambiguous and conflict_after_ambiguous_ok:
                return raw, None
            error = proto.error_from_response(
                raw,
                method=spec.method,
                path=spec.path,
                now=dt.datetime.now(dt.timezone.utc),
                secret=self._key.reveal(),
            )
            if 300 <= raw.status < 400:
                error.message = (
                    f"unexpected redirect (HTTP {raw.status}); not followed so that the API "
                    "key only ever goes to the API's origin"
                )
                error.args = (error.message,)
            decision = proto.decide_retry(
                policy=policy,
                mode=spec.retry_mode,
                attempt=attempt,
                rand=self._random(),
                error=error,
            )
            if not decision.retry:
                if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                    error.message += f" (server asked to wait {error.retry_after:g}s)"
                    error.args = (error.message,)
                raise error
            ambiguous = ambiguous or raw.status >= 500
            self._log_retry(spec, attempt, decision.delay, decision.reason)
            await self._sleep(decision.delay)

    def _log_retry(self, spec: RequestSpec, attempt: int, delay: float, reason: str) -> None:
        log.warning(
            "retrying %s %s (attempt %d failed: %s) in %.2fs",
            spec.method,
            spec.path,
            attempt,
            reason,
            delay,
            extra={
                "babou_method": spec.method,
                "babou_path": spec.path,
                "babou_attempt": attempt,
                "babou_delay": delay,
                "babou_reason": reason,
            },
        )

    # -- projects --------------------------------------------------------------------

    async def create_project(
        self,
        name: str,
        *,
        description: str | None = None,
        settings: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Project:
        """
        Create a project (``POST /projects``).

        Not retried after a failure that may have reached the server (a duplicate project is
        worse than an error); 429s and connection failures before sending are retried.

        Args:
            name: 1-30 characters.
            description: At most 1000 characters.
            settings: Reserved by Babou for future use.
            retry: Overrides the session's retry policy for this call.

        Raises:
            ValidationError: Bad input (nothing is sent) or a 400 from the server.
        """
        raw, payload = await self._request(
            proto.build_create_project(name, description, settings), retry=retry
        )
        return proto.parse_project(raw, payload)

    def list_projects(
        self, *, page_size: int = 100, retry: RetryPolicy | None = None
    ) -> AsyncPager[Project]:
        """
        List the key's projects (``GET /projects``), page by page.

        The reference page of this endpoint is missing from Babou's docs: both a bare JSON
        list and a ``{"projects": [...], "pagination": {...}}`` envelope are understood.

        Args:
            page_size: Items per request (1-100).
            retry: Overrides the session's retry policy.
        """
        proto.check_limit(page_size)

        async def fetch(offset: int) -> tuple[list[Project], Page]:
            raw, payload = await self._request(
                proto.build_list_projects(page_size, offset), retry=retry
            )
            return proto.parse_projects_page(raw, payload)

        return AsyncPager(fetch, page_size, _item_id)

    async def get_project(self, project_id: str, *, retry: RetryPolicy | None = None) -> Project:
        """Fetch a project (``GET /projects/{projectId}``)."""
        raw, payload = await self._request(proto.build_get_project(project_id), retry=retry)
        return proto.parse_project(raw, payload)

    # -- chapters and prompts --------------------------------------------------------

    async def create_chapter(
        self,
        project_id: str,
        name: str,
        *,
        duration: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> Chapter:
        """
        Add a chapter to a project (``POST /projects/{projectId}/chapters``).

        Chapters are rendered in creation order. Not retried after an ambiguous failure.

        Args:
            project_id: ``prj_...``.
            name: 1-30 characters.
            duration: Seconds, a positive integer.
            retry: Overrides the session's retry policy.
        """
        raw, payload = await self._request(
            proto.build_create_chapter(project_id, name, duration), retry=retry
        )
        return proto.parse_chapter(raw, payload, project_id)

    async def list_chapters(
        self, project_id: str, *, retry: RetryPolicy | None = None
    ) -> list[Chapter]:
        """List a project's chapters with their status (not paginated by the API)."""
        raw, payload = await self._request(proto.build_list_chapters(project_id), retry=retry)
        return proto.parse_chapters(raw, payload, project_id)

    async def get_chapter(
        self, project_id: str, chapter_id: str, *, retry: RetryPolicy | None = None
    ) -> Chapter:
        """Fetch a chapter with its prompts (the documented way to follow prompts)."""
        raw, payload = await self._request(
            proto.build_get_chapter(project_id, chapter_id), retry=retry
        )
        return proto.parse_chapter(raw, payload, project_id)

    async def submit_prompt(
        self,
        project_id: str,
        chapter_id: str,
        content: str,
        *,
        force: bool = False,
        retry: RetryPolicy | None = None,
    ) -> PromptSubmission:
        """
        Submit a prompt to a chapter; processing is asynchronous (typically 30-90 s).

        Args:
            project_id: ``prj_...``.
            chapter_id: ``cht_...``.
            content: 1-5000 characters.
            force: Process even though another prompt of this chapter is in flight
                (the MCP docs say the in-flight one is cancelled).
            retry: Overrides the session's retry policy.

        Raises:
            ConflictError: A prompt is already processing and ``force`` is false.
        """
        raw, payload = await self._request(
            proto.build_submit_prompt(project_id, chapter_id, content, force), retry=retry
        )
        return proto.parse_prompt_submission(raw, payload)

    async def wait_for_chapter(
        self,
        project_id: str,
        chapter_id: str,
        *,
        timeout: float | dt.timedelta = 600.0,
        poll: PollPolicy | None = None,
        estimate: tuple[float, float] | None = None,
    ) -> Chapter:
        """
        Poll a chapter until it is ``ready`` or in ``error``, and return it.

        Args:
            project_id: ``prj_...``.
            chapter_id: ``cht_...``.
            timeout: Deadline in seconds.
            poll: Overrides the session's poll policy.
            estimate: ``(low, high)`` seconds, e.g. a submission's ``estimated_seconds``.

        Raises:
            WaitTimeoutError: The deadline passed first.
        """
        proto.check_project_id(project_id)
        proto.check_chapter_id(chapter_id)

        async def fetch() -> tuple[Chapter, str, bool]:
            chapter = await self.get_chapter(project_id, chapter_id)
            # A chapter with no prompt has nothing to wait for.
            # The chapter's own status decides. A "ready" chapter whose newest prompt has
            # no result yet is taken as not ready (a status that lags a fresh submission);
            # older prompts may never get one (force cancels them), so they do not count.
            done = chapter.status is ChapterStatus.ERROR or (
                chapter.status is ChapterStatus.READY
                and (not chapter.prompts or chapter.prompts[-1].is_done)
            )
            return chapter, chapter.status_raw or str(chapter.status), done

        return await self._wait(fetch, chapter_id, "chapter", timeout, poll, estimate)

    # -- assets ----------------------------------------------------------------------

    async def upload_asset(
        self,
        source: str | os.PathLike[str] | bytes | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        size: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> Asset:
        """
        Upload a media file (``POST /assets``), streamed from disk or an async iterator.

        Args:
            source: A path (read in chunks by a worker thread), ``bytes``, or an async
                iterator of byte chunks.
            content_type: MIME type; guessed from a path's extension when omitted.
            size: For an async iterator: its total size if known, to refuse an oversized
                upload before sending (the stream is cut at 100 MB regardless).
            retry: Overrides the session's retry policy. A path or bytes can be resent after
                a 429; an async iterator cannot be replayed, so it is sent once.

        Raises:
            ValidationError: Unknown or unsupported type, or a file over 100 MB (nothing
                is sent).
            PayloadTooLargeError: The server refused the size.
        """
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            ctype = proto.normalise_content_type(
                content_type or proto.guess_content_type(path.name)
            )
            try:
                stat = await anyio.Path(path).stat()
            except OSError as exc:
                raise ValidationError(
                    f"cannot read {path}: {exc.strerror}", field="source"
                ) from None
            if not stat.st_mode & 0o170000 == 0o100000:
                raise ValidationError(f"{path} is not a regular file", field="source")
            proto.check_upload_size(stat.st_size)
            length: int | None = stat.st_size
            data: bytes | Callable[[], AsyncIterable[bytes]] = partial(
                _file_chunks, path, stat.st_size
            )
        elif isinstance(source, (bytes, bytearray, memoryview)):
            ctype = proto.normalise_content_type(content_type)
            payload = bytes(source)
            length = len(payload)
            proto.check_upload_size(length)
            # Sent in slices (replayable: a new generator per attempt), not handed to the
            # socket in one piece on the event loop.
            data = partial(_byte_chunks, payload)
        elif isinstance(source, AsyncIterable):
            ctype = proto.normalise_content_type(content_type)
            proto.check_upload_size(size)
            stream = _capped(source, proto.MAX_UPLOAD_BYTES)
            used = False

            def once() -> AsyncIterable[bytes]:
                nonlocal used
                if used:
                    raise ValidationError(
                        "an async iterator upload cannot be replayed", field="source"
                    )
                used = True
                return stream

            data = once
            length = size
            retry = RetryPolicy.disabled()
        else:
            raise ValidationError(
                f"source must be a path, bytes or an async iterable of bytes, got "
                f"{type(source).__name__}",
                field="source",
            )
        headers = {**self._api_headers, "Content-Type": ctype}
        if length is not None:
            headers["Content-Length"] = str(length)
        spec = RequestSpec(method="POST", path="/assets", retry_mode=RetryMode.CREATE)
        raw, payload = await self._request(
            spec,
            retry=retry,
            data=data,
            headers=headers,
            upload_size=length if length is not None else -1,
        )
        return proto.parse_asset(raw, payload)

    def list_assets(
        self,
        *,
        content_type: str | None = None,
        state: str | None = None,
        page_size: int = 100,
        retry: RetryPolicy | None = None,
    ) -> AsyncPager[Asset]:
        """
        List uploaded assets, following ``limit``/``offset`` pagination for you.

        Args:
            content_type: Only this MIME type (sent as ``contentType``).
            state: Only this state (``uploading``, ``processing``, ``ready``, ``error``;
                the docs also mention ``failed``).
            page_size: Items per request (1-100).
            retry: Overrides the session's retry policy.
        """
        proto.check_limit(page_size)
        proto.build_list_assets(page_size, 0, content_type, state)  # validate now, not later

        async def fetch(offset: int) -> tuple[list[Asset], Page]:
            spec = proto.build_list_assets(page_size, offset, content_type, state)
            raw, payload = await self._request(spec, retry=retry)
            return proto.parse_assets_page(raw, payload)

        return AsyncPager(fetch, page_size, _item_id)

    async def get_asset(self, asset_id: str, *, retry: RetryPolicy | None = None) -> Asset:
        """Fetch an asset (``GET /assets/{assetId}``)."""
        raw, payload = await self._request(proto.build_get_asset(asset_id), retry=retry)
        return proto.parse_asset(raw, payload)

    async def wait_for_asset(
        self,
        asset_id: str,
        *,
        timeout: float | dt.timedelta = 600.0,
        poll: PollPolicy | None = None,
    ) -> Asset:
        """
        Poll an asset until it is ``ready`` or in ``error``, and return it.

        Raises:
            WaitTimeoutError: The deadline passed first.
        """
        proto.check_asset_id(asset_id)

        async def fetch() -> tuple[Asset, str, bool]:
            asset = await self.get_asset(asset_id)
            return asset, asset.state_raw or str(asset.state), asset.state.is_terminal

        return await self._wait(fetch, asset_id, "asset", timeout, poll, None)

    # -- exports ---------------------------------------------------------------------

    async def start_export(self, project_id: str, *, retry: RetryPolicy | None = None) -> Export:
        """
        Start rendering a project's completed chapters into one video.

        An ambiguous failure (a dropped connection, a 5xx) is retried: if the retry is
        answered 409 "already in progress", the first attempt did start the export and its
        current state is returned.

        Raises:
            ConflictError: An export was already in progress before this call.
            ValidationError: The project has no completed chapters.
            NotFoundError: No such project.
        """
        spec = proto.build_start_export(project_id)
        raw, _ = await self._request(
            spec, retry=retry, conflict_after_ambiguous_ok=True, decode=False
        )
        if raw.status == 409:
            # Our earlier attempt reached the server and started the export.
            log.info(
                "start_export %s: 409 after an ambiguous failure, export was started", project_id
            )
            return await self.get_export(project_id, retry=retry)
        # An empty or status-less 2xx still means "started": the docs show "queued".
        payload = proto.parse_json(raw) if raw.body.strip() else {}
        return proto.parse_export(raw, payload, project_id, default_status="queued")

    async def get_export(self, project_id: str, *, retry: RetryPolicy | None = None) -> Export:
        """
        Fetch the status of a project's export (``GET /projects/{projectId}/export``).

        A failed export is returned (``status`` ``FAILED`` with ``error``), not raised.

        Raises:
            NotFoundError: No such project, or no export was ever started.
        """
        raw, payload = await self._request(proto.build_get_export(project_id), retry=retry)
        return proto.parse_export(raw, payload, project_id)

    async def watch_export(
        self,
        project_id: str,
        *,
        timeout: float | dt.timedelta = 600.0,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        estimate: tuple[float, float] | None = None,
    ) -> AsyncGenerator[Export, None]:
        """
        Follow an export, yielding each change of status until a terminal one.

        Yields the first status observed, then one :class:`Export` per change (never the
        same status twice in a row), and ends after yielding ``completed`` or ``failed``
        (a failure is yielded, not raised). Transient errors are retried by ``retry``.
        Breaking out of the loop stops polling at once; for prompt clean-up in every case,
        wrap it in :func:`contextlib.aclosing`.

        Args:
            project_id: ``prj_...``.
            timeout: Deadline in seconds for the whole watch.
            poll: Overrides the session's :class:`PollPolicy`.
            retry: Overrides the session's :class:`RetryPolicy` for each poll.
            estimate: ``(low, high)`` seconds until completion, e.g. from
                ``start_export(...).estimated_seconds``; otherwise the server's own
                ``estimated_time`` is used when a status response carries one.

        Raises:
            ExportTimeoutError: The deadline passed before a terminal status.
        """
        proto.check_project_id(project_id)
        seconds = self._timeout_seconds(timeout)
        last: Export | None = None

        async def fetch() -> tuple[Export, str, bool]:
            export = await self.get_export(project_id, retry=retry)
            return export, export.status_raw, export.is_terminal

        try:
            async for export in self._poll(fetch, seconds, poll, estimate):
                last = export
                yield export
        except WaitTimeoutError as exc:
            raise ExportTimeoutError(
                project_id, last.status_raw if last else None, seconds
            ) from exc.__cause__

    async def wait_for_export(
        self,
        project_id: str,
        *,
        timeout: float | dt.timedelta = 600.0,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        estimate: tuple[float, float] | None = None,
    ) -> Export:
        """
        Wait until a project's export completes and return it.

        Raises:
            ExportFailedError: The export failed; ``error`` is the server's text.
            ExportTimeoutError: Not terminal before ``timeout``.
        """
        final: Export | None = None
        async for export in self.watch_export(
            project_id, timeout=timeout, poll=poll, retry=retry, estimate=estimate
        ):
            final = export
        assert final is not None  # noqa: S101 - the watch always yields before it ends
        if final.status is ExportStatus.FAILED:
            raise ExportFailedError(project_id, final.error)
        return final

    # -- polling machinery -----------------------------------------------------------

    @staticmethod
    def _timeout_seconds(timeout: float | dt.timedelta) -> float:
        try:
            seconds = to_seconds(timeout)
        except TypeError as exc:
            raise ValidationError(str(exc), field="timeout") from None
        if not seconds > 0:
            raise ValidationError(f"timeout must be > 0, got {seconds!r}", field="timeout")
        return seconds

    async def _poll(
        self,
        fetch: Callable[[], Awaitable[tuple[T, str, bool]]],
        timeout: float,
        poll: PollPolicy | None,
        estimate: tuple[float, float] | None,
    ) -> AsyncIterator[T]:
        """
        Yield ``fetch()`` results on each change of status, and the terminal one.

        Transient failures that outlast the retry policy (an outage, a long 429) do not end
        the poll while the deadline allows: they are logged and polled through, and the last
        one is chained to the :class:`WaitTimeoutError` if the deadline passes.
        """
        policy = poll or self.poll
        start = self._clock()
        deadline = start + timeout
        # The last look, after sleeping up to the deadline, gets a short grace to answer.
        grace = min(5.0, max(0.05, timeout * 0.05))
        last_status: str | None = None
        last_error: BabouError | None = None
        polls_since_due = 0
        final = False

        def deadline_passed() -> WaitTimeoutError:
            # The callers re-raise it naming what was waited for.
            return WaitTimeoutError(
                "deadline passed", resource_id="", last_status=last_status, timeout=timeout
            )

        while True:
            limit = grace if final else max(0.0, deadline - self._clock())
            server_wait = 0.0
            try:
                with anyio.fail_after(limit):
                    item, status, terminal = await fetch()
            except (TransportError, ServerError, RateLimitError, DecodeError) as exc:
                # DecodeError too: one HTML page from a proxy must not end a watch.
                if final:
                    raise deadline_passed() from exc
                last_error = exc
                server_wait = getattr(exc, "retry_after", None) or 0.0
                log.warning("poll failed, will poll again: %s", self._redact(str(exc)))
                status, terminal = last_status or "", False
            except TimeoutError:
                raise deadline_passed() from last_error
            else:
                last_error = None
                if estimate is None:
                    estimate = getattr(item, "estimated_seconds", None)
                if status != last_status or terminal:
                    last_status = status
                    yield item
                if terminal:
                    return
            if final:
                raise deadline_passed() from last_error
            elapsed = self._clock() - start
            # Backoff starts once the job outlives its estimate (see next_poll_delay).
            due = estimate is None or not policy.use_estimate or elapsed >= estimate[1]
            delay = proto.next_poll_delay(
                policy,
                polls_since_due=polls_since_due if due else 0,
                elapsed=elapsed,
                estimate=estimate,
                rand=self._random(),
            )
            polls_since_due += 1 if due else 0
            delay = max(delay, server_wait)
            remaining = deadline - self._clock()
            if delay >= remaining:
                final = True
                delay = max(0.0, remaining)
            await self._sleep(delay)

    async def _wait(
        self,
        fetch: Callable[[], Awaitable[tuple[T, str, bool]]],
        resource_id: str,
        what: str,
        timeout: float | dt.timedelta,
        poll: PollPolicy | None,
        estimate: tuple[float, float] | None,
    ) -> T:
        seconds = self._timeout_seconds(timeout)
        result: T | None = None
        try:
            async for item in self._poll(fetch, seconds, poll, estimate):
                result = item
        except WaitTimeoutError as exc:
            raise WaitTimeoutError(
                f"{what} {resource_id} not done after {seconds:g}s (last status: "
                f"{exc.last_status or 'none observed'})",
                resource_id=resource_id,
                last_status=exc.last_status,
                timeout=seconds,
            ) from exc.__cause__
        assert result is not None  # noqa: S101 - _poll yields the terminal item before returning
        return result

    # -- downloads and batches (implemented in _download / _batch) -------------------

    async def download_export(
        self,
        project_id: str,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        retry: RetryPolicy | None = None,
    ) -> DownloadResult:
        """
        Download a completed export's video to ``dest`` (a directory or a file path).

        The video streams in chunks to ``<final>.<random>.part`` beside the target (written by a
        worker thread, memory flat whatever the size), is checked against
        ``Content-Length``, and is renamed into place atomically only once complete: nobody
        ever sees a half-written file, and a failure or cancellation removes the ``.part``.
        A dropped connection resumes with ``Range`` (``If-Range`` on a strong ``ETag``), or
        restarts if the server ignores ``Range``; an expired URL (403/404/410) is replaced by
        a fresh one from :meth:`get_export`. An existing complete file is skipped, a
        different one is never clobbered unless ``overwrite=True``. The API key is never
        sent to the download host.

        Args:
            project_id: ``prj_...``.
            dest: A directory (the file is then ``<project_id>.mp4``) or a file path.
            overwrite: Replace an existing file.
            progress: ``progress(project_id, bytes_done, bytes_total)``.
            retry: Overrides the session's retry policy (it also bounds resumes and URL
                refreshes without progress).

        Raises:
            ExportNotReadyError: The export is not completed.
            ExportFailedError: The export failed.
            DownloadError: The video could not be saved (nothing is left at ``dest``).
        """
        from ._download import download_export  # noqa: PLC0415 - avoid an import cycle

        return await download_export(
            self, project_id, dest, overwrite=overwrite, progress=progress, retry=retry
        )

    async def download_exports(
        self,
        project_ids: Sequence[str],
        dest_dir: str | os.PathLike[str],
        *,
        concurrency: int = 4,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        on_result: ResultCallback | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[DownloadResult]:
        """
        Download many completed exports at once, at most ``concurrency`` in flight.

        Results are in input order; one failure never fails the others (its
        :class:`DownloadResult` carries the error). ``on_result(result)`` is called as
        each download ends, for displays that report as they go.
        """
        from ._download import download_exports  # noqa: PLC0415

        return await download_exports(
            self,
            project_ids,
            dest_dir,
            concurrency=concurrency,
            overwrite=overwrite,
            progress=progress,
            on_result=on_result,
            retry=retry,
        )

    def iter_export_bytes(
        self, project_id: str, *, retry: RetryPolicy | None = None
    ) -> AsyncGenerator[bytes, None]:
        """
        Stream a completed export's bytes without touching disk (resuming after drops).

        Useful to pipe a video into a web response or object storage.
        """
        from ._download import iter_export_bytes  # noqa: PLC0415

        return iter_export_bytes(self, project_id, retry=retry)

    async def export_many(
        self,
        project_ids: Iterable[str] | AsyncIterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        start: bool = True,
        concurrency: int = 32,
        download_concurrency: int = 4,
        timeout: float | dt.timedelta = 900.0,
        poll: PollPolicy | None = None,
        overwrite: bool = False,
        progress: EventCallback | None = None,
    ) -> list[ExportResult]:
        """
        Export many projects: start, watch, and download each as soon as it completes.

        For each project: start the export (a 409 "already in progress" means the running
        one is followed instead), watch it to a terminal status, and download it to
        ``dest_dir/<project_id>.mp4`` while the others are still being watched. A project
        whose video is already in ``dest_dir`` is skipped without any request (files only
        ever appear there complete), so a re-run does only what is left. Tasks and memory
        are bounded by the two concurrency limits, not by the number of IDs.

        Args:
            project_ids: IDs from any iterable or async iterable; duplicates are exported
                once and reported at each of their positions.
            dest_dir: Directory for the videos (created if missing).
            start: Start the exports; ``False`` only follows exports started elsewhere.
            concurrency: Exports followed at once.
            download_concurrency: Downloads at once.
            timeout: Per-project deadline for the export to become terminal.
            poll: Overrides the session's poll policy.
            overwrite: Re-export and replace videos already on disk.
            progress: ``progress(event)`` with an :class:`ExportEvent` per step.

        Returns:
            One :class:`ExportResult` per input ID, in input order. One project failing
            never affects the others; its result carries the error.
        """
        from ._batch import export_many  # noqa: PLC0415

        return await export_many(
            self,
            project_ids,
            dest_dir,
            start=start,
            concurrency=concurrency,
            download_concurrency=download_concurrency,
            timeout=timeout,
            poll=poll,
            overwrite=overwrite,
            progress=progress,
        )


async def _file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    """
    Read ``size`` bytes of a file in chunks, in a worker thread (never blocking the loop).

    The file is closed before the last chunk is handed over: aiohttp stops iterating once
    ``Content-Length`` bytes are sent, without finishing the generator.
    """
    f = await anyio.open_file(path, "rb")
    try:
        remaining = size
        while remaining > 0:
            chunk = await f.read(min(_UPLOAD_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            if remaining <= 0:
                await f.aclose()
            yield chunk
    finally:
        await f.aclose()


async def _byte_chunks(payload: bytes) -> AsyncIterator[bytes]:
    view = memoryview(payload)
    for start in range(0, len(view), _UPLOAD_CHUNK):
        yield bytes(view[start : start + _UPLOAD_CHUNK])


async def _capped(source: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass chunks through, refusing to send more than ``limit`` bytes in total."""
    sent = 0
    async for chunk in source:
        sent += len(chunk)
        if sent > limit:
            raise ValidationError(f"upload exceeds {limit} bytes (100 MB); aborted", field="source")
        yield bytes(chunk)
