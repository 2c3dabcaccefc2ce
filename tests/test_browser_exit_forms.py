"""Quick exit on the forms leaves nothing behind: after Exit, Back to the end of the history
(accepting any resubmission) never shows anything the member typed, with or without JavaScript.
And Back into a sent form shows only that the page expired."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Error, Page, expect

from forms_server.forms.definitions import FORMS
from tests.browser import visit
from tests.test_browser_forms import fill_in
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL, arrive_at_the_exit_site
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


def on_form(page: Page, kind: str) -> None:
    fill_in(page, FORMS[kind])


def on_check_page(page: Page, kind: str) -> None:
    fill_in(page, FORMS[kind])
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers before sending")


def after_change(page: Page, kind: str) -> None:
    on_check_page(page, kind)
    page.locator(".summary-list__actions a").first.click()
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


def test_back_into_a_sent_form_says_only_that_it_expired(browser: Browser, server_url: str) -> None:
    """A sent form is closed: Back shows neither the answers nor that anything was sent, and
    Forward gives the same receipt (one form, one email)."""
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-missing/")
        on_check_page(page, "leave-missing")
        page.locator('form[action*="/forms/check/"] button').click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("received")
        first, reference = page.url, page.locator(".reference").inner_text()
        page.go_back()
        expect(page.get_by_role("heading", level=1)).to_have_text("This page has expired")
        assert reference not in page.content()
        assert typed_text_shown(page) == []
        page.go_forward()
        expect(page.locator(".reference")).to_have_text(reference)
        assert page.url == first
