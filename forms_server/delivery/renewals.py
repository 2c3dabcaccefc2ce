"""Consent that never lapses unnoticed.

Each consent lapses on its renewal date, if the group decided one (`consent_renewal_months`),
and in any case when its record is deleted. So that nobody misses it:

- the facilitators can always list what lapses soon (`forms-server find --expiring`), and, if
  the group decided `expiring_consents_email_days`, get a short weekly email of it: references
  and dates only;
- only if the group decided a renewal period, the member gets one discreet reminder
  `REMIND_DAYS_BEFORE` days before, with a private link (its own purpose) to the consent form
  filled in from the sealed record. The link holds only the reference. Signing again replaces
  the old record (store.py, `Submission.replaces`). Without a renewal period nothing is sent to
  members.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from forms_server.forms.definitions import FORMS
from forms_server.rights import lapsing_consents
from forms_server.signing import Purpose, Signer
from forms_server.storage.files import replace_atomically
from forms_server.storage.records import StoredRecord, SubmissionStore

logger = logging.getLogger(__name__)

REMIND_DAYS_BEFORE = 30
# The reminder's link works through the month before the consent lapses, and a month after.
RENEW_LINK_DAYS = 2 * REMIND_DAYS_BEFORE
WEEK = timedelta(days=7)
LINK_SALT_KIND = "renew"

RenewLink = Callable[[str], str]
# A consent, and when it lapses.
Lapsing = tuple[StoredRecord, datetime]


def renew_links(signer: Signer, public_url: str) -> RenewLink:
    def link(reference: str) -> str:
        token = signer.sign(LINK_SALT_KIND, Purpose.RENEW, {"reference": reference})
        return f"{public_url}/forms/renew/{token}"

    return link


def address_of(record: StoredRecord) -> str | None:
    """Where the member's own messages go: the kept field given for that."""
    form = FORMS.get(record.form_kind)
    if form is None:
        return None
    for spec in form.fields:
        value = record.kept.get(spec.name)
        if spec.copy_address and isinstance(value, str) and value:
            return value
    return None


class Renewals:
    def __init__(
        self,
        store: SubmissionStore,
        data_dir: Path,
        renewal_months: int | None,
        expiring_email_days: int | None,
    ) -> None:
        self.store = store
        self.renewal_months = renewal_months
        self.expiring_email_days = expiring_email_days
        self.weekly_path = data_dir / "expiring-email.json"

    def consents(self) -> list[Lapsing]:
        """Every kept consent, with when it lapses, soonest first: read once per check."""
        return lapsing_consents(self.store.all(), self.renewal_months)

    def reminders_due(self, now: datetime, consents: list[Lapsing]) -> list[Lapsing]:
        """Consents to remind now: only when the group renews consent, once each."""
        if self.renewal_months is None:
            return []
        return [
            (record, lapses)
            for record, lapses in consents
            if record.reminded_at is None
            and lapses - timedelta(days=REMIND_DAYS_BEFORE) <= now < lapses
            and address_of(record) is not None
        ]

    def weekly_due(self, now: datetime, consents: list[Lapsing]) -> list[Lapsing] | None:
        """The consents for this week's email, or None when no email is due (not decided, or
        sent less than a week ago). An empty week sends nothing."""
        if self.expiring_email_days is None:
            return None
        try:
            sent_at = datetime.fromisoformat(
                json.loads(self.weekly_path.read_text(encoding="utf-8"))["sent_at"]
            )
            if now - sent_at < WEEK:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            pass  # never sent, or unreadable: due now
        horizon = now + timedelta(days=self.expiring_email_days)
        return [(record, lapses) for record, lapses in consents if lapses <= horizon]

    def weekly_done(self, now: datetime) -> None:
        replace_atomically(self.weekly_path, json.dumps({"sent_at": now.isoformat()}).encode())

    def weekly_text(self, due: list[Lapsing]) -> str:
        lines = [
            f"{len(due)} consent(s) lapse within {self.expiring_email_days} days. References "
            "and dates only: search your inbox for a reference to find the member.",
            "",
        ]
        for record, lapses in due:
            reminded = f", reminded {record.reminded_at:%-d %B %Y}" if record.reminded_at else ""
            lines.append(
                f"{record.reference}: signed {record.received_at:%-d %B %Y}, lapses "
                f"{lapses:%-d %B %Y}{reminded}"
            )
        return "\n".join(lines) + "\n"
