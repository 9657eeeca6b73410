"""Run the standalone Babou simulator: ``python -m babou_async.testing --help``."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
