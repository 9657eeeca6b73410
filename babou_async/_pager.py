"""The result of a ``list_*`` call: lazy pages, iterated or awaited whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from ._models import Asset, Page, Project

__all__ = ["AsyncPager", "item_id"]

T = TypeVar("T")


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


def item_id(item: Project | Asset) -> str:
    """The key pages are deduplicated by."""
    return item.id
