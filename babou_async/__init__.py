"""
babou_async: an asyncio-first client for Babou's video API.

::

    import babou_async

    async with babou_async.BabouSession() as babou:      # key from BABOU_API_KEY
        await babou.start_export("prj_...")
        export = await babou.wait_for_export("prj_...")
        await babou.download_export("prj_...", "videos/")

Everything public is importable from here; the ``_modules`` are private.
:mod:`babou_async.testing` holds the simulator, :class:`~babou_async.testing.FakeBabou`.
"""

from __future__ import annotations

from ._callbacks import EventCallback, ExportEvent, ProgressCallback, ResultCallback
from ._config import PollPolicy, RateLimit, RetryPolicy, Timeouts
from ._exceptions import (
    APIError,
    AuthenticationError,
    BabouError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    DownloadError,
    ExportError,
    ExportFailedError,
    ExportNotReadyError,
    ExportTimeoutError,
    IntegrityError,
    JournalLockedError,
    NotFoundError,
    PayloadTooLargeError,
    RangeNotSatisfiableError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)
from ._hooks import (
    DownloadProgressEvent,
    Hooks,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    StatusChangeEvent,
)
from ._models import (
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
from ._pager import AsyncPager
from ._ranges import parse_range
from ._ratelimit import AdaptiveBudget, FixedBudget, RequestBudget, RequestPriority
from ._seekable import ByteRange, ExportStream
from ._session import BabouSession
from ._version import __version__

__all__ = [
    "APIError",
    "AdaptiveBudget",
    "Asset",
    "AssetState",
    "AsyncPager",
    "AuthenticationError",
    "BabouError",
    "BabouSession",
    "ByteRange",
    "Chapter",
    "ChapterStatus",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "DownloadError",
    "DownloadProgressEvent",
    "DownloadResult",
    "EventCallback",
    "Export",
    "ExportError",
    "ExportEvent",
    "ExportFailedError",
    "ExportNotReadyError",
    "ExportResult",
    "ExportStatus",
    "ExportStream",
    "ExportTimeoutError",
    "FixedBudget",
    "Hooks",
    "IntegrityError",
    "JournalLockedError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PollPolicy",
    "ProgressCallback",
    "Project",
    "Prompt",
    "PromptStatus",
    "PromptSubmission",
    "RangeNotSatisfiableError",
    "RateLimit",
    "RateLimitError",
    "RequestBudget",
    "RequestEvent",
    "RequestPriority",
    "RequestTimeoutError",
    "ResponseEvent",
    "ResultCallback",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "StatusChangeEvent",
    "Timeouts",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "parse_range",
]
