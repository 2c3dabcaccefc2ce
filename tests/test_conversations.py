"""The conversation store: a receipt only the member holds, kept as a slow hash; messages
sealed at rest; one key derivation for a wrong receipt and an unknown reference alike."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from forms_server.delivery.housekeeping import keep_house
from forms_server.forms.reference import new_reference
from forms_server.handbook.processing import CONVERSATION_IN_THE_CLEAR
from forms_server.storage.conversations import Conversations
from forms_server.storage.form_files import FormFiles
from forms_server.storage.outbox_items import RecipientState
from forms_server.storage.receipts import RECEIPT_BITS, new_receipt, normalise_receipt
from forms_server.storage.sealing import Sealer
from tests.test_delivery import mail_settings, make_delivery

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
DATA_KEY = bytes(range(32))


def store(tmp_path: Path) -> Conversations:
    return Conversations(tmp_path, Sealer(DATA_KEY))


def form_files(tmp_path: Path) -> FormFiles:
    """Every file of the server over `tmp_path`, as `serve` makes them."""
    return make_delivery(tmp_path / "data", mail_settings(None)).files


def test_a_receipt_is_sixteen_digits_in_groups_of_four_with_over_fifty_bits() -> None:
    receipts = {new_receipt() for _ in range(200)}
    assert len(receipts) == 200
    for receipt in receipts:
        assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", receipt)
    assert pytest.approx(16 * math.log2(10)) == RECEIPT_BITS
    assert RECEIPT_BITS > 50


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("1234 5678 9012 3456", "1234567890123456"),
        ("1234-5678-9012-3456", "1234567890123456"),
        (" 1234567890123456 ", "1234567890123456"),
        ("1234 5678 9012 345", None),
        ("1234 5678 9012 345a", None),
        ("", None),
    ],
)
def test_a_receipt_is_read_however_it_was_typed(typed: str, kept: str | None) -> None:
    assert normalise_receipt(typed) == kept


def test_the_store_keeps_a_slow_hash_never_the_receipt(tmp_path: Path) -> None:
    conversations = store(tmp_path)
    reference = new_reference()
    receipt = new_receipt()
    conversations.open_for(reference, "concern", ("concerns",), receipt, NOW)
    raw = (tmp_path / "conversations" / f"{reference}.json").read_text()
    assert receipt not in raw
    assert receipt.replace(" ", "") not in raw
    stored = json.loads(raw)
    assert stored["receipt"]["n"] >= 2**14
    assert conversations.verify(reference, receipt) is not None
    assert conversations.verify(reference, receipt.replace(" ", "-")) is not None


def test_a_wrong_receipt_and_an_unknown_reference_take_the_same_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Structural, not timed (timing is in bench/): each attempt derives one key, with the same
    cost, whether the reference exists, the receipt is wrong or it is not a receipt at all."""
    conversations = store(tmp_path)
    reference = new_reference()
    receipt = new_receipt()
    conversations.open_for(reference, "concern", ("concerns",), receipt, NOW)
    derivations: list[dict[str, Any]] = []
    real_scrypt = hashlib.scrypt

    def counted(password: bytes, **cost: Any) -> bytes:
        derivations.append({key: value for key, value in cost.items() if key != "salt"})
        return real_scrypt(password, **cost)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    attempts = {
        "right": (reference, receipt),
        "wrong receipt": (reference, "0000 0000 0000 0000"),
        "unknown reference": (new_reference(), receipt),
        "not a receipt": (reference, "hello"),
        "not a reference": ("nonsense", receipt),
    }
    found = {}
    for name, (tried, typed) in attempts.items():
        derivations.clear()
        found[name] = conversations.verify(tried, typed) is not None
        assert len(derivations) == 1, name
        assert derivations[0] == {
            "n": 2**14,
            "r": 8,
            "p": 1,
            "maxmem": 64 * 1024 * 1024,
            "dklen": 32,
        }
    assert found == {
        "right": True,
        "wrong receipt": False,
        "unknown reference": False,
        "not a receipt": False,
        "not a reference": False,
    }


