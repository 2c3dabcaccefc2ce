"""Issue 22, the forms (WCAG 2.2): what a keyboard, a screen reader and a small screen meet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from forms_server.config.env import Settings
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers
from forms_server.forms.reference import new_reference
from forms_server.links import Links
from forms_server.services import signer_for
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.sealing import Sealer
from tests.browser import visit
from tests.test_browser_forms import fill_in
from tests.test_browser_pages import axe_violations
from tests.test_browser_quick_exit import EXIT_URL
from tests.test_views import valid_answers

pytestmark = pytest.mark.browser

WIDTHS = {
    "1280px": {"width": 1280, "height": 800},
    "320px": {"width": 320, "height": 640},
}

# What a member must see around the field a link put them on: its question (the label, or the
# legend for a choice), its hint and its error, each whole, below the sticky header and above
# the bottom of the screen.
AROUND_THE_FIELD = """(name) => {
  const field = document.getElementById(name);
  const header = document.querySelector('.md-header').getBoundingClientRect();
  const fieldset = field.closest('fieldset');
  const question = field.type === 'radio' && fieldset
    ? fieldset.querySelector('legend')
    : document.querySelector(`label[for="${name}"]`);
  const parts = {question, hint: document.getElementById(name + '-hint'),
                 error: document.getElementById(name + '-error')};
  const hidden = {};
  for (const [part, element] of Object.entries(parts)) {
    if (!element) continue;
    const box = element.getBoundingClientRect();
    if (box.top < header.bottom - 0.5 || box.bottom > window.innerHeight + 0.5) {
      hidden[part] = {top: Math.round(box.top), bottom: Math.round(box.bottom),
                      header: Math.round(header.bottom)};
    }
  }
  return {focused: document.activeElement === field, hidden};
}"""


def around(page: Page, name: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(AROUND_THE_FIELD, name)
    return result


def follow_by_keyboard(page: Page, link: Locator, name: str) -> Any:
    """Enter on a link to field `name`: the field takes focus; what of its question is hidden."""
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#{name}")).to_be_focused()
    return around(page, name)["hidden"]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("kind", list(FORMS))
def test_each_error_link_and_change_link_shows_the_question_whole(
    browser: Browser, server_url: str, kind: str, width: str, javascript: bool
) -> None:
    """WCAG 3.3.1, 3.3.2: a link from the error summary, or a Change link on the check page,
    puts focus on the field with its label (or legend), hint and error on screen, not under
    the sticky header. With JavaScript each question is measured; without it, a room above
    every field that fits the tallest question (forms.css)."""
    form = FORMS[kind]
    activations = 0
    hidden: dict[str, Any] = {}
    with visit(
        browser, server_url, EXIT_URL, viewport=WIDTHS[width], java_script_enabled=javascript
    ) as record:
        page = record.page
        page.goto(f"{server_url}/forms/{kind}/")
        page.get_by_role("button", name="Continue").click()
        links = page.locator("[data-error-summary] a")
        expect(links.first).to_be_visible()
        for index in range(links.count()):
            page.evaluate("window.scrollTo(0, 0)")
            link = links.nth(index)
            name = (link.get_attribute("href") or "").removeprefix("#")
            activations += 1
            if found := follow_by_keyboard(page, link, name):
                hidden[f"error summary: {name}"] = found

        fill_in(page, form)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Check your answers before sending"
        )
        check_page = page.url
        changes = page.locator(".summary-list__actions a").count()
        for index in range(changes):
            page.goto(check_page)
            link = page.locator(".summary-list__actions a").nth(index)
            name = (link.get_attribute("href") or "").split("#")[1]
            activations += 1
            if found := follow_by_keyboard(page, link, name):
                hidden[f"change: {name}"] = found
    assert activations > 0
    assert hidden == {}, f"{len(hidden)} of {activations} activations hid part of the question"


REVEALS = """() => [...document.querySelectorAll('input[type=radio]')]
  .filter((radio) => radio.closest('.choice').nextElementSibling?.matches('.conditional'))
  .map((radio) => {
    const controls = radio.getAttribute('aria-controls');
    const target = controls && document.getElementById(controls);
    return {
      id: radio.id,
      controls_its_question: !!target
        && target === radio.closest('.choice').nextElementSibling,
      expanded: radio.getAttribute('aria-expanded'),
      checked: radio.checked,
      shown: !!target && target.getBoundingClientRect().height > 0,
    };
  })"""


@pytest.mark.parametrize(
    "kind", [kind for kind, form in FORMS.items() if any(s.shown_when for s in form.fields)]
)
def test_a_choice_that_reveals_a_question_says_so_and_which(
    browser: Browser, server_url: str, kind: str
) -> None:
    """As GOV.UK's radios: a choice that reveals a question controls it (aria-controls), and
    says whether it is shown (aria-expanded), kept true to the choice as it changes."""
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/{kind}/")
        reveals = page.evaluate(REVEALS)
        assert reveals
        wrong: list[dict[str, Any]] = []
        states = 0
        for reveal in reveals:
            page.locator(f"#{reveal['id']}").check()
            for now in page.evaluate(REVEALS):
                states += 1
                expected = "true" if now["checked"] else "false"
                right = now["controls_its_question"] and now["expanded"] == expected
                if not right or now["shown"] != now["checked"]:
                    wrong.append(now)
        assert wrong == [], f"{len(wrong)} of {states} states wrong"
        assert record.console_errors == []


COUNT = """(name) => {
  const field = document.getElementById(name);
  const info = document.getElementById(name + '-info');
  const live = document.querySelector(`[data-character-count-status="${name}"]`);
  const visible = document.querySelector(`[data-character-count-message="${name}"]`);
  const described = (field.getAttribute('aria-describedby') || '').split(' ');
  const box = info.getBoundingClientRect();
  return {
    info_described: described.some((id) => document.getElementById(id)?.contains(info)),
    info_seen: box.width > 1 && box.height > 1,
    live: live && {text: live.textContent.trim(), polite: live.getAttribute('aria-live'),
                   hidden: live.getAttribute('aria-hidden')},
    visible: visible && {text: visible.textContent.trim(),
                         hidden_from_readers: visible.getAttribute('aria-hidden'),
                         seen: visible.getBoundingClientRect().height > 0,
                         error: visible.classList.contains('error-message')},
  };
}"""

TEXTAREAS = [
    (kind, spec.name, spec.max_length)
    for kind, form in FORMS.items()
    for spec in form.fields
    if spec.kind.value == "textarea"
]


@pytest.mark.parametrize(("kind", "name", "limit"), TEXTAREAS)
def test_a_long_answer_counts_its_characters_as_the_member_types(
    browser: Browser, server_url: str, kind: str, name: str, limit: int
) -> None:
    """GOV.UK's character count: a visible count under the box, and a polite live region
    that speaks it once typing pauses (not on every key); the static limit stays the box's
    description."""
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.clock.install()
        page.goto(f"{server_url}/forms/{kind}/")
        start = page.evaluate(COUNT, name)
        assert start["info_described"], start
        assert not start["info_seen"], start
        assert start["live"] == {
            "text": f"You have {limit} characters remaining",
            "polite": "polite",
            "hidden": None,
        }, start
        assert start["visible"]["hidden_from_readers"] == "true", start

        field = page.locator(f"#{name}")
        field.fill("a" * (limit - 1))
        typed = page.evaluate(COUNT, name)
        # The visible count follows every key; the live region waits for a pause.
        assert typed["visible"]["text"] == "You have 1 character remaining", typed
        assert typed["live"]["text"] == f"You have {limit} characters remaining", typed
        page.clock.run_for(1500)
        expect(page.locator(f'[data-character-count-status="{name}"]')).to_have_text(
            "You have 1 character remaining"
        )

        field.fill("a" * (limit + 5))
        page.clock.run_for(1500)
        over = page.evaluate(COUNT, name)
        assert over["visible"]["text"] == "You have 5 characters too many", over
        assert over["visible"]["error"], over
        assert over["live"]["text"] == "You have 5 characters too many", over
        # The server still refuses it.
        page.get_by_role("button", name="Continue").click()
        expect(page.locator(f"#{name}-error")).to_be_visible()
        assert record.console_errors == []


def test_without_javascript_the_limit_is_a_plain_hint(browser: Browser, server_url: str) -> None:
    kind, name, _limit = TEXTAREAS[0]
    with visit(browser, server_url, EXIT_URL, java_script_enabled=False) as record:
        page = record.page
        page.goto(f"{server_url}/forms/{kind}/")
        plain = page.evaluate(COUNT, name)
        assert plain["info_described"], plain
        assert plain["info_seen"], plain
        assert plain["live"] is None, plain
        assert plain["visible"] is None, plain


def test_the_reading_page_says_once_that_they_asked_for_a_reply(
    browser: Browser, server_url: str, settings: Settings
) -> None:
    """The next step already says "They asked for a reply by email: write to ..."; the page
    said it again underneath. Once, with the address a link to write to."""
    reference = new_reference()
    address = f"reply-{reference.lower()}@example.org"
    answers: Answers = {
        **valid_answers(FORMS["concern"]),
        "contact_preference": "email",
        "email": address,
    }
    sealed = Sealer(settings.data_keys_bytes).seal(
        reference, {"answers": answers, "guidelines_version": None, "suspected_automated": False}
    )
    ReadingRoom(settings.data_dir, timedelta(days=5)).keep(
        reference, "concern", False, datetime.now(UTC), sealed
    )
    link = Links(signer_for(settings), server_url).read(reference, "concern", "lead@example.org")
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(link)
        page.get_by_role("button", name="Show the submission").click()
        main = page.locator("main")
        expect(main).to_contain_text("What to do next")
        assert main.inner_text().count("They asked for a reply by email") == 1
        expect(main.locator(f'a[href="mailto:{address}"]')).to_have_count(1)


def test_the_development_mailbox_links_are_links(browser: Browser, server_url: str) -> None:
    with visit(browser, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-missing/")
        fill_in(page, FORMS["leave-missing"])
        page.get_by_label("Yes, a short email with a private link").check()
        address = f"links-{new_reference().lower()}@example.net"
        page.locator("#copy_email_link").fill(address)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("received")
        caught = page.locator("section.caught-message", has_text=address)
        for _ in range(50):
            page.goto(f"{server_url}/dev/mail/")
            if caught.count():
                break
            page.wait_for_timeout(100)
        body = caught.first.locator("pre")
        written = [word for word in body.inner_text().split() if "://" in word]
        assert written
        linked = body.locator("a[href]").evaluate_all("(links) => links.map((a) => a.href)")
        assert [url.rstrip(".,") for url in written] == linked


@pytest.mark.parametrize("width", list(WIDTHS))
def test_axe_finds_nothing_in_the_states_scripts_and_small_screens_make(
    browser: Browser, server_url: str, width: str
) -> None:
    """Axe (WCAG 2.0 to 2.2 A and AA, and best practice) on the states the other tests do not
    reach with it: the leave chooser and its error, each form with its errors, a reveal open
    and a character count over its limit, the check page, a page that is not there, and the
    handbook's menu open and its wide table."""
    found: dict[str, list[dict[str, Any]]] = {}
    runs = 0

    def check(state: str) -> None:
        nonlocal runs
        runs += 1
        violations = axe_violations(page)
        if violations:
            found[state] = violations

    with visit(browser, server_url, EXIT_URL, viewport=WIDTHS[width]) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave/")
        check("leave chooser")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("[data-error-summary]")).to_be_visible()
        check("leave chooser, error")
        for kind, form in FORMS.items():
            page.goto(f"{server_url}/forms/{kind}/")
            page.get_by_role("button", name="Continue").click()
            expect(page.locator("[data-error-summary]")).to_be_visible()
            for spec in form.fields:
                if spec.kind.value == "textarea":
                    page.locator(f"#{spec.name}").fill("a" * (spec.max_length + 1))
            for radio in page.locator("input[type=radio][aria-controls]").all():
                radio.check()
            check(f"{kind}: errors, reveal open, over the limit")
            fill_in(page, form)
            page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Check your answers before sending"
            )
            check(f"{kind}: check page")
        page.goto(f"{server_url}/forms/no-such-form/")
        check("forms: not found")
        page.goto(f"{server_url}/no-such-page/")
        check("handbook: not found")
        page.goto(f"{server_url}/about/privacy/")
        check("privacy notice")
        if width == "320px":
            page.get_by_role("button", name="Menu").click()
            expect(page.locator(".md-sidebar--primary")).to_be_in_viewport(ratio=1)
            check("menu open")
    assert runs >= 14
    assert found == {}
