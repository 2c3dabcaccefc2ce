"""Backups: a consistent snapshot of the data folder, encrypted with age to keys kept apart from
the data key; and a restore into an empty folder that applies every erasure made since.

The snapshot is taken while holding the worker's turn (no delivery, key rotation or
housekeeping runs), the store's lock and the ledger's: each file is read whole, as it stands
between two of their writes. A form the member sends meanwhile is written whole or not at all
(files.py), so it is either in the backup or not. Drafts are left out: they belong to members'
browsers and need not survive anything. The result is a tar file, encrypted with age
(`pyrage`), so Debian's `age --decrypt` opens it without this software.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyrage  # type: ignore[import-untyped]
from pyrage import x25519

from forms_server.errors import FormsServerError
from forms_server.storage.draft_files import DRAFTS_FOLDER
from forms_server.storage.files import (
    TEMPORARY_SUFFIX,
    create_exclusively,
    exclusive_lock,
    private_folder,
)

BACKUP_SUFFIX = ".tar.age"
# Locks are held, not kept: a restored folder makes its own.
LEFT_OUT_SUFFIXES = (".lock", TEMPORARY_SUFFIX)


class BackupError(FormsServerError):
    """A backup or a restore could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class BackupMade:
    path: Path
    files: int
    plain_bytes: int
    sealed_bytes: int


def left_out(relative: Path) -> bool:
    return relative.parts[0] == DRAFTS_FOLDER or relative.name.endswith(LEFT_OUT_SUFFIXES)


def snapshot(data_dir: Path, held: list[Path]) -> tuple[bytes, int]:
    """The data folder as a tar, taken while holding the `held` locks."""
    buffer = io.BytesIO()
    files = 0
    with contextlib.ExitStack() as locks:
        for lock in held:
            locks.enter_context(exclusive_lock(lock, wait=True))
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path in sorted(data_dir.rglob("*")):
                relative = path.relative_to(data_dir)
                if left_out(relative) or path.is_symlink():
                    continue
                archive.add(path, arcname=str(relative), recursive=False)
                files += path.is_file()
    return buffer.getvalue(), files


def make_backup(
    data_dir: Path, held: list[Path], recipients: tuple[str, ...], backup_dir: Path
) -> BackupMade:
    if not recipients:
        raise BackupError(
            "FORMS_BACKUP_RECIPIENT is not set: backups are encrypted to an age public key kept "
            "apart from the data key. Make a key pair with `age-keygen -o backup-key.txt` on "
            "another machine, keep that file safe there, and put the public key it prints "
            "(age1...) in FORMS_BACKUP_RECIPIENT."
        )
    plain, files = snapshot(data_dir, held)
    sealed = pyrage.encrypt(plain, [x25519.Recipient.from_str(key) for key in recipients])
    private_folder(backup_dir)
    # To the microsecond, and never over another: two backups in one second are two files.
    name = f"forms-data-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}{BACKUP_SUFFIX}"
    path = backup_dir / name
    if not create_exclusively(path, sealed):
        raise BackupError(f"{path} already exists: run the backup again.")
    return BackupMade(path, files, len(plain), len(sealed))


def delete_backups_older_than(backup_dir: Path, days: int, now: datetime) -> int:
    """The group's decision (backup_kept_days), kept: backups past it are deleted."""
    cutoff = now.timestamp() - days * 86400
    deleted = 0
    for path in backup_dir.glob(f"*{BACKUP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
    return deleted


def newest_backup(backup_dir: Path | None) -> datetime | None:
    """When the newest backup in the folder was made (its file's time), if any."""
    if backup_dir is None:
        return None
    times = [
        path.stat().st_mtime for path in backup_dir.glob(f"*{BACKUP_SUFFIX}") if path.is_file()
    ]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def restore_files(backup: Path, identity_file: Path, into: Path) -> int:
    """The backup's files in `into`, which must be empty or absent. Returns how many."""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise BackupError(
            f"{into} is not empty: a restore goes into an empty folder only, so it never mixes "
            "with or replaces anything. Move that folder aside, or name a new one."
        )
    try:
        identities = [
            x25519.Identity.from_str(line.strip())
            for line in identity_file.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("AGE-SECRET-KEY-")
        ]
        plain = pyrage.decrypt(backup.read_bytes(), identities)
    except OSError as error:
        raise BackupError(f"Could not read {error.filename}: {error.strerror}") from error
    except Exception as error:  # pyrage's own error types are not exported
        raise BackupError(
            f"{backup} could not be opened with the key in {identity_file}: {error}. Use the "
            "secret key whose public key is in FORMS_BACKUP_RECIPIENT."
        ) from error
    private_folder(into)
    files = 0
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        for member in archive.getmembers():
            relative = Path(member.name)
            if (
                relative.is_absolute()
                or ".." in relative.parts
                or not (member.isfile() or member.isdir())
            ):
                raise BackupError(f"{backup} holds {member.name!r}, which is not ours.")
            target = into / relative
            if member.isdir():
                private_folder(target)
                continue
            private_folder(target.parent)
            content = archive.extractfile(member)
            if content is None:
                raise BackupError(f"{backup} holds {member.name!r}, which cannot be read.")
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(content.read())
            files += 1
    return files