def test_messages_are_sealed_at_rest_and_come_back_in_order(tmp_path: Path) -> None:
    conversations = store(tmp_path)
    reference = new_reference()
    conversations.open_for(reference, "concern", ("concerns",), new_receipt(), NOW)
    conversations.add(reference, "group", "Which meeting was it?", NOW + timedelta(hours=1))
    conversations.add(reference, "member", "The Tuesday one, kingfisher", NOW + timedelta(hours=2))
    raw = (tmp_path / "conversations" / f"{reference}.json").read_text()
    assert "Which meeting" not in raw
    assert "kingfisher" not in raw
    conversation = conversations.get(reference)
    assert conversation is not None
    messages = conversations.messages(conversation)
    assert [(m.by, m.text) for m in messages] == [
        ("group", "Which meeting was it?"),
        ("member", "The Tuesday one, kingfisher"),
    ]
    assert conversation.last_message_at == NOW + timedelta(hours=2)


def test_a_conversation_can_be_deleted(tmp_path: Path) -> None:
    conversations = store(tmp_path)
    reference = new_reference()
    conversations.open_for(reference, "concern", ("concerns",), new_receipt(), NOW)
    conversations.forget(reference)
    assert conversations.get(reference) is None
    assert list((tmp_path / "conversations").glob("*.json")) == []


def test_a_conversation_holds_in_the_clear_exactly_what_the_notice_says(tmp_path: Path) -> None:
    conversations = store(tmp_path)
    reference = new_reference()
    conversations.open_for(reference, "concern", ("concerns",), new_receipt(), NOW)
    conversations.add(
        reference, "member", "an answer", NOW, (RecipientState("a@example.org", "<id@x>"),)
    )
    stored = json.loads((tmp_path / "conversations" / f"{reference}.json").read_text())
    assert set(stored) - {"sealed"} == set(CONVERSATION_IN_THE_CLEAR)


def test_a_quiet_conversation_ends_after_the_kept_days_and_a_busy_one_stays(tmp_path: Path) -> None:
    conversations = store(tmp_path)
    quiet, busy, unused = new_reference(), new_reference(), new_reference()
    for reference in (quiet, busy, unused):
        conversations.open_for(reference, "concern", ("concerns",), new_receipt(), NOW)
    conversations.add(quiet, "group", "A question", NOW + timedelta(days=1))
    conversations.add(busy, "group", "A question", NOW + timedelta(days=25))
    # The unused one, opened 30 and a half days ago; then the quiet one too.
    assert conversations.quiet(NOW + timedelta(days=30, hours=12), timedelta(days=30)) == [unused]
    assert set(conversations.quiet(NOW + timedelta(days=32), timedelta(days=30))) == {
        unused,
        quiet,
    }


def test_a_quiet_conversation_about_a_concern_nobody_picked_up_waits_for_the_pick_up(
    tmp_path: Path,
) -> None:
    """Housekeeping asks the lifecycle: a hold-back keeps the conversation as it keeps the
    form readable, and the quiet end comes once someone has picked the concern up."""
    files = form_files(tmp_path)
    waiting, picked = new_reference(), new_reference()
    for reference in (waiting, picked):
        files.conversations.open_for(reference, "concern", ("concerns",), new_receipt(), NOW)
        files.conversations.add(reference, "group", "A question", NOW)
    files.acknowledgements.record(picked, "concern", "lead@example.org", NOW)
    later = NOW + timedelta(days=31)
    keep_house(files, later, timedelta(days=1))
    assert files.conversations.get(picked) is None
    assert files.conversations.get(waiting) is not None
    files.pick_up(waiting, "concern", "lead@example.org")
    keep_house(files, later, timedelta(days=1))
    assert files.conversations.get(waiting) is None
