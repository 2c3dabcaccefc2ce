"""Every handbook page in a real browser: accessible, private on the wire, readable anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Response, expect

from forms_server.handbook.precompress import MINIMUM_BYTES
from tests.browser import visit
from tests.handbook_pages import HandbookPage
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL

pytestmark = pytest.mark.browser

FIRST_VIEW_BUDGET_BYTES = 70 * 1024


def reveal_state(violation_id: str, node: dict[str, Any]) -> bool:
    """aria-expanded on a radio that reveals a question (aria-controls), as GOV.UK's radios
    have it: ARIA does not list it for role radio, so axe reports it; GOV.UK Frontend keeps it
    because screen readers announce it, and turns this rule off for its radios
    (alphagov/govuk-frontend#979). Only that attribute on such a radio is let through."""
    if violation_id != "aria-allowed-attr":
        return False
    html = str(node.get("html", ""))
    checks = [*node.get("any", []), *node.get("all", []), *node.get("none", [])]
    failing = [str(item) for check in checks for item in check.get("data") or []]
    return (
        'type="radio"' in html
        and "aria-controls=" in html
        and bool(failing)
        and all(item.startswith("aria-expanded=") for item in failing)
    )


# What axe checks, said rather than left to its defaults: WCAG 2.0, 2.1 and 2.2 at A and AA,
# and Deque's best practices (headings, landmarks, regions...).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page: Page) -> list[dict[str, Any]]:
    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]},
    )
    violations: list[dict[str, Any]] = results.response["violations"]
    found = []
    for v in violations:
        nodes = [node["target"] for node in v["nodes"] if not reveal_state(v["id"], node)]
        if nodes:
            found.append({"id": v["id"], "nodes": nodes[:3]})
    return found


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_axe_finds_nothing_on_any_page(
    browser: Browser, server_url: str, pages: list[HandbookPage], color_scheme: str
) -> None:
    found = {}
    with visit(browser, server_url, EXIT_URL, color_scheme=color_scheme) as record:
        for handbook_page in pages:
            record.page.goto(f"{server_url}/{handbook_page.url_path}")
            violations = axe_violations(record.page)
            if violations:
                found[handbook_page.source] = violations
        assert record.requests_elsewhere == []
    assert found == {}


