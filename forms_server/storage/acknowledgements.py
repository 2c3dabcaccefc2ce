"""Acknowledgements: a recipient marks a concern or an urgent notice as being dealt with.

Only who (the recipient's address) and when are kept, one small file per reference, written
once: the first acknowledgement stands. The member who sent the form can see that it is in
hand (the status page), and nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from forms_server.forms.definitions import FORMS, Submission, recipients_for
from forms_server.signing import Purpose, Signer
from forms_server.storage.files import create_exclusively

# Acknowledgement links belong to no one form.
LINK_SALT_KIND = "acknowledgement"


@dataclass(frozen=True)
class Acknowledgement:
    reference: str
    by: str
    at: datetime
    form_kind: str = ""


class Acknowledgements:
    def __init__(self, data_dir: Path, retention_days: Mapping[str, int]) -> None:
        self.folder = data_dir / "acknowledged"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Kept as long as the form's own record (the group's retention decision).
        self.retention_days = retention_days

    def path(self, reference: str) -> Path:
        return self.folder / f"{reference}.json"

    def record(
        self, reference: str, form_kind: str, by: str, at: datetime
    ) -> tuple[Acknowledgement, bool]:
        """The acknowledgement that stands, and whether this one is it (False: someone was
        first, and theirs is returned)."""
        data = json.dumps({"by": by, "at": at.isoformat(), "form_kind": form_kind}).encode()
        first = create_exclusively(self.path(reference), data)
        found = self.get(reference)
        if found is None:  # written, then unreadable: report what was meant
            return Acknowledgement(reference, by, at, form_kind), first
        return found, first

    def get(self, reference: str) -> Acknowledgement | None:
        try:
            data = json.loads(self.path(reference).read_text(encoding="utf-8"))
            return Acknowledgement(
                reference,
                str(data["by"]),
                datetime.fromisoformat(data["at"]),
                str(data.get("form_kind", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def purge_expired(self, now: datetime) -> int:
        """Acknowledgements older than their form's retention go, as the records do."""
        removed = 0
        longest = max(self.retention_days.values())
        for path in self.folder.glob("*.json"):
            found = self.get(path.stem)
            form = FORMS.get(found.form_kind) if found else None
            days = self.retention_days.get(form.decision_group, longest) if form else longest
            if found is None or now - found.at > timedelta(days=days):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def acknowledge_links(signer: Signer, public_url: str) -> Callable[[Submission, str], str | None]:
    """Each recipient's own link, for a concern or an urgent notice (others get none). It
    names the reference, the recipient and the routes the form went to, and nothing else."""

    def link(submission: Submission, address: str) -> str | None:
        form = FORMS.get(submission.form_kind)
        if form is None or not (submission.urgent or form.decision_group == "concern"):
            return None
        routes = [route.value for route in recipients_for(form, submission.answers)]
        token = signer.sign(
            LINK_SALT_KIND,
            Purpose.ACKNOWLEDGE,
            {
                "reference": submission.reference,
                "kind": submission.form_kind,
                "to": address,
                "routes": routes,
            },
        )
        return f"{public_url}/forms/acknowledge/{token}"

    return link
