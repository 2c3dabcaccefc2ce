"""Every file one form has, read as one state and changed as the lifecycle decides.

A form's life is spread over several folders (the outbox, the watch, link-only copies,
acknowledgements, held erasures, the kept record and the ledger). `FormFiles.state_of` reads
them into a `lifecycle.FormState`; `FormFiles.carry_out` does what a rule says. The worker's
jobs, the web pages and the command line all come through here, so what an event does is
decided in one table (lifecycle.py) and done in one place (this module).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from forms_server.forms.definitions import FORMS
from forms_server.lifecycle import Do, Event, FormState, Rule, decide, needs_picking_up
from forms_server.storage.acknowledgements import Acknowledgement
from forms_server.storage.form_steps import FormSteps, Outcome
from forms_server.storage.outbox import Quarantined
from forms_server.storage.outbox_items import ItemStatus, OutboxItem, RecipientState
from forms_server.storage.reading import Readable
from forms_server.storage.watch import Watched

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class FormFiles(FormSteps):
    """Every file of a form (the steps are FormSteps'): its state, and the events."""

    # -- Reading ---------------------------------------------------------------------------

    def kept_until(self, form_kind: str, received_at: datetime) -> datetime:
        form = FORMS.get(form_kind)
        days = self.store.retention_days.get(form.decision_group if form else "", 0) or max(
            self.store.retention_days.values()
        )
        return received_at + timedelta(days=days)

    def state_of(self, reference: str) -> FormState | None:
        """None when nothing is held under this reference."""
        item = self.outbox.read(reference)
        watched = self.watch.get(reference)
        readable = self.reading.get(reference)
        record = self.store.get(reference)
        held = self.held.get(reference)
        known = item or watched or readable
        if known is not None:
            kind, urgent, received_at = known.form_kind, known.urgent, known.received_at
        elif record is not None:
            kind, urgent, received_at = record.form_kind, False, record.received_at
        elif held is not None:
            kind, urgent, received_at = held.form_kind, False, held.asked_at
        elif (conversation := self.conversations.get(reference)) is not None:
            kind, urgent, received_at = conversation.form_kind, False, conversation.created_at
        elif (acknowledged := self.acknowledgements.get(reference)) is not None:
            # Only who picked it up is left: it goes when the form's record would have.
            kind, urgent, received_at = acknowledged.form_kind, False, acknowledged.at
        else:
            return None
        return FormState(
            reference=reference,
            form_kind=kind,
            urgent=urgent,
            needs_picking_up=needs_picking_up(kind, urgent),
            being_delivered=item is not None and item.status is ItemStatus.PENDING,
            picked_up=self.acknowledgements.get(reference) is not None,
            escalated=watched is not None and watched.escalated_at is not None,
            erasure_held=held is not None,
            kept_until=record.expires_at if record else self.kept_until(kind, received_at),
        )

    # -- Events ----------------------------------------------------------------------------

    def happen(
        self,
        reference: str,
        event: Event,
        reason: str = "",
        by: str = "",
        alert: RecipientState | None = None,
    ) -> Outcome | None:
        """The event, as the lifecycle decides it for this form; None if nothing is held.
        `alert`: the member's "There is a message for you", if the rule sends it."""
        state = self.state_of(reference)
        if state is None:
            return None
        return self.carry_out(state, decide(state, event), reason=reason, by=by, alert=alert)

    def pick_up(
        self, reference: str, form_kind: str, by: str, by_route: tuple[str, ...] = ()
    ) -> tuple[Acknowledgement, bool]:
        """Records who picked it up (the first stands) and, if this is the first, does what a
        pick-up does. `by_route`: who it went to, for a form whose files no longer say."""
        # Who it reached, read before the pick-up is on disk: from then on another process may
        # stop its timer, and with it the note of who had it.
        everyone = self.reached(reference) or by_route
        acknowledgement, first = self.acknowledgements.record(
            reference, form_kind, by, self.clock()
        )
        state = self.state_of(reference) if first else None
        if state is not None:
            self.carry_out(state, decide(state, Event.PICKED_UP), by=by, by_route=everyone)
        return acknowledgement, first

    def asked(
        self, reference: str, by: str, question: str, alert: RecipientState | None = None
    ) -> None:
        """A recipient's question to the member (LookupError if there is no conversation);
        `alert`: "There is a message for you", if the lifecycle sends one."""
        self.conversations.add(reference, "group", question, self.clock())
        self.happen(reference, Event.ASKED, by=by, alert=alert)

    def answered(
        self, reference: str, answer: str, now: datetime, to: tuple[RecipientState, ...]
    ) -> None:
        """The member's answer, on its way to `to`: everyone the form went to, by its routes."""
        self.conversations.add(reference, "member", answer, now, to)
        self.happen(reference, Event.ANSWERED)

    def readable_now(self, readable: Readable, now: datetime) -> bool:
        """Its content is here, and its window is open, or the lifecycle keeps it readable."""
        if not readable.sealed:
            return False
        if now < readable.until:
            return True
        state = self.state_of(readable.reference)
        return state is not None and Do.KEEP_READABLE in decide(state, Event.READ_WINDOW_ENDED).then

    def delivered(self, item: OutboxItem) -> None:
        """Every recipient has it and its record is kept: watch it if it must be picked up,
        then let its content go from the outbox."""
        state = FormState(
            item.reference,
            item.form_kind,
            item.urgent,
            needs_picking_up(item.form_kind, item.urgent),
            picked_up=self.acknowledgements.get(item.reference) is not None,
            erasure_held=self.held.get(item.reference) is not None,
        )
        self.carry_out(state, decide(state, Event.DELIVERED), item=item)
        self.outbox.finish(item.reference)

    def reached_nobody(self, item: OutboxItem) -> Rule:
        state = FormState(
            item.reference,
            item.form_kind,
            item.urgent,
            needs_picking_up(item.form_kind, item.urgent),
        )
        rule = decide(state, Event.REACHED_NOBODY)
        self.carry_out(state, rule, item=item)
        return rule

    def found_unreadable(self, found: Quarantined) -> Rule | None:
        if found.reference is None or found.form_kind is None:
            return None
        state = FormState(found.reference, found.form_kind, found.urgent, found.urgent)
        rule = decide(state, Event.FOUND_UNREADABLE)
        if Do.ESCALATE_NOW in rule.then:
            self.watch.start(
                Watched(
                    reference=found.reference,
                    form_kind=found.form_kind,
                    received_at=found.received_at or self.clock(),
                    urgent=True,
                    sealed=found.sealed,
                    escalate_at=self.clock(),
                    unreadable=True,
                )
            )
        return rule
