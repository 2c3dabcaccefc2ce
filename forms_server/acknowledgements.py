"""Acknowledgements: a recipient marks a concern or an urgent notice as being dealt with.

Only who (the recipient's address) and when are kept, one small file per reference, written
once: the first acknowledgement stands. The member who sent the form can see that it is in
hand (the status page), and nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from forms_server.files import create_exclusively
from forms_server.forms import FORMS, Submission, recipients_for
from forms_server.signing import Purpose, Signer

# Acknowledgement links belong to no one form.
LINK_SALT_KIND = "acknowledgement"


@dataclass(frozen=True)
class Acknowledgement:
    reference: str
    by: str
    at: datetime


class Acknowledgements:
    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "acknowledged"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, reference: str) -> Path:
        return self.folder / f"{reference}.json"

    def record(self, reference: str, by: str, at: datetime) -> tuple[Acknowledgement, bool]:
        """The acknowledgement that stands, and whether this one is it (False: someone was
        first, and theirs is returned)."""
        data = json.dumps({"by": by, "at": at.isoformat()}).encode("utf-8")
        first = create_exclusively(self.path(reference), data)
        found = self.get(reference)
        if found is None:  # written, then unreadable: report what was meant
            return Acknowledgement(reference, by, at), first
        return found, first

    def get(self, reference: str) -> Acknowledgement | None:
        try:
            data = json.loads(self.path(reference).read_text(encoding="utf-8"))
            return Acknowledgement(reference, str(data["by"]), datetime.fromisoformat(data["at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


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
            {"reference": submission.reference, "to": address, "routes": routes},
        )
        return f"{public_url}/forms/acknowledge/{token}"

    return link
