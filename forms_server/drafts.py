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
import secrets
import threading
import time

from forms_server.reference import new_reference, normalise_reference
from forms_server.signing import InvalidTokenError, Purpose, Signer

# Drafts belong to no one form: the exit link cannot know which form it is on.
DRAFT_SALT_KIND = "any-form"


class Drafts:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.key = secrets.token_bytes(32)
        self.lock = threading.Lock()
        # keyed hash of a cancelled reference -> when it can be forgotten (monotonic seconds)
        self.cancelled: dict[bytes, float] = {}
        # keyed hash of a sent reference -> (its form, its routes, when it can be forgotten):
        # the confirmation page says who reads it without the address bar saying anything.
        self.sent: dict[bytes, tuple[str, tuple[str, ...], float]] = {}

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
        now = time.monotonic()
        with self.lock:
            for digest, forget_at in list(self.cancelled.items()):
                if forget_at <= now:
                    del self.cancelled[digest]
            self.cancelled[self.digest(reference)] = (
                now + self.signer.max_age_by_purpose[Purpose.DRAFT]
            )

    def record_sent(self, reference: str, form_kind: str, routes: tuple[str, ...]) -> None:
        now = time.monotonic()
        with self.lock:
            for digest, (_, _, forget_at) in list(self.sent.items()):
                if forget_at <= now:
                    del self.sent[digest]
            self.sent[self.digest(reference)] = (
                form_kind,
                routes,
                now + self.signer.max_age_by_purpose[Purpose.DRAFT],
            )

    def sent_as(self, reference: str) -> tuple[str, tuple[str, ...]] | None:
        """The form and routes of a reference sent in the last few hours by this process."""
        with self.lock:
            found = self.sent.get(self.digest(reference))
        if found is None or found[2] <= time.monotonic():
            return None
        return found[0], found[1]

    def is_cancelled(self, reference: str) -> bool:
        with self.lock:
            forget_at = self.cancelled.get(self.digest(reference))
        return forget_at is not None and forget_at > time.monotonic()