def test_no_page_asks_another_host_for_anything_or_logs_an_error(
    browser: Browser, server_url: str, pages: list[HandbookPage]
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        for handbook_page in pages:
            record.page.goto(f"{server_url}/{handbook_page.url_path}")
            record.page.wait_for_load_state("networkidle")
        assert record.requests_elsewhere == []
        # The Content-Security-Policy reports anything it blocks here, as would a broken asset.
        assert record.console_errors == []


@pytest.mark.parametrize(
    "viewport",
    [
        {"width": 320, "height": 640},  # a small phone
        {"width": 640, "height": 400},  # a 1280 px laptop screen zoomed to 200%
    ],
)
def test_no_page_scrolls_sideways(
    browser: Browser, server_url: str, pages: list[HandbookPage], viewport: dict[str, int]
) -> None:
    too_wide = {}
    with visit(browser, server_url, EXIT_URL, viewport=viewport) as record:
        for handbook_page in pages:
            record.page.goto(f"{server_url}/{handbook_page.url_path}")
            width = record.page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"]:
                too_wide[handbook_page.source] = width
    assert too_wide == {}


def test_printing_shows_the_words_without_navigation_or_the_exit_button(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(server_url + "/guidelines/online-safety/")
        page.emulate_media(media="print")
        expect(page.get_by_role("link", name=EXIT_BUTTON_NAME)).to_be_hidden()
        expect(page.locator(".md-header")).to_be_hidden()
        expect(page.locator(".md-sidebar--primary")).to_be_hidden()
        expect(page.locator("article h1")).to_be_visible()


def test_dark_mode_follows_the_device(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL, color_scheme="dark") as record:
        record.page.goto(server_url + "/")
        expect(record.page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")


def test_the_first_view_of_the_home_page_is_small(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        responses: list[Response] = []

        def keep(response: Response) -> None:
            responses.append(response)

        record.page.on("response", keep)
        record.page.goto(server_url + "/")
        record.page.wait_for_load_state("networkidle")
        transferred = sum(
            r.request.sizes()["responseBodySize"] + r.request.sizes()["responseHeadersSize"]
            for r in responses
        )
        encodings = {r.url: r.headers.get("content-encoding") for r in responses}
        # Below this, compression is not worth its headers, so the build leaves a file as it is.
        worth_compressing = {r.url for r in responses if len(r.body()) >= MINIMUM_BYTES}
    assert len(responses) >= 4, encodings  # the page, its CSS and JS: a real first view
    # Compressed at the build: brotli for a browser that asks for it (Chromium does), else gzip.
    assert all(
        encoding in {"br", "gzip"}
        for url, encoding in encodings.items()
        if url.endswith((".css", ".js")) and url in worth_compressing
    ), encodings
    assert transferred <= FIRST_VIEW_BUDGET_BYTES, f"{transferred} bytes"


FOCUSED = """() => {
  const element = document.activeElement;
  return {
    inDrawer: !!element.closest('.md-sidebar--primary'),
    inMain: !!element.closest('main .md-content'),
    role: element.getAttribute('role') || (element.tagName === 'BUTTON' ? 'button' : null),
    name: element.getAttribute('aria-label') || element.textContent.trim().slice(0, 40),
    expanded: element.getAttribute('aria-expanded'),
  };
}"""


def test_at_phone_width_the_closed_menu_is_out_of_the_tab_order_and_its_button_works(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL, viewport={"width": 320, "height": 640}) as record:
        page = record.page
        page.goto(f"{server_url}/guidelines/")
        before_content: list[dict[str, Any]] = []
        for _ in range(30):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused["inMain"]:
                break
            before_content.append(focused)
        assert [f["name"] for f in before_content if f["inDrawer"]] == []
        assert len(before_content) <= 8  # skip link, logo, menu, quick exit: not 23 to 29 links
        menus = [f for f in before_content if f["role"] == "button" and f["name"] == "Menu"]
        assert menus == [{**menus[0], "expanded": "false"}]
        # The menu button opens the drawer, and focus goes into it.
        page.keyboard.press("Shift+Tab")
        while page.evaluate(FOCUSED)["name"] != "Menu":
            page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        menu = page.get_by_role("button", name="Menu")
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(page.locator(".md-sidebar--primary a[href]:visible").first).to_be_focused()
        # Escape closes it and returns to the button.
        page.keyboard.press("Escape")
        expect(menu).to_be_focused()
        expect(menu).to_have_attribute("aria-expanded", "false")
        assert record.console_errors == []


def test_the_help_now_box_is_as_large_as_the_text_around_it(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/")
        sizes = page.evaluate(
            """() => {
              const size = (selector) =>
                parseFloat(getComputedStyle(document.querySelector(selector)).fontSize);
              return {box: size('article .admonition p:last-child'),
                      text: size('article > p')};
            }"""
        )
        assert sizes["box"] >= sizes["text"]
        expect(page.locator("article .admonition").first).to_contain_text("call 999")


@pytest.mark.parametrize("key", ["n", "p", ".", ","])
def test_no_single_key_moves_the_reader_to_another_page(
    browser: Browser, server_url: str, key: str
) -> None:
    """WCAG 2.1.4 (level A): the theme's n, p, "." and "," went to the next or previous page,
    so a tremor or a word said to speech input moved a reader away from what they read."""
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/guidelines/taking-part/")
        page.locator("main").click(position={"x": 5, "y": 5})
        page.keyboard.press(key)
        page.wait_for_timeout(300)
        assert page.url == f"{server_url}/guidelines/taking-part/"
        # Typed into a field, the same key is simply text (the search box).
        page.goto(f"{server_url}/search/")
        field = page.get_by_role("searchbox").or_(page.get_by_role("textbox")).first
        field.click()
        page.keyboard.press(key)
        assert field.input_value() == key
