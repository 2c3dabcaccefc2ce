"""The delivery job: each recipient gets their own message, urgent forms first, always.

The order of steps is what keeps a crash or a fault from repeating or losing mail:

1. send one recipient's message (this module; recording.py does the rest);
2. at once, mark that recipient accepted in the item's file. If that write fails (a full
   disk), the acceptance goes into the journal's reserved space (storage/journal.py), so not
   even a restart sends it again; if even that fails (a read-only folder), it is kept in memory
   and the health check fails;
3. once any recipient has it, keep the minimal record in the store (one write per pass);
4. once every recipient has it, the lifecycle decides what follows (a watch for a concern) and
   the item becomes an empty delivered marker.

Between any two sends, the job looks for forms that arrived meanwhile (from this process, or a
file another process wrote): an urgent one goes next, never after the rest of the pass.
Anything that goes wrong with one item is that item's failure alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import anyio.to_thread

from forms_server.delivery.composer import Composer
from forms_server.delivery.digests import Digests, SendLog
from forms_server.delivery.health import OutboxSummary, WaitingIndex, summarise
from forms_server.delivery.recording import Records, failed, item_failed
from forms_server.forms.fields import Submission
from forms_server.lifecycle import Batch, FloodLimits, SendState, how_to_send, priority
from forms_server.mail.messages import DeliveryError, new_message_id
from forms_server.mail.relay import Relay
from forms_server.storage.form_files import FormFiles
from forms_server.storage.outbox import Outbox
from forms_server.storage.outbox_items import (
    MEMBER_COPY,
    ItemStatus,
    OutboxItem,
    RecipientState,
)
from forms_server.storage.records import SubmissionStore

logger = logging.getLogger(__name__)


class Sending:
    name = "delivery"

    def __init__(
        self,
        files: FormFiles,
        store: SubmissionStore,
        composer: Composer,
        relay: Relay,
        digests: Digests,
        send_log: SendLog,
        limits: FloodLimits,
        windows: tuple[timedelta, timedelta],
    ) -> None:
        self.files = files
        self.outbox: Outbox = files.outbox
        self.store = store
        self.composer = composer
        self.relay = relay
        self.digests = digests
        self.send_log = send_log
        self.limits = limits
        # What is waiting, as last read or changed: the health check reads it, so a form
        # received between passes counts at once.
        self.index = WaitingIndex()
        self.summary_of: tuple[int, int, OutboxSummary] = (-1, -1, OutboxSummary())
        self.records = Records(files, store, composer, self.index, windows)
        self.quarantined = 0
        self.known: set[str] = set()
        self.deferred: set[tuple[str, str]] = set()
        self.stopping = False

    # -- What is waiting -------------------------------------------------------------------

    def note_received(self, item: OutboxItem) -> None:
        self.index[item.reference] = item

    async def read_waiting(self) -> None:
        read = await anyio.to_thread.run_sync(self.outbox.pending)
        self.index.replace_all(self.records.with_unsaved_accepts(item) for item in read.items)
        self.known = set(self.index)
        for found in read.quarantined:
            rule = await anyio.to_thread.run_sync(self.files.found_unreadable, found)
            if rule is not None and rule.then:
                logger.error("A damaged outbox file said it was urgent: %s", rule.name)
        self.quarantined = len(await anyio.to_thread.run_sync(self.outbox.quarantined))

    async def look_for_arrivals(self) -> None:
        """New files since the last look (another process may have received a form): a
        listing, O(waiting), and a read of each new file only."""
        names = await anyio.to_thread.run_sync(self.outbox.waiting_names)
        for name in names - self.known - set(self.index):
            item = await anyio.to_thread.run_sync(self.outbox.read, name)
            if item is not None:
                self.index[name] = self.records.with_unsaved_accepts(item)
        self.known = names | set(self.index)

    def next_send(self, now: datetime) -> tuple[OutboxItem, RecipientState | None] | None:
        """The most pressing message: urgent first, then oldest first."""
        waiting = sorted(
            (item for item in self.index.values() if item.status is ItemStatus.PENDING),
            key=lambda item: priority(item.urgent, item.received_at),
        )
        for item in waiting:
            if not item.recipients:
                return item, None
            for recipient in item.recipients:
                if recipient.due(now) and (item.reference, recipient.address) not in self.deferred:
                    return item, recipient
        return None

    # -- A pass ----------------------------------------------------------------------------

    async def run(self, now: datetime) -> None:
        self.deferred = set()
        await self.read_waiting()
        if self.relay.ready:
            while not self.stopping and (chosen := self.next_send(now)) is not None:
                await self.send(*chosen, now)
                await self.look_for_arrivals()

    def summary(self) -> OutboxSummary:
        """What is waiting, in counts and times; worked out again only after a change."""
        changes, quarantined, summary = self.summary_of
        if (changes, quarantined) != (self.index.changes, self.quarantined):
            summary = summarise(self.index.values(), self.quarantined)
            self.summary_of = (self.index.changes, self.quarantined, summary)
        return summary

    def next_due_at(self) -> datetime | None:
        return min(
            (due for item in self.index.values() if (due := item.next_due_at())), default=None
        )

    # -- One message -----------------------------------------------------------------------

    async def send(self, item: OutboxItem, recipient: RecipientState | None, now: datetime) -> None:
        try:
            if recipient is None:  # migrated from the first version: address it now
                item = await self.addressed(item)
            else:
                item = await self.send_to(item, recipient, now)
        except Exception as error:  # noqa: BLE001 - one item's fault is that item's alone
            logger.error(
                "Delivery of %s %s hit %s", item.form_kind, item.reference, type(error).__name__
            )
            item = item_failed(item, error, now, self.records.retry_window)
            await anyio.to_thread.run_sync(self.records.save, item)
        self.index[item.reference] = item

    async def addressed(self, item: OutboxItem) -> OutboxItem:
        route, addresses = self.composer.addressed(self.composer.submission_of(item))
        recipients = tuple(
            RecipientState(address, new_message_id(self.composer.mail.sender))
            for address in addresses
        )
        item = replace(item, route=route, recipients=recipients)
        await anyio.to_thread.run_sync(self.records.save, item)
        return item

    def batch_for(self, item: OutboxItem, address: str, now: datetime) -> Batch:
        if address == MEMBER_COPY:
            return Batch.ALONE
        mode = self.composer.mode_for(item.route.split("+"), address)
        sent, urgent_alone = self.send_log.counts(address, now)
        return how_to_send(SendState(item.urgent, mode, sent, urgent_alone), self.limits).batch

    async def send_to(
        self, item: OutboxItem, recipient: RecipientState, now: datetime
    ) -> OutboxItem:
        batch = self.batch_for(item, recipient.address, now)
        if batch is not Batch.ALONE:
            self.digests.add(recipient.address, batch, False, item.reference)
            self.deferred.add((item.reference, recipient.address))
            return item
        submission = self.composer.submission_of(item)
        try:
            address, message = self.composer.for_recipient(
                submission, recipient.address, recipient.message_id, item.route, item.sealed
            )
            await self.relay.send(message, address)
        except DeliveryError as error:
            item = item.with_recipient(
                failed(item, recipient, error, now, self.records.retry_window)
            )
            await anyio.to_thread.run_sync(self.records.save, item)
            return item
        item = await anyio.to_thread.run_sync(
            self.records.accepted, item, recipient.address, self.composer.clock()
        )
        self.send_log.note(recipient.address, now, urgent_alone=item.urgent)
        position = [r.address for r in item.recipients].index(recipient.address) + 1
        logger.info(
            "Delivered %s %s to recipient %d of %d",
            item.form_kind,
            item.reference,
            position,
            len(item.recipients),
        )
        return item

    # -- Digests carry some of its forms (digests.py) ----------------------------------------

    def digest_forms(self, references: list[str]) -> list[Submission]:
        return [self.composer.submission_of(self.index[reference]) for reference in references]

    async def digest_sent(self, references: list[str], address: str, now: datetime) -> None:
        for reference in references:
            self.index[reference] = await anyio.to_thread.run_sync(
                self.records.accepted, self.index[reference], address, now
            )

    async def digest_failed(
        self, references: list[str], address: str, error: Exception, now: datetime
    ) -> None:
        for reference in references:
            item = self.index[reference]
            recipient = next(r for r in item.recipients if r.address == address)
            item = item.with_recipient(
                failed(item, recipient, error, now, self.records.retry_window)
            )
            self.index[reference] = item
            await anyio.to_thread.run_sync(self.records.save, item)

    async def digest_waits(self, references: list[str], address: str, until: datetime) -> None:
        """Not its time yet: no attempt counted, and the worker wakes for it."""
        for reference in references:
            item = self.index[reference]
            recipient = next(r for r in item.recipients if r.address == address)
            item = item.with_recipient(replace(recipient, next_attempt_at=until))
            self.index[reference] = item
            await anyio.to_thread.run_sync(self.records.save, item)
