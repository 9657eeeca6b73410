"""The connection slots of the transport: no slot lost, none handed twice, arrival order kept."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from babou_async._transport import _Slots

OPS = st.lists(st.sampled_from(["take", "cancel", "release", "abandon"]), max_size=60)


@given(ops=OPS, size=st.integers(1, 4))
def test_slots_are_never_lost_nor_handed_twice(ops: list[str], size: int) -> None:
    """Any mix of callers arriving, giving up while waiting, finishing, or cancelled once handed."""

    async def run() -> None:
        slots = _Slots(size)
        holding: list[asyncio.Future[None] | None] = []  # callers with a slot (None: at once)
        waiting: list[asyncio.Future[None]] = []  # in arrival order
        for op in ops:
            if op == "take":
                handed = slots.take()
                (holding if handed is None else waiting).append(handed)  # type: ignore[arg-type]
            elif op == "cancel" and waiting:
                gone = waiting.pop(len(waiting) // 2)
                gone.cancel()
                slots.abandon(gone)
            elif op == "release" and holding:
                holding.pop(0)
                slots.give_back()
            elif op == "abandon" and any(h is not None for h in holding):
                # Handed a slot, then cancelled before it ran: abandon gives the slot back.
                handed = next(h for h in holding if h is not None)
                holding.remove(handed)
                slots.abandon(handed)
            # Whoever was handed a slot now holds it: always the first still waiting.
            while waiting and waiting[0].done():
                holding.append(waiting.pop(0))
            assert not any(w.done() for w in waiting), "a slot skipped the queue"
            assert len(holding) + slots.free == size, "a slot was lost or made up"
            assert slots.waiting == len(waiting)
            assert slots.free == 0 or not waiting, "a free slot while callers wait"

    asyncio.run(run())
