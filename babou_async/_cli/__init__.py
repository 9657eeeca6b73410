"""
The ``babou`` command line (``pip install 'babou_async[cli]'``).

This module is the CLI's one import guard. Parsing is done by click and the terminal by
rich (the ``cli`` extra), so they are imported when :func:`main` runs, never when the
package is imported: ``import babou_async`` works without them. Without them :func:`main`
prints one line telling how to install them and returns 2.

Output:

* on a terminal, a live display (a line of counts per status, retries and cut downloads;
  an overall bar with projects done and failed, bytes, throughput and time remaining; one
  bar per active download), a line per failed project, and spinners while a command waits;
* off a terminal, one plain line per event;
* with ``--json``, one JSON object per line (``"type": "result"`` per project, then
  ``"type": "summary"``); notes and warnings then go to standard error;
* with ``--quiet``, only the results and the errors.

Everything printed goes through a writer thread, so a slow or full pipe never stalls the
event loop (and the downloads with it).

Exit codes: 0 all ok, 1 some projects failed (or any API error), 2 usage or configuration
error, 130 interrupted by Ctrl-C (143 by SIGTERM), after a summary of what finished.

The modules below this guard, each importing only from the ones listed before it:

* ``_results``: what a batch did (outcomes, tally, summary) and the exit codes;
* ``_rows``: the typed rows that the thin commands print, and their builders;
* ``_output``: the writer thread and the ``babou: error:`` line;
* ``_input``: project IDs read from a file or standard input;
* ``_display``: the rendering (plain lines, JSON lines, rich's live display and tables);
* ``_running``: running the async code (signals, log routing);
* ``_options``: the global settings and the shared option decorators;
* ``_exports``, ``_resources``, ``_simulate``: the commands, by theme;
* ``_app``: the command tree and the mapping of errors to exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

INSTALL_HINT = (
    "babou: the command line needs click and rich; install them with: "
    "pip install 'babou_async[cli]'"
)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``babou`` command line.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 all ok, 1 some projects failed or an API error, 2 usage or
        configuration error, 130 interrupted.
    """
    # Checked on every call, not once at import: the command modules may be imported
    # already (by an earlier call) while click or rich has gone since.
    try:
        import click  # noqa: F401, PLC0415 - the cli extra is optional: this is its guard
        import rich  # noqa: F401, PLC0415
    except ImportError:
        sys.stderr.write(INSTALL_HINT + "\n")
        return 2
    from ._app import main as run  # noqa: PLC0415 - needs click and rich, checked above

    return run(argv)
