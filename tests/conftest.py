"""Shared fixtures: the built handbook, a real server on loopback, and a real browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Playwright, sync_playwright
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from forms_server.config.env import Settings, load_settings
from forms_server.config.group import PROJECT_ROOT
from forms_server.handbook.build import build_handbook
from forms_server.web.app import create_app
from tests.decided import DECIDED, copy_project
from tests.handbook_pages import HandbookPage, handbook_pages

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Without the background-networking flags Chromium calls Google's hosts at start (refused here).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The handbook, built once per run exactly as `forms-server serve` builds it (strict)."""
    directory = tmp_path_factory.mktemp("site")
    build_handbook(PROJECT_ROOT / "mkdocs.yml", directory)
    return directory


@pytest.fixture(scope="session")
def decided_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's handbook sources with every group decision made (tests/decided.py)."""
    return copy_project(tmp_path_factory.mktemp("decided"), DECIDED)


@pytest.fixture(scope="session")
def decided_site(decided_project: Path) -> Path:
    directory = decided_project / "site"
    build_handbook(decided_project / "mkdocs.yml", directory)
    return directory


@pytest.fixture(scope="session")
def pages() -> list[HandbookPage]:
    return handbook_pages(PROJECT_ROOT / "mkdocs.yml")


@pytest.fixture(scope="session")
def settings(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    environ = {
        "FORMS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "FORMS_SITE_DIR": str(site_dir),
        "FORMS_BUILD_HANDBOOK": "false",
        # The browser tests click faster than a person reads, and post far more than one person.
        "FORMS_MIN_CONFIRM_SECONDS": "0",
        "FORMS_CLIENT_POST_BURST": "1000",
        "FORMS_GLOBAL_POST_BURST": "1000",
    }
    return load_settings(env_file=None, environ=environ)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """An app under uvicorn on loopback, in a thread, for as long as the block runs."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def server_url(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on loopback, as `make run` serves it."""
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def zensical_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same sources built by Zensical, Material's successor, which runs no MkDocs hook: its
    pages get the group's facts through our Markdown extension alone."""
    project = copy_project(tmp_path_factory.mktemp("zensical"))
    zensical = Path(sys.executable).with_name("zensical")
    result = subprocess.run(
        [str(zensical), "build", "--clean"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout + result.stderr, result.stdout + result.stderr
    return project / "site"


@pytest.fixture(scope="session")
def zensical_url(zensical_site: Path) -> Iterator[str]:
    """Zensical's build on a plain static host (gzip, as any host does)."""
    static = Starlette(
        routes=[Mount("/", app=StaticFiles(directory=zensical_site, html=True))],
        middleware=[Middleware(GZipMiddleware)],
    )
    with serving(static) as url:
        yield url


def required_tool(name: str, package: str) -> Path:
    """A program from Debian's packages: CI installs it (.ci/run), so there its absence fails;
    on a machine without it, the test is skipped and says how to get it."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run `apt-get install -y {package}`."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"Debian's Chromium is not at {CHROMIUM}: run `apt-get install -y chromium`."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
