"""Durable file writes: a temporary file, fsync, rename or link into place, then fsync the folder.

Every write here is whole or absent: a reader sees the old file or the new one, never half of
either. A write that fails (a full disk, a read-only folder) removes its temporary file before
the error goes up, so a failure never leaves debris that fills the disk for the next write.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"
# A write takes milliseconds; a temporary file older than this was left by a writer that died.
STALE_TEMPORARY_SECONDS = 60.0


def private_folder(folder: Path) -> None:
    """`folder`, made if missing, with every folder made on the way readable by this user
    alone (0700): `Path.mkdir(mode=..., parents=True)` gives the folders on the way the
    default mode, which left `outbox/` readable by everyone. Existing folders are left as
    they are; a file where a folder should be raises, as `mkdir` does."""
    missing = []
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for made in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            made.mkdir(mode=0o700)
    folder.mkdir(mode=0o700, exist_ok=True)


def fsync_folder(folder: Path) -> None:
    """Makes a rename, link or unlink in the folder itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_temporary(folder: Path, data: bytes) -> Path:
    """A new, fsynced, owner-only file in `folder`, named so `remove_stale_temporary_files`
    recognises it. Removed again if anything fails before it is complete."""
    temporary = folder / f".{os.getpid()}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def replace_atomically(path: Path, data: bytes) -> None:
    """`path` now holds `data`, durably; if this raises, `path` is as it was."""
    temporary = write_temporary(path.parent, data)
    try:
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def create_exclusively(
    path: Path,
    data: bytes,
    name_is_free: Callable[[], bool] = lambda: True,
    lock_path: Path | None = None,
) -> bool:
    """Creates `path` holding `data`, durably and whole; False (and nothing written) when the
    name is already taken, or `name_is_free` says no. Linking, unlike renaming, never replaces
    an existing file. With `lock_path`, the check and the link happen under that lock, and
    only they: the slow fsyncs happen outside it, so concurrent writers do not queue."""
    temporary = write_temporary(path.parent, data)
    try:
        with exclusive_lock(lock_path) if lock_path else contextlib.nullcontext(True):
            if not name_is_free():
                return False
            os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    fsync_folder(path.parent)
    return True


def remove_stale_temporary_files(folder: Path) -> int:
    """Another process may be writing one right now (for milliseconds), so only files older
    than a minute count as left behind by an interrupted write."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    removed = 0
    for stale in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock between processes (and between threads, each with its own open file),
    held for the `with` block. With `wait=False`, yields False at once if someone holds it."""
    # Read-only is enough for flock, and still works on a folder remounted read-only.
    descriptor = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def write_problem(folder: Path) -> str | None:
    """Tries a small durable write in `folder`: None if it worked, else why not (an errno name,
    never a path or content), so health checks can say the folder cannot be written."""
    try:
        temporary = write_temporary(folder, b"probe")
        temporary.unlink()
    except OSError as error:
        return os.strerror(error.errno) if error.errno else type(error).__name__
    return None
