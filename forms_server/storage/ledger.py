"""What was done with members' data, without the data: the audit log and the erasure ledger.

    audit.jsonl      one line per use of a member's rights (find, export, correct, erase, keys,
                     a withdrawal from a member's own link): what, when, how many records, and
                     who it concerned as a keyed hash, never an address, a name or an answer
    erasures.jsonl   one line per erased, withdrawn, replaced or expired consent record: a keyed
                     hash of its reference, its kind, the date and the reason, and the date its
                     record would have expired anyway. A backup restored after an erasure brings
                     the record back; at start the store erases it again (store.py)
    ledger-key       the key of those hashes, made on first use, readable by its owner only

Both logs are appended to with one write each and fsynced, so a crash loses at most the line
being written. Lines older than the longest retention period leave the audit log at each purge;
an erasure line leaves once no backup can hold its record any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from forms_server.storage.files import exclusive_lock, private_folder, replace_atomically

logger = logging.getLogger(__name__)

KEY_BYTES = 32


class ErasureReason:
    ERASED = "erased on request"
    WITHDRAWN = "consent withdrawn"
    REPLACED = "replaced by a new consent form"
    MEMBER_ERASED = "erased by the member"
    # Not an erasure anyone asked for: nothing to remember in the erasure ledger.
    RETENTION_ENDED = "its retention period ended"


@dataclass(frozen=True)
class Erasure:
    reference_hash: str
    form_kind: str
    at: datetime
    reason: str
    # A backup can hold the record until then; the line is needed no longer.
    needed_until: datetime


class Ledger:
    def __init__(self, data_dir: Path, erasures_copy: Path | None = None) -> None:
        """`erasures_copy`: a second erasure ledger outside the data folder (on other storage),
        so an erasure survives the loss of the disk: `forms-server restore` applies it again."""
        private_folder(data_dir)
        self.audit_path = data_dir / "audit.jsonl"
        self.erasures_path = data_dir / "erasures.jsonl"
        self.erasures_copy = erasures_copy
        self.lock_path = data_dir / "ledger.lock"
        self.key = self.load_key(data_dir / "ledger-key")

    @staticmethod
    def load_key(path: Path) -> bytes:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        return bytes.fromhex(path.read_text(encoding="ascii").strip())

    def hash(self, value: str) -> str:
        """The same person or reference always gives the same hash; nobody without the key
        can test a guess against it."""
        digest = hmac.new(self.key, value.strip().casefold().encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:32]

    # -- Appending -------------------------------------------------------------------------

    def append(self, path: Path, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        with exclusive_lock(self.lock_path):
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(descriptor).st_size
                if size and os.pread(descriptor, 1, size - 1) != b"\n":
                    # A line torn by a crash: end it, so it cannot swallow this one.
                    line = b"\n" + line
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def audit(
        self,
        action: str,
        at: datetime,
        records: int,
        person: str | None = None,
        how: str = "",
        reference: str | None = None,
    ) -> None:
        """`person` and `reference` are hashed here: the audit log never holds an address, a
        name or anything that leads to one without the key."""
        self.append(
            self.audit_path,
            {
                "at": at.isoformat(),
                "action": action,
                "records": records,
                "person": self.hash(person) if person else None,
                "reference": self.hash(reference) if reference else None,
                "how": how,
            },
        )

    def erased(
        self, reference: str, form_kind: str, at: datetime, reason: str, needed_until: datetime
    ) -> None:
        entry = {
            "reference": self.hash(reference),
            "form_kind": form_kind,
            "at": at.isoformat(),
            "reason": reason,
            "needed_until": needed_until.isoformat(),
        }
        self.append(self.erasures_path, entry)
        if self.erasures_copy is None:
            return
        try:
            private_folder(self.erasures_copy.parent)
            self.append(self.erasures_copy, entry)
        except OSError as error:
            # The erasure is done and in the data folder's own ledger; the copy is the backup's
            # safeguard, so its failure is reported, not allowed to undo the erasure.
            logger.error(
                "Could not add the erasure to the ledger copy %s: %s",
                self.erasures_copy,
                error.strerror or error,
            )

    def apply_copy(self, copy: Path) -> int:
        """Erasure lines in `copy` that this ledger lacks (a backup older than them): appended,
        so the store erases their records again. Returns how many."""
        known = {
            (entry.get("reference"), entry.get("at")) for entry in self.lines(self.erasures_path)
        }
        added = 0
        for entry in self.lines(copy):
            if (entry.get("reference"), entry.get("at")) not in known:
                self.append(self.erasures_path, entry)
                added += 1
        return added

    # -- Reading ---------------------------------------------------------------------------

    @staticmethod
    def lines(path: Path) -> Iterator[dict[str, Any]]:
        """Each line on its own: a torn last line (a crash mid-write) is skipped, not fatal."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        for number, line in enumerate(raw.splitlines(), start=1):
            try:
                entry = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                logger.warning("Skipped line %d of %s: it cannot be read", number, path.name)
                continue
            if isinstance(entry, dict):
                yield entry

    def erasures(self) -> list[Erasure]:
        found = []
        for entry in self.lines(self.erasures_path):
            try:
                found.append(
                    Erasure(
                        reference_hash=str(entry["reference"]),
                        form_kind=str(entry["form_kind"]),
                        at=datetime.fromisoformat(entry["at"]),
                        reason=str(entry["reason"]),
                        needed_until=datetime.fromisoformat(entry["needed_until"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                logger.warning("Skipped an erasure line that is not one of ours")
        return found

    def erasure_of(self, reference: str) -> Erasure | None:
        wanted = self.hash(reference)
        return next((e for e in self.erasures() if e.reference_hash == wanted), None)

    def audit_entries(self) -> list[dict[str, Any]]:
        return list(self.lines(self.audit_path))

    # -- Forgetting ------------------------------------------------------------------------

    def purge(self, now: datetime, audit_kept: timedelta) -> int:
        """Audit lines older than `audit_kept`, and erasure lines no backup needs: returns how
        many lines left."""
        removed = 0
        with exclusive_lock(self.lock_path):
            for path, keep in (
                (self.audit_path, lambda e: datetime.fromisoformat(e["at"]) > now - audit_kept),
                (self.erasures_path, lambda e: datetime.fromisoformat(e["needed_until"]) > now),
            ):
                if not path.exists():
                    continue
                entries = list(self.lines(path))
                kept = [entry for entry in entries if keeps(keep, entry)]
                if len(kept) != len(entries):
                    removed += len(entries) - len(kept)
                    replace_atomically(
                        path,
                        "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in kept).encode(),
                    )
        return removed


def keeps(test: Callable[[dict[str, Any]], bool], entry: dict[str, Any]) -> bool:
    """A line that cannot be dated is kept: losing an erasure would undo it."""
    try:
        return bool(test(entry))
    except (KeyError, TypeError, ValueError):
        return True


def latest_erasure_in(erasures_path: Path) -> datetime | None:
    """When the last erasure in a ledger file was made, reading only (for `check`)."""
    latest = None
    try:
        entries = list(Ledger.lines(erasures_path))
    except OSError:
        return None  # the data folder itself is the problem, and `check` says so
    for entry in entries:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            at = datetime.fromisoformat(entry["at"])
            latest = at if latest is None or at > latest else latest
    return latest
