"""Signed, timestamped tokens (itsdangerous), one salt per form kind and purpose.

Every token has a maximum age that is always enforced; a token dated in the future is refused
too. Keys rotate: the last configured key signs, and every configured key verifies.

A link's token is sealed as well as signed (`seal`): its payload is encrypted (AES-GCM) under a
key derived from the signing key that made it, so a mail scanner or a proxy's log that sees
the link learns nothing from it (not the form, not the reference, not the recipient). Sealing
keys follow the signing keys' rotation, not FORMS_DATA_KEY's: a data key rotated for what is at
rest never kills a link in someone's inbox. Tokens made before sealing (a plain signed payload)
still open until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from forms_server.errors import FormsServerError

# Marks a sealed token; "~" is unreserved in URLs and starts no itsdangerous payload.
SEALED = "~"
NONCE_BYTES = 12


class Purpose(Enum):
    # A check page's answers, from before drafts were sealed (web/drafts.py): read only to
    # turn such a page into a draft, for as long as one can live.
    CHECK_ANSWERS = "check-answers"
    ACKNOWLEDGE = "acknowledge"  # a recipient's private link: "mark as being dealt with"
    MEMBER_COPY = "member-copy"  # a member's private link to what is kept of their form
    RENEW = "renew"  # a member's link to sign their consent again, filled in
    READ = "read"  # a recipient's link to a link-only form
    ASK = "ask"  # a recipient's link to the conversation with the member who sent a form


class TokenError(FormsServerError):
    """A token that cannot be used. Subclasses say why, so the page can say what to do."""


class ExpiredTokenError(TokenError):
    pass


class FutureTokenError(TokenError):
    pass


class InvalidTokenError(TokenError):
    """Altered, signed with a key we no longer have, or made for another form or purpose."""


class Signer:
    def __init__(
        self,
        secret_keys: Sequence[str],
        max_age_seconds: int,
        max_age_by_purpose: Mapping[Purpose, int] | None = None,
    ) -> None:
        """`max_age_seconds` for every purpose, unless `max_age_by_purpose` says otherwise: a
        check page lives hours, a recipient's acknowledgement link days."""
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        ages = {**dict.fromkeys(Purpose, max_age_seconds), **(max_age_by_purpose or {})}
        if min(ages.values()) <= 0:
            raise ValueError("tokens must have a maximum age")
        self.max_age_by_purpose = ages
        # itsdangerous signs with the last key and tries them all, newest first, to verify.
        self.secret_keys = list(secret_keys)
        self.max_age_seconds = max_age_seconds

    @property
    def longest_lifetime_seconds(self) -> int:
        """An old key may be removed this long after a new one signs: no live link needs it."""
        return max(self.max_age_by_purpose.values())

    def serializer(self, form_kind: str, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret_keys, salt=salt_of(form_kind, purpose))

    def sign(self, form_kind: str, purpose: Purpose, payload: dict[str, Any]) -> str:
        return self.serializer(form_kind, purpose).dumps(payload)

    def seal(self, form_kind: str, purpose: Purpose, payload: dict[str, Any]) -> str:
        """Signed, timestamped, and unreadable without the server's keys."""
        salt = salt_of(form_kind, purpose)
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        key = sealing_key(self.secret_keys[-1], salt)
        sealed = nonce + AESGCM(key).encrypt(nonce, plain, salt.encode("utf-8"))
        body = base64.urlsafe_b64encode(sealed).rstrip(b"=")
        return SEALED + TimestampSigner(self.secret_keys, salt=salt).sign(body).decode("ascii")

    def unsealed(self, form_kind: str, purpose: Purpose, token: str) -> tuple[Any, datetime]:
        salt = salt_of(form_kind, purpose)
        body, signed_at = TimestampSigner(self.secret_keys, salt=salt).unsign(
            token.removeprefix(SEALED),
            max_age=self.max_age_by_purpose[purpose],
            return_timestamp=True,
        )
        try:
            sealed = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as error:
            raise InvalidTokenError("the sealed token cannot be read") from error
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        for secret in reversed(self.secret_keys):  # the newest made it, most likely
            try:
                plain = AESGCM(sealing_key(secret, salt)).decrypt(
                    nonce, ciphertext, salt.encode("utf-8")
                )
            except InvalidTag:
                continue
            return json.loads(plain), signed_at
        raise InvalidTokenError("no key opens the sealed token")

    def verify(self, form_kind: str, purpose: Purpose, token: str) -> dict[str, Any]:
        payload, _ = self.verify_with_time(form_kind, purpose, token)
        return payload

    def verify_with_time(
        self, form_kind: str, purpose: Purpose, token: str
    ) -> tuple[dict[str, Any], datetime]:
        """The payload and when it was signed (for telling a person from a script)."""
        try:
            if token.startswith(SEALED):
                payload, signed_at = self.unsealed(form_kind, purpose, token)
            else:  # a plain signed token, from before links were sealed
                payload, signed_at = self.serializer(form_kind, purpose).loads(
                    token, max_age=self.max_age_by_purpose[purpose], return_timestamp=True
                )
        except SignatureExpired as error:
            if "< 0 seconds" in str(error):
                raise FutureTokenError(str(error)) from error
            raise ExpiredTokenError(str(error)) from error
        except BadSignature as error:
            raise InvalidTokenError(str(error)) from error
        if not isinstance(payload, dict):
            raise InvalidTokenError("the token does not hold a form's answers")
        return payload, signed_at


def salt_of(form_kind: str, purpose: Purpose) -> str:
    return f"peer-support-forms/{form_kind}/{purpose.value}"


def sealing_key(secret: str, salt: str) -> bytes:
    """A signing key's own sealing key for one salt (never the signing key itself)."""
    return hmac.new(
        secret.encode("utf-8"), b"link-sealing\0" + salt.encode("utf-8"), hashlib.sha256
    ).digest()
