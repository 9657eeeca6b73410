"""
Thin wrappers of the rest of the API: ``projects``, ``chapters``, ``prompt`` and ``assets``.

Each prints its rows as tab-separated fields (the ID first, to compose in a shell), a
table on a terminal, or JSON lines with ``--json``.
"""

from __future__ import annotations

from pathlib import Path

import click

from babou_async import BabouSession
from babou_async import _protocol as proto

from ._display import make_waiter, print_rows
from ._options import (
    Settings,
    global_options,
    json_option,
    pass_settings,
    project_argument,
    timeout_option,
    wait_option,
)
from ._results import EXIT_FAILED, EXIT_OK
from ._rows import (
    ASSET_COLUMNS,
    CHAPTER_COLUMNS,
    PROJECT_COLUMNS,
    PROMPT_COLUMNS,
    AssetRow,
    ChapterRow,
    ProjectRow,
    PromptRow,
    asset_row,
    chapter_row,
    created_project_row,
    project_row,
    prompt_row,
)
from ._running import run_session

__all__ = ["assets_group", "chapters_group", "projects_group", "prompt_cmd"]

#: Statuses (of a chapter, of an asset) after which ``--wait`` exits 1.
_FAILED = ("error", "failed")

_WAIT_TIMEOUT = "With --wait: deadline in seconds."


# -- projects -----------------------------------------------------------------------------


@click.group("projects")
@global_options
def projects_group() -> None:
    """List and create projects."""


@projects_group.command("list")
@json_option
@global_options
@pass_settings
def projects_list(settings: Settings, as_json: bool) -> int:
    """List the projects of this key."""

    async def body(session: BabouSession) -> list[ProjectRow]:
        return [project_row(p) async for p in session.list_projects()]

    print_rows(run_session(settings.session(), body), PROJECT_COLUMNS, as_json)
    return EXIT_OK


@projects_group.command("create")
@click.argument("name")
@click.option("--description", help="At most 1000 characters.")
@json_option
@global_options
@pass_settings
def projects_create(settings: Settings, name: str, description: str | None, as_json: bool) -> int:
    """Create a project and print its ID."""

    async def body(session: BabouSession) -> ProjectRow:
        return created_project_row(await session.create_project(name, description=description))

    print_rows([run_session(settings.session(), body)], PROJECT_COLUMNS[:2], as_json)
    return EXIT_OK


# -- chapters and prompts -----------------------------------------------------------------


@click.group("chapters")
@global_options
def chapters_group() -> None:
    """List and create the chapters of a project."""


@chapters_group.command("list")
@project_argument
@json_option
@global_options
@pass_settings
def chapters_list(settings: Settings, project_id: str, as_json: bool) -> int:
    """List a project's chapters with their status."""
    proto.check_project_id(project_id)

    async def body(session: BabouSession) -> list[ChapterRow]:
        return [chapter_row(c) for c in await session.list_chapters(project_id)]

    print_rows(run_session(settings.session(), body), CHAPTER_COLUMNS, as_json)
    return EXIT_OK


@chapters_group.command("create")
@project_argument
@click.argument("name")
@click.option("--duration", type=click.IntRange(min=1), help="Seconds.")
@json_option
@global_options
@pass_settings
def chapters_create(
    settings: Settings, project_id: str, name: str, duration: int | None, as_json: bool
) -> int:
    """Add a chapter to a project and print its ID."""
    proto.check_project_id(project_id)

    async def body(session: BabouSession) -> ChapterRow:
        return chapter_row(await session.create_chapter(project_id, name, duration=duration))

    print_rows([run_session(settings.session(), body)], CHAPTER_COLUMNS[:2], as_json)
    return EXIT_OK


@click.command("prompt")
@project_argument
@click.argument("chapter_id", metavar="CHT")
@click.argument("text")
@click.option("--force", is_flag=True, help="Replace a prompt still processing.")
@wait_option("Wait until the chapter is ready.")
@timeout_option(default=600.0, text=_WAIT_TIMEOUT)
@json_option
@global_options
@pass_settings
def prompt_cmd(
    settings: Settings,
    project_id: str,
    chapter_id: str,
    text: str,
    force: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> int:
    """Submit a prompt to a chapter (and optionally wait for it)."""
    proto.check_project_id(project_id)
    proto.check_chapter_id(chapter_id)

    waiter = make_waiter("submitting the prompt", quiet=settings.quiet or not wait)

    async def body(session: BabouSession) -> PromptRow:
        sub = await session.submit_prompt(project_id, chapter_id, text, force=force)
        if not wait:
            return prompt_row(sub)
        estimate = f", estimated {sub.estimated_time}" if sub.estimated_time else ""
        waiter.show(f"rendering the prompt{estimate}")
        chapter = await session.wait_for_chapter(
            project_id, chapter_id, timeout=timeout, estimate=sub.estimated_seconds
        )
        return prompt_row(sub, chapter)

    with waiter:
        row = run_session(settings.session(), body)
    columns = [*PROMPT_COLUMNS, ("chapter_status", "Chapter")] if wait else PROMPT_COLUMNS
    print_rows([row], columns, as_json)
    return EXIT_FAILED if row.get("chapter_status") in _FAILED else EXIT_OK


# -- assets -------------------------------------------------------------------------------


@click.group("assets")
@global_options
def assets_group() -> None:
    """Upload and list media assets."""


@assets_group.command("upload")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--content-type", help="MIME type (guessed from the extension by default).")
@wait_option("Wait until the asset is ready.")
@timeout_option(default=600.0, text=_WAIT_TIMEOUT)
@json_option
@global_options
@pass_settings
def assets_upload(
    settings: Settings,
    file: Path,
    content_type: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> int:
    """Upload a media file (streamed from disk)."""
    waiter = make_waiter(f"uploading {file.name}", quiet=settings.quiet or not wait)

    async def body(session: BabouSession) -> AssetRow:
        asset = await session.upload_asset(file, content_type=content_type)
        if wait:
            waiter.show(f"processing {file.name}")
            asset = await session.wait_for_asset(asset.id, timeout=timeout)
        return asset_row(asset)

    with waiter:
        row = run_session(settings.session(), body)
    print_rows([row], ASSET_COLUMNS, as_json)
    return EXIT_FAILED if row["state"] in _FAILED else EXIT_OK


@assets_group.command("list")
@click.option("--state", help="uploading, processing, ready or error.")
@click.option("--content-type", help="Only this MIME type.")
@json_option
@global_options
@pass_settings
def assets_list(
    settings: Settings, state: str | None, content_type: str | None, as_json: bool
) -> int:
    """List uploaded assets."""

    async def body(session: BabouSession) -> list[AssetRow]:
        return [
            asset_row(a) async for a in session.list_assets(state=state, content_type=content_type)
        ]

    print_rows(run_session(settings.session(), body), ASSET_COLUMNS, as_json)
    return EXIT_OK
