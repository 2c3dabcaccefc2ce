"""A conversation's file, as data: who wrote each message and when, and each message's delivery
to each recipient (conversations.py keeps them; the messages themselves are sealed).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from forms_server.storage.folder_store import optional_time, parse_time, time_or_none
from forms_server.storage.outbox_items import RecipientState, RecipientStatus
from forms_server.storage.receipts import COST

Author = Literal["group", "member"]


@dataclass(frozen=True)
class Message:
    by: Author
    at: datetime
    text: str


@dataclass(frozen=True)
class Outgoing:
    """One member's message on its way to one of the people who received the form."""

    message: int  # its place in the conversation
    recipient: RecipientState
    # When it was written, or queued again: its retry window, and how long it has waited.
    queued_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            **self.recipient.to_json(),
            "queued_at": time_or_none(self.queued_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outgoing:
        return cls(
            int(data["message"]),
            RecipientState.from_json(data),
            optional_time(data.get("queued_at")),
        )


@dataclass(frozen=True)
class Conversation:
    reference: str
    form_kind: str
    created_at: datetime
    routes: tuple[str, ...]
    salt: bytes
    receipt_hash: bytes
    # The messages, sealed as one list with the data key ("" before the first).
    sealed: str = ""
    last_message_at: datetime | None = None
    outgoing: tuple[Outgoing, ...] = ()
    # The member deleted it while nobody had picked the form up (lifecycle.py).
    closed_at: datetime | None = None

    @property
    def sending(self) -> tuple[Outgoing, ...]:
        return tuple(o for o in self.outgoing if o.recipient.status is RecipientStatus.PENDING)

    @property
    def failed(self) -> tuple[Outgoing, ...]:
        return tuple(o for o in self.outgoing if o.recipient.status is RecipientStatus.FAILED)

    @property
    def unfinished(self) -> bool:
        """A message is on its way, or failed and not yet dealt with: it keeps its marker."""
        return bool(self.sending or self.failed)

    def with_outgoing(self, changed: Outgoing) -> Conversation:
        return replace(
            self,
            outgoing=tuple(
                changed
                if (o.message, o.recipient.address) == (changed.message, changed.recipient.address)
                else o
                for o in self.outgoing
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "form_kind": self.form_kind,
            "created_at": self.created_at.isoformat(),
            "routes": list(self.routes),
            "receipt": {
                "salt": base64.b64encode(self.salt).decode("ascii"),
                "hash": base64.b64encode(self.receipt_hash).decode("ascii"),
                **{key: COST[key] for key in ("n", "r", "p")},
            },
            "sealed": self.sealed,
            "last_message_at": time_or_none(self.last_message_at),
            "outgoing": [o.to_json() for o in self.outgoing],
            "closed_at": time_or_none(self.closed_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conversation:
        receipt = data["receipt"]
        return cls(
            reference=str(data["reference"]),
            form_kind=str(data["form_kind"]),
            created_at=parse_time(data["created_at"]),
            routes=tuple(str(route) for route in data["routes"]),
            salt=base64.b64decode(receipt["salt"]),
            receipt_hash=base64.b64decode(receipt["hash"]),
            sealed=str(data.get("sealed", "")),
            last_message_at=optional_time(data.get("last_message_at")),
            outgoing=tuple(Outgoing.from_json(o) for o in data.get("outgoing", [])),
            closed_at=optional_time(data.get("closed_at")),
        )
