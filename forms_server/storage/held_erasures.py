"""Erasures held back: a form that says someone may be at risk is never erased before someone
has picked it up. The request waits here, content-free, until the form is picked up or its
retention ends, whichever comes first (lifecycle.py), and is then carried out.

    held-erasures/<REF>.json   the form's kind, who asked (the host or the member), why, when,
                               and the day it completes at the latest
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from forms_server.storage.folder_store import FolderStore, parse_time


@dataclass(frozen=True)
class HeldErasure:
    reference: str
    form_kind: str
    reason: str  # a ledger.ErasureReason
    asked_at: datetime
    # The form's retention end: the erasure completes then, if nobody has picked it up before.
    until: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "form_kind": self.form_kind,
            "reason": self.reason,
            "asked_at": self.asked_at.isoformat(),
            "until": self.until.isoformat(),
        }

    @classmethod
    def from_json(cls, reference: str, data: dict[str, Any]) -> HeldErasure:
        return cls(
            reference,
            str(data["form_kind"]),
            str(data["reason"]),
            parse_time(data["asked_at"]),
            parse_time(data["until"]),
        )


class HeldErasures:
    def __init__(self, data_dir: Path) -> None:
        self.files = FolderStore(
            data_dir / "held-erasures",
            HeldErasure.to_json,
            HeldErasure.from_json,
            lambda held: held.reference,
        )

    def hold(self, held: HeldErasure) -> HeldErasure:
        """The first request stands (its date is the one the member was told)."""
        self.files.create(held)
        return self.files.get(held.reference) or held

    def get(self, reference: str) -> HeldErasure | None:
        return self.files.get(reference)

    def all(self) -> list[HeldErasure]:
        return self.files.all()

    def claim(self, reference: str) -> HeldErasure | None:
        """The held erasure, taken off the list by this caller alone (another process that
        finds it gone does nothing); None if there is none."""
        held = self.files.get(reference)
        if held is None:
            return None
        try:
            self.files.path(reference).unlink()
        except FileNotFoundError:
            return None
        return held
