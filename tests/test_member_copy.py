"""A member's own copy: discreet, limited per address, and a private link that shows what is
kept, withdraws consent or deletes a leave notice, and then shows the receipt.

Against the embedded catcher (a real SMTP server writing a real maildir) and, for refusals, the
test relay; the raw bytes of each message are searched for what must not be there.
"""

from __future__ import annotations

import json
import mailbox
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.delivery.member_copy import (
    MEMBER_COPY_SENDER,
    MEMBER_COPY_SUBJECT,
    CopyLimit,
)
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.services import Services as Delivery
from forms_server.signing import Purpose, Signer
from forms_server.storage.outbox_items import MEMBER_COPY, ItemStatus, RecipientStatus
from tests import test_acknowledgements
from tests.decoding import decoded
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer, smtp_server
from tests.test_delivery import mail_settings, make_delivery, submission
from tests.test_views import (
    caught_email,
    post,
    reference_from,
    store_of,
    valid_answers,
)
from tests.test_views import (
    send as press_send,
)

# The server with two facilitators, as the acknowledgement tests run it.
app = test_acknowledgements.app
client = test_acknowledgements.client

GROUP = "Harbour Peer Support"
MEMBER = "robin.member@example.net"
LINK = re.compile(r"http://127\.0\.0\.1:8000(/forms/yours/[A-Za-z0-9_.~\-]+)")


def send(client: TestClient, kind: str, **answers: str) -> tuple[str, str]:
    """The reference, and the receipt page's text."""
    check_page = post(client, f"/forms/{kind}/", {**valid_answers(FORMS[kind]), **answers})
    sent = press_send(client, check_page)
    assert sent.status_code == 303, sent.text
    receipt = client.get(sent.headers["location"])
    return reference_from(client, sent.headers["location"]), receipt.text


def raw_messages_to(app: Starlette, address: str, count: int = 1) -> list[bytes]:
    """The raw bytes of every message to `address`, once `count` have arrived."""
    deadline = time.monotonic() + 10
    while True:
        box = mailbox.Maildir(app.state.catcher.maildir, factory=None, create=False)
        found = [
            raw
            for key in box.iterkeys()
            if address.casefold()
            in str(message_from_bytes(raw := box.get_bytes(key))["To"]).casefold()
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} to {address}"
        time.sleep(0.05)


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def link_in(raw: bytes) -> str:
    body = parsed(raw).get_body(preferencelist=("plain",))
    assert body is not None
    match = LINK.search(body.get_content())
    assert match is not None
    return match.group(1)


def press(client: TestClient, link: str, action: str) -> str:
    page = client.post(link, data={"token": link.rsplit("/", 1)[1], "action": action})
    assert page.status_code == 200, page.text
    return page.text


def test_the_discreet_copy_names_no_group_and_holds_no_answer(
    app: Starlette, client: TestClient
) -> None:
    reference, receipt = send(
        client, "leave-missing", copy="link", copy_email_link=MEMBER, message="Hospital stay"
    )
    assert "We are emailing you a copy" in receipt
    facilitators_email = caught_email(app, reference)
    (raw,) = raw_messages_to(app, MEMBER)
    message = parsed(raw)
    assert str(message["Subject"]) == MEMBER_COPY_SUBJECT
    assert message["From"].addresses[0].display_name == MEMBER_COPY_SENDER
    assert message["Reply-To"] is None
    text = raw.decode("utf-8", "replace")
    for revealing in (GROUP, "Harbour", "peer support", "Sam Example", "the 9th", "Hospital"):
        assert revealing.lower() not in text.lower(), revealing
    assert reference in text
    assert "/forms/yours/" in text
    # The facilitators' email neither shows the member's copy address nor replies to it.
    assert MEMBER not in facilitators_email.text
    assert facilitators_email.reply_to == ""


def test_a_full_copy_holds_the_answers_but_still_not_the_group(
    app: Starlette, client: TestClient
) -> None:
    send(client, "leave-missing", copy="full", copy_email_full=MEMBER, message="Hospital stay")
    (raw,) = raw_messages_to(app, MEMBER)
    body = parsed(raw).get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hospital stay" in text
    assert "the 9th and the 16th" in text
    assert GROUP not in raw.decode("utf-8", "replace")


def test_a_consent_copy_goes_to_the_address_the_member_gave_and_reply_to_is_theirs(
    app: Starlette, client: TestClient
) -> None:
    reference, _ = send(client, "consent", email=MEMBER, copy="link")
    (raw,) = raw_messages_to(app, MEMBER)
    assert str(parsed(raw)["Subject"]) == MEMBER_COPY_SUBJECT
    # Consent asks for an address in order to reply: the facilitators' Reply-To is it.
    assert caught_email(app, reference).reply_to == MEMBER


