"""
Fixtures of the web tests: the example apps, each a real subprocess on a free loopback port.

The apps run as users run them (``python examples/<name>.py --port P``, no ``BABOU_*``
variable, so on their bundled simulator); the same route tests run against both.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from blockbuster import BlockBuster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
APPS = ["aiohttp_app", "fastapi_app"]


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A port free on 127.0.0.1 now (the app binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/projects", timeout=5):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within 60s")


@pytest.fixture(scope="module", params=APPS)
def app_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of one example app, started as a subprocess on its simulator."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABOU_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(EXAMPLES / f"{request.param}.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # warnings only: a few lines at most
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        # Both apps shut down cleanly on SIGTERM (the lifespan, the cleanup_ctx); uvicorn
        # then exits by the signal, aiohttp with 0.
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode in (0, -signal.SIGTERM), stderr.decode()
        assert b"Traceback" not in stderr, stderr.decode()


@pytest.fixture(autouse=True)
def _simulator_calls_wait_for_its_thread(
    request: pytest.FixtureRequest, blockbuster: BlockBuster
) -> None:
    """
    Let async tests call ``babou_fake``, whose every call waits for the simulator's thread.

    That wait (a lock, microseconds long) is how the plugin makes the simulator thread-safe;
    blockbuster would report it as a blocking call of the test's event loop.
    """
    if "babou_fake" in request.fixturenames:
        for name in ("threading.Lock.acquire", "threading.Lock.acquire_lock"):
            blockbuster.functions[name].deactivate()
