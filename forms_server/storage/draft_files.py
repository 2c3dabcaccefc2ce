"""The drafts folder: sealed drafts on disk, each gone once idle, the folder capped.

What is in a file is sealed by the web layer (web/drafts.py) under a key only the member's
browser holds; this module never sees a key or an answer, only names and bytes. Files are
written whole (a temporary file, then a rename) but without fsync: a draft need not survive a
crash, and a write costs no disk flush. Nothing here is ever backed up or exported.

Every file lives until it is deleted (sent, Exit), or until nobody has used it for
`idle_seconds`. The folder holds at most `most_per_network` files made from one network and
`most_in_total` in all; past either, the least recently used goes. Nobody is ever refused a
draft: a flood costs its own network's drafts first, and memory and disk stay bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from forms_server.storage.files import private_folder

logger = logging.getLogger(__name__)

# A name the web layer derived (never one taken from a request as it is).
NAME = re.compile(r"[A-Za-z0-9_-]{16,64}(\.[a-z]+)?")
DRAFTS_FOLDER = "drafts"
MOST_PER_NETWORK = 60
MOST_IN_TOTAL = 10_000


class DraftFiles:
    def __init__(
        self,
        folder: Path,
        idle_seconds: float,
        most_per_network: int = MOST_PER_NETWORK,
        most_in_total: int = MOST_IN_TOTAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.idle_seconds = idle_seconds
        self.most_per_network = most_per_network
        self.most_in_total = most_in_total
        self.clock = clock
        self.lock = threading.Lock()
        # Name -> when it was last used, least recently used first: the idle and the evicted
        # are always at the front, so finding them never looks at the rest.
        self.used: OrderedDict[str, float] = OrderedDict()
        # Network -> its names, least recently used first (memory only: after a restart the
        # drafts from before count against no network, only the total).
        self.by_network: dict[str, OrderedDict[str, None]] = {}
        self.network_of: dict[str, str] = {}
        private_folder(folder)
        self.take_stock()

    def take_stock(self) -> None:
        """What a previous run left: every draft still fresh, oldest first; the rest go."""
        found = []
        for path in self.folder.iterdir():
            with contextlib.suppress(OSError):
                if NAME.fullmatch(path.name):
                    found.append((path.stat().st_mtime, path.name))
                else:  # a temporary file a writer left when it died
                    path.unlink()
        for used_at, name in sorted(found):
            self.used[name] = used_at
        with self.lock:
            self.forget(self.due(self.clock()))

    def path(self, name: str) -> Path:
        if not NAME.fullmatch(name):
            raise ValueError("not a draft's name")
        return self.folder / name

    def write(self, name: str, sealed: bytes, network: str) -> None:
        """`name` now holds `sealed`. Raises OSError when the disk cannot take it."""
        path = self.path(name)
        temporary = self.folder / f".{secrets.token_hex(8)}.tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(sealed)
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        now = self.clock()
        with self.lock:
            self.mark_used(name, now)
            self.belongs_to(name, network)
            self.forget(self.due(now, network))

    def read(self, name: str) -> bytes | None:
        """What `name` holds, or None if it is gone or was idle too long (then it goes now)."""
        now = self.clock()
        with self.lock:
            self.forget(self.due(now))
            if name not in self.used:
                return None
            self.mark_used(name, now)
        path = self.path(name)
        # So after a restart its idle time counts from now, too. Best effort: a folder that
        # cannot be written just now (full, or read-only) must not lose a draft it can read.
        with contextlib.suppress(OSError):
            os.utime(path)
        try:
            return path.read_bytes()
        except OSError:
            with self.lock:
                self.forget([name])
            return None

    def delete(self, names: Iterable[str]) -> None:
        with self.lock:
            self.forget([name for name in names if NAME.fullmatch(name)], everywhere=True)

    def count(self) -> int:
        with self.lock:
            return len(self.used)

    # -- with the lock held ---------------------------------------------------------------------

    def mark_used(self, name: str, now: float) -> None:
        self.used[name] = now
        self.used.move_to_end(name)
        network = self.network_of.get(name)
        if network is not None:
            self.by_network[network].move_to_end(name)

    def belongs_to(self, name: str, network: str) -> None:
        previous = self.network_of.get(name)
        if previous == network:
            return
        if previous is not None:
            self.by_network[previous].pop(name, None)
        self.network_of[name] = network
        self.by_network.setdefault(network, OrderedDict())[name] = None

    def due(self, now: float, network: str | None = None) -> list[str]:
        """Names idle too long, then the least recently used past the total cap and past
        `network`'s own."""
        gone: dict[str, None] = {}
        for name, used_at in self.used.items():
            if used_at > now - self.idle_seconds:
                break
            gone[name] = None
        least_used_first(self.used, len(self.used) - len(gone) - self.most_in_total, gone)
        names = self.by_network.get(network or "")
        if network is not None and names is not None:
            kept = sum(1 for name in names if name not in gone)
            least_used_first(names, kept - self.most_per_network, gone)
        return list(gone)

    def forget(self, names: Iterable[str], everywhere: bool = False) -> None:
        """Deletes the files; `everywhere` also tries names this run never saw (after Exit,
        a draft from before a restart must go too)."""
        for name in names:
            known = self.used.pop(name, None) is not None
            network = self.network_of.pop(name, None)
            if network is not None:
                self.by_network[network].pop(name, None)
                if not self.by_network[network]:
                    del self.by_network[network]
            if known or everywhere:
                try:
                    (self.folder / name).unlink(missing_ok=True)
                except OSError as error:
                    logger.warning("A draft could not be deleted (%s)", type(error).__name__)


def least_used_first(names: Iterable[str], how_many: int, gone: dict[str, None]) -> None:
    """Adds the first `how_many` of `names` not already in `gone` to it."""
    for name in names:
        if how_many <= 0:
            return
        if name not in gone:
            gone[name] = None
            how_many -= 1
