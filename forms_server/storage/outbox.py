"""The outbox: the durable queue between "Sign and send" and the relay.

A confirmed form is on disk before the member sees "received". Its folder, `data/outbox/`:

    pending/<REF>.json   a form with work left: its sealed content and, for each recipient, the
                         state of that recipient's own message (pending, accepted, failed)
    delivered/<REF>      an empty marker: every recipient has it and its record is kept. It
                         keeps the reference taken, so a replay can never create it again,
                         until any token that could replay it has expired
    quarantine/          files that could not be read, moved aside (never deleted by us) so
                         they stop nothing else; reported until the host removes them
    outbox.lock          held for the moment a reference is created or finished, so a replay
                         and a finish can never interleave
    worker.lock          held by whichever server process is delivering this pass
    heartbeat            rewritten by the worker on each pass: proof it runs and can write

Each file is read on its own: one that cannot be read never stops the others. Delivery costs
O(pending): the delivered markers are never read again, only removed when their time is up.
Files written by the first version (`outbox/<REF>.json`) are migrated at start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from forms_server.errors import FormsServerError
from forms_server.storage.files import (
    create_exclusively,
    exclusive_lock,
    fsync_folder,
    remove_stale_temporary_files,
    replace_atomically,
)

logger = logging.getLogger(__name__)

FORMAT = 2
# The recipient that stands for the member's own copy (member_copy.py): its address stays in the
# sealed answers. A copy that cannot be delivered never holds the form back or fails it.
MEMBER_COPY = "member-copy"
AS_SOON_AS_POSSIBLE = datetime.min.replace(tzinfo=UTC)


class OutboxError(FormsServerError):
    """An outbox file that cannot be read as an item."""


class RecipientStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"  # the relay took this recipient's message: never sent again
    FAILED = "failed"  # refused for good, or the retry window ended


class ItemStatus(StrEnum):
    PENDING = "pending"  # something left to send or to record
    FAILED = "failed"  # nothing left to try: a recipient failed, or the form could not be read
    DELIVERED = "delivered"


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise OutboxError("a time is missing")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def optional_time(value: object) -> datetime | None:
    return None if value is None else parse_time(value)


def optional_text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class RecipientState:
    address: str
    message_id: str
    status: RecipientStatus = RecipientStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None  # None: as soon as possible
    last_error: str | None = None
    accepted_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.status is RecipientStatus.PENDING and (
            self.next_attempt_at is None or self.next_attempt_at <= now
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "message_id": self.message_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "last_error": self.last_error,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientState:
        return cls(
            address=str(data["address"]),
            message_id=str(data["message_id"]),
            status=RecipientStatus(data["status"]),
            attempts=int(data["attempts"]),
            next_attempt_at=optional_time(data.get("next_attempt_at")),
            last_error=optional_text(data.get("last_error")),
            accepted_at=optional_time(data.get("accepted_at")),
        )


@dataclass(frozen=True)
class OutboxItem:
    reference: str
    form_kind: str
    received_at: datetime
    urgent: bool
    # The submission (answers, guidelines version), sealed; "" once erased.
    sealed: str
    # Retries go on until this plus the retry window; `outbox --retry` starts it again.
    retry_from: datetime
    # Who it goes to, by role ("facilitators", "safeguarding", ...): kept in the failure record.
    route: str = ""
    # One per recipient of the form's route, each with its own message. Empty until addressed
    # (an item migrated from the first version is addressed on its first pass).
    recipients: tuple[RecipientState, ...] = ()
    # The minimal record is in the store (done once any recipient has the message).
    recorded: bool = False
    record_attempts: int = 0
    next_record_at: datetime | None = None
    # A fault of the item itself rather than of one recipient (its content cannot be opened).
    problem: str | None = None
    failed_at: datetime | None = None
    content_erased_at: datetime | None = None

    @property
    def status(self) -> ItemStatus:
        if self.problem is not None:
            return ItemStatus.FAILED
        states = {
            recipient.status
            for recipient in self.recipients
            if not (recipient.address == MEMBER_COPY and recipient.status is RecipientStatus.FAILED)
        }
        if not self.recipients or RecipientStatus.PENDING in states:
            return ItemStatus.PENDING
        if self.reached_someone and not self.recorded:
            return ItemStatus.PENDING
        if states == {RecipientStatus.ACCEPTED}:
            return ItemStatus.DELIVERED
        return ItemStatus.FAILED

    @property
    def reached_someone(self) -> bool:
        """A recipient of the form (not the member's own copy) has it: its record can be kept."""
        return any(
            recipient.status is RecipientStatus.ACCEPTED and recipient.address != MEMBER_COPY
            for recipient in self.recipients
        )

    @property
    def last_error(self) -> str | None:
        errors = [r.last_error for r in self.recipients if r.status is not RecipientStatus.ACCEPTED]
        return self.problem or next((error for error in errors if error), None)

    @property
    def attempts(self) -> int:
        return max((recipient.attempts for recipient in self.recipients), default=0)

    def next_due_at(self) -> datetime | None:
        """When something about this item can next be done; None when nothing can."""
        if self.status is not ItemStatus.PENDING:
            return None
        moments = [
            recipient.next_attempt_at or AS_SOON_AS_POSSIBLE
            for recipient in self.recipients
            if recipient.status is RecipientStatus.PENDING
        ]
        if not self.recipients:
            moments.append(AS_SOON_AS_POSSIBLE)
        if self.reached_someone and not self.recorded:
            moments.append(self.next_record_at or AS_SOON_AS_POSSIBLE)
        return min(moments) if moments else None

    def with_recipient(self, changed: RecipientState) -> OutboxItem:
        return replace(
            self,
            recipients=tuple(
                changed if recipient.address == changed.address else recipient
                for recipient in self.recipients
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "reference": self.reference,
            "form_kind": self.form_kind,
            "received_at": self.received_at.isoformat(),
            "urgent": self.urgent,
            "sealed": self.sealed,
            "retry_from": self.retry_from.isoformat(),
            "route": self.route,
            "recipients": [recipient.to_json() for recipient in self.recipients],
            "recorded": self.recorded,
            "record_attempts": self.record_attempts,
            "next_record_at": self.next_record_at.isoformat() if self.next_record_at else None,
            "problem": self.problem,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "content_erased_at": (
                self.content_erased_at.isoformat() if self.content_erased_at else None
            ),
        }

    @staticmethod
    def identity(data: dict[str, Any]) -> dict[str, Any]:
        """What every version of an item holds: which form, when, how urgent, its content."""
        return {
            "reference": str(data["reference"]),
            "form_kind": str(data["form_kind"]),
            "received_at": parse_time(data["received_at"]),
            "urgent": bool(data["urgent"]),
            "sealed": str(data["sealed"]),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        """Fields a later version adds are ignored; missing or mistyped ones are an error."""
        return cls(
            **cls.identity(data),
            retry_from=parse_time(data["retry_from"]),
            route=str(data.get("route", "")),
            recipients=tuple(RecipientState.from_json(r) for r in data["recipients"]),
            recorded=bool(data["recorded"]),
            record_attempts=int(data.get("record_attempts", 0)),
            next_record_at=optional_time(data.get("next_record_at")),
            problem=optional_text(data.get("problem")),
            failed_at=optional_time(data.get("failed_at")),
            content_erased_at=optional_time(data.get("content_erased_at")),
        )

    @classmethod
    def from_first_version(cls, data: dict[str, Any]) -> OutboxItem:
        """An item written by the first version: one status for all its recipients, who were
        worked out when it was sent. It is addressed again, and a failed one tried once more."""
        return cls(**cls.identity(data), retry_from=datetime.now(UTC))


def item_from_bytes(raw: bytes) -> OutboxItem:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise OutboxError("not an outbox item")
        if data.get("format") != FORMAT:
            raise OutboxError(f"format {data.get('format')!r} is not one this version reads")
        return OutboxItem.from_json(data)
    except OutboxError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise OutboxError(f"not an outbox item ({type(error).__name__})") from error


@dataclass
class PendingRead:
    """One look at the pending folder: the items, and what had to be moved aside."""

    items: list[OutboxItem] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


class Outbox:
    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "outbox"
        self.pending_folder = self.folder / "pending"
        self.delivered_folder = self.folder / "delivered"
        self.quarantine_folder = self.folder / "quarantine"
        for folder in (self.pending_folder, self.delivered_folder, self.quarantine_folder):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock_path = self.folder / "outbox.lock"
        self.worker_lock_path = self.folder / "worker.lock"
        self.heartbeat_path = self.folder / "heartbeat"
        # How many item files have been read: delivery should cost O(pending), whatever the
        # history, and the tests hold it to that.
        self.files_read = 0
        for folder in (self.folder, self.pending_folder, self.delivered_folder):
            if removed := remove_stale_temporary_files(folder):
                logger.info("Removed %d temporary outbox file(s) left by a write", removed)
        self.migrate_first_version()

    # -- Paths and locks ---------------------------------------------------------------------

    def pending_path(self, reference: str) -> Path:
        return self.pending_folder / f"{reference}.json"

    def marker_path(self, reference: str) -> Path:
        return self.delivered_folder / reference

    @contextlib.contextmanager
    def names_locked(self) -> Iterator[None]:
        with exclusive_lock(self.lock_path):
            yield

    @contextlib.contextmanager
    def worker_turn(self) -> Iterator[bool]:
        """True if this process may deliver now; another process holding it is delivering."""
        with exclusive_lock(self.worker_lock_path, wait=False) as mine:
            yield mine

    # -- Creating, saving, finishing ---------------------------------------------------------

    def create(self, item: OutboxItem) -> bool:
        """Writes a new item durably; False if its reference is already here (pending, failed
        or delivered: a delivered item's marker keeps the name taken)."""
        marker = self.marker_path(item.reference)
        return create_exclusively(
            self.pending_path(item.reference),
            self.encoded(item),
            name_is_free=lambda: not marker.exists(),
            lock_path=self.lock_path,
        )

    @staticmethod
    def encoded(item: OutboxItem) -> bytes:
        return json.dumps(item.to_json(), separators=(",", ":")).encode("utf-8")

    def save(self, item: OutboxItem) -> None:
        replace_atomically(self.pending_path(item.reference), self.encoded(item))

    def finish(self, reference: str) -> None:
        """Delivered (or dismissed): the content leaves the disk, an empty marker stays."""
        with self.names_locked():
            marker = self.marker_path(reference)
            descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(descriptor)
            # The marker must survive a crash (it refuses replays); the removal need not: a
            # pending file whose recipients all have it is simply finished again.
            fsync_folder(self.delivered_folder)
            self.pending_path(reference).unlink(missing_ok=True)

    def is_delivered(self, reference: str) -> bool:
        return self.marker_path(reference).exists()

    # -- Reading -----------------------------------------------------------------------------

    def read(self, reference: str) -> OutboxItem | None:
        """The pending or failed item, or None (delivered, unknown, or moved aside)."""
        path = self.pending_path(reference)
        try:
            return self.read_file(path)
        except FileNotFoundError:
            return None
        except (OutboxError, OSError) as error:
            self.quarantine(path, error)
            return None

    def read_file(self, path: Path) -> OutboxItem:
        self.files_read += 1
        if not path.is_file():
            raise OutboxError("not a file")
        return item_from_bytes(path.read_bytes())

    def pending(self) -> PendingRead:
        """Every item with work left or a failure to report, each file read on its own."""
        found = PendingRead()
        with os.scandir(self.pending_folder) as entries:
            paths = [Path(entry.path) for entry in entries if entry.name.endswith(".json")]
        for path in paths:
            try:
                found.items.append(self.read_file(path))
            except FileNotFoundError:
                continue  # finished by another process since the folder was listed
            except (OutboxError, OSError) as error:
                if self.quarantine(path, error):
                    found.quarantined.append(path.name)
        return found

    def quarantine(self, path: Path, error: Exception) -> bool:
        """Moves an unreadable file aside so it stops nothing else. It is kept, never deleted:
        it may be the only copy of someone's form."""
        moved = self.quarantine_folder / f"{path.name}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        try:
            path.rename(moved)
            fsync_folder(self.quarantine_folder)
        except FileNotFoundError:
            return False
        except OSError as move_error:
            logger.error(
                "Could not move the unreadable outbox file %s aside (%s); skipping it",
                path.name,
                type(move_error).__name__,
            )
            return False
        logger.error(
            "Moved the unreadable outbox file %s to %s (%s). Nothing else is held up; see "
            "`forms-server outbox`.",
            path.name,
            self.quarantine_folder,
            error,
        )
        return True

    def quarantined(self) -> list[str]:
        return sorted(path.name for path in self.quarantine_folder.iterdir())

    # -- Upkeep ------------------------------------------------------------------------------

    def migrate_first_version(self) -> None:
        """The first version kept every item, delivered or not, as `outbox/<REF>.json`."""
        for path in sorted(self.folder.glob("*.json")):
            with self.names_locked():
                try:
                    data = json.loads(path.read_bytes().decode("utf-8"))
                    reference = str(data["reference"])
                    if data["status"] == "delivered":
                        self.marker_path(reference).touch(mode=0o600)
                    else:
                        item = OutboxItem.from_first_version(data)
                        create_exclusively(self.pending_path(reference), self.encoded(item))
                except FileNotFoundError:
                    continue
                except (UnicodeDecodeError, ValueError, KeyError, TypeError, OSError) as error:
                    self.quarantine(path, OutboxError(type(error).__name__))
                    continue
                path.unlink()
                fsync_folder(self.folder)
        fsync_folder(self.pending_folder)

    def forget_old_markers(self, now: datetime, replay_window: timedelta) -> int:
        """A delivered marker only has to outlive every token that could replay it."""
        cutoff = (now - replay_window).timestamp()
        forgotten = 0
        with os.scandir(self.delivered_folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < cutoff:
                        Path(entry.path).unlink()
                        forgotten += 1
        return forgotten

    def beat(self, now: datetime) -> None:
        """The worker's proof of life, and its test that the data folder can be written."""
        replace_atomically(self.heartbeat_path, now.isoformat().encode("ascii"))

    def last_beat(self) -> datetime | None:
        try:
            return parse_time(self.heartbeat_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError, OutboxError):
            return None

    def dismiss(self, reference: str) -> bool:
        """The host has dealt with a failed item or a quarantined file: stop reporting it. A
        failed item's reference stays taken, so a replay cannot send it again."""
        dismissed = False
        item = self.read(reference)
        if item is not None and item.status is ItemStatus.FAILED:
            self.finish(reference)
            dismissed = True
        for path in self.quarantine_folder.glob(f"{reference}.json*"):
            path.unlink()
            dismissed = True
        return dismissed
