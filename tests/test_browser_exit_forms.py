"""Quick exit on the forms leaves nothing behind: after Exit, Back to the end of the history
(accepting any resubmission) never shows anything the member typed, with or without JavaScript.
And Back then resubmit after sending gives the same receipt, not a second form."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Error, Page, expect

from forms_server.forms.definitions import FORMS
from tests.browser import visit
from tests.test_browser_forms import fill_in
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL
from tests.test_views import VALID

pytestmark = pytest.mark.browser

# Typed into every text box; none of them may ever be shown again after an exit.
TYPED = [value for name, value in VALID.items() if name not in {"email"}]


def typed_text_shown(page: Page) -> list[str]:
    """Anything typed that the page shows, in its text or in its form fields."""
    try:
        shown = page.content()
        values = page.eval_on_selector_all(
            "input, textarea", "(fields) => fields.map((field) => field.value)"
        )
    except Error:  # an error page of the browser's own ("Confirm form resubmission")
        return []
    everything = shown + " ".join(str(value) for value in values)
    return [text for text in TYPED if text in everything]


def back_to_the_end(page: Page, server_url: str) -> list[str]:
    """Back until the history runs out, resubmitting wherever the browser offers to."""
    seen: list[str] = []
    for _ in range(12):
        try:
            moved = page.go_back(wait_until="load")
        except Error:
            moved = None
        if page.url.startswith(server_url):
            seen += [f"{page.url}: {text}" for text in typed_text_shown(page)]
            # Accept the resubmission, as a person pressing Reload would.
            with contextlib.suppress(Error):
                page.reload(wait_until="load")
            seen += [f"{page.url} (reloaded): {text}" for text in typed_text_shown(page)]
        if moved is None and not page.url.startswith(server_url):
            break
    return seen


def arrive_at_the_exit_site(page: Page) -> None:
    """The exit goes through our server, whose redirect to the exit site Playwright cannot
    intercept (that first attempt fails here, with no internet); Chromium then loads the exit
    site itself, which the test's stand-in answers."""
    with contextlib.suppress(Error):
        page.wait_for_url(EXIT_URL)
    expect(page).to_have_title("Weather")
    assert page.url == EXIT_URL


def on_form(page: Page, kind: str) -> None:
    fill_in(page, FORMS[kind])


def on_check_page(page: Page, kind: str) -> None:
    fill_in(page, FORMS[kind])
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers before sending")


def after_change(page: Page, kind: str) -> None:
    on_check_page(page, kind)
    page.get_by_role("button", name="Change").first.click()
    expect(page.get_by_role("button", name="Continue")).to_be_visible()


STEPS: dict[str, Callable[[Page, str], None]] = {
    "typing": on_form,
    "check": on_check_page,
    "change": after_change,
}


# How a member leaves: the button (with or without JavaScript), or Shift three times.
WAYS_OUT = {"button-js": True, "button-no-js": False, "shift-js": True}


@pytest.mark.parametrize("way_out", list(WAYS_OUT))
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("kind", list(FORMS))
def test_exit_then_back_to_the_end_shows_nothing_typed(
    browser: Browser, server_url: str, kind: str, step: str, way_out: str
) -> None:
    with visit(browser, server_url, EXIT_URL, java_script_enabled=WAYS_OUT[way_out]) as record:
        page = record.page
        page.goto(f"{server_url}/forms/")
        page.goto(f"{server_url}/forms/{kind}/")
        STEPS[step](page, kind)
        if way_out.startswith("shift"):
            page.evaluate("document.activeElement && document.activeElement.blur()")
            for _ in range(3):
                page.keyboard.press("Shift")
        else:
            page.get_by_role("link", name=EXIT_BUTTON_NAME).click()
        arrive_at_the_exit_site(page)
        assert back_to_the_end(page, server_url) == []


def test_back_and_send_again_after_sending_gives_the_same_receipt(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-missing/")
        on_check_page(page, "leave-missing")
        page.locator('form[action$="/confirm"] button').click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("received")
        first = page.url
        page.go_back()
        if "/confirm" not in page.url and page.locator('form[action$="/confirm"]').count():
            page.locator('form[action$="/confirm"] button').click()
        else:
            page.reload()
        expect(page.get_by_role("heading", level=1)).to_contain_text("received")
        assert page.url == first
