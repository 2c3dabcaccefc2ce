"""Nothing typed stays on the member's device: after Exit, the browser's own files (session and
tab files, cache, the autofill table; tokens in them decoded) hold no answer, and no page of
the history shows one. Walked in Chromium with a profile on disk, JavaScript on and off."""

from __future__ import annotations

import base64
import contextlib
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, expect

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import FieldKind, FormDefinition
from tests.browser import visit_with_profile
from tests.decoding import decoded
from tests.test_browser_exit_forms import back_to_the_end
from tests.test_browser_quick_exit import EXIT_BUTTON_NAME, EXIT_URL, arrive_at_the_exit_site
from tests.test_views import valid_answers

pytestmark = pytest.mark.browser


def marked_answers(form: FormDefinition) -> dict[str, str]:
    """Valid answers whose every typed value carries its own marker to search the disk for;
    a leave notice says "not safe", so the number asked only then is typed too."""
    answers = valid_answers(form)
    if form.kind == "leave-left-early":
        answers["safe_now"] = "no"
    typed = {}
    for spec in form.fields:
        hidden = (
            spec.shown_when is not None and answers.get(spec.shown_when[0]) != (spec.shown_when[1])
        )
        if spec.kind in {FieldKind.RADIOS, FieldKind.AGREE} or hidden:
            continue
        marker = f"Zq{zlib.crc32(f'{form.kind}/{spec.name}'.encode()) % 10**6:06d}Mark"
        if spec.kind in {FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}:
            typed[spec.name] = f"{marker.lower()}@example.org"
        elif spec.kind in {FieldKind.TEXT, FieldKind.TEXTAREA}:
            typed[spec.name] = f"{marker} words"
    return answers | typed


def markers_of(answers: dict[str, str]) -> list[str]:
    return [word for value in answers.values() for word in value.split() if "zq" in word.lower()]


def fill(page: Page, form: FormDefinition, answers: dict[str, str]) -> None:
    for spec in form.fields:
        if spec.name not in answers:
            continue
        if spec.kind in {FieldKind.RADIOS, FieldKind.AGREE}:
            page.check(f'input[name="{spec.name}"][value="{answers[spec.name]}"]')
    for spec in form.fields:
        if spec.name in answers and spec.kind not in {FieldKind.RADIOS, FieldKind.AGREE}:
            page.fill(f"#{spec.name}", answers[spec.name])


def on_disk(profile: Path, markers: list[str]) -> dict[str, list[str]]:
    """Each file of the profile that holds a marker, in UTF-8 or UTF-16 (Chromium keeps page
    state in UTF-16), as it is or decoded."""
    leaks: dict[str, list[str]] = {}
    for path in profile.rglob("*"):
        if not path.is_file():
            continue
        try:
            blob = path.read_bytes()
        except OSError:
            continue
        everything = decoded(blob)
        hits = [
            marker
            for marker in markers
            if marker.encode() in everything
            or marker.encode("utf-16-le") in blob
            or marker.lower().encode() in everything
        ]
        if hits:
            leaks[str(path.relative_to(profile))] = hits
    return leaks


def typed_on_page(page: Page, markers: list[str]) -> list[str]:
    try:
        shown = page.content() + " ".join(
            str(value)
            for value in page.eval_on_selector_all("input, textarea", "(f) => f.map(x => x.value)")
        )
    except Exception:  # noqa: BLE001 - a browser error page ("Confirm form resubmission")
        return []
    return [marker for marker in markers if marker.lower() in shown.lower()]


def forward_to_the_end(page: Page, server_url: str, markers: list[str]) -> list[str]:
    seen = []
    for _ in range(12):
        with contextlib.suppress(Exception):
            if page.go_forward(wait_until="load") is None:
                break
        if page.url.startswith(server_url):
            seen += [f"{page.url}: {marker}" for marker in typed_on_page(page, markers)]
            with contextlib.suppress(Exception):
                page.reload(wait_until="load")
            seen += [f"{page.url} (reloaded): {m}" for m in typed_on_page(page, markers)]
    return seen


def every_step(page: Page, form: FormDefinition, answers: dict[str, str]) -> None:
    """Type, continue, change, continue: the member is on the check page."""
    fill(page, form, answers)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers before sending")
    page.locator(".summary-list__actions :is(a, button)").first.click()
    expect(page.get_by_role("button", name="Continue")).to_be_visible()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers before sending")


