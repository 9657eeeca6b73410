"""
Developer and CI sessions.

    nox -s tests        the test suite on every Python 3.10-3.13 found (missing ones skipped)
    nox -s lint         ruff check + ruff format --check
    nox -s typing       mypy --strict on the package and the tests
    nox -s docs         Sphinx, warnings as errors, no network
    nox -s bench        the benchmarks (ratios against baselines run in the same process)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def install_wheel(session: nox.Session, extras: str) -> None:
    """Build the wheel and install it with ``extras``: test what users install, not the tree."""
    wheels = Path(session.create_tmp()) / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), ".")
    (wheel,) = wheels.glob("babou_async-*.whl")
    session.install(f"{wheel}[{extras}]")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite against the built wheel (the package is imported from site-packages)."""
    install_wheel(session, "tests")
    session.run("pytest", *session.posargs, env={"COVERAGE_FILE": f".coverage.{session.python}"})


@nox.session(python=PYTHONS[-1])
def uvloop(session: nox.Session) -> None:
    """The whole suite on uvloop, as web apps under uvicorn run it."""
    install_wheel(session, "tests")
    session.run("pytest", "-q", *session.posargs, env={"BABOU_TEST_UVLOOP": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install(".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    session.install("-e", ".[typing]")
    session.run("mypy", "babou_async", "tests")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "-n", "-b", "html", "docs", "docs/_build/html")
    session.run("sphinx-build", "-W", "-n", "-b", "doctest", "docs", "docs/_build/doctest")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
