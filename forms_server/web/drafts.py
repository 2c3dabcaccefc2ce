"""Drafts the host cannot read, bound to the member's browser.

A form's answers, once posted, are sealed on the server (storage/draft_files.py) under a key
only the member's browser holds: a strictly necessary cookie carries 32 random bytes, the
browser key, and the server never keeps it. From it come, for each form, the draft's name (the
opaque id in the check page's address) and the key that seals it (AES-GCM, the name as
associated data). So whoever holds the server's keys and its disk cannot open a draft, and
without the cookie every address of a draft says only "This page has expired".

A browser has at most one draft of each form. It ends when it is sent (then a sealed note of
the receipt stays under the same key, so a double click gives the same receipt), at Exit (both
files go and the cookie is cleared), or once idle (draft_files.py). Nothing of a draft is ever
in an address, a token or a page the member did not ask to see.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from forms_server.forms.fields import Answers
from forms_server.storage.draft_files import DraftFiles

# Says nothing about any form: the browser's key for this site's drafts.
COOKIE = "key"
KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"d1"
SENT = ".sent"
# The name a browser's open conversation is kept under (never a form's kind).
CONVERSATION = "conversation"


@dataclass
class Draft:
    """A form filled in but not sent, as sealed."""

    kind: str
    reference: str
    answers: Answers
    created_at: float
    # When the answers were last found complete (the check page's time), else None.
    checked_at: float | None = None
    # The answers had errors the last time they were posted: the form shows them.
    show_errors: bool = False
    # A limit held the last post back until then (the form says how long is left).
    held_until: float | None = None
    replaces: str | None = None
    guidelines: str | None = None
    automated: bool = False


@dataclass(frozen=True)
class Receipt:
    """What stays of a sent draft, under the same key, until it idles out."""

    kind: str
    reference: str
    routes: tuple[str, ...] = field(default=())
    # The answers said someone may be at risk now: the receipt puts help first.
    urgent: bool = False
    # The second secret of a concern or left-early notice (storage/conversations.py): shown on
    # this browser's receipt until it idles out, never kept anywhere the host can read.
    conversation_receipt: str | None = None


def browser_key_of(request: Request) -> bytes | None:
    """The key in the member's cookie, or None (no cookie, or not one of ours)."""
    value = request.cookies.get(COOKIE, "")
    try:
        key = base64.urlsafe_b64decode(value.encode("ascii") + b"=")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def new_browser_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def remember_key(response: Response, key: bytes, secure: bool) -> None:
    """The cookie: no expiry date (it goes when the browser closes), only for this site's own
    requests (SameSite=Strict), never readable by a script (HttpOnly)."""
    response.set_cookie(
        COOKIE,
        base64.urlsafe_b64encode(key).decode("ascii").rstrip("="),
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def forget_key(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")


def derived(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, purpose.encode("utf-8"), hashlib.sha256).digest()


def name_for(key: bytes, kind: str) -> str:
    """The draft's id: opaque, and the same for one browser and one form."""
    return base64.urlsafe_b64encode(derived(key, f"name\0{kind}")[:16]).decode("ascii")[:22]


def seal(key: bytes, name: str, content: Mapping[str, Any]) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealer = AESGCM(derived(key, f"seal\0{name}"))
    plain = json.dumps(content, separators=(",", ":")).encode("utf-8")
    return FORMAT + nonce + sealer.encrypt(nonce, plain, name.encode("ascii"))


def unseal(key: bytes, name: str, sealed: bytes) -> dict[str, Any] | None:
    if not sealed.startswith(FORMAT):
        return None
    nonce = sealed[len(FORMAT) : len(FORMAT) + NONCE_BYTES]
    try:
        plain = AESGCM(derived(key, f"seal\0{name}")).decrypt(
            nonce, sealed[len(FORMAT) + NONCE_BYTES :], name.encode("ascii")
        )
        content = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    return content if isinstance(content, dict) else None


class Drafts:
    """Each browser's drafts, in the drafts folder; `files` is None when it cannot be used
    (then the forms say they cannot be saved, and keep what was typed on the page)."""

    def __init__(
        self, files: DraftFiles | None, kinds: Iterable[str], max_age_seconds: float
    ) -> None:
        self.files = files
        self.kinds = tuple(kinds)
        self.max_age_seconds = max_age_seconds

    def kind_of(self, key: bytes, name: str) -> str | None:
        """Which form an id is this browser's draft of (None for any other id)."""
        for kind in self.kinds:
            if hmac.compare_digest(name_for(key, kind), name):
                return kind
        return None

    def load(self, key: bytes, kind: str) -> Draft | None:
        content = self.read(key, name_for(key, kind))
        if content is None:
            return None
        try:
            draft = Draft(**content)
        except TypeError:
            return None
        too_old = time.time() - draft.created_at > self.max_age_seconds
        if draft.kind != kind or too_old:
            self.end(key, kind, receipt=False)
            return None
        return draft

    def save(self, key: bytes, draft: Draft, network: str) -> None:
        """Raises OSError when the folder cannot take it."""
        if self.files is None:
            raise OSError("the drafts folder cannot be used")
        name = name_for(key, draft.kind)
        self.files.write(name, seal(key, name, asdict(draft)), network)

    def receipt(self, key: bytes, kind: str) -> Receipt | None:
        content = self.read(key, name_for(key, kind) + SENT)
        if content is None or content.get("kind") != kind:
            return None
        secret = content.get("conversation_receipt")
        return Receipt(
            kind,
            str(content["reference"]),
            tuple(content.get("routes", ())),
            content.get("urgent") is True,
            secret if isinstance(secret, str) else None,
        )

    def sent(self, key: bytes, receipt: Receipt, network: str) -> None:
        """The draft is sent: its receipt stays, the draft goes."""
        if self.files is None:
            return
        name = name_for(key, receipt.kind)
        # The form is sent either way: without its receipt a double click shows "expired",
        # never a second form.
        with contextlib.suppress(OSError):
            self.files.write(name + SENT, seal(key, name + SENT, asdict(receipt)), network)
        self.files.delete([name])

    def end(self, key: bytes, kind: str, receipt: bool = True) -> None:
        if self.files is not None:
            name = name_for(key, kind)
            self.files.delete([name, name + SENT] if receipt else [name])

    def end_all(self, key: bytes) -> None:
        """Exit: every draft and receipt of this browser goes, and its open conversation."""
        if self.files is not None:
            names = [name_for(key, kind) for kind in self.kinds]
            self.files.delete(
                [*names, *(name + SENT for name in names), name_for(key, CONVERSATION)]
            )

    # -- A conversation opened with a reference and its receipt -----------------------------

    def open_conversation(self, key: bytes, reference: str, network: str) -> str:
        """This browser may read and answer `reference`'s conversation until it idles out or
        Exit: the page's opaque name. Raises OSError when the folder cannot take it."""
        if self.files is None:
            raise OSError("the drafts folder cannot be used")
        name = name_for(key, CONVERSATION)
        self.files.write(name, seal(key, name, {"reference": reference}), network)
        return name

    def conversation_of(self, key: bytes, name: str) -> str | None:
        """The reference this browser opened under `name`, or None (another name, or gone)."""
        if not hmac.compare_digest(name_for(key, CONVERSATION), name):
            return None
        content = self.read(key, name)
        reference = content.get("reference") if content else None
        return reference if isinstance(reference, str) else None

    def close_conversation(self, key: bytes) -> None:
        if self.files is not None:
            self.files.delete([name_for(key, CONVERSATION)])

    def read(self, key: bytes, name: str) -> dict[str, Any] | None:
        sealed = self.files.read(name) if self.files is not None else None
        return None if sealed is None else unseal(key, name, sealed)