def by_the_button(page: Page) -> None:
    page.get_by_role("link", name=EXIT_BUTTON_NAME).click()


def by_shift_three_times(page: Page) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(3):
        page.keyboard.press("Shift")


def by_another_link_then_the_button(link_name: str) -> Callable[[Page], None]:
    """Another link first, from the form after Change (how their data is used, help, the
    handbook's list of forms), then Exit from the page it leads to."""

    def leave(page: Page) -> None:
        page.locator(".summary-list__actions :is(a, button)").first.click()
        page.get_by_role("link", name=link_name, exact=True).last.click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        page.get_by_role("link", name=EXIT_BUTTON_NAME).click()

    return leave


OTHER_LINKS = {
    "privacy": "how we use your information",
    "help": "Get help now",
    "handbook": "Back to forms in the handbook",
}
WAYS_OUT: dict[str, tuple[bool, Callable[[Page], None]]] = {
    "button-js": (True, by_the_button),
    "button-no-js": (False, by_the_button),
    "shift-js": (True, by_shift_three_times),
} | {
    f"{name}-then-button-{'js' if java_script else 'no-js'}": (
        java_script,
        by_another_link_then_the_button(link_name),
    )
    for name, link_name in OTHER_LINKS.items()
    for java_script in (True, False)
}


@pytest.mark.parametrize("way_out", list(WAYS_OUT))
@pytest.mark.parametrize("kind", ["concern", "leave-left-early", "consent"])
def test_after_exit_nothing_typed_is_in_the_history_or_the_browsers_files(
    playwright_instance: Playwright, server_url: str, tmp_path: Path, kind: str, way_out: str
) -> None:
    form = FORMS[kind]
    answers = marked_answers(form)
    markers = markers_of(answers)
    assert len(markers) >= 3
    java_script, leave = WAYS_OUT[way_out]
    profile = tmp_path / "profile"
    with visit_with_profile(
        playwright_instance, profile, server_url, EXIT_URL, java_script_enabled=java_script
    ) as record:
        page = record.page
        page.goto(f"{server_url}/forms/")
        page.goto(f"{server_url}/forms/{kind}/")
        every_step(page, form, answers)
        leave(page)
        arrive_at_the_exit_site(page)
        shown = back_to_the_end(page, server_url)
        shown += forward_to_the_end(page, server_url, markers)
        assert [line for line in shown if any(m in line for m in markers)] == []
        assert record.requests_elsewhere == []
    assert on_disk(profile, markers) == {}
    # What the help page says does stay: the history, with each page's title.
    assert form.title.encode() in (profile / "Default" / "History").read_bytes()


def test_another_link_keeps_the_answers_only_behind_the_cookie(
    playwright_instance: Playwright, server_url: str, tmp_path: Path
) -> None:
    """Reading the privacy notice from a form loses nothing: Back shows the answers again,
    from the sealed draft. They come only through the cookie, never from the device."""
    form = FORMS["leave-left-early"]
    answers = marked_answers(form)
    markers = markers_of(answers)
    profile = tmp_path / "profile"
    with visit_with_profile(playwright_instance, profile, server_url, EXIT_URL) as record:
        page = record.page
        page.goto(f"{server_url}/forms/leave-left-early/")
        every_step(page, form, answers)
        page.locator(".summary-list__actions :is(a, button)").first.click()
        page.get_by_role("link", name="how we use your information").first.click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        page.go_back()
        assert sorted(typed_on_page(page, markers)) == sorted(markers)
        page.context.clear_cookies()
        page.reload()
        assert typed_on_page(page, markers) == []
    assert on_disk(profile, markers) == {}


def test_the_search_finds_the_markers_when_they_are_there(tmp_path: Path) -> None:
    """The disk search itself: a marker in UTF-16, inside a token, or compressed is found."""
    marker = "Zq123456Mark"
    payload = base64.urlsafe_b64encode(zlib.compress(f'{{"a": "{marker}"}}'.encode()))
    (tmp_path / "Sessions").mkdir()
    (tmp_path / "Sessions" / "Tabs_1").write_bytes(b"x" + marker.encode("utf-16-le") + b"y")
    (tmp_path / "Session_2").write_bytes(b"token=." + payload + b".sig")
    (tmp_path / "Clean").write_bytes(b"nothing here")
    assert on_disk(tmp_path, [marker]) == {
        "Sessions/Tabs_1": [marker],
        "Session_2": [marker],
    }
