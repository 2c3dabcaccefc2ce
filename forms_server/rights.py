"""A member's rights, answered from everything the server holds: find, export, correct, erase.

Everything about a member lives in four places: the kept records (storage/records.py), forms
not yet delivered or whose delivery failed (storage/outbox.py), concerns or urgent notices
waiting to be picked up (storage/watch.py), and link-only forms (storage/reading.py). Each is
searched by opening its sealed values here, in memory: no index of names or addresses is ever
written. Each action writes one content-free audit line. An erasure is decided by the lifecycle
(lifecycle.py), like every other event in a form's life.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import FieldKind, validate_field
from forms_server.forms.reference import EXAMPLE_REFERENCE, normalise_reference
from forms_server.lifecycle import Do, Event, decide
from forms_server.storage.conversation_items import Conversation
from forms_server.storage.form_files import FormFiles
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.outbox_items import ItemStatus, OutboxItem
from forms_server.storage.reading import Readable
from forms_server.storage.records import StoredRecord
from forms_server.storage.watch import Watched

Clock = Callable[[], datetime]

KEPT = "kept record"
UNDELIVERED = "not yet delivered"
FAILED = "delivery failed, kept for a retry"
WATCHED = "waiting for someone to pick it up"
READABLE = "kept to be read from a link-only email"
CONVERSATION = "messages between the group and the member"


class RightsError(FormsServerError):
    """A request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Held:
    """One thing held about a member, wherever it is."""

    reference: str
    form_kind: str
    received_at: datetime
    where: str
    answers: dict[str, Any]
    guidelines_version: str | None = None
    expires_at: datetime | None = None
    # How the search matched it: "reference", "email address (Email address)", ...
    matched_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErasureReport:
    erased: list[Held] = field(default_factory=list)
    # (what, why): kept on purpose, and said so.
    held_back: list[tuple[Held, str]] = field(default_factory=list)


def is_name_field(kind: str, name: str) -> bool:
    spec = FORMS[kind].field_named(name)
    return spec.kind is FieldKind.TEXT and (
        spec.autocomplete.endswith("name") or spec.name.endswith("name")
    )


def matches(
    held: Held, email: str | None, reference: str | None, name: str | None
) -> tuple[str, ...]:
    found = []
    form = FORMS.get(held.form_kind)
    if reference is not None and held.reference == reference:
        found.append("reference")
    if form is None:
        return tuple(found)
    for spec in form.fields:
        value = held.answers.get(spec.name)
        if not isinstance(value, str) or not value:
            continue
        typed = value.strip().casefold()
        is_address = spec.kind in {FieldKind.EMAIL, FieldKind.PHONE_OR_EMAIL}
        if email and is_address and typed == email.strip().casefold():
            found.append(f"email address ({spec.short_name})")
        if name and is_name_field(held.form_kind, spec.name) and typed == name.strip().casefold():
            found.append(f"name ({spec.short_name})")
    return tuple(found)


def outbox_place(item: OutboxItem) -> str:
    return FAILED if item.status is ItemStatus.FAILED else UNDELIVERED


def kept_record(record: StoredRecord) -> Held:
    return Held(
        record.reference,
        record.form_kind,
        record.received_at,
        KEPT,
        record.kept,
        record.guidelines_version,
        record.expires_at,
    )


def held_back_because(until: datetime | None) -> str:
    """Why an erasure waits, and until when at the latest."""
    latest = f", or on {until:%-d %B %Y} at the latest (when its retention ends)" if until else ""
    return (
        "it says someone may be at risk and nobody has picked it up yet: it is erased when "
        f"someone marks it as being dealt with{latest}, whichever comes first"
    )


