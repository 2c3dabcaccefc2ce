"""The forms from a member's side, with no JavaScript: pages, errors, check answers, confirm."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from bs4 import BeautifulSoup, Tag
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.config.env import load_settings
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import FieldKind, FormDefinition, body_limit
from forms_server.forms.reference import new_reference, normalise_reference
from forms_server.mail.catcher import CaughtMessage, caught_messages
from forms_server.signing import Purpose
from forms_server.storage.outbox import Outbox
from forms_server.storage.records import SubmissionStore
from forms_server.web.app import create_app
from forms_server.web.drafts import unseal
from forms_server.web.pages import FormsContext
from tests.data_files import held_files

BASE_URL = "http://127.0.0.1:8000"
FORM_POST = {"content-type": "application/x-www-form-urlencoded"}

# A valid answer for every field of every form, so each journey can be completed.
VALID = {
    "name": "Sam Example",
    "email": "sam@example.org",
    "meeting_name": "Blue Heron",
    "signature": "Samuel Example",
    "last_session": "Tuesday 16 December",
    "dates": "the 9th and the 16th",
    "session": "the Friday session",
    "reason": "Moving away.",
    "message": "See you all soon.",
    "what_happened": "Someone shared a link to a site that sells pills.",
    "why_concerned": "It could put members at risk.",
}


def valid_answers(form: FormDefinition) -> dict[str, str]:
    answers = {}
    for spec in form.fields:
        if spec.shown_when is not None:
            continue  # asked only under a choice that is not the first one
        if spec.kind is FieldKind.RADIOS:
            answers[spec.name] = spec.choices[0].value
        elif spec.kind is FieldKind.AGREE:
            answers[spec.name] = "yes"
        else:
            answers[spec.name] = VALID[spec.name]
    return answers


def make_app(site_dir: Path, data_dir: Path, **environ: str) -> Starlette:
    defaults = {
        "FORMS_DATA_DIR": str(data_dir),
        "FORMS_SITE_DIR": str(site_dir),
        "FORMS_BUILD_HANDBOOK": "false",
        "FORMS_MIN_CONFIRM_SECONDS": "0",
    }
    return create_app(load_settings(env_file=None, environ=defaults | environ))


def one_post_then_six_a_minute(site_dir: Path, tmp_path: Path) -> Starlette:
    environ = {"FORMS_CLIENT_POST_BURST": "1", "FORMS_CLIENT_POSTS_PER_MINUTE": "6"}
    return with_stopped_clock(make_app(site_dir, tmp_path / "data", **environ))


def with_stopped_clock(app: Starlette) -> Starlette:
    """The post limits' clock stands still, so the wait a test reads does not depend on how long
    its posts took (under load, the refill during nine posts turned "10 seconds" into 9)."""
    limits = forms_context(app).limits
    for limiter in (limits.per_network, limits.risky, limits.everyone):
        limiter.clock = lambda: 1_000.0
    return app


@pytest.fixture
def app(site_dir: Path, tmp_path: Path) -> Starlette:
    return make_app(site_dir, tmp_path / "data")


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def from_this_machine(app: Starlette) -> TestClient:
    """A client on loopback: /healthz gives its details only to this machine (or the token)."""
    return TestClient(app, base_url=BASE_URL, client=("127.0.0.1", 50000))


def forms_context(app: Starlette) -> FormsContext:
    context: FormsContext = app.state.forms
    return context


def store_of(app: Starlette) -> SubmissionStore:
    store: SubmissionStore = app.state.services.store
    return store


def outbox_of(app: Starlette) -> Outbox:
    outbox: Outbox = app.state.services.outbox
    return outbox


def received_count(app: Starlette) -> int:
    """Submissions taken in: pending or failed items, and delivered markers, counted by
    reference (the worker may finish an item between the two listings, so it can be in both)."""
    outbox = outbox_of(app)
    # Dotfiles are the worker's temporary files, on their way to replacing an item's file.
    pending = {
        path.name.removesuffix(".json")
        for path in outbox.pending_folder.iterdir()
        if not path.name.startswith(".")
    }
    delivered = {path.name for path in outbox.delivered_folder.iterdir()}
    return len(pending | delivered)


def wait_until_delivered(app: Starlette, reference: str) -> None:
    deadline = time.monotonic() + 10
    while not outbox_of(app).is_delivered(reference):
        assert time.monotonic() < deadline, f"{reference}: {outbox_of(app).read(reference)}"
        time.sleep(0.02)


def caught_email(app: Starlette, reference: str) -> CaughtMessage:
    wait_until_delivered(app, reference)
    catcher = app.state.catcher
    found = [m for m in caught_messages(catcher.maildir) if reference in m.subject]
    # One message per recipient, each the same but for its To and its own link.
    assert found, [m.subject for m in caught_messages(catcher.maildir)]
    assert len({ACKNOWLEDGE_LINK.sub("LINK", m.text) for m in found}) == 1
    return found[0]


ACKNOWLEDGE_LINK = re.compile(r"https?://\S+/forms/acknowledge/\S+")


def reference_from(client: TestClient, location: str) -> str:
    """The reference a receipt shows (its address names neither the form nor the reference)."""
    shown = soup_of(client.get(location).text).select_one(".reference")
    assert isinstance(shown, Tag), location
    return shown.get_text(strip=True)


def soup_of(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def send_url_in(html: str) -> str:
    """Where the check page's Send button posts: the draft's own opaque address."""
    form = soup_of(html).select_one('form[action*="/forms/check/"]')
    assert isinstance(form, Tag), "a check page"
    return str(form["action"])


def send(client: TestClient, check_page: str) -> httpx2.Response:
    """Press Send on a check page (the browser's cookie says whose draft it is)."""
    return client.post(send_url_in(check_page), headers=FORM_POST, follow_redirects=False)


def answer(client: TestClient, path: str, data: Mapping[str, str]) -> httpx2.Response:
    """Post a form's answers and follow the 303, as a browser does: to the check page, or back
    to the form with its errors."""
    return client.post(path, data=data, follow_redirects=True)


def post(client: TestClient, path: str, data: Mapping[str, str]) -> str:
    response = answer(client, path, data)
    assert response.status_code == 200, response.text
    return response.text


# -- Pages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMS))
def test_every_form_page_is_complete_and_private(client: TestClient, kind: str) -> None:
    response = client.get(f"/forms/{kind}/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    soup = soup_of(response.text)
    form = soup.select_one("form[novalidate]")
    assert form is not None
    assert soup.select_one('a[href="/about/privacy/"]') is not None
    assert soup.select_one(".quick-exit__button") is not None
    for spec in FORMS[kind].fields:
        control = soup.select_one(f"#{spec.name}")
        assert control is not None, spec.name
        label_text = soup.get_text(" ")
        assert spec.label in label_text
        if spec.optional:
            assert f"{spec.label} (optional)" in " ".join(label_text.split())
    assert "*" not in soup.select_one("main").get_text()  # type: ignore[union-attr]


def test_the_leave_notice_asks_which_kind_first(client: TestClient) -> None:
    page = client.get("/forms/leave/")
    assert page.status_code == 200
    choice = client.post("/forms/leave/", data={"kind": "leave-missing"})
    assert choice.status_code == 303
    assert choice.headers["location"].endswith("/forms/leave-missing/")
    missing = client.post("/forms/leave/", content=b"", headers=FORM_POST)
    assert missing.status_code == 400
    assert "Select what you want to tell us" in missing.text


def test_an_unknown_form_is_a_404_page(client: TestClient) -> None:
    response = client.get("/forms/nonsense/")
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_the_handbook_forms_page_is_still_served(client: TestClient) -> None:
    response = client.get("/forms/")
    assert response.status_code == 200
    assert "consent" in response.text.lower()


# -- Errors -------------------------------------------------------------------------------------


def test_errors_follow_the_govuk_pattern_and_keep_every_value(client: TestClient) -> None:
    typed = {"name": "Sam\nBcc: x@example.org", "email": "a@x, b@y", "meeting_name": "Heron"}
    response = answer(client, "/forms/consent/", typed)
    assert response.status_code == 400
    # The errors come back from the draft, after a 303: no post holds the answers in history.
    assert str(response.url) == f"{BASE_URL}/forms/consent/"
    soup = soup_of(response.text)
    assert soup.title is not None
    assert soup.title.get_text().startswith("Error: ")
    summary = soup.select_one(".error-summary")
    assert summary is not None
    assert summary.get_text(" ", strip=True).startswith("There is a problem")
    assert summary.has_attr("autofocus")
    links = summary.select("a")
    assert links, "the summary links to each problem"
    for link in links:
        target_id = str(link["href"]).removeprefix("#")
        control = soup.find(id=target_id)
        assert isinstance(control, Tag), target_id
        message = soup.find(id=f"{target_id}-error")
        assert isinstance(message, Tag), target_id
        # The inline message repeats the summary's words exactly.
        assert message.get_text(" ", strip=True) == f"Error: {link.get_text(strip=True)}"
        described = str(control.get("aria-describedby", ""))
        if control.name != "input" or control.get("type") not in {"radio"}:
            assert f"{target_id}-error" in described.split(), target_id
    name_input = soup.select_one("#name")
    assert name_input is not None
    assert name_input["value"] == "Sam\nBcc: x@example.org"
    assert soup.select_one("#email")["value"] == "a@x, b@y"  # type: ignore[index]
    assert soup.select_one("#meeting_name")["value"] == "Heron"  # type: ignore[index]
    assert "must be on one line" in response.text
    assert "invalid" not in response.text.lower()


def test_a_radio_error_is_tied_to_its_fieldset(client: TestClient) -> None:
    response = answer(client, "/forms/concern/", {"about": "the moon"})
    soup = soup_of(response.text)
    fieldset = soup.select_one("fieldset:has(#about)")
    assert fieldset is not None
    assert "about-error" in str(fieldset["aria-describedby"]).split()
    assert "Select what your concern is about" in response.text


def test_what_a_member_typed_is_escaped(client: TestClient) -> None:
    response = answer(client, "/forms/concern/", {"what_happened": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


# -- Check answers, change, confirm ------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMS))
def test_the_whole_journey_without_javascript(
    app: Starlette, client: TestClient, kind: str
) -> None:
    form = FORMS[kind]
    answers = valid_answers(form)
    check_page = post(client, f"/forms/{kind}/", answers)
    soup = soup_of(check_page)
    assert "Check your answers before sending" in soup.get_text()
    change_links = soup.select(".summary-list__actions a")
    asked = [spec for spec in form.fields if spec.name in answers]
    assert [link["href"] for link in change_links] == [
        f"{BASE_URL}/forms/{kind}/#{spec.name}" for spec in asked
    ]
    # The check page's address is opaque: neither the form nor anything typed.
    send_url = send_url_in(check_page)
    assert re.fullmatch(rf"{BASE_URL}/forms/check/[A-Za-z0-9_-]{{22}}", send_url), send_url
    assert kind not in send_url.split("/forms/check/")[1]

    confirmed = send(client, check_page)
    assert confirmed.status_code == 303
    location = confirmed.headers["location"]
    # Nor is the receipt's: the history names neither the form nor the reference.
    assert location == send_url.replace("/forms/check/", "/forms/received/")
    receipt = client.get(location)
    assert receipt.status_code == 200
    reference = normalise_reference(reference_from(client, location))
    assert reference is not None
    assert reference not in location
    assert "What happens next" in receipt.text
    assert "received" in receipt.text
    assert " sent" not in receipt.text.split("What happens next")[0]  # never claims "sent"

    email = caught_email(app, reference)
    for spec in asked:
        if not spec.for_facilitators:  # the member's own copy is not the facilitators' business
            assert spec.label not in email.text, spec.name
            continue
        assert spec.label in email.text, spec.name
        if spec.kind not in {FieldKind.RADIOS, FieldKind.AGREE}:
            assert answers[spec.name] in email.text, spec.name
    stored = store_of(app).get(reference)
    assert stored is not None
    assert stored.form_kind == kind
    assert stored.kept == {spec.name: answers[spec.name] for spec in form.fields if spec.kept}


def test_change_brings_back_the_form_with_every_answer(client: TestClient) -> None:
    answers = valid_answers(FORMS["consent"])
    check_page = post(client, "/forms/consent/", answers)
    change_link = soup_of(check_page).select_one(f'a[href="{BASE_URL}/forms/consent/#email"]')
    assert change_link is not None
    response = client.get(str(change_link["href"]))
    assert response.status_code == 200
    soup = soup_of(response.text)
    assert soup.select_one("#email")["value"] == answers["email"]  # type: ignore[index]
    assert soup.select_one("#agree_removal").has_attr("checked")  # type: ignore[union-attr]


def test_a_double_click_or_a_replay_gives_one_submission_and_the_same_receipt(
    app: Starlette, client: TestClient
) -> None:
    check_page = post(client, "/forms/leave-missing/", valid_answers(FORMS["leave-missing"]))
    first = send(client, check_page)
    second = send(client, check_page)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert received_count(app) == 1


def test_the_consent_record_binds_the_guidelines_version(
    app: Starlette, client: TestClient
) -> None:
    check_page = post(client, "/forms/consent/", valid_answers(FORMS["consent"]))
    version = forms_context(app).guidelines.version
    # The member reads a date; the record, the email and the archive keep the hash.
    today = datetime.now(UTC).date()
    assert f"the version of {today.day} {today:%B %Y}" in check_page
    assert version not in check_page
    archived = json.loads(
        (forms_context(app).settings.data_dir / "guidelines" / f"{version}.json").read_text()
    )
    assert archived["version"] == version
    assert "Taking part in a meeting" in archived["pages"]["taking-part.md"]
    location = send(client, check_page).headers["location"]
    reference = reference_from(client, location)
    assert f"Guidelines version agreed to: {version}" in caught_email(app, reference).text
    stored = store_of(app).get(reference)
    assert stored is not None
    assert stored.guidelines_version == version


def old_check_token(app: Starlette, kind: str, **payload: object) -> str:
    """A check page's token as the server signed it before drafts were sealed."""
    return forms_context(app).signer.sign(
        kind,
        Purpose.CHECK_ANSWERS,
        {"reference": "000-000-000", "answers": valid_answers(FORMS[kind]), **payload},
    )


def test_a_check_page_from_before_the_upgrade_becomes_a_draft_to_check_and_send(
    app: Starlette, client: TestClient
) -> None:
    """Someone on a check page while the server was upgraded loses nothing: their answers
    become this browser's draft, under a new reference, and they see them to send."""
    token = old_check_token(app, "concern")
    moved = client.post("/forms/concern/confirm", data={"token": token})
    assert moved.status_code == 303
    assert "/forms/check/" in moved.headers["location"]
    check_page = client.get(moved.headers["location"]).text
    assert VALID["what_happened"] in check_page
    assert received_count(app) == 0  # nothing is sent without the member pressing Send
    changed = client.post("/forms/concern/change", data={"token": token})
    assert changed.headers["location"] == moved.headers["location"]
    sent = send(client, check_page)
    assert sent.status_code == 303
    assert reference_from(client, sent.headers["location"]) != "000-000-000"
    assert received_count(app) == 1


def test_an_old_check_page_for_guidelines_that_have_changed_is_refused_at_send(
    app: Starlette, client: TestClient
) -> None:
    token = old_check_token(app, "consent", guidelines="an-old-one")
    check_page = client.get(
        client.post("/forms/consent/confirm", data={"token": token}).headers["location"]
    ).text
    response = send(client, check_page)
    assert response.status_code == 409
    assert "guidelines changed" in response.text
    # The draft stays: back on the form, every answer but the boxes to tick again is there.
    back = client.get("/forms/consent/")
    assert VALID["signature"] in back.text
    assert received_count(app) == 0


@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        (lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "was changed"),
        (lambda token: "", "incomplete"),
        (lambda token: "not-a-token", "was changed"),
    ],
)
def test_a_tampered_or_missing_old_token_keeps_nothing(
    app: Starlette, client: TestClient, make_token: object, expected: str
) -> None:
    token = make_token(old_check_token(app, "concern"))  # type: ignore[operator]
    response = client.post("/forms/concern/confirm", data={"token": token})
    assert response.status_code == 400
    assert expected in response.text
    assert "Nothing was kept or sent" in response.text
    assert received_count(app) == 0
    assert list((forms_context(app).settings.data_dir / "drafts").iterdir()) == []


def test_an_old_token_for_another_form_is_refused(app: Starlette, client: TestClient) -> None:
    token = old_check_token(app, "leave-leaving")
    response = client.post("/forms/leave-missing/confirm", data={"token": token})
    assert response.status_code == 400
    assert "for a different form" in response.text
    assert received_count(app) == 0


def test_an_expired_or_future_old_token_says_what_to_do(
    app: Starlette, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = old_check_token(app, "concern")
    max_age = forms_context(app).settings.token_max_age_seconds
    real_time = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() + max_age + 5)
    response = client.post("/forms/concern/confirm", data={"token": token})
    assert response.status_code == 400
    assert "too much time passed" in response.text
    assert "Start the form again" in response.text
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() + 3600)
    from_the_future = old_check_token(app, "concern")
    monkeypatch.setattr("itsdangerous.timed.time.time", real_time)
    future = client.post("/forms/concern/confirm", data={"token": from_the_future})
    assert future.status_code == 400
    assert "Nothing was kept or sent" in future.text
    assert received_count(app) == 0


def test_a_filled_trap_field_is_delivered_with_a_mark_and_counted(
    app: Starlette, client: TestClient
) -> None:
    """An urgent concern whose hidden field an autofill or a tool filled in still reaches
    people: marked "may be automated", counted on /healthz, never silently dropped."""
    page = soup_of(client.get("/forms/concern/").text)
    trap = page.select_one(".trap input")
    assert isinstance(trap, Tag)
    assert trap["autocomplete"] == "off"
    # No autofill fills a field by this name (they target website, url, name, email...).
    assert not re.search(
        r"web|url|site|name|mail|phone|address", str(trap["name"]).replace("blank", "")
    )
    answers = {**valid_answers(FORMS["concern"]), "immediate_risk": "yes", str(trap["name"]): "x"}
    check_page = post(client, "/forms/concern/", answers)
    confirmed = send(client, check_page)
    assert confirmed.status_code == 303
    reference = reference_from(client, confirmed.headers["location"])
    email = caught_email(app, reference)
    assert "may be automated" in email.subject
    assert "This form may have been sent by a program" in email.text
    assert "URGENT" in email.subject
    assert from_this_machine(app).get("/healthz").json()["suspected_automated_since_start"] == 1


def test_a_confirm_too_soon_says_why_and_sends_nothing_yet(site_dir: Path, tmp_path: Path) -> None:
    app = make_app(site_dir, tmp_path / "data", FORMS_MIN_CONFIRM_SECONDS="30")
    with TestClient(app, base_url=BASE_URL) as client:
        check_page = post(client, "/forms/leave-missing/", valid_answers(FORMS["leave-missing"]))
        again = send(client, check_page)
        assert again.status_code == 200
        assert "Your form has not been sent yet" in again.text
        assert "pressed very soon after this page opened" in again.text
        assert received_count(app) == 0


def test_an_anonymous_concern_is_accepted(app: Starlette, client: TestClient) -> None:
    answers = {
        "about": "member",
        "immediate_risk": "no",
        "what_happened": VALID["what_happened"],
        "why_concerned": VALID["why_concerned"],
    }
    check_page = post(client, "/forms/concern/", answers)
    confirmed = send(client, check_page)
    assert confirmed.status_code == 303
    assert received_count(app) == 1


@pytest.mark.parametrize(
    ("kind", "field", "answer"),
    [
        ("concern", "immediate_risk", "yes"),
        ("leave-left-early", "safe_now", "no"),
    ],
)
def test_risk_shows_the_crisis_contacts_before_and_after_sending(
    client: TestClient, kind: str, field: str, answer: str
) -> None:
    form_page = client.get(f"/forms/{kind}/").text
    assert soup_of(form_page).select_one(f'.choices--crisis [data-crisis][value="{answer}"]')
    assert "Samaritans" in soup_of(form_page).select_one(".crisis-reveal").get_text()  # type: ignore[union-attr]
    answers = {**valid_answers(FORMS[kind]), field: answer, "reach_unsafe": "07700 900982"}
    check_page = post(client, f"/forms/{kind}/", answers)
    assert "do not wait for a reply" in check_page
    location = send(client, check_page).headers["location"]
    assert "Samaritans" in client.get(location).text


def test_a_receipt_for_a_mistyped_reference_is_not_found(client: TestClient) -> None:
    assert client.get("/forms/consent/received/000-000-001").status_code == 404


# -- Hostile requests ---------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_413(client: TestClient) -> None:
    limit = body_limit(FORMS["concern"])
    response = client.post("/forms/concern/", data={"what_happened": "x" * limit})
    assert response.status_code == 413
    assert "too long" in response.text


def test_a_paste_far_past_a_fields_limit_still_gets_that_fields_message(
    client: TestClient,
) -> None:
    answers = valid_answers(FORMS["concern"]) | {"what_happened": "Ж" * 9_000}
    response = answer(client, "/forms/concern/", answers)
    assert response.status_code == 400
    assert "What happened must be 3000 characters or fewer" in response.text
    assert VALID["why_concerned"] in response.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b"name=Sam"), ("application/json", b'{"name": "Sam"}')],
)
def test_a_post_that_is_not_a_form_gets_415(
    client: TestClient, content_type: str, body: bytes
) -> None:
    response = client.post("/forms/consent/", content=body, headers={"content-type": content_type})
    assert response.status_code == 415


