"""The forms in a real browser: accessible at every step, private on the wire, and usable
without JavaScript."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from forms_server.config.env import Settings
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, FieldKind, FormDefinition
from forms_server.forms.reference import new_reference
from forms_server.links import Links
from forms_server.services import signer_for
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.sealing import Sealer
from tests.browser import visit
from tests.test_browser_pages import axe_violations
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL
from tests.test_views import valid_answers

pytestmark = pytest.mark.browser


def fill_in(page: Page, form: FormDefinition) -> None:
    answers = valid_answers(form)
    for spec in form.fields:
        if spec.name not in answers:
            continue  # asked only under a choice these answers do not make
        value = answers[spec.name]
        if spec.kind in {FieldKind.RADIOS, FieldKind.AGREE}:
            page.check(f'input[name="{spec.name}"][value="{value}"]')
        else:
            page.fill(f"#{spec.name}", value)


@pytest.mark.parametrize("kind", list(FORMS))
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_every_step_of_every_form_is_accessible(
    browser: Browser, server_url: str, kind: str, color_scheme: str
) -> None:
    form = FORMS[kind]
    found = {}
    with visit(browser, server_url, EXIT_URL, color_scheme=color_scheme) as record:
        page = record.page
        page.goto(f"{server_url}/forms/{kind}/")
        found["form"] = axe_violations(page)
        expect(page.get_by_role("link", name=EXIT_BUTTON_NAME)).to_be_visible()

        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_title(f"Error: {form.title} - Harbour Peer Support")
        # The error summary takes focus, so screen readers announce it first.
        expect(page.locator("[data-error-summary]")).to_be_focused()
        found["errors"] = axe_violations(page)

        fill_in(page, form)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Check your answers before sending"
        )
        found["check"] = axe_violations(page)

        page.locator('form[action*="/forms/check/"] button').click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"{form.email_name} received")
        found["received"] = axe_violations(page)

        assert record.requests_elsewhere == []
        assert record.console_errors == []
    assert {step: v for step, v in found.items() if v} == {}


def test_dark_mode_follows_the_device_on_the_forms(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL, color_scheme="dark") as record:
        record.page.goto(f"{server_url}/forms/consent/")
        expect(record.page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")


def test_a_form_works_start_to_finish_without_javascript(browser: Browser, server_url: str) -> None:
    form = FORMS["leave-left-early"]
    with visit(browser, server_url, EXIT_URL, java_script_enabled=False) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave/")
        page.get_by_label("I left a session early", exact=True).check()
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(form.title)

        # Choosing "No" shows the crisis contacts at once, through CSS alone.
        crisis = page.locator(".crisis-reveal")
        expect(crisis).to_be_hidden()
        page.get_by_role("group", name="Are you safe now?").get_by_label("No", exact=True).check()
        expect(crisis).to_be_visible()

        fill_in(page, form)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("link", name="Change name").click()
        expect(page.locator("#name")).to_have_value(valid_answers(form)["name"])
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"{form.email_name} received")


def test_forms_fit_a_small_phone(browser: Browser, server_url: str) -> None:
    too_wide = {}
    with visit(browser, server_url, EXIT_URL, viewport={"width": 320, "height": 640}) as record:
        for kind in FORMS:
            record.page.goto(f"{server_url}/forms/{kind}/")
            width = record.page.evaluate("document.documentElement.scrollWidth")
            if width > 320:
                too_wide[kind] = width
    assert too_wide == {}


def test_the_development_mail_page_is_accessible(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-missing/")
        fill_in(page, FORMS["leave-missing"])
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("received")
        reference = page.locator(".reference").inner_text()
        for _ in range(50):
            page.goto(f"{server_url}/dev/mail/")
            if reference in page.content():
                break
            page.wait_for_timeout(100)
        expect(page.get_by_role("heading", name=f"ref {reference}")).to_be_visible()
        assert axe_violations(page) == []


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_choice_reveals_the_question_it_needs_and_requires_it(
    browser: Browser, server_url: str, javascript: bool
) -> None:
    with visit(browser, server_url, EXIT_URL, java_script_enabled=javascript) as record:
        page = record.page
        page.goto(f"{server_url}/forms/concern/")
        email = page.locator("#email")
        meeting_name = page.locator("#meeting_name")
        expect(email).to_be_hidden()
        expect(meeting_name).to_be_hidden()
        page.get_by_label("Yes, by email").check()
        expect(email).to_be_visible()
        expect(meeting_name).to_be_hidden()
        for spec in FORMS["concern"].fields:
            if spec.name in {"what_happened", "why_concerned"}:
                page.fill(f"#{spec.name}", "Something worried me.")
        page.check('input[name="about"][value="member"]')
        page.check('input[name="immediate_risk"][value="no"]')
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#email-error")).to_contain_text(
            "Enter the email address we should reply to"
        )
        # The reveal stays open on the page with the error, so the box can be filled in.
        expect(email).to_be_visible()
        email.fill("sam@example.org")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Check your answers before sending"
        )
        expect(page.locator("main")).to_contain_text("sam@example.org")


def test_the_left_early_notice_can_be_sent_with_the_keyboard_alone(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-left-early/")
        page.locator("#name").focus()
        page.keyboard.type("Sam")
        page.keyboard.press("Tab")
        page.keyboard.type("the Friday session")
        page.keyboard.press("Tab")  # to the first choice of "Are you safe now?"
        page.keyboard.press("ArrowDown")  # "I'd like a facilitator to contact me"
        expect(page.locator("#reach_contact")).to_be_visible()
        page.keyboard.press("Tab")
        page.keyboard.type("07700 900982")
        page.locator("button", has_text="Continue").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Check your answers before sending"
        )
        expect(page.locator("main")).to_contain_text("07700 900982")
        expect(page.locator("main")).to_contain_text("Get help now")  # it is urgent


@pytest.mark.parametrize("path", ["/forms/concern/", "/"])
def test_every_link_a_keyboard_reaches_shows_where_focus_is(
    browser: Browser, server_url: str, path: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(server_url + path)
        unmarked = []
        for _ in range(25):
            page.keyboard.press("Tab")
            focused = page.evaluate(
                """() => {
                  const element = document.activeElement;
                  const style = getComputedStyle(element);
                  return {
                    tag: element.tagName,
                    text: (element.getAttribute('aria-label') || element.textContent).trim(),
                    ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
                  };
                }"""
            )
            if focused["tag"] == "A" and not focused["ring"]:
                unmarked.append(focused["text"][:40])
        assert unmarked == []


def test_the_status_page_is_accessible_with_and_without_an_error(
    browser: Browser, server_url: str
) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/status/")
        found = {"empty": axe_violations(page)}
        page.fill("#reference", "ABC")
        page.get_by_role("button", name="Check").click()
        expect(page.locator("#reference-error")).to_contain_text("Enter your reference")
        found["error"] = axe_violations(page)
        page.fill("#reference", new_reference())
        page.get_by_role("button", name="Check").click()
        expect(page.locator("main")).to_contain_text("Nobody has marked this")
        found["answer"] = axe_violations(page)
        assert record.console_errors == []
    assert {step: v for step, v in found.items() if v} == {}


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_members_own_page_is_accessible_at_every_step(
    browser: Browser, server_url: str, javascript: bool
) -> None:
    """From the copy's link: open, show, "are you sure?", deleted; on a small phone. Axe and
    the width are measured with JavaScript (they need it); the steps work without it."""

    def check(step: str) -> None:
        if javascript:
            found[step] = axe_violations(page)
            width[step] = page.evaluate("document.documentElement.scrollWidth")

    address = f"member-{new_reference().lower()}@example.net"
    found: dict[str, list[dict[str, Any]]] = {}
    width: dict[str, int] = {}
    with visit(
        browser,
        server_url,
        EXIT_URL,
        java_script_enabled=javascript,
        viewport={"width": 320, "height": 640},
    ) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-missing/")
        fill_in(page, FORMS["leave-missing"])
        page.get_by_label("Yes, a short email with a private link").check()
        page.locator("#copy_email_link").fill(address)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Send").click()
        expect(page.locator("main")).to_contain_text("We are emailing you a copy")
        link = None
        for _ in range(50):
            page.goto(f"{server_url}/dev/mail/")
            caught = page.locator("section.caught-message", has_text=address)
            if caught.count():
                text = caught.first.locator("pre").inner_text()
                link = next(word for word in text.split() if "/forms/yours/" in word)
                break
            page.wait_for_timeout(100)
        assert link is not None
        page.goto(server_url + link[link.index("/forms/yours/") :])
        check("open")
        page.get_by_role("button", name="Show what we keep").click()
        expect(page.locator("main")).to_contain_text("the 9th and the 16th")
        check("shown")
        page.get_by_role("button", name="Delete my leave notice").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Are you sure")
        check("ask")
        page.get_by_role("button", name="Yes, delete my leave notice").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Your leave notice has been deleted"
        )
        check("deleted")
        assert record.requests_elsewhere == []
    assert {step: v for step, v in found.items() if v} == {}
    assert {step: w for step, w in width.items() if w > 320} == {}


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_link_only_form_reads_well_on_a_small_phone(
    browser: Browser, server_url: str, settings: Settings, javascript: bool
) -> None:
    """A recipient's link: the button, then the form, at 320 px; axe with JavaScript, and the
    same steps without it. (bench/delivery_modes.py times it.)"""
    reference = new_reference()
    answers: Answers = {**valid_answers(FORMS["concern"]), "what_happened": "Read me on a phone."}
    sealed = Sealer(settings.data_keys_bytes).seal(
        reference, {"answers": answers, "guidelines_version": None, "suspected_automated": False}
    )
    ReadingRoom(settings.data_dir, timedelta(days=5)).keep(
        reference, "concern", True, datetime.now(UTC), sealed
    )
    link = Links(signer_for(settings), server_url).read(reference, "concern", "lead@example.org")
    found: dict[str, list[dict[str, Any]]] = {}
    with visit(
        browser,
        server_url,
        EXIT_URL,
        java_script_enabled=javascript,
        viewport={"width": 320, "height": 640},
    ) as record:
        page = record.page
        page.goto(link)
        page.get_by_role("button", name="Show the submission").click()
        expect(page.locator("main")).to_contain_text("Read me on a phone.")
        if javascript:
            found["shown"] = axe_violations(page)
            assert page.evaluate("document.documentElement.scrollWidth") <= 320
            page.goto(link)
            found["opened"] = axe_violations(page)
        assert record.requests_elsewhere == []
    assert {step: v for step, v in found.items() if v} == {}


def test_an_open_check_page_keeps_its_answers(browser: Browser, server_url: str) -> None:
    """WCAG 2.2.1: the draft's idle time must not take answers from someone still reading
    them. While the check page (or the form after Change) is open, it asks the server for
    itself again well inside the idle time; nothing else is sent."""
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.clock.install()
        asked: list[tuple[str, str, int]] = []
        page.on(
            "response",
            lambda response: asked.append((response.request.method, response.url, response.status)),
        )
        page.goto(f"{server_url}/forms/leave-missing/")
        fill_in(page, FORMS["leave-missing"])
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Check your answers before sending"
        )
        check_page = page.url
        # Its script must be running before the clock moves (a loaded machine loads it late).
        page.wait_for_load_state("load")
        asked.clear()
        page.clock.run_for("21:00")  # past the 20 minutes it would otherwise idle
        # The requests leave at once; on a loaded machine their answers take a while.
        for _ in range(100):
            if len([entry for entry in asked if entry[0] == "HEAD"]) >= 4:
                break
            page.wait_for_timeout(100)
        keeps = [entry for entry in asked if entry[0] == "HEAD"]
        assert len(keeps) >= 4, asked
        assert set(keeps) == {("HEAD", check_page, 200)}
        assert record.console_errors == []
