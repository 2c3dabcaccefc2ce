"""Notices people must get, kept on disk until they have them: "a member withdrew their
consent", "in hand", "an erasure held back is now done". They hold a reference and what
happened, never a member's answers.

    outbox/notices/<id>.json   one notice: who it goes to (a route, or addresses), its subject
                               and text, the addresses that have it (so a retry never repeats
                               one), those that refused it for good, and when to try again

A notice that cannot be read is moved aside into the outbox's quarantine, so it stops nothing
else. One that cannot be sent waits and is tried again with a growing wait (delivery/notices.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from forms_server.storage.folder_store import FolderStore, optional_time, parse_time
from forms_server.storage.outbox import Outbox


@dataclass(frozen=True)
class Notice:
    name: str
    route: str  # a Recipients value ("" when `addresses` says who)
    subject: str
    text: str
    created_at: datetime
    sent_to: tuple[str, ...] = ()
    attempts: int = 0
    next_attempt_at: datetime | None = None
    addresses: tuple[str, ...] = ()
    failed_to: tuple[str, ...] = ()
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "addresses": list(self.addresses),
            "subject": self.subject,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "sent_to": list(self.sent_to),
            "failed_to": list(self.failed_to),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Notice:
        error = data.get("last_error")
        return cls(
            name=name,
            route=str(data["route"]),
            addresses=tuple(str(a) for a in data.get("addresses", [])),
            subject=str(data["subject"]),
            text=str(data["text"]),
            created_at=parse_time(data["created_at"]),
            sent_to=tuple(str(address) for address in data.get("sent_to", [])),
            failed_to=tuple(str(address) for address in data.get("failed_to", [])),
            attempts=int(data.get("attempts", 0)),
            next_attempt_at=optional_time(data.get("next_attempt_at")),
            last_error=None if error is None else str(error),
        )


class Notices:
    def __init__(self, outbox: Outbox) -> None:
        self.files = FolderStore(
            outbox.folder / "notices",
            Notice.to_json,
            Notice.from_json,
            lambda notice: notice.name,
            on_unreadable=outbox.quarantine,
        )
        self.folder = self.files.folder

    def add(
        self,
        route: str,
        subject: str,
        text: str,
        now: datetime,
        addresses: tuple[str, ...] = (),
    ) -> Notice:
        """On disk, fsynced, before this returns."""
        # Named in the order they are made (the folder's order), so they go in that order.
        name = f"{time.time_ns():x}-{secrets.token_hex(4)}"
        notice = Notice(name, route, subject, text, now, addresses=addresses)
        self.files.create(notice)
        return notice

    def pending(self) -> list[Notice]:
        return self.files.all()

    def save(self, notice: Notice) -> None:
        self.files.save(notice)

    def sent(self, notice: Notice, address: str) -> Notice:
        """Written down at once: this address is never sent this notice again."""
        updated = replace(notice, sent_to=(*notice.sent_to, address))
        self.save(updated)
        return updated

    def done(self, notice: Notice) -> None:
        self.files.remove(notice.name)
