"""
``python -m benchmarks [--quick] [--json FILE] [--only NAME]``.

Runs every benchmark (or those named), prints one table row per figure, writes the rows
as JSON when asked, and exits 1 when any target was missed or a benchmark broke.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import Options, Result

BENCHMARKS = ("download", "memory", "overhead", "watches", "polling", "budget")
#: Run only when named (``--only``): they take many minutes.
ON_REQUEST = ("polling-realtime", "fleet")


def _load(name: str) -> Callable[[Options], list[Result]]:
    module = importlib.import_module(f"benchmarks._{name.replace('-', '_')}")
    runner: Callable[[Options], list[Result]] = module.run
    return runner


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


HEADER = ("benchmark", "ours", "baseline", "ratio", "unit", "target", "result")


def format_row(result: Result) -> tuple[str, ...]:
    return (
        result.name,
        _fmt(result.ours),
        _fmt(result.baseline),
        _fmt(result.ratio),
        result.unit,
        result.target,
        result.status,
    )


def format_table(results: list[Result]) -> str:
    rows = [HEADER, *(format_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="babou_async benchmarks: ratios against baselines run side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repetition: checks that all runs"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results")
    parser.add_argument(
        "--only",
        action="append",
        choices=(*BENCHMARKS, *ON_REQUEST),
        metavar="NAME",
        help=f"run only NAME (also: {', '.join(ON_REQUEST)}, never run by default)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = Options(quick=args.quick or args.smoke, smoke=args.smoke)
    names = [n for n in (*BENCHMARKS, *ON_REQUEST) if n in (args.only or BENCHMARKS)]
    mode = "smoke" if opts.smoke else "quick" if opts.quick else "full"
    print(f"babou_async benchmarks ({mode}): {', '.join(names)}", flush=True)
    results: list[Result] = []
    timings: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        try:
            got = _load(name)(opts)
        except Exception as exc:
            traceback.print_exc()
            got = [Result(name, None, None, None, "runs", "ERROR", details={"error": repr(exc)})]
        timings[name] = time.perf_counter() - start
        for result in got:
            print("  " + "  ".join(format_row(result)), flush=True)
        print(f"  ({name}: {timings[name]:.1f}s)", flush=True)
        results.extend(got)
    print()
    print(format_table(results))
    missed = [r.name for r in results if r.status in ("FAIL", "ERROR")]
    print()
    print("all targets met" if not missed else f"missed: {', '.join(missed)}")
    if args.json is not None:
        document: dict[str, Any] = {
            "mode": mode,
            "command": " ".join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])]),
            "python": sys.version,
            "platform": platform.platform(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": timings,
            "results": [r.to_json() for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
