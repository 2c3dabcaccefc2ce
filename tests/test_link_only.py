"""Link-only and encrypted delivery: no answer reaches a mailbox in readable form. Against a
real SMTP server (the test relay, or the embedded catcher), with planted values searched for
in the raw bytes; S/MIME opened with `openssl smime -decrypt`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from forms_server.config.decisions import DeliveryMode
from forms_server.config.env import Settings
from forms_server.delivery.read_windows import end_read_windows
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.links import Links
from forms_server.mail.crypto import load_recipient_key
from forms_server.services import Services as Delivery
from forms_server.storage.form_files import FormFiles
from forms_server.storage.outbox_items import ItemStatus, RecipientStatus
from forms_server.storage.reading import ReadingRoom
from forms_server.storage.watch import Watch
from forms_server.web.app import create_app
from tests import test_decisions, test_renewals
from tests.decided import DECIDED, write_group_config
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer
from tests.test_cli import environment, forms_server
from tests.test_delivery import CONCERNS, FACILITATORS, mail_settings, make_delivery
from tests.test_guideline_coverage import visible_text
from tests.test_message_crypto import openssl_decrypt, smime_certificate
from tests.test_renewals import Clock
from tests.test_views import (
    BASE_URL,
    post,
    reference_from,
    send,
    store_of,
    valid_answers,
    wait_until_delivered,
)

decided_settings = test_decisions.decided_settings
server = test_renewals.server

PLANTED_ANSWER = "Planted: the kingfisher sings at the weir"
PLANTED_NAME = "Wrenna Planted-Name"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
READ_LINK = re.compile(rb"https://forms\.example(/forms/read/[A-Za-z0-9_.~\-]+)")


def concern(urgent: bool = False) -> Submission:
    answers: Answers = {
        **valid_answers(FORMS["concern"]),
        "what_happened": PLANTED_ANSWER,
        "name": PLANTED_NAME,
        "immediate_risk": "yes" if urgent else "no",
    }
    return Submission(new_reference(), "concern", answers, NOW, urgent, None)


def delivery_with_modes(
    data_dir: Path, server: SmtpServer, clock: Clock, **modes: DeliveryMode
) -> Delivery:
    mail = mail_settings(
        server,
        modes={
            "facilitators": DeliveryMode.FULL,
            "concerns": DeliveryMode.FULL,
            "escalation": DeliveryMode.FULL,
        }
        | modes,
        escalation=("escalation@example.org",),
    )
    return make_delivery(
        data_dir,
        mail,
        clock=clock,
        public_url="https://forms.example",
        decisions={"read_window_days": 4},
    )


def raw_to(server: SmtpServer, address: str) -> list[bytes]:
    return [r.raw for r in server.handler.received if r.rcpt_tos == [address]]


@in_own_loop
async def test_a_link_only_route_sends_no_answer_and_no_name(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=DeliveryMode.LINK_ONLY)
    item = concern(urgent=True)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    for address in CONCERNS:
        (raw,) = raw_to(server, address)
        assert PLANTED_ANSWER.encode() not in raw
        assert b"Planted" not in raw
        assert b"Wrenna" not in raw
        assert b"URGENT" in raw
        assert item.reference.encode() in raw
        assert b"Open the link now" in raw
        assert READ_LINK.search(raw)
        parsed = message_from_bytes(raw, policy=default)
        assert parsed["Reply-To"] is None
    # The content waits, sealed, for its window.
    readable = delivery.files.reading.get(item.reference)
    assert readable is not None
    assert readable.until == NOW + timedelta(days=4)
    assert PLANTED_ANSWER not in (tmp_path / "readable" / f"{item.reference}.json").read_text()


@in_own_loop
async def test_a_full_route_beside_it_still_gets_the_answers(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=DeliveryMode.LINK_ONLY)
    leave = Submission(
        new_reference(),
        "leave-missing",
        {**valid_answers(FORMS["leave-missing"]), "message": PLANTED_ANSWER},
        NOW,
        False,
        None,
    )
    await delivery.worker.receive(leave)
    await delivery.worker.run_pass()
    for address in FACILITATORS:
        (raw,) = raw_to(server, address)
        assert b"kingfisher" in raw
    assert delivery.files.reading.get(leave.reference) is None


@in_own_loop
async def test_an_encrypted_route_encrypts_to_each_key_and_links_for_anyone_without(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=DeliveryMode.ENCRYPTED)
    cert, key = smime_certificate(tmp_path)
    delivery.composer.recipient_keys = {CONCERNS[0]: load_recipient_key(CONCERNS[0], cert)}
    item = concern()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    (encrypted,) = raw_to(server, CONCERNS[0])
    (linked,) = raw_to(server, CONCERNS[1])
    for raw in (encrypted, linked):
        assert b"kingfisher" not in raw
        assert b"Wrenna" not in raw
    assert b"application/pkcs7-mime" in encrypted
    assert READ_LINK.search(linked)
    opened = openssl_decrypt(tmp_path, encrypted, cert, key)
    assert PLANTED_ANSWER.encode() in opened
    assert PLANTED_NAME.encode() in opened


@in_own_loop
async def test_a_link_only_escalation_holds_no_answer(server: SmtpServer, tmp_path: Path) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, escalation=DeliveryMode.LINK_ONLY)
    delivery.files.watch = Watch(tmp_path)
    item = concern()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    assert b"kingfisher" in raw_to(server, CONCERNS[0])[0]  # the concerns route is full
    clock.now = NOW + timedelta(days=3)
    await delivery.worker.run_pass()
    (raw,) = raw_to(server, "escalation@example.org")
    assert b"NOBODY HAS PICKED THIS UP" in raw
    assert b"kingfisher" not in raw
    assert READ_LINK.search(raw)
    readable = delivery.files.reading.get(item.reference)
    assert readable is not None
    assert readable.until == clock.now + timedelta(days=4)  # the escalation's own window


@in_own_loop
async def test_the_content_goes_when_the_window_ends_and_the_reads_stay(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=DeliveryMode.LINK_ONLY)
    item = concern()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    room = delivery.files.reading
    assert room is not None
    room.read(item.reference, CONCERNS[0], NOW + timedelta(hours=1))
    # Someone has picked it up: nothing holds it back any more.
    delivery.files.pick_up(item.reference, "concern", CONCERNS[0])
    end_read_windows(delivery.files, NOW + timedelta(days=4, minutes=1))
    readable = room.get(item.reference)
    assert readable is not None
    assert readable.sealed == ""
    assert [read.by for read in readable.reads] == [CONCERNS[0]]


# -- The page, in the app, with the group's decisions set to link-only for concerns ----------


@pytest.fixture
def app(decided_settings: Settings, tmp_path: Path) -> Starlette:
    # Posts from one client are limited too (limits.py); here only the link's own limit counts.
    return create_app(replace(decided_settings, data_dir=tmp_path / "data", client_post_burst=1000))


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def send_concern(client: TestClient, **more: str) -> str:
    answers = {
        **valid_answers(FORMS["concern"]),
        "what_happened": PLANTED_ANSWER,
        "name": PLANTED_NAME,
        **more,
    }
    check_page = post(client, "/forms/concern/", answers)
    sent = send(client, check_page)
    return reference_from(client, sent.headers["location"])


def links_from_catcher(app: Starlette, reference: str, count: int) -> dict[str, str]:
    from forms_server.mail.catcher import caught_messages

    pattern = re.compile(r"https?://[^/\s]+(/forms/read/[A-Za-z0-9_.~\-]+)")
    deadline = time.monotonic() + 10
    while True:
        found = {
            message.to: match.group(1)
            for message in caught_messages(app.state.catcher.maildir)
            if reference in message.subject and (match := pattern.search(message.text))
        }
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def show(client: TestClient, link: str) -> Any:
    return client.post(link, data={"token": link.rsplit("/", 1)[1]})


def test_opening_shows_nothing_the_button_shows_it_and_records_each_reader(
    app: Starlette, client: TestClient
) -> None:
    reference = send_concern(client)
    links = links_from_catcher(app, reference, 2)
    assert set(links) == {"lead@example.org", "deputy@example.org"}
    room: ReadingRoom = app.state.services.files.reading
    opened = client.get(links["lead@example.org"])
    assert opened.status_code == 200
    assert opened.headers["cache-control"] == "no-store"
    assert "kingfisher" not in opened.text
    assert "Wrenna" not in opened.text
    assert "Show the submission" in opened.text
    readable = room.get(reference)
    assert readable is not None
    assert readable.reads == ()
    shown = show(client, links["lead@example.org"])
    assert PLANTED_ANSWER in shown.text
    assert PLANTED_NAME in shown.text
    assert "Mark as being dealt with" in shown.text
    # The second recipient can still read it, and both reads are recorded.
    assert PLANTED_ANSWER in show(client, links["deputy@example.org"]).text
    readable = room.get(reference)
    assert readable is not None
    assert [read.by for read in readable.reads] == ["lead@example.org", "deputy@example.org"]


def test_it_stops_working_after_the_window_and_after_erasure(
    app: Starlette, client: TestClient
) -> None:
    reference = send_concern(client)
    link = links_from_catcher(app, reference, 2)["lead@example.org"]
    room: ReadingRoom = app.state.services.files.reading
    files: FormFiles = app.state.services.files
    # Once someone has picked it up (before that, the lifecycle keeps it readable: see
    # test_lifecycle), the window ends: the file says so, and the page believes the file.
    files.pick_up(reference, "concern", "lead@example.org")
    readable = room.get(reference)
    assert readable is not None
    past = replace(readable, until=datetime.now(UTC) - timedelta(seconds=1))
    room.files.save(past)
    page = show(client, link)
    assert "kingfisher" not in page.text
    assert "has been deleted" in page.text
    # Another form, erased by a member's request.
    other = send_concern(client)
    other_link = links_from_catcher(app, other, 2)["lead@example.org"]
    # The worker records the form as delivered after the last email: until then the lifecycle
    # holds an erasure back (the form is still on its way).
    wait_until_delivered(app, other)
    files.pick_up(other, "concern", "lead@example.org")
    rights = app.state.services.rights
    report = rights.erase(rights.find(reference=other))
    assert report.erased
    page = show(client, other_link)
    assert "kingfisher" not in page.text
    assert "has been deleted" in page.text
    assert PLANTED_ANSWER not in (room.path(other)).read_text()


def test_a_link_for_one_form_never_opens_another(app: Starlette, client: TestClient) -> None:
    first = send_concern(client)
    second = send_concern(client)
    link = links_from_catcher(app, first, 2)["lead@example.org"]
    links_from_catcher(app, second, 2)
    # A link signed for the second reference, but for another kind of form, is refused.
    signer = app.state.forms.signer
    forged = Links(signer, "").read(second, "consent", "lead@example.org")
    assert client.get(forged).status_code == 400
    altered = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    assert client.get(altered).status_code == 400
    assert store_of(app) is not None


def test_check_shows_each_route_and_each_key_and_warns_a_month_before(tmp_path: Path) -> None:
    soon, _ = smime_certificate(tmp_path, days=20)
    config = write_group_config(
        tmp_path / "config",
        DECIDED
        | {
            "delivery_mode": {
                "facilitators": "full",
                "concerns": "encrypted",
                "escalation": "link-only",
            }
        },
    )
    env = environment(
        tmp_path,
        FORMS_HANDBOOK_CONFIG=str(config),
        FORMS_SAFEGUARDING="lead@example.org,deputy@example.org",
        FORMS_RECIPIENT_KEYS=f"lead@example.org={soon}",
    )
    result = forms_server(tmp_path, env, "check")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Delivery to facilitators: full" in out
    assert "Delivery to concerns: encrypted" in out
    assert "Delivery to escalation: link-only" in out
    assert "lead@example.org: S/MIME" in out
    assert "Expires within a month" in out
    assert "deputy@example.org: no key, so link-only." in out


@in_own_loop
async def test_an_expired_key_means_link_only_never_plain_text(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=DeliveryMode.ENCRYPTED)
    cert, _ = smime_certificate(tmp_path, days=1)
    key = load_recipient_key(CONCERNS[0], cert)
    assert key.expires_at is not None
    clock.now = key.expires_at + timedelta(hours=1)
    delivery.composer.recipient_keys = {CONCERNS[0]: key}
    item = replace(concern(), received_at=clock.now)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    (raw,) = raw_to(server, CONCERNS[0])
    assert b"kingfisher" not in raw
    assert READ_LINK.search(raw)


ROUTE_FORMS = {"facilitators": "leave-missing", "concerns": "concern"}


@pytest.mark.parametrize("mode", list(DeliveryMode))
@pytest.mark.parametrize("route", list(ROUTE_FORMS))
@in_own_loop
async def test_each_mode_on_each_route(
    server: SmtpServer, tmp_path: Path, route: str, mode: DeliveryMode
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, **{route: mode})
    cert, _ = smime_certificate(tmp_path)
    addresses = FACILITATORS if route == "facilitators" else CONCERNS
    delivery.composer.recipient_keys = {addresses[0]: load_recipient_key(addresses[0], cert)}
    kind = ROUTE_FORMS[route]
    answers: Answers = {
        **valid_answers(FORMS[kind]),
        "message" if kind == "leave-missing" else "what_happened": PLANTED_ANSWER,
    }
    await delivery.worker.receive(Submission(new_reference(), kind, answers, NOW, False, None))
    await delivery.worker.run_pass()
    for position, address in enumerate(addresses):
        (raw,) = raw_to(server, address)
        readable = b"kingfisher" in raw
        assert readable is (mode is DeliveryMode.FULL), address
        encrypted = b"application/pkcs7-mime" in raw
        assert encrypted is (mode is DeliveryMode.ENCRYPTED and position == 0), address
        linked = READ_LINK.search(raw) is not None
        expect_link = mode is DeliveryMode.LINK_ONLY or (
            mode is DeliveryMode.ENCRYPTED and position == 1
        )
        assert linked is expect_link, address


def test_a_leaked_link_shows_the_form_only_so_often(app: Starlette, client: TestClient) -> None:
    reference = send_concern(client)
    link = links_from_catcher(app, reference, 2)["lead@example.org"]
    for _ in range(20):
        assert show(client, link).status_code == 200
    refused = show(client, link)
    assert refused.status_code == 429
    assert "kingfisher" not in refused.text
    assert int(refused.headers["retry-after"]) > 0
    # The other recipient's link is not affected.
    other = links_from_catcher(app, reference, 2)["deputy@example.org"]
    assert PLANTED_ANSWER in show(client, other).text


@in_own_loop
async def test_an_escalation_is_never_less_private_than_the_forms_route(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    delivery = delivery_with_modes(
        tmp_path,
        server,
        clock,
        concerns=DeliveryMode.LINK_ONLY,
        escalation=DeliveryMode.FULL,
    )
    delivery.files.watch = Watch(tmp_path)
    item = concern()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    clock.now = NOW + timedelta(days=3)
    await delivery.worker.run_pass()
    (raw,) = raw_to(server, "escalation@example.org")
    assert b"NOBODY HAS PICKED THIS UP" in raw
    assert b"kingfisher" not in raw
    assert READ_LINK.search(raw)


def test_a_member_who_deletes_their_form_deletes_its_link_only_copy_too(
    app: Starlette, client: TestClient
) -> None:
    from tests.test_member_copy import link_in, press, raw_messages_to

    member = "member.reader@example.net"
    answers = {
        **valid_answers(FORMS["leave-missing"]),
        "message": PLANTED_ANSWER,
        "copy": "link",
        "copy_email_link": member,
    }
    check_page = post(client, "/forms/leave-missing/", answers)
    sent = send(client, check_page)
    reference = reference_from(client, sent.headers["location"])
    links_from_catcher(app, reference, 1)  # the facilitators' link-only email (no keys here)
    room: ReadingRoom = app.state.services.files.reading
    readable = room.get(reference)
    assert readable is not None
    assert readable.sealed
    link = link_in(raw_messages_to(app, member)[0])
    # The member's copy is the last email; the kept record is written after it.
    wait_until_delivered(app, reference)
    assert "Your leave notice has been deleted" in press(client, link, "delete")
    readable = room.get(reference)
    assert readable is not None
    assert readable.sealed == ""


@in_own_loop
async def test_a_link_only_copy_that_cannot_be_kept_holds_back_only_its_own_recipients(
    server: SmtpServer, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    # The facilitators (addressed first) are link-only; whoever receives concerns gets it in full.
    delivery = delivery_with_modes(tmp_path, server, clock, facilitators=DeliveryMode.LINK_ONLY)
    answers: Answers = {
        **valid_answers(FORMS["leave-left-early"]),
        "safe_now": "no",
        "reach_unsafe": "07700 900982",
        "message": PLANTED_ANSWER,
    }
    item = Submission(new_reference(), "leave-left-early", answers, NOW, True, None)
    (tmp_path / "readable" / f"{item.reference}.json").mkdir()  # cannot be written or read
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    for address in CONCERNS:  # full: sent now, though the recipients before them could not be
        assert b"kingfisher" in raw_to(server, address)[0]
    for address in FACILITATORS:  # link-only: waiting, not failed, nothing sent in the clear
        assert raw_to(server, address) == []
    pending = delivery.outbox.read(item.reference)
    assert pending is not None
    assert pending.status is ItemStatus.PENDING
    waiting = [r for r in pending.recipients if r.address in FACILITATORS]
    assert all(r.status is RecipientStatus.PENDING and r.last_error for r in waiting)


def test_one_readable_file_that_cannot_be_deleted_leaves_the_others_to_go(tmp_path: Path) -> None:
    files = make_delivery(tmp_path, mail_settings(None), decisions={"read_window_days": 1}).files
    room = files.reading
    stuck, fine = new_reference(), new_reference()
    for reference in (stuck, fine):
        room.keep(reference, "leave-missing", False, NOW, "sealed")
    # Running as root, no file permission makes a real write fail here: the fault is injected
    # at the one write, and everything else is real files.
    original = room.erase

    def erase(reference: str, at: datetime) -> bool:
        if reference == stuck:
            raise OSError("read-only file system")
        return original(reference, at)

    room.erase = erase  # type: ignore[method-assign]
    end_read_windows(files, NOW + timedelta(days=2))
    gone = room.get(fine)
    assert gone is not None
    assert gone.sealed == ""


REPLY_ADDRESS = "reply.here@example.net"


def concern_asking_for_a_reply() -> Submission:
    answers: Answers = {
        **valid_answers(FORMS["concern"]),
        "what_happened": PLANTED_ANSWER,
        "contact_preference": "email",
        "email": REPLY_ADDRESS,
    }
    return Submission(new_reference(), "concern", answers, NOW, False, None)


@pytest.mark.parametrize("mode", list(DeliveryMode))
@in_own_loop
async def test_a_reply_address_is_a_header_only_in_full_mode_and_always_said_in_the_body(
    server: SmtpServer, tmp_path: Path, mode: DeliveryMode
) -> None:
    """Many mail programs ignore headers inside an encrypted part, and a Reply-To outside it
    puts the member's address beside "Concern" in the clear: only a full message has one. The
    address is in the body (or on the reading page) with the words to reply to it."""
    clock = Clock(NOW)
    delivery = delivery_with_modes(tmp_path, server, clock, concerns=mode)
    cert, key = smime_certificate(tmp_path)
    delivery.composer.recipient_keys = {CONCERNS[0]: load_recipient_key(CONCERNS[0], cert)}
    item = concern_asking_for_a_reply()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    (raw,) = raw_to(server, CONCERNS[0])
    parsed = message_from_bytes(raw, policy=default)
    if mode is DeliveryMode.FULL:
        assert parsed["Reply-To"] == REPLY_ADDRESS
        body = raw
    else:
        assert parsed["Reply-To"] is None
        assert REPLY_ADDRESS.encode() not in raw
        if mode is DeliveryMode.ENCRYPTED:
            body = openssl_decrypt(tmp_path, raw, cert, key)
        else:
            readable = delivery.files.reading.get(item.reference)
            assert readable is not None  # its page shows the address: see the read page test
            return
    text = message_from_bytes(body, policy=default)
    plain = next(part for part in text.walk() if part.get_content_type() == "text/plain")
    assert f"Reply to this address: {REPLY_ADDRESS}" in plain.get_content()


def test_the_reading_page_gives_the_reply_address_once_with_the_words_to_reply_to_it(
    app: Starlette, client: TestClient
) -> None:
    reference = send_concern(client, contact_preference="email", email=REPLY_ADDRESS)
    link = links_from_catcher(app, reference, 2)["lead@example.org"]
    text = visible_text(show(client, link).text)
    assert f"Reply to this address: {REPLY_ADDRESS}" in text
    assert text.count("They asked for a reply by email") == 1
    assert text.count(REPLY_ADDRESS) == 2  # the line to reply to, and the answer itself
