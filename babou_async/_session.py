""":class:`BabouSession`: the public client, validating and documenting; the runtime works."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import _batch as batch
from . import _download as download
from . import _exports as exports
from . import _project as project
from . import _protocol as proto
from . import _uploads as uploads
from . import _waits as waits
from ._callbacks import EventCallback, ProgressCallback, ResultCallback
from ._clock import Clock
from ._config import PollPolicy, RateLimit, RetryPolicy, Timeouts
from ._exceptions import ValidationError
from ._models import (
    Asset,
    Chapter,
    DownloadResult,
    Export,
    ExportResult,
    Page,
    Project,
    PromptSubmission,
)
from ._pager import AsyncPager, item_id
from ._ratelimit import RequestBudget
from ._runtime import Runtime, Secret, budget_of, timeouts_of
from ._seekable import StreamingMixin
from ._transport import Transport

if TYPE_CHECKING:
    import aiohttp
    from typing_extensions import Self

    from ._hooks import Hooks

__all__ = ["BabouSession"]


class BabouSession(StreamingMixin):
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
        max_connections: Size of the owned pool; API calls beyond it wait in the session.
        user_agent: Overrides the ``User-Agent`` header.
        clock: Where time, sleep and randomness come from; a test hook
            (:class:`babou_async.testing.Clock`) to run retries, polls and the request
            budget on a virtual clock.
        allow_insecure: Allow a plain ``http://`` ``base_url`` on a host other than this
            machine. Off by default: the key would travel in clear, readable by anyone on
            the path. (``http://`` to ``localhost``, ``127.0.0.0/8`` or ``::1``, a local
            simulator or proxy, is always allowed.)

            .. versionadded:: 0.2
        proxy: A proxy URL for the API and the downloads; ``None`` reads ``HTTPS_PROXY``,
            ``HTTP_PROXY`` and ``NO_PROXY`` (for an owned HTTP session); ``False``: none.
        hooks: :class:`Hooks` to tell of requests, retries, status changes and downloads.

            .. versionadded:: 0.2 ``proxy`` and ``hooks``; see ``docs/observability.md``.

    Raises:
        ConfigurationError: No API key, or a malformed base URL or option (checked strictly
            here, before anything is sent: scheme, host, port, no whitespace or control
            characters, no userinfo; ``base_url=""`` is an error, not production).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | dt.timedelta | Timeouts = 60.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        rate_limit: RateLimit | RequestBudget | None = None,
        http_session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        clock: Clock | None = None,
        allow_insecure: bool = False,
        proxy: str | Literal[False] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        key = proto.check_api_key(
            api_key if api_key is not None else os.environ.get("BABOU_API_KEY")
        )
        proto.check_session_options(
            retry=retry,
            poll=poll,
            rate_limit=rate_limit,
            max_connections=max_connections,
            user_agent=user_agent,
            clock=clock,
            allow_insecure=allow_insecure,
        )
        if base_url is None:  # an empty variable counts as unset; an empty argument is an error
            base_url = os.environ.get("BABOU_BASE_URL") or proto.DEFAULT_BASE_URL
        self.base_url = proto.check_base_url(base_url, allow_insecure=allow_insecure)
        self.timeouts = timeouts_of(timeout)
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.rate_limit = rate_limit or RateLimit()
        clock = clock or Clock()
        transport = Transport(
            http_session=http_session,
            max_connections=max_connections,
            timeouts=self.timeouts,
            user_agent=user_agent,
            proxy=proxy,
            api_base=self.base_url,
        )
        self._rt = Runtime(
            key=Secret(key),
            base_url=self.base_url,
            timeouts=self.timeouts,
            retry=self.retry,
            poll=self.poll,
            budget=budget_of(self.rate_limit, clock),
            transport=transport,
            clock=clock,
            hooks=hooks,
        )

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
        await self._rt.aclose()

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
        raw, payload = await self._rt.send(
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
            raw, payload = await self._rt.send(
                proto.build_list_projects(page_size, offset), retry=retry
            )
            return proto.parse_projects_page(raw, payload)

        return AsyncPager(fetch, page_size, item_id)

    async def get_project(self, project_id: str, *, retry: RetryPolicy | None = None) -> Project:
        """Fetch a project (``GET /projects/{projectId}``)."""
        raw, payload = await self._rt.send(proto.build_get_project(project_id), retry=retry)
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
        raw, payload = await self._rt.send(
            proto.build_create_chapter(project_id, name, duration), retry=retry
        )
        return proto.parse_chapter(raw, payload, project_id)

    async def list_chapters(
        self, project_id: str, *, retry: RetryPolicy | None = None
    ) -> list[Chapter]:
        """List a project's chapters with their status (not paginated by the API)."""
        raw, payload = await self._rt.send(proto.build_list_chapters(project_id), retry=retry)
        return proto.parse_chapters(raw, payload, project_id)

    async def get_chapter(
        self, project_id: str, chapter_id: str, *, retry: RetryPolicy | None = None
    ) -> Chapter:
        """Fetch a chapter with its prompts (the documented way to follow prompts)."""
        raw, payload = await self._rt.send(
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
        raw, payload = await self._rt.send(
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

        return await waits.wait_for_chapter(
            self._rt, project_id, chapter_id, proto.check_timeout(timeout), poll, estimate
        )

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
        return await uploads.upload_asset(
            self._rt, source, content_type=content_type, size=size, retry=retry
        )

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
            raw, payload = await self._rt.send(spec, retry=retry)
            return proto.parse_assets_page(raw, payload)

        return AsyncPager(fetch, page_size, item_id)

    async def get_asset(self, asset_id: str, *, retry: RetryPolicy | None = None) -> Asset:
        """Fetch an asset (``GET /assets/{assetId}``)."""
        raw, payload = await self._rt.send(proto.build_get_asset(asset_id), retry=retry)
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

        return await waits.wait_for_asset(self._rt, asset_id, proto.check_timeout(timeout), poll)

    # -- exports ---------------------------------------------------------------------

    async def start_export(self, project_id: str, *, retry: RetryPolicy | None = None) -> Export:
        """
        Start rendering a project's completed chapters into one video.

        After an ambiguous failure (a dropped connection, a 5xx) a look comes before any
        resend: a running export is the one the first attempt started (see
        ``docs/reliability.md``; :meth:`export_project` adopts a finished one too).

        Raises:
            ConflictError: An export was already in progress before this call.
            ValidationError: The project has no completed chapters.
            NotFoundError: No such project.
        """
        proto.check_project_id(project_id)
        return await exports.start_export(self._rt, project_id, retry)

    async def get_export(self, project_id: str, *, retry: RetryPolicy | None = None) -> Export:
        """
        Fetch the status of a project's export (``GET /projects/{projectId}/export``).

        A failed export is returned (``status`` ``FAILED`` with ``error``), not raised.

        Raises:
            NotFoundError: No such project, or no export was ever started.
        """
        proto.check_project_id(project_id)
        return await exports.get_export(self._rt, project_id, retry)

    def watch_export(
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
            ValidationError: A bad argument (raised by the call, before iterating).
            ExportTimeoutError: The deadline passed before a terminal status.
        """
        proto.check_project_id(project_id)
        seconds = proto.check_timeout(timeout)
        return exports.watch_export(
            self._rt, project_id, timeout=seconds, poll_policy=poll, retry=retry, estimate=estimate
        )

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
        proto.check_project_id(project_id)
        seconds = proto.check_timeout(timeout)
        return await exports.wait_for_export(
            self._rt, project_id, timeout=seconds, poll_policy=poll, retry=retry, estimate=estimate
        )

    # -- downloads and batches ---------------------------------------------------------

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

        The video streams in chunks to ``<final>.part`` beside the target (locked, written by
        a worker thread, memory flat whatever the size), is checked against
        ``Content-Length``, and is moved into place only once complete: nobody ever sees a
        half-written file. An interrupted download keeps its ``.part`` for the next one, in
        any process, to resume. A dropped connection resumes with ``Range`` (``If-Range`` on
        the validator); an expired URL is replaced by a fresh one from :meth:`get_export`.
        An existing file is checked with a one-byte probe: complete, it is skipped;
        different, it is never clobbered unless ``overwrite=True``. The API key is never
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
        proto.check_project_id(project_id)
        if not isinstance(overwrite, bool):
            raise ValidationError("overwrite must be a bool", field="overwrite")
        return await download.download_export(
            self._rt, project_id, dest, overwrite=overwrite, progress=progress, retry=retry
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
        return await download.download_exports(
            self._rt,
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
        proto.check_project_id(project_id)
        return download.iter_export_bytes(self._rt, project_id, retry=retry)

    async def export_many(
        self,
        project_ids: Iterable[str] | AsyncIterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        start: bool = True,
        reuse: Literal["completed"] | None = None,
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
        ``dest_dir/<project_id>.mp4`` while the others are still being watched. Tasks and
        memory are bounded by the two concurrency limits, not by the number of IDs.

        A re-run does only what is left, even after the process was killed at any instant:
        the batch keeps a journal in ``dest_dir`` (``.babou-journal.sqlite3``). A finished
        video it recorded is skipped with no request; an export it started that is running
        or completed is followed or downloaded, never started again (a failed one is); a
        partial download is resumed; a file it did not record is checked against the
        server's size (one small probe) before it is called complete. See
        ``docs/exports.md`` for the whole contract.

        Args:
            project_ids: IDs from any iterable or async iterable; duplicates are exported
                once and reported at each of their positions. A collection (list, tuple,
                set) is checked in full before any request; a lazy source (generator, async
                iterable) as it is read, and a bad ID there stops the reading: the IDs read
                before it finish, then its ``ValidationError`` is raised.
            dest_dir: Directory for the videos (created if missing). One batch at a time
                may use it.
            start: Start the exports; ``False`` only follows exports started elsewhere.
            reuse: ``"completed"`` downloads a completed export this batch did not start
                instead of rendering a new one (it may be older than the project's
                current chapters).
            concurrency: Exports followed at once.
            download_concurrency: Downloads at once.
            timeout: Per-project deadline for the export to become terminal.
            poll: Overrides the session's poll policy.
            overwrite: Replace videos already on disk (downloading them again); an export
                this batch started is still reused, not rendered again.
            progress: ``progress(event)`` with an :class:`ExportEvent` per step.

        Returns:
            One :class:`ExportResult` per input ID, in input order. One project failing
            never affects the others; its result carries the error.

        Raises:
            ValidationError: Bad arguments, or ``dest_dir`` is not a writable directory
                (before any request).
            JournalLockedError: Another batch is using ``dest_dir``.
        """
        options = project.checked_options(start, reuse, timeout, poll, overwrite)
        proto.check_positive_int(concurrency, "concurrency")
        proto.check_positive_int(download_concurrency, "download_concurrency")
        return await batch.export_many(
            self._rt,
            project_ids,
            dest_dir,
            options=options,
            concurrency=concurrency,
            download_concurrency=download_concurrency,
            progress=progress,
        )

    async def export_project(
        self,
        project_id: str,
        dest_dir: str | os.PathLike[str],
        *,
        start: bool = True,
        reuse: Literal["completed"] | None = None,
        timeout: float | dt.timedelta = 900.0,
        poll: PollPolicy | None = None,
        overwrite: bool = False,
        progress: EventCallback | None = None,
    ) -> ExportResult:
        """
        Export one project into ``dest_dir``: the job :meth:`export_many` runs for each ID.

        Safe to run again, in any process, after any crash: it shares ``dest_dir``'s
        journal (without holding it exclusively, so several processes may each run
        projects of one directory) and follows the same re-run contract as
        :meth:`export_many`. Meant for job queues: one job per project.

        Args:
            project_id: ``prj_...``.
            dest_dir: Directory for the video (created if missing).
            start: Start the export; ``False`` only follows one started elsewhere.
            reuse: ``"completed"`` downloads a completed export not started here.
            timeout: Deadline for the export to become terminal.
            poll: Overrides the session's poll policy.
            overwrite: Replace a video already on disk.
            progress: ``progress(event)`` with an :class:`ExportEvent` per step.

        Returns:
            The project's :class:`ExportResult` (a failure is a result, not an exception).

        Raises:
            ValidationError: Bad arguments, or ``dest_dir`` is not a writable directory.
        """
        proto.check_project_id(project_id)
        proto.check_callback(progress, "progress")
        options = project.checked_options(start, reuse, timeout, poll, overwrite)
        directory, journal = await batch.open_destination(dest_dir, exclusive=False)
        async with journal:
            return await project.export_project(
                self._rt, project_id, directory, journal=journal, options=options, progress=progress
            )
