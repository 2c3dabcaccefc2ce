"""Quick exit, in a real browser: the button and Shift x3 leave, and Back does not return."""

from __future__ import annotations

import contextlib
import re

import pytest
import yaml
from playwright.sync_api import Browser, Error, Page, expect

from forms_server.config.group import PROJECT_ROOT
from tests.browser import visit
from tests.handbook_pages import HandbookPage

pytestmark = pytest.mark.browser

EXIT_URL = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text("utf-8"))["extra"]["group"][
    "exit_url"
]
EXIT_BUTTON_NAME = "Emergency Exit this page"


def arrive_at_the_exit_site(page: Page) -> None:
    """The exit goes through our server (/forms/exit clears this browser's drafts), whose
    redirect to the exit site Playwright cannot intercept (that first attempt fails here, with
    no internet); Chromium then loads the exit site itself, which the test's stand-in answers."""
    with contextlib.suppress(Error):
        page.wait_for_url(EXIT_URL)
    expect(page).to_have_title("Weather")
    assert page.url == EXIT_URL


def assert_left_for_good(page: Page, server_url: str) -> None:
    arrive_at_the_exit_site(page)
    page.go_back()
    assert not page.url.startswith(server_url), f"Back returned to {page.url}"


def open_two_pages(page: Page, server_url: str) -> None:
    """Read two pages first, as a member would, so there is history to go back through."""
    page.goto(server_url + "/")
    page.get_by_role("link", name=re.compile("^Our principles$")).first.click()
    page.wait_for_url(re.compile(r"/guidelines/principles/$"))


def test_the_button_leaves_and_back_does_not_return(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        open_two_pages(record.page, server_url)
        record.page.get_by_role("link", name=EXIT_BUTTON_NAME).click()
        assert_left_for_good(record.page, server_url)
        assert record.requests_elsewhere == []


def test_shift_three_times_leaves_and_back_does_not_return(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        open_two_pages(record.page, server_url)
        for _ in range(3):
            record.page.keyboard.press("Shift")
        assert_left_for_good(record.page, server_url)


def test_the_count_is_announced_to_screen_readers(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        record.page.goto(server_url + "/")
        record.page.keyboard.press("Shift")
        expect(record.page.get_by_role("status")).to_have_text("Shift, press 2 more times to exit.")
        record.page.keyboard.press("Shift")
        expect(record.page.get_by_role("status")).to_have_text("Shift, press 1 more time to exit.")


def test_typing_capitals_does_not_leave(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        record.page.goto(server_url + "/")
        for letter in "ABCD":
            record.page.keyboard.down("Shift")
            record.page.keyboard.press(f"Key{letter}")
            record.page.keyboard.up("Shift")
        record.page.wait_for_timeout(300)
        assert record.page.url.startswith(server_url)


def test_keyboard_users_reach_it_in_a_few_tabs_and_leave_with_enter(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(server_url + "/guidelines/online-safety/")
        for _ in range(8):
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement.textContent.trim()")
            if "Exit this page" in focused:
                break
        else:
            pytest.fail("the quick exit was not among the first 8 tab stops")
        page.keyboard.press("Enter")
        assert_left_for_good(page, server_url)


def test_without_javascript_it_is_still_a_link_out(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL, java_script_enabled=False) as record:
        record.page.goto(server_url + "/")
        link = record.page.get_by_role("link", name=EXIT_BUTTON_NAME)
        # Through the forms server, which serves the handbook too: it clears any draft.
        assert link.get_attribute("href") == "/forms/exit"
        link.click()
        arrive_at_the_exit_site(record.page)


def test_it_is_on_screen_on_every_page_at_phone_width(
    browser: Browser, server_url: str, pages: list[HandbookPage]
) -> None:
    with visit(browser, server_url, EXIT_URL, viewport={"width": 320, "height": 640}) as record:
        for handbook_page in pages:
            record.page.goto(f"{server_url}/{handbook_page.url_path}")
            button = record.page.get_by_role("link", name=EXIT_BUTTON_NAME)
            expect(button).to_be_in_viewport()
            record.page.mouse.wheel(0, 3000)
            expect(button).to_be_in_viewport()
