"""Issue 23: the group can ask an anonymous member a question, and the member can answer, with
no account and no email. End to end through the app, its worker and the embedded SMTP catcher."""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.config.env import Settings
from forms_server.forms.definitions import FORMS
from forms_server.lifecycle import Event
from forms_server.mail.catcher import CaughtMessage, caught_messages
from forms_server.rights import CONVERSATION
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.outbox_items import MEMBER_COPY
from forms_server.web.app import create_app
from forms_server.web.attempts import LONGEST_WAIT, TELL_AFTER
from tests import test_acknowledgements, test_link_only
from tests.data_files import held_files
from tests.test_delivery_faults import remount, small_disk
from tests.test_guideline_coverage import visible_text
from tests.test_views import (
    BASE_URL,
    post,
    reference_from,
    soup_of,
    valid_answers,
    wait_until_delivered,
)
from tests.test_views import send as press_send

RECEIPT = re.compile(r"\b\d{4} \d{4} \d{4} \d{4}\b")
ACKNOWLEDGE = re.compile(r"https?://[^/\s]+(/forms/acknowledge/[A-Za-z0-9_.~\-]+)")
ASK = re.compile(r"https?://[^/\s]+(/forms/ask/[A-Za-z0-9_.~\-]+)")
QUESTION = "Which meeting was it, and is the person safe now?"
ANSWER = "Tuesday's. Planted answer: the heron waits by the lock"
MEMBER_ADDRESS = "kestrel@example.net"

# Link-only concerns, to a safeguarding lead and deputy (the group's decisions all made).
decided_settings = test_link_only.decided_settings
link_only_app = test_link_only.app
small_disk = small_disk
# Full mode, to two facilitators (nothing decided).
full_app = test_acknowledgements.app


