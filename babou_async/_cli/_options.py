"""
The global settings and the options shared by several commands, each declared once.

The global options (``--base-url``, ``--api-key``, ``--poll-interval``, ``-v``, ``-q``) are
accepted before the command and after it: :func:`global_options` decorates the root group,
the sub-groups and every leaf command alike, and each occurrence stores into the one
:class:`Settings` object of the run. The group's value (command line, environment or
default) comes first; a value typed after the command wins over it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import attrs
import click
from click.core import ParameterSource

from babou_async import BabouSession, ConfigurationError, PollPolicy
from babou_async import _protocol as proto

from ._running import library_log

__all__ = [
    "Settings",
    "checked_ids",
    "concurrency_option",
    "global_options",
    "json_option",
    "out_option",
    "overwrite_option",
    "pass_settings",
    "project_argument",
    "project_ids_argument",
    "timeout_option",
    "wait_option",
]

F = TypeVar("F", bound=Callable[..., object])


@attrs.define
class Settings:
    """The global options of one run, shared by every command through click's context."""

    base_url: str | None = None
    api_key: str | None = None
    poll_interval: float | None = None
    verbose: int = 0
    #: ``--quiet``: print nothing but the results and the errors.
    quiet: bool = False

    def session(self) -> BabouSession:
        """Build the session, or fail with one line naming BABOU_API_KEY."""
        if not self.api_key or not self.api_key.strip():
            raise ConfigurationError(
                "no API key: set the BABOU_API_KEY environment variable or pass --api-key"
            )
        poll = None
        if self.poll_interval is not None:
            poll = PollPolicy(
                initial_delay=self.poll_interval,
                max_delay=max(self.poll_interval, PollPolicy().max_delay),
            )
        return BabouSession(api_key=self.api_key, base_url=self.base_url, poll=poll)


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def _store(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """
    Record a global option in the run's :class:`Settings`.

    On the root group every value counts (it may come from the environment or be the
    default); further down only one typed on the command line does, so that the
    environment, read again there, never overrides ``babou --api-key KEY ...``.
    """
    name = param.name
    if name is None:
        raise AssertionError("unreachable")  # every global option is named
    if ctx.parent is not None and ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
        return
    settings = ctx.ensure_object(Settings)
    setattr(settings, name, value)
    if name == "verbose" and settings.verbose:
        library_log.setLevel(logging.DEBUG if settings.verbose > 1 else logging.INFO)
    if name == "quiet" and settings.quiet:
        # Nothing but results and errors: the library's warnings go too (batch commands
        # still count its retries; see _running.showing).
        library_log.setLevel(logging.ERROR)


_GLOBAL_OPTIONS = (
    click.option(
        "--base-url",
        envvar="BABOU_BASE_URL",
        metavar="URL",
        expose_value=False,
        callback=_store,
        help="API root (env BABOU_BASE_URL; default https://api.babou.ai/api/v1).",
    ),
    click.option(
        "--api-key",
        envvar="BABOU_API_KEY",
        metavar="KEY",
        expose_value=False,
        callback=_store,
        help="API key (env BABOU_API_KEY); never printed.",
    ),
    click.option(
        "--poll-interval",
        type=click.FloatRange(min=0.01),
        metavar="SECONDS",
        expose_value=False,
        callback=_store,
        help="First delay between status polls (default 2; lower for a local simulator).",
    ),
    click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_store,
        help="Also show informational log lines (-vv: one line per request too).",
    ),
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_store,
        help="Print nothing but results and errors: no progress, notes or warnings.",
    ),
)


def global_options(func: F) -> F:
    """Add the global options to a group or a command (read them with :data:`pass_settings`)."""
    for option in reversed(_GLOBAL_OPTIONS):
        func = option(func)
    return func


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line."
)

#: The ``PRJ`` argument of the commands about one project.
project_argument = click.argument("project_id", metavar="PRJ")


def project_ids_argument(*, required: bool) -> Callable[[F], F]:
    """The ``PRJ...`` arguments of the batch commands."""
    return click.argument("project_ids", nargs=-1, required=required, metavar="PRJ...")


def checked_ids(values: Sequence[str]) -> list[str]:
    """Validate project IDs given on the command line (a bad one is a usage error)."""
    for pid in values:
        proto.check_project_id(pid)
    return list(values)


def out_option(
    *, default: Path | None = None, text: str = "Directory for the videos (<project_id>.mp4)."
) -> Callable[[F], F]:
    """``--out DIR``: required unless it has a ``default``."""
    kind = click.Path(file_okay=False, path_type=Path)
    if default is None:
        # No `default=None` here: click 8.3 takes an explicit None for a real default,
        # and `required` would then never fire.
        return click.option("--out", required=True, type=kind, help=text)
    return click.option("--out", type=kind, default=default, show_default=True, help=text)


def concurrency_option(name: str, *, default: int, text: str) -> Callable[[F], F]:
    """``--concurrency N`` (or another ``name``): how many at once, at least 1."""
    return click.option(
        name, type=click.IntRange(min=1), default=default, show_default=True, help=text
    )


def timeout_option(*, default: float, text: str) -> Callable[[F], F]:
    """``--timeout SECONDS``: a positive deadline."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help=text,
    )


def overwrite_option(text: str) -> Callable[[F], F]:
    """``--overwrite``: replace what is already on disk."""
    return click.option("--overwrite", is_flag=True, help=text)


def wait_option(text: str) -> Callable[[F], F]:
    """``--wait``: block until the thing is ready (see :func:`timeout_option`)."""
    return click.option("--wait", is_flag=True, help=text)
