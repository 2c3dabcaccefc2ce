"""Search in a real browser: typed, read out, reached by keyboard, and the same without
JavaScript, at no cost to any other page's first view."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.browser import visit
from tests.test_browser_pages import axe_violations
from tests.test_browser_quick_exit import EXIT_URL

pytestmark = pytest.mark.browser

RESULT_LINKS = "[data-search-results] a"


def result_paths(page: Page, selector: str) -> list[str]:
    hrefs = page.locator(selector).evaluate_all("links => links.map(link => link.href)")
    return [
        urlsplit(href).path + ("#" + urlsplit(href).fragment if "#" in href else "")
        for href in hrefs
    ]


def open_search(page: Page, server_url: str) -> None:
    page.goto(f"{server_url}/search/")
    expect(page.locator("[data-handbook-search][data-search-ready]")).to_have_count(1)


def test_results_show_as_the_member_types_and_are_announced(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        open_search(page, server_url)
        assert axe_violations(page) == []
        page.get_by_label("Search the handbook").press_sequentially("cam")
        first = page.locator(RESULT_LINKS).first
        expect(first).to_have_attribute("href", f"{server_url}/joining/faq/#do-i-need-my-camera-on")
        expect(first.locator("mark")).to_have_text("camera")
        count = page.locator(RESULT_LINKS).count()
        status = page.get_by_role("status").filter(has_text="results for")
        expect(status).to_have_text(f"{count} results for cam")
        assert axe_violations(page) == []
        page.get_by_label("Search the handbook").fill("zzqx")
        expect(page.get_by_role("status").filter(has_text="0 results")).to_contain_text(
            "Try a shorter word"
        )
        expect(page.locator("[data-search-results]")).to_be_hidden()
        assert axe_violations(page) == []
        first_result_goes_to_its_section(page, server_url)
        assert record.requests_elsewhere == []
        assert record.console_errors == []


def first_result_goes_to_its_section(page: Page, server_url: str) -> None:
    page.get_by_label("Search the handbook").fill("need to leave early")
    page.locator(RESULT_LINKS).first.click()
    expect(page).to_have_url(f"{server_url}/joining/faq/#what-if-i-need-to-leave-early")
    expect(page.locator("h2#what-if-i-need-to-leave-early")).to_be_in_viewport()


def search_without_javascript(browser: Browser, server_url: str, query: str) -> list[str]:
    """What the server's page finds, asked as a browser without JavaScript asks it."""
    with visit(browser, server_url, EXIT_URL, java_script_enabled=False) as record:
        page = record.page
        page.goto(f"{server_url}/search/")
        page.get_by_label("Search the handbook").fill(query)
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(f"{server_url}/search")
        expect(page.locator(".search-count")).to_contain_text(" for ")
        return result_paths(page, "ol.search-results a")


@pytest.mark.parametrize(
    "query",
    [
        "camera",
        "leave group",
        "999",
        "confidential",
        "zzqx",
        "cameras",  # a plural
        "confidentail",  # a typo
        "how do I leave the group",  # a question
        "leave camera",  # no section with every word
        "delete my data",
        "suicidal",  # someone who needs help now
        "I want to kill myself",
    ],
)
def test_the_script_finds_what_the_server_finds(
    browser: Browser, server_url: str, query: str
) -> None:
    from_server = search_without_javascript(browser, server_url, query)
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        open_search(page, server_url)
        page.get_by_label("Search the handbook").fill(query)
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("status").filter(has_text="for " + query)).to_have_count(1)
        assert result_paths(page, RESULT_LINKS) == from_server


def tab_until(page: Page, expression: str, wanted: str, most_presses: int) -> None:
    for _ in range(most_presses):
        page.keyboard.press("Tab")
        if page.evaluate(expression) == wanted:
            return
    pytest.fail(f"{most_presses} presses of Tab never reached {wanted!r}")


def test_search_is_reached_and_used_with_the_keyboard_alone(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/")
        tab_until(page, "document.activeElement.getAttribute('aria-label')", "Search", 15)
        page.keyboard.press("Enter")
        expect(page.locator("[data-handbook-search][data-search-ready]")).to_have_count(1)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent").strip() == "Skip to content"
        page.keyboard.press("Enter")
        tab_until(page, "document.activeElement.id", "search-query", 3)
        page.keyboard.type("camera")
        page.keyboard.press("Enter")
        expect(page.locator(RESULT_LINKS).first).to_be_visible()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Search"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.href").endswith(
            "/joining/faq/#do-i-need-my-camera-on"
        )


def test_without_javascript_the_form_asks_the_server(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL, java_script_enabled=False) as record:
        page = record.page
        page.goto(f"{server_url}/search/")
        page.get_by_label("Search the handbook").fill("camera")
        page.get_by_role("button", name="Search").click()
        # The query went in the body: the address, and so the history, does not hold it.
        expect(page).to_have_url(f"{server_url}/search")
        expect(page.locator("ol.search-results a").first).to_have_attribute(
            "href", "/joining/faq/#do-i-need-my-camera-on"
        )
        assert record.requests_elsewhere == []


def test_someone_who_needs_help_finds_it_first_or_is_offered_it(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        open_search(page, server_url)
        offer = page.get_by_role("link", name="see who to contact")
        expect(offer).to_be_hidden()
        page.get_by_label("Search the handbook").fill("self harm")
        expect(page.locator(RESULT_LINKS).first).to_have_attribute(
            "href", f"{server_url}/help/get-help-now/"
        )
        page.get_by_label("Search the handbook").fill("zzqx")
        expect(offer).to_be_visible()
        assert axe_violations(page) == []
        offer.click()
        expect(page).to_have_url(f"{server_url}/help/get-help-now/")
        assert record.requests_elsewhere == []


@pytest.mark.parametrize("query", ["", "camera", "zzqx"])
def test_the_servers_search_page_passes_axe(browser: Browser, server_url: str, query: str) -> None:
    # axe runs as a script, so this visit has JavaScript; the page itself needs none.
    with visit(browser, server_url, EXIT_URL) as record:
        record.page.goto(f"{server_url}/search")
        if query:
            record.page.get_by_label("Search the handbook").fill(query)
            record.page.get_by_role("button", name="Search").click()
            expect(record.page.locator(".search-count")).to_contain_text(query)
        assert axe_violations(record.page) == []


@pytest.mark.parametrize("width", [320, 1280])
def test_the_search_is_usable_at_phone_width_and_costs_other_pages_nothing(
    browser: Browser, server_url: str, width: int
) -> None:
    with visit(browser, server_url, EXIT_URL, viewport={"width": width, "height": 640}) as record:
        page = record.page
        asked: list[str] = []

        def keep(request: Request) -> None:
            asked.append(urlsplit(request.url).path)

        page.on("request", keep)
        page.goto(f"{server_url}/")
        page.wait_for_load_state("networkidle")
        assert not [path for path in asked if "search" in path]
        expect(page.get_by_role("link", name="Search", exact=True)).to_be_visible()
        page.get_by_role("link", name="Search", exact=True).click()
        page.get_by_label("Search the handbook").fill("camera")
        expect(page.locator(RESULT_LINKS).first).to_be_visible()
        # Nothing wider than the screen: no sideways scrolling at 320 px.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert "/assets/search.js" in asked
        assert "/search.json" in asked
