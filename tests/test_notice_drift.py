"""The privacy notice's sentences on delivery, retention, replies and escalation come from one
description (`delivery_wording.route_delivery`), and that description is what the server does: for
each delivery mode of the concerns route, and of the escalation route, a real concern goes
through the real worker to a real SMTP server, is escalated, and what arrived and what stayed
on disk is compared with the description and with the words the notice prints from it."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from forms_server.config.decisions import DeliveryMode, decisions_from
from forms_server.handbook.delivery_wording import (
    delivery_in_words,
    email_in_words,
    escalation_in_words,
    privacy_retention,
    reply_in_words,
    route_delivery,
)
from forms_server.mail.crypto import load_recipient_key
from forms_server.storage.watch import Watch
from tests import test_renewals
from tests.own_loop import in_own_loop
from tests.smtp_server import SmtpServer
from tests.test_delivery import CONCERNS
from tests.test_link_only import (
    NOW,
    PLANTED_ANSWER,
    REPLY_ADDRESS,
    concern_asking_for_a_reply,
    delivery_with_modes,
    raw_to,
)
from tests.test_message_crypto import smime_certificate
from tests.test_renewals import Clock

server = test_renewals.server

ESCALATION = "escalation@example.org"
WINDOW_DAYS = 4  # delivery_with_modes's read window


@pytest.mark.parametrize("escalation_mode", list(DeliveryMode))
@pytest.mark.parametrize("concerns_mode", list(DeliveryMode))
@in_own_loop
async def test_what_the_notice_says_is_what_a_concern_and_its_escalation_do(
    server: SmtpServer, tmp_path: Path, concerns_mode: DeliveryMode, escalation_mode: DeliveryMode
) -> None:
    decisions = decisions_from(
        {
            "decisions": {
                "delivery_mode": {"concerns": concerns_mode, "escalation": escalation_mode},
                "read_window_days": WINDOW_DAYS,
            }
        }
    )
    described = route_delivery(decisions, "concerns")
    clock = Clock(NOW)
    delivery = delivery_with_modes(
        tmp_path, server, clock, concerns=concerns_mode, escalation=escalation_mode
    )
    delivery.files.watch = Watch(tmp_path)
    cert, _ = smime_certificate(tmp_path)
    # The first recipient has a key; the second and the escalation contact have none.
    delivery.composer.recipient_keys = {CONCERNS[0]: load_recipient_key(CONCERNS[0], cert)}
    item = concern_asking_for_a_reply()
    await delivery.worker.receive(item)
    await delivery.worker.run_pass()

    # The email: answers readable, and a Reply-To, only where the notice says so.
    (first,) = raw_to(server, CONCERNS[0])
    assert (PLANTED_ANSWER.encode() in first) is (described.mode is DeliveryMode.FULL)
    has_reply_to = message_from_bytes(first, policy=default)["Reply-To"] is not None
    assert has_reply_to is described.reply_header
    assert (REPLY_ADDRESS.encode() in first) is described.reply_header
    # What stays on the server for a private link, and for how long.
    readable = delivery.files.reading.get(item.reference)
    assert (readable is not None) is described.kept_for_link(described.mode)
    if readable is not None:
        assert readable.until == NOW + timedelta(days=WINDOW_DAYS)

    # Nobody picks it up: it is sent on, never less private than its route.
    clock.now = NOW + timedelta(days=3)
    await delivery.worker.run_pass()
    (escalated,) = raw_to(server, ESCALATION)
    assert b"NOBODY HAS PICKED THIS UP" in escalated
    escalated_in_full = PLANTED_ANSWER.encode() in escalated
    assert escalated_in_full is (described.escalated_mode is DeliveryMode.FULL)
    readable = delivery.files.reading.get(item.reference)
    kept_again = readable is not None and readable.until == clock.now + timedelta(days=WINDOW_DAYS)
    assert kept_again is described.kept_for_link(described.escalated_mode)

    # The words the notice prints, from the same description.
    retention = privacy_retention(decisions, "concern")
    deleted_on_delivery = "as soon as the email has been delivered" in retention
    assert deleted_on_delivery is (described.mode is DeliveryMode.FULL)
    kept_for_days = f"for {WINDOW_DAYS} days from when the email is sent" in retention
    assert kept_for_days is described.kept_for_link(described.mode)
    new_link = f"kept for {WINDOW_DAYS} days from then" in retention
    assert new_link is described.kept_for_link(described.escalated_mode)
    said = delivery_in_words(decisions)
    assert f"- Concerns, to whoever receives them: {email_in_words(described.mode, 4)}" in said
    assert (
        "- A concern sent on because nobody picked it up: "
        f"{email_in_words(described.escalated_mode, WINDOW_DAYS)}"
    ) in said
    reply = reply_in_words(decisions, "concern")
    assert ("replying to it goes to you" in reply) is described.reply_header


@pytest.mark.parametrize(
    ("urgent", "other", "said"),
    [
        (1, 2, "1 minute from when you send it if someone may be at risk, and 2 minutes"),
        (30, 2880, "30 minutes from when you send it if someone may be at risk, and 2 days"),
        (60, 2160, "1 hour from when you send it if someone may be at risk, and 36 hours"),
    ],
)
def test_the_escalation_times_are_said_in_whole_words(urgent: int, other: int, said: str) -> None:
    """The old notice divided by 60: "within 1 minutes ... or 0 hours"."""
    decisions = decisions_from(
        {"decisions": {"escalate_after_minutes": {"urgent": urgent, "other": other}}}
    )
    assert said in escalation_in_words(decisions)