def test_a_concern_that_asks_for_no_contact_has_no_reply_to(
    app: Starlette, client: TestClient
) -> None:
    reference, _ = send(client, "concern", contact_preference="no", email=MEMBER)
    assert caught_email(app, reference).reply_to == ""


def test_one_address_gets_at_most_three_copies_a_day_and_every_form_still_arrives(
    app: Starlette, client: TestClient
) -> None:
    receipts = [
        send(client, "leave-missing", copy="link", copy_email_link=address)
        for address in (MEMBER, MEMBER.upper(), MEMBER, MEMBER)
    ]
    assert all("We are emailing you a copy" in text for _, text in receipts[:3])
    assert "We did not email you a copy" in receipts[3][1]
    assert "already had 3 copies today" in receipts[3][1]
    for reference, _ in receipts:
        caught_email(app, reference)  # every form reached the facilitators
    time.sleep(0.5)
    assert len(raw_messages_to(app, MEMBER, 3)) == 3
    # What counts the copies holds no address.
    counted = (store_of(app).ledger.audit_path.parent / "member-copies.json").read_text()
    assert "robin" not in counted.lower()


def test_the_link_shows_then_withdraws_consent_then_shows_the_receipt(
    app: Starlette, client: TestClient
) -> None:
    reference, _ = send(client, "consent", email=MEMBER, copy="link", name="Robin Quill")
    caught_email(app, reference)
    link = link_in(raw_messages_to(app, MEMBER)[0])
    store = store_of(app)
    # Opening it (as a mail scanner does) shows no answer and changes nothing.
    opened = client.get(link)
    assert opened.status_code == 200
    assert opened.headers["cache-control"] == "no-store"
    assert "Robin Quill" not in opened.text
    assert reference in opened.text
    assert store.get(reference) is not None
    # The member asks to see what is kept.
    assert "Robin Quill" in press(client, link, "show")
    # Asked "are you sure?", nothing is deleted yet.
    assert "Are you sure you want to withdraw your consent?" in press(client, link, "ask")
    assert store.get(reference) is not None
    # Withdrawn: the receipt, the record gone from the file itself, the facilitators told.
    receipt = press(client, link, "delete")
    assert "Your consent has been withdrawn" in receipt
    assert store.get(reference) is None
    raw_store = store.path.read_text(encoding="utf-8")
    assert reference not in raw_store
    for facilitator in ("f1@example.org", "f2@example.org"):
        notices = [
            raw
            for raw in raw_messages_to(app, facilitator, 2)
            if "withdrawn" in str(parsed(raw)["Subject"])
        ]
        assert len(notices) == 1
        assert reference in str(parsed(notices[0])["Subject"])
        assert b"Robin" not in notices[0]
    # The link now shows only the receipt, whatever is pressed.
    again = client.get(link)
    assert "Your consent has been withdrawn" in again.text
    assert "Robin Quill" not in press(client, link, "show")
    # The audit line says what happened, not to whom.
    audit = store.ledger.audit_path.read_text(encoding="utf-8")
    assert "consent withdrawn" in audit
    assert "Robin" not in audit
    assert MEMBER not in audit


def test_the_link_deletes_a_leave_notice(app: Starlette, client: TestClient) -> None:
    reference, _ = send(client, "leave-leaving", copy="link", copy_email_link=MEMBER)
    caught_email(app, reference)
    link = link_in(raw_messages_to(app, MEMBER)[0])
    assert "Are you sure you want to delete your leave notice?" in press(client, link, "ask")
    assert "Your leave notice has been deleted" in press(client, link, "delete")
    assert store_of(app).get(reference) is None


def test_a_notice_that_says_someone_is_not_safe_is_not_deleted_before_it_is_picked_up(
    app: Starlette, client: TestClient
) -> None:
    reference, _ = send(
        client,
        "leave-left-early",
        safe_now="no",
        reach_unsafe="07700 900982",
        copy="link",
        copy_email_link=MEMBER,
    )
    caught_email(app, reference)
    link = link_in(raw_messages_to(app, MEMBER)[0])
    page = press(client, link, "delete")
    assert "We cannot delete it yet" in page
    assert store_of(app).get(reference) is not None


