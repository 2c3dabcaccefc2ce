"""Link-only delivery: what a form said stays here, sealed, until its read window ends.

    readable/<REF>.json   the form's content, sealed; when the window ends; who read it, when

A recipient on a link-only route gets an email that says what arrived and carries their own
link (`/forms/read/<token>`). Opening the link changes nothing (mail scanners open links); the
"Show the submission" button shows the content and records who read it and when. Reading never
deletes it, so a second recipient can read it too. When the window ends (lifecycle.py decides:
never while someone may be at risk and nobody has picked it up), the content goes and only the
reads stay, with no content, until the form's record goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.storage.files import exclusive_lock
from forms_server.storage.folder_store import FolderStore, SealedForm, optional_time, parse_time


@dataclass(frozen=True)
class Read:
    by: str
    at: datetime


@dataclass(frozen=True)
class Readable(SealedForm):
    until: datetime
    erased_at: datetime | None = None
    reads: tuple[Read, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.identity_json(),
            "until": self.until.isoformat(),
            "erased_at": self.erased_at.isoformat() if self.erased_at else None,
            "reads": [{"by": read.by, "at": read.at.isoformat()} for read in self.reads],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Readable:
        return cls(
            **cls.identity_from(data),
            until=parse_time(data["until"]),
            erased_at=optional_time(data.get("erased_at")),
            reads=tuple(
                Read(str(read["by"]), parse_time(read["at"])) for read in data.get("reads", [])
            ),
        )


class ReadingRoom:
    def __init__(self, data_dir: Path, window: timedelta = timedelta(0)) -> None:
        """`window`: how long a form stays readable once kept (only keeping needs it)."""
        self.files = FolderStore(
            data_dir / "readable",
            Readable.to_json,
            lambda _, data: Readable.from_json(data),
            lambda r: r.reference,
        )
        self.folder = self.files.folder
        self.lock_path = data_dir / "readable.lock"
        self.window = window

    def path(self, reference: str) -> Path:
        return self.files.path(reference)

    def keep(
        self, reference: str, form_kind: str, urgent: bool, now: datetime, sealed: str
    ) -> Readable:
        """Readable for the window from now: the first link-only message for a form starts it,
        and an escalation sent later gives its reader the same window again. Content that has
        gone (its window ended, or it was erased) never comes back."""
        fresh = Readable(reference, form_kind, now, urgent, sealed, until=now + self.window)
        with exclusive_lock(self.lock_path):
            if self.files.create(fresh):
                return fresh
            existing = self.get(reference)
            if existing is None:
                raise OSError(f"the readable copy of {reference} cannot be read")
            if existing.sealed and existing.until < fresh.until and now < existing.until:
                existing = replace(existing, until=fresh.until)
                self.files.save(existing)
            return existing

    def get(self, reference: str) -> Readable | None:
        return self.files.get(reference)

    def read(self, reference: str, by: str, at: datetime) -> Readable | None:
        """Records a read, if the content is still here; returns what there is."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is None or not readable.sealed:
                return readable
            readable = replace(readable, reads=(*readable.reads, Read(by, at)))
            self.files.save(readable)
        return readable

    def erase(self, reference: str, at: datetime) -> bool:
        """The content goes now; the reads stay, with no content."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is None or not readable.sealed:
                return False
            self.files.save(replace(readable, sealed="", erased_at=at))
        return True

    def forget(self, reference: str) -> None:
        """Even the reads go (the form's record has gone)."""
        self.files.remove(reference)

    def reseal(self, reference: str, sealed: str) -> None:
        """The same content, sealed again with the newest key (`forms-server keys rotate`)."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is not None and readable.sealed:
                self.files.save(replace(readable, sealed=sealed))

    def all(self) -> list[Readable]:
        return self.files.all()
