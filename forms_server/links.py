"""The private links the server sends: each sealed and signed for its own purpose, each with its
own lifetime (signing.py), each naming only what its page needs, and none readable by anyone
who sees it (a mail scanner, a proxy's log).

- acknowledge: a recipient marks a concern or an urgent notice as being dealt with;
- read: a recipient opens a link-only form;
- ask: a recipient reads the conversation with the member and asks them a question;
- yours: a member sees, withdraws or deletes what is kept of their form (from their copy);
- renew: a member signs their consent again, filled in (from their reminder).

Emails get them from here and pages open them here, so what a link holds is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from forms_server.forms.definitions import FORMS
from forms_server.forms.fields import Submission
from forms_server.forms.reference import normalise_reference
from forms_server.forms.routing import recipients_for
from forms_server.lifecycle import needs_picking_up
from forms_server.signing import Purpose, Signer, TokenError

# Links belong to no one form: each purpose has a salt of its own.
ACKNOWLEDGE_SALT = "acknowledgement"
READ_SALT = "read"
ASK_SALT = "ask"
YOURS_SALT = "member-copy"
RENEW_SALT = "renew"
# A renewal reminder goes a month before; its link works that month and the next.
RENEW_LINK_DAYS = 60


@dataclass(frozen=True)
class Opened:
    """What a valid link names: its reference and form, and, for a recipient's link, who."""

    reference: str
    form_kind: str
    to: str = ""
    routes: tuple[str, ...] = ()


class Links:
    def __init__(self, signer: Signer, public_url: str) -> None:
        self.signer = signer
        self.public_url = public_url

    def url(self, path: str, salt: str, purpose: Purpose, payload: dict[str, Any]) -> str:
        return f"{self.public_url}/forms/{path}/{self.signer.seal(salt, purpose, payload)}"

    # -- Making ----------------------------------------------------------------------------

    def acknowledge(self, submission: Submission, address: str) -> str | None:
        """Each recipient's own link, for a concern or an urgent notice (others get none)."""
        form = FORMS.get(submission.form_kind)
        if form is None or not needs_picking_up(submission.form_kind, submission.urgent):
            return None
        routes = [route.value for route in recipients_for(form, submission.answers)]
        return self.url(
            "acknowledge",
            ACKNOWLEDGE_SALT,
            Purpose.ACKNOWLEDGE,
            {
                "reference": submission.reference,
                "kind": submission.form_kind,
                "to": address,
                "routes": routes,
            },
        )

    def read(self, reference: str, form_kind: str, address: str) -> str:
        payload = {"reference": reference, "kind": form_kind, "to": address}
        return self.url("read", READ_SALT, Purpose.READ, payload)

    def ask(self, reference: str, form_kind: str, address: str) -> str:
        """A recipient's own link to the conversation with the member about this form."""
        payload = {"reference": reference, "kind": form_kind, "to": address}
        return self.url("ask", ASK_SALT, Purpose.ASK, payload)

    def ask_token(self, reference: str, form_kind: str, address: str) -> str:
        return self.ask(reference, form_kind, address).rsplit("/", 1)[1]

    def yours(self, reference: str, form_kind: str, now: datetime) -> tuple[str, datetime]:
        """The member's private link and the day it stops working."""
        link = self.url(
            "yours", YOURS_SALT, Purpose.MEMBER_COPY, {"reference": reference, "kind": form_kind}
        )
        lifetime = timedelta(seconds=self.signer.max_age_by_purpose[Purpose.MEMBER_COPY])
        return link, now + lifetime

    def renew(self, reference: str) -> str:
        return self.url("renew", RENEW_SALT, Purpose.RENEW, {"reference": reference})

    def renew_token(self, reference: str) -> str:
        """The same, as the token a form opened from the reminder carries."""
        return self.signer.seal(RENEW_SALT, Purpose.RENEW, {"reference": reference})

    # -- Opening ---------------------------------------------------------------------------

    def opened(self, salt: str, purpose: Purpose, token: str) -> Opened | None:
        """What the link names; None for a link altered, expired, or made for another
        purpose (the page then says the link no longer works)."""
        try:
            payload = self.signer.verify(salt, purpose, token)
            reference = normalise_reference(str(payload["reference"]))
            routes = tuple(str(route) for route in payload.get("routes", []))
            kind = str(payload.get("kind", ""))
            to = str(payload.get("to", ""))
        except (TokenError, KeyError, TypeError):
            return None
        return None if reference is None else Opened(reference, kind, to, routes)

    def open_acknowledge(self, token: str) -> Opened | None:
        return self.opened(ACKNOWLEDGE_SALT, Purpose.ACKNOWLEDGE, token)

    def open_read(self, token: str) -> Opened | None:
        return self.opened(READ_SALT, Purpose.READ, token)

    def open_ask(self, token: str) -> Opened | None:
        return self.opened(ASK_SALT, Purpose.ASK, token)

    def open_yours(self, token: str) -> Opened | None:
        return self.opened(YOURS_SALT, Purpose.MEMBER_COPY, token)

    def open_renew(self, token: object) -> str | None:
        if not isinstance(token, str) or not token:
            return None
        opened = self.opened(RENEW_SALT, Purpose.RENEW, token)
        return opened.reference if opened else None
