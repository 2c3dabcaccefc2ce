"""How each step a lifecycle rule names is done, on a form's files (lifecycle.Do): the
timer started or stopped, an escalation brought forward, the people it reached told, an erasure
held, carried out or done at once, link-only content erased, what is left forgotten."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from forms_server.lifecycle import Do, FormState, Rule
from forms_server.storage.acknowledgements import Acknowledgements
from forms_server.storage.conversations import Conversations
from forms_server.storage.held_erasures import HeldErasure, HeldErasures
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.notices import Notices
from forms_server.storage.outbox import Outbox
from forms_server.storage.outbox_items import ItemStatus, OutboxItem, RecipientState
from forms_server.storage.reading import ReadingRoom
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


class FormSteps:
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
        self.conversations = Conversations(data_dir, store.sealer)
        # How long a conversation is kept after its last message (the group's decision).
        self.conversation_kept = timedelta(days=30)
        self.notices = Notices(outbox)
        self.escalate_after = escalate_after
        # When the timers started since the worker last asked fall due (it wakes for them).
        self.timers_started: list[datetime] = []
        self.clock = clock

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

    # -- Doing -----------------------------------------------------------------------------

    def carry_out(
        self,
        state: FormState,
        rule: Rule,
        item: OutboxItem | None = None,
        reason: str = "",
        by: str = "",
        by_route: tuple[str, ...] = (),
        alert: RecipientState | None = None,
    ) -> Outcome:
        """Each step of the rule, in order. `by`: who caused it (never told of it);
        `by_route`: who the form went to, when its own files no longer say; `alert`: the
        member's "There is a message for you", if the rule sends it."""
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
                erased = self.finish_held_erasure(state, now, by_route)
            elif step is Do.ERASE:
                erased = self.erase(state, reason, now)
            elif step is Do.ERASE_READABLE:
                self.reading.erase(reference, now)
            elif step is Do.TELL_THE_MEMBER and alert is not None:
                self.conversations.alert_member(reference, alert, now)
            elif step is Do.CLOSE_CONVERSATION:
                self.conversations.close(reference, now)
            elif step is Do.FORGET_CONVERSATION:
                self.conversations.forget(reference)
            elif step is Do.FORGET_CLOSED_CONVERSATION:
                self.conversations.forget_if_closed(reference)
            elif step is Do.FORGET_NOTES:
                self.watch.forget(reference)
                self.reading.forget(reference)
                self.acknowledgements.forget(reference)
        return Outcome(rule, held, erased)

    def start_watch(self, item: OutboxItem, since: datetime) -> None:
        """From `since`, the group's time to pick it up; then it escalates."""
        after = self.escalate_after["urgent" if item.urgent else "other"]
        self.timers_started.append(since + after)
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

    def take_timers(self) -> list[datetime]:
        started, self.timers_started = self.timers_started, []
        return started

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
        its content in a failed outbox item, on the watch, behind a link-only email, and any
        conversation with the member about it."""
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
        if self.conversations.get(reference) is not None:
            self.conversations.forget(reference)
            erased = True
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

    def finish_held_erasure(
        self, state: FormState, now: datetime, by_route: tuple[str, ...] = ()
    ) -> bool:
        """Done once: whichever process claims the held erasure carries it out."""
        held = self.held.claim(state.reference)
        if held is None:
            return False
        try:
            erased = self.erase(state, held.reason, now)
        except OSError:
            self.held.hold(held)  # not done: it stays held, and is tried again
            raise
        self.tell(
            state.reference,
            "",
            f"Erased: ref {state.reference}",
            f"Form {state.reference} was asked to be erased on {held.asked_at:%-d %B %Y}. It was "
            "kept until someone picked it up, because it says someone may be at risk. The forms "
            f"server has now deleted it. Delete the email with reference {state.reference} from "
            "your mailbox too.\n",
            by_route,
        )
        logger.info("Carried out the erasure held back for %s", state.reference)
        self.store.ledger.audit("erase (held back, now done)", now, 1, reference=state.reference)
        return erased
