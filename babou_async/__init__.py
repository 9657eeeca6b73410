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

from ._batch import EventCallback, ExportEvent
from ._config import PollPolicy, RateLimit, RetryPolicy, Timeouts
from ._download import ProgressCallback, ResultCallback
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
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
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
from ._session import AsyncPager, BabouSession
from ._version import __version__

__all__ = [
    "APIError",
    "Asset",
    "AssetState",
    "AsyncPager",
    "AuthenticationError",
    "BabouError",
    "BabouSession",
    "Chapter",
    "ChapterStatus",
    "ConfigurationError",
    "ConflictError",
    "DecodeError",
    "DownloadError",
    "DownloadResult",
    "EventCallback",
    "Export",
    "ExportError",
    "ExportEvent",
    "ExportFailedError",
    "ExportNotReadyError",
    "ExportResult",
    "ExportStatus",
    "ExportTimeoutError",
    "IntegrityError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PollPolicy",
    "ProgressCallback",
    "Project",
    "Prompt",
    "PromptStatus",
    "PromptSubmission",
    "RateLimit",
    "RateLimitError",
    "RequestTimeoutError",
    "ResultCallback",
    "RetryPolicy",
    "ServerError",
    "Timeouts",
    "TransportError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
]
