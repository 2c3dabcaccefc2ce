"""The store: the minimal record of each delivered form (TinyDB, on the file store_file.py
keeps whole, under an exclusive lock so two server processes take turns).

Personal answers are sealed (sealing.py) before they reach the file, bound to their reference,
so a name or address typed into a form cannot be found in the raw file. In the clear stay only
what retention and lookup need: the reference, the form's kind, when it was received, delivered
and expires, and when a renewal reminder went.

Erasures are written to the ledger (ledger.py) as keyed hashes; at start, a record restored from
a backup after it was erased is erased again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from forms_server.config.decisions import default_retention_days
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.storage.files import exclusive_lock, private_folder
from forms_server.storage.ledger import ErasureReason, Ledger
from forms_server.storage.sealing import Sealer
from forms_server.storage.store_file import (
    META_TABLE,
    AtomicJSONStorage,
    StoreError,
    remove_temporary_files,
    restrict_to_owner,
    sealed_payload,
    upgrade_file,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredRecord:
    """What stays after delivery: the form's definition decides which answers, if any."""

    reference: str
    form_kind: str
    received_at: datetime
    delivered_at: datetime
    expires_at: datetime
    guidelines_version: str | None
    kept: dict[str, Any]  # only the fields marked `kept`, opened; empty for a concern
    reminded_at: datetime | None = None


def record_for(
    submission: Submission,
    delivered_at: datetime,
    retention_days: Mapping[str, int],
    sealer: Sealer,
) -> dict[str, Any]:
    """A form's minimal record, as the file keeps it: only what its definition keeps, sealed."""
    form = FORMS[submission.form_kind]
    kept = {
        spec.name: submission.answers[spec.name]
        for spec in form.fields
        if spec.kept and spec.name in submission.answers
    }
    return {
        "reference": submission.reference,
        "form_kind": submission.form_kind,
        "received_at": submission.received_at.isoformat(),
        "delivered_at": delivered_at.isoformat(),
        "expires_at": (
            submission.received_at + timedelta(days=retention_days[form.decision_group])
        ).isoformat(),
        "sealed": sealed_payload(sealer, submission.reference, kept, submission.guidelines_version),
        "reminded_at": None,
    }


def content_free(record: Mapping[str, Any]) -> StoredRecord:
    """What an erased record was, without opening what it kept."""
    return StoredRecord(
        reference=record["reference"],
        form_kind=record["form_kind"],
        received_at=datetime.fromisoformat(record["received_at"]),
        delivered_at=datetime.fromisoformat(record["delivered_at"]),
        expires_at=datetime.fromisoformat(record["expires_at"]),
        guidelines_version=None,
        kept={},
        reminded_at=datetime.fromisoformat(reminded)
        if (reminded := record.get("reminded_at"))
        else None,
    )


