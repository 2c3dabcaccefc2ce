"""Notices the facilitators must get, kept on disk until they have: "a member withdrew their
consent", for example. They hold a reference and what happened, never a member's answers.

    outbox/notices/<id>.json   one notice: who it goes to (a route), its subject and text, and
                               the addresses that already have it, so a retry never repeats one

A notice that cannot be read is moved aside into the outbox's quarantine, so it stops nothing
else. One that cannot be sent waits and is tried again on each pass, with a growing wait.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from forms_server.storage.files import create_exclusively, replace_atomically
from forms_server.storage.outbox import Outbox, OutboxError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    name: str
    route: str  # a Recipients value: who it goes to
    subject: str
    text: str
    created_at: datetime
    sent_to: tuple[str, ...] = ()
    attempts: int = 0
    next_attempt_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "subject": self.subject,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "sent_to": list(self.sent_to),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Notice:
        waiting = data.get("next_attempt_at")
        return cls(
            name=name,
            route=str(data["route"]),
            subject=str(data["subject"]),
            text=str(data["text"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            sent_to=tuple(str(address) for address in data.get("sent_to", [])),
            attempts=int(data.get("attempts", 0)),
            next_attempt_at=datetime.fromisoformat(waiting) if waiting else None,
        )


class Notices:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.folder = outbox.folder / "notices"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def add(self, route: str, subject: str, text: str, now: datetime) -> Notice:
        """On disk, fsynced, before this returns."""
        notice = Notice(secrets.token_hex(8), route, subject, text, now)
        path = self.folder / f"{notice.name}.json"
        create_exclusively(path, json.dumps(notice.to_json()).encode())
        return notice

    def pending(self) -> list[Notice]:
        notices = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                notices.append(
                    Notice.from_json(path.stem, json.loads(path.read_text(encoding="utf-8")))
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                self.outbox.quarantine(path, OutboxError(type(error).__name__))
        return notices

    def save(self, notice: Notice) -> None:
        replace_atomically(
            self.folder / f"{notice.name}.json", json.dumps(notice.to_json()).encode()
        )

    def sent(self, notice: Notice, address: str) -> Notice:
        """Written down at once: this address is never sent this notice again."""
        updated = replace(notice, sent_to=(*notice.sent_to, address))
        self.save(updated)
        return updated

    def done(self, notice: Notice) -> None:
        (self.folder / f"{notice.name}.json").unlink(missing_ok=True)
