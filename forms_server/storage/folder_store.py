"""One file per reference: the shape shared by the outbox, the watch, link-only forms, held
erasures and acknowledgements.

Every write is whole or absent (files.py). Each file is read on its own, so one that cannot be
read stops nothing else: it is handed to `on_unreadable` (the outbox's quarantine) or skipped.
A name is a reference (or a notice's id) and nothing else: never a path, never a pattern, so no
name given on the command line can reach a file outside the folder.

`SealedForm` is the one shape of a form kept sealed at rest, which the outbox, the watch and
link-only copies all extend: which form, when, how urgent, and its answers sealed (sealing.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from forms_server.errors import FormsServerError
from forms_server.storage.files import create_exclusively, private_folder, replace_atomically

logger = logging.getLogger(__name__)

# References (4KX-7QD-M21) and notice ids (hex): letters, digits and dashes only.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")

T = TypeVar("T")


class RecordError(FormsServerError):
    """A file that cannot be read as its record."""


class UnsafeNameError(FormsServerError):
    """A name that is not a plain reference: a path or a pattern."""


def safe_name(name: str) -> str:
    if not SAFE_NAME.match(name):
        raise UnsafeNameError(
            f"{name!r} is not a reference: use the name exactly as `forms-server outbox` lists it."
        )
    return name


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise RecordError("a time is missing")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def optional_time(value: object) -> datetime | None:
    return None if value is None else parse_time(value)


def time_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class SealedForm:
    """A form kept at rest: which form, when, how urgent, and what it said, sealed ("" once
    erased)."""

    reference: str
    form_kind: str
    received_at: datetime
    urgent: bool
    sealed: str

    def identity_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "form_kind": self.form_kind,
            "received_at": self.received_at.isoformat(),
            "urgent": self.urgent,
            "sealed": self.sealed,
        }

    @staticmethod
    def identity_from(data: Mapping[str, Any]) -> dict[str, Any]:
        """What every kind of kept form holds, as keyword arguments for its class."""
        return {
            "reference": str(data["reference"]),
            "form_kind": str(data["form_kind"]),
            "received_at": parse_time(data["received_at"]),
            "urgent": bool(data["urgent"]),
            "sealed": str(data.get("sealed", "")),
        }


def decoded(name: str, raw: bytes, decode: Callable[[str, dict[str, Any]], T]) -> T:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise RecordError("not a record")
        return decode(name, data)
    except RecordError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"not a record ({type(error).__name__})") from error


class FolderStore(Generic[T]):
    """`<folder>/<name>.json`, one record each; `decode` gets the name and the file's JSON."""

    def __init__(
        self,
        folder: Path,
        encode: Callable[[T], dict[str, Any]],
        decode: Callable[[str, dict[str, Any]], T],
        name_of: Callable[[T], str],
        on_unreadable: Callable[[Path, Exception], object] | None = None,
    ) -> None:
        self.folder = folder
        private_folder(self.folder)
        self.encode = encode
        self.decode = decode
        self.name_of = name_of
        self.on_unreadable = on_unreadable
        # Files read so far: delivery should cost O(waiting), and the tests hold it to that.
        self.files_read = 0

    def path(self, name: str) -> Path:
        return self.folder / f"{safe_name(name)}.json"

    def encoded(self, record: T) -> bytes:
        return json.dumps(self.encode(record), separators=(",", ":")).encode("utf-8")

    def create(self, record: T) -> bool:
        """Written durably and whole; False (nothing written) if the name is taken."""
        return create_exclusively(self.path(self.name_of(record)), self.encoded(record))

    def save(self, record: T) -> None:
        replace_atomically(self.path(self.name_of(record)), self.encoded(record))

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def read_path(self, path: Path) -> T:
        self.files_read += 1
        if not stat.S_ISREG(path.lstat().st_mode):  # FileNotFoundError if it is not there
            raise RecordError("not a file")
        return decoded(path.stem, path.read_bytes(), self.decode)

    def get(self, name: str) -> T | None:
        """The record, or None if there is none (or it could not be read: then it is handed
        to `on_unreadable`)."""
        path = self.path(name)
        try:
            return self.read_path(path)
        except FileNotFoundError:
            return None
        except (RecordError, OSError) as error:
            self.unreadable(path, error)
            return None

    def paths(self) -> list[Path]:
        """Every record's file, in name order. A folder that is not there or not a folder
        raises (OSError): that is the job's failure, never an empty list that hides it."""
        with os.scandir(self.folder) as entries:
            return sorted(Path(e.path) for e in entries if e.name.endswith(".json"))

    def names(self) -> list[str]:
        return [path.stem for path in self.paths()]

    def each(self) -> Iterator[T]:
        """Every record, each file on its own."""
        for path in self.paths():
            try:
                yield self.read_path(path)
            except FileNotFoundError:
                continue  # finished by another process since the folder was listed
            except (RecordError, OSError) as error:
                self.unreadable(path, error)

    def all(self) -> list[T]:
        return list(self.each())

    def unreadable(self, path: Path, error: Exception) -> None:
        if self.on_unreadable is not None:
            self.on_unreadable(path, error)
        else:
            logger.warning("Skipped %s: it cannot be read (%s)", path.name, type(error).__name__)