def test_a_file_upload_is_refused(client: TestClient) -> None:
    response = client.post("/forms/consent/", files={"name": ("a.txt", b"hello")})
    assert response.status_code == 415


def test_too_many_fields_are_refused(client: TestClient) -> None:
    response = client.post("/forms/consent/", data={f"f{i}": "x" for i in range(100)})
    assert response.status_code == 400
    assert "too many parts" in response.text


def test_a_cross_site_post_is_refused(client: TestClient) -> None:
    answers = valid_answers(FORMS["consent"])
    foreign = client.post(
        "/forms/consent/", data=answers, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    fetch = client.post("/forms/consent/", data=answers, headers={"sec-fetch-site": "cross-site"})
    assert fetch.status_code == 403
    same = client.post("/forms/consent/", data=answers, headers={"origin": BASE_URL})
    assert same.status_code == 303


def test_other_methods_get_405(client: TestClient) -> None:
    assert client.put("/forms/consent/").status_code == 405
    assert client.delete("/forms/consent/confirm").status_code == 405


def test_unknown_fields_are_ignored(app: Starlette, client: TestClient) -> None:
    answers = {**valid_answers(FORMS["leave-leaving"]), "is_admin": "yes"}
    check_page = post(client, "/forms/leave-leaving/", answers)
    location = send(client, check_page).headers["location"]
    assert "is_admin" not in caught_email(app, reference_from(client, location)).text


def raw_data_files(app: Starlette) -> str:
    """Everything the server keeps on disk, but the stand-in for the facilitators' inbox."""
    data_dir = forms_context(app).settings.data_dir
    return "".join(
        held.decode("utf-8", errors="replace")
        for path, held in held_files(data_dir).items()
        if "maildir" not in path.parts
    )


def test_the_raw_files_hold_no_name_or_address(app: Starlette, client: TestClient) -> None:
    check_page = post(client, "/forms/consent/", valid_answers(FORMS["consent"]))
    location = send(client, check_page)
    planted = ("Sam Example", "sam@example.org", "Blue Heron", "Samuel Example")
    while_pending = raw_data_files(app)
    caught_email(app, reference_from(client, location.headers["location"]))
    once_delivered = raw_data_files(app)
    for value in planted:
        assert value not in while_pending
        assert value not in once_delivered


# -- Logs and failures --------------------------------------------------------------------------


def test_no_log_line_holds_what_a_member_typed(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for kind in FORMS:
        check_page = post(client, f"/forms/{kind}/", valid_answers(FORMS[kind]))
        send(client, check_page)
    answer(client, "/forms/consent/", {"name": "Sam Example\n", "email": "sam@example.org"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Received a consent" in logged
    for planted in VALID.values():
        assert planted not in logged


def test_a_full_disk_at_confirm_loses_nothing_and_says_to_try_again(
    app: Starlette,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(submission: object) -> bool:
        raise OSError(28, f"No space left while writing {VALID['name']}")

    check_page = post(client, "/forms/consent/", valid_answers(FORMS["consent"]))
    monkeypatch.setattr(app.state.services.worker.intake, "add", disk_full)
    response = send(client, check_page)
    assert response.status_code == 503
    assert "We cannot save forms right now" in response.text
    assert "Your form has not been sent, and nothing was kept." in response.text
    assert VALID["signature"] in response.text  # the answers are still there, to send again
    monkeypatch.undo()
    again = send(client, response.text)
    assert again.status_code == 303
    assert received_count(app) == 1
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert VALID["signature"] not in logged


def test_an_unexpected_failure_is_a_plain_page_with_an_incident_code(
    app: Starlette,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def bug(submission: object) -> bool:
        raise RuntimeError(f"Something unforeseen about {VALID['name']}")

    monkeypatch.setattr(app.state.services.worker.intake, "add", bug)
    check_page = post(client, "/forms/consent/", valid_answers(FORMS["consent"]))
    response = send(client, check_page)
    assert response.status_code == 500
    code = re.search(r"give this code: <strong>([0-9A-F]{8})</strong>", response.text)
    assert code is not None
    assert "Traceback" not in response.text
    assert VALID["name"] not in response.text
    assert_security_headers(response.headers)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"Incident {code.group(1)}: RuntimeError" in logged
    assert VALID["name"] not in logged


def assert_security_headers(headers: Mapping[str, str]) -> None:
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    "address", ["john.@gmail.com", ".a..b@example.com", "=?utf-8?q?x?=@example.com"]
)
def test_an_address_no_email_can_carry_is_refused_at_the_form(
    app: Starlette, client: TestClient, address: str
) -> None:
    answers = {**valid_answers(FORMS["concern"]), "contact_preference": "email", "email": address}
    response = answer(client, "/forms/concern/", answers)
    assert response.status_code == 400
    assert "Enter an email address in the correct format, like name@example.com" in response.text
    assert received_count(app) == 0


def test_every_form_link_in_the_handbook_leads_to_a_form(
    client: TestClient, site_dir: Path
) -> None:
    links = set()
    for page in site_dir.rglob("*.html"):
        soup = soup_of(page.read_text("utf-8"))
        links |= {
            str(link["href"])
            for link in soup.select('article a[href^="/forms/"]')
            if link["href"] != "/forms/"
        }
    assert {"/forms/consent/", "/forms/leave/", "/forms/concern/"} <= links
    for link in links:
        assert client.get(link).status_code == 200, link


def test_an_unknown_host_is_refused(client: TestClient) -> None:
    response = client.get("/forms/consent/", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert_security_headers(response.headers)


def test_a_refused_host_is_named_in_the_log_once(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal was silent: a coordinator whose proxy sent another Host saw only 400s."""
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert client.get("/", headers={"host": "forms.example.org"}).status_code == 400
        assert client.get("/").status_code == 200
    refusals = [r.getMessage() for r in caplog.records if "Refused a request" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert "'forms.example.org'" in refusals[0]
    assert "FORMS_PUBLIC_URL" in refusals[0]


def test_a_confirm_faster_than_reading_sends_nothing_but_loses_nothing(
    site_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(site_dir, tmp_path / "data", FORMS_MIN_CONFIRM_SECONDS="3")
    # The wall clock stands still until the test moves it: under load, the post and the first
    # Send could take more than the 3 seconds on their own.
    started = time.time()
    monkeypatch.setattr("time.time", lambda: started)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        check_page = post(client, "/forms/concern/", valid_answers(FORMS["concern"]))
        too_fast = send(client, check_page)
        assert too_fast.status_code == 200
        assert "Check your answers, then press Send again." in too_fast.text
        assert received_count(app) == 0
        monkeypatch.setattr("time.time", lambda: started + 4)
        confirmed = send(client, too_fast.text)
        assert confirmed.status_code == 303
        assert received_count(app) == 1


def test_a_flood_from_one_client_does_not_stop_another(site_dir: Path, tmp_path: Path) -> None:
    app = with_stopped_clock(make_app(site_dir, tmp_path / "data", FORMS_CLIENT_POST_BURST="5"))
    flooder = TestClient(app, base_url=BASE_URL, client=("203.0.113.9", 5000))
    member = TestClient(app, base_url=BASE_URL, client=("198.51.100.7", 5000))
    answers = valid_answers(FORMS["leave-missing"])
    statuses = [flooder.post("/forms/leave-missing/", data=answers).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429] * 3
    refused = flooder.post("/forms/leave-missing/", data=answers)
    # The truth: the bucket gives one more post every 10 seconds (6 a minute).
    assert "Wait 10 seconds" in refused.text
    assert refused.headers["retry-after"] == "10"
    assert member.post("/forms/leave-missing/", data=answers).status_code == 200


# -- Operations ---------------------------------------------------------------------------------


def test_health_reports_the_outbox_and_nothing_personal(app: Starlette, client: TestClient) -> None:
    delivery = app.state.services.worker
    deadline = time.monotonic() + 10
    while delivery.last_pass_at is None:  # the worker's first pass, just after start
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The world learns only whether it is ok; this machine (or the health token) the details.
    assert client.get("/healthz").json() == {"status": "ok"}
    local = from_this_machine(app)
    healthy = local.get("/healthz")
    assert healthy.status_code == 200
    body = healthy.json()
    assert body["status"] == "ok"
    assert body["problems"] == []
    assert body["outbox"] == {
        "pending": 0,
        "urgent_pending": 0,
        "oldest_pending_seconds": None,
        "oldest_urgent_seconds": None,
        "failed": 0,
        "quarantined": 0,
        "waiting_for_a_digest": 0,
    }
    # A form the relay refused for good stays in the outbox, and the health check says so.
    (outbox_of(app).pending_folder / "4KX-7QD-M2P.json").write_text("Sam's half-written", "utf-8")
    delivery.wake.set()
    while client.get("/healthz").status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.get("/healthz").json() == {"status": "failing"}
    degraded = local.get("/healthz")
    assert degraded.headers["content-type"] == "application/json"
    assert degraded.json()["status"] == "failing"
    assert degraded.json()["problems"] == ["1 outbox file(s) could not be read."]
    assert "Sam" not in degraded.text
    assert "4KX" not in degraded.text


def test_health_answers_json_even_when_it_fails(
    app: Starlette, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(now: datetime) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(app.state.services.worker, "health", broken)
    response = from_this_machine(app).get("/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "failing",
        "problems": ["The health check itself failed."],
    }


def test_the_development_mail_page_shows_what_facilitators_receive(
    app: Starlette, client: TestClient
) -> None:
    check_page = post(client, "/forms/concern/", valid_answers(FORMS["concern"]))
    location = send(client, check_page)
    reference = reference_from(client, location.headers["location"])
    wait_until_delivered(app, reference)
    page = client.get("/dev/mail/")
    assert page.status_code == 200
    assert f"Harbour Peer Support: Concern - URGENT - ref {reference}" in page.text
    # The group has not decided who receives concerns: the guidelines' facilitators do.
    assert "facilitators@example.org" in page.text
    assert VALID["what_happened"] in page.text


def test_production_has_no_development_mail_page(
    decided_project: Path, decided_site: Path, tmp_path: Path
) -> None:
    app = make_app(
        decided_site,
        tmp_path / "data",
        FORMS_HANDBOOK_CONFIG=str(decided_project / "mkdocs.yml"),
        FORMS_ENV="production",
        FORMS_PUBLIC_URL="https://forms.example.org",
        FORMS_ALLOWED_HOSTS="forms.example.org,127.0.0.1",
        FORMS_MAIL_FROM="forms@example.org",
        FORMS_SECRET_KEYS="k" * 40,
        FORMS_DATA_KEY="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        FORMS_SMTP_HOST="127.0.0.1",
        FORMS_SAFEGUARDING="lead@example.org",
    )
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/dev/mail/").status_code == 404


# -- Drafts: sealed for this browser only; Exit ends them; a sent form is closed ---------------


def exit_link_in(html: str) -> str:
    link = soup_of(html).select_one("[data-quick-exit-button]")
    assert isinstance(link, Tag)
    return str(link["href"])


TYPED = (VALID["what_happened"], VALID["why_concerned"], VALID["name"], "07700 900982")


def assert_nothing_typed_in(html: str) -> None:
    for typed in TYPED:
        assert typed not in html


def assert_every_address_expired(
    client: TestClient, check_url: str, cookies: dict[str, str]
) -> None:
    """The check page, its Send and the receipt, asked with only these cookies."""
    client.cookies.clear()
    client.cookies.update(cookies)
    for response in (
        client.get(check_url),
        client.post(check_url, headers=FORM_POST),
        client.get(check_url.replace("/check/", "/received/")),
    ):
        assert response.status_code == 410
        assert "This page has expired" in response.text
        assert_nothing_typed_in(response.text)


def drafts_folder(app: Starlette) -> Path:
    return forms_context(app).settings.data_dir / "drafts"


def unsafe_notice() -> dict[str, str]:
    return {
        **valid_answers(FORMS["leave-left-early"]),
        "safe_now": "no",
        "reach_unsafe": "07700 900982",
    }


def test_exit_ends_every_step_of_the_draft_and_clears_the_cookie(
    app: Starlette, client: TestClient
) -> None:
    check_page = post(client, "/forms/leave-left-early/", unsafe_notice())
    check_url = send_url_in(check_page)
    kept_key = client.cookies["key"]
    exit_link = exit_link_in(check_page)
    assert exit_link == f"{BASE_URL}/forms/exit"
    left = client.get(exit_link)
    assert left.status_code == 303
    assert left.headers["location"] == "https://www.bbc.co.uk/weather"
    assert left.headers["clear-site-data"] == '"cache", "cookies"'
    assert "key" not in client.cookies  # and for a browser that ignores Clear-Site-Data
    assert list(drafts_folder(app).iterdir()) == []
    # Back and Reload after Exit: every address of the draft, with no cookie, or with the
    # old one kept by someone who copied it.
    for cookies in ({}, {"key": kept_key}):
        assert_every_address_expired(client, check_url, cookies)
        assert_nothing_typed_in(client.get("/forms/leave-left-early/").text)
    assert received_count(app) == 0


def test_a_restart_neither_loses_a_draft_nor_undoes_an_exit(site_dir: Path, tmp_path: Path) -> None:
    """A draft is on disk, sealed, so a restart keeps it; Exit deletes it, so a resend after
    Exit shows nothing, before or after a restart."""
    first = make_app(site_dir, tmp_path / "data")
    with TestClient(first, base_url=BASE_URL, follow_redirects=False) as client:
        check_page = post(client, "/forms/concern/", valid_answers(FORMS["concern"]))
        key = client.cookies["key"]
    restarted = make_app(site_dir, tmp_path / "data")
    with TestClient(restarted, base_url=BASE_URL, follow_redirects=False) as client:
        client.cookies["key"] = key
        again = client.get(send_url_in(check_page))
        assert again.status_code == 200
        assert VALID["what_happened"] in again.text
        client.get("/forms/exit")
    for _ in range(2):  # once straight after the exit, once after another restart
        app = make_app(site_dir, tmp_path / "data")
        with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
            client.cookies["key"] = key
            resent = client.post(send_url_in(check_page), headers=FORM_POST)
            assert resent.status_code == 410
            assert_nothing_typed_in(resent.text)
            assert received_count(app) == 0


@pytest.mark.parametrize(
    "cookie", [None, "", "not-base64!", "c2hvcnQ", "A" * 43, "A" * 500], ids=repr
)
def test_exit_always_leaves_whatever_the_browser_sends(
    client: TestClient, cookie: str | None
) -> None:
    if cookie is not None:
        client.cookies["key"] = cookie
    for link in ("/forms/exit", "/forms/exit?draft=altered.token"):
        left = client.get(link)
        assert left.status_code == 303, link
        assert left.headers["location"] == "https://www.bbc.co.uk/weather"


def test_without_this_browsers_cookie_a_draft_says_only_that_it_expired(
    app: Starlette, client: TestClient
) -> None:
    check_page = post(client, "/forms/concern/", valid_answers(FORMS["concern"]))
    check_url = send_url_in(check_page)
    # Another browser on the same server (no lifespan of its own: one worker is running).
    someone_else = TestClient(app, base_url=BASE_URL, follow_redirects=False)
    for cookies in ({}, {"key": "A" * 43}):  # no cookie, and another browser's
        assert_every_address_expired(someone_else, check_url, cookies)
    assert received_count(app) == 0
    assert send(client, check_page).status_code == 303  # the member's own browser still can


def test_the_cookie_is_strictly_necessary_and_says_nothing(client: TestClient) -> None:
    response = client.post("/forms/concern/", data=valid_answers(FORMS["concern"]))
    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert attributes[0].startswith("key=")
    assert {"httponly", "samesite=strict", "path=/"} <= set(attributes)
    # No expiry: it goes when the browser closes. Not Secure over plain loopback HTTP, or
    # the browser would not send it back (production sets Secure).
    assert not [a for a in attributes if a.startswith(("expires", "max-age", "domain"))]
    assert "secure" not in attributes
    # Only a form's answers set it: reading a form, or the handbook, sets nothing.
    for path in ("/forms/concern/", "/", "/about/privacy/"):
        assert "set-cookie" not in client.get(path).headers


def test_nothing_the_host_holds_can_open_a_draft(app: Starlette, client: TestClient) -> None:
    post(client, "/forms/leave-left-early/", unsafe_notice())
    [draft_file] = list(drafts_folder(app).iterdir())
    sealed = draft_file.read_bytes()
    assert_nothing_typed_in(sealed.decode("latin-1"))
    settings = forms_context(app).settings
    host_keys = [
        *settings.data_keys_bytes,
        *(str(key).encode() for key in settings.secret_keys),
        *(path.read_bytes() for path in settings.data_dir.glob("*key*") if path.is_file()),
    ]
    assert host_keys
    for host_key in host_keys:
        for candidate in (host_key, host_key[:32], hashlib.sha256(host_key).digest()):
            assert unseal(candidate, draft_file.name, sealed) is None
    assert unseal(browser_key_of_client(client), draft_file.name, sealed) is not None


def browser_key_of_client(client: TestClient) -> bytes:
    return base64.urlsafe_b64decode(client.cookies["key"] + "=")


def test_a_sent_form_is_closed_and_a_change_after_it_is_a_new_form(
    app: Starlette, client: TestClient
) -> None:
    """With the check page's token, Change, mark it urgent, Send gave "Concern received" with
    the same reference, and only the first version was delivered. Now sending closes the
    draft: its pages say only "expired", and what is typed next is a new form."""
    answers = valid_answers(FORMS["concern"]) | {"immediate_risk": "no"}
    check_page = post(client, "/forms/concern/", answers)
    first = send(client, check_page)
    first_reference = reference_from(client, first.headers["location"])
    # Back into the sent form: the check page has expired, and says nothing of what was sent.
    closed = client.get(send_url_in(check_page))
    assert closed.status_code == 410
    assert first_reference not in closed.text
    assert_nothing_typed_in(closed.text)
    assert_nothing_typed_in(client.get("/forms/concern/").text)
    # Resending the same Send: the same receipt, nothing sent twice.
    assert send(client, check_page).headers["location"] == first.headers["location"]
    # Changing it now is a new concern, delivered as itself.
    urgent_check = post(client, "/forms/concern/", answers | {"immediate_risk": "yes"})
    second = send(client, urgent_check)
    second_reference = reference_from(client, second.headers["location"])
    assert second_reference != first_reference
    assert "URGENT" in caught_email(app, second_reference).subject
    assert "URGENT" not in caught_email(app, first_reference).subject
    assert received_count(app) == 2


def test_another_link_keeps_the_draft_until_it_is_idle(app: Starlette, client: TestClient) -> None:
    check_page = post(client, "/forms/leave-left-early/", unsafe_notice())
    # The member reads how their data is used, then comes back to the form.
    assert client.get("/about/privacy/").status_code == 200
    back = client.get("/forms/leave-left-early/")
    assert "07700 900982" in back.text
    assert client.get(send_url_in(check_page)).status_code == 200
    files = forms_context(app).drafts.files
    assert files is not None
    idle_minutes = forms_context(app).settings.decisions.draft_idle_minutes
    files.clock = lambda: time.time() + idle_minutes * 60 + 1
    assert_nothing_typed_in(client.get("/forms/leave-left-early/").text)
    assert client.get(send_url_in(check_page)).status_code == 410
    assert list(drafts_folder(app).iterdir()) == []


@pytest.mark.parametrize("kind", sorted(FORMS))
def test_every_form_says_how_long_a_draft_is_kept(client: TestClient, kind: str) -> None:
    text = " ".join(soup_of(client.get(f"/forms/{kind}/").text).get_text(" ").split())
    assert "we keep your answers until you send them, for 20 minutes after your last step" in text
    assert "Exit this page deletes them at once" in text


def test_no_address_of_a_journey_holds_an_answer_or_the_form_after_the_form_page(
    client: TestClient,
) -> None:
    answers = unsafe_notice()
    first = client.post("/forms/leave-left-early/", data=answers)
    check_url = first.headers["location"]
    sent = send(client, client.get(check_url).text)
    for address in (check_url, sent.headers["location"]):
        assert "leave" not in address
        assert "left-early" not in address
        assert not any(value in address for value in answers.values() if len(value) > 3)


def test_a_form_page_never_lets_the_browser_restore_typed_answers(client: TestClient) -> None:
    page = soup_of(client.get("/forms/consent/").text)
    form = page.select_one('form[action$="/forms/consent/"]')
    assert isinstance(form, Tag)
    assert form["autocomplete"] == "off"
    # Links from a form open in the same tab: a new tab would survive the exit.
    assert page.select('a[target="_blank"]') == []


@pytest.mark.parametrize("kind", sorted(FORMS))
def test_no_field_lets_the_browser_save_what_was_typed(client: TestClient, kind: str) -> None:
    """A field's own autocomplete ("name", "tel", "email") overrides the form's "off": Chromium
    then saved the member's name and the number asked only of someone not safe. Being a member
    of this group is itself health information, so no field ever asks the browser to keep it."""
    page = soup_of(client.get(f"/forms/{kind}/").text)
    # Radios and boxes cannot carry it (the form's own "off" covers them).
    fields = page.select("form input[type=text], form input[type=email], form textarea")
    assert fields
    for field in fields:
        assert field.get("autocomplete") == "off", field


# -- Receipts: only for forms that exist, and saying who reads them -----------------------------


def test_a_receipt_exists_only_for_a_form_sent_as_that_form(
    app: Starlette, client: TestClient
) -> None:
    # A receipt's address from before drafts (the form and the reference in it) still works
    # for a form the outbox vouches for, and for nothing else.
    assert client.get(f"/forms/consent/received/{new_reference()}").status_code == 404
    check_page = post(client, "/forms/leave-missing/", valid_answers(FORMS["leave-missing"]))
    sent = send(client, check_page)
    reference = reference_from(client, sent.headers["location"])
    wait_until_delivered(app, reference)
    assert client.get(f"/forms/leave-missing/received/{reference}").status_code == 200
    assert client.get(f"/forms/consent/received/{reference}").status_code == 200  # kind unknown


def test_a_concern_about_a_facilitator_never_points_back_to_the_facilitators(
    client: TestClient,
) -> None:
    answers = {**valid_answers(FORMS["concern"]), "about": "facilitator"}
    check_page = post(client, "/forms/concern/", answers)
    sent = send(client, check_page)
    page = client.get(sent.headers["location"]).text
    assert "It does not go to the facilitators." in page
    assert "Email the facilitators" not in page
    assert "facilitators@example.org" not in page.split("<main")[1]


@pytest.mark.parametrize("kind", ["concern", "leave-left-early"])
def test_danger_comes_first_with_numbers_to_tap(client: TestClient, kind: str) -> None:
    page = soup_of(client.get(f"/forms/{kind}/").text)
    main = page.select_one("main")
    assert isinstance(main, Tag)
    first_contacts = main.select_one(".crisis-contacts")
    first_question = main.select_one("form .form-group")
    assert isinstance(first_contacts, Tag)
    assert isinstance(first_question, Tag)
    elements = list(main.descendants)
    assert elements.index(first_contacts) < elements.index(first_question)
    assert "If you or someone else is in danger now" in first_contacts.get_text()
    links = {str(link["href"]) for link in first_contacts.select("a")}
    assert {"tel:999", "tel:111", "tel:116123", "sms:85258?body=SHOUT"} <= links


@pytest.mark.parametrize("kind", ["concern", "leave-left-early"])
@pytest.mark.parametrize("urgent", [True, False])
def test_help_is_on_the_risk_forms_themselves_as_the_handbook_gives_it(
    client: TestClient, site_dir: Path, kind: str, urgent: bool
) -> None:
    """Getting help never means leaving a form (another link keeps the draft, but a person
    in danger should not have to find that out): the first steps of "Get help now" are on the
    form and on its check page, word for word as the handbook says them, with how to clear
    the screen."""
    help_page = soup_of((site_dir / "help/get-help-now/index.html").read_text("utf-8"))
    first_steps = []
    for heading in help_page.select("article h2"):
        if heading.get_text(strip=True) in {
            "If you or someone else is in danger now",
            "People you can contact at any time",
        }:
            for sibling in heading.find_next_siblings():
                if sibling.name == "h2":
                    break
                if sibling.name == "p":
                    first_steps.append(" ".join(sibling.get_text(" ").split()))
    handbook_sentences = [
        sentence for paragraph in first_steps for sentence in re.split(r"(?<=\.) ", paragraph)
    ]
    assert len(handbook_sentences) >= 4, handbook_sentences
    field, answer = ("immediate_risk", "yes") if kind == "concern" else ("safe_now", "no")
    calm = "no" if kind == "concern" else "yes"
    answers = valid_answers(FORMS[kind]) | (
        {field: answer, "reach_unsafe": "07700 900982"} if urgent else {field: calm}
    )
    pages = {
        "form": client.get(f"/forms/{kind}/").text,
        "check": post(client, f"/forms/{kind}/", answers),
    }
    for step, html in pages.items():
        region = soup_of(html).select_one(".crisis-contacts")
        assert isinstance(region, Tag), step
        says = " ".join(region.get_text(" ").split())
        for sentence in handbook_sentences:
            assert sentence in says, (step, sentence)
        assert "If someone else might see this screen, use Exit this page" in says, step
        for contact in forms_context(client.app).settings.group["crisis_contacts"]:  # type: ignore[arg-type]
            assert contact["name"] in says, (step, contact["name"])


def test_the_handbooks_crisis_contacts_can_be_tapped(site_dir: Path) -> None:
    page = (site_dir / "help/get-help-now/index.html").read_text("utf-8")
    for link in ("tel:999", "tel:111", "tel:116123", "sms:85258?body=SHOUT"):
        assert f'href="{link}"' in page


# -- Limits are in characters, whatever the script --------------------------------------------

TYPED_KINDS = {FieldKind.TEXT, FieldKind.TEXTAREA}


@pytest.mark.parametrize("character", ["Ж", "漢", "😀"], ids=["cyrillic", "cjk", "emoji"])
@pytest.mark.parametrize("kind", list(FORMS))
def test_every_answer_at_its_limit_in_any_script_is_accepted_and_sent(
    client: TestClient, kind: str, character: str
) -> None:
    form = FORMS[kind]
    answers = valid_answers(form)
    for spec in form.fields:
        if spec.kind in TYPED_KINDS and spec.name in answers:
            answers[spec.name] = character * spec.max_length
    check_page = answer(client, f"/forms/{kind}/", answers)
    assert check_page.status_code == 200, check_page.text[:300]
    confirmed = send(client, check_page.text)
    assert confirmed.status_code == 303


@pytest.mark.parametrize("character", ["Ж", "😀"], ids=["cyrillic", "emoji"])
def test_one_character_too_many_is_that_fields_message_with_everything_kept(
    client: TestClient, character: str
) -> None:
    form = FORMS["concern"]
    answers = valid_answers(form) | {
        "what_happened": character * 3001,
        "why_concerned": character * 3000,
    }
    response = answer(client, "/forms/concern/", answers)
    assert response.status_code == 400
    soup = soup_of(response.text)
    assert [link.get_text() for link in soup.select(".error-summary__list a")] == [
        "What happened must be 3000 characters or fewer"
    ]
    assert soup.select_one("#why_concerned").get_text() == character * 3000  # type: ignore[union-attr]
    assert soup.select_one("#what_happened").get_text() == character * 3001  # type: ignore[union-attr]


def test_every_typed_answers_limit_is_in_its_hint_tied_to_its_box(client: TestClient) -> None:
    for kind, form in FORMS.items():
        page = soup_of(client.get(f"/forms/{kind}/").text)
        for spec in form.fields:
            if spec.kind not in TYPED_KINDS | {FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}:
                continue
            box = page.select_one(f"#{spec.name}")
            assert isinstance(box, Tag), spec.name
            hint = page.select_one(f"#{spec.name}-hint")
            assert isinstance(hint, Tag), spec.name
            assert f"{spec.name}-hint" in str(box["aria-describedby"]).split()
            assert f"You can enter up to {spec.max_length:,} characters." in hint.get_text()


def test_a_limited_member_is_told_the_real_wait_and_the_way_round(
    site_dir: Path, tmp_path: Path
) -> None:
    app = one_post_then_six_a_minute(site_dir, tmp_path)
    with TestClient(app, base_url=BASE_URL, client=("198.51.100.7", 4000)) as client:
        answers = valid_answers(FORMS["leave-missing"])
        assert client.post("/forms/leave-missing/", data=answers).status_code == 200
        refused = client.post("/forms/leave-missing/", data=answers)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"
    assert "Wait 10 seconds, then press Continue again." in refused.text
    assert "facilitators@example.org" in refused.text
    # Nothing typed is lost to a limit: the form comes back with every answer.
    assert VALID["dates"] in refused.text


def test_a_concern_has_a_budget_of_its_own_that_ordinary_forms_cannot_use_up(
    site_dir: Path, tmp_path: Path
) -> None:
    """A shared network (/24) can be other people: 25 posts from it made the next concern
    get 429, and Back lost what was typed. Risk forms count against a larger budget of their
    own, so ordinary posts from the same network never stop them."""
    app = make_app(site_dir, tmp_path / "data", FORMS_CLIENT_POST_BURST="2")
    with TestClient(app, base_url=BASE_URL, client=("198.51.100.7", 4000)) as client:
        ordinary = valid_answers(FORMS["leave-missing"])
        statuses = [
            client.post("/forms/leave-missing/", data=ordinary).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 429, 429]
        for kind in ("concern", "leave-left-early"):
            answers = valid_answers(FORMS[kind])
            assert client.post(f"/forms/{kind}/", data=answers).status_code == 200


def test_past_its_own_budget_a_concern_comes_back_with_every_answer_and_no_wrong_contact(
    site_dir: Path, tmp_path: Path
) -> None:
    app = one_post_then_six_a_minute(site_dir, tmp_path)
    about_a_facilitator = {
        **valid_answers(FORMS["concern"]),
        "about": "facilitator",
        "what_happened": "A facilitator said something that worried me (kingfisher).",
    }
    with TestClient(app, base_url=BASE_URL, client=("198.51.100.7", 4000)) as client:
        statuses = [
            client.post("/forms/concern/", data=about_a_facilitator).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]  # three times an ordinary form's budget
        refused = client.post("/forms/concern/", data=about_a_facilitator)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "4"  # 18 a minute: one every 3.3 seconds
    assert "kingfisher" in refused.text  # everything typed is still there, to send again
    assert "If you or someone else is in danger now, call 999." in refused.text
    # Never sent to the facilitators with a concern about one of them.
    assert "facilitators@example.org" not in refused.text


@pytest.mark.parametrize("kind", [*FORMS, "leave"])
def test_a_form_address_without_its_slash_leads_to_the_form(client: TestClient, kind: str) -> None:
    response = client.get(f"/forms/{kind}")
    assert response.status_code == 301
    assert response.headers["location"] == f"/forms/{kind}/"


def test_a_form_that_does_not_exist_is_not_found_with_or_without_slash(client: TestClient) -> None:
    assert client.get("/forms/nothing").status_code == 404
    assert client.get("/forms/nothing/").status_code == 404


def test_exits_cost_no_memory_however_many(app: Starlette, client: TestClient) -> None:
    """25,000 exits grew the quick exit's memory by 5 MiB without a cap. An exit now keeps
    nothing: it deletes this browser's files, and only drafts (capped) take any room."""
    files = forms_context(app).drafts.files
    assert files is not None
    post(client, "/forms/concern/", valid_answers(FORMS["concern"]))
    for number in range(2_000):
        client.cookies.clear()
        client.cookies["key"] = base64.urlsafe_b64encode(number.to_bytes(32)).decode().rstrip("=")
        assert client.get("/forms/exit").status_code == 303
    assert files.count() == 1  # the one real draft, from another browser
    assert len(files.by_network) == 1
    assert len(files.network_of) == 1


def test_asking_for_an_open_draft_page_again_keeps_it_from_idling_out(
    app: Starlette, client: TestClient
) -> None:
    """What the check page's script does while it is open: each HEAD is a use of the draft."""
    check_url = send_url_in(
        post(client, "/forms/leave-missing/", valid_answers(FORMS["leave-missing"]))
    )
    files = forms_context(app).drafts.files
    assert files is not None
    idle = forms_context(app).settings.decisions.draft_idle_minutes * 60
    started = time.time()
    for step in range(1, 4):  # three times most of the idle time: an hour, for 20 minutes
        files.clock = functools.partial(float, started + step * (idle - 60))
        assert client.head(check_url).status_code == 200
    assert client.get(check_url).status_code == 200
    files.clock = lambda: started + 3 * (idle - 60) + idle + 1
    assert client.get(check_url).status_code == 410


@pytest.mark.parametrize("kind", sorted(FORMS))
def test_an_optional_question_says_so_once(client: TestClient, kind: str) -> None:
    """ "If you will use a different name in meetings, what is it? (optional) (optional)"."""
    page = soup_of(client.get(f"/forms/{kind}/").text)
    for label in page.select("label, legend"):
        text = " ".join(label.get_text(" ").split())
        assert text.count("(optional)") <= 1, text


def test_after_i_am_not_safe_the_receipt_puts_help_first(client: TestClient) -> None:
    """After "No, I am not safe", the crisis contacts came last, under "received"."""
    check_page = post(client, "/forms/leave-left-early/", unsafe_notice())
    receipt = client.get(send(client, check_page).headers["location"]).text
    main = receipt.split('id="main-content"', 1)[1]
    # Under the heading that says it was received, as on the check page, before anything else.
    assert main.count('class="crisis-contacts"') == 1
    assert main.index("<h1") < main.index('class="crisis-contacts"') < main.index("Keep this")
    assert "Get help now: do not wait for a reply" in main
