"""Acknowledgements: a recipient marks a concern or an urgent notice as being dealt with.

Only who (the recipient's address) and when are kept, one small file per reference, written
once: the first acknowledgement stands. The member who sent the form can see that it is in hand
(the status page), and nothing more. It goes when the form's record would (housekeeping).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from forms_server.storage.folder_store import FolderStore, parse_time


@dataclass(frozen=True)
class Acknowledgement:
    reference: str
    by: str
    at: datetime
    form_kind: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at.isoformat(), "form_kind": self.form_kind}

    @classmethod
    def from_json(cls, reference: str, data: dict[str, Any]) -> Acknowledgement:
        return cls(
            reference, str(data["by"]), parse_time(data["at"]), str(data.get("form_kind", ""))
        )


class Acknowledgements:
    def __init__(self, data_dir: Path) -> None:
        self.files = FolderStore(
            data_dir / "acknowledged",
            Acknowledgement.to_json,
            Acknowledgement.from_json,
            lambda found: found.reference,
        )
        self.folder = self.files.folder

    def path(self, reference: str) -> Path:
        return self.files.path(reference)

    def record(
        self, reference: str, form_kind: str, by: str, at: datetime
    ) -> tuple[Acknowledgement, bool]:
        """The acknowledgement that stands, and whether this one is it (False: someone was
        first, and theirs is returned)."""
        mine = Acknowledgement(reference, by, at, form_kind)
        first = self.files.create(mine)
        return (self.get(reference) or mine), first

    def get(self, reference: str) -> Acknowledgement | None:
        return self.files.get(reference)

    def all(self) -> list[Acknowledgement]:
        return self.files.all()

    def forget(self, reference: str) -> None:
        self.files.remove(reference)
