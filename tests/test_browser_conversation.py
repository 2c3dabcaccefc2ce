"""Issue 23 in a real browser: the receipt, the group's question and the member's answer pass
axe at both widths, with and without JavaScript, and after "Exit this page" the browser's
history and files hold neither the receipt nor a message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from forms_server.config.env import Settings
from forms_server.forms.definitions import FORMS
from forms_server.links import Links
from forms_server.services import signer_for
from tests.browser import visit, visit_with_profile
from tests.test_browser_device import on_disk
from tests.test_browser_exit_forms import back_to_the_end
from tests.test_browser_forms import fill_in
from tests.test_browser_pages import axe_violations
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL, arrive_at_the_exit_site

pytestmark = pytest.mark.browser

RECEIPT = re.compile(r"\b\d{4} \d{4} \d{4} \d{4}\b")
QUESTION = "Which meeting was it? Questionmark Wagtail"
ANSWER = "The Tuesday one. Answermark Kestrel"
WIDTHS = {"phone": {"width": 320, "height": 640}, "desktop": {"width": 1280, "height": 800}}


def checked(page: Page, scripts: bool) -> list[Any]:
    """axe, where scripts run: axe is itself a script (it would wait for ever on a page that
    runs none), so without JavaScript each step must simply work, and axe checks the same
    pages in the runs with it."""
    return axe_violations(page) if scripts else []


def send_concern(page: Page, server_url: str, scripts: bool = True) -> tuple[str, str, list[Any]]:
    """A concern sent from this page: its reference, its receipt, and axe on the receipt."""
    page.goto(f"{server_url}/forms/concern/")
    fill_in(page, FORMS["concern"])
    page.get_by_role("button", name="Continue").click()
    page.locator('form[action*="/forms/check/"] button').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Concern received")
    reference = page.locator(".reference").first.inner_text().strip()
    receipts = RECEIPT.findall(page.locator("main").inner_text())
    assert len(receipts) == 1
    return reference, receipts[0], checked(page, scripts)


def ask_as_the_group(
    page: Page, settings: Settings, server_url: str, reference: str, scripts: bool = True
) -> dict[str, Any]:
    links = Links(signer_for(settings), server_url)
    found = {}
    page.goto(links.ask(reference, "concern", "lead@example.org"))
    found["ask, opened"] = checked(page, scripts)
    page.get_by_role("button", name="Show the conversation").click()
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    found["ask, shown"] = checked(page, scripts)
    page.get_by_role("button", name="Ask the member").click()
    expect(page.locator("[data-error-summary]")).to_be_visible()
    found["ask, error"] = checked(page, scripts)
    page.fill("#question", QUESTION)
    page.get_by_role("button", name="Ask the member").click()
    expect(page.get_by_text("Your question is saved")).to_be_visible()
    found["ask, asked"] = checked(page, scripts)
    return found


def open_as_the_member(page: Page, server_url: str, reference: str, receipt: str) -> None:
    page.goto(f"{server_url}/forms/status/")
    page.fill("#reference", reference)
    page.fill("#receipt", receipt)
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Messages about your form")


@pytest.mark.parametrize("java_script", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_of_a_conversation_passes_axe(
    browser: Browser, server_url: str, settings: Settings, width: str, java_script: bool
) -> None:
    options = {"viewport": WIDTHS[width], "java_script_enabled": java_script}
    found: dict[str, Any] = {}
    with visit(browser, server_url, EXIT_URL, **options) as member:
        reference, receipt, found["receipt"] = send_concern(member.page, server_url, java_script)
        with visit(browser, server_url, EXIT_URL, **options) as group:
            found |= ask_as_the_group(group.page, settings, server_url, reference, java_script)
            assert group.requests_elsewhere == []
        if width == "phone":
            # One wrong try a run: the server under test is shared, and every browser comes
            # from one network, whose fourth failure would start the growing waits.
            member.page.goto(f"{server_url}/forms/status/")
            member.page.fill("#reference", reference)
            member.page.fill("#receipt", "1234 5678 9012 3456")
            member.page.get_by_role("button", name="Check").click()
            expect(member.page.locator("[data-error-summary]")).to_be_visible()
            found["status, no match"] = checked(member.page, java_script)
        open_as_the_member(member.page, server_url, reference, receipt)
        expect(member.page.get_by_text(QUESTION)).to_be_visible()
        found["conversation"] = checked(member.page, java_script)
        member.page.get_by_role("button", name="Send").click()
        expect(member.page.locator("[data-error-summary]")).to_be_visible()
        found["conversation, error"] = checked(member.page, java_script)
        member.page.fill("#answer", ANSWER)
        member.page.get_by_role("button", name="Send").click()
        expect(member.page.get_by_text("Your answer has been sent")).to_be_visible()
        found["conversation, answered"] = checked(member.page, java_script)
        email_me = member.page.get_by_role("button", name="Email me when there is a message")
        member.page.fill("#email", "not an address")
        email_me.click()
        expect(member.page.locator("#email-error")).to_be_visible()
        found["conversation, address error"] = checked(member.page, java_script)
        member.page.fill("#email", "kestrel@example.net")
        email_me.click()
        expect(
            member.page.get_by_text("We will email you when there is a new message")
        ).to_be_visible()
        found["conversation, told"] = checked(member.page, java_script)
        assert member.requests_elsewhere == []
    assert {state: violations for state, violations in found.items() if violations} == {}


ALERT_ADDRESS = "sandpiper.alert@example.net"


@pytest.mark.parametrize("java_script", [True, False], ids=["js", "no-js"])
def test_after_exit_neither_the_receipt_nor_a_message_is_in_the_browser(
    playwright_instance: Playwright,
    browser: Browser,
    server_url: str,
    settings: Settings,
    tmp_path: Path,
    java_script: bool,
) -> None:
    profile = tmp_path / "profile"
    with visit_with_profile(
        playwright_instance, profile, server_url, EXIT_URL, java_script_enabled=java_script
    ) as member:
        page = member.page
        reference, receipt, _ = send_concern(page, server_url, java_script)
        with visit(browser, server_url, EXIT_URL) as group:
            ask_as_the_group(group.page, settings, server_url, reference)
        open_as_the_member(page, server_url, reference, receipt)
        page.fill("#answer", ANSWER)
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_text("Your answer has been sent")).to_be_visible()
        # The member's own address, for "There is a message for you": not for the autofill.
        page.fill("#email", ALERT_ADDRESS)
        page.get_by_role("button", name="Email me when there is a message").click()
        expect(page.get_by_text("We will email you when there is a new message")).to_be_visible()
        page.get_by_role("link", name=EXIT_BUTTON_NAME).click()
        arrive_at_the_exit_site(page)
        shown = back_to_the_end(page, server_url)
        markers = [receipt, receipt.replace(" ", ""), "Wagtail", "Kestrel", ALERT_ADDRESS]
        assert [line for line in shown if any(m in line for m in markers)] == []
        assert member.requests_elsewhere == []
    assert (
        on_disk(profile, [receipt, receipt.replace(" ", ""), "Wagtail", "Kestrel", "sandpiper"])
        == {}
    )
