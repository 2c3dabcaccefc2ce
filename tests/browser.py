"""Helpers for the browser tests: a page that records every request and every console error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
)

from tests.conftest import CHROMIUM, CHROMIUM_ARGS

EXIT_PAGE_HTML = "<!doctype html><html lang='en'><title>Weather</title><h1>Weather</h1></html>"


@dataclass
class Visit:
    page: Page
    requests_elsewhere: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def visit(
    browser: Browser, server_url: str, exit_url: str, **context_options: Any
) -> Iterator[Visit]:
    """A fresh browser context in which any request to another host is refused and recorded.

    The quick exit's own site cannot be reached from here (no internet), so its address answers
    with a stand-in page; reaching it is what the quick exit tests look for.
    """
    context = browser.new_context(**context_options)
    try:
        yield watched(context, server_url, exit_url)
    finally:
        context.close()


@contextmanager
def visit_with_profile(
    playwright: Playwright,
    profile: Path,
    server_url: str,
    exit_url: str,
    **context_options: Any,
) -> Iterator[Visit]:
    """As `visit`, in a browser with its own profile folder on disk (its session and tab
    files, its cache, its autofill table), which is complete once this ends."""
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, **context_options
    )
    try:
        yield watched(context, server_url, exit_url)
    finally:
        context.close()


def watched(context: BrowserContext, server_url: str, exit_url: str) -> Visit:
    own_host = urlsplit(server_url).netloc
    exit_host = urlsplit(exit_url).netloc
    page = context.pages[0] if context.pages else context.new_page()
    record = Visit(page)

    def route(route: Route) -> None:
        host = urlsplit(route.request.url).netloc
        if host == own_host or route.request.url.startswith("data:"):
            route.continue_()
        elif host == exit_host and route.request.is_navigation_request():
            route.fulfill(status=200, content_type="text/html", body=EXIT_PAGE_HTML)
        else:
            record.requests_elsewhere.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        # A form sent back with its errors has status 400, which Chromium reports as an error.
        expected_400 = message.text.endswith("status of 400 (Bad Request)") and "/forms/" in str(
            message.location.get("url", "")
        )
        if message.type == "error" and not expected_400:
            record.console_errors.append(message.text)

    def on_request_failed(request: Request) -> None:
        if urlsplit(request.url).netloc == own_host:
            record.console_errors.append(f"request failed: {request.url} ({request.failure})")

    context.route("**/*", route)
    page.on("console", on_console)
    page.on("requestfailed", on_request_failed)
    return record
