"""A member's answer, on a route the group delivers encrypted: through the real worker and its
answers job to a real SMTP server, it arrives encrypted to each recipient's own key (opened with
`openssl smime -decrypt`, a client we did not write), with their own fresh link to the
conversation, and names nobody else; someone on the route without a key gets a link only."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from forms_server.config.decisions import DeliveryMode
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers, Submission
from forms_server.forms.reference import new_reference
from forms_server.forms.routing import recipients_for
from forms_server.mail.crypto import load_recipient_key
from forms_server.mail.messages import new_message_id
from forms_server.services import Services as Delivery
from forms_server.storage.outbox_items import RecipientState, RecipientStatus
from forms_server.storage.receipts import new_receipt
from tests import test_renewals
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer
from tests.test_delivery import CONCERNS
from tests.test_link_only import delivery_with_modes
from tests.test_message_crypto import openssl_decrypt, smime_certificate
from tests.test_renewals import Clock
from tests.test_views import valid_answers

server = test_renewals.server

QUESTION = "Which meeting was it, and is the person safe now?"
ANSWER = "Tuesday's. Planted answer: the otter sleeps under the footbridge"
PLANTED = b"otter"
ASK_LINK = re.compile(r"https://forms\.example/forms/ask/([A-Za-z0-9_.~\-]+)")


def concern(now: datetime) -> Submission:
    answers: Answers = {**valid_answers(FORMS["concern"]), "name": ""}
    return Submission(new_reference(), "concern", answers, now, False, None)


async def answered_concern(delivery: Delivery, now: datetime) -> Submission:
    """A concern delivered to its route; a recipient asks, the member answers (as the pages
    do it: the routes kept at Send, the answer on its way to every address on them)."""
    item = concern(now)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    routes = tuple(route.value for route in recipients_for(FORMS["concern"], item.answers))
    files = delivery.files
    files.conversations.open_for(item.reference, "concern", routes, new_receipt(), now)
    files.asked(item.reference, CONCERNS[0], QUESTION)
    composer = delivery.composer
    addresses = dict.fromkeys(a for route in routes for a in composer.route_addresses(route))
    assert tuple(addresses) == CONCERNS
    sender = delivery.settings.mail.sender
    to = tuple(RecipientState(address, new_message_id(sender)) for address in addresses)
    files.answered(item.reference, ANSWER, now, to)
    return item


def ask_link_in(text: str, delivery: Delivery, reference: str, address: str) -> str:
    """The one link to the conversation in `text`, and that it is `address`'s own."""
    found: list[str] = ASK_LINK.findall(text)
    (token,) = found
    opened = delivery.links.open_ask(token)
    assert opened is not None, "the link opens"
    assert (opened.reference, opened.form_kind, opened.to) == (reference, "concern", address)
    return token


def plain_text(entity: bytes) -> str:
    body = message_from_bytes(entity, policy=default).get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def sent_to(server: SmtpServer, address: str, since: int) -> list[bytes]:
    """What the relay gave the server for `address` alone, after the first `since` messages."""
    return [r.raw for r in server.handler.received[since:] if r.rcpt_tos == [address]]


def other(address: str) -> str:
    (found,) = (each for each in CONCERNS if each != address)
    return found


@in_own_loop
async def test_an_answer_on_an_encrypted_route_reaches_each_recipient_encrypted_to_their_key(
    server: SmtpServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)  # the certificates are valid from yesterday, for a year
    delivery = delivery_with_modes(tmp_path, server, Clock(now), concerns=DeliveryMode.ENCRYPTED)
    keys = {}
    for address in CONCERNS:
        folder = tmp_path / address
        folder.mkdir()
        keys[address] = smime_certificate(folder)
    delivery.composer.recipient_keys = {
        address: load_recipient_key(address, cert) for address, (cert, _) in keys.items()
    }
    item = await answered_concern(delivery, now)
    assert len(server.handler.received) == len(CONCERNS)  # the concern itself, so far
    await delivery.worker.run_pass()  # the answers job, among the others

    tokens = set()
    for address in CONCERNS:
        (raw,) = sent_to(server, address, since=len(CONCERNS))
        parsed = message_from_bytes(raw, policy=default)
        assert parsed.get_content_type() == "application/pkcs7-mime"
        assert "the member answered" in str(parsed["Subject"])
        assert item.reference in str(parsed["Subject"])
        assert parsed["To"] == address
        # Nothing of the answer, the question or anyone else in the clear.
        assert ANSWER.encode() not in raw
        assert PLANTED not in raw
        assert QUESTION.encode() not in raw
        assert other(address).encode() not in raw
        assert b"/forms/ask/" not in raw

        cert, key = keys[address]
        opened = openssl_decrypt(tmp_path, raw, cert, key)
        text = plain_text(opened)
        assert ANSWER in text
        assert QUESTION not in text
        assert other(address) not in opened.decode()
        tokens.add(ask_link_in(text, delivery, item.reference, address))
        # Encrypted to this recipient alone: the other's key does not open it.
        others_cert, others_key = keys[other(address)]
        with pytest.raises(subprocess.CalledProcessError):
            openssl_decrypt(tmp_path, raw, others_cert, others_key)
    assert len(tokens) == len(CONCERNS), "each recipient their own link"

    conversation = delivery.files.conversations.get(item.reference)
    assert conversation is not None
    statuses = {o.recipient.address: o.recipient.status for o in conversation.outgoing}
    assert statuses == dict.fromkeys(CONCERNS, RecipientStatus.ACCEPTED)
    # Accepted is never sent again.
    sent = len(server.handler.received)
    await delivery.worker.run_pass()
    assert len(server.handler.received) == sent


@in_own_loop
async def test_on_an_encrypted_route_a_recipient_without_a_key_gets_the_answer_as_a_link_only(
    server: SmtpServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    delivery = delivery_with_modes(tmp_path, server, Clock(now), concerns=DeliveryMode.ENCRYPTED)
    cert, key = smime_certificate(tmp_path)
    keyed, keyless = CONCERNS
    delivery.composer.recipient_keys = {keyed: load_recipient_key(keyed, cert)}
    item = await answered_concern(delivery, now)
    since = len(server.handler.received)
    await delivery.worker.run_pass()

    (raw,) = sent_to(server, keyed, since)
    assert message_from_bytes(raw, policy=default).get_content_type() == "application/pkcs7-mime"
    assert PLANTED not in raw
    assert ANSWER in plain_text(openssl_decrypt(tmp_path, raw, cert, key))

    (raw,) = sent_to(server, keyless, since)
    parsed = message_from_bytes(raw, policy=default)
    assert parsed.get_content_type() == "text/plain"  # link-only, never plain answers
    assert PLANTED not in raw
    text = plain_text(raw)
    assert "What they wrote is not in this email" in text
    assert ANSWER not in text
    assert keyed not in text
    ask_link_in(text, delivery, item.reference, keyless)


@in_own_loop
async def test_the_groups_question_is_not_emailed(server: SmtpServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    delivery = delivery_with_modes(tmp_path, server, Clock(now), concerns=DeliveryMode.ENCRYPTED)
    item = concern(now)
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()
    sent = len(server.handler.received)
    routes = tuple(route.value for route in recipients_for(FORMS["concern"], item.answers))
    delivery.files.conversations.open_for(item.reference, "concern", routes, new_receipt(), now)
    delivery.files.asked(item.reference, CONCERNS[0], QUESTION)
    await delivery.worker.run_pass()
    assert len(server.handler.received) == sent
