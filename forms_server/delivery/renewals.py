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
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import anyio.to_thread

from forms_server.config.decisions import days_in_months
from forms_server.delivery.composer import Composer
from forms_server.delivery.runner import Every, in_words
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Recipients
from forms_server.mail.relay import Relay
from forms_server.storage.files import replace_atomically
from forms_server.storage.notices import Notices
from forms_server.storage.records import StoredRecord, SubmissionStore

logger = logging.getLogger(__name__)

REMIND_DAYS_BEFORE = 30
WEEK = timedelta(days=7)
CHECK_EVERY = timedelta(hours=1)
# A consent, and when it lapses.
Lapsing = tuple[StoredRecord, datetime]


def lapsing_consents(
    records: Iterable[StoredRecord], renewal_months: int | None
) -> list[tuple[StoredRecord, datetime]]:
    """Every consent among the records, with when it lapses, soonest first."""
    found = [
        (record, consent_lapses_at(record, renewal_months))
        for record in records
        if record.form_kind in FORMS and FORMS[record.form_kind].binds_guidelines
    ]
    return sorted(found, key=lambda pair: pair[1])


def consent_lapses_at(record: StoredRecord, renewal_months: int | None) -> datetime:
    """When a consent needs signing again: its renewal date if the group decided one, and in
    any case no later than the day its record is deleted."""
    if renewal_months is None:
        return record.expires_at
    renewal = record.received_at + timedelta(days=days_in_months(renewal_months))
    return min(renewal, record.expires_at)


def consents_expiring(
    records: Iterable[StoredRecord], within: timedelta, renewal_months: int | None, now: datetime
) -> list[Lapsing]:
    """Each consent whose record is deleted, or whose renewal falls due, within `within`."""
    horizon = now + within
    return [
        (record, lapses)
        for record, lapses in lapsing_consents(records, renewal_months)
        if lapses <= horizon
    ]


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


class RenewalsJob:
    """Hourly: the weekly list, if due, becomes a notice to the facilitators; each member due a
    reminder gets one, written down at once so it is never sent twice."""

    name = "renewals"

    def __init__(
        self, renewals: Renewals, notices: Notices, composer: Composer, relay: Relay
    ) -> None:
        self.renewals = renewals
        self.notices = notices
        self.composer = composer
        self.relay = relay
        self.every = Every(CHECK_EVERY)

    async def run(self, now: datetime) -> None:
        if not self.relay.ready or not self.every.due(now):
            return
        renewals = self.renewals
        consents = await anyio.to_thread.run_sync(renewals.consents)
        weekly = await anyio.to_thread.run_sync(renewals.weekly_due, now, consents)
        if weekly:
            text = renewals.weekly_text(weekly)
            await anyio.to_thread.run_sync(
                self.notices.add,
                Recipients.FACILITATORS.value,
                "Consents that lapse soon",
                text,
                now,
            )
        if weekly is not None:
            await anyio.to_thread.run_sync(renewals.weekly_done, now)
        for record, lapses in renewals.reminders_due(now, consents):
            address = address_of(record)
            if address is None:
                continue
            try:
                message = self.composer.renewal_reminder(record, lapses, address)
                await self.relay.send(message, address)
                await anyio.to_thread.run_sync(renewals.store.mark_reminded, record.reference, now)
            except Exception as error:  # noqa: BLE001 - this reminder's fault alone
                logger.error("Could not remind %s (%s)", record.reference, in_words(error))
                continue
            logger.info("Reminded %s to sign again", record.reference)

    def next_due_at(self) -> datetime | None:
        return self.every.next_due_at()