class SubmissionStore:
    """Delivered submissions, one minimal record per reference, personal fields sealed."""

    def __init__(
        self,
        data_dir: Path,
        data_keys: bytes | Sequence[bytes],
        retention_days: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        erasures_copy: Path | None = None,
    ) -> None:
        # Days each group of forms is kept: the group's decision (decisions.retention_months).
        self.retention_days = retention_days or default_retention_days()
        private_folder(data_dir)
        self.path = data_dir / "submissions.json"
        self.lock_path = data_dir / "submissions.lock"
        self.sealer = Sealer(data_keys)
        self.ledger = Ledger(data_dir, erasures_copy)
        self.clock = clock
        self.thread_lock = threading.Lock()
        with self.locked() as database:
            # Only the holder of the lock writes here: a temporary file seen now was left by a
            # writer that died.
            remove_temporary_files(data_dir)
            upgrade_file(database.storage, self.path, self.sealer)
        restrict_to_owner(self.path)
        self.reapply_erasures()

    @contextmanager
    def locked(self) -> Iterator[TinyDB]:
        with self.thread_lock, exclusive_lock(self.lock_path):
            database = TinyDB(str(self.path), storage=AtomicJSONStorage)
            try:
                yield database
            finally:
                database.close()

    def add_delivered_many(self, submissions: list[Submission], delivered_at: datetime) -> int:
        """Keeps the minimal records in one write (group commit); returns how many were new.
        A form that replaces an earlier one (a consent signed again) removes that one."""
        erased = {erasure.reference_hash for erasure in self.ledger.erasures()}
        replaced: list[dict[str, Any]] = []
        with self.locked() as database:
            known = {record["reference"] for record in database.all()}
            new_submissions = [
                submission
                for submission in submissions
                if submission.reference not in known
                and self.ledger.hash(submission.reference) not in erased
            ]
            new = [
                record_for(submission, delivered_at, self.retention_days, self.sealer)
                for submission in new_submissions
            ]
            if new:
                database.insert_multiple(new)
            old = sorted(
                {s.replaces for s in new_submissions if s.replaces and s.replaces in known}
            )
            if old:
                replaced = database.search(Query().reference.one_of(old))
                database.remove(Query().reference.one_of(old))
        for record in replaced:
            self.ledger.erased(
                record["reference"],
                record["form_kind"],
                delivered_at,
                ErasureReason.REPLACED,
                datetime.fromisoformat(record["expires_at"]),
            )
        return len(new)

    def add_delivered(self, submission: Submission, delivered_at: datetime) -> bool:
        """Keeps one minimal record; False when its reference was already there."""
        return self.add_delivered_many([submission], delivered_at) == 1

    def opened(self, record: Mapping[str, Any]) -> StoredRecord:
        sealed = record.get("sealed")
        payload = self.sealer.open(record["reference"], sealed) if sealed else {}
        return replace(
            content_free(record),
            guidelines_version=payload.get("guidelines_version"),
            kept=dict(payload.get("kept") or {}),
        )

    def get(self, reference: str) -> StoredRecord | None:
        with self.locked() as database:
            record = database.get(Query().reference == reference)
        if record is None or isinstance(record, list):
            return None
        return self.opened(record)

    def all(self) -> list[StoredRecord]:
        """Every record, opened: the store of a peer support group is small enough to read
        whole, and keeping no searchable index keeps nothing personal in the clear."""
        with self.locked() as database:
            records = database.all()
        return [self.opened(record) for record in records]

    def count(self) -> int:
        with self.locked() as database:
            return len(database)

    def erase(self, references: Iterable[str], reason: str) -> list[StoredRecord]:
        """Removes these records from the file, and writes each erasure to the ledger (which
        a restored backup cannot undo). Returns what was erased."""
        wanted = sorted(set(references))
        with self.locked() as database:
            found = database.search(Query().reference.one_of(wanted))
            database.remove(Query().reference.one_of(wanted))
        now = self.clock()
        erased = []
        for record in found:
            erased.append(content_free(record))
            self.ledger.erased(
                record["reference"],
                record["form_kind"],
                now,
                reason,
                datetime.fromisoformat(record["expires_at"]),
            )
        return erased

    def correct(self, reference: str, field: str, value: str) -> StoredRecord:
        """A kept value, fixed (the caller has validated it as the form would)."""
        with self.locked() as database:
            record = database.get(Query().reference == reference)
            if record is None or isinstance(record, list):
                raise StoreError(f"No record has the reference {reference}.")
            current = self.opened(record)
            kept = {**current.kept, field: value}
            database.update(
                {
                    "sealed": sealed_payload(
                        self.sealer, reference, kept, current.guidelines_version
                    )
                },
                Query().reference == reference,
            )
        return replace(current, kept=kept)

    def mark_reminded(self, reference: str, at: datetime) -> None:
        with self.locked() as database:
            database.update({"reminded_at": at.isoformat()}, Query().reference == reference)

    def reseal(self) -> int:
        """Every record sealed again with the newest data key, in one atomic write of the whole
        file (never emptied first): then the older keys open nothing here and can go."""
        count = 0
        with self.locked() as database:
            data = database.storage.read() or {}
            for name, table in data.items():
                if name == META_TABLE:
                    continue
                for record in table.values():
                    opened = self.opened(record)
                    record["sealed"] = sealed_payload(
                        self.sealer, opened.reference, opened.kept, opened.guidelines_version
                    )
                    count += 1
            database.storage.write(data)
        return count

    def reapply_erasures(self) -> int:
        """Records the ledger says were erased, brought back by a restored backup."""
        erased = {erasure.reference_hash for erasure in self.ledger.erasures()}
        if not erased:
            return 0
        with self.locked() as database:
            back = [
                record["reference"]
                for record in database.all()
                if self.ledger.hash(record["reference"]) in erased
            ]
            if back:
                database.remove(Query().reference.one_of(back))
        if back:
            logger.warning(
                "Erased %d record(s) again: they were restored from a backup after they had "
                "been erased",
                len(back),
            )
        return len(back)

    def purge_expired(self, now: datetime | None = None) -> list[str]:
        """Expired records leave the file (not flagged). The log says how many, nothing else.
        An expired consent leaves a content-free line in the ledger."""
        moment = now or self.clock()
        with self.locked() as database:
            expired = database.search(Query().expires_at <= moment.isoformat())
            database.remove(Query().expires_at <= moment.isoformat())
        for record in expired:
            # Content-free: which kind of record left, and a keyed hash of its reference.
            self.ledger.audit(
                "expired", moment, 1, how=record["form_kind"], reference=record["reference"]
            )
        logger.info("Purged %d expired records", len(expired))
        # The audit log goes as the longest-kept record does; an erasure line once no backup
        # can hold its record.
        self.ledger.purge(moment, timedelta(days=max(self.retention_days.values())))
        return [record["reference"] for record in expired]
