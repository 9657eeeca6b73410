"""A small soak on each simulator (the full one: ``python -m tests.differential.soak``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .soak import SOAKS, Simulator


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.parametrize("simulator", sorted(SOAKS))
async def test_a_small_soak_ends_byte_identical_with_no_render_paid_twice(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Every fault at once, re-run until done: identical bytes, one render per project."""
    report = await SOAKS[simulator](60, 3, tmp_path, concurrency=60)
    assert report.exports == 60
    assert report.renders == 60 + report.failed_renders
    assert report.rounds >= 1
