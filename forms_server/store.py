"""The store: the minimal record of each delivered form, in TinyDB on a storage that never
leaves a broken file.

TinyDB's own JSONStorage rewrites its file in place, so a crash mid-write leaves invalid JSON, and
two processes writing one file corrupt it. `AtomicJSONStorage` writes whole new files (files.py)
under an exclusive lock on a separate lock file, so every reader sees a whole old file or a whole
new one, and two server processes take turns. A file that cannot be read (empty, not JSON, not a
TinyDB database, a folder) stops start-up with one clear message and is kept exactly as it is.

Personal answers are sealed (sealing.py) before they reach the file, bound to their reference,
so a name or address typed into a form cannot be found in the raw file.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from forms_server.decisions import default_retention_days
from forms_server.errors import FormsServerError
from forms_server.files import exclusive_lock, replace_atomically
from forms_server.forms import FORMS, Submission
from forms_server.sealing import Sealer

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("reference", "form_kind", "received_at", "delivered_at", "expires_at")


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
    for table in data.values():
        if not isinstance(table, dict):
            raise unreadable(path, "does not hold a TinyDB database")
        for record in table.values():
            if not isinstance(record, dict) or any(
                not isinstance(record.get(name), str) for name in RECORD_FIELDS
            ):
                raise unreadable(path, "holds a record that is not one of ours")
    return data


class AtomicJSONStorage(Storage):
    """A TinyDB storage whose file is always either the old version or the new one, whole."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError as error:
            raise unreadable(self.path, "is a folder, not a file") from error
        except OSError as error:
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


class SubmissionStore:
    """Delivered submissions, one minimal record per reference, personal fields sealed."""

    def __init__(
        self,
        data_dir: Path,
        data_keys: bytes | Sequence[bytes],
        retention_days: Mapping[str, int] | None = None,
    ) -> None:
        # Days each group of forms is kept: the group's decision (decisions.retention_months).
        self.retention_days = retention_days or default_retention_days()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = data_dir / "submissions.json"
        self.lock_path = data_dir / "submissions.lock"
        self.sealer = Sealer(data_keys)
        self.thread_lock = threading.Lock()
        with self.locked() as database:
            # Only the holder of the lock writes here, so any temporary file seen while holding
            # it was left by a writer that died.
            for stale in data_dir.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
                logger.info("Removed a temporary file left by an interrupted write")
            database.all()  # an unreadable file stops start-up here, and is kept
        if self.path.exists():
            self.path.chmod(0o600)

    @contextmanager
    def locked(self) -> Iterator[TinyDB]:
        with self.thread_lock, exclusive_lock(self.lock_path):
            database = TinyDB(str(self.path), storage=AtomicJSONStorage)
            try:
                yield database
            finally:
                database.close()

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
            "guidelines_version": submission.guidelines_version,
            "kept": self.sealer.seal(submission.reference, kept) if kept else None,
        }

    def add_delivered_many(self, submissions: list[Submission], delivered_at: datetime) -> int:
        """Keeps the minimal records in one write (group commit); returns how many were new."""
        with self.locked() as database:
            known = {record["reference"] for record in database.all()}
            new = [
                self.record_for(submission, delivered_at)
                for submission in submissions
                if submission.reference not in known
            ]
            if new:
                database.insert_multiple(new)
        return len(new)

    def add_delivered(self, submission: Submission, delivered_at: datetime) -> bool:
        """Keeps one minimal record; False when its reference was already there."""
        return self.add_delivered_many([submission], delivered_at) == 1

    def get(self, reference: str) -> StoredRecord | None:
        with self.locked() as database:
            record = database.get(Query().reference == reference)
        if record is None or isinstance(record, list):
            return None
        sealed = record.get("kept")
        return StoredRecord(
            reference=record["reference"],
            form_kind=record["form_kind"],
            received_at=datetime.fromisoformat(record["received_at"]),
            delivered_at=datetime.fromisoformat(record["delivered_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
            guidelines_version=record["guidelines_version"],
            kept=self.sealer.open(reference, sealed) if sealed else {},
        )

    def count(self) -> int:
        with self.locked() as database:
            return len(database)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Expired records leave the file (not flagged). The log says how many, nothing else."""
        moment = (now or datetime.now(UTC)).isoformat()
        with self.locked() as database:
            removed = database.remove(Query().expires_at <= moment)
        logger.info("Purged %d expired records", len(removed))
        return len(removed)