def test_a_link_for_one_form_never_opens_another(app: Starlette, client: TestClient) -> None:
    send(client, "consent", email=MEMBER, copy="link")
    link = link_in(raw_messages_to(app, MEMBER)[0])
    altered = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    assert client.get(altered).status_code == 400
    # A token of another purpose (an acknowledgement link's) is refused too.
    settings = app.state.forms.settings
    other = Signer([str(key) for key in settings.secret_keys], 3600)
    token = other.sign("member-copy", Purpose.ACKNOWLEDGE, {"reference": "4KX-7QD-M2P"})
    page = client.get(f"/forms/yours/{token}")
    assert page.status_code == 400
    assert "This link no longer works" in page.text


# -- Delivery: a copy that fails never holds the form back ------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as running:
        yield running


def delivery_with_copies(data_dir: Path, server: SmtpServer) -> Delivery:
    return make_delivery(data_dir, mail_settings(server), member_copies_per_day=3)


@in_own_loop
async def test_a_refused_copy_address_fails_only_the_copy(
    server: SmtpServer, tmp_path: Path
) -> None:
    server.handler.refused_recipients[MEMBER] = "550 No such user"
    delivery = delivery_with_copies(tmp_path, server)
    item: Submission = submission("leave-missing", copy="link", copy_email_link=MEMBER)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    assert delivery.outbox.is_delivered(item.reference)
    assert delivery.store.get(item.reference) is not None
    assert delivery.worker.health(delivery.files.clock()).ok
    assert {tuple(r.rcpt_tos) for r in server.handler.received} == {
        ("f1@example.org",),
        ("f2@example.org",),
    }


@in_own_loop
async def test_a_copy_alone_does_not_count_as_delivered(server: SmtpServer, tmp_path: Path) -> None:
    for facilitator in ("f1@example.org", "f2@example.org"):
        server.handler.refused_recipients[facilitator] = "550 No such user"
    delivery = delivery_with_copies(tmp_path, server)
    item = submission("leave-missing", copy="link", copy_email_link=MEMBER)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    pending = delivery.outbox.read(item.reference)
    assert pending is not None
    assert pending.status is ItemStatus.FAILED
    copy = next(r for r in pending.recipients if r.address == MEMBER_COPY)
    assert copy.status is RecipientStatus.ACCEPTED
    assert delivery.store.get(item.reference) is None  # no facilitator has it: no record
    # The copy's address is never written in the clear.
    assert MEMBER not in (tmp_path / "outbox" / "pending" / f"{item.reference}.json").read_text()


@in_own_loop
async def test_a_replayed_form_does_not_use_up_a_copy(server: SmtpServer, tmp_path: Path) -> None:
    delivery = delivery_with_copies(tmp_path, server)
    item = submission("leave-missing", copy="link", copy_email_link=MEMBER)
    for _ in range(3):
        await delivery.worker.receive(item)
    counts = json.loads((tmp_path / "member-copies.json").read_text())
    assert [len(times) for times in counts.values()] == [1]


def test_the_copy_limit_forgets_after_a_day(tmp_path: Path) -> None:
    from forms_server.storage.ledger import Ledger

    limit = CopyLimit(tmp_path, Ledger(tmp_path), per_day=2)
    start = submission("leave-missing").received_at
    assert limit.take(MEMBER, start)
    assert limit.take(MEMBER, start + timedelta(hours=1))
    assert not limit.take(MEMBER, start + timedelta(hours=2))
    assert limit.take("someone.else@example.net", start + timedelta(hours=2))
    assert limit.take(MEMBER, start + timedelta(days=1, minutes=1))


@in_own_loop
async def test_a_copy_count_that_cannot_be_written_never_stops_the_form(
    server: SmtpServer, tmp_path: Path
) -> None:
    delivery = delivery_with_copies(tmp_path, server)
    (tmp_path / "member-copies.json").mkdir()  # the count's file cannot be replaced
    item = submission("leave-missing", copy="link", copy_email_link=MEMBER)
    route = await delivery.worker.receive(item)
    assert route == "facilitators"  # received, without its copy
    await delivery.worker.run_pass()
    assert delivery.outbox.is_delivered(item.reference)


def test_the_members_link_says_nothing_of_the_form(app: Starlette, client: TestClient) -> None:
    reference, _ = send(client, "leave-missing", copy="link", copy_email_link=MEMBER)
    link = link_in(raw_messages_to(app, MEMBER)[0])
    seen = decoded(link.encode())
    # The whole reference, written either way: its three-letter groups turn up in random
    # base64 by chance (one CI run in a few hundred found "Y0F" in a sealed link).
    for secret in (reference, reference.replace("-", ""), "leave", "missing", "kind"):
        assert secret.encode() not in seen, secret
    assert client.get(link).status_code == 200
