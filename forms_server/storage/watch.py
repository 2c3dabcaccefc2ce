"""The watch: concerns and urgent notices waiting for someone to pick them up.

A delivered form that needs picking up leaves a small file in `data/watch/`: its sealed content
(so it can be sent on), when it escalates and, once that time comes, the state of each
escalation recipient's own message (like any delivery: accepted, failed or waiting), so a
refused address fails alone and an accepted one is never sent it again. Timers live on disk, so
they survive restarts. Once every escalation recipient has it, the content is erased from the
watch; the note stays until someone picks the form up, or until the form's retention ends.

A file moved aside because it could not be read, if what is left of it says someone may be at
risk, is watched too (`unreadable`), due at once, with whatever content could be saved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from forms_server.storage.folder_store import FolderStore, SealedForm, optional_time, parse_time
from forms_server.storage.outbox_items import RecipientState, RecipientStatus, with_recipient


@dataclass(frozen=True)
class Watched(SealedForm):
    escalate_at: datetime
    escalated_at: datetime | None = None
    # The recipients it reached (told when someone picks it up).
    reached: tuple[str, ...] = ()
    # One per escalation address, once the escalation falls due.
    recipients: tuple[RecipientState, ...] = ()
    # Saved from a file that could not be read: send what is known at once.
    unreadable: bool = False

    @property
    def escalated_to(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.status is RecipientStatus.ACCEPTED)

    @property
    def refused(self) -> tuple[RecipientState, ...]:
        return tuple(r for r in self.recipients if r.status is RecipientStatus.FAILED)

    @property
    def sending(self) -> bool:
        """Due, with someone still to send it to."""
        return self.escalated_at is None or any(
            r.status is RecipientStatus.PENDING for r in self.recipients
        )

    def with_recipient(self, changed: RecipientState) -> Watched:
        return replace(self, recipients=with_recipient(self.recipients, changed))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.identity_json(),
            "escalate_at": self.escalate_at.isoformat(),
            "escalated_at": self.escalated_at.isoformat() if self.escalated_at else None,
            "reached": list(self.reached),
            "recipients": [r.to_json() for r in self.recipients],
            "unreadable": self.unreadable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watched:
        return cls(
            **cls.identity_from(data),
            escalate_at=parse_time(data["escalate_at"]),
            escalated_at=optional_time(data.get("escalated_at")),
            reached=tuple(str(address) for address in data.get("reached", [])),
            recipients=tuple(RecipientState.from_json(r) for r in data.get("recipients", [])),
            unreadable=bool(data.get("unreadable", False)),
        )


class Watch:
    def __init__(self, data_dir: Path) -> None:
        self.files = FolderStore(
            data_dir / "watch",
            Watched.to_json,
            lambda _, data: Watched.from_json(data),
            lambda w: w.reference,
        )
        self.folder = self.files.folder

    def path(self, reference: str) -> Path:
        return self.files.path(reference)

    def start(self, watched: Watched) -> bool:
        """False if this reference is already watched (the first timer stands)."""
        return self.files.create(watched)

    def replace(self, watched: Watched) -> None:
        self.files.save(watched)

    def forget(self, reference: str) -> None:
        self.files.remove(reference)

    def get(self, reference: str) -> Watched | None:
        return self.files.get(reference)

    def all(self) -> list[Watched]:
        return self.files.all()
