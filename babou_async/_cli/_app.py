"""The ``babou`` command tree, and how its errors become one line and an exit status."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from babou_async import BabouError, ConfigurationError, ValidationError, __version__

from ._exports import download_cmd, export_cmd, status_cmd
from ._fleet import enqueue_cmd, worker_cmd
from ._options import Settings, global_options
from ._output import fail
from ._resources import assets_group, chapters_group, projects_group, prompt_cmd
from ._results import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, describe_error
from ._running import warnings_to_stderr
from ._simulate import demo_cmd, simulate_cmd

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, "--version", prog_name="babou")
def cli() -> None:
    """Babou's video API from the command line: export, follow and download videos."""


for _command in (
    export_cmd,
    download_cmd,
    status_cmd,
    demo_cmd,
    simulate_cmd,
    projects_group,
    chapters_group,
    prompt_cmd,
    assets_group,
    enqueue_cmd,
    worker_cmd,
):
    cli.add_command(_command)


def exit_code_for(error: BabouError) -> int:
    """2 for configuration errors and input rejected before sending, 1 otherwise."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, ValidationError) and error.status is None:
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (click and rich are importable: see :func:`babou_async._cli.main`)."""
    settings = Settings()
    try:
        with warnings_to_stderr(lambda: settings.api_key):
            result = cli.main(
                args=list(argv) if argv is not None else None,
                prog_name="babou",
                standalone_mode=False,
                obj=settings,
            )
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("babou: interrupted\n")
        return EXIT_INTERRUPTED
    except BabouError as exc:
        # In the command line's terms: a 404 of a base URL without /api/v1 says so.
        fail(describe_error(exc, None, settings.base_url) or type(exc).__name__, settings.api_key)
        return exit_code_for(exc)
    except OSError as exc:
        fail(str(exc), settings.api_key)
        return EXIT_FAILED
    return result if isinstance(result, int) else EXIT_OK
