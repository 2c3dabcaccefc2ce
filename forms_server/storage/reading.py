"""Link-only delivery: what a form said stays here, sealed, until its read window ends.

    readable/<REF>.json   the form's content, sealed; when the window ends; who read it, when

A recipient on a link-only route gets an email that says what arrived and carries their own
link (`/forms/read/<token>`, its own purpose). Opening the link changes nothing (mail scanners
open links); the "Show the submission" button shows the content and records who read it and
when. Reading never deletes it, so a second recipient can read it too. When the window ends,
the content goes and only the reads stay (no content) until the form's record goes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.signing import Purpose, Signer
from forms_server.storage.files import create_exclusively, exclusive_lock, replace_atomically

logger = logging.getLogger(__name__)

LINK_SALT_KIND = "read"


@dataclass(frozen=True)
class Read:
    by: str
    at: datetime


@dataclass(frozen=True)
class Readable:
    reference: str
    form_kind: str
    urgent: bool
    received_at: datetime
    until: datetime
    sealed: str  # "" once the window has ended or the form was erased
    erased_at: datetime | None = None
    reads: tuple[Read, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "form_kind": self.form_kind,
            "urgent": self.urgent,
            "received_at": self.received_at.isoformat(),
            "until": self.until.isoformat(),
            "sealed": self.sealed,
            "erased_at": self.erased_at.isoformat() if self.erased_at else None,
            "reads": [{"by": read.by, "at": read.at.isoformat()} for read in self.reads],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Readable:
        erased = data.get("erased_at")
        return cls(
            reference=str(data["reference"]),
            form_kind=str(data["form_kind"]),
            urgent=bool(data["urgent"]),
            received_at=datetime.fromisoformat(data["received_at"]),
            until=datetime.fromisoformat(data["until"]),
            sealed=str(data["sealed"]),
            erased_at=datetime.fromisoformat(erased) if erased else None,
            reads=tuple(
                Read(str(read["by"]), datetime.fromisoformat(read["at"]))
                for read in data.get("reads", [])
            ),
        )


class ReadingRoom:
    def __init__(self, data_dir: Path, window: timedelta = timedelta(0)) -> None:
        """`window`: how long a form stays readable once kept (only keeping needs it)."""
        self.folder = data_dir / "readable"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock_path = data_dir / "readable.lock"
        self.window = window

    def path(self, reference: str) -> Path:
        return self.folder / f"{reference}.json"

    @staticmethod
    def encoded(readable: Readable) -> bytes:
        return json.dumps(readable.to_json(), separators=(",", ":")).encode()

    def keep(
        self, reference: str, form_kind: str, urgent: bool, now: datetime, sealed: str
    ) -> Readable:
        """Readable for the window from now: the first link-only message for a form starts it,
        and an escalation sent later gives its reader the same window again. Content that has
        gone (its window ended, or it was erased) never comes back."""
        fresh = Readable(reference, form_kind, urgent, now, now + self.window, sealed)
        with exclusive_lock(self.lock_path):
            if create_exclusively(self.path(reference), self.encoded(fresh)):
                return fresh
            existing = self.get(reference)
            if existing is None:
                raise OSError(f"the readable copy of {reference} cannot be read")
            if existing.sealed and existing.until < fresh.until and now < existing.until:
                existing = replace(existing, until=fresh.until)
                replace_atomically(self.path(reference), self.encoded(existing))
            return existing

    def get(self, reference: str) -> Readable | None:
        try:
            return Readable.from_json(json.loads(self.path(reference).read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read(self, reference: str, by: str, at: datetime) -> Readable | None:
        """Records a read, if the content is still here; returns what there is."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is None or not readable.sealed or at >= readable.until:
                return readable
            readable = replace(readable, reads=(*readable.reads, Read(by, at)))
            replace_atomically(self.path(reference), self.encoded(readable))
        return readable

    def erase(self, reference: str, at: datetime) -> bool:
        """The content goes now (an erasure); the reads stay, with no content."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is None or not readable.sealed:
                return False
            replace_atomically(
                self.path(reference), self.encoded(replace(readable, sealed="", erased_at=at))
            )
        return True

    def reseal(self, reference: str, sealed: str) -> None:
        """The same content, sealed again with the newest key (`forms-server keys rotate`)."""
        with exclusive_lock(self.lock_path):
            readable = self.get(reference)
            if readable is not None and readable.sealed:
                replace_atomically(
                    self.path(reference), self.encoded(replace(readable, sealed=sealed))
                )

    def all(self) -> list[Readable]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            readable = self.get(path.stem)
            if readable is not None:
                found.append(readable)
        return found

    def purge(self, now: datetime, keep_reads_for: timedelta) -> int:
        """Content past its window goes; reads go once the form's record would have."""
        changed = 0
        for readable in self.all():
            try:
                if readable.sealed and now >= readable.until:
                    changed += self.erase(readable.reference, now)
                elif now - readable.received_at > keep_reads_for:
                    self.path(readable.reference).unlink(missing_ok=True)
                    changed += 1
            except OSError as error:  # this file's fault alone: the others still go
                logger.error(
                    "Could not delete the readable copy of %s: %s", readable.reference, error
                )
        return changed


class ReadLimit:
    """How often one link may show its form: enough for a recipient coming back to it, not
    for a leaked link to be read over and over. In memory: a restart forgives."""

    def __init__(self, per_hour: int = 20) -> None:
        self.per_hour = per_hour
        self.shown: dict[str, list[datetime]] = {}

    def wait_seconds(self, key: str, now: datetime) -> int | None:
        recent = [at for at in self.shown.get(key, []) if now - at < timedelta(hours=1)]
        if len(recent) >= self.per_hour:
            self.shown[key] = recent
            return max(1, int((recent[0] + timedelta(hours=1) - now).total_seconds()))
        self.shown[key] = [*recent, now]
        return None


def read_links(signer: Signer, public_url: str) -> Callable[[str, str, str], str]:
    """Each recipient's own link to a link-only form: the reference, the form and the
    recipient, and nothing else."""

    def link(reference: str, form_kind: str, address: str) -> str:
        token = signer.sign(
            LINK_SALT_KIND, Purpose.READ, {"reference": reference, "kind": form_kind, "to": address}
        )
        return f"{public_url}/forms/read/{token}"

    return link
