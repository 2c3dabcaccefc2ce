"""Every file one form has, read as one state and changed as the lifecycle decides.

A form's life is spread over several folders (the outbox, the watch, link-only copies,
acknowledgements, held erasures, the kept record and the ledger). `FormFiles.state_of` reads
them into a `lifecycle.FormState`; `FormFiles.carry_out` does what a rule says. The worker's
jobs, the web pages and the command line all come through here, so what an event does is
decided in one table (lifecycle.py) and done in one place (this module).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from forms_server.forms.definitions import FORMS
from forms_server.lifecycle import Do, Event, FormState, Rule, decide, needs_picking_up
from forms_server.storage.acknowledgements import Acknowledgement, Acknowledgements
from forms_server.storage.held_erasures import HeldErasure, HeldErasures
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.notices import Notices
from forms_server.storage.outbox import ItemStatus, Outbox, OutboxItem, Quarantined
from forms_server.storage.reading import Readable, ReadingRoom
from forms_server.storage.records import SubmissionStore
from forms_server.storage.watch import Watch, Watched

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """What carrying out a rule came to, for the page or the command line to say."""

    rule: Rule
    held: HeldErasure | None = None
    erased: bool = False


class FormFiles:
    def __init__(
        self,
        data_dir: Path,
        store: SubmissionStore,
        outbox: Outbox,
        escalate_after: Mapping[str, timedelta],
        read_window: timedelta,
        clock: Clock,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.watch = Watch(data_dir)
        self.reading = ReadingRoom(data_dir, read_window)
        self.acknowledgements = Acknowledgements(data_dir)
        self.held = HeldErasures(data_dir)
        self.notices = Notices(outbox)
        self.escalate_after = escalate_after
        self.clock = clock

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

    def reached(self, reference: str) -> tuple[str, ...]:
        """Everyone who has the form: its recipients so far and the escalation contacts."""
        item = self.outbox.read(reference)
        watched = self.watch.get(reference)
        addresses = [
            *(item.reached if item else ()),
            *(watched.reached if watched else ()),
            *(watched.escalated_to if watched else ()),
        ]
        return tuple(dict.fromkeys(addresses))

    # -- Events ----------------------------------------------------------------------------

    def happen(
        self, reference: str, event: Event, reason: str = "", by: str = ""
    ) -> Outcome | None:
        """The event, as the lifecycle decides it for this form; None if nothing is held."""
        state = self.state_of(reference)
        if state is None:
            return None
        return self.carry_out(state, decide(state, event), reason=reason, by=by)

    def pick_up(
        self, reference: str, form_kind: str, by: str, by_route: tuple[str, ...] = ()
    ) -> tuple[Acknowledgement, bool]:
        """Records who picked it up (the first stands) and, if this is the first, does what a
        pick-up does. `by_route`: who it went to, for a form whose files no longer say."""
        acknowledgement, first = self.acknowledgements.record(
            reference, form_kind, by, self.clock()
        )
        state = self.state_of(reference) if first else None
        if state is not None:
            self.carry_out(state, decide(state, Event.PICKED_UP), by=by, by_route=by_route)
        return acknowledgement, first

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

    # -- Doing -----------------------------------------------------------------------------

    def carry_out(
        self,
        state: FormState,
        rule: Rule,
        item: OutboxItem | None = None,
        reason: str = "",
        by: str = "",
        by_route: tuple[str, ...] = (),
    ) -> Outcome:
        """Each step of the rule, in order. `by`: who caused it (never told of it);
        `by_route`: who the form went to, when its own files no longer say."""
        now = self.clock()
        reference = state.reference
        held = None
        erased = False
        for step in rule.then:
            if step is Do.START_WATCH and item is not None:
                self.start_watch(item, item.received_at)
            elif step is Do.ESCALATE_NOW:
                self.escalate_now(reference, item, now)
            elif step is Do.STOP_WATCH:
                self.watch.forget(reference)
            elif step is Do.TELL_EVERYONE_REACHED:
                self.tell(
                    reference,
                    by,
                    f"In hand: ref {reference}",
                    f"{by} has marked form {reference} as being dealt with.\n",
                    by_route,
                )
            elif step is Do.HOLD_ERASURE:
                held = self.held.hold(
                    HeldErasure(reference, state.form_kind, reason, now, state.kept_until or now)
                )
            elif step is Do.FINISH_HELD_ERASURE:
                erased = self.finish_held_erasure(state, now)
            elif step is Do.ERASE:
                erased = self.erase(state, reason, now)
            elif step is Do.ERASE_READABLE:
                self.reading.erase(reference, now)
            elif step is Do.FORGET_NOTES:
                self.watch.forget(reference)
                self.reading.forget(reference)
                self.acknowledgements.forget(reference)
        return Outcome(rule, held, erased)

    def start_watch(self, item: OutboxItem, since: datetime) -> None:
        """From `since`, the group's time to pick it up; then it escalates."""
        after = self.escalate_after["urgent" if item.urgent else "other"]
        self.watch.start(
            Watched(
                reference=item.reference,
                form_kind=item.form_kind,
                received_at=item.received_at,
                urgent=item.urgent,
                sealed=item.sealed,
                escalate_at=since + after,
                reached=item.reached,
            )
        )

    def escalate_now(self, reference: str, item: OutboxItem | None, now: datetime) -> None:
        watched = self.watch.get(reference)
        if watched is not None:
            if watched.escalate_at > now:
                self.watch.replace(replace(watched, escalate_at=now))
        elif item is not None and item.sealed:
            self.start_watch(item, now - self.escalate_after["urgent" if item.urgent else "other"])

    def tell(
        self, reference: str, by: str, subject: str, text: str, by_route: tuple[str, ...] = ()
    ) -> None:
        """A content-free notice to everyone the form reached, except whoever caused it."""
        everyone = self.reached(reference) or by_route
        addresses = tuple(dict.fromkeys(a for a in everyone if a.lower() != by.lower()))
        if addresses:
            self.notices.add("", subject, text, self.clock(), addresses=addresses)

    def erase(self, state: FormState, reason: str, now: datetime) -> bool:
        """Everything held about the form: its kept record (the ledger remembers the erasure),
        its content in a failed outbox item, on the watch and behind a link-only email."""
        reference = state.reference
        erased = (
            bool(self.store.erase([reference], reason))
            if reason != ErasureReason.RETENTION_ENDED
            else False
        )
        item = self.outbox.read(reference)
        if item is not None and item.sealed and item.status is ItemStatus.FAILED:
            self.outbox.save(replace(item, sealed="", content_erased_at=now))
            erased = True
        erased = self.reading.erase(reference, now) or erased
        watched = self.watch.get(reference)
        if watched is not None and watched.sealed:
            self.watch.replace(replace(watched, sealed=""))
            erased = True
        asked = reason != ErasureReason.RETENTION_ENDED
        if erased and asked and self.store.ledger.erasure_of(reference) is None:
            # Nothing of it was in the store (a concern keeps no record of its own): the ledger
            # still remembers, so a restored backup cannot bring anything back.
            self.store.ledger.erased(
                reference, state.form_kind, now, reason, state.kept_until or now
            )
        return erased

    def finish_held_erasure(self, state: FormState, now: datetime) -> bool:
        held = self.held.get(state.reference)
        if held is None:
            return False
        erased = self.erase(state, held.reason, now)
        self.tell(
            state.reference,
            "",
            f"Erased: ref {state.reference}",
            f"Form {state.reference} was asked to be erased on {held.asked_at:%-d %B %Y}. It was "
            "kept until someone picked it up, because it says someone may be at risk. The forms "
            f"server has now deleted it. Delete the email with reference {state.reference} from "
            "your mailbox too.\n",
        )
        self.held.release(state.reference)
        logger.info("Carried out the erasure held back for %s", state.reference)
        self.store.ledger.audit("erase (held back, now done)", now, 1, reference=state.reference)
        return erased
