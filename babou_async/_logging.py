"""
The package's loggers, named after what they report, quiet unless the application asks.

As libraries should (https://docs.python.org/3/howto/logging.html#configuring-logging-for-a-library),
the package logger ``babou_async`` carries a :class:`logging.NullHandler` and nothing else:
an application that never configures logging sees nothing, not even the warnings that
Python's last-resort handler would otherwise print on stderr; one that does configure it
gets every record through propagation, and may tune each child:

* ``babou_async.http``: one DEBUG line per request (method, path, status, elapsed time,
  request ID), and one INFO line per retry;
* ``babou_async.download``: resumed downloads and refreshed URLs (INFO);
* ``babou_async.export``: watches polling through failures, adopted exports (INFO);
* ``babou_async.batch``: projects of a batch that failed on a bug (ERROR);
* ``babou_async.callbacks``: exceptions raised by the application's callbacks and hooks
  (ERROR, with the traceback).

WARNING and above mean a person should look; everything the library rides through on its
own (a retry, a resume) is INFO. The API key never appears in a record.
"""

from __future__ import annotations

import logging

__all__ = ["batch_log", "callbacks_log", "download_log", "export_log", "http_log", "package_log"]

#: The package logger: a NullHandler, no level (the application decides).
package_log = logging.getLogger("babou_async")
package_log.addHandler(logging.NullHandler())

#: Requests (DEBUG, one line each) and retries (INFO).
http_log = logging.getLogger("babou_async.http")
#: Downloads: resumes and URL refreshes (INFO).
download_log = logging.getLogger("babou_async.download")
#: Export watches and starts (INFO).
export_log = logging.getLogger("babou_async.export")
#: Batches (ERROR for a project that failed on a bug).
batch_log = logging.getLogger("babou_async.batch")
#: Exceptions raised by the application's callbacks and hooks (ERROR).
callbacks_log = logging.getLogger("babou_async.callbacks")
