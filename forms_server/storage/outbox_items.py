"""What the outbox holds for each form: its sealed content, and each recipient's own
delivery state (waiting, accepted, failed), from which the form's own state follows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from forms_server.storage.folder_store import (
    RecordError,
    SealedForm,
    optional_time,
    parse_time,
    time_or_none,
)

FORMAT = 2
# The recipient that stands for the member's own copy: its address stays in the sealed answers.
# A copy that cannot be delivered never holds the form back or fails it.
MEMBER_COPY = "member-copy"
AS_SOON_AS_POSSIBLE = datetime.min.replace(tzinfo=UTC)


class RecipientStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"  # the relay took this recipient's message: never sent again
    FAILED = "failed"  # refused for good, or the retry window ended


class ItemStatus(StrEnum):
    PENDING = "pending"  # something left to send or to record
    FAILED = "failed"  # nothing left to try: a recipient failed, or the form could not be read
    DELIVERED = "delivered"


@dataclass(frozen=True)
class RecipientState:
    address: str
    message_id: str
    status: RecipientStatus = RecipientStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None  # None: as soon as possible
    last_error: str | None = None
    accepted_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.status is RecipientStatus.PENDING and (
            self.next_attempt_at is None or self.next_attempt_at <= now
        )

    def accepted(self, now: datetime) -> RecipientState:
        """The relay took it: never sent again."""
        return replace(self, status=RecipientStatus.ACCEPTED, accepted_at=now, last_error=None)

    def tried_again(self, from_scratch: bool = False) -> RecipientState:
        """A failed one, waiting again from now (`forms-server outbox --retry`); the others as
        they are. `from_scratch`: its tries counted again from none."""
        if self.status is not RecipientStatus.FAILED:
            return self
        attempts = 0 if from_scratch else self.attempts
        return replace(
            self, status=RecipientStatus.PENDING, next_attempt_at=None, attempts=attempts
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "message_id": self.message_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "next_attempt_at": time_or_none(self.next_attempt_at),
            "last_error": self.last_error,
            "accepted_at": time_or_none(self.accepted_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientState:
        error = data.get("last_error")
        return cls(
            address=str(data["address"]),
            message_id=str(data["message_id"]),
            status=RecipientStatus(data["status"]),
            attempts=int(data["attempts"]),
            next_attempt_at=optional_time(data.get("next_attempt_at")),
            last_error=None if error is None else str(error),
            accepted_at=optional_time(data.get("accepted_at")),
        )


def with_recipient(
    recipients: tuple[RecipientState, ...], changed: RecipientState
) -> tuple[RecipientState, ...]:
    return tuple(changed if r.address == changed.address else r for r in recipients)


@dataclass(frozen=True)
class OutboxItem(SealedForm):
    # Retries go on until this plus the retry window; `outbox --retry` starts it again.
    retry_from: datetime
    # Who it goes to, by role ("facilitators", "safeguarding", ...): kept in the failure record.
    route: str = ""
    # One per recipient of the form's route, each with its own message. Empty until addressed
    # (an item migrated from the first version is addressed on its first pass).
    recipients: tuple[RecipientState, ...] = ()
    # The minimal record is in the store (done once any recipient has the message).
    recorded: bool = False
    record_attempts: int = 0
    next_record_at: datetime | None = None
    # A fault of the item itself rather than of one recipient (its content cannot be opened).
    problem: str | None = None
    failed_at: datetime | None = None
    content_erased_at: datetime | None = None

    # Worked out once per item (it is frozen): the health check asks often.
    @cached_property
    def status(self) -> ItemStatus:
        if self.problem is not None:
            return ItemStatus.FAILED
        states = {
            recipient.status
            for recipient in self.recipients
            if not (recipient.address == MEMBER_COPY and recipient.status is RecipientStatus.FAILED)
        }
        if not self.recipients or RecipientStatus.PENDING in states:
            return ItemStatus.PENDING
        if self.reached_someone and not self.recorded:
            return ItemStatus.PENDING
        if states == {RecipientStatus.ACCEPTED}:
            return ItemStatus.DELIVERED
        return ItemStatus.FAILED

    @cached_property
    def reached(self) -> tuple[str, ...]:
        """Recipients of the form (not the member's own copy) who have it."""
        return tuple(
            r.address
            for r in self.recipients
            if r.status is RecipientStatus.ACCEPTED and r.address != MEMBER_COPY
        )

    @property
    def reached_someone(self) -> bool:
        return bool(self.reached)

    @property
    def last_error(self) -> str | None:
        errors = [r.last_error for r in self.recipients if r.status is not RecipientStatus.ACCEPTED]
        return self.problem or next((error for error in errors if error), None)

    @property
    def attempts(self) -> int:
        return max((recipient.attempts for recipient in self.recipients), default=0)

    def next_due_at(self) -> datetime | None:
        """When something about this item can next be done; None when nothing can."""
        if self.status is not ItemStatus.PENDING:
            return None
        moments = [
            recipient.next_attempt_at or AS_SOON_AS_POSSIBLE
            for recipient in self.recipients
            if recipient.status is RecipientStatus.PENDING
        ]
        if not self.recipients:
            moments.append(AS_SOON_AS_POSSIBLE)
        if self.reached_someone and not self.recorded:
            moments.append(self.next_record_at or AS_SOON_AS_POSSIBLE)
        return min(moments) if moments else None

    def with_recipient(self, changed: RecipientState) -> OutboxItem:
        return replace(self, recipients=with_recipient(self.recipients, changed))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            **self.identity_json(),
            "retry_from": self.retry_from.isoformat(),
            "route": self.route,
            "recipients": [recipient.to_json() for recipient in self.recipients],
            "recorded": self.recorded,
            "record_attempts": self.record_attempts,
            "next_record_at": time_or_none(self.next_record_at),
            "problem": self.problem,
            "failed_at": time_or_none(self.failed_at),
            "content_erased_at": time_or_none(self.content_erased_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxItem:
        """Fields a later version adds are ignored; missing or mistyped ones are an error."""
        if data.get("format") != FORMAT:
            raise RecordError(f"format {data.get('format')!r} is not one this version reads")
        problem = data.get("problem")
        return cls(
            **cls.identity_from(data),
            retry_from=parse_time(data["retry_from"]),
            route=str(data.get("route", "")),
            recipients=tuple(RecipientState.from_json(r) for r in data["recipients"]),
            recorded=bool(data["recorded"]),
            record_attempts=int(data.get("record_attempts", 0)),
            next_record_at=optional_time(data.get("next_record_at")),
            problem=None if problem is None else str(problem),
            failed_at=optional_time(data.get("failed_at")),
            content_erased_at=optional_time(data.get("content_erased_at")),
        )

    @classmethod
    def from_first_version(cls, data: dict[str, Any]) -> OutboxItem:
        """An item written by the first version: addressed again, a failed one tried again."""
        return cls(**cls.identity_from(data), retry_from=datetime.now(UTC))


# What can still be read of a damaged file: enough to know whether someone may be at risk.
