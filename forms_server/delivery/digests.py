"""Floods: how many messages each address has just had, and the digests that carry the rest.

The rules (lifecycle.SENDING_RULES) say when a message goes on its own and when it joins a
digest: ordinary forms past the hourly rate come together every few minutes; urgent forms go
alone up to their own rate, then in urgent-only digests every minute; escalations follow the
same rules in digests of their own. This module counts and carries them out.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from forms_server.forms.fields import Submission
from forms_server.lifecycle import Batch, FloodLimits
from forms_server.mail.relay import Relay

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
URGENT_DIGEST_EVERY = timedelta(minutes=1)


class SendLog:
    """Messages each address had in the last hour (in memory: a restart forgives)."""

    def __init__(self) -> None:
        self.sent: dict[str, collections.deque[datetime]] = {}
        self.urgent_alone: dict[str, collections.deque[datetime]] = {}

    @staticmethod
    def recent(log: dict[str, collections.deque[datetime]], address: str, now: datetime) -> int:
        times = log.get(address)
        if times is None:
            return 0
        while times and now - times[0] > HOUR:
            times.popleft()
        return len(times)

    def counts(self, address: str, now: datetime) -> tuple[int, int]:
        """Messages in the last hour, and urgent forms sent on their own."""
        return self.recent(self.sent, address, now), self.recent(self.urgent_alone, address, now)

    def note(self, address: str, now: datetime, urgent_alone: bool = False) -> None:
        self.sent.setdefault(address, collections.deque()).append(now)
        if urgent_alone:
            self.urgent_alone.setdefault(address, collections.deque()).append(now)


class Carrier(Protocol):
    """What a digest needs from the job whose forms it carries."""

    def digest_forms(self, references: list[str]) -> list[Submission]: ...

    async def digest_sent(self, references: list[str], address: str, now: datetime) -> None: ...

    async def digest_failed(
        self, references: list[str], address: str, error: Exception, now: datetime
    ) -> None: ...

    async def digest_waits(self, references: list[str], address: str, until: datetime) -> None: ...


@dataclass(frozen=True)
class DigestKey:
    address: str
    batch: Batch
    escalation: bool


@dataclass
class Digests:
    relay: Relay
    limits: FloodLimits
    every: timedelta
    send_log: SendLog
    compose: Callable[[list[Submission], str, int, bool], EmailMessage]
    name: str = "digests"
    carriers: dict[bool, Carrier] = field(default_factory=dict)
    waiting: dict[DigestKey, list[str]] = field(default_factory=dict)
    next_at: dict[DigestKey, datetime] = field(default_factory=dict)
    # Forms waiting for a digest, until it goes (the health check reports a flood).
    held: dict[DigestKey, set[str]] = field(default_factory=dict)

    @property
    def last_waiting(self) -> int:
        return len({reference for references in self.held.values() for reference in references})

    def start_pass(self) -> None:
        self.waiting = {}

    def add(self, address: str, batch: Batch, escalation: bool, reference: str) -> None:
        key = DigestKey(address, batch, escalation)
        self.waiting.setdefault(key, []).append(reference)
        self.held.setdefault(key, set()).add(reference)

    def interval(self, key: DigestKey) -> timedelta:
        return URGENT_DIGEST_EVERY if key.batch is Batch.URGENT_DIGEST else self.every

    async def run(self, now: datetime) -> None:
        """Each address's waiting forms in one message, once its time comes; until then they
        wait, with no attempt counted. Urgent-only digests first."""
        if not self.relay.ready:
            return
        keys = sorted(self.waiting, key=lambda key: key.batch is not Batch.URGENT_DIGEST)
        for key in keys:
            references = self.waiting[key]
            carrier = self.carriers[key.escalation]
            due_at = self.next_at.get(key)
            if due_at is not None and now < due_at:
                await carrier.digest_waits(references, key.address, due_at)
                continue
            try:
                forms = carrier.digest_forms(references)
                message = self.compose(
                    forms, key.address, self.limits.alone_per_hour, key.escalation
                )
                await self.relay.send(message, key.address)
            except Exception as error:  # noqa: BLE001 - this digest's fault alone
                await carrier.digest_failed(references, key.address, error, now)
                self.held[key].difference_update(references)
                continue
            await carrier.digest_sent(references, key.address, now)
            self.held[key].difference_update(references)
            self.next_at[key] = now + self.interval(key)
            self.send_log.note(key.address, now)
            logger.info("Delivered %d forms in one digest to one recipient", len(references))

    def next_due_at(self) -> datetime | None:
        due = [self.next_at[key] for key in self.waiting if key in self.next_at]
        return min(due, default=None)
