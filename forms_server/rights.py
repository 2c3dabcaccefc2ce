"""A member's rights, answered from everything the server holds: find, export, correct, erase.

Everything about a member lives in three places: the kept records (store.py), forms not yet
delivered or whose delivery failed (outbox.py), and concerns or urgent notices waiting to be
picked up (escalation.py). Each is searched by opening its sealed values here, in memory: no
index of names or addresses is ever written. Each action writes one content-free audit line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.config.decisions import days_in_months
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS, FieldKind, display_value, validate_field
from forms_server.forms.reference import normalise_reference
from forms_server.handbook.guidelines import archived_version
from forms_server.storage.ledger import ErasureReason
from forms_server.storage.outbox import ItemStatus, Outbox, OutboxItem
from forms_server.storage.reading import Readable, ReadingRoom
from forms_server.storage.records import StoredRecord, SubmissionStore
from forms_server.storage.watch import Watch, Watched

Clock = Callable[[], datetime]

KEPT = "kept record"
UNDELIVERED = "not yet delivered"
FAILED = "delivery failed, kept for a retry"
WATCHED = "waiting for someone to pick it up"
READABLE = "kept to be read from a link-only email"

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def formula_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class Rights:
    def __init__(self, store: SubmissionStore, data_dir: Path, clock: Clock | None = None) -> None:
        self.store = store
        self.data_dir = data_dir
        self.outbox = Outbox(data_dir)
        self.watch = Watch(data_dir)
        self.reading = ReadingRoom(data_dir)
        self.clock = clock or store.clock
        self.ledger = store.ledger

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
        ]

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
                    f"{reference!r} is not a reference: references look like 4KX-7QD-M2P."
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

    # -- Export ------------------------------------------------------------------------------

    def rows(self, held: Held) -> list[tuple[str, str]]:
        """(question, answer) in the form's order, as the member saw them."""
        form = FORMS.get(held.form_kind)
        if form is None:
            return [(name, str(value)) for name, value in held.answers.items()]
        return [
            (spec.short_name, display_value(spec, held.answers[spec.name]))
            for spec in form.fields
            if spec.name in held.answers and held.answers[spec.name] not in ("", [])
        ]

    def guidelines_in_words(self, version: str | None) -> str | None:
        if version is None:
            return None
        archived = archived_version(self.data_dir, version)
        when = f"as they were on {archived.in_words}" if archived else "version not archived"
        return f"{when} (version {version}, kept in guidelines/{version}.json)"

    def export_json(self, found: Iterable[Held]) -> str:
        records = [
            {
                "reference": held.reference,
                "form": FORMS[held.form_kind].email_name
                if held.form_kind in FORMS
                else held.form_kind,
                "received": held.received_at.isoformat(),
                "where": held.where,
                "deleted_by": held.expires_at.isoformat() if held.expires_at else None,
                "guidelines_agreed": self.guidelines_in_words(held.guidelines_version),
                "answers": dict(self.rows(held)),
                "matched_by": list(held.matched_by),
            }
            for held in found
        ]
        return json.dumps(
            {"exported_at": self.clock().isoformat(), "records": records},
            indent=2,
            ensure_ascii=False,
        )

    def export_csv(self, found: Iterable[Held]) -> str:
        """One row per answer; every cell safe to open in a spreadsheet."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["reference", "form", "received", "where", "question", "answer"])
        for held in found:
            form_name = FORMS[held.form_kind].email_name if held.form_kind in FORMS else ""
            rows = self.rows(held)
            agreed = self.guidelines_in_words(held.guidelines_version)
            if agreed:
                rows.append(("Guidelines agreed", agreed))
            for question, answer in rows:
                writer.writerow(
                    [
                        formula_safe(cell)
                        for cell in (
                            held.reference,
                            form_name,
                            held.received_at.isoformat(),
                            held.where,
                            question,
                            answer,
                        )
                    ]
                )
        return out.getvalue()

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

    def erase(self, found: Iterable[Held], reason: str = ErasureReason.ERASED) -> ErasureReport:
        report = ErasureReport()
        kept = []
        for held in found:
            if held.where == KEPT:
                kept.append(held)
            elif held.where == FAILED:
                self.erase_failed_content(held.reference)
                report.erased.append(held)
            elif held.where == READABLE:
                self.reading.erase(held.reference, self.clock())
                report.erased.append(held)
            elif held.where == WATCHED:
                report.held_back.append(
                    (
                        held,
                        "it says someone may be at risk and nobody has picked it up yet: it is "
                        "kept until someone does, then deleted",
                    )
                )
            else:
                report.held_back.append(
                    (
                        held,
                        "it is still being delivered: run this again once `forms-server "
                        "outbox` no longer lists it",
                    )
                )
        erased_now = {
            record.reference
            for record in self.store.erase([held.reference for held in kept], reason)
        }
        report.erased.extend(held for held in kept if held.reference in erased_now)
        self.ledger.audit("erase", self.clock(), len(report.erased), how=reason)
        return report

    def erase_failed_content(self, reference: str) -> None:
        item = self.outbox.read(reference)
        if item is not None and item.sealed:
            self.outbox.save(replace(item, sealed="", content_erased_at=self.clock()))

    # -- Keys --------------------------------------------------------------------------------

    def reseal(self) -> int:
        """Every sealed value, sealed again with the newest data key."""
        sealer = self.store.sealer
        count = self.store.reseal()
        for item in self.outbox.pending().items:
            if item.sealed:
                opened = sealer.open(item.reference, item.sealed)
                self.outbox.save(replace(item, sealed=sealer.seal(item.reference, opened)))
                count += 1
        for watched in self.watch.all():
            if watched.sealed:
                opened = sealer.open(watched.reference, watched.sealed)
                self.watch.replace(replace(watched, sealed=sealer.seal(watched.reference, opened)))
                count += 1
        for readable in self.reading.all():
            if readable.sealed:
                opened = sealer.open(readable.reference, readable.sealed)
                self.reading.reseal(readable.reference, sealer.seal(readable.reference, opened))
                count += 1
        self.ledger.audit("keys rotate", self.clock(), count)
        return count

    # -- Consents that expire ----------------------------------------------------------------

    def consents_expiring(
        self, within: timedelta, renewal_months: int | None
    ) -> list[tuple[StoredRecord, datetime]]:
        """Each consent whose record is deleted, or whose renewal falls due, within `within`:
        the record, and that date."""
        horizon = self.clock() + within
        return [
            (record, lapses)
            for record, lapses in lapsing_consents(self.store.all(), renewal_months)
            if lapses <= horizon
        ]


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
