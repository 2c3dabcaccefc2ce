"""The store's file: TinyDB on a storage that never leaves a broken file, and its format.

TinyDB's own JSONStorage rewrites its file in place, so a crash mid-write leaves invalid JSON, and
two processes writing one file corrupt it. `AtomicJSONStorage` writes whole new files (files.py),
so every reader sees a whole old file or a whole new one. A file that cannot be read (empty, not
JSON, not a TinyDB database, a folder, a symbolic link) stops with one clear message and is kept
exactly as it is.

The file carries its format in a `meta` table. Format 1 (the first version) kept the guidelines
version in the clear; opening it upgrades it in place to format 2 in one atomic write. A file
from a newer version is refused, untouched.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from forms_server.errors import FormsServerError
from forms_server.storage.files import replace_atomically
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


def upgrade_file(storage: Storage, path: Path, sealer: Sealer) -> None:
    """Brings an older file to this format in one atomic write (an unreadable file stops
    start-up here, and is kept)."""
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
            f"{path} was written in format {found!r}; this version reads up to "
            f"format {STORE_FORMAT}. It has been left exactly as it is: run the newer "
            "version of the forms server."
        )
    try:
        upgraded = upgraded_from_first_format(data, sealer)
    except (KeyError, TypeError) as error:
        raise unreadable(path, "holds a record that is not one of ours") from error
    storage.write(upgraded)
    logger.info("Upgraded the store from format 1 to format %d", STORE_FORMAT)


def remove_temporary_files(folder: Path) -> None:
    """Temporary files left by a writer that died (the caller holds the store's lock)."""
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        logger.info("Removed a temporary file left by an interrupted write")
