"""The journal of sends the relay accepted but whose acceptance could not be written.

A recipient's acceptance is normally written into the outbox item at once. On a full disk that
write fails; the message must still never be sent again, even after a restart. So at start the
journal reserves its whole file (real bytes, not a sparse hole), and an acceptance that cannot
be written anywhere else is written into a free slot of that reserved space, in place: on a full
disk, overwriting bytes that are already allocated still works. Once the item itself holds the
acceptance, the slot is cleared. A folder that cannot be written at all (read-only) cannot hold
a journal either: then acceptances are kept in memory only, health fails, and a restart before
the folder is writable again would send those messages again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from forms_server.storage.folder_store import parse_time

logger = logging.getLogger(__name__)

SLOT_BYTES = 512
SLOTS = 256
EMPTY = b"\0" * SLOT_BYTES


@dataclass(frozen=True)
class Accepted:
    reference: str
    address: str
    at: datetime


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.used: dict[int, Accepted] = {}
        self.usable = self.reserve()

    def reserve(self) -> bool:
        """The file, at its full size, written through; then what it already holds."""
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            logger.error("The journal of accepted sends cannot be opened (%s)", error.strerror)
            return False
        try:
            size = os.fstat(descriptor).st_size
            if size < SLOT_BYTES * SLOTS:
                os.pwrite(descriptor, b"\0" * (SLOT_BYTES * SLOTS - size), size)
                os.fsync(descriptor)
            for slot in range(SLOTS):
                raw = os.pread(descriptor, SLOT_BYTES, slot * SLOT_BYTES).rstrip(b"\0")
                if raw:
                    try:
                        entry = json.loads(raw)
                        self.used[slot] = Accepted(entry["r"], entry["a"], parse_time(entry["t"]))
                    except (ValueError, KeyError, TypeError):
                        self.clear_slot(descriptor, slot)  # torn by a crash mid-write
        except OSError as error:
            logger.error("The journal of accepted sends cannot be reserved (%s)", error.strerror)
            return False
        finally:
            os.close(descriptor)
        return True

    def entries(self) -> list[Accepted]:
        return list(self.used.values())

    def record(self, accepted: Accepted) -> bool:
        """Written durably into reserved space; False if it could not be."""
        if not self.usable:
            return False
        free = next((slot for slot in range(SLOTS) if slot not in self.used), None)
        raw = json.dumps(
            {"r": accepted.reference, "a": accepted.address, "t": accepted.at.isoformat()}
        ).encode()
        if free is None or len(raw) > SLOT_BYTES:
            return False
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.pwrite(descriptor, raw.ljust(SLOT_BYTES, b"\0"), free * SLOT_BYTES)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            logger.error("Could not write to the journal of accepted sends (%s)", error.strerror)
            return False
        self.used[free] = accepted
        return True

    def clear(self, reference: str) -> None:
        """The item holds its acceptances now: their slots are free again."""
        slots = [slot for slot, entry in self.used.items() if entry.reference == reference]
        if not slots:
            return
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                for slot in slots:
                    self.clear_slot(descriptor, slot)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError:
            return  # cleared next time; a stale slot only repeats what the item already says
        for slot in slots:
            self.used.pop(slot, None)

    @staticmethod
    def clear_slot(descriptor: int, slot: int) -> None:
        os.pwrite(descriptor, EMPTY, slot * SLOT_BYTES)
