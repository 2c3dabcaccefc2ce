"""Reading the data folder while the server's worker may still be writing in it.

A test that looks at every file the server keeps can list a temporary file that the worker renames
away before it is read. That file is not on disk to protect, but skipping it could hide a file that
stays, so the whole walk is taken again until one walk sees nothing vanish."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

SETTLING_SECONDS = 10
Read = TypeVar("Read")


def one_settled_walk(data_dir: Path, read: Callable[[Path], Read]) -> dict[Path, Read]:
    """`read` of the folder itself and everything under it, from one walk in which nothing
    vanished between its listing and its reading."""
    deadline = time.monotonic() + SETTLING_SECONDS
    while True:
        try:
            return {path: read(path) for path in [data_dir, *data_dir.rglob("*")]}
        except FileNotFoundError:
            assert time.monotonic() < deadline, "the data folder never stopped changing"
            time.sleep(0.05)


def file_bytes_or_none(path: Path) -> bytes | None:
    """A file's bytes, or None for a folder (the server makes no links to follow)."""
    return None if stat.S_ISDIR(path.lstat().st_mode) else path.read_bytes()


def held_files(data_dir: Path) -> dict[Path, bytes]:
    """Every file under the data folder, with its bytes."""
    walked = one_settled_walk(data_dir, file_bytes_or_none)
    return {path: held for path, held in walked.items() if held is not None}


def modes(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The permission bits of every folder and of every file, by name under the data folder."""
    walked = one_settled_walk(data_dir, lambda path: path.lstat().st_mode)
    named = {str(path.relative_to(data_dir)): mode for path, mode in walked.items()}
    bits = {name: oct(stat.S_IMODE(mode)) for name, mode in named.items()}
    folders = {name: bits[name] for name, mode in named.items() if stat.S_ISDIR(mode)}
    return folders, {name: bits[name] for name in named if name not in folders}
