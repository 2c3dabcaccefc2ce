"""The store: the minimal record of each delivered form, in TinyDB on a storage that never
leaves a broken file.

TinyDB's own JSONStorage rewrites its file in place, so a crash mid-write leaves invalid JSON, and
two processes writing one file corrupt it. `AtomicJSONStorage` writes whole new files (files.py)
under an exclusive lock on a separate lock file, so every reader sees a whole old file or a whole
new one, and two server processes take turns. A file that cannot be read (empty, not JSON, not a
TinyDB database, a folder) stops start-up with one clear message and is kept exactly as it is.

Personal answers are sealed (sealing.py) before they reach the file, bound to their reference,
so a name or address typed into a form cannot be found in the raw file. In the clear stay only
what retention and lookup need: the reference, the form's kind, when it was received, delivered
and expires, and when a renewal reminder went.

The file carries its format in a `meta` table. Format 1 (the first version) kept the guidelines
version in the clear; opening it upgrades it in place to format 2 in one atomic write, so a crash
leaves either the old file or the new one. A file from a newer version is refused, untouched.

Erasures are written to the ledger (ledger.py) as keyed hashes; at start, a record restored from
a backup after it was erased is erased again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from forms_server.config.decisions import default_retention_days
from forms_server.errors import FormsServerError
from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.storage.files import exclusive_lock, replace_atomically
from forms_server.storage.ledger import ErasureReason, Ledger
from forms_server.storage.sealing import Sealer

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("reference", "form_kind", "received_at", "delivered_at", "expires_at")
STORE_FORMAT = 2
META_TABLE = "meta"


class StoreError(FormsServerError):
    """The store cannot be used; the message says what to do."""


class StoreCorruptError(StoreError):
    pass


def unreadable(path: Path, why: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"{path} {why}. It has been left exactly as it is. Restore it from a backup, or move "
        "it aside to start with an empty store."
    )


def checked_database(path: Path, data: object) -> dict[str, dict[str, Any]]:
    """TinyDB's shape: tables of documents keyed by id, and our records' own fields."""
    if not isinstance(data, dict):
        raise unreadable(path, "does not hold a TinyDB database")
    for name, table in data.items():
        if name == META_TABLE:
            continue
        if not isinstance(table, dict):
            raise unreadable(path, "does not hold a TinyDB database")
        for record in table.values():
            if not isinstance(record, dict) or any(
                not isinstance(record.get(name), str) for name in RECORD_FIELDS
            ):
                raise unreadable(path, "holds a record that is not one of ours")
    return data


def read_own_file(path: Path) -> bytes:
    """The file's bytes, never through a symbolic link (ELOOP): a link could lead anywhere."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def restrict_to_owner(path: Path) -> None:
    """Readable by its owner only; never through a link, and never fatal: a read-only folder
    keeps its modes, and the health check says it cannot be written."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    except OSError as error:
        logger.warning(
            "Could not make %s readable by its owner only (%s)", path.name, error.strerror
        )
    finally:
        os.close(descriptor)


class AtomicJSONStorage(Storage):
    """A TinyDB storage whose file is always either the old version or the new one, whole."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = read_own_file(self.path)
        except FileNotFoundError:
            return None
        except IsADirectoryError as error:
            raise unreadable(self.path, "is a folder, not a file") from error
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise unreadable(
                    self.path, "is a symbolic link: the store must be a file in the data folder"
                ) from error
            raise unreadable(self.path, f"cannot be read ({error.strerror})") from error
        if not raw:
            # We never write an empty file (a new store has no file at all): something
            # truncated it, and treating it as empty would hide the loss.
            raise unreadable(self.path, "is empty")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise unreadable(self.path, "is not valid JSON") from error
        return checked_database(self.path, data)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        replace_atomically(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))

    def close(self) -> None:
        pass


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


def upgraded_from_first_format(
    data: dict[str, dict[str, Any]], sealer: Sealer
) -> dict[str, dict[str, Any]]:
    """Format 1 to 2: the guidelines version moves inside the sealed value."""
    upgraded: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        upgraded[name] = {}
        for document_id, record in table.items():
            reference = record["reference"]
            kept = sealer.open(reference, record["kept"]) if record.get("kept") else {}
            version = record.get("guidelines_version")
            upgraded[name][document_id] = {
                **{field: record[field] for field in RECORD_FIELDS},
                "sealed": sealed_payload(sealer, reference, kept, version),
                "reminded_at": None,
            }
    upgraded[META_TABLE] = {"1": {"format": STORE_FORMAT}}
    return upgraded


