"""The outbox: the durable queue between "Sign and send" and the relay.

A confirmed form is on disk before the member sees "received". Its folder, `data/outbox/`:

    pending/<REF>.json   a form with work left: its sealed content and, for each recipient, the
                         state of that recipient's own message (pending, accepted, failed)
    delivered/<REF>      an empty marker: every recipient has it and its record is kept. It
                         keeps the reference taken, so a replay can never create it again,
                         until any token that could replay it has expired
    quarantine/          files that could not be read, moved aside (never deleted by us) so
                         they stop nothing else; reported until the host dismisses them
    outbox.lock          held for the moment a reference is created or finished
    worker.lock          held by whichever server process is delivering (and by key rotation)
    heartbeat            rewritten by the worker: proof it runs and can write

Delivery costs O(waiting): the delivered markers are never read again, only removed when their
time is up. Files written by the first version (`outbox/<REF>.json`) are migrated at start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forms_server.storage.files import (
    create_exclusively,
    exclusive_lock,
    fsync_folder,
    private_folder,
    remove_stale_temporary_files,
    replace_atomically,
)
from forms_server.storage.folder_store import (
    FolderStore,
    RecordError,
    parse_time,
    safe_name,
)
from forms_server.storage.outbox_items import ItemStatus, OutboxItem

logger = logging.getLogger(__name__)


SALVAGE = {
    "reference": re.compile(rb'"reference":\s*"([A-Z0-9-]{5,20})"'),
    "form_kind": re.compile(rb'"form_kind":\s*"([a-z-]{1,40})"'),
    "urgent": re.compile(rb'"urgent":\s*(true|false)'),
    "received_at": re.compile(rb'"received_at":\s*"([0-9T:.+-]{10,40})"'),
    "sealed": re.compile(rb'"sealed":\s*"([A-Za-z0-9+/=]+)"'),
}


@dataclass(frozen=True)
class Quarantined:
    """A file moved aside, and what could still be read of it."""

    name: str
    reference: str | None = None
    form_kind: str | None = None
    urgent: bool = False
    received_at: datetime | None = None
    sealed: str = ""


def salvaged(name: str, raw: bytes) -> Quarantined:
    found = {
        key: match.group(1).decode()
        for key, pattern in SALVAGE.items()
        if (match := pattern.search(raw))
    }
    received_at = None
    with contextlib.suppress(ValueError, RecordError):
        received_at = parse_time(found.get("received_at"))
    return Quarantined(
        name=name,
        reference=found.get("reference"),
        form_kind=found.get("form_kind"),
        urgent=found.get("urgent") == "true",
        received_at=received_at,
        sealed=found.get("sealed", ""),
    )


@dataclass
class PendingRead:
    """One look at the pending folder: the items, and what had to be moved aside."""

    items: list[OutboxItem] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


class Outbox:
    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "outbox"
        self.delivered_folder = self.folder / "delivered"
        self.quarantine_folder = self.folder / "quarantine"
        for folder in (self.delivered_folder, self.quarantine_folder):
            private_folder(folder)
        # Files moved aside by this process since the last look (for `pending`).
        self.moved_aside: list[Quarantined] = []
        self.items = FolderStore(
            self.folder / "pending",
            OutboxItem.to_json,
            lambda _, data: OutboxItem.from_json(data),
            lambda item: item.reference,
            on_unreadable=self.quarantine,
        )
        self.pending_folder = self.items.folder
        self.lock_path = self.folder / "outbox.lock"
        self.worker_lock_path = self.folder / "worker.lock"
        self.heartbeat_path = self.folder / "heartbeat"
        for folder in (self.folder, self.pending_folder, self.delivered_folder):
            if removed := remove_stale_temporary_files(folder):
                logger.info("Removed %d temporary outbox file(s) left by a write", removed)
        self.migrate_first_version()

    @property
    def files_read(self) -> int:
        return self.items.files_read

    # -- Paths and locks ---------------------------------------------------------------------

    def pending_path(self, reference: str) -> Path:
        return self.items.path(reference)

    def marker_path(self, reference: str) -> Path:
        return self.delivered_folder / safe_name(reference)

    @contextlib.contextmanager
    def names_locked(self) -> Iterator[None]:
        with exclusive_lock(self.lock_path):
            yield

    @contextlib.contextmanager
    def worker_turn(self, wait: bool = False) -> Iterator[bool]:
        """True if this process may deliver now; another process holding it is delivering.
        `wait`: block until it is free (key rotation must never race a delivery)."""
        with exclusive_lock(self.worker_lock_path, wait=wait) as mine:
            yield mine

    # -- Creating, saving, finishing ---------------------------------------------------------

    def create(self, item: OutboxItem) -> bool:
        """Writes a new item durably; False if its reference is already here (pending, failed
        or delivered: a delivered item's marker keeps the name taken)."""
        marker = self.marker_path(item.reference)
        return create_exclusively(
            self.pending_path(item.reference),
            self.items.encoded(item),
            name_is_free=lambda: not marker.exists(),
            lock_path=self.lock_path,
        )

    def save(self, item: OutboxItem) -> None:
        self.items.save(item)

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
        return self.items.get(reference)

    def pending(self) -> PendingRead:
        """Every item with work left or a failure to report, each file read on its own."""
        self.moved_aside = []
        items = self.items.all()
        moved, self.moved_aside = self.moved_aside, []
        return PendingRead(items, moved)

    def waiting_names(self) -> set[str]:
        """The references with a pending file, without reading any (a cheap look for new
        arrivals from another process)."""
        with os.scandir(self.pending_folder) as entries:
            return {entry.name[:-5] for entry in entries if entry.name.endswith(".json")}

    def quarantine(self, path: Path, error: Exception) -> None:
        """Moves an unreadable file aside so it stops nothing else. It is kept, never deleted:
        it may be the only copy of someone's form."""
        moved = self.quarantine_folder / f"{path.name}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        try:
            raw = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            path.rename(moved)
            fsync_folder(self.quarantine_folder)
        except FileNotFoundError:
            return
        except OSError as move_error:
            logger.error(
                "Could not move the unreadable outbox file %s aside (%s); skipping it",
                path.name,
                type(move_error).__name__,
            )
            return
        logger.error(
            "Moved the unreadable outbox file %s to %s (%s). Nothing else is held up; see "
            "`forms-server outbox`.",
            path.name,
            self.quarantine_folder,
            error,
        )
        self.moved_aside.append(salvaged(moved.name, raw))

    def quarantined(self) -> list[str]:
        return sorted(path.name for path in self.quarantine_folder.iterdir())

    # -- Upkeep ------------------------------------------------------------------------------

    def migrate_first_version(self) -> None:
        """The first version kept every item, delivered or not, as `outbox/<REF>.json`."""
        for path in sorted(self.folder.glob("*.json")):
            with self.names_locked():
                try:
                    data = json.loads(path.read_bytes().decode("utf-8"))
                    reference = safe_name(str(data["reference"]))
                    if data["status"] == "delivered":
                        self.marker_path(reference).touch(mode=0o600)
                    else:
                        item = OutboxItem.from_first_version(data)
                        create_exclusively(self.pending_path(reference), self.items.encoded(item))
                except FileNotFoundError:
                    continue
                except (UnicodeDecodeError, ValueError, KeyError, TypeError, OSError) as error:
                    self.quarantine(path, RecordError(type(error).__name__))
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
        except (OSError, ValueError, RecordError):
            return None

    # -- The host's decisions ----------------------------------------------------------------

    def dismiss(self, name: str) -> bool:
        """The host has dealt with a failed item or a quarantined file: stop reporting it. The
        name is exactly as `forms-server outbox` lists it: a failed form's reference, or a
        quarantined file's name; never a path or a pattern. A failed item's reference stays
        taken, so a replay cannot send it again."""
        if name in self.quarantined():
            (self.quarantine_folder / name).unlink()
            return True
        item = self.read(safe_name(name))
        if item is not None and item.status is ItemStatus.FAILED:
            self.finish(name)
            return True
        return False

    def dismissable(self) -> list[str]:
        """Every name `dismiss` takes now: failed forms, then quarantined files."""
        failed = [item.reference for item in self.items.all() if item.status is ItemStatus.FAILED]
        return [*failed, *self.quarantined()]
