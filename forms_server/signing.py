"""Signed, timestamped tokens (itsdangerous), one salt per form kind and purpose.

A check-answers page carries the member's answers as a token, so nothing is stored until they
confirm. Every token has a maximum age that is always enforced; a token dated in the future is
refused too. Keys rotate: the last configured key signs, and every configured key verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from forms_server.errors import FormsServerError


class Purpose(Enum):
    # A check page's answers, from before drafts were sealed (web/drafts.py): read only to
    # turn such a page into a draft, for as long as one can live.
    CHECK_ANSWERS = "check-answers"
    ACKNOWLEDGE = "acknowledge"  # a recipient's private link: "mark as being dealt with"
    MEMBER_COPY = "member-copy"  # a member's private link to what is kept of their form
    RENEW = "renew"  # a member's link to sign their consent again, filled in
    READ = "read"  # a recipient's link to a link-only form


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
        return URLSafeTimedSerializer(
            self.secret_keys, salt=f"peer-support-forms/{form_kind}/{purpose.value}"
        )

    def sign(self, form_kind: str, purpose: Purpose, payload: dict[str, Any]) -> str:
        return self.serializer(form_kind, purpose).dumps(payload)

    def verify(self, form_kind: str, purpose: Purpose, token: str) -> dict[str, Any]:
        payload, _ = self.verify_with_time(form_kind, purpose, token)
        return payload

    def verify_with_time(
        self, form_kind: str, purpose: Purpose, token: str
    ) -> tuple[dict[str, Any], datetime]:
        """The payload and when it was signed (for telling a person from a script)."""
        try:
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
