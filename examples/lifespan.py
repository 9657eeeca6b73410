"""
One BabouSession for an application's lifetime, without any web framework.

    python examples/lifespan.py

Web frameworks call this pattern a *lifespan*: set-up before the first request, clean-up
after the last. ``lifespan()`` below is a plain async context manager, so it plugs into
FastAPI/Starlette as is (``FastAPI(lifespan=...)``, with the handlers reading
``request.app.state``), or into a worker's ``main()``. It shows the rules that matter:

* create the session once and share it between every task: it is safe for concurrent
  use and shares one connection pool and one rate budget;
* give it the application's own ``aiohttp.ClientSession`` if there is one: BabouSession
  uses it and never closes it, and its owner closes it last;
* map Babou errors to your own answers at the edge (``NotFoundError`` -> 404...).

Without ``BABOU_API_KEY`` it runs against the bundled simulator.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import attrs

from babou_async import BabouError, BabouSession, NotFoundError, PollPolicy
from babou_async.testing import FakeBabou


@attrs.frozen
class Services:
    """What the request handlers need, built once by the lifespan."""

    babou: BabouSession
    http: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(
    *, api_key: str | None = None, base_url: str | None = None, poll: PollPolicy | None = None
) -> AsyncIterator[Services]:
    """Open the shared clients for the application's lifetime, and close them after."""
    async with AsyncExitStack() as stack:
        # Closed last: registered first. An HTTP session shared with other clients must not
        # carry credentials as default headers (they would go to Babou's download host).
        http = await stack.enter_async_context(aiohttp.ClientSession())
        babou = await stack.enter_async_context(
            BabouSession(api_key, base_url=base_url, http_session=http, poll=poll)
        )
        yield Services(babou=babou, http=http)


async def export_status(services: Services, project_id: str) -> tuple[int, str]:
    """A request handler: (HTTP status, body) for ``GET /exports/{project_id}``."""
    try:
        export = await services.babou.get_export(project_id)
    except NotFoundError:
        return 404, f"no export for {project_id}"
    except BabouError as exc:
        return 502, f"Babou: {exc}"
    if export.error:
        return 200, f"{export.status}: {export.error}"
    return 200, str(export.status)


async def main() -> None:
    async with AsyncExitStack() as stack:
        if os.environ.get("BABOU_API_KEY"):
            services = await stack.enter_async_context(lifespan())
            project_ids = []
            async for project in services.babou.list_projects():
                project_ids.append(project.id)
                if len(project_ids) == 5:
                    break
        else:
            fake = await stack.enter_async_context(FakeBabou())
            print("No BABOU_API_KEY: using the simulator")
            project_ids = [fake.seed_project(f"Project {n}") for n in range(3)]
            services = await stack.enter_async_context(
                lifespan(api_key=fake.api_key, base_url=fake.base_url, poll=PollPolicy.fast())
            )
            await services.babou.start_export(project_ids[0])
            await services.babou.wait_for_export(project_ids[0])
            await services.babou.start_export(project_ids[1])
            project_ids.append("prj_doesnotexist")

        # Many concurrent "requests" share the one session.
        answers = await asyncio.gather(*(export_status(services, pid) for pid in project_ids))
        for pid, (status, body) in zip(project_ids, answers, strict=True):
            print(f"GET /exports/{pid} -> {status} {body}")
        session_open = not services.http.closed
    print(f"HTTP session open while serving: {session_open}; closed after: {services.http.closed}")


if __name__ == "__main__":
    asyncio.run(main())