def sealed_payload(
    sealer: Sealer, reference: str, kept: Mapping[str, Any], guidelines_version: str | None
) -> str | None:
    if not kept and guidelines_version is None:
        return None
    return sealer.seal(reference, {"kept": dict(kept), "guidelines_version": guidelines_version})


class SubmissionStore:
    """Delivered submissions, one minimal record per reference, personal fields sealed."""

    def __init__(
        self,
        data_dir: Path,
        data_keys: bytes | Sequence[bytes],
        retention_days: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Days each group of forms is kept: the group's decision (decisions.retention_months).
        self.retention_days = retention_days or default_retention_days()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = data_dir / "submissions.json"
        self.lock_path = data_dir / "submissions.lock"
        self.sealer = Sealer(data_keys)
        self.ledger = Ledger(data_dir)
        self.clock = clock
        self.thread_lock = threading.Lock()
        with self.locked() as database:
            # Only the holder of the lock writes here, so any temporary file seen while holding
            # it was left by a writer that died.
            for stale in data_dir.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
                logger.info("Removed a temporary file left by an interrupted write")
            self.upgrade(database)
        restrict_to_owner(self.path)
        again = self.reapply_erasures()
        if again:
            logger.warning(
                "Erased %d record(s) again: they were restored from a backup after they had "
                "been erased",
                again,
            )

    @contextmanager
    def locked(self) -> Iterator[TinyDB]:
        with self.thread_lock, exclusive_lock(self.lock_path):
            database = TinyDB(str(self.path), storage=AtomicJSONStorage)
            try:
                yield database
            finally:
                database.close()

    def upgrade(self, database: TinyDB) -> None:
        """Brings an older file to this format in one atomic write (an unreadable file stops
        start-up here, and is kept)."""
        storage = database.storage
        data = storage.read()
        if data is None:
            storage.write({META_TABLE: {"1": {"format": STORE_FORMAT}}})
            return
        meta = data.get(META_TABLE, {}).get("1", {})
        found = meta.get("format", 1) if isinstance(meta, dict) else None
        if found == STORE_FORMAT:
            return
        if found != 1:
            raise StoreError(
                f"{self.path} was written in format {found!r}; this version reads up to "
                f"format {STORE_FORMAT}. It has been left exactly as it is: run the newer "
                "version of the forms server."
            )
        try:
            upgraded = upgraded_from_first_format(data, self.sealer)
        except (KeyError, TypeError) as error:
            raise unreadable(self.path, "holds a record that is not one of ours") from error
        storage.write(upgraded)
        logger.info("Upgraded the store from format 1 to format %d", STORE_FORMAT)

    def record_for(self, submission: Submission, delivered_at: datetime) -> dict[str, Any]:
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
                submission.received_at + timedelta(days=self.retention_days[form.decision_group])
            ).isoformat(),
            "sealed": sealed_payload(
                self.sealer, submission.reference, kept, submission.guidelines_version
            ),
            "reminded_at": None,
        }

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
            new = [self.record_for(submission, delivered_at) for submission in new_submissions]
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
        reminded = record.get("reminded_at")
        return StoredRecord(
            reference=record["reference"],
            form_kind=record["form_kind"],
            received_at=datetime.fromisoformat(record["received_at"]),
            delivered_at=datetime.fromisoformat(record["delivered_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
            guidelines_version=payload.get("guidelines_version"),
            kept=dict(payload.get("kept") or {}),
            reminded_at=datetime.fromisoformat(reminded) if reminded else None,
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
            erased.append(
                StoredRecord(
                    reference=record["reference"],
                    form_kind=record["form_kind"],
                    received_at=datetime.fromisoformat(record["received_at"]),
                    delivered_at=datetime.fromisoformat(record["delivered_at"]),
                    expires_at=datetime.fromisoformat(record["expires_at"]),
                    guidelines_version=None,
                    kept={},
                )
            )
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
            storage = database.storage
            data = storage.read() or {}
            for name, table in data.items():
                if name == META_TABLE:
                    continue
                for record in table.values():
                    opened = self.opened(record)
                    record["sealed"] = sealed_payload(
                        self.sealer, opened.reference, opened.kept, opened.guidelines_version
                    )
                    count += 1
            storage.write(data)
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
