"""A member's own copy of what they sent: discreet by default, limited per address.

A consent form or a leave notice can ask for a copy. The copy is one more recipient of the
outbox item, written as `MEMBER_COPY` rather than an address: the address itself stays inside
the sealed answers, and is gone with them once the form is delivered. The copy holds a private
link (its own purpose and lifetime) to `/forms/yours/<token>`, where the member sees what is
kept about that form and can withdraw or delete it.

So that nobody can use the form to fill someone else's inbox, one address gets at most
`per_day` copies in 24 hours: counted in `member-copies.json` under a keyed hash of the address
(never the address), and forgotten after a day.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from forms_server.storage.files import exclusive_lock, replace_atomically
from forms_server.storage.ledger import Ledger
from forms_server.storage.outbox_items import MEMBER_COPY

__all__ = [
    "MEMBER_COPY",
    "MEMBER_COPY_SENDER",
    "MEMBER_COPY_SUBJECT",
    "MESSAGE_ALERT_SUBJECT",
    "CopyLimit",
]

# What the item's route says about the copy, for the confirmation page.
COPY_ROUTE = "member-copy"
COPY_REFUSED_ROUTE = "member-copy-refused"
WINDOW = timedelta(days=1)
# A member's own copy names nothing that shows what it is about: not the group, not the form,
# not the reference (a lock screen or a shared inbox shows the sender and the subject).
MEMBER_COPY_SENDER = "Online form"
MEMBER_COPY_SUBJECT = "Your message was received"
# The same, for a member who asked to be told of a new message in their conversation.
MESSAGE_ALERT_SUBJECT = "There is a message for you"


def within_a_day(times: object, now: datetime) -> list[str]:
    recent = []
    for moment in times if isinstance(times, list) else []:
        with contextlib.suppress(TypeError, ValueError):
            if now - datetime.fromisoformat(moment) < WINDOW:
                recent.append(moment)
    return recent


class CopyLimit:
    def __init__(self, data_dir: Path, ledger: Ledger, per_day: int) -> None:
        self.path = data_dir / "member-copies.json"
        self.lock_path = data_dir / "member-copies.lock"
        self.ledger = ledger
        self.per_day = per_day

    def read(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # unreadable: start counting again rather than refuse every copy
        return data if isinstance(data, dict) else {}

    def take(self, address: str, now: datetime) -> bool:
        """One copy for this address now, if it has had fewer than `per_day` in a day."""
        key = self.ledger.hash(address)
        with exclusive_lock(self.lock_path):
            counts = {
                hashed: recent
                for hashed, times in self.read().items()
                if (recent := within_a_day(times, now))
            }
            sent = counts.get(key, [])
            if len(sent) >= self.per_day:
                return False
            counts[key] = [*sent, now.isoformat()]
            replace_atomically(self.path, json.dumps(counts).encode())
        return True
