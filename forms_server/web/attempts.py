"""Growing waits after failed attempts to open a conversation with a reference and a receipt.

Counted per reference and per network, in memory. Never a lock: a reference travels in email
subjects, so anyone who sees one could otherwise shut its member out for good. The first
`FREE_FAILURES` cost nothing; after that each failure doubles the wait, from `FIRST_WAIT` to at
most `LONGEST_WAIT`, and the page says how long. A success clears its reference's count. With
16 digits (53 bits), even an hour's wait per try from every network at once leaves a guess
hopeless; the waits are there to keep each try's slow hash from costing the server much.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

FREE_FAILURES = 3
FIRST_WAIT = 60.0
LONGEST_WAIT = 3600.0
# A count nobody has added to for this long is forgotten.
FORGET_AFTER = 24 * 3600.0
MOST_KEPT = 20_000
# The recipients are told once a reference has failed this many times in a row.
TELL_AFTER = 5


def wait_after(failures: int) -> float:
    """The wait after this many failures in a row: none, then 1, 2, 4 ... 60 minutes."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(FIRST_WAIT * 2.0 ** (failures - FREE_FAILURES), LONGEST_WAIT)


class AttemptWaits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # Key -> (failures in a row, when the last one was), least recently failed first.
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_seconds(self, keys: Iterable[str]) -> int | None:
        """None if an attempt may be made now; else the longest wait left, in seconds."""
        now = self.clock()
        self.forget_old(now)
        left = 0.0
        for key in keys:
            count, at = self.failures.get(key, (0, now))
            left = max(left, at + wait_after(count) - now)
        return None if left <= 0 else max(1, round(left))

    def failed(self, keys: Iterable[str]) -> dict[str, int]:
        """Counts one failure against each key; each key's failures in a row now."""
        now = self.clock()
        counts = {}
        for key in keys:
            count = self.failures.pop(key, (0, now))[0] + 1
            self.failures[key] = (count, now)
            counts[key] = count
        while len(self.failures) > MOST_KEPT:
            self.failures.popitem(last=False)
        return counts

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)

    def forget_old(self, now: float) -> None:
        while self.failures:
            key, (_, at) = next(iter(self.failures.items()))
            if at > now - FORGET_AFTER:
                return
            del self.failures[key]