class Rights:
    def __init__(self, files: FormFiles, data_dir: Path) -> None:
        self.files = files
        self.store = files.store
        self.data_dir = data_dir
        self.outbox = files.outbox
        self.watch = files.watch
        self.reading = files.reading
        self.conversations = files.conversations
        self.clock = files.clock
        self.ledger = files.store.ledger

    # -- Everything held ---------------------------------------------------------------------

    def opened(
        self,
        item: OutboxItem | Watched | Readable,
        where: str,
        expires_at: datetime | None = None,
    ) -> Held:
        values = self.store.sealer.open(item.reference, item.sealed)
        return Held(
            item.reference,
            item.form_kind,
            item.received_at,
            where,
            values["answers"],
            values.get("guidelines_version"),
            expires_at,
        )

    def everything(self) -> list[Held]:
        """Every kept record, and every sealed form still on its way, failed, watched or
        waiting to be read, opened."""
        return [
            *(kept_record(record) for record in self.store.all()),
            *(
                self.opened(item, outbox_place(item))
                for item in self.outbox.pending().items
                if item.sealed
            ),
            *(self.opened(watched, WATCHED) for watched in self.watch.all() if watched.sealed),
            *(
                self.opened(readable, READABLE, readable.until)
                for readable in self.reading.all()
                if readable.sealed
            ),
            *(self.conversation_held(c) for c in self.conversations.each() if c.sealed),
        ]

    def conversation_held(self, conversation: Conversation) -> Held:
        """The messages with the member, each as who wrote it, when, and what."""
        messages, told = self.conversations.contents(conversation)
        return Held(
            conversation.reference,
            conversation.form_kind,
            conversation.created_at,
            CONVERSATION,
            {
                **{
                    f"message {number}": f"{'the group' if m.by == 'group' else 'the member'}, "
                    f"{m.at:%-d %B %Y %H:%M} UTC: {m.text}"
                    for number, m in enumerate(messages, start=1)
                },
                **({"email address to tell of a new message": told} if told else {}),
            },
        )

    def held_of(self, reference: str) -> list[Held]:
        """What is held under one reference, opening only that reference's files."""
        held = []
        record = self.store.get(reference)
        if record is not None:
            held.append(kept_record(record))
        item = self.outbox.read(reference)
        if item is not None and item.sealed:
            held.append(Held(reference, item.form_kind, item.received_at, outbox_place(item), {}))
        readable = self.reading.get(reference)
        if readable is not None and readable.sealed:
            held.append(Held(reference, readable.form_kind, readable.received_at, READABLE, {}))
        watched = self.watch.get(reference)
        if watched is not None and watched.sealed:
            held.append(Held(reference, watched.form_kind, watched.received_at, WATCHED, {}))
        conversation = self.conversations.get(reference)
        if conversation is not None and conversation.sealed:
            held.append(
                Held(reference, conversation.form_kind, conversation.created_at, CONVERSATION, {})
            )
        return held

    def find(
        self,
        email: str | None = None,
        reference: str | None = None,
        name: str | None = None,
        audit_as: str = "find",
    ) -> list[Held]:
        if reference is not None:
            normal = normalise_reference(reference)
            if normal is None:
                raise RightsError(
                    f"{reference!r} is not a reference: references look like {EXAMPLE_REFERENCE}."
                )
            reference = normal
        if not (email or reference or name):
            raise RightsError("Say who to look for: --email, --reference or --name.")
        found = []
        for held in self.everything():
            how = matches(held, email, reference, name)
            if how:
                found.append(replace(held, matched_by=how))
        how_asked = "reference" if reference else "email" if email else "name"
        self.ledger.audit(
            audit_as, self.clock(), len(found), person=email or name or reference, how=how_asked
        )
        return sorted(found, key=lambda held: held.received_at)

    # -- Correct -----------------------------------------------------------------------------

    def correct(self, reference: str, field_name: str, value: str) -> StoredRecord:
        """A kept value, checked exactly as the form checks it."""
        normal = normalise_reference(reference)
        record = self.store.get(normal) if normal else None
        if record is None:
            raise RightsError(f"No kept record has the reference {reference}.")
        form = FORMS[record.form_kind]
        kept_names = [spec.name for spec in form.fields if spec.kept]
        if field_name not in kept_names or field_name not in record.kept:
            raise RightsError(
                f"{record.reference} ({form.email_name}) keeps no value called {field_name!r}. "
                f"It keeps: {', '.join(name for name in kept_names if name in record.kept)}."
            )
        spec = form.field_named(field_name)
        if spec.kind in {FieldKind.AGREE, FieldKind.RADIOS}:
            raise RightsError(
                f"{spec.short_name} is an agreement or a choice the member made: it cannot be "
                "corrected. Ask the member to send the form again."
            )
        checked, error = validate_field(spec, value)
        if error:
            raise RightsError(f"{error}.")
        corrected = self.store.correct(record.reference, field_name, str(checked))
        self.ledger.audit("correct", self.clock(), 1, reference=record.reference, how=field_name)
        return corrected

    # -- Erase -------------------------------------------------------------------------------

    def erase(
        self,
        found: Iterable[Held],
        reason: str = ErasureReason.ERASED,
        event: Event = Event.ERASE_ASKED,
        dry_run: bool = False,
    ) -> ErasureReport:
        """Each form, as the lifecycle decides (lifecycle.py): erased now, or held back and
        why (with `dry_run`, what would happen, and nothing changes)."""
        report = ErasureReport()
        by_reference: dict[str, list[Held]] = {}
        for held in found:
            by_reference.setdefault(held.reference, []).append(held)
        for reference, helds in by_reference.items():
            state = self.files.state_of(reference)
            if state is None:
                continue
            rule = decide(state, event)
            if not dry_run:
                outcome = self.files.carry_out(state, rule, reason=reason)
                rule = outcome.rule
            until = state.kept_until
            if Do.HOLD_ERASURE in rule.then:
                why = held_back_because(until)
                report.held_back.extend((held, why) for held in helds)
            elif Do.WAIT_FOR_DELIVERY in rule.then:
                why = (
                    "it is still being delivered: run this again once `forms-server outbox` no "
                    "longer lists it"
                )
                report.held_back.extend((held, why) for held in helds)
            else:
                report.erased.extend(helds)
        if not dry_run:
            erased = len({held.reference for held in report.erased})
            self.ledger.audit("erase", self.clock(), erased, how=reason)
        return report

    # -- Keys --------------------------------------------------------------------------------

    def reseal(self) -> int:
        """Every sealed value, sealed again with the newest data key. The worker's turn is
        held throughout, so no delivery writes an item back with its old seal meanwhile."""
        sealer = self.store.sealer

        def again(reference: str, sealed: str) -> str:
            return sealer.seal(reference, sealer.open(reference, sealed))

        with self.outbox.worker_turn(wait=True):
            count = self.store.reseal()
            for item in self.outbox.pending().items:
                if item.sealed:
                    self.outbox.save(replace(item, sealed=again(item.reference, item.sealed)))
                    count += 1
            for watched in self.watch.all():
                if watched.sealed:
                    self.watch.replace(
                        replace(watched, sealed=again(watched.reference, watched.sealed))
                    )
                    count += 1
            for readable in self.reading.all():
                if readable.sealed:
                    self.reading.reseal(
                        readable.reference, again(readable.reference, readable.sealed)
                    )
                    count += 1
            count += self.conversations.reseal(again)
        self.ledger.audit("keys rotate", self.clock(), count)
        return count
