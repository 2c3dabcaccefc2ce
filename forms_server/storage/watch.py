"""Escalation: a concern or urgent notice nobody marks as being dealt with in time is sent
again to the group's escalation contact, once, and then shows as overdue until someone does.

A delivered item that needs picking up leaves a small *watch* file in `data/watch/`: its
sealed content (so it can be sent again), when it escalates, and, once it has, when. Timers
live on disk, so they survive restarts; the escalation is written down after the send, so a
crash between the two repeats it at most once, like any other message. Once escalated, the
content is erased from the watch; the note stays until someone picks the form up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from forms_server.storage.files import create_exclusively, replace_atomically


@dataclass(frozen=True)
class Watched:
    reference: str
    form_kind: str
    urgent: bool
    received_at: datetime
    escalate_at: datetime
    sealed: str  # "" once escalated
    escalated_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "form_kind": self.form_kind,
            "urgent": self.urgent,
            "received_at": self.received_at.isoformat(),
            "escalate_at": self.escalate_at.isoformat(),
            "sealed": self.sealed,
            "escalated_at": self.escalated_at.isoformat() if self.escalated_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Watched:
        escalated = data.get("escalated_at")
        return cls(
            reference=str(data["reference"]),
            form_kind=str(data["form_kind"]),
            urgent=bool(data["urgent"]),
            received_at=datetime.fromisoformat(str(data["received_at"])),
            escalate_at=datetime.fromisoformat(str(data["escalate_at"])),
            sealed=str(data.get("sealed", "")),
            escalated_at=datetime.fromisoformat(str(escalated)) if escalated else None,
        )


class Watch:
    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "watch"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, reference: str) -> Path:
        return self.folder / f"{reference}.json"

    def start(self, watched: Watched) -> bool:
        """False if this reference is already watched (the first timer stands)."""
        return create_exclusively(self.path(watched.reference), self.encoded(watched))

    def escalated(self, watched: Watched, at: datetime) -> Watched:
        done = replace(watched, sealed="", escalated_at=at)
        self.replace(done)
        return done

    def replace(self, watched: Watched) -> None:
        replace_atomically(self.path(watched.reference), self.encoded(watched))

    def forget(self, reference: str) -> None:
        self.path(reference).unlink(missing_ok=True)

    def get(self, reference: str) -> Watched | None:
        try:
            data = json.loads(self.path(reference).read_text(encoding="utf-8"))
            return Watched.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def all(self) -> list[Watched]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(Watched.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being replaced, or damaged: the next pass reads it again
        return found

    @staticmethod
    def encoded(watched: Watched) -> bytes:
        return json.dumps(watched.to_json(), separators=(",", ":")).encode("utf-8")
