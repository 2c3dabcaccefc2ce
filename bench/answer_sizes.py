"""What each delivery mode costs for the member's answer in a conversation: message sizes.

    .venv/bin/python bench/answer_sizes.py

Sizes: the bytes that go on the wire (`WIRE_POLICY`, as the relay sends them) of the email
`Composer.answer` builds for one recipient of a concern, in each mode its route can take (full,
link-only, S/MIME to an RSA-2048 certificate, OpenPGP to a Curve25519 key made by gpg), for a
typical answer (300 characters) and for the longest the page allows (`MESSAGE_LIMIT`, 2000).
Each as a ratio to the full email of the same answer. Beside them, for comparison, one concern
in the same modes, as bench/delivery_modes.py measures it. The group's question is never emailed
to the people who received the form; a member who asked to be told gets only "There is a
message for you", whose size is printed last.

The answers are plain English text typed as one paragraph (ASCII, no line breaks).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.delivery_modes import sizes as concern_sizes
from forms_server.config.decisions import DeliveryMode
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Answers
from forms_server.forms.reference import new_reference
from forms_server.forms.routing import recipients_for
from forms_server.mail.crypto import RecipientKey, load_recipient_key
from forms_server.mail.messages import WIRE_POLICY, new_message_id
from forms_server.storage.conversation_items import Conversation
from forms_server.web.conversation import MESSAGE_LIMIT, message_problem
from tests.test_delivery import CONCERNS, mail_settings, make_delivery
from tests.test_message_crypto import openpgp_key, smime_certificate
from tests.test_views import valid_answers

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RECIPIENT = CONCERNS[0]  # on the concerns route, which a concern takes
TYPICAL_LENGTH = 300
ENCRYPTED_TYPES = ("application/pkcs7-mime", "multipart/encrypted")
MODES = ("full", "link-only", "S/MIME", "OpenPGP")

SENTENCES = (
    "It was the Tuesday evening meeting, the one in the room above the library. "
    "I spoke to them afterwards and they said they are staying with their sister this week, "
    "so they are not on their own. They have an appointment with their doctor on Friday "
    "and said they would like someone from the group to check in with them after that. "
)


def check(condition: bool, problem: str) -> None:
    """What is measured is what was meant (a bench stops, rather than reports the wrong thing)."""
    if not condition:
        raise SystemExit(problem)


def answer_of(length: int) -> str:
    """A member's answer of exactly `length` characters, one the page would accept."""
    text = (SENTENCES * (length // len(SENTENCES) + 1))[:length].rstrip()
    text = text + "." * (length - len(text))
    check(len(text) == length, f"the answer has {len(text)} characters, not {length}")
    check(message_problem(text) is None, f"the page would refuse it: {message_problem(text)}")
    return text


def answer_sizes(folder: Path, answer: str) -> dict[str, int]:
    """The answer's email to RECIPIENT, in bytes on the wire, in each mode of its route."""
    answers: Answers = {**valid_answers(FORMS["concern"])}
    routes = tuple(route.value for route in recipients_for(FORMS["concern"], answers))
    conversation = Conversation(new_reference(), "concern", NOW, routes, b"", b"")
    cert, _ = smime_certificate(folder)
    keys: dict[str, RecipientKey] = {
        "S/MIME": load_recipient_key(RECIPIENT, cert),
        "OpenPGP": load_recipient_key(RECIPIENT, openpgp_key(folder)[0]),
    }
    found: dict[str, int] = {}
    for name, mode in (
        ("full", DeliveryMode.FULL),
        ("link-only", DeliveryMode.LINK_ONLY),
        ("S/MIME", DeliveryMode.ENCRYPTED),
        ("OpenPGP", DeliveryMode.ENCRYPTED),
    ):
        data = folder / name.replace("/", "")
        data.mkdir()
        modes = {"facilitators": mode, "concerns": mode, "escalation": DeliveryMode.FULL}
        delivery = make_delivery(
            data, mail_settings(None, modes=modes), public_url="https://forms.example"
        )
        composer = delivery.composer
        if name in keys:
            composer.recipient_keys = {RECIPIENT: keys[name]}
        check(composer.mode_for(conversation.routes, RECIPIENT) is mode, f"{name}: not {mode}")
        message = composer.answer(
            conversation,
            answer,
            RECIPIENT,
            new_message_id("f@x.org"),
            delivery.settings.acknowledge_link_days,
        )
        wire = message.as_bytes(policy=WIRE_POLICY)
        if mode is DeliveryMode.ENCRYPTED:
            sealed = message.get_content_type() in ENCRYPTED_TYPES
            check(sealed, f"{name}: not encrypted ({message.get_content_type()})")
        else:
            plain = message.get_body(preferencelist=("plain",))
            shown = plain is not None and answer in str(plain.get_content())
            check(shown is (mode is DeliveryMode.FULL), f"{name}: the answer shown: {shown}")
        found[name] = len(wire)
    return found


def main() -> None:
    lengths = {f"answer, {n} chars": n for n in (TYPICAL_LENGTH, MESSAGE_LIMIT)}
    columns: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "concern").mkdir()
        columns["concern"] = concern_sizes(base / "concern")
        for title, length in lengths.items():
            (base / title).mkdir()
            columns[title] = answer_sizes(base / title, answer_of(length))
    print("Message sizes, bytes on the wire (x: ratio to the full email of the same message):")
    header = f"  {'mode':<10}" + "".join(f"  {title:>19}" for title in columns)
    print(header)
    for mode in MODES:
        cells = ""
        for found in columns.values():
            size, full = found[mode], found["full"]
            cells += f"  {size:>11} ({size / full:4.2f}x)"
        print(f"  {mode:<10}{cells}")
    print(
        "  The group's question is not emailed to anyone who received the form. A member who "
        "asked to be told"
    )
    print(f'  gets "There is a message for you": {alert_size()} bytes, the same in every mode.')


def alert_size() -> int:
    """The member's "There is a message for you", as the relay sends it (it holds nothing of
    the group, the form or the message, so no mode changes it)."""
    with tempfile.TemporaryDirectory() as folder:
        delivery = make_delivery(Path(folder), mail_settings(None))
        alert = delivery.composer.message_alert("member@example.net", new_message_id("f@x.org"))
        return len(alert.as_bytes(policy=WIRE_POLICY))


if __name__ == "__main__":
    main()
