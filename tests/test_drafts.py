"""The drafts' memory: entries live their lifetime, then go, without scanning the rest."""

from __future__ import annotations

from forms_server.web.drafts import Expiring


def test_entries_expire_and_are_forgotten_oldest_first() -> None:
    now = [1000.0]
    memory: Expiring[int] = Expiring(lifetime=60, clock=lambda: now[0])
    for n in range(100):
        memory.put(bytes([n]), n)
    assert memory.get(bytes([5])) == 5
    now[0] += 61
    assert memory.get(bytes([5])) is None
    memory.put(b"new", 1)  # forgets at most 64 of the expired, from the oldest
    assert len(memory.entries) == 100 - 64 + 1
    memory.put(b"newer", 2)
    assert set(memory.entries) == {b"new", b"newer"}
    # Putting a key again moves it to the end: it now expires last.
    memory.put(b"new", 3)
    assert list(memory.entries) == [b"newer", b"new"]
