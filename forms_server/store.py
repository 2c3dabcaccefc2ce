"""The store: TinyDB on a storage of our own that never leaves a broken file.

TinyDB's own JSONStorage rewrites its file in place, so a crash mid-write leaves invalid JSON, and
two processes writing one file corrupt it. `AtomicJSONStorage` writes a temporary file, fsyncs
it, renames it over the old one and fsyncs the folder, all under an exclusive lock on a separate
lock file, so every reader sees a whole old file or a whole new one, and two server processes
take turns. A file that cannot be read stops start-up and is kept as it is.

Personal answers are sealed with AES-GCM (`cryptography`) before they reach the file, bound to
their reference, so a name or address typed into a form cannot be found in the raw file.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tinydb import Query, TinyDB
from tinydb.storages import Storage

from forms_server.forms import FORMS, Submission

logger = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
NONCE_BYTES = 12
KEY_ID_BYTES = 4


class StoreError(Exception):
    """The store cannot be used; the message says what to do."""


class StoreCorruptError(StoreError):
    pass


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicJSONStorage(Storage):
    """A TinyDB storage whose file is always either the old version or the new one, whole."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise StoreCorruptError(
                f"{self.path} is not valid JSON ({error}). It has been left exactly as it is. "
                "Restore it from a backup, or move it aside to start with an empty store."
            ) from error
        if not isinstance(data, dict):
            raise StoreCorruptError(f"{self.path} does not hold a TinyDB database.")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path)
        fsync_folder(self.path.parent)

    def close(self) -> None:
        pass


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Held across a whole read-change-write, so two processes never interleave."""
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def key_id(key: bytes) -> bytes:
    """Which key sealed a value, without saying anything about the key."""
    return hashlib.sha256(b"peer-support-data-key" + key).digest()[:KEY_ID_BYTES]


class Sealer:
    """AES-GCM with the data keys; the reference is the associated data, so a sealed answer
    moved onto another record no longer opens. The newest key seals; every configured key
    opens what it sealed, so a new key can be added at any time (rotation)."""

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        keys = [keys] if isinstance(keys, bytes) else list(keys)
        if not keys or any(len(key) != 32 for key in keys):
            raise StoreError("Each data key must be 32 bytes.")
        self.aeads = {key_id(key): AESGCM(key) for key in keys}
        self.sealing_id = key_id(keys[-1])

    def seal(self, reference: str, value: object) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
        cipher = self.aeads[self.sealing_id].encrypt(nonce, plain, reference.encode("ascii"))
        return base64.b64encode(self.sealing_id + nonce + cipher).decode("ascii")

    def open(self, reference: str, sealed: str) -> dict[str, Any]:
        raw = base64.b64decode(sealed)
        identity, nonce = raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
        aead = self.aeads.get(identity)
        if aead is None:
            raise StoreError(
                f"Record {reference} was sealed with a data key that is no longer configured."
            )
        try:
            plain = aead.decrypt(nonce, raw[KEY_ID_BYTES + NONCE_BYTES :], reference.encode())
        except InvalidTag as error:
            raise StoreError(f"Record {reference} cannot be opened with the data key.") from error
        opened = json.loads(plain)
        if not isinstance(opened, dict):
            raise StoreError(f"Record {reference} does not hold a form's answers.")
        return opened


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

    def __init__(self, data_dir: Path, data_keys: bytes | Sequence[bytes]) -> None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = data_dir / "submissions.json"
        self.lock_path = data_dir / "submissions.lock"
        self.sealer = Sealer(data_keys)
        self.thread_lock = threading.Lock()
        with self.locked() as database:
            # Only the holder of the lock writes, so any temporary file seen while holding it
            # was left by a writer that died.
            self.remove_stale_temporary_files(data_dir)
            database.all()  # an unreadable file stops start-up here, and is kept
        if self.path.exists():
            self.path.chmod(0o600)

    @staticmethod
    def remove_stale_temporary_files(data_dir: Path) -> None:
        for stale in data_dir.glob(f".submissions.json.*{TEMPORARY_SUFFIX}"):
            stale.unlink(missing_ok=True)
            logger.info("Removed a temporary file left by an interrupted write")

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
                submission.received_at + timedelta(days=form.retention_days)
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
