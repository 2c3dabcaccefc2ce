"""Drafts: one per visit to a form, so a quick exit can take back everything typed in it.

Each form page gets a new draft: a reference (the one the member's receipt will show) signed
into a token the page carries. Every step re-sends it; the check page's token holds it too.
Quick exit on a form page goes through the server, which cancels the draft; any later request
for it (Back re-sending a form, a resubmitted check page) gets a neutral "This page has
expired", never the answers. Because the reference is fixed per draft, Back and send again,
a double click or a replay all end on the same receipt, and the outbox takes it once.

Cancelled drafts are kept in memory only, as keyed hashes (nothing personal, nothing on disk),
for as long as any token for them can live.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from forms_server.forms.reference import new_reference, normalise_reference
from forms_server.signing import InvalidTokenError, Purpose, Signer

V = TypeVar("V")

# Drafts belong to no one form: the exit link cannot know which form it is on.
DRAFT_SALT_KIND = "any-form"


class Expiring(Generic[V]):
    """A thread-safe map whose entries all live `lifetime` seconds. Entries are kept in the
    order they expire, so forgetting the old ones only ever looks at those: a confirm costs
    the same with a million entries as with none."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.lock = threading.Lock()
        self.entries: dict[bytes, tuple[V, float]] = {}

    def put(self, key: bytes, value: V) -> None:
        now = self.clock()
        with self.lock:
            self.forget_expired(now)
            self.entries.pop(key, None)  # to the end: it now expires last
            self.entries[key] = (value, now + self.lifetime)

    def get(self, key: bytes) -> V | None:
        with self.lock:
            found = self.entries.get(key)
        if found is None or found[1] <= self.clock():
            return None
        return found[0]

    def forget_expired(self, now: float) -> None:
        for key, (_, forget_at) in list(itertools.islice(self.entries.items(), 64)):
            if forget_at > now:
                return
            del self.entries[key]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class Drafts:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.key = secrets.token_bytes(32)
        lifetime = signer.max_age_by_purpose[Purpose.DRAFT]
        # Keyed hashes of cancelled references.
        self.cancelled: Expiring[bool] = Expiring(lifetime)
        # Keyed hash of a sent reference -> its form and routes: the confirmation page says who
        # reads it without the address bar saying anything.
        self.sent: Expiring[tuple[str, tuple[str, ...]]] = Expiring(lifetime)

    def new(self) -> tuple[str, str]:
        """A new draft: its reference and the token its pages carry."""
        reference = new_reference()
        return reference, self.token_for(reference)

    def token_for(self, reference: str) -> str:
        return self.signer.sign(DRAFT_SALT_KIND, Purpose.DRAFT, {"reference": reference})

    def reference_of(self, token: str) -> str:
        """The draft's reference; raises a TokenError when the token is not one of ours."""
        payload = self.signer.verify(DRAFT_SALT_KIND, Purpose.DRAFT, token)
        reference = normalise_reference(str(payload.get("reference", "")))
        if reference is None:
            raise InvalidTokenError("the draft token holds no reference")
        return reference

    def digest(self, reference: str) -> bytes:
        return hmac.new(self.key, reference.encode("ascii"), hashlib.sha256).digest()

    def cancel(self, reference: str) -> None:
        self.cancelled.put(self.digest(reference), True)

    def record_sent(self, reference: str, form_kind: str, routes: tuple[str, ...]) -> None:
        self.sent.put(self.digest(reference), (form_kind, routes))

    def sent_as(self, reference: str) -> tuple[str, tuple[str, ...]] | None:
        """The form and routes of a reference sent in the last few hours by this process."""
        return self.sent.get(self.digest(reference))

    def is_cancelled(self, reference: str) -> bool:
        return self.cancelled.get(self.digest(reference)) is not None