@pytest.fixture
def client(link_only_app: Starlette) -> Iterator[TestClient]:
    with TestClient(link_only_app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def full_client(full_app: Starlette) -> Iterator[TestClient]:
    with TestClient(full_app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def send_anonymous_concern(client: TestClient) -> tuple[str, str]:
    """The reference and the receipt, as the member's receipt page shows them."""
    answers = {**valid_answers(FORMS["concern"]), "name": ""}
    sent = press_send(client, post(client, "/forms/concern/", answers))
    page = client.get(sent.headers["location"]).text
    receipts = RECEIPT.findall(visible_text(page))
    assert len(receipts) == 1, "the receipt is shown once, beside the reference"
    return reference_from(client, sent.headers["location"]), receipts[0]


def messages_to(app: Starlette, reference: str, count: int, about: str = "") -> list[CaughtMessage]:
    deadline = time.monotonic() + 10
    while True:
        found = [
            m
            for m in caught_messages(app.state.catcher.maildir)
            if reference in m.subject and about in m.subject
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, [m.subject for m in found]
        time.sleep(0.05)


def raw_messages(app: Starlette) -> list[bytes]:
    return [
        path.read_bytes() for path in Path(app.state.catcher.maildir).rglob("*") if path.is_file()
    ]


def ask(client: TestClient, from_link: str, question: str) -> str:
    """A recipient, from the link in their email: the button, then the question."""
    page = client.get(from_link).text
    match = re.search(r'action="[^"]*(/forms/ask/[^"]+)"', page)
    assert match is not None, "the acknowledgement page offers to ask the member"
    ask_link = match.group(1)
    token = ask_link.rsplit("/", 1)[1]
    shown = client.post(ask_link, data={"token": token})
    assert shown.status_code == 200
    asked = client.post(ask_link, data={"token": token, "question": question})
    assert asked.status_code == 200, asked.text
    assert "Your question is saved" in asked.text
    return ask_link


def acknowledge_link(app: Starlette, reference: str) -> str:
    """The path of the first recipient's link, from their email about the form."""
    link = ACKNOWLEDGE.search(messages_to(app, reference, 2)[0].text)
    assert link is not None
    return link.group(1)


def open_conversation(client: TestClient, reference: str, receipt: str) -> tuple[TestClient, str]:
    """Another browser (the app's one client, its cookies cleared: a second client would run
    on an event loop of its own, which the worker does not hear), reference and receipt, then
    the conversation's own page."""
    client.cookies.clear()
    opened = client.post("/forms/status/", data={"reference": reference, "receipt": receipt})
    assert opened.status_code == 303, opened.text
    return client, opened.headers["location"]


def test_an_anonymous_member_reads_a_question_and_answers_every_recipient_by_their_route(
    link_only_app: Starlette, client: TestClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reference, receipt = send_anonymous_concern(client)
    emails = messages_to(link_only_app, reference, 2)
    # The escalation timer starts when the worker records the form as delivered, after the last
    # email.
    wait_until_delivered(link_only_app, reference)
    links = {m.to: ACKNOWLEDGE.search(m.text) for m in emails}
    lead = links["lead@example.org"]
    assert lead is not None
    ask(client, lead.group(1), QUESTION)
    files = link_only_app.state.services.files
    # Asking is not picking it up: the escalation timer runs on.
    assert files.acknowledgements.get(reference) is None
    watched = files.watch.get(reference)
    assert watched is not None
    assert watched.escalated_at is None

    member, page = open_conversation(client, reference, receipt)
    shown = member.get(page)
    assert shown.status_code == 200
    assert QUESTION in visible_text(shown.text)
    assert receipt not in shown.text
    answered = member.post(page, data={"action": "answer", "answer": ANSWER})
    assert answered.status_code == 303
    assert "answer has been sent" in member.get(answered.headers["location"]).text

    # Both recipients get it, link-only: no answer in the raw bytes, each their own fresh link.
    answers = messages_to(link_only_app, reference, 2, "answered")
    assert {m.to for m in answers} == {"lead@example.org", "deputy@example.org"}
    raw = b"\n".join(raw_messages(link_only_app))
    assert b"heron" not in raw
    for message in answers:
        assert "deputy@example.org" not in message.text or message.to == "deputy@example.org"
        assert "lead@example.org" not in message.text or message.to == "lead@example.org"
        fresh = ASK.search(message.text)
        assert fresh is not None
        token = fresh.group(1).rsplit("/", 1)[1]
        conversation = client.post(fresh.group(1), data={"token": token})
        assert ANSWER in visible_text(conversation.text)
        assert QUESTION in visible_text(conversation.text)

    # After Exit this browser shows nothing of it.
    member.get("/forms/exit")
    assert member.get(page).status_code == 410
    # The receipt is nowhere: not in a log, an email, an address, or the data folder.
    digits = receipt.replace(" ", "")
    assert all(
        receipt not in r.getMessage() and digits not in r.getMessage() for r in caplog.records
    )
    assert receipt.encode() not in raw
    assert digits.encode() not in raw
    for path, held in held_files(tmp_path / "data").items():
        assert digits.encode() not in held, path
        assert b"heron" not in held, path


def test_in_full_mode_the_answer_is_in_the_email(
    full_app: Starlette, full_client: TestClient
) -> None:
    reference, receipt = send_anonymous_concern(full_client)
    ask(full_client, acknowledge_link(full_app, reference), QUESTION)
    member, page = open_conversation(full_client, reference, receipt)
    member.post(page, data={"action": "answer", "answer": ANSWER})
    answers = messages_to(full_app, reference, 2, "answered")
    for message in answers:
        assert ANSWER in message.text
        assert ASK.search(message.text)


def test_a_wrong_receipt_and_an_unknown_reference_get_the_same_page(
    link_only_app: Starlette, client: TestClient
) -> None:
    reference, receipt = send_anonymous_concern(client)
    client.cookies.clear()
    other = client
    wrong = other.post(
        "/forms/status/", data={"reference": reference, "receipt": "1111 2222 3333 4444"}
    )
    unknown = other.post("/forms/status/", data={"reference": "ZZZ-ZZZ-ZZ9", "receipt": receipt})
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.text.replace(reference, "REF") == unknown.text.replace("ZZZ-ZZZ-ZZ9", "REF")
    assert receipt not in unknown.text


def test_failed_tries_wait_longer_each_time_and_never_lock_for_good(
    link_only_app: Starlette, client: TestClient
) -> None:
    reference, receipt = send_anonymous_concern(client)
    client.cookies.clear()
    other = client
    statuses = []
    for _ in range(4):
        tried = other.post("/forms/status/", data={"reference": reference, "receipt": "1" * 16})
        statuses.append(tried.status_code)
    assert statuses == [400, 400, 429, 429]
    assert "wait 1 minute" in tried.text.lower()
    assert tried.headers["retry-after"]
    # The right receipt waits too, then works: a wait, never a lock.
    context = link_only_app.state.forms
    assert context.attempts.wait_seconds([f"reference:{reference}"]) is not None
    context.attempts.failures.clear()
    assert (
        other.post("/forms/status/", data={"reference": reference, "receipt": receipt}).status_code
        == 303
    )


def test_an_erasure_removes_the_conversation(link_only_app: Starlette, client: TestClient) -> None:
    reference, receipt = send_anonymous_concern(client)
    messages_to(link_only_app, reference, 2)
    files = link_only_app.state.services.files
    assert files.conversations.get(reference) is not None
    # Held back while nobody has picked the concern up (the lifecycle), then carried out.
    files.happen(reference, Event.ERASE_ASKED, reason=ErasureReason.ERASED)
    assert files.conversations.get(reference) is not None
    files.pick_up(reference, "concern", "lead@example.org")
    assert files.conversations.get(reference) is None
    refused = client.post("/forms/status/", data={"reference": reference, "receipt": receipt})
    assert refused.status_code == 400


def test_the_member_can_delete_the_conversation(
    link_only_app: Starlette, client: TestClient
) -> None:
    reference, receipt = send_anonymous_concern(client)
    messages_to(link_only_app, reference, 2)
    files = link_only_app.state.services.files
    files.pick_up(reference, "concern", "lead@example.org")
    member, page = open_conversation(client, reference, receipt)
    deleted = member.post(page, data={"action": "delete"})
    assert "Your conversation has been deleted" in deleted.text
    assert files.conversations.get(reference) is None


def test_no_field_of_the_members_pages_lets_the_browser_save_what_was_typed(
    link_only_app: Starlette, client: TestClient
) -> None:
    """As on the forms (test_views): a field's own autocomplete ("email") overrides its form's
    "off", and the browser would keep the member's address in its autofill, on the device the
    conversation must leave nothing on."""
    reference, receipt = send_anonymous_concern(client)
    member, page = open_conversation(client, reference, receipt)
    for address in ("/forms/status/", page):
        fields = soup_of(member.get(address).text).select(
            "form input[type=text], form input[type=email], form textarea"
        )
        assert fields, address
        for field in fields:
            form = field.find_parent("form")
            assert form is not None
            said = field.get("autocomplete") or form.get("autocomplete")
            assert said == "off", field


def test_a_delete_before_anyone_picked_the_concern_up_keeps_the_answer_for_the_group(
    link_only_app: Starlette, client: TestClient
) -> None:
    """Link-only: the member's answer is readable only in the conversation. Deleting it while
    nobody has picked the concern up would delete the only readable copy of what they said."""
    reference, receipt = send_anonymous_concern(client)
    ask(client, acknowledge_link(link_only_app, reference), QUESTION)
    member, page = open_conversation(client, reference, receipt)
    member.post(page, data={"action": "answer", "answer": ANSWER})
    (answered, *_) = messages_to(link_only_app, reference, 2, "answered")
    fresh = ASK.search(answered.text)
    assert fresh is not None

    member.post(page, data={"action": "tell", "email": MEMBER_ADDRESS})
    deleted = member.post(page, data={"action": "delete"})
    said = visible_text(deleted.text)
    assert "Your conversation has been deleted" in said
    assert "until one of them marks it as being dealt with" in said
    assert member.get(page).status_code == 410
    client.cookies.clear()
    again = client.post("/forms/status/", data={"reference": reference, "receipt": receipt})
    assert again.status_code == 400, "closed to the member at once"

    token = fresh.group(1).rsplit("/", 1)[1]
    shown = visible_text(client.post(fresh.group(1), data={"token": token}).text)
    assert ANSWER in shown, "the group still reads what the member said"
    assert "The member has deleted this conversation" in shown
    # Their own address was theirs alone: it goes at once, and no alert is left to send.
    files = link_only_app.state.services.files
    kept = files.conversations.get(reference)
    assert kept is not None
    assert files.conversations.contents(kept)[1] is None, "the member's address"
    assert not [o for o in kept.outgoing if o.recipient.address == MEMBER_COPY]

    files.pick_up(reference, "concern", "lead@example.org")
    assert files.conversations.get(reference) is None, "gone once someone has it"


def test_the_recipients_hear_when_a_reference_keeps_failing(
    link_only_app: Starlette, client: TestClient
) -> None:
    reference, _ = send_anonymous_concern(client)
    messages_to(link_only_app, reference, 2)
    attempts = link_only_app.state.forms.attempts
    now = [1000.0]
    attempts.clock = lambda: now[0]
    client.cookies.clear()
    for _ in range(TELL_AFTER):
        refused = client.post("/forms/status/", data={"reference": reference, "receipt": "9" * 16})
        assert refused.status_code in {400, 429}
        assert "do not match" in refused.text
        now[0] += LONGEST_WAIT  # each wait over before the next try
    told = messages_to(link_only_app, reference, 2, "Wrong receipts")
    assert {m.to for m in told} == {"lead@example.org", "deputy@example.org"}
    assert "9999" not in told[0].text


def test_find_and_export_show_the_messages(link_only_app: Starlette, client: TestClient) -> None:
    """(A backup holds the conversations folder as it holds every folder but the drafts, and a
    restore carries out every erasure since, which deletes the conversation with the form.)"""
    reference, _ = send_anonymous_concern(client)
    ask(client, acknowledge_link(link_only_app, reference), QUESTION)
    services = link_only_app.state.services
    (found,) = [
        held for held in services.rights.find(reference=reference) if held.where == CONVERSATION
    ]
    assert any(QUESTION in str(value) for value in found.answers.values())
    assert found.reference == reference


def caught_to(app: Starlette, address: str, count: int) -> list[CaughtMessage]:
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in caught_messages(app.state.catcher.maildir) if m.to == address]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, len(found)
        time.sleep(0.05)


def test_a_member_who_chose_to_be_told_gets_only_there_is_a_message_for_you(
    link_only_app: Starlette, client: TestClient, tmp_path: Path
) -> None:
    reference, receipt = send_anonymous_concern(client)
    link = acknowledge_link(link_only_app, reference)
    member, page = open_conversation(client, reference, receipt)
    offered = visible_text(member.get(page).text)
    assert "Get an email when there is a new message" in offered

    wrong = member.post(page, data={"action": "tell", "email": "kestrel@"})
    assert wrong.status_code == 400
    assert "Enter an email address in the correct format" in wrong.text
    chosen = member.post(page, data={"action": "tell", "email": MEMBER_ADDRESS})
    assert chosen.status_code == 303
    shown = member.get(chosen.headers["location"]).text
    assert "We will email you when there is a new message" in visible_text(shown)
    assert MEMBER_ADDRESS not in shown, "the address is not echoed back to the device"

    ask(client, link, QUESTION)
    (told,) = caught_to(link_only_app, MEMBER_ADDRESS, 1)
    assert told.subject == "There is a message for you"
    group_name = link_only_app.state.services.composer.group_name
    raw = b"\n".join(raw_messages(link_only_app))
    (alert,) = [
        message_from_bytes(one, policy=default)
        for one in raw_messages(link_only_app)
        if MEMBER_ADDRESS.encode() in one
    ]
    for said in (told.text, told.subject, str(alert["From"])):
        assert group_name not in said
        assert reference not in said
        assert QUESTION not in said
        assert "concern" not in said.lower()
        assert "http" not in said
    # Sealed at rest, like the messages: the address is in no file in the clear (the
    # development catcher's maildir stands for the member's own mailbox).
    mailbox = Path(link_only_app.state.catcher.maildir)
    for path, held in held_files(tmp_path / "data").items():
        if mailbox not in path.parents:
            assert MEMBER_ADDRESS.encode() not in held, path
    assert raw.count(MEMBER_ADDRESS.encode()) >= 1
    # What is held is what the member can see: their export shows the address.
    (held,) = [
        one
        for one in link_only_app.state.services.rights.find(reference=reference)
        if one.where == CONVERSATION
    ]
    assert MEMBER_ADDRESS in held.answers.values()

    # The member stops it: the next question tells nobody.
    client.cookies.clear()
    member, page = open_conversation(client, reference, receipt)
    stopped = member.post(page, data={"action": "stop_telling"})
    assert stopped.status_code == 303
    assert "Get an email when there is a new message" in visible_text(
        member.get(stopped.headers["location"]).text
    )
    ask(client, link, "One more thing: which room?")
    conversation = link_only_app.state.services.files.conversations.get(reference)
    assert conversation is not None
    assert not conversation.sending
    assert len(caught_to(link_only_app, MEMBER_ADDRESS, 1)) == 1


def test_when_the_data_folder_cannot_be_written_the_member_is_told_and_keeps_what_they_typed(
    decided_settings: Settings, small_disk: Path
) -> None:
    """Never a 500: each action says it could not be done, changes nothing, and the answer
    typed is still in its box."""
    app = create_app(
        replace(decided_settings, data_dir=small_disk / "data", client_post_burst=1000)
    )
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        reference, receipt = send_anonymous_concern(client)
        ask_link = ask(client, acknowledge_link(app, reference), "A first question")
        token = ask_link.rsplit("/", 1)[1]
        member, page = open_conversation(client, reference, receipt)
        remount(small_disk, "ro")
        try:
            answered = member.post(page, data={"action": "answer", "answer": ANSWER})
            told = member.post(page, data={"action": "tell", "email": MEMBER_ADDRESS})
            deleted = member.post(page, data={"action": "delete"})
            asked = client.post(ask_link, data={"token": token, "question": QUESTION})
            # The recipients cannot be told of repeated wrong receipts: each try is still
            # answered, and never with a 500.
            now = [1000.0]
            app.state.forms.attempts.clock = lambda: now[0]
            client.cookies.clear()
            for _ in range(TELL_AFTER):
                wrong = client.post(
                    "/forms/status/", data={"reference": reference, "receipt": "9" * 16}
                )
                assert wrong.status_code in {400, 429}, wrong.text
                now[0] += LONGEST_WAIT
        finally:
            remount(small_disk, "rw")
    assert QUESTION in html.unescape(asked.text)
    for response in (answered, told, deleted, asked):
        assert response.status_code == 503, response.text
        assert "Try again in a few minutes" in visible_text(response.text)
    assert ANSWER in html.unescape(answered.text)
    assert MEMBER_ADDRESS in html.unescape(told.text)
    conversation = app.state.services.files.conversations.get(reference)
    assert conversation is not None
    kept = app.state.services.files.conversations.messages(conversation)
    assert [message.text for message in kept] == ["A first question"]
